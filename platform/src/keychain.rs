//! The OS keychain of each target, behind one small, `cfg`-free interface:
//!
//! | target | store | per-entry limit |
//! |---|---|---|
//! | Linux, BSD (not macOS) | Secret Service over D-Bus (gnome-keyring, KWallet, KeePassXC) via `zbus-secret-service-keyring-store` | none |
//! | macOS | Keychain Services via `apple-native-keyring-store` | none |
//! | Windows | Credential Manager via `windows-native-keyring-store` | 2560 bytes of UTF-16 |
//! | anything else | none: [`open_store`] reports the keychain as not there | — |
//!
//! Only the Linux store is built and tested by this project's CI; the macOS
//! and Windows arms follow the store crates' documented constructors.
//!
//! The store crates all speak `keyring-core`, re-exported here so the main
//! crate uses the same version without naming a platform.

pub use keyring_core;

use keyring_core::api::CredentialStore;
use std::sync::Arc;

/// How the main crate should treat a keychain error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The keychain is not there at all (no D-Bus session bus, no Secret
    /// Service on it and none that can be started, no platform store).
    /// The text says what is missing.
    NotThere(String),
    /// The keychain is there but refused access: locked, or an unlock
    /// prompt was dismissed or could not be shown.
    AccessDenied,
    /// Anything else; a fresh connection may cure it (the daemon restarted
    /// and the old session is gone).
    Other,
}

/// Whether the keychain's default collection can take a new entry without
/// a prompt. Only the Secret Service has collections that can be locked
/// apart from the login session; elsewhere the answer is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The default collection exists and is unlocked.
    Ready,
    /// The default collection is locked.
    Locked,
    /// There is no default collection (on gnome-keyring: the login keyring
    /// was never created, e.g. because it was unlocked with an empty
    /// password).
    NoDefaultCollection,
    /// The platform does not tell.
    Unknown,
}

/// Checks the default collection on a new connection, without prompting.
/// May block (a frozen daemon): callers bound it with a deadline.
pub fn readiness() -> keyring_core::Result<Readiness> {
    imp::readiness()
}

/// The name of this platform's keychain, for messages.
pub fn store_name() -> &'static str {
    imp::STORE_NAME
}

/// The largest value one keychain entry holds on this platform, in bytes of
/// UTF-8 text, or `None` when there is no limit a credential could reach.
/// (Windows: 2560 bytes of UTF-16; every UTF-8 byte is at most one UTF-16
/// unit, so 1280 UTF-8 bytes always fit.)
pub fn max_entry_len() -> Option<usize> {
    imp::MAX_ENTRY_LEN
}

/// Opens a new connection to this platform's keychain. Each call makes a
/// new connection (on Linux a new D-Bus connection and Secret Service
/// session), so a caller can recover after the daemon restarted.
///
/// This may block (a frozen daemon): callers bound it with a deadline.
pub fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
    imp::open_store()
}

/// Classifies an error from [`open_store`] or from an entry operation.
pub fn classify(err: &keyring_core::Error) -> Failure {
    use keyring_core::Error as E;
    match err {
        E::NoStorageAccess(_) => Failure::AccessDenied,
        E::NoDefaultStore => Failure::NotThere(format!("no {} on this system", store_name())),
        E::PlatformFailure(inner) => imp::classify_platform(inner.as_ref()),
        _ => Failure::Other,
    }
}

#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
mod imp {
    use super::Failure;
    use keyring_core::api::CredentialStore;
    use std::sync::Arc;

    pub const STORE_NAME: &str = "Secret Service";
    pub const MAX_ENTRY_LEN: Option<usize> = None;

