//! Backends: one small trait, [`Store`], and its implementations. Each is
//! checked by the same conformance suite (`tests/store_conformance.rs`).

mod auto;
mod file;
pub mod keychain;
mod memory;
mod migrate;
mod vault;

pub use auto::{is_not_there, AutoNotice, AutoStore, KeychainFirst, Notify};
pub use file::FileStore;
pub use keychain::{KeychainOptions, KeychainStore};
pub use memory::MemoryStore;
pub use migrate::{is_plaintext, migrate, Migration};
pub use vault::{VaultConfig, VaultStore};

use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;

/// Which kind of place a credential lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// An environment variable.
    Env,
    /// A plaintext file (`auth.json`).
    File,
    /// The OS keychain.
    Keychain,
    /// Vault / OpenBao.
    Vault,
    /// This process's memory.
    Memory,
}

impl SourceKind {
    /// The name used in `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Env => "env",
            SourceKind::File => "file",
            SourceKind::Keychain => "keychain",
            SourceKind::Vault => "vault",
            SourceKind::Memory => "memory",
        }
    }
}

/// Where a profile's credential lives (or would live) in a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The kind of place.
    pub kind: SourceKind,
    /// A path, `service/account`, `mount/path`, or a variable name.
    pub detail: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.detail)
    }
}

/// A backend that keeps one stored credential per profile.
///
/// `load` never modifies storage, and a failed read is an error, never
/// "nothing stored". `save` replaces the profile's credential as a whole or
/// not at all. `delete` returns whether there was something to remove.
pub trait Store: Send + Sync {
    /// The backend's name (`file`, `keychain`, `memory`, `vault`, `auto`).
    fn name(&self) -> &'static str;
    /// The profile's stored credential, or `None` when nothing is stored.
    fn load(&self, profile: &Profile) -> Result<Option<StoredCredential>>;
    /// Stores the credential, replacing any previous one.
    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<()>;
    /// Removes the profile's credential; `Ok(false)` when there was none.
    fn delete(&self, profile: &Profile) -> Result<bool>;
    /// Where the profile's credential lives in this backend.
    fn describe(&self, profile: &Profile) -> Location;
    /// Where the profile's credential was last read from or would be read
    /// from; for most backends the same as [`Store::describe`]. `auto`
    /// overrides it to name the backend that actually holds it.
    fn locate(&self, profile: &Profile) -> Result<Location> {
        Ok(self.describe(profile))
    }
    /// Holds this backend's writers' lock until the guard drops, so that a
    /// change of several steps (`migrate`: copy, verify, delete) is one
    /// change to other writers. Saves and deletes made by the same thread
    /// while the guard lives reuse it. Backends without such a lock return
    /// a guard that holds nothing.
    fn lock_changes(&self) -> Result<ChangeLock<'_>> {
        Ok(ChangeLock::none())
    }
}

/// A held writers' lock (see [`Store::lock_changes`]); released on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ChangeLock<'a> {
    release: Option<Box<dyn FnOnce() + 'a>>,
}

impl<'a> ChangeLock<'a> {
    /// A guard that holds nothing.
    pub fn none() -> ChangeLock<'a> {
        ChangeLock { release: None }
    }

    /// A guard that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + 'a) -> ChangeLock<'a> {
        ChangeLock {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for ChangeLock<'_> {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for ChangeLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.release.is_some() {
            "ChangeLock(held)"
        } else {
            "ChangeLock(none)"
        })
    }
}

/// The backend names accepted by `--backend` / `CREDSTORE_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Keychain if it is there, else file.
    Auto,
    /// `auth.json` files.
    File,
    /// The OS keychain.
    Keychain,
    /// This process only.
    Memory,
    /// Vault / OpenBao KV v2.
    Vault,
}

impl BackendKind {
    /// Parses a backend name; anything else is a usage error.
    pub fn parse(name: &str) -> Result<BackendKind> {
        Ok(match name.trim() {
            "auto" => BackendKind::Auto,
            "file" => BackendKind::File,
            "keychain" => BackendKind::Keychain,
            "memory" => BackendKind::Memory,
            "vault" => BackendKind::Vault,
            _ => {
                // The value is not repeated, in case a secret landed here.
                return Err(Error::Usage(
                    "unknown backend: use one of auto, file, keychain, memory, vault".into(),
                ));
            }
        })
    }

    /// The backend's name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::File => "file",
            BackendKind::Keychain => "keychain",
            BackendKind::Memory => "memory",
            BackendKind::Vault => "vault",
        }
    }
}
