//! Remembered settings: `$CREDSTORE_HOME/config.toml` (beside the
//! credential files, with their rules but one: owned by the user, not
//! writable by others, no symlink, a regular file, at most 64 KiB; others
//! may read it, as it holds no secret).
//!
//! ```toml
//! [profiles.default]
//! backend = "vault"
//!
//! [profiles.work]
//! backend = "keychain"
//! ```
//!
//! It holds no secret. It decides where credentials are read from, so it
//! is guarded like one: a config another user could change would let them
//! point `token` at a backend they control. Precedence (SPEC §5 for
//! credentials, the same for settings): flags > environment > this file >
//! built-in defaults. `login --backend X` records X for the profile (and
//! `credstore config set backend X` does), so a later plain `token` reads
//! where the credential was put.

use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::store::file::Secrecy;
use crate::store::{BackendKind, FileStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in the home directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The settings remembered for one profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// The backend the profile's credential lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// What to do when an environment credential is used while the
    /// profile's stored one is of another account or kind: `allow`
    /// (silently), `warn` (one line on stderr, the default) or `deny`
    /// (refuse, exit 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvPolicy>,
    /// The Vault server (`VAULT_ADDR` when that and `BAO_ADDR` are unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_addr: Option<String>,
    /// The KV v2 mount (`{PREFIX}_VAULT_MOUNT` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_mount: Option<String>,
    /// The path prefix under the mount (`{PREFIX}_VAULT_PREFIX` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_prefix: Option<String>,
    /// The auth API (`{PREFIX}_AUTHAPI_BASE_URL` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authapi_base_url: Option<String>,
}

/// A remembered setting that stands in for an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// `vault_addr` for `VAULT_ADDR`.
    VaultAddr,
    /// `vault_mount` for `{PREFIX}_VAULT_MOUNT`.
    VaultMount,
    /// `vault_prefix` for `{PREFIX}_VAULT_PREFIX`.
    VaultPrefix,
    /// `authapi_base_url` for `{PREFIX}_AUTHAPI_BASE_URL`.
    AuthapiBaseUrl,
}

impl Setting {
    /// Every one of them.
    pub const ALL: [Setting; 4] = [
        Setting::VaultAddr,
        Setting::VaultMount,
        Setting::VaultPrefix,
        Setting::AuthapiBaseUrl,
    ];

    /// The key in config.toml.
    pub fn key(self) -> &'static str {
        match self {
            Setting::VaultAddr => "vault_addr",
            Setting::VaultMount => "vault_mount",
            Setting::VaultPrefix => "vault_prefix",
            Setting::AuthapiBaseUrl => "authapi_base_url",
        }
    }

    /// The variable it stands in for.
    pub fn variable(self, names: &EnvNames) -> String {
        match self {
            Setting::VaultAddr => "VAULT_ADDR".into(),
            Setting::VaultMount => names.vault_mount(),
            Setting::VaultPrefix => names.vault_prefix(),
            Setting::AuthapiBaseUrl => names.authapi_base_url(),
        }
    }

    /// Its value in `p`.
    pub fn get(self, p: &ProfileConfig) -> Option<&str> {
        match self {
            Setting::VaultAddr => p.vault_addr.as_deref(),
            Setting::VaultMount => p.vault_mount.as_deref(),
            Setting::VaultPrefix => p.vault_prefix.as_deref(),
            Setting::AuthapiBaseUrl => p.authapi_base_url.as_deref(),
        }
    }

    fn slot(self, p: &mut ProfileConfig) -> &mut Option<String> {
        match self {
            Setting::VaultAddr => &mut p.vault_addr,
            Setting::VaultMount => &mut p.vault_mount,
            Setting::VaultPrefix => &mut p.vault_prefix,
            Setting::AuthapiBaseUrl => &mut p.authapi_base_url,
        }
    }

    /// Checks a value as its variable would be checked; the error names
    /// the key (`what`), never repeats the value.
    pub fn check(self, value: &str, what: &str) -> Result<String> {
        match self {
            Setting::VaultAddr => crate::store::parse_addrs(value, what).map(|a| a.join(",")),
            Setting::VaultMount | Setting::VaultPrefix => {
                crate::store::parse_vault_path(value, what)
            }
            Setting::AuthapiBaseUrl => crate::agent::RegistrationConfig::new(value)
                .map(|c| c.base_url().to_string())
                .map_err(|_| {
                    Error::Usage(format!(
                        "{what} must be an https:// URL with a host and no user, query or \
                         fragment (http only to a loopback host)"
                    ))
                }),
        }
    }
}

