//! The store factory: from the environment (and the caller's overrides,
//! such as command-line flags) to the configured backend, in one call.
//!
//! ```no_run
//! use credstore::env::{EnvNames, ProcessEnv};
//! use credstore::resolve::Resolver;
//! use credstore::store::{Selection, Settings};
//!
//! # fn main() -> credstore::Result<()> {
//! let names = EnvNames::new("CODEX");
//! let settings = Settings::resolve(&ProcessEnv, &names, &Selection::default())?;
//! let store = settings.open(&ProcessEnv, Box::new(|_notice| {}))?;
//! let active = Resolver::new(&ProcessEnv)
//!     .with_names(names)
//!     .resolve(store.as_ref(), &settings.profile)?;
//! # let _ = active; Ok(()) }
//! ```

use super::{
    AutoStore, BackendKind, ChangeLock, FileStore, Found, KeychainFirst, KeychainOptions,
    KeychainStore, Location, MemoryStore, Notify, Revision, SealConfig, SealedStore, Store,
    VaultStore,
};
use crate::config::{ConfigFile, ProfileConfig, WithConfig};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use std::path::PathBuf;

/// What chose a setting, for `status` (SPEC §6.2 `backend_chosen_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBy {
    /// A command-line flag (or the embedding program's explicit choice).
    Flag,
    /// An environment variable.
    Env,
    /// The config file.
    Config,
    /// The built-in default.
    Default,
}

impl ChosenBy {
    /// The name used in `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenBy::Flag => "flag",
            ChosenBy::Env => "env",
            ChosenBy::Config => "config",
            ChosenBy::Default => "default",
        }
    }
}

/// What the caller chose explicitly (command-line flags); these win over
/// the environment.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--backend`.
    pub backend: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// The directory the caller works in, for config.toml's `[[match]]`
    /// rules (`None`: no rule applies).
    pub cwd: Option<PathBuf>,
}

/// Everything that decides which store is opened and where.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The variable names in use.
    pub names: EnvNames,
    /// The selected profile.
    pub profile: Profile,
    /// What chose the profile.
    pub profile_chosen_by: ChosenBy,
    /// The config rule that chose it (its `dir`), when one did.
    pub profile_rule: Option<String>,
    /// The selected backend.
    pub backend: BackendKind,
    /// What chose the backend.
    pub backend_chosen_by: ChosenBy,
    /// The file backend's directory, which also holds the change lock.
    pub home: PathBuf,
    /// The keychain's settings.
    pub keychain: KeychainOptions,
    /// The profile's settings in config.toml.
    pub remembered: ProfileConfig,
}

/// The platform's configuration directory for `app` (`~/.config/<app>`
/// on Linux), the default home.
pub fn default_home(app: &str) -> Result<PathBuf> {
    directories::ProjectDirs::from("", "", app)
        .map(|d| d.config_dir().to_path_buf())
        .ok_or_else(|| {
            Error::Usage(
                "cannot find a home directory for the credential file; set the HOME variable of credstore (e.g. CREDSTORE_HOME)"
                    .into(),
            )
        })
}

/// Names the variable a bad setting came from.
fn from_variable(name: &str, e: Error) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(format!("{name}: {m}")),
        other => other,
    }
}

