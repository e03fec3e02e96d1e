/* bcryptprimitives.dll for Wine 8.0, which has none: Rust's std on Windows
 * imports ProcessPrng from it for its random numbers (HashMap keys and the
 * like). This stand-in forwards to BCryptGenRandom, which Wine has.
 * Built by scripts/check-cross with zig cc and placed beside credstore.exe
 * for the Wine smoke test only; it is never shipped. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7fffffffUL ? 0x7fffffffUL : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