/// The environment with a profile's remembered settings standing in for
/// the variables that are unset (flags > env > config > default). Built by
/// [`crate::store::Settings::environment`].
pub struct WithConfig<'a> {
    env: &'a dyn Environment,
    values: Vec<(String, std::ffi::OsString)>,
}

impl<'a> WithConfig<'a> {
    /// `env`, with `p`'s settings for the variables of `names` it lacks.
    pub fn new(env: &'a dyn Environment, names: &EnvNames, p: &ProfileConfig) -> WithConfig<'a> {
        let mut values = Vec::new();
        for s in Setting::ALL {
            let Some(v) = s.get(p) else { continue };
            // VAULT_ADDR's twin counts as set: an address in BAO_ADDR
            // wins over the remembered one.
            if s == Setting::VaultAddr && env.var_os("BAO_ADDR").is_some() {
                continue;
            }
            values.push((s.variable(names), v.into()));
        }
        WithConfig { env, values }
    }
}

impl Environment for WithConfig<'_> {
    fn var_os(&self, name: &str) -> Option<std::ffi::OsString> {
        self.env.var_os(name).or_else(|| {
            self.values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    }
}

/// [`ProfileConfig::env`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvPolicy {
    /// Use it, say nothing.
    Allow,
    /// Use it, say which stored credential it hides (the default).
    #[default]
    Warn,
    /// Refuse to use it while it hides another account's credential.
    Deny,
}

/// A `[[match]]` rule: work under `dir` uses `profile` (no global switch:
/// concurrent agents in different directories each get theirs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    /// A directory (`~` is the home directory); it and everything below it
    /// match. A trailing `/**` is accepted and means the same.
    pub dir: String,
    /// The profile used there.
    pub profile: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Per-profile settings, by profile name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// Profile by directory; the first rule that matches wins.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<MatchRule>,
}

/// `dir` of a rule as a path: `~` expanded, a trailing `/**` or `/` dropped.
fn rule_dir(dir: &str) -> Option<PathBuf> {
    let trimmed = dir.trim();
    let trimmed = trimmed.strip_suffix("/**").unwrap_or(trimmed);
    let path = if trimmed == "~" || trimmed.starts_with("~/") {
        let home = directories::BaseDirs::new()?.home_dir().to_path_buf();
        home.join(trimmed.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(trimmed)
    };
    if !path.is_absolute() {
        return None;
    }
    // Links resolved, as the working directory's are.
    Some(std::fs::canonicalize(&path).unwrap_or(path))
}

/// The config file of a home, read and written with the file backend's
/// rules.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    store: FileStore,
}

impl ConfigFile {
    /// The config file in `home`.
    pub fn new(home: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile {
            store: FileStore::new(home),
        }
    }

    /// Its path.
    pub fn path(&self) -> PathBuf {
        self.store.home().join(CONFIG_FILE)
    }

    /// Reads it: an empty [`Config`] when there is none. A file that does
    /// not parse, has an unknown key or names an unknown backend is a
    /// usage error (exit 2) naming the file and the line, never quoting
    /// it; one others may change is refused (exit 4).
    pub fn load(&self) -> Result<Config> {
        let path = self.path();
        let Some(bytes) = self.store.read_private(&path, Secrecy::Public)? else {
            return Ok(Config::default());
        };
        parse(&bytes, &path)
    }

    /// The backend remembered for `profile`, if any.
    pub fn backend(&self, profile: &Profile) -> Result<Option<BackendKind>> {
        let config = self.load()?;
        match config
            .profiles
            .get(profile.as_str())
            .and_then(|p| p.backend.as_deref())
        {
            None => Ok(None),
            Some(b) => BackendKind::parse(b).map(Some).map_err(|e| {
                Error::Usage(format!(
                    "{}: profiles.{profile}.backend: {e}",
                    self.path().display()
                ))
            }),
        }
    }

    /// The profile of the first `[[match]]` rule whose `dir` holds `cwd`,
    /// with the rule's `dir` as written.
    pub fn profile_for_dir(&self, cwd: &Path) -> Result<Option<(Profile, String)>> {
        let config = self.load()?;
        let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        for rule in &config.rules {
            if rule_dir(&rule.dir).is_some_and(|dir| cwd.starts_with(dir)) {
                return Ok(Some((Profile::new(&rule.profile)?, rule.dir.clone())));
            }
        }
        Ok(None)
    }