impl Settings {
    /// The settings in effect: `selection` (flags) first, then the
    /// environment (`{PREFIX}_PROFILE`, `{PREFIX}_BACKEND`, `{PREFIX}_HOME`,
    /// `{PREFIX}_KEYCHAIN_TIMEOUT`), then the defaults.
    pub fn resolve(
        env: &dyn Environment,
        names: &EnvNames,
        selection: &Selection,
    ) -> Result<Settings> {
        let home = match env.path(&names.home()) {
            Some(h) => h,
            None => default_home("credstore")?,
        };
        let mut profile_rule = None;
        let (profile, profile_chosen_by) = match &selection.profile {
            Some(p) => (Profile::new(p)?, ChosenBy::Flag),
            None => match env.text(&names.profile())? {
                Some(p) => (
                    Profile::new(p.trim()).map_err(|e| from_variable(&names.profile(), e))?,
                    ChosenBy::Env,
                ),
                // A `[[match]]` rule of config.toml for the directory the
                // caller works in (read only when nothing above chose).
                None => match selection
                    .cwd
                    .as_deref()
                    .map(|cwd| ConfigFile::new(&home).profile_for_dir(cwd))
                    .transpose()?
                    .flatten()
                {
                    Some((p, rule)) => {
                        profile_rule = Some(rule);
                        (p, ChosenBy::Config)
                    }
                    None => (Profile::default_profile(), ChosenBy::Default),
                },
            },
        };
        let (backend, backend_chosen_by) = match &selection.backend {
            Some(b) => (BackendKind::parse(b)?, ChosenBy::Flag),
            None => match env.text(&names.backend())? {
                Some(b) => (
                    BackendKind::parse(&b).map_err(|e| from_variable(&names.backend(), e))?,
                    ChosenBy::Env,
                ),
                // Read only when nothing above chose. (Its [[match]] rules
                // are read for the profile too, unless --profile or the
                // variable chose it: a broken file stops a command unless
                // both are chosen.)
                None => match ConfigFile::new(&home).backend(&profile)? {
                    Some(b) => (b, ChosenBy::Config),
                    None => (BackendKind::Auto, ChosenBy::Default),
                },
            },
        };
        // The profile's remembered Vault and auth API settings. A broken
        // file was reported above unless a flag or variable chose the
        // backend; then it is not allowed to stop the command.
        let remembered = match ConfigFile::new(&home).profile(&profile) {
            Ok(p) => p,
            Err(_) if backend_chosen_by != ChosenBy::Config => ProfileConfig::default(),
            Err(e) => return Err(e),
        };
        let keychain = KeychainOptions::from_env(env, names)?;
        Ok(Settings {
            names: names.clone(),
            profile,
            profile_chosen_by,
            profile_rule,
            backend,
            backend_chosen_by,
            home,
            keychain,
            remembered,
        })
    }

    /// `env` with the profile's remembered settings (config.toml's
    /// `vault_addr`, `vault_mount`, `vault_prefix`, `authapi_base_url`)
    /// standing in for the variables that are unset: what every Vault and
    /// auth API call of this profile reads.
    pub fn environment<'a>(&'a self, env: &'a dyn Environment) -> WithConfig<'a> {
        WithConfig::new(env, &self.names, &self.remembered)
    }

    /// The config file of this home (`config.toml`).
    pub fn config_file(&self) -> ConfigFile {
        ConfigFile::new(&self.home)
    }

    /// The file backend in this home.
    pub fn file_store(&self) -> FileStore {
        FileStore::new(self.home.clone())
    }

    /// The sealed backend in this home, keyed as the environment says
    /// (`{PREFIX}_SEAL_IDENTITY_FILE`, `{PREFIX}_SEAL`, …). A bad setting is
    /// a usage error; no key source is an error only when a key is needed.
    pub fn sealed_store(&self, env: &dyn Environment) -> Result<SealedStore> {
        Ok(SealedStore::new(
            self.file_store(),
            SealConfig::from_env(env, &self.names, &self.home)?,
        ))
    }

    /// Takes the change lock (`$HOME/.lock`), for a change of several
    /// steps; stores opened here take it again (re-entrantly) on every
    /// save and delete.
    pub fn lock_changes(&self) -> Result<ChangeLock> {
        self.file_store().lock_changes()
    }

    /// Opens the selected backend. `notify` receives what `auto` and the
    /// keychain backend tell their user (a plaintext fallback, before it is
    /// written; a plaintext copy removed).
    pub fn open(&self, env: &dyn Environment, notify: Notify) -> Result<Box<dyn Store>> {
        self.open_kind(self.backend, env, notify)
    }

    /// Opens the backend `kind` as a user selects it: `auto` with its
    /// fallback, `keychain` with its plaintext-copy cleanup, and every
    /// change under the change lock.
    pub fn open_kind(
        &self,
        kind: BackendKind,
        env: &dyn Environment,
        notify: Notify,
    ) -> Result<Box<dyn Store>> {
        let file = self.file_store();
        Ok(match kind {
            BackendKind::File => Box::new(file),
            BackendKind::Memory => Box::new(MemoryStore::new()),
            BackendKind::Auto => Box::new(AutoStore::new(
                Box::new(KeychainStore::new(self.keychain.clone())),
                file,
                notify,
            )),
            BackendKind::Keychain => Box::new(KeychainFirst::new(
                Box::new(KeychainStore::new(self.keychain.clone())),
                file,
                notify,
            )),
            BackendKind::Vault => Box::new(Locked {
                inner: Box::new(VaultStore::from_env(&self.environment(env), &self.names)?),
                file,
            }),
            // Its writes take the change lock themselves (the file backend's).
            BackendKind::Sealed => Box::new(self.sealed_store(env)?),
        })
    }

