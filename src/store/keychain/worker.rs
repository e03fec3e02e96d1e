//! The deadline machinery: every platform call runs on a worker thread the
//! caller waits for at most the configured timeout; a worker that outlives
//! its deadline is told to stop before any further write. A failure that a
//! new connection may cure (not a refusal) drops the connection and is
//! retried once.

use super::errors::map_error;
use super::{Inner, KeychainOptions, KeychainStore, BACKEND};
use crate::error::{Error, Result};
use credstore_platform::keychain::keyring_core::{self, api::CredentialStore, Entry};
use credstore_platform::keychain::{self as platform, Failure};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use zeroize::Zeroizing;

/// Why an operation failed, before it becomes an [`Error`]: platform
/// errors stay raw so the runner can decide whether to reconnect.
pub(super) enum OpError {
    Platform(keyring_core::Error),
    Done(Error),
}

impl From<Error> for OpError {
    fn from(e: Error) -> Self {
        OpError::Done(e)
    }
}

impl From<keyring_core::Error> for OpError {
    fn from(e: keyring_core::Error) -> Self {
        OpError::Platform(e)
    }
}

pub(super) type OpResult<T> = std::result::Result<T, OpError>;

impl KeychainStore {
    /// Runs `op` on a worker thread under the deadline, reconnecting and
    /// retrying once when a failure may be cured by a new connection.
    pub(super) fn run<T, F>(&self, what: String, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Ctx) -> OpResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let cancelled = Arc::new(AtomicBool::new(false));
        let worker_cancelled = Arc::clone(&cancelled);
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("credstore-keychain".into())
            .spawn(move || {
                let result = inner.run_with_retry(&worker_cancelled, &op);
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!("could not start a worker thread: {e}"),
            });
        }
        let timeout = self.inner.options.timeout();
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                cancelled.store(true, Ordering::SeqCst);
                // The stuck worker keeps its connection; the next call opens
                // a new one rather than queue behind it.
                self.inner.drop_connection();
                Err(Error::Timeout {
                    backend: BACKEND,
                    seconds: timeout.as_secs().max(1),
                    what,
                    hint: format!(
                        "the {} daemon is stuck or waiting for an unlock prompt that cannot be \
                         shown. Check or restart it (on Linux: gnome-keyring-daemon, KWallet or \
                         KeePassXC), raise {}, or use the file backend",
                        platform::store_name(),
                        self.inner.options.timeout_variable()
                    ),
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Backend {
                backend: BACKEND,
                message: "the keychain worker thread stopped without an answer".into(),
            }),
        }
    }
}

impl Inner {
    fn drop_connection(&self) {
        if let Ok(mut guard) = self.connection.lock() {
            *guard = None;
        }
    }

    fn connection(&self) -> Result<Arc<CredentialStore>> {
        if let Ok(guard) = self.connection.lock() {
            if let Some(conn) = guard.as_ref() {
                return Ok(Arc::clone(conn));
            }
        }
        let conn = (self.connector)().map_err(|e| map_error(&e, "connecting to"))?;
        if let Ok(mut guard) = self.connection.lock() {
            *guard = Some(Arc::clone(&conn));
        }
        Ok(conn)
    }

    fn run_with_retry<T>(
        &self,
        cancelled: &AtomicBool,
        op: &dyn Fn(&Ctx) -> OpResult<T>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let store = self.connection()?;
            let ctx = Ctx {
                store,
                options: &self.options,
                cancelled,
            };
            match op(&ctx) {
                Ok(v) => return Ok(v),
                Err(OpError::Done(e)) => return Err(e),
                Err(OpError::Platform(e)) => {
                    let retry = matches!(e, keyring_core::Error::PlatformFailure(_))
                        && platform::classify(&e) != Failure::AccessDenied
                        && attempt == 1
                        && !cancelled.load(Ordering::SeqCst);
                    // A failed connection is not reused either way.
                    if matches!(e, keyring_core::Error::PlatformFailure(_)) {
                        self.drop_connection();
                    }
                    if !retry {
                        return Err(map_error(&e, "using"));
                    }
                }
            }
        }
    }
}

/// What one attempt of an operation works with.
pub(super) struct Ctx<'a> {
    pub(super) store: Arc<CredentialStore>,
    pub(super) options: &'a KeychainOptions,
    cancelled: &'a AtomicBool,
}

