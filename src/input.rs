//! Reading a credential from standard input, the way `login` does.
//!
//! - From a pipe or file: everything up to EOF.
//! - From a terminal: one line, with echo, line editing and signal keys off
//!   (non-canonical mode), so a long paste is not cut at the kernel's
//!   4095-byte line limit and Ctrl-C cannot leave the terminal without echo.
//!   A paste that spans more than one line is refused (nothing is stored),
//!   and whatever is still pending on the terminal is discarded before the
//!   terminal is restored, so the shell never runs the rest of a paste.
//!
//! Either way at most 64 KiB, into a zeroized buffer allocated once, straight
//! from file descriptor 0 (no process-wide buffer keeps a copy).

use crate::credential::{AuthMode, Credential};
use crate::error::{Error, Result};
use crate::secret::{read_bounded, ReadError, READ_LIMIT};
use std::io::{Read, Write};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long after Enter more pasted input may still arrive: a terminal
/// delivers one paste within a few milliseconds.
const PASTE_SETTLE: Duration = Duration::from_millis(100);

/// Reads the secret bytes from stdin (prompting on stderr when it is a
/// terminal).
pub fn read_secret_from_stdin(mode: AuthMode) -> Result<Zeroizing<Vec<u8>>> {
    let mut stdin = credstore_platform::RawStdin;
    if credstore_platform::stdin_is_terminal() {
        return read_from_terminal(mode, &mut stdin);
    }
    match read_bounded(&mut stdin) {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge) => Err(too_large(mode)),
        Err(ReadError::Io(e)) => Err(Error::io("reading", "stdin", e)),
    }
}

fn too_large(mode: AuthMode) -> Error {
    Error::InvalidCredential {
        kind: mode.describe(),
        origin: "stdin".into(),
        reason: "the input is larger than 64 KiB; reading stopped there".into(),
    }
}

/// What one key (byte) typed or pasted at the hidden prompt does.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// Part of the secret.
    Byte(u8),
    /// Enter.
    End,
    /// Delete the last byte.
    Erase,
    /// Delete everything typed so far (Ctrl-U).
    Kill,
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D: end of input.
    EndOfFile,
}

fn key(byte: u8) -> Key {
    match byte {
        b'\r' | b'\n' => Key::End,
        0x7f | 0x08 => Key::Erase,
        0x15 => Key::Kill,
        0x03 => Key::Interrupt,
        0x04 => Key::EndOfFile,
        b => Key::Byte(b),
    }
}