    pub fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
        let store: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
        Ok(store)
    }

    pub fn readiness() -> keyring_core::Result<super::Readiness> {
        use super::Readiness;
        use secret_service::blocking::SecretService;
        use secret_service::{EncryptionType, Error as SsError};
        let wrap = |e: SsError| keyring_core::Error::PlatformFailure(Box::new(e));
        // No secret moves on this connection, so no encryption is needed.
        let ss = SecretService::connect(EncryptionType::Plain).map_err(wrap)?;
        let state = match ss.get_default_collection() {
            Ok(c) => {
                if c.is_locked().map_err(wrap)? {
                    Readiness::Locked
                } else {
                    Readiness::Ready
                }
            }
            Err(SsError::NoResult) => Readiness::NoDefaultCollection,
            Err(e) => return Err(wrap(e)),
        };
        Ok(state)
    }

    const NO_SERVICE: &str = "the D-Bus session bus has no Secret Service \
        (org.freedesktop.secrets) and cannot start one; install or start gnome-keyring, \
        KWallet or KeePassXC";

    fn no_bus(detail: &str) -> Failure {
        Failure::NotThere(format!(
            "no D-Bus session bus could be reached ({detail}); DBUS_SESSION_BUS_ADDRESS, or \
             else $XDG_RUNTIME_DIR/bus, must name a running one"
        ))
    }

    fn classify_zbus(err: &zbus::Error) -> Failure {
        match err {
            zbus::Error::Address(_) => no_bus("no usable bus address"),
            zbus::Error::Connection(io, address) if is_missing(io.kind()) => {
                no_bus(&format!("connecting to {address}: {io}"))
            }
            zbus::Error::InputOutput(io) if is_missing(io.kind()) => no_bus(&io.to_string()),
            zbus::Error::MethodError(name, _, _) if is_service_unknown(name.as_str()) => {
                Failure::NotThere(NO_SERVICE.into())
            }
            zbus::Error::FDO(fdo) => classify_fdo(fdo),
            _ => Failure::Other,
        }
    }

    fn is_missing(kind: std::io::ErrorKind) -> bool {
        use std::io::ErrorKind;
        matches!(
            kind,
            ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::PermissionDenied
        )
    }

    fn classify_fdo(err: &zbus::fdo::Error) -> Failure {
        match err {
            zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
                Failure::NotThere(NO_SERVICE.into())
            }
            zbus::fdo::Error::ZBus(inner) => classify_zbus(inner),
            _ => Failure::Other,
        }
    }

    fn is_service_unknown(name: &str) -> bool {
        matches!(
            name,
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
        )
    }

    pub fn classify_platform(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
        use secret_service::Error as SsError;
        let Some(ss) = err.downcast_ref::<SsError>() else {
            return Failure::Other;
        };
        match ss {
            // The crate's name for "no session bus": connecting found no
            // address or no socket.
            SsError::Unavailable => no_bus("nothing listens at the session bus address"),
            SsError::Locked | SsError::Prompt => Failure::AccessDenied,
            SsError::Zbus(z) => classify_zbus(z),
            SsError::ZbusFdo(f) => classify_fdo(f),
            _ => Failure::Other,
        }
    }
}

#[cfg(target_os = "macos")]
mod imp {
    //! Untested here: only Linux is built by this project's CI.
    use super::Failure;
    use keyring_core::api::CredentialStore;
    use std::sync::Arc;

    pub const STORE_NAME: &str = "macOS Keychain";
    pub const MAX_ENTRY_LEN: Option<usize> = None;

    pub fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
        let store: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()?;
        Ok(store)
    }

    pub fn classify_platform(_err: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
        Failure::Other
    }

    pub fn readiness() -> keyring_core::Result<super::Readiness> {
        Ok(super::Readiness::Unknown)
    }
}

#[cfg(target_os = "windows")]
mod imp {
    //! Untested here: only Linux is built by this project's CI.
    use super::Failure;
    use keyring_core::api::CredentialStore;
    use std::sync::Arc;

    pub const STORE_NAME: &str = "Windows Credential Manager";
    /// CRED_MAX_CREDENTIAL_BLOB_SIZE is 2560 bytes; passwords are stored as
    /// UTF-16, and a UTF-8 byte never becomes more than one UTF-16 unit.
    pub const MAX_ENTRY_LEN: Option<usize> = Some(1280);

    pub fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
        let store: Arc<CredentialStore> = windows_native_keyring_store::Store::new()?;
        Ok(store)
    }

    pub fn classify_platform(_err: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
        Failure::Other
    }

    pub fn readiness() -> keyring_core::Result<super::Readiness> {
        Ok(super::Readiness::Unknown)
    }
}

#[cfg(not(any(
    all(
        unix,
        not(any(target_os = "macos", target_os = "ios", target_os = "android"))
    ),
    target_os = "macos",
    target_os = "windows"
)))]
mod imp {
    use super::Failure;
    use keyring_core::api::CredentialStore;
    use std::sync::Arc;

    pub const STORE_NAME: &str = "OS keychain";
    pub const MAX_ENTRY_LEN: Option<usize> = None;

    pub fn open_store() -> keyring_core::Result<Arc<CredentialStore>> {
        Err(keyring_core::Error::NoDefaultStore)
    }

    pub fn classify_platform(_err: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
        Failure::Other
    }

    pub fn readiness() -> keyring_core::Result<super::Readiness> {
        Ok(super::Readiness::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_errors_are_not_missing_entries() {
        let locked = keyring_core::Error::NoStorageAccess("locked".into());
        assert_eq!(classify(&locked), Failure::AccessDenied);
        assert_eq!(classify(&keyring_core::Error::NoEntry), Failure::Other);
        assert!(matches!(
            classify(&keyring_core::Error::NoDefaultStore),
            Failure::NotThere(_)
        ));
    }

    #[cfg(all(
        unix,
        not(any(target_os = "macos", target_os = "ios", target_os = "android"))
    ))]
    #[test]
    fn secret_service_errors_are_classified() {
        let wrap = |e: secret_service::Error| keyring_core::Error::PlatformFailure(Box::new(e));
        assert!(matches!(
            classify(&wrap(secret_service::Error::Unavailable)),
            Failure::NotThere(_)
        ));
        assert_eq!(
            classify(&wrap(secret_service::Error::Prompt)),
            Failure::AccessDenied
        );
        assert_eq!(
            classify(&wrap(secret_service::Error::Crypto("x"))),
            Failure::Other
        );
    }
}
