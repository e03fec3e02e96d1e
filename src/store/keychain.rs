//! The OS keychain backend (SPEC §4.2): service `credstore` (a parameter for
//! embedding programs), account = profile, value = the stored document.
//!
//! The platform store comes from `credstore-platform` (Secret Service on
//! Linux, Keychain Services on macOS, Credential Manager on Windows), all
//! speaking `keyring-core`. What this module adds on top:
//!
//! - **A deadline on every operation.** The platform call runs on a worker
//!   thread; the caller waits at most the configured timeout
//!   (`CREDSTORE_KEYCHAIN_TIMEOUT`, default 10 s) and gets
//!   [`Error::Timeout`]. A frozen daemon cannot hang the process. A worker
//!   that outlives its deadline is told to stop before any further write.
//! - **"Not there" is told apart from "refused".** No session bus, no Secret
//!   Service: [`Error::BackendUnavailable`] at once, offering `--backend
//!   file`. Locked or access denied: an [`Error::Backend`] that says so. A
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

use super::{Found, Location, SourceKind, Store};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use credstore_platform::keychain::keyring_core::{api::CredentialStore, Entry};
use credstore_platform::keychain::{self as platform, Failure, Readiness};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// The keychain service name credstore uses unless told otherwise.
pub const DEFAULT_SERVICE: &str = "credstore";

/// The default deadline of one keychain operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest per-entry limit accepted: a manifest must fit in one entry.
pub const MIN_ENTRY_LEN: usize = 192;

const BACKEND: &str = "keychain";
const SPLIT_MAGIC: &str = "credstore-split/1";
const MAX_PARTS: usize = 512;

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

/// Settings of a [`KeychainStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeychainOptions {
    service: String,
    timeout: Duration,
    max_entry_len: Option<usize>,
}

impl Default for KeychainOptions {
    fn default() -> Self {
        KeychainOptions {
            service: DEFAULT_SERVICE.to_string(),
            timeout: DEFAULT_TIMEOUT,
            max_entry_len: platform::max_entry_len(),
        }
    }
}

impl KeychainOptions {
    /// Service `credstore`, a 10 s deadline, the platform's entry limit.
    pub fn new() -> KeychainOptions {
        KeychainOptions::default()
    }

    /// The defaults, with the deadline from `{PREFIX}_KEYCHAIN_TIMEOUT`
    /// (whole seconds, 1 to 3600) when set. A bad value is a usage error.
    pub fn from_env(env: &dyn Environment, names: &EnvNames) -> Result<KeychainOptions> {
        let mut options = KeychainOptions::new();
        if let Some(seconds) = crate::env::seconds(env, &names.keychain_timeout(), 3600)? {
            options.timeout = Duration::from_secs(seconds);
        }
        Ok(options)
    }

    /// Uses another service name (an embedding program's own). An empty
    /// name is a usage error.
    pub fn with_service(mut self, service: &str) -> Result<KeychainOptions> {
        if service.trim().is_empty() || service.chars().any(char::is_control) {
            return Err(Error::Usage(
                "the keychain service name must be non-empty printable text".into(),
            ));
        }
        self.service = service.to_string();
        Ok(self)
    }

    /// Sets the deadline of each operation (at least 1 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> KeychainOptions {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets the largest value one entry may hold, in bytes of UTF-8 (`None`:
    /// no limit). Values below [`MIN_ENTRY_LEN`] are raised to it.
    pub fn with_max_entry_len(mut self, limit: Option<usize>) -> KeychainOptions {
        self.max_entry_len = limit.map(|l| l.max(MIN_ENTRY_LEN));
        self
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The deadline of each operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The per-entry limit in bytes, if any.
    pub fn max_entry_len(&self) -> Option<usize> {
        self.max_entry_len
    }
}

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

/// Why an operation failed, before it becomes an [`Error`]: platform
/// errors stay raw so the runner can decide whether to reconnect.
enum OpError {
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

type OpResult<T> = std::result::Result<T, OpError>;

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
                         non-empty password); create one (e.g. with Seahorse) or use \
                         --backend file"
                    ),
                })),
            }
        })
    }

    /// Runs `op` on a worker thread under the deadline, reconnecting and
    /// retrying once when a failure may be cured by a new connection.
    fn run<T, F>(&self, what: String, op: F) -> Result<T>
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
        let timeout = self.inner.options.timeout;
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
                         KeePassXC), raise CREDSTORE_KEYCHAIN_TIMEOUT, or use --backend file",
                        platform::store_name()
                    ),
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Backend {
                backend: BACKEND,
                message: "the keychain worker thread stopped without an answer".into(),
            }),
        }
    }

    fn location_detail(&self, profile: &Profile) -> String {
        format!("{}/{}", self.inner.options.service, profile)
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
struct Ctx<'a> {
    store: Arc<CredentialStore>,
    options: &'a KeychainOptions,
    cancelled: &'a AtomicBool,
}