    /// The profile's [`EnvPolicy`] (`warn` when unset).
    pub fn env_policy(&self, profile: &Profile) -> Result<EnvPolicy> {
        Ok(self
            .load()?
            .profiles
            .get(profile.as_str())
            .and_then(|p| p.env)
            .unwrap_or_default())
    }

    /// Remembers `backend` for `profile` (`None` forgets it), keeping the
    /// rest of the file. Atomic, 0600, under the change lock.
    pub fn set_backend(&self, profile: &Profile, backend: Option<BackendKind>) -> Result<PathBuf> {
        self.update(profile, |p| {
            p.backend = backend.map(|b| b.as_str().to_string())
        })
    }

    /// The profile's remembered settings (empty when none).
    pub fn profile(&self, profile: &Profile) -> Result<ProfileConfig> {
        Ok(self
            .load()?
            .profiles
            .remove(profile.as_str())
            .unwrap_or_default())
    }

    /// Remembers `value` for `setting` of `profile` (`None` forgets it),
    /// checked as its variable would be.
    pub fn set(&self, profile: &Profile, setting: Setting, value: Option<&str>) -> Result<PathBuf> {
        let value = value.map(|v| setting.check(v, setting.key())).transpose()?;
        self.update(profile, |p| *setting.slot(p) = value)
    }

    /// Sets the profile's [`EnvPolicy`] (`None` forgets it).
    pub fn set_env_policy(&self, profile: &Profile, policy: Option<EnvPolicy>) -> Result<PathBuf> {
        self.update(profile, |p| p.env = policy)
    }

    /// Changes the profile's settings with `change`, keeping the rest of
    /// the file; writes nothing when nothing changes. Atomic, 0600, under
    /// the change lock.
    fn update(
        &self,
        profile: &Profile,
        change: impl FnOnce(&mut ProfileConfig),
    ) -> Result<PathBuf> {
        let _lock = self.store.lock_changes()?;
        let mut config = self.load()?;
        let before = config.clone();
        let entry = config
            .profiles
            .entry(profile.as_str().to_string())
            .or_default();
        change(entry);
        if *entry == ProfileConfig::default() {
            config.profiles.remove(profile.as_str());
        }
        if config == before {
            return Ok(self.path()); // nothing changes: nothing is written
        }
        let mut text = String::from(
            "# credstore settings (written by `credstore login --backend` and\n\
             # `credstore config`). No secret belongs here.\n",
        );
        text.push_str(
            &toml::to_string(&config).map_err(|e| {
                Error::Usage(format!("cannot write {}: {e}", self.path().display()))
            })?,
        );
        self.store.write_private(CONFIG_FILE, text.as_bytes())
    }
}

/// What is wrong, in fixed words: the parser's own message quotes what
/// it did not expect (`invalid type: string "…"`, ``unknown field `…` ``),
/// with quotes inside quotes no filter can pair reliably, so none of it is
/// shown — only its kind, and the format.
fn kind_of(message: &str) -> &'static str {
    let m = message.trim_start();
    if m.starts_with("unknown field") {
        "an unknown key (a profile takes backend and env; a [[match]] rule takes dir and profile; \
         the top level takes [profiles.NAME] and [[match]])"
    } else if m.starts_with("unknown variant") {
        "a value that is not one of the allowed ones (backend: auto, file, keychain, vault, sealed; \
         env: allow, warn, deny)"
    } else if m.starts_with("invalid type") {
        "a value of the wrong type (settings are quoted strings; profiles are tables)"
    } else if m.starts_with("missing field") {
        "a [[match]] rule without dir or profile"
    } else if m.starts_with("duplicate key") || m.contains("duplicate") {
        "a key given twice"
    } else {
        "a syntax error (strings need quotes, tables [brackets])"
    }
}

