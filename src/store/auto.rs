//! `auto`, the default backend (SPEC §4.5), and the plaintext-copy cleanup
//! the keychain backend does on save (SPEC §4.2).

use super::{FileStore, Found, Location, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;

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
}

impl AutoStore {
    /// `auto` over `keychain` (normally a
    /// [`KeychainStore`](super::KeychainStore)) and `file`.
    pub fn new(keychain: Box<dyn Store>, file: FileStore, notify: Notify) -> AutoStore {
        AutoStore {
            keychain,
            file,
            notify,
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
        Ok(removed) if !removed.is_empty() => notify(AutoNotice::PlaintextCopyRemoved {
            file: &location,
            keychain: &keychain.describe(profile),
        }),
        Ok(_) => {}
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

    /// The keychain's credential, else the file's; a keychain that is not
    /// there is skipped, one that fails is an error.
    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        match self.keychain.load(profile) {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => {}
            Err(e) if is_not_there(&e) => {}
            Err(e) => return Err(e),
        }
        self.file.load(profile)
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        // One change: the keychain write and the plaintext cleanup, or the
        // fallback, under the change lock.
        let _lock = self.file.lock_changes()?;
        match self.keychain.save(profile, credential) {
            Ok(location) => {
                remove_plaintext_copy(&self.file, self.keychain.as_ref(), profile, &self.notify);
                Ok(location)
            }
            Err(e) if is_not_there(&e) => {
                let location = self.file.describe(profile);
                (self.notify)(AutoNotice::PlaintextFallback {
                    file: &location,
                    reason: &e,
                });
                self.file.save(profile, credential)
            }
            Err(e) => Err(e),
        }
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        self.file.delete_as_one_change(&|| {
            let mut removed = match self.keychain.delete(profile) {
                Ok(removed) => removed,
                Err(e) if is_not_there(&e) => Vec::new(),
                Err(e) => return Err(e),
            };
            removed.extend(self.file.delete(profile)?);
            Ok(removed)
        })
    }

    /// Where a new credential goes: the keychain (the file when the
    /// keychain turns out not to be there).
    fn describe(&self, profile: &Profile) -> Location {
        self.keychain.describe(profile)
    }

    /// Both places' profiles (a keychain that is not there holds none);
    /// `None` when the keychain cannot list.
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        let from_keychain = match self.keychain.profiles() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(e) if is_not_there(&e) => Vec::new(),
            Err(e) => return Err(e),
        };
        let Some(from_file) = self.file.profiles()? else {
            return Ok(None);
        };
        Ok(Some(crate::store::profile_list(
            from_keychain
                .iter()
                .chain(from_file.iter())
                .map(Profile::as_str),
        )))
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

    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        self.keychain.load(profile)
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let _lock = self.file.lock_changes()?;
        let location = self.keychain.save(profile, credential)?;
        remove_plaintext_copy(&self.file, self.keychain.as_ref(), profile, &self.notify);
        Ok(location)
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        self.file
            .delete_as_one_change(&|| self.keychain.delete(profile))
    }

    fn describe(&self, profile: &Profile) -> Location {
        self.keychain.describe(profile)
    }

    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        self.keychain.profiles()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keychain::{keyring_core, KeychainOptions, KeychainStore};
    use crate::store::{MemoryStore, SourceKind};
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

    fn recorder() -> (Notify, Arc<std::sync::Mutex<Vec<String>>>) {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
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
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
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
        let found = auto.load(&profile).unwrap().unwrap();
        assert_eq!(found.credential.expose_token(), "sk-file");
        assert_eq!(found.location.kind, SourceKind::File);
        assert_eq!(auto.delete(&profile).unwrap().len(), 1);
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
            file.load(&profile)
                .unwrap()
                .unwrap()
                .credential
                .expose_token(),
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
            auto.load(&profile)
                .unwrap()
                .unwrap()
                .credential
                .expose_token(),
            "sk-old-file"
        );
        auto.save(&profile, &api_key("sk-kc")).unwrap();
        assert!(file.load(&profile).unwrap().is_none());
        assert_eq!(
            *log.lock().unwrap(),
            vec![format!("removed {}", file.path(&profile).display())]
        );
        let found = auto.load(&profile).unwrap().unwrap();
        assert_eq!(found.credential.expose_token(), "sk-kc");
        assert_eq!(found.location.kind, SourceKind::Memory);
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
            file.load(&profile)
                .unwrap()
                .unwrap()
                .credential
                .expose_token(),
            "sk-file-2"
        );
    }
}