    /// Opens `kind` plainly, with none of `auto`'s fallback or the
    /// keychain's cleanup (for `migrate`, which does its own steps under
    /// one lock). `auto` and `memory` are not plain backends: usage error.
    pub fn open_plain(&self, kind: BackendKind, env: &dyn Environment) -> Result<Box<dyn Store>> {
        match kind {
            BackendKind::File => Ok(Box::new(self.file_store())),
            BackendKind::Keychain => Ok(Box::new(KeychainStore::new(self.keychain.clone()))),
            BackendKind::Vault => Ok(Box::new(VaultStore::from_env(
                &self.environment(env),
                &self.names,
            )?)),
            BackendKind::Sealed => Ok(Box::new(self.sealed_store(env)?)),
            BackendKind::Memory => Err(Error::Usage(
                "the memory backend keeps nothing between runs, so nothing can be migrated to or from it"
                    .into(),
            )),
            BackendKind::Auto => Err(Error::Usage(
                "auto is not one place: name the backend (file, keychain, vault or sealed)".into(),
            )),
        }
    }

    /// Where `auto` reads the profile's credential from now: the plain
    /// backend that holds it, or `None` when neither does.
    pub fn locate_auto(&self) -> Result<Option<(BackendKind, Found)>> {
        let auto = AutoStore::new(
            Box::new(KeychainStore::new(self.keychain.clone())),
            self.file_store(),
            Box::new(|_| {}),
        );
        Ok(auto.load(&self.profile)?.map(|found| {
            let kind = match found.location.kind {
                super::SourceKind::File => BackendKind::File,
                _ => BackendKind::Keychain,
            };
            (kind, found)
        }))
    }
}

/// A backend whose changes take the change lock (for those that do not
/// take it themselves).
struct Locked {
    inner: Box<dyn Store>,
    file: FileStore,
}

impl Store for Locked {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        self.inner.load(profile)
    }
    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let _lock = self.file.lock_changes()?;
        self.inner.save(profile, credential)
    }
    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        self.file
            .delete_as_one_change(&|| self.inner.delete(profile))
    }
    fn describe(&self, profile: &Profile) -> Location {
        self.inner.describe(profile)
    }
    fn revision(&self, profile: &Profile) -> Result<Revision> {
        self.inner.revision(profile)
    }
    fn save_if(
        &self,
        profile: &Profile,
        credential: &StoredCredential,
        expected: Revision,
    ) -> Result<Location> {
        let _lock = self.file.lock_changes()?;
        self.inner.save_if(profile, credential, expected)
    }
    fn delete_if(&self, profile: &Profile, expected: Revision) -> Result<Vec<Location>> {
        self.file
            .delete_as_one_change(&|| self.inner.delete_if(profile, expected))
    }
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        self.inner.profiles()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn flags_beat_env_beat_defaults_and_names_follow_the_prefix() {
        let env = MapEnv::new()
            .with("CREDSTORE_PROFILE", "work")
            .with("CREDSTORE_BACKEND", "file")
            .with("CREDSTORE_HOME", "/tmp/cs-home")
            .with("CODEX_BACKEND", "memory");
        let s = Settings::resolve(&env, &EnvNames::default(), &Selection::default()).unwrap();
        assert_eq!(s.profile.as_str(), "work");
        assert_eq!(s.profile_chosen_by, ChosenBy::Env);
        assert_eq!(s.backend, BackendKind::File);
        assert_eq!(s.backend_chosen_by, ChosenBy::Env);
        assert_eq!(s.home, PathBuf::from("/tmp/cs-home"));
        let flags = Selection {
            backend: Some("vault".into()),
            profile: Some("ci".into()),
            cwd: None,
        };
        let s = Settings::resolve(&env, &EnvNames::default(), &flags).unwrap();
        assert_eq!(
            (s.backend, s.backend_chosen_by),
            (BackendKind::Vault, ChosenBy::Flag)
        );
        assert_eq!(s.profile.as_str(), "ci");
        let s = Settings::resolve(&env, &EnvNames::new("CODEX"), &Selection::default()).unwrap();
        assert_eq!(s.backend, BackendKind::Memory);
        assert_eq!(s.profile.as_str(), "default");
        assert_eq!(s.profile_chosen_by, ChosenBy::Default);
        assert_ne!(s.home, PathBuf::from("/tmp/cs-home"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let env = MapEnv::new().with("CREDSTORE_BACKEND", "keychian");
        let e = Settings::resolve(&env, &EnvNames::default(), &Selection::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("CREDSTORE_BACKEND"), "{e}");
        let env = MapEnv::new().with("CREDSTORE_PROFILE", "../x");
        let e = Settings::resolve(&env, &EnvNames::default(), &Selection::default()).unwrap_err();
        assert!(e.to_string().contains("CREDSTORE_PROFILE"), "{e}");
    }
}
