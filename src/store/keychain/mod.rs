//! The OS keychain backend (SPEC §4.2): service `credstore` (a parameter for
//! embedding programs), account = profile, value = the stored document.
//!
//! The platform store comes from `credstore-platform` (Secret Service on
//! Linux, Keychain Services on macOS, Credential Manager on Windows), all
//! speaking `keyring-core`. What this module adds on top:
//!
//! - **A deadline on every operation.** The platform call runs on a worker
//!   thread; the caller waits at most the configured timeout
//!   (`{PREFIX}_KEYCHAIN_TIMEOUT`, default 10 s) and gets
//!   [`Error::Timeout`]. A frozen daemon cannot hang the process. A worker
//!   that outlives its deadline is told to stop before any further write.
//! - **"Not there" is told apart from "refused".** No session bus, no Secret
//!   Service: [`Error::BackendUnavailable`] at once, offering the file
//!   backend. Locked or access denied: an [`Error::Backend`] that says so. A
//!   failed read is never "nothing stored", and nothing is deleted because a
//!   read failed.
//! - **Recovery.** Each failure other than a refusal drops the connection and
//!   retries once on a fresh one, so a long-running process survives a
//!   daemon restart ("no session" on the old connection).
//! - **Read-back.** After a save the value is read back and compared.
//! - **Split values.** A document longer than the platform's per-entry limit
//!   is written as parts plus a manifest (see [`split`](self#split-values)).
//!
//! # Split values
//!
//! When the document is longer than `max_entry_len`, the parts go to
//! accounts `<profile>:split:<generation>:<i>` first, and only then the
//! profile's own entry is replaced by a one-line manifest
//! `credstore-split/1 generation=<g> parts=<n> len=<bytes> sha256=<hex>`.
//! Replacing that one entry is the commit point: a crash before it leaves
//! the previous credential readable (its parts have another generation and
//! are untouched); a crash after it leaves the new one. On read the parts
//! are joined and checked against length and SHA-256: a missing or changed
//! part is a corrupt store, never a half credential. Parts of older
//! generations are removed after a successful save. Profile names cannot
//! contain `:`, so part accounts never collide with a profile.
//!
//! # Layout
//!
//! - this file: [`KeychainStore`] and its [`Store`] implementation;
//! - `options`: [`KeychainOptions`] and the defaults;
//! - `worker`: the deadline worker thread, reconnection, and the calls on
//!   one entry;
//! - `split`: the split-value protocol;
//! - `errors`: platform errors in credstore's words, with what to do.

mod errors;
#[cfg(test)]
mod fake;
mod options;
mod split;
mod worker;

pub use options::{KeychainOptions, DEFAULT_SERVICE, DEFAULT_TIMEOUT, MIN_ENTRY_LEN};

use self::worker::OpError;
use super::{Found, Location, SourceKind, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use credstore_platform::keychain::keyring_core::api::CredentialStore;
use credstore_platform::keychain::{self as platform, Readiness};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

const BACKEND: &str = "keychain";

/// The `keyring-core` crate the platform stores implement, for embedding
/// programs that bring their own store (see [`KeychainStore::with_connector`]).
pub use credstore_platform::keychain::keyring_core;

/// Opens a new connection to this platform's keychain: the default
/// [`Connector`].
pub fn open_native_store() -> keyring_core::Result<Arc<CredentialStore>> {
    platform::open_store()
}

/// Opens a connection to a keychain. Called again after a failure, so it
/// must make a new connection each time.
pub type Connector = Arc<dyn Fn() -> keyring_core::Result<Arc<CredentialStore>> + Send + Sync>;

/// The OS keychain (SPEC §4.2). Cheap to share across threads; keeps one
/// connection and rebuilds it after a failure.
pub struct KeychainStore {
    inner: Arc<Inner>,
    /// Whether `connector` is the platform's own store, whose default
    /// collection [`KeychainStore::probe`] can check.
    native: bool,
}

struct Inner {
    options: KeychainOptions,
    connector: Connector,
    connection: Mutex<Option<Arc<CredentialStore>>>,
}

impl std::fmt::Debug for KeychainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeychainStore")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl KeychainStore {
    /// This platform's keychain with `options`.
    pub fn new(options: KeychainOptions) -> KeychainStore {
        KeychainStore {
            native: true,
            ..KeychainStore::with_connector(options, Arc::new(open_native_store))
        }
    }

    /// A keychain reached through `connector` (another `keyring-core`
    /// store, or a test double). `connector` is called again after a
    /// failure and must return a new connection each time.
    pub fn with_connector(options: KeychainOptions, connector: Connector) -> KeychainStore {
        KeychainStore {
            inner: Arc::new(Inner {
                options,
                connector,
                connection: Mutex::new(None),
            }),
            native: false,
        }
    }

    /// Whether [`KeychainStore::probe`] also asks the platform's own keychain
    /// whether its default collection is there and unlocked. On for
    /// [`KeychainStore::new`]; turn it on for a connector that wraps the
    /// platform store.
    pub fn with_platform_checks(mut self, on: bool) -> KeychainStore {
        self.native = on;
        self
    }

    /// The settings in use.
    pub fn options(&self) -> &KeychainOptions {
        &self.inner.options
    }

    /// The name of this platform's keychain ("Secret Service", …).
    pub fn platform_name() -> &'static str {
        platform::store_name()
    }

    /// Checks that the keychain answers and could take a credential:
    /// connects (or reuses the connection), looks up an entry that is never
    /// written and, for the platform's own store, checks that its default
    /// collection exists and is unlocked. Writes nothing and never prompts.
    /// `Ok` means usable; the error says why not.
    pub fn probe(&self) -> Result<()> {
        let native = self.native;
        self.run("checking the keychain".into(), move |ctx| {
            ctx.read_entry("credstore-probe:never-written")?;
            if !native {
                return Ok(());
            }
            let name = platform::store_name();
            match platform::readiness()? {
                Readiness::Ready | Readiness::Unknown => Ok(()),
                Readiness::Locked => Err(OpError::Done(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the {name}'s default collection is locked; unlock it (log in to the \
                         desktop session, or run `gnome-keyring-daemon --unlock` on Linux) \
                         and retry"
                    ),
                })),
                Readiness::NoDefaultCollection => Err(OpError::Done(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the {name} has no default collection to store credentials in \
                         (gnome-keyring creates its login keyring on the first unlock with a \
                         non-empty password); create one (e.g. with Seahorse) or use the \
                         file backend"
                    ),
                })),
            }
        })
    }

    fn location_detail(&self, profile: &Profile) -> String {
        format!("{}/{}", self.inner.options.service(), profile)
    }
}