impl Ctx<'_> {
    fn entry(&self, account: &str) -> OpResult<Entry> {
        Ok(self.store.build(&self.options.service, account, None)?)
    }

    /// Stops before a write once the caller has given up waiting.
    fn check_not_cancelled(&self) -> OpResult<()> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(OpError::Done(Error::Backend {
                backend: BACKEND,
                message: "the operation was abandoned after its deadline".into(),
            }));
        }
        Ok(())
    }

    /// One entry's text; `None` only when the keychain says there is none.
    fn read_entry(&self, account: &str) -> OpResult<Option<Zeroizing<String>>> {
        match self.entry(account)?.get_password() {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(keyring_core::Error::BadEncoding(mut bytes)) => {
                zeroize::Zeroize::zeroize(&mut bytes);
                Err(OpError::Done(Error::CorruptStore {
                    location: format!("keychain {}/{account}", self.options.service),
                    reason: "the value is not UTF-8 text".into(),
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn write_entry(&self, account: &str, value: &str) -> OpResult<()> {
        self.check_not_cancelled()?;
        Ok(self.entry(account)?.set_password(value)?)
    }

    /// Deletes an entry; `false` when there was none.
    fn delete_entry(&self, account: &str) -> OpResult<bool> {
        self.check_not_cancelled()?;
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The profile's whole value: the entry itself, or its parts joined and
    /// checked. `Ok(None)` only when the profile's entry does not exist.
    fn read_value(&self, profile: &Profile) -> OpResult<Option<Value>> {
        let Some(head) = self.read_entry(profile.as_str())? else {
            return Ok(None);
        };
        let corrupt = |reason: String| {
            OpError::Done(Error::CorruptStore {
                location: format!("keychain {}/{profile}", self.options.service),
                reason,
            })
        };
        let manifest = match Manifest::parse(&head) {
            None => {
                return Ok(Some(Value {
                    text: head,
                    manifest: None,
                }))
            }
            Some(Err(reason)) => return Err(corrupt(reason)),
            Some(Ok(m)) => m,
        };
        let mut text = Zeroizing::new(String::with_capacity(manifest.len));
        for i in 0..manifest.parts {
            let account = manifest.part_account(profile, i);
            match self.read_entry(&account)? {
                Some(part) => {
                    if text.len() + part.len() > manifest.len {
                        return Err(corrupt(format!(
                            "its split value is longer than its manifest says (at part {} of {})",
                            i + 1,
                            manifest.parts
                        )));
                    }
                    text.push_str(&part);
                }
                None => {
                    return Err(corrupt(format!(
                        "part {} of {} of its split value is missing (entry {account})",
                        i + 1,
                        manifest.parts
                    )))
                }
            }
        }
        if text.len() != manifest.len || sha256_hex(text.as_bytes()) != manifest.sha256 {
            return Err(corrupt(
                "its split value does not match its manifest (a part was changed or mixed \
                 up)"
                .into(),
            ));
        }
        Ok(Some(Value {
            text,
            manifest: Some(manifest),
        }))
    }

    /// Writes `text` as the profile's value (split when needed), reads it
    /// back, then removes parts of the value it replaced.
    fn write_value(&self, profile: &Profile, text: &str) -> OpResult<()> {
        // What is there now decides which parts become garbage; a value
        // that cannot be read stops the save (nothing is overwritten
        // blindly), except a corrupt one, which is replaced.
        let previous = match self.read_value(profile) {
            Ok(v) => v.and_then(|v| v.manifest),
            Err(OpError::Done(Error::CorruptStore { .. })) => self
                .read_entry(profile.as_str())?
                .and_then(|head| Manifest::parse(&head).and_then(|m| m.ok())),
            Err(e) => return Err(e),
        };
        let written = match self.options.max_entry_len {
            Some(limit) if text.len() > limit => {
                let parts = split_at_char_boundaries(text, limit);
                if parts.len() > MAX_PARTS {
                    return Err(OpError::Done(Error::Backend {
                        backend: BACKEND,
                        message: format!(
                            "the credential needs {} keychain entries of {limit} bytes; the \
                             limit is {MAX_PARTS}",
                            parts.len()
                        ),
                    }));
                }
                let manifest = Manifest {
                    generation: new_generation(),
                    parts: parts.len(),
                    len: text.len(),
                    sha256: sha256_hex(text.as_bytes()),
                };
                for (i, part) in parts.iter().enumerate() {
                    self.write_entry(&manifest.part_account(profile, i), part)?;
                }
                // The commit point: one entry replaced.
                self.write_entry(profile.as_str(), &manifest.render())?;
                Some(manifest)
            }
            _ => {
                self.write_entry(profile.as_str(), text)?;
                None
            }
        };
        match self.read_value(profile) {
            Ok(Some(v)) if v.text.as_bytes() == text.as_bytes() => {}
            Ok(_) | Err(OpError::Done(Error::CorruptStore { .. })) => {
                return Err(OpError::Done(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the credential was written to {}/{profile} but reading it back gave \
                         something else; the keychain did not keep it. Nothing was reported \
                         as saved",
                        self.options.service
                    ),
                }))
            }
            Err(e) => return Err(e),
        }
        if let Some(old) = previous {
            if written.as_ref().map(|m| &m.generation) != Some(&old.generation) {
                for i in 0..old.parts {
                    // Garbage now; a failure only leaves an unused entry.
                    let _ = self.delete_entry(&old.part_account(profile, i));
                }
            }
        }
        self.sweep_orphan_parts(profile, written.as_ref());
        Ok(())
    }

    /// Removes parts left by a save that crashed before its commit point.
    /// Best effort, where the platform store can search.
    fn sweep_orphan_parts(&self, profile: &Profile, current: Option<&Manifest>) {
        let mut spec = HashMap::new();
        spec.insert("service", self.options.service.as_str());
        let Ok(found) = self.store.search(&spec) else {
            return;
        };
        let prefix = format!("{profile}:split:");
        let keep = current.map(|m| format!("{prefix}{}:", m.generation));
        for entry in found {
            let Some((service, account)) = entry.get_specifiers() else {
                continue;
            };
            if service != self.options.service || !account.starts_with(&prefix) {
                continue;
            }
            if keep.as_deref().is_some_and(|k| account.starts_with(k)) {
                continue;
            }
            if self.check_not_cancelled().is_err() {
                return;
            }
            let _ = entry.delete_credential();
        }
    }

    /// Deletes the profile's value: its entry first (after that the
    /// credential is gone), then its parts.
    fn delete_value(&self, profile: &Profile) -> OpResult<bool> {
        let manifest = match self.read_value(profile) {
            Ok(None) => return Ok(false),
            Ok(Some(v)) => v.manifest,
            // A corrupt value may be removed: that is how a user fixes it.
            Err(OpError::Done(Error::CorruptStore { .. })) => self
                .read_entry(profile.as_str())?
                .and_then(|head| Manifest::parse(&head).and_then(|m| m.ok())),
            Err(e) => return Err(e),
        };
        let existed = self.delete_entry(profile.as_str())?;
        if let Some(m) = manifest {
            for i in 0..m.parts {
                let _ = self.delete_entry(&m.part_account(profile, i));
            }
        }
        self.sweep_orphan_parts(profile, None);
        Ok(existed)
    }
}

/// A profile's value as read.
struct Value {
    text: Zeroizing<String>,
    manifest: Option<Manifest>,
}

/// The manifest of a split value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Manifest {
    generation: String,
    parts: usize,
    len: usize,
    sha256: String,
}

impl Manifest {
    fn render(&self) -> String {
        format!(
            "{SPLIT_MAGIC} generation={} parts={} len={} sha256={}",
            self.generation, self.parts, self.len, self.sha256
        )
    }

    /// `None` when `value` is not a manifest (a document or a bare token:
    /// neither starts with the magic and contains a space).
    fn parse(value: &str) -> Option<std::result::Result<Manifest, String>> {
        let rest = value.trim().strip_prefix(SPLIT_MAGIC)?.strip_prefix(' ')?;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for word in rest.split(' ') {
            let Some((k, v)) = word.split_once('=') else {
                return Some(Err("its split-value manifest is malformed".into()));
            };
            fields.insert(k, v);
        }
        let get = |k: &str| fields.get(k).copied().unwrap_or("");
        let generation = get("generation");
        let sha256 = get("sha256");
        let parts = get("parts").parse::<usize>().ok();
        let len = get("len").parse::<usize>().ok();
        let ok_generation = !generation.is_empty()
            && generation.len() <= 32
            && generation.bytes().all(|b| b.is_ascii_hexdigit());
        let ok_sha = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        match (parts, len) {
            (Some(parts), Some(len))
                if ok_generation
                    && ok_sha
                    && (1..=MAX_PARTS).contains(&parts)
                    && len <= 64 * 1024 =>
            {
                Some(Ok(Manifest {
                    generation: generation.to_string(),
                    parts,
                    len,
                    sha256: sha256.to_ascii_lowercase(),
                }))
            }
            _ => Some(Err("its split-value manifest is malformed".into())),
        }
    }

    fn part_account(&self, profile: &Profile, index: usize) -> String {
        format!("{profile}:split:{}:{index}", self.generation)
    }
}

/// Splits `text` into pieces of at most `limit` bytes, never inside a
/// UTF-8 character.
fn split_at_char_boundaries(text: &str, limit: usize) -> Vec<&str> {
    let limit = limit.max(4);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = limit.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        parts.push(head);
        rest = tail;
    }
    parts
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A generation id unique enough to tell two saves apart.
fn new_generation() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sha256_hex(seed.as_bytes())[..16].to_string()
}

/// Turns a platform error into credstore's, saying what to do. Never
/// formats the error's `Debug` (some variants carry secret bytes).
fn map_error(err: &keyring_core::Error, action: &str) -> Error {
    let name = platform::store_name();
    match platform::classify(err) {
        Failure::NotThere(what) => Error::BackendUnavailable {
            backend: BACKEND,
            reason: what,
            hint: "Use --backend file to keep the credential in a 0600 file instead, or start \
                   a keychain service."
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

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::Keychain,
            detail: self.location_detail(profile),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::AuthMode;
    use crate::env::MapEnv;
    use keyring_core::api::{Credential, CredentialApi, CredentialStoreApi};
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// What the fake keychain does on its next calls.
    #[derive(Default)]
    struct Faults {
        /// Fail the write after this many more successful writes.
        fail_writes_after: Mutex<Option<usize>>,
        /// Accept writes but do not keep them.
        drop_writes: AtomicBool,
        /// Every call fails as a locked keyring does.
        locked: AtomicBool,
        /// The next N calls fail as a restarted daemon's stale session does.
        stale_calls: AtomicUsize,
        /// Every call blocks this long.
        block: Mutex<Option<Duration>>,
    }

    /// A keychain over keyring-core's in-memory mock store, with faults.
    struct Fake {
        mock: Arc<CredentialStore>,
        faults: Arc<Faults>,
        connects: Arc<AtomicUsize>,
    }

    impl Fake {
        fn new() -> Fake {
            let mock: Arc<CredentialStore> = keyring_core::mock::Store::new().unwrap();
            Fake {
                mock,
                faults: Arc::default(),
                connects: Arc::default(),
            }
        }

        fn store(&self, limit: Option<usize>) -> KeychainStore {
            let mock = Arc::clone(&self.mock);
            let faults = Arc::clone(&self.faults);
            let connects = Arc::clone(&self.connects);
            let options = KeychainOptions::new()
                .with_max_entry_len(limit)
                .with_timeout(Duration::from_millis(400));
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
        fn raw(&self, account: &str) -> Option<String> {
            self.mock
                .build(DEFAULT_SERVICE, account, None)
                .unwrap()
                .get_password()
                .ok()
        }

        fn set_raw(&self, account: &str, value: &str) {
            self.mock
                .build(DEFAULT_SERVICE, account, None)
                .unwrap()
                .set_password(value)
                .unwrap();
        }

        fn accounts(&self) -> Vec<String> {
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

    fn profile(name: &str) -> Profile {
        Profile::new(name).unwrap()
    }

    fn api_key(token: &str) -> StoredCredential {
        let doc = format!(r#"{{"auth_mode":"api_key","api_key":"{token}"}}"#);
        StoredCredential::from_document(doc.as_bytes(), "test").unwrap()
    }

    fn long_key(tag: char, len: usize) -> String {
        std::iter::repeat_n(tag, len).collect()
    }

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
    fn long_values_are_split_and_reassembled() {
        let fake = Fake::new();
        let store = fake.store(Some(MIN_ENTRY_LEN));
        let p = profile("work");
        let key = long_key('k', 1000);
        store.save(&p, &api_key(&key)).unwrap();
        let head = fake.raw("work").unwrap();
        assert!(head.starts_with("credstore-split/1 "), "{head}");
        let parts = fake
            .accounts()
            .iter()
            .filter(|a| a.starts_with("work:split:"))
            .count();
        assert_eq!(
            parts,
            1043_usize.div_ceil(MIN_ENTRY_LEN),
            "{:?}",
            fake.accounts()
        );
        for account in fake.accounts() {
            assert!(fake.raw(&account).unwrap().len() <= MIN_ENTRY_LEN);
        }
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            key
        );

        // Replacing with another long value leaves only the new generation.
        let key2 = long_key('m', 700);
        store.save(&p, &api_key(&key2)).unwrap();
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            key2
        );
        let generations: std::collections::HashSet<String> = fake
            .accounts()
            .iter()
            .filter_map(|a| a.strip_prefix("work:split:"))
            .filter_map(|a| a.split(':').next().map(str::to_string))
            .collect();
        assert_eq!(generations.len(), 1, "{:?}", fake.accounts());

        // A short value removes every part.
        store.save(&p, &api_key("sk-short")).unwrap();
        assert_eq!(fake.accounts(), vec!["work".to_string()]);
        store.save(&p, &api_key(&key)).unwrap();
        assert!(!store.delete(&p).unwrap().is_empty());
        assert!(fake.accounts().is_empty(), "{:?}", fake.accounts());
    }

    #[test]
    fn a_crash_between_part_writes_keeps_the_previous_credential() {
        for fail_after in [0, 1, 3, 6] {
            let fake = Fake::new();
            let store = fake.store(Some(MIN_ENTRY_LEN));
            let p = profile("default");
            let old = long_key('o', 600);
            store.save(&p, &api_key(&old)).unwrap();
            // 1043 bytes: 6 parts, then the manifest (the 7th write).
            *fake.faults.fail_writes_after.lock().unwrap() = Some(fail_after);
            let new = long_key('n', 1000);
            let err = store.save(&p, &api_key(&new)).unwrap_err();
            assert_eq!(err.exit_code(), 4, "{err}");
            let loaded = store.load(&p).unwrap().unwrap().credential;
            assert_eq!(
                loaded.expose_token(),
                old,
                "after failing write {fail_after}"
            );
            // The next save sweeps the orphaned parts.
            store.save(&p, &api_key(&new)).unwrap();
            assert_eq!(
                store.load(&p).unwrap().unwrap().credential.expose_token(),
                new
            );
            let expected = 1 + 1043_usize.div_ceil(MIN_ENTRY_LEN);
            assert_eq!(fake.accounts().len(), expected, "{:?}", fake.accounts());
        }
    }

    #[test]
    fn a_first_long_save_that_crashes_leaves_nothing_readable() {
        let fake = Fake::new();
        let store = fake.store(Some(MIN_ENTRY_LEN));
        let p = profile("default");
        *fake.faults.fail_writes_after.lock().unwrap() = Some(2);
        assert!(store.save(&p, &api_key(&long_key('n', 1000))).is_err());
        assert!(store.load(&p).unwrap().is_none());
    }

    #[test]
    fn missing_or_changed_parts_are_corrupt_never_partial() {
        let fake = Fake::new();
        let store = fake.store(Some(MIN_ENTRY_LEN));
        let p = profile("default");
        store.save(&p, &api_key(&long_key('x', 900))).unwrap();
        let parts: Vec<String> = fake
            .accounts()
            .into_iter()
            .filter(|a| a.contains(":split:"))
            .collect();

        let victim = &parts[1];
        let saved = fake.raw(victim).unwrap();
        fake.set_raw(victim, &saved.replace('x', "y"));
        let err = store.load(&p).unwrap_err();
        assert!(matches!(err, Error::CorruptStore { .. }), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(
            !err.to_string().contains("xxxx"),
            "no content in errors: {err}"
        );

        fake.mock
            .build(DEFAULT_SERVICE, victim, None)
            .unwrap()
            .delete_credential()
            .unwrap();
        let err = store.load(&p).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // A corrupt value can still be removed, parts included.
        assert!(!store.delete(&p).unwrap().is_empty());
        assert!(fake.accounts().is_empty(), "{:?}", fake.accounts());
    }

    #[test]
    fn a_bad_manifest_is_corrupt() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        fake.set_raw("default", "credstore-split/1 generation=zz parts=2");
        let err = store.load(&p).unwrap_err();
        assert!(matches!(err, Error::CorruptStore { .. }), "{err}");
        // And a save replaces it.
        store.save(&p, &api_key("sk-new")).unwrap();
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-new"
        );
    }

    #[test]
    fn a_lost_write_is_an_error_not_a_success() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        fake.faults.drop_writes.store(true, Ordering::SeqCst);
        let err = store.save(&p, &api_key("sk-lost")).unwrap_err();
        assert!(err.to_string().contains("reading it back"), "{err}");
        assert_eq!(err.exit_code(), 4);
    }

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
        assert!(err.to_string().contains("--backend file"), "{err}");
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
    fn a_missing_keychain_is_unavailable_at_once() {
        let store = KeychainStore::with_connector(
            KeychainOptions::new(),
            Arc::new(|| Err(keyring_core::Error::NoDefaultStore)),
        );
        let start = Instant::now();
        let err = store.load(&profile("default")).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(matches!(err, Error::BackendUnavailable { .. }), "{err}");
        assert!(err.to_string().contains("--backend file"), "{err}");
        assert!(store.probe().is_err());
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

    #[test]
    fn manifests_are_told_apart_from_credentials() {
        assert!(Manifest::parse(r#"{"api_key":"credstore-split/1"}"#).is_none());
        assert!(Manifest::parse("credstore-split/1").is_none());
        assert!(Manifest::parse("credstore-split/1x generation=1").is_none());
        let m = Manifest {
            generation: "0123abcd".into(),
            parts: 3,
            len: 500,
            sha256: sha256_hex(b"x"),
        };
        assert_eq!(Manifest::parse(&m.render()), Some(Ok(m)));
        assert!(matches!(
            Manifest::parse("credstore-split/1 generation=01 parts=0 len=1 sha256=00"),
            Some(Err(_))
        ));
    }

    #[test]
    fn splitting_never_cuts_a_character() {
        let text = "aé€😀".repeat(50);
        for limit in [4, 5, 7, 10, 33] {
            let parts = split_at_char_boundaries(&text, limit);
            assert!(parts.iter().all(|p| p.len() <= limit && !p.is_empty()));
            assert_eq!(parts.concat(), text);
        }
    }

    #[test]
    fn timeout_comes_from_the_environment() {
        let names = EnvNames::default();
        let o = KeychainOptions::from_env(&MapEnv::new(), &names).unwrap();
        assert_eq!(o.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(o.service(), "credstore");
        let env = MapEnv::new().with("CREDSTORE_KEYCHAIN_TIMEOUT", " 3 ");
        let o = KeychainOptions::from_env(&env, &names).unwrap();
        assert_eq!(o.timeout(), Duration::from_secs(3));
        for bad in ["0", "-1", "1.5", "soon", "99999"] {
            let env = MapEnv::new().with("CREDSTORE_KEYCHAIN_TIMEOUT", bad);
            let err = KeychainOptions::from_env(&env, &names).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(KeychainOptions::new().with_service("").is_err());
        assert_eq!(
            KeychainOptions::new()
                .with_max_entry_len(Some(10))
                .max_entry_len(),
            Some(MIN_ENTRY_LEN)
        );
    }
}
