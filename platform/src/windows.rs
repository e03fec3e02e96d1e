//! Windows: credential files created with a protected DACL that grants only
//! the user (and SYSTEM), a read-time ACL check that refuses a file others
//! may read or change, and a console that neither echoes nor line-edits a
//! pasted secret. Everything else is the plain-std code of `other.rs`.
//!
//! This is the one module of the project with `unsafe`: Win32 calls through
//! `windows-sys`. Every block says why it is sound.
#![allow(unsafe_code)]

use super::Ownership;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use windows_sys::Win32::Foundation::{
    LocalFree, GENERIC_ALL, GENERIC_READ, GENERIC_WRITE, HANDLE, HLOCAL, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, GetSecurityInfo,
    SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    AclSizeInformation, CheckTokenMembership, EqualSid, GetAce, GetAclInformation, GetLengthSid,
    GetTokenInformation, IsWellKnownSid, TokenUser, WinBuiltinAdministratorsSid, WinLocalSystemSid,
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION, DACL_SECURITY_INFORMATION,
    INHERIT_ONLY_ACE, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES,
    TOKEN_QUERY, TOKEN_USER,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, CREATE_NEW, DELETE, FILE_APPEND_DATA, FILE_ATTRIBUTE_NORMAL, FILE_READ_DATA,
    FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_WRITE_DATA, READ_CONTROL, WRITE_DAC,
    WRITE_OWNER,
};
use windows_sys::Win32::System::Console::{
    FlushConsoleInputBuffer, GetConsoleMode, GetStdHandle, SetConsoleMode, CONSOLE_MODE,
    ENABLE_ECHO_INPUT, ENABLE_LINE_INPUT, ENABLE_PROCESSED_INPUT, STD_INPUT_HANDLE,
};
use windows_sys::Win32::System::SystemServices::{
    ACCESS_ALLOWED_ACE_TYPE, ACCESS_ALLOWED_CALLBACK_ACE_TYPE,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

pub use super::other::{
    create_private_dir_all, disable_core_dumps, file_id, is_dumpable, lock_memory,
    open_append_private, open_lock_file, open_read_no_follow, open_regular_file, ownership,
    sanitize_std_fds, stdin_has_input, sync_dir, trim_os_str, write_stdout, FileId,
};

/// Reads standard input straight from its handle (`ReadFile`), not
/// through `std::io::Stdin`, whose process-wide buffer would keep a copy
/// of a pasted secret that is never wiped.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    // SAFETY: no arguments beyond a constant; the handle is not owned.
    let handle = unsafe { GetStdHandle(STD_INPUT_HANDLE) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Ok(0); // no standard input: end of input
    }
    // SAFETY: the handle is this process's standard input, open for its
    // lifetime; ManuallyDrop keeps the File from closing it.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_handle(handle) });
    (&*file).read(buf)
}

/// A buffer with the alignment a `SID` (or `TOKEN_USER`) needs.
struct Aligned(Vec<u64>);

impl Aligned {
    fn new(bytes: usize) -> Aligned {
        Aligned(vec![0u64; bytes.div_ceil(8)])
    }
    fn ptr(&mut self) -> *mut core::ffi::c_void {
        self.0.as_mut_ptr().cast()
    }
    fn bytes(&self) -> u32 {
        u32::try_from(self.0.len() * 8).unwrap_or(u32::MAX)
    }
}

/// Memory the system allocated with `LocalAlloc`, freed on drop.
struct Local(HLOCAL);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a Win32 call documented to
            // allocate with LocalAlloc, and is freed exactly once, here.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn wide(s: &OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// The SID of the user this process runs as, in an aligned buffer.
