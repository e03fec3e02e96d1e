//! The command-line advice the library leaves out of its messages: the
//! library never names a command or flag (an embedder shows its errors and
//! findings to its own users), so the CLI adds which `credstore` command or
//! flag fixes each, by kind.

use credstore::health::{Expiry, Finding};
use credstore::Error;

/// Advice for an error, as a sentence to append.
pub fn error(e: &Error) -> Option<&'static str> {
    match e {
        // An expired identity from a variable is replaced in the variable
        // (the library's message names it); a stored one by logging in.
        Error::Expired { origin, .. } if !is_variable_name(origin) => {
            Some("Store the new one with `credstore login --with-agent-identity` (token on stdin).")
        }
        Error::AgentIdentityAsApiKey { origin, .. } if !is_variable_name(origin) => {
            Some("Log in with `credstore login --with-agent-identity` (token on stdin).")
        }
        Error::SealKey { .. } => Some(
            "(A new key: `credstore seal keygen --out FILE` writes an identity file, kept outside \
             the credential directory; `credstore seal init` keeps one in systemd-creds.)",
        ),
        Error::MissingTaskId { .. }
        | Error::Agent {
            kind: credstore::ErrorKind::MissingTaskId,
            ..
        } => Some("Pass --task-id ID (get one with `credstore register-task`)."),
        _ => None,
    }
}

/// Advice for a `status` or `doctor` finding, as text to append (empty
/// when the finding says all there is). `from_env`: the active credential
/// came from a variable, so logging in would not replace it.
pub fn finding(f: &Finding, from_env: bool) -> &'static str {
    match f {
        Finding::PlaintextActive { .. } => " — prefer --backend keychain on a desktop",
        Finding::PlaintextFileExists { .. } => {
            "; `credstore migrate --to keychain --from file` moves it into the keychain where \
             there is one (on a server without one, `--to sealed` encrypts it)"
        }
        Finding::AutoWithoutKeychain { .. } => {
            "; choose explicitly with --backend file or run a keychain service"
        }
        Finding::Expiry(Expiry::Expired { .. }) | Finding::ActiveExpired { .. } if !from_env => {
            " (store the new one with `credstore login --with-agent-identity`)"
        }
        _ => "",
    }
}

/// Whether a credential's origin is an environment variable's name.
fn is_variable_name(origin: &str) -> bool {
    !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
