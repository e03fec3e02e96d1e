//! A keychain for the unit tests: keyring-core's in-memory mock store,
//! with faults to inject (failed or lost writes, a locked keyring, a stale
//! session, a stuck daemon).

use super::{keyring_core, KeychainOptions, KeychainStore, DEFAULT_SERVICE};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use keyring_core::api::{Credential, CredentialApi, CredentialStore, CredentialStoreApi};
use keyring_core::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake keychain does on its next calls.
#[derive(Default)]
pub(super) struct Faults {
    /// Fail the write after this many more successful writes.
    pub(super) fail_writes_after: Mutex<Option<usize>>,
    /// Accept writes but do not keep them.
    pub(super) drop_writes: AtomicBool,
    /// Every call fails as a locked keyring does.
    pub(super) locked: AtomicBool,
    /// The next N calls fail as a restarted daemon's stale session does.
    pub(super) stale_calls: AtomicUsize,
    /// Every call blocks this long.
    pub(super) block: Mutex<Option<Duration>>,
}

/// A keychain over keyring-core's in-memory mock store, with faults.
pub(super) struct Fake {
    pub(super) mock: Arc<CredentialStore>,
    pub(super) faults: Arc<Faults>,
    pub(super) connects: Arc<AtomicUsize>,
}

impl Fake {
    pub(super) fn new() -> Fake {
        let mock: Arc<CredentialStore> = keyring_core::mock::Store::new().unwrap();
        Fake {
            mock,
            faults: Arc::default(),
            connects: Arc::default(),
        }
    }

    pub(super) fn store(&self, limit: Option<usize>) -> KeychainStore {
        self.store_with(
            KeychainOptions::new()
                .with_max_entry_len(limit)
                .with_timeout(Duration::from_millis(400)),
        )
    }

    /// A store over this fake with `options`.
    pub(super) fn store_with(&self, options: KeychainOptions) -> KeychainStore {
        let mock = Arc::clone(&self.mock);
        let faults = Arc::clone(&self.faults);
        let connects = Arc::clone(&self.connects);
        KeychainStore::with_connector(
            options,
            Arc::new(move || {
                connects.fetch_add(1, Ordering::SeqCst);
                let s: Arc<CredentialStore> = Arc::new(FakeStore {
                    mock: Arc::clone(&mock),
                    faults: Arc::clone(&faults),
                });
                Ok(s)
            }),
        )
    }

    /// The raw value of an account, bypassing credstore.
    pub(super) fn raw(&self, account: &str) -> Option<String> {
        self.mock
            .build(DEFAULT_SERVICE, account, None)
            .unwrap()
            .get_password()
            .ok()
    }

    pub(super) fn set_raw(&self, account: &str, value: &str) {
        self.mock
            .build(DEFAULT_SERVICE, account, None)
            .unwrap()
            .set_password(value)
            .unwrap();
    }

    pub(super) fn accounts(&self) -> Vec<String> {
        let mut spec = HashMap::new();
        spec.insert("service", DEFAULT_SERVICE);
        let mut v: Vec<String> = self
            .mock
            .search(&spec)
            .unwrap()
            .into_iter()
            .filter(|e| e.get_password().is_ok())
            .filter_map(|e| e.get_specifiers().map(|s| s.1))
            .collect();
        v.sort();
        v
    }
}

struct FakeStore {
    mock: Arc<CredentialStore>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for FakeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeStore")
    }
}

impl CredentialStoreApi for FakeStore {
    fn vendor(&self) -> String {
        "fake".into()
    }
    fn id(&self) -> String {
        "fake".into()
    }
    fn build(
        &self,
        service: &str,
        user: &str,
        modifiers: Option<&HashMap<&str, &str>>,
    ) -> keyring_core::Result<Entry> {
        let inner = self.mock.build(service, user, modifiers)?;
        Ok(Entry::new_with_credential(Arc::new(FakeCred {
            inner,
            faults: Arc::clone(&self.faults),
        })))
    }
    fn search(&self, spec: &HashMap<&str, &str>) -> keyring_core::Result<Vec<Entry>> {
        self.mock.search(spec)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct FakeCred {
    inner: Entry,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for FakeCred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeCred")
    }
}

impl FakeCred {
    fn before_call(&self) -> keyring_core::Result<()> {
        if let Some(d) = *self.faults.block.lock().unwrap() {
            std::thread::sleep(d);
        }
        if self.faults.locked.load(Ordering::SeqCst) {
            return Err(keyring_core::Error::NoStorageAccess(
                "prompt dismissed".into(),
            ));
        }
        let stale = self.faults.stale_calls.load(Ordering::SeqCst);
        if stale > 0 {
            self.faults.stale_calls.store(stale - 1, Ordering::SeqCst);
            return Err(keyring_core::Error::PlatformFailure(
                "org.freedesktop.Secret.Error.NoSession".into(),
            ));
        }
        Ok(())
    }
}

impl CredentialApi for FakeCred {
    fn set_secret(&self, secret: &[u8]) -> keyring_core::Result<()> {
        self.before_call()?;
        let mut fail = self.faults.fail_writes_after.lock().unwrap();
        if let Some(n) = *fail {
            if n == 0 {
                *fail = None;
                return Err(keyring_core::Error::Invalid(
                    "write".into(),
                    "injected failure (a crash between writes)".into(),
                ));
            }
            *fail = Some(n - 1);
        }
        if self.faults.drop_writes.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.set_secret(secret)
    }
    fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
        self.before_call()?;
        self.inner.get_secret()
    }
    fn delete_credential(&self) -> keyring_core::Result<()> {
        self.before_call()?;
        self.inner.delete_credential()
    }
    fn get_credential(&self) -> keyring_core::Result<Option<Arc<Credential>>> {
        Ok(None)
    }
    fn get_specifiers(&self) -> Option<(String, String)> {
        self.inner.get_specifiers()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub(super) fn profile(name: &str) -> Profile {
    Profile::new(name).unwrap()
}

pub(super) fn api_key(token: &str) -> StoredCredential {
    let doc = format!(r#"{{"auth_mode":"api_key","api_key":"{token}"}}"#);
    StoredCredential::from_document(doc.as_bytes(), "test").unwrap()
}

pub(super) fn long_key(tag: char, len: usize) -> String {
    std::iter::repeat_n(tag, len).collect()
}
