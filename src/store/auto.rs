//! `auto`, the default backend (SPEC §4.5), and the plaintext-copy cleanup
//! the keychain backend does on save (SPEC §4.2).

use super::{FileStore, Location, SourceKind, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use std::sync::Mutex;

/// What `auto` (and [`KeychainFirst`]) tell their user.
#[derive(Debug)]
#[non_exhaustive]
pub enum AutoNotice<'a> {
    /// Sent **before** the plaintext file is written because the keychain
    /// is not there; `reason` says what is missing.
    PlaintextFallback {
        /// The file that is about to be written.
        file: &'a Location,
        /// Why the keychain was skipped ([`Error::BackendUnavailable`]).
        reason: &'a Error,
    },
    /// Sent after the credential was saved to the keychain and the
    /// profile's plaintext file copy was removed.
    PlaintextCopyRemoved {
        /// The file that was removed.
        file: &'a Location,
        /// Where the credential now is.
        keychain: &'a Location,
    },
    /// The credential was saved to the keychain but the plaintext copy
    /// could not be removed.
    PlaintextCopyKept {
        /// The file that is still there.
        file: &'a Location,
        /// Why it could not be removed.
        error: &'a Error,
    },
}

/// Receives [`AutoNotice`]s (the CLI prints them on stderr).
pub type Notify = Box<dyn Fn(AutoNotice<'_>) + Send + Sync>;

/// Whether an error means "the keychain is not there" (skipped by `auto`),
/// as opposed to there but locked, refusing or too slow (an error).
pub fn is_not_there(e: &Error) -> bool {
    matches!(e, Error::BackendUnavailable { .. })
}

/// The default backend (SPEC §4.5): reads the keychain, then the file;
/// writes to the keychain when it answers, else to the file after a
/// warning sent before the write. Only a keychain that is *not there* is
/// skipped: a locked, refusing or slow one is an error, never a reason to
/// use the file instead.
pub struct AutoStore {
    keychain: Box<dyn Store>,
    file: FileStore,
    notify: Notify,
    /// Where the last operation found or put the credential.
    last_seen: Mutex<Option<SourceKind>>,
}

impl AutoStore {
    /// `auto` over `keychain` (normally a
    /// [`KeychainStore`](super::KeychainStore)) and `file`.
    pub fn new(keychain: Box<dyn Store>, file: FileStore, notify: Notify) -> AutoStore {
        AutoStore {
            keychain,
            file,
            notify,
            last_seen: Mutex::new(None),
        }
    }

    /// The file backend `auto` falls back to.
    pub fn file(&self) -> &FileStore {
        &self.file
    }

    /// The keychain backend `auto` prefers.
    pub fn keychain(&self) -> &dyn Store {
        self.keychain.as_ref()
    }

    fn remember(&self, kind: SourceKind) {
        if let Ok(mut g) = self.last_seen.lock() {
            *g = Some(kind);
        }
    }

    /// Where the profile's credential is: the keychain or the file, and
    /// which of them answered; `None` when neither holds one.
    pub fn find(&self, profile: &Profile) -> Result<Option<(SourceKind, StoredCredential)>> {
        match self.keychain.load(profile) {
            Ok(Some(c)) => return Ok(Some((SourceKind::Keychain, c))),
            Ok(None) => {}
            Err(e) if is_not_there(&e) => {}
            Err(e) => return Err(e),
        }
        Ok(self.file.load(profile)?.map(|c| (SourceKind::File, c)))
    }
}

/// After a keychain save: removes the profile's plaintext file copy, if
/// any, and says so. A failure to remove it is reported, not fatal: the
/// credential is safely in the keychain.
fn remove_plaintext_copy(
    file: &FileStore,
    keychain: &dyn Store,
    profile: &Profile,
    notify: &Notify,
) {
    let location = file.describe(profile);
    match file.delete(profile) {
        Ok(true) => notify(AutoNotice::PlaintextCopyRemoved {
            file: &location,
            keychain: &keychain.describe(profile),
        }),
        Ok(false) => {}
        Err(error) => notify(AutoNotice::PlaintextCopyKept {
            file: &location,
            error: &error,
        }),
    }
}

impl Store for AutoStore {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn load(&self, profile: &Profile) -> Result<Option<StoredCredential>> {
        let found = self.find(profile)?;
        Ok(found.map(|(kind, c)| {
            self.remember(kind);
            c
        }))
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<()> {
        match self.keychain.save(profile, credential) {
            Ok(()) => {
                self.remember(SourceKind::Keychain);
                remove_plaintext_copy(&self.file, self.keychain.as_ref(), profile, &self.notify);
                Ok(())
            }
            Err(e) if is_not_there(&e) => {
                let location = self.file.describe(profile);
                (self.notify)(AutoNotice::PlaintextFallback {
                    file: &location,
                    reason: &e,
                });
                self.file.save(profile, credential)?;
                self.remember(SourceKind::File);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn delete(&self, profile: &Profile) -> Result<bool> {
        let from_keychain = match self.keychain.delete(profile) {
            Ok(b) => b,
            Err(e) if is_not_there(&e) => false,
            Err(e) => return Err(e),
        };
        let from_file = self.file.delete(profile)?;
        Ok(from_keychain || from_file)
    }

    /// The keychain's location, or the file's once an operation found or
    /// put the credential there.
    fn describe(&self, profile: &Profile) -> Location {
        let last = self.last_seen.lock().ok().and_then(|g| *g);
        match last {
            Some(SourceKind::File) => self.file.describe(profile),
            _ => self.keychain.describe(profile),
        }
    }

    fn locate(&self, profile: &Profile) -> Result<Location> {
        Ok(match self.find(profile)? {
            Some((SourceKind::File, _)) => self.file.describe(profile),
            Some(_) => self.keychain.describe(profile),
            None => self.describe(profile),
        })
    }
}

/// The keychain backend as a user selects it (`--backend keychain`): the
/// keychain only, except that saving a profile removes its plaintext file
/// copy and says so (SPEC §4.2).
pub struct KeychainFirst {
    keychain: Box<dyn Store>,
    file: FileStore,
    notify: Notify,
}

impl KeychainFirst {
    /// `keychain`, cleaning up plaintext copies in `file`.
    pub fn new(keychain: Box<dyn Store>, file: FileStore, notify: Notify) -> KeychainFirst {
        KeychainFirst {
            keychain,
            file,
            notify,
        }
    }
}

impl Store for KeychainFirst {
    fn name(&self) -> &'static str {
        self.keychain.name()
    }

    fn load(&self, profile: &Profile) -> Result<Option<StoredCredential>> {
        self.keychain.load(profile)
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<()> {
        self.keychain.save(profile, credential)?;
        remove_plaintext_copy(&self.file, self.keychain.as_ref(), profile, &self.notify);
        Ok(())
    }

    fn delete(&self, profile: &Profile) -> Result<bool> {
        self.keychain.delete(profile)
    }

    fn describe(&self, profile: &Profile) -> Location {
        self.keychain.describe(profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keychain::{keyring_core, KeychainOptions, KeychainStore};
    use crate::store::MemoryStore;
    use std::sync::Arc;

    fn api_key(token: &str) -> StoredCredential {
        let doc = format!(r#"{{"api_key":"{token}"}}"#);
        StoredCredential::from_document(doc.as_bytes(), "test").unwrap()
    }

    /// A keychain that fails every call with `make_error`.
    fn failing(make_error: fn() -> keyring_core::Error) -> Box<dyn Store> {
        Box::new(KeychainStore::with_connector(
            KeychainOptions::new(),
            Arc::new(move || Err(make_error())),
        ))
    }

    fn recorder() -> (Notify, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        let notify: Notify = Box::new(move |n| {
            l.lock().unwrap().push(match n {
                AutoNotice::PlaintextFallback { file, .. } => format!("fallback {}", file.detail),
                AutoNotice::PlaintextCopyRemoved { file, .. } => format!("removed {}", file.detail),
                AutoNotice::PlaintextCopyKept { file, .. } => format!("kept {}", file.detail),
            })
        });
        (notify, log)
    }

    #[test]
    fn a_missing_keychain_falls_back_to_the_file_warning_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(dir.path().join("home"));
        let path = file.path(&Profile::default_profile());
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        let p = path.clone();
        let notify: Notify = Box::new(move |n| {
            if let AutoNotice::PlaintextFallback { reason, .. } = n {
                assert!(is_not_there(reason));
                // The warning comes before the write.
                l.lock().unwrap().push(p.exists());
            }
        });
        let auto = AutoStore::new(
            failing(|| keyring_core::Error::NoDefaultStore),
            file.clone(),
            notify,
        );
        let profile = Profile::default_profile();
        auto.save(&profile, &api_key("sk-file")).unwrap();
        assert_eq!(*log.lock().unwrap(), vec![false]);
        assert!(path.exists());
        assert_eq!(
            auto.load(&profile).unwrap().unwrap().expose_token(),
            "sk-file"
        );
        assert_eq!(auto.locate(&profile).unwrap().kind, SourceKind::File);
        assert!(auto.delete(&profile).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_refusing_keychain_is_an_error_and_the_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(dir.path().join("home"));
        let profile = Profile::default_profile();
        file.save(&profile, &api_key("sk-in-file")).unwrap();
        let (notify, log) = recorder();
        let auto = AutoStore::new(
            failing(|| keyring_core::Error::NoStorageAccess("locked".into())),
            file.clone(),
            notify,
        );
        assert_eq!(auto.load(&profile).unwrap_err().exit_code(), 4);
        assert!(auto.save(&profile, &api_key("sk-new")).is_err());
        assert!(auto.delete(&profile).is_err());
        assert!(log.lock().unwrap().is_empty());
        assert_eq!(
            file.load(&profile).unwrap().unwrap().expose_token(),
            "sk-in-file"
        );
    }

    #[test]
    fn saving_to_the_keychain_removes_the_plaintext_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(dir.path().join("home"));
        let profile = Profile::new("work").unwrap();
        file.save(&profile, &api_key("sk-old-file")).unwrap();
        let (notify, log) = recorder();
        let auto = AutoStore::new(Box::new(MemoryStore::new()), file.clone(), notify);
        // Reads fall through to the file while the keychain has nothing.
        assert_eq!(
            auto.load(&profile).unwrap().unwrap().expose_token(),
            "sk-old-file"
        );
        auto.save(&profile, &api_key("sk-kc")).unwrap();
        assert!(file.load(&profile).unwrap().is_none());
        assert_eq!(
            *log.lock().unwrap(),
            vec![format!("removed {}", file.path(&profile).display())]
        );
        assert_eq!(
            auto.load(&profile).unwrap().unwrap().expose_token(),
            "sk-kc"
        );
        assert_eq!(auto.locate(&profile).unwrap().kind, SourceKind::Memory);
    }

    #[test]
    fn keychain_first_cleans_up_the_file_copy_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(dir.path().join("home"));
        let profile = Profile::default_profile();
        file.save(&profile, &api_key("sk-file")).unwrap();
        let (notify, log) = recorder();
        let store = KeychainFirst::new(Box::new(MemoryStore::new()), file.clone(), notify);
        assert!(store.load(&profile).unwrap().is_none(), "no file fallback");
        store.save(&profile, &api_key("sk-kc")).unwrap();
        assert!(file.load(&profile).unwrap().is_none());
        assert_eq!(log.lock().unwrap().len(), 1);
        // A failed keychain save leaves the file alone.
        file.save(&profile, &api_key("sk-file-2")).unwrap();
        let (notify, log) = recorder();
        let store = KeychainFirst::new(
            failing(|| keyring_core::Error::NoDefaultStore),
            file.clone(),
            notify,
        );
        assert!(store.save(&profile, &api_key("sk-x")).is_err());
        assert!(log.lock().unwrap().is_empty());
        assert_eq!(
            file.load(&profile).unwrap().unwrap().expose_token(),
            "sk-file-2"
        );
    }
}