/// The line editor of the hidden prompt, apart from the terminal so it
/// can be tested with any byte stream.
fn read_hidden_line(
    mode: AuthMode,
    input: &mut dyn Read,
    more_pending: &mut dyn FnMut() -> bool,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; READ_LIMIT]);
    let mut len = 0usize;
    let mut byte = [0u8; 1];
    loop {
        let n = match input.read(&mut byte) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", "the terminal", e)),
        };
        if n == 0 {
            // The terminal went away: what was typed may be incomplete.
            return Err(Error::NoCredential(
                "the terminal closed before Enter; nothing was stored".into(),
            ));
        }
        match key(byte[0]) {
            Key::Byte(b) => {
                if len == buf.len() {
                    return Err(too_large(mode));
                }
                buf[len] = b;
                len += 1;
            }
            Key::Erase => len = len.saturating_sub(1),
            Key::Kill => len = 0,
            Key::Interrupt => {
                return Err(Error::NoCredential("cancelled; nothing was stored".into()))
            }
            Key::EndOfFile if len == 0 => {
                return Err(Error::NoCredential(
                    "no input (Ctrl-D); nothing was stored".into(),
                ))
            }
            Key::EndOfFile => break,
            Key::End if len == 0 => continue,
            Key::End => break,
        }
    }
    // What arrives right after Enter: more text is a paste with a line
    // break in it (the first line alone is not the credential, and joining
    // lines would guess); more line ends or an EOF (Ctrl-D, or a terminal
    // program closing its input) are not. Read and dropped either way.
    let mut more_text = false;
    let mut drained = 0usize;
    while drained < READ_LIMIT && more_pending() {
        match input.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                drained += 1;
                if !matches!(byte[0], b'\r' | b'\n' | 0x04 | b' ' | b'\t') {
                    more_text = true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if more_text {
        return Err(Error::InvalidCredential {
            kind: mode.describe(),
            origin: "stdin".into(),
            reason: "the paste spans more than one line; nothing was stored and the rest \
                     of it was discarded. Copy the token as one line, or send it from a \
                     file on standard input"
                .into(),
        });
    }
    let mut exact = Zeroizing::new(vec![0u8; len]);
    exact.copy_from_slice(&buf[..len]);
    Ok(exact)
}

fn read_from_terminal(mode: AuthMode, stdin: &mut dyn Read) -> Result<Zeroizing<Vec<u8>>> {
    // The terminal mode changes before the prompt appears, so nothing typed
    // after the prompt is shown; it is restored (pending input discarded
    // first) when `_mode` drops, on every path out of here.
    let _mode = credstore_platform::secret_input_mode()
        .map_err(|e| Error::io("preparing", "the terminal", e))?;
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "Paste the {} and press Enter (input is hidden): ",
        mode.describe()
    );
    let _ = stderr.flush();
    let mut pending = || credstore_platform::stdin_has_input(PASTE_SETTLE).unwrap_or(false);
    let result = read_hidden_line(mode, stdin, &mut pending);
    // The cursor is still after the prompt.
    let _ = writeln!(stderr);
    result
}

/// Reads and validates a credential of kind `mode` from stdin. Expiry is
/// not checked here.
pub fn credential_from_stdin(mode: AuthMode) -> Result<Credential> {
    let input = read_secret_from_stdin(mode)?;
    Credential::parse(mode, &input, "stdin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8], pending: bool) -> Result<Zeroizing<Vec<u8>>> {
        let mut input = bytes;
        read_hidden_line(AuthMode::ApiKey, &mut input, &mut || pending)
    }

    #[test]
    fn a_line_longer_than_the_kernel_limit_is_read_whole() {
        let mut line = vec![b'a'; 4097];
        line.push(b'\r');
        let got = run(&line, false).unwrap();
        assert_eq!(got.len(), 4097);
    }

    #[test]
    fn editing_keys_apply() {
        let got = run(b"abX\x7fc\r", false).unwrap();
        assert_eq!(&got[..], b"abc");
        let got = run(b"junk\x15key\n", false).unwrap();
        assert_eq!(&got[..], b"key");
    }

    #[test]
    fn a_multi_line_paste_is_refused() {
        let err = run(b"first-half\rsecond-half\r", true).unwrap_err();
        assert!(err.to_string().contains("more than one line"), "{err}");
        assert!(!err.to_string().contains("first-half"));
        assert!(!err.to_string().contains("second-half"));
    }

    #[test]
    fn line_ends_or_an_eof_after_enter_are_not_a_second_line() {
        assert_eq!(&run(b"key\r\n", true).unwrap()[..], b"key");
        assert_eq!(&run(b"key\r\x04", true).unwrap()[..], b"key");
        assert_eq!(&run(b"key\r\r\n \t", true).unwrap()[..], b"key");
    }

    #[test]
    fn interrupt_and_eof_cancel() {
        assert!(matches!(
            run(b"abc\x03", false),
            Err(Error::NoCredential(_))
        ));
        assert!(matches!(run(b"\x04", false), Err(Error::NoCredential(_))));
        assert!(matches!(run(b"abc", false), Err(Error::NoCredential(_))));
        assert_eq!(&run(b"abc\x04", false).unwrap()[..], b"abc");
    }

    #[test]
    fn over_the_limit_is_refused_not_cut() {
        let line = vec![b'a'; READ_LIMIT + 10];
        assert!(matches!(
            run(&line, false),
            Err(Error::InvalidCredential { .. })
        ));
    }
}