/// Parses the file's bytes; errors give the line and column, not the text.
fn parse(bytes: &[u8], path: &Path) -> Result<Config> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::Usage(format!(
            "{} is not UTF-8 (at byte {}); fix or remove it",
            path.display(),
            e.valid_up_to()
        ))
    })?;
    let config: Config = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        // Nothing of the file is repeated (no snippet, no quoted value):
        // a pasted secret must not be echoed.
        Error::Usage(format!(
            "{}{at}: {}; fix or remove the file",
            path.display(),
            kind_of(e.message())
        ))
    })?;
    let names: Vec<&String> = config.profiles.keys().collect();
    for (i, name) in names.iter().enumerate() {
        Profile::new(name).map_err(|e| {
            Error::Usage(format!(
                "{}: profile table {} of [profiles]: {e}",
                path.display(),
                i + 1
            ))
        })?;
    }
    for (i, rule) in config.rules.iter().enumerate() {
        Profile::new(&rule.profile)
            .map_err(|e| Error::Usage(format!("{}: match rule {}: {e}", path.display(), i + 1)))?;
        if rule_dir(&rule.dir).is_none() {
            return Err(Error::Usage(format!(
                "{}: match rule {}: dir must be an absolute path or start with ~/",
                path.display(),
                i + 1
            )));
        }
    }
    for (name, p) in &config.profiles {
        Profile::new(name)
            .map_err(|e| Error::Usage(format!("{}: [profiles.{name}]: {e}", path.display())))?;
        if let Some(b) = &p.backend {
            BackendKind::parse(b).map_err(|e| {
                Error::Usage(format!("{}: profiles.{name}.backend: {e}", path.display()))
            })?;
        }
        for setting in Setting::ALL {
            if let Some(v) = setting.get(p) {
                let what = format!("{}: profiles.{name}.{}", path.display(), setting.key());
                setting.check(v, &what)?;
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forget() {
        let dir = std::env::temp_dir().join(format!("cs-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = ConfigFile::new(&dir);
        let work = Profile::new("work").unwrap();
        let default = Profile::default_profile();
        assert_eq!(file.backend(&work).unwrap(), None);
        file.set_backend(&work, Some(BackendKind::Vault)).unwrap();
        file.set_backend(&default, Some(BackendKind::File)).unwrap();
        assert_eq!(file.backend(&work).unwrap(), Some(BackendKind::Vault));
        assert_eq!(file.backend(&default).unwrap(), Some(BackendKind::File));
        file.set_backend(&work, None).unwrap();
        assert_eq!(file.backend(&work).unwrap(), None);
        assert_eq!(file.backend(&default).unwrap(), Some(BackendKind::File));
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains("work"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_usage_errors_with_a_line_and_no_quote() {
        let p = Path::new("/x/config.toml");
        for (text, wanted) in [
            (
                "[profiles.a]\nbackend = \"keychian\"\n",
                "profiles.a.backend",
            ),
            ("[profiles.a]\nbakend = \"file\"\n", "line 2"),
            ("[profiles.a]\nbackend = sk-live-SECRET\n", "line 2"),
            ("[profiles.\"../x\"]\nbackend = \"file\"\n", "profiles"),
            ("nonsense = 1\n", "line 1"),
        ] {
            let e = parse(text.as_bytes(), p).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(wanted), "{wanted}: {e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
        }
        for text in [
            "profiles = \"sk-live-SECRET\"\n",
            "[profiles.default]\nenv = \"sk-live-SECRET\"\n",
            "sk-live-SECRET = 1\n",
            "[profiles.default]\nsk-live-SECRET = 1\n",
            "[profiles.\"sk-live-SECRET/x\"]\nbackend = \"file\"\n",
            "[[match]]\ndir = \"sk-live-SECRET\"\nprofile = \"w\"\n",
            "[[match]]\ndir = \"/x\"\nprofile = \"sk-live-SECRET/\"\n",
            "[profiles.default]\nbackend = 'sk-live-SECRET'\n",
        ] {
            let e = parse(text.as_bytes(), p).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(!e.to_string().contains("SECRET"), "{text}: {e}");
        }
        // Quotes inside quotes, duplicate keys: still nothing of the file.
        for text in [
            "[profiles.default]\nenv = \"x`sk-live-SECRET-ABCDEFGH\"\n",
            "profiles = 'a\"sk-live-SECRET-ABCDEFGH'\n",
            "[profiles.default]\nbackend = \"file\"\nbackend = \"sk-live-SECRET-ABCDEFGH\"\n",
            "[profiles.default]\n\"a`sk-live-SECRET-ABCDEFGH\" = 1\n",
            "[profiles.default]\n'a\"sk-live-SECRET-ABCDEFGH' = 1\n",
        ] {
            let e = parse(text.as_bytes(), p).unwrap_err();
            assert!(!e.to_string().contains("SECRET"), "{text}: {e}");
            assert!(!e.to_string().contains("ABCD"), "{text}: {e}");
        }
        // The allowed values are named.
        let e = parse(b"[profiles.default]\nenv = \"x\"\n", p).unwrap_err();
        assert!(e.to_string().contains("allow, warn, deny"), "{e}");
        let e = parse(b"\xff", p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
