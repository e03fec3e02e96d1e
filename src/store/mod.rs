//! Backends: one small trait, [`Store`], and its implementations. Each is
//! checked by the same conformance suite (`tests/store_conformance.rs`).

mod auto;
pub(crate) mod file;
mod inventory;
pub mod keychain;
mod lock;
mod memory;
mod migrate;
mod open;
mod sealed;
mod vault;

pub use auto::{is_not_there, AutoNotice, AutoStore, KeychainFirst, Notify};
pub use file::FileStore;
pub use inventory::{inventory, Held, Inventory, Unreachable};
pub use keychain::{KeychainOptions, KeychainStore};
pub use lock::ChangeLock;
pub use memory::MemoryStore;
pub use migrate::{is_plaintext, migrate, Migration};
pub use open::{default_home, ChosenBy, Selection, Settings};
pub use sealed::{
    init_systemd_creds, keygen, KeySource, Protection, SealConfig, SealedStore,
    DEFAULT_SYSTEMD_CREDENTIAL, SYSTEMD_CREDENTIAL_NAME,
};
pub(crate) use vault::{parse_addrs, parse_vault_path};
pub use vault::{TokenInfo, VaultConfig, VaultStore};

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
    /// An age-encrypted file (`auth.json.age`).
    Sealed,
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
            SourceKind::Sealed => "sealed",
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

/// A stored credential and where it was found.
#[derive(Debug)]
pub struct Found {
    /// The stored document.
    pub credential: StoredCredential,
    /// Where it was read from (for `auto`: the keychain or the file).
    pub location: Location,
}

impl std::ops::Deref for Found {
    type Target = StoredCredential;
    fn deref(&self) -> &StoredCredential {
        &self.credential
    }
}

/// What a backend's check-and-set compares: the version of the profile's
/// secret a change first read. Backends without versions are `Untracked`
/// (the change lock serializes writers on one machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// This backend keeps no versions.
    Untracked,
    /// Vault KV v2: the secret's current version, `0` when never written.
    Version(u64),
}

/// A backend that keeps one stored credential per profile.
///
/// `load` never modifies storage, and a failed read is an error, never
/// "nothing stored". `save` replaces the profile's credential as a whole or
/// not at all. `delete` says every place it removed a credential from.
pub trait Store: Send + Sync {
    /// The backend's name (`file`, `keychain`, `memory`, `vault`, `sealed`, `auto`).
    fn name(&self) -> &'static str;
    /// The profile's stored credential and where it was, or `None` when
    /// nothing is stored. One round trip to the backend.
    fn load(&self, profile: &Profile) -> Result<Option<Found>>;
    /// Stores the credential, replacing any previous one; returns where.
    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location>;
    /// Removes the profile's credential; returns where it was removed from
    /// (empty when there was none).
    fn delete(&self, profile: &Profile) -> Result<Vec<Location>>;
    /// Where the profile's credential lives (or would be written) in this
    /// backend.
    fn describe(&self, profile: &Profile) -> Location;
    /// The revision a later [`Store::save_if`] or [`Store::delete_if`]
    /// checks against.
    fn revision(&self, _profile: &Profile) -> Result<Revision> {
        Ok(Revision::Untracked)
    }
    /// Stores the credential only if the profile's revision is still
    /// `expected` (a conflict is an error, exit 4, and nothing is
    /// overwritten). Backends without versions just save.
    fn save_if(
        &self,
        profile: &Profile,
        credential: &StoredCredential,
        _expected: Revision,
    ) -> Result<Location> {
        self.save(profile, credential)
    }
    /// Removes the credential only if its revision is still `expected`.
    fn delete_if(&self, profile: &Profile, _expected: Revision) -> Result<Vec<Location>> {
        self.delete(profile)
    }
    /// The profiles this backend holds a credential for, sorted, when it
    /// can list them; `None` when it cannot (a keychain without search, a
    /// Vault token without `list` on the metadata path): ask for each name
    /// with [`Store::load`] instead. Reads no secret and changes nothing.
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        Ok(None)
    }
}

/// Sorts and dedups listed profile names (the shape [`Store::profiles`]
/// returns), skipping any that are not valid profile names.
pub(crate) fn profile_list<I, S>(names: I) -> Vec<Profile>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<Profile> = names
        .into_iter()
        .filter_map(|n| Profile::new(n.as_ref()).ok())
        .collect();
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out.dedup();
    out
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
    /// `auth.json.age` files, encrypted with age (never chosen by `auto`).
    Sealed,
}

impl BackendKind {
    /// Every name [`BackendKind::parse`] accepts.
    pub const NAMES: [&'static str; 6] = ["auto", "file", "keychain", "memory", "vault", "sealed"];

    /// Parses a backend name; anything else is a usage error.
    pub fn parse(name: &str) -> Result<BackendKind> {
        Ok(match name.trim() {
            "auto" => BackendKind::Auto,
            "file" => BackendKind::File,
            "keychain" => BackendKind::Keychain,
            "memory" => BackendKind::Memory,
            "vault" => BackendKind::Vault,
            "sealed" => BackendKind::Sealed,
            other => {
                // The value is not repeated, in case a secret landed here;
                // a known name close to it is (it is ours, not theirs).
                let near = BackendKind::NAMES
                    .iter()
                    .map(|b| (strsim::damerau_levenshtein(other, b), *b))
                    .filter(|(d, b)| *d <= 2 && *d < b.len() / 2 + 1)
                    .min();
                let hint = match near {
                    Some((_, b)) => format!("did you mean {b}? "),
                    None => String::new(),
                };
                return Err(Error::Usage(format!(
                    "unknown backend: {hint}use one of auto, file, keychain, memory, vault, sealed"
                )));
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
            BackendKind::Sealed => "sealed",
        }
    }
}