impl Store for KeychainStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        let location = self.location_detail(profile);
        let p = profile.clone();
        let value = self.run(format!("reading {location}"), move |ctx| ctx.read_value(&p))?;
        match value {
            None => Ok(None),
            Some(v) => {
                let credential = StoredCredential::from_keychain_value(
                    v.text.as_bytes(),
                    &format!("keychain {location}"),
                )?;
                Ok(Some(Found {
                    credential,
                    location: self.describe(profile),
                }))
            }
        }
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let location = self.location_detail(profile);
        let doc = credential.to_document();
        let text = std::str::from_utf8(doc.trim_ascii())
            .map_err(|_| Error::Backend {
                backend: BACKEND,
                message: "the credential document is not UTF-8".into(),
            })?
            .to_string();
        let text = Zeroizing::new(text);
        let p = profile.clone();
        self.run(format!("saving {location}"), move |ctx| {
            ctx.write_value(&p, &text)
        })?;
        Ok(self.describe(profile))
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        let location = self.location_detail(profile);
        let p = profile.clone();
        let existed = self.run(format!("removing {location}"), move |ctx| {
            ctx.delete_value(&p)
        })?;
        Ok(if existed {
            vec![self.describe(profile)]
        } else {
            Vec::new()
        })
    }

    /// The profiles with an entry of this service (split parts and the
    /// probe's name are not profiles); `None` where the platform's store
    /// cannot search (Windows).
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        let accounts = self.run("listing the keychain's entries".into(), |ctx| {
            ctx.accounts()
        })?;
        Ok(accounts.map(super::profile_list))
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::Keychain,
            detail: self.location_detail(profile),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{api_key, profile, Fake};
    use super::*;
    use crate::credential::AuthMode;

    #[test]
    fn short_values_are_one_entry_holding_the_document() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        assert!(store.load(&p).unwrap().is_none());
        store.save(&p, &api_key("sk-one")).unwrap();
        assert_eq!(
            fake.raw("default").unwrap(),
            r#"{"auth_mode":"api_key","api_key":"sk-one"}"#
        );
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-one"
        );
        assert_eq!(store.describe(&p).detail, "credstore/default");
        assert!(!store.delete(&p).unwrap().is_empty());
        assert!(store.delete(&p).unwrap().is_empty());
        assert!(store.load(&p).unwrap().is_none());
    }

    #[test]
    fn bare_tokens_written_by_other_tools_are_read() {
        let fake = Fake::new();
        let store = fake.store(None);
        fake.set_raw("default", "aGVh.cGF5.c2ln");
        let c = store.load(&profile("default")).unwrap().unwrap().credential;
        assert_eq!(c.auth_mode(), AuthMode::AgentIdentity);
        fake.set_raw("other", "sk-bare");
        let c = store.load(&profile("other")).unwrap().unwrap().credential;
        assert_eq!(c.auth_mode(), AuthMode::ApiKey);
    }
}