impl Ctx<'_> {
    fn entry(&self, account: &str) -> OpResult<Entry> {
        Ok(self.store.build(self.options.service(), account, None)?)
    }

    /// Stops before a write once the caller has given up waiting.
    pub(super) fn check_not_cancelled(&self) -> OpResult<()> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(OpError::Done(Error::Backend {
                backend: BACKEND,
                message: "the operation was abandoned after its deadline".into(),
            }));
        }
        Ok(())
    }

    /// The accounts of this service, when the platform's store can search
    /// (`None` when it cannot). Reads no secret.
    pub(super) fn accounts(&self) -> OpResult<Option<Vec<String>>> {
        let service = self.options.service();
        let spec = std::collections::HashMap::from([("service", service)]);
        match self.store.search(&spec) {
            Ok(entries) => Ok(Some(
                entries
                    .iter()
                    .filter_map(|e| e.get_specifiers())
                    .filter(|(s, _)| s == service)
                    .map(|(_, account)| account)
                    .collect(),
            )),
            Err(keyring_core::Error::NotSupportedByStore(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One entry's text; `None` only when the keychain says there is none.
    pub(super) fn read_entry(&self, account: &str) -> OpResult<Option<Zeroizing<String>>> {
        match self.entry(account)?.get_password() {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(keyring_core::Error::BadEncoding(mut bytes)) => {
                zeroize::Zeroize::zeroize(&mut bytes);
                Err(OpError::Done(Error::CorruptStore {
                    location: format!("keychain {}/{account}", self.options.service()),
                    reason: "the value is not UTF-8 text".into(),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn write_entry(&self, account: &str, value: &str) -> OpResult<()> {
        self.check_not_cancelled()?;
        Ok(self.entry(account)?.set_password(value)?)
    }

    /// Deletes an entry; `false` when there was none.
    pub(super) fn delete_entry(&self, account: &str) -> OpResult<bool> {
        self.check_not_cancelled()?;
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{api_key, profile, Fake};
    use super::super::KeychainOptions;
    use super::*;
    use crate::env::{EnvNames, MapEnv};
    use crate::store::Store;
    use std::time::{Duration, Instant};

    #[test]
    fn a_locked_keychain_is_an_error_and_nothing_is_deleted() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        store.save(&p, &api_key("sk-kept")).unwrap();
        fake.faults.locked.store(true, Ordering::SeqCst);
        let err = store.load(&p).unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err}");
        assert!(err.to_string().contains("locked"), "{err}");
        assert!(store.delete(&p).is_err());
        assert!(store.save(&p, &api_key("sk-other")).is_err());
        fake.faults.locked.store(false, Ordering::SeqCst);
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-kept"
        );
        // A refusal is not cured by reconnecting: one connection was made.
        assert_eq!(fake.connects.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stale_session_is_cured_by_reconnecting_once() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        store.save(&p, &api_key("sk-1")).unwrap();
        assert_eq!(fake.connects.load(Ordering::SeqCst), 1);
        fake.faults.stale_calls.store(1, Ordering::SeqCst);
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-1"
        );
        assert_eq!(fake.connects.load(Ordering::SeqCst), 2);
        // Two failures in a row are reported, not retried forever.
        fake.faults.stale_calls.store(2, Ordering::SeqCst);
        let err = store.load(&p).unwrap_err();
        assert!(err.to_string().contains("NoSession"), "{err}");
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-1"
        );
    }

    #[test]
    fn a_stuck_keychain_times_out_and_the_next_call_reconnects() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        store.save(&p, &api_key("sk-1")).unwrap();
        *fake.faults.block.lock().unwrap() = Some(Duration::from_secs(3));
        let start = Instant::now();
        let err = store.load(&p).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(err.to_string().contains("the file backend"), "{err}");
        assert!(
            err.to_string().contains("raise CREDSTORE_KEYCHAIN_TIMEOUT"),
            "{err}"
        );
        // The abandoned save never writes after its deadline.
        let err = store.save(&p, &api_key("sk-late")).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        *fake.faults.block.lock().unwrap() = None;
        std::thread::sleep(Duration::from_millis(3500));
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-1"
        );
        assert!(fake.connects.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn the_timeout_hint_names_the_embedders_variable() {
        let fake = Fake::new();
        let options = KeychainOptions::from_env(&MapEnv::new(), &EnvNames::new("CODEX"))
            .unwrap()
            .with_timeout(Duration::from_millis(200));
        let store = fake.store_with(options);
        *fake.faults.block.lock().unwrap() = Some(Duration::from_secs(1));
        let err = store.load(&profile("default")).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("raise CODEX_KEYCHAIN_TIMEOUT"), "{text}");
        assert!(!text.contains("CREDSTORE"), "{text}");
        assert!(!text.contains("--backend"), "{text}");
    }
}