fn current_user_sid() -> io::Result<Aligned> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no
    // closing; `token` is a valid place for the out handle.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: OpenProcessToken succeeded, so `token` is an open handle we
    // own; OwnedHandle closes it once.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    let mut len = 0u32;
    // SAFETY: a size query: a null buffer of length 0, `len` receives the
    // size needed (the call fails with ERROR_INSUFFICIENT_BUFFER).
    unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            std::ptr::null_mut(),
            0,
            &mut len,
        )
    };
    if len == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = Aligned::new(len as usize);
    // SAFETY: `buf` is writable, 8-byte aligned and at least `len` bytes.
    if unsafe {
        GetTokenInformation(
            token.as_raw_handle(),
            TokenUser,
            buf.ptr(),
            buf.bytes(),
            &mut len,
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose Sid
    // points into the same buffer, at a valid SID.
    let sid = unsafe { (*(buf.ptr() as *const TOKEN_USER)).User.Sid };
    // SAFETY: `sid` is a valid SID (above).
    let sid_len = unsafe { GetLengthSid(sid) } as usize;
    let mut out = Aligned::new(sid_len);
    // SAFETY: both regions are valid for `sid_len` bytes and do not
    // overlap (`out` is a fresh allocation).
    unsafe { std::ptr::copy_nonoverlapping(sid.cast::<u8>(), out.ptr().cast::<u8>(), sid_len) };
    Ok(out)
}

/// `S-1-5-21-…` for a SID.
fn sid_string(sid: PSID) -> io::Result<String> {
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `sid` is a valid SID; `text` receives a LocalAlloc'd string.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let _free = Local(text.cast());
    let mut n = 0usize;
    // SAFETY: the string is NUL-terminated; we read up to the NUL.
    while unsafe { *text.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` u16s from `text` are initialised (before the NUL).
    let units = unsafe { std::slice::from_raw_parts(text, n) };
    Ok(String::from_utf16_lossy(units))
}

/// Creates a new file, failing if the name exists (`CREATE_NEW`), with a
/// protected DACL granting full access to this user and SYSTEM only: no
/// inherited entry (a home under `C:\Users\Public`, say) ever applies.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    let mut user = current_user_sid()?;
    let sddl = format!("D:P(A;;FA;;;{})(A;;FA;;;SY)", sid_string(user.ptr())?);
    let sddl = wide(OsStr::new(&sddl));
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; `sd` receives a LocalAlloc'd
    // self-relative security descriptor.
    if unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        )
    } == 0
    {
        return Err(io::Error::last_os_error());
    }
    let _free = Local(sd);
    let attributes = SECURITY_ATTRIBUTES {
        nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: sd,
        bInheritHandle: 0,
    };
    let name = wide(path.as_os_str());
    // SAFETY: `name` is NUL-terminated, `attributes` and the descriptor it
    // points at live across the call; no template file.
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_WRITE | READ_CONTROL,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            &attributes,
            CREATE_NEW,
            FILE_ATTRIBUTE_NORMAL,
            std::ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE || handle.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CreateFileW succeeded: `handle` is an open file handle that
    // nothing else owns.
    Ok(unsafe { File::from_raw_handle(handle) })
}

/// ACE types that grant no access: access-denied (1, 6, 10, 12), audit
/// and alarm (2, 3, 7, 8, 13, 14, 15, 16), mandatory label (17), resource
/// attribute (18), scoped policy (19), process trust label (20), access
/// filter (21). Any other type that is not the plain or callback allow
/// entry counts as granting everyone everything.
const GRANTS_NOTHING: [u32; 17] = [1, 2, 3, 6, 7, 8, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21];

/// Rights that let someone read a file's contents.
const READ_RIGHTS: u32 = FILE_READ_DATA | GENERIC_READ | GENERIC_ALL;
/// Rights that let someone change a file or its protection.
const WRITE_RIGHTS: u32 = FILE_WRITE_DATA
    | FILE_APPEND_DATA
    | GENERIC_WRITE
    | GENERIC_ALL
    | WRITE_DAC
    | WRITE_OWNER
    | DELETE;

/// Owner and DACL of an open file, as [`Ownership`]: `mode` is 0o600 when
/// only this user, SYSTEM and the Administrators group are granted access,
/// with 0o044 added when anyone else may read it and 0o022 when anyone
/// else may change it (a NULL DACL grants everyone everything: 0o666).
pub fn file_ownership(file: &File) -> io::Result<Ownership> {
    let mut user = current_user_sid()?;
    let mut owner: PSID = std::ptr::null_mut();
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the handle is open (and was opened with read access, which
    // includes READ_CONTROL); the out pointers point into `sd`, which the
    // call allocates with LocalAlloc and we free below.
    let rc = unsafe {
        GetSecurityInfo(
            file.as_raw_handle(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    let _free = Local(sd);
    let owned_by_current_user = !owner.is_null()
        && (
            // SAFETY: both are valid SIDs.
            unsafe { EqualSid(owner, user.ptr()) } != 0 || owned_by_my_admins(owner)
        );
    let mut mode = 0o600;
    if dacl.is_null() {
        mode |= 0o066;
    } else {
        let mut info = ACL_SIZE_INFORMATION {
            AceCount: 0,
            AclBytesInUse: 0,
            AclBytesFree: 0,
        };
        // SAFETY: `dacl` is a valid ACL inside `sd`; `info` is the
        // structure AclSizeInformation fills.
        if unsafe {
            GetAclInformation(
                dacl,
                (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
                std::mem::size_of::<ACL_SIZE_INFORMATION>() as u32,
                AclSizeInformation,
            )
        } == 0
        {
            return Err(io::Error::last_os_error());
        }
        for i in 0..info.AceCount {
            let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
            // SAFETY: `i` is below the ACE count of a valid ACL.
            if unsafe { GetAce(dacl, i, &mut ace) } == 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: every ACE starts with an ACE_HEADER.
            let header = unsafe { *(ace as *const ACE_HEADER) };
            if u32::from(header.AceFlags) & INHERIT_ONLY_ACE != 0 {
                continue; // applies to children only, not to this file
            }
            let kind = u32::from(header.AceType);
            if kind != ACCESS_ALLOWED_ACE_TYPE && kind != ACCESS_ALLOWED_CALLBACK_ACE_TYPE {
                if GRANTS_NOTHING.contains(&kind) {
                    continue; // deny, audit, alarm, label and policy entries
                }
                // An allow entry of another layout (object, compound, …),
                // whose trustee is not read here: fail closed.
                mode |= 0o066;
                continue;
            }
            // SAFETY: an (callback) access-allowed ACE is an
            // ACCESS_ALLOWED_ACE with the SID starting at SidStart.
            let (mask, sid) = unsafe {
                let allowed = ace as *const ACCESS_ALLOWED_ACE;
                (
                    (*allowed).Mask,
                    std::ptr::addr_of!((*allowed).SidStart) as PSID,
                )
            };
            // SAFETY: `sid` is the valid SID of the ACE.
            let trusted = unsafe {
                EqualSid(sid, user.ptr()) != 0
                    || IsWellKnownSid(sid, WinLocalSystemSid) != 0
                    || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
            };
            if trusted {
                continue;
            }
            if mask & READ_RIGHTS != 0 {
                mode |= 0o044;
            }
            if mask & WRITE_RIGHTS != 0 {
                mode |= 0o022;
            }
        }
    }
    Ok(Ownership {
        mode,
        owner: None,
        owned_by_current_user,
    })
}

/// An elevated administrator's files are owned by the Administrators
/// group: that counts as ours when this process is one of them.
fn owned_by_my_admins(owner: PSID) -> bool {
    // SAFETY: `owner` is a valid SID.
    if unsafe { IsWellKnownSid(owner, WinBuiltinAdministratorsSid) } == 0 {
        return false;
    }
    let mut member = 0;
    // SAFETY: a null token means this thread's (or process's) token.
    let ok = unsafe { CheckTokenMembership(std::ptr::null_mut(), owner, &mut member) };
    ok != 0 && member != 0
}

/// The console input mode before [`secret_input_mode`], with its handle.
pub struct SavedTermios {
    handle: HANDLE,
    mode: CONSOLE_MODE,
}

/// On a console: echo, line editing and Ctrl-C processing off (so Ctrl-C
/// arrives as a byte and the mode is always restored), typed-ahead input
/// discarded. `None` when standard input is not a console (a pipe, a file).
pub fn secret_input_mode() -> io::Result<Option<SavedTermios>> {
    // SAFETY: no arguments beyond a constant; the handle is not owned.
    let handle = unsafe { GetStdHandle(STD_INPUT_HANDLE) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Ok(None);
    }
    let mut mode: CONSOLE_MODE = 0;
    // SAFETY: `mode` is a valid out place; a non-console handle fails.
    if unsafe { GetConsoleMode(handle, &mut mode) } == 0 {
        return Ok(None);
    }
    let secret = mode & !(ENABLE_ECHO_INPUT | ENABLE_LINE_INPUT | ENABLE_PROCESSED_INPUT);
    // SAFETY: `handle` is the console input handle (GetConsoleMode
    // accepted it).
    unsafe { FlushConsoleInputBuffer(handle) };
    // SAFETY: as above.
    if unsafe { SetConsoleMode(handle, secret) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(SavedTermios { handle, mode }))
}

/// Discards input still pending (the rest of a wrapped paste), then puts
/// the console mode back.
pub fn restore_termios(saved: SavedTermios) {
    // SAFETY: the handle is the console input handle of this process,
    // which stays open for its lifetime.
    unsafe {
        FlushConsoleInputBuffer(saved.handle);
        SetConsoleMode(saved.handle, saved.mode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn created_files_grant_only_this_user_and_are_exclusive() {
        let dir = std::env::temp_dir().join(format!("cs-plat-win-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        let mut f = create_new_private(&p).unwrap();
        f.write_all(b"x").unwrap();
        drop(f);
        let own = file_ownership(&File::open(&p).unwrap()).unwrap();
        assert_eq!(own.mode, 0o600, "{own:?}");
        assert!(own.owned_by_current_user, "{own:?}");
        assert!(
            create_new_private(&p).is_err(),
            "CREATE_NEW must refuse an existing name"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
