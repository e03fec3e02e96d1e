//! Reading a credential from standard input, the way `login` does: one
//! line with echo off from a terminal, everything up to EOF from a pipe; at
//! most 64 KiB either way, into a zeroized buffer allocated once, straight
//! from file descriptor 0 (no process-wide buffer keeps a copy).

use crate::credential::{AuthMode, Credential};
use crate::error::{Error, Result};
use crate::secret::{read_bounded, read_bounded_line, ReadError};
use std::io::Write;
use zeroize::Zeroizing;

/// Reads the secret bytes from stdin (prompting on stderr when it is a
/// terminal).
pub fn read_secret_from_stdin(mode: AuthMode) -> Result<Zeroizing<Vec<u8>>> {
    let mut stdin = credstore_platform::RawStdin;
    let result = if credstore_platform::stdin_is_terminal() {
        eprint!(
            "Paste the {} and press Enter (input is hidden): ",
            mode.describe()
        );
        let _ = std::io::stderr().flush();
        let _echo = credstore_platform::disable_stdin_echo()
            .map_err(|e| Error::io("turning off echo on", "the terminal", e))?;
        read_bounded_line(&mut stdin)
    } else {
        read_bounded(&mut stdin)
    };
    match result {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge) => Err(Error::InvalidCredential {
            kind: mode.describe(),
            origin: "stdin".into(),
            reason: "the input is larger than 64 KiB; reading stopped there".into(),
        }),
        Err(ReadError::Io(e)) => Err(Error::io("reading", "stdin", e)),
    }
}

/// Reads and validates a credential of kind `mode` from stdin. Expiry is
/// not checked here.
pub fn credential_from_stdin(mode: AuthMode) -> Result<Credential> {
    let input = read_secret_from_stdin(mode)?;
    Credential::parse(mode, &input, "stdin")
}
