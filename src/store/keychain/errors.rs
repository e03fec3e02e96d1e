//! Platform errors turned into credstore's, with what to do about them.

use super::BACKEND;
use crate::error::Error;
use credstore_platform::keychain::keyring_core;
use credstore_platform::keychain::{self as platform, Failure};

/// Turns a platform error into credstore's, saying what to do. Never
/// formats the error's `Debug` (some variants carry secret bytes).
pub(super) fn map_error(err: &keyring_core::Error, action: &str) -> Error {
    let name = platform::store_name();
    match platform::classify(err) {
        Failure::NotThere(what) => Error::BackendUnavailable {
            backend: BACKEND,
            reason: what,
            hint: "Use the file backend to keep the credential in a 0600 file instead, or \
                   start a keychain service."
                .into(),
        },
        Failure::AccessDenied => Error::Backend {
            backend: BACKEND,
            message: format!(
                "the {name} refused access while {action} it: the keyring is locked, or its \
                 unlock prompt was dismissed or could not be shown ({}). Unlock it (log in to \
                 the desktop session, or run `gnome-keyring-daemon --unlock` on Linux) and \
                 retry. Nothing was read or changed",
                platform_detail(err)
            ),
        },
        Failure::Other => match err {
            keyring_core::Error::Ambiguous(entries) => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the {name} holds {} entries that match this profile; remove the extra \
                     ones (Linux: `secret-tool clear service <service> username <profile>`) \
                     and log in again",
                    entries.len()
                ),
            },
            keyring_core::Error::TooLong(what, limit) => Error::Backend {
                backend: BACKEND,
                message: format!("the {name} refused a value: {what} is over its limit of {limit}"),
            },
            _ => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the {name} failed while {action} it: {}",
                    platform_detail(err)
                ),
            },
        },
    }
}

/// The platform error's own text: D-Bus error names and messages, never
/// secret bytes (those variants are not formatted).
fn platform_detail(err: &keyring_core::Error) -> String {
    use keyring_core::Error as E;
    match err {
        E::PlatformFailure(e) | E::NoStorageAccess(e) => e.to_string(),
        E::BadEncoding(_) | E::BadDataFormat(..) => "the stored value is malformed".into(),
        E::Ambiguous(v) => format!("{} matching entries", v.len()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::profile;
    use super::super::{KeychainOptions, KeychainStore};
    use super::*;
    use crate::store::Store;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_missing_keychain_is_unavailable_at_once() {
        let store = KeychainStore::with_connector(
            KeychainOptions::new(),
            Arc::new(|| Err(keyring_core::Error::NoDefaultStore)),
        );
        let start = Instant::now();
        let err = store.load(&profile("default")).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(matches!(err, Error::BackendUnavailable { .. }), "{err}");
        assert!(err.to_string().contains("the file backend"), "{err}");
        assert!(!err.to_string().contains("--backend"), "{err}");
        assert!(store.probe().is_err());
    }
}
