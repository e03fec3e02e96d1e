//! Small helpers for holding secret bytes without leaving copies behind:
//! exact-size allocations (a growing `String`/`Vec` leaves its old buffer
//! behind on reallocation) and bounded reads into pre-sized, zeroized buffers.

use secrecy::SecretString;
use std::io::{self, Read};
use zeroize::Zeroizing;

/// Reading stops here: an endless stdin or file cannot exhaust memory.
pub const READ_LIMIT: usize = 64 * 1024;

/// Makes a `SecretString` from `s` with exactly one allocation of `s.len()`
/// bytes (no growth, so no stale copy is left on the heap).
pub fn secret_string(s: &str) -> SecretString {
    SecretString::from(Box::<str>::from(s))
}

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The input is longer than the limit; reading stopped there.
    TooLarge,
    /// The underlying read failed.
    Io(io::Error),
}

/// Reads all of `reader` into a zeroized buffer allocated once, refusing
/// input longer than [`READ_LIMIT`]. Stops reading at the limit.
pub fn read_bounded(reader: &mut dyn Read) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_bounded_until(reader, None)
}

/// Reads a file named by configuration (a `_FILE` variable, a JWKS, a CA
/// file, a Vault token file) into a zeroized buffer: symlinks are followed,
/// but a FIFO, device, socket or directory is refused at once (never a
/// read that blocks forever), and reading stops at [`READ_LIMIT`].
pub fn read_config_file(path: &std::path::Path) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let mut file = credstore_platform::open_regular_file(path).map_err(ReadError::Io)?;
    read_bounded(&mut file)
}

/// Like [`read_bounded`], but also stops after the first newline (for a
/// terminal, where the user ends the paste with Enter).
pub fn read_bounded_line(reader: &mut dyn Read) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    read_bounded_until(reader, Some(b'\n'))
}

fn read_bounded_until(
    reader: &mut dyn Read,
    stop: Option<u8>,
) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    // One allocation, one byte past the limit so "exactly at the limit" and
    // "over the limit" can be told apart; never resized.
    let mut buf = Zeroizing::new(vec![0u8; READ_LIMIT + 1]);
    let mut len = 0;
    loop {
        if len > READ_LIMIT {
            return Err(ReadError::TooLarge);
        }
        let chunk_end = match stop {
            // Byte at a time for a terminal line: a paste is small and this
            // never reads past the newline.
            Some(_) => len + 1,
            None => buf.len(),
        };
        match reader.read(&mut buf[len..chunk_end]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if let Some(s) = stop {
                    if buf[len - 1] == s {
                        break;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    if len > READ_LIMIT {
        return Err(ReadError::TooLarge);
    }
    // Zero the unused tail before shrinking the length (truncate keeps the
    // allocation; the Zeroizing wrapper wipes all of it on drop anyway).
    buf.truncate(len);
    Ok(buf)
}

/// Overwrites the stack below the caller with zeros.
///
/// Parsing and signing move key bytes through stack temporaries (a
/// `SigningKey` built before it is boxed, hash state while signing) that no
/// destructor wipes. Calling this after such work, from the function that
/// called the work, overwrites that part of the stack.
#[inline(never)]
pub fn scrub_stack() {
    let mut area = [0u8; 64 * 1024];
    std::hint::black_box(&mut area);
}

/// Runs `work` in its own stack frame, then overwrites the stack it used
/// ([`scrub_stack`]). For every library entry point that handles key bytes:
/// parsing a key, signing, deriving the X25519 key.
pub fn with_stack_scrub<T>(work: impl FnOnce() -> T) -> T {
    let out = run_in_own_frame(work);
    scrub_stack();
    out
}

#[inline(never)]
fn run_in_own_frame<T>(work: impl FnOnce() -> T) -> T {
    work()
}

/// The UTF-8 byte-order mark some editors put at the start of a file.
pub const UTF8_BOM: &[u8] = "\u{feff}".as_bytes();

/// How every credential input is trimmed (SPEC §1.1, §1.2, §2): a leading
/// byte-order mark (an encoding artifact of the file it came from) is
/// dropped, then ASCII whitespace (a trailing newline) at both ends.
pub fn trim_input(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes).trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_read_accepts_limit_and_refuses_more() {
        let data = vec![b'a'; READ_LIMIT];
        let got = read_bounded(&mut &data[..]).unwrap();
        assert_eq!(got.len(), READ_LIMIT);
        let data = vec![b'a'; READ_LIMIT + 1];
        assert!(matches!(
            read_bounded(&mut &data[..]),
            Err(ReadError::TooLarge)
        ));
    }

    #[test]
    fn bounded_read_stops_on_endless_input() {
        let mut endless = std::io::repeat(b'x');
        assert!(matches!(
            read_bounded(&mut endless),
            Err(ReadError::TooLarge)
        ));
    }

    #[test]
    fn line_read_stops_at_newline() {
        let data = b"abc\ndef";
        let mut r = &data[..];
        let got = read_bounded_line(&mut r).unwrap();
        assert_eq!(&got[..], b"abc\n");
        assert_eq!(r, b"def");
    }

    #[test]
    fn secret_string_allocates_exactly() {
        use secrecy::ExposeSecret;
        let s = secret_string("abc");
        assert_eq!(s.expose_secret(), "abc");
        assert!(!format!("{s:?}").contains("abc"));
    }
}
