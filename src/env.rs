//! The one place that reads configuration from the environment.
//!
//! Everything credstore reads from the environment goes through an
//! [`Environment`] (so tests and embedding programs inject a map instead of
//! mutating the real process environment) and is named by an [`EnvNames`]
//! (so a program embedding credstore with the prefix `CODEX` reads
//! `CODEX_API_KEY`, `CODEX_HOME`, `CODEX_VAULT_MOUNT`, … and no
//! `CREDSTORE_*` at all). Standard names of other tools (`VAULT_ADDR`,
//! `HOME`, `XDG_RUNTIME_DIR`, …) are the same for every prefix.
//!
//! Values are read as raw OS strings (SPEC §9): a variable that is set but
//! not Unicode is a usage error naming it (exit 2), never "unset"; a path
//! variable is used as the raw OS path it is.
//!
//! ```
//! use credstore::env::{EnvNames, Environment, MapEnv};
//!
//! let names = EnvNames::new("CODEX");
//! let env = MapEnv::new().with("CODEX_PROFILE", " work ");
//! assert_eq!(names.profile(), "CODEX_PROFILE");
//! assert_eq!(env.text(&names.profile()).unwrap().as_deref().map(|s| s.trim()), Some("work"));
//! assert!(env.text(&names.backend()).unwrap().is_none());
//! ```

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A source of environment variables.
///
/// Implementations return the raw value; the provided methods apply the
/// rules every reader follows (blank counts as unset, non-Unicode text is
/// an error naming the variable, paths are raw).
pub trait Environment: Send + Sync {
    /// The variable's raw value, or `None` when it is not set.
    fn var_os(&self, name: &str) -> Option<OsString>;

    /// A text variable: `None` when unset, empty or all whitespace; the
    /// value (untrimmed) otherwise, in a buffer wiped on drop. A value that
    /// is not Unicode is an [`Error::Usage`] naming the variable, so a
    /// mis-encoded credential never silently falls back to another one.
    fn text(&self, name: &str) -> Result<Option<Zeroizing<String>>> {
        let Some(raw) = self.var_os(name) else {
            return Ok(None);
        };
        match raw.into_string() {
            Ok(s) => {
                let s = Zeroizing::new(s);
                Ok((!s.trim().is_empty()).then_some(s))
            }
            Err(raw) => {
                // The value may be a credential: wipe it before reporting.
                drop(Zeroizing::new(raw.into_encoded_bytes()));
                Err(Error::Usage(format!(
                    "{name} is set but is not valid Unicode (UTF-8); set it to text, or unset it"
                )))
            }
        }
    }

    /// A path variable: `None` when unset or blank; otherwise the raw OS
    /// path (surrounding ASCII whitespace removed), whatever its encoding.
    fn path(&self, name: &str) -> Option<PathBuf> {
        let raw = self.var_os(name)?;
        let trimmed = credstore_platform::trim_os_str(&raw);
        (!trimmed.is_empty()).then(|| PathBuf::from(trimmed))
    }

    /// Whether the variable is set to something other than blank (a
    /// non-Unicode value counts as set).
    fn is_set(&self, name: &str) -> bool {
        match self.var_os(name) {
            None => false,
            Some(raw) => match raw.to_str() {
                Some(s) => !s.trim().is_empty(),
                None => true,
            },
        }
    }
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var_os(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

/// A fixed map of variables, for tests and for embedding programs that
/// pass configuration explicitly. `Debug` shows the names only.
#[derive(Default, Clone)]
pub struct MapEnv(HashMap<String, OsString>);

impl MapEnv {
    /// An empty environment.
    pub fn new() -> MapEnv {
        MapEnv::default()
    }

    /// Adds a variable (any OS string, so tests can set non-Unicode values).
    pub fn with(mut self, name: &str, value: impl AsRef<OsStr>) -> MapEnv {
        self.0
            .insert(name.to_string(), value.as_ref().to_os_string());
        self
    }

    /// Removes a variable.
    pub fn without(mut self, name: &str) -> MapEnv {
        self.0.remove(name);
        self
    }
}

impl std::fmt::Debug for MapEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Environment for MapEnv {
    fn var_os(&self, name: &str) -> Option<OsString> {
        self.0.get(name).cloned()
    }
}

/// The variable prefix credstore uses unless an embedding program sets its own.
pub const DEFAULT_PREFIX: &str = "CREDSTORE";

/// The names of every variable credstore reads, for one prefix: `CREDSTORE`
/// by default; an embedding program passes its own (`CODEX` gives
/// `CODEX_API_KEY`, `CODEX_HOME`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNames {
    prefix: String,
}

impl Default for EnvNames {
    fn default() -> Self {
        EnvNames::new(DEFAULT_PREFIX)
    }
}

macro_rules! names {
    ($($(#[$doc:meta])* $fn:ident => $suffix:literal,)*) => {
        impl EnvNames {
            $(
                $(#[$doc])*
                pub fn $fn(&self) -> String {
                    self.name($suffix)
                }
            )*

            /// Every `{PREFIX}_…` variable credstore reads, for `doctor`
            /// and `exec` (credential variables included).
            pub fn all(&self) -> Vec<String> {
                vec![$(self.name($suffix)),*]
            }
        }
    };
}

names! {
    /// `{PREFIX}_API_KEY`.
    api_key => "API_KEY",
    /// `{PREFIX}_API_KEY_FILE`.
    api_key_file => "API_KEY_FILE",
    /// `{PREFIX}_AGENT_IDENTITY`.
    agent_identity => "AGENT_IDENTITY",
    /// `{PREFIX}_AGENT_IDENTITY_FILE`.
    agent_identity_file => "AGENT_IDENTITY_FILE",
    /// `{PREFIX}_PROFILE`: the default for `--profile`.
    profile => "PROFILE",
    /// `{PREFIX}_BACKEND`: the default for `--backend`.
    backend => "BACKEND",
    /// `{PREFIX}_HOME`: the file backend's directory (and the lock's).
    home => "HOME",
    /// `{PREFIX}_KEYCHAIN_TIMEOUT`: seconds per keychain call.
    keychain_timeout => "KEYCHAIN_TIMEOUT",
    /// `{PREFIX}_HTTP_TIMEOUT`: seconds per HTTP request.
    http_timeout => "HTTP_TIMEOUT",
    /// `{PREFIX}_JWKS`: a JWKS file every agent identity is verified against.
    jwks => "JWKS",
    /// `{PREFIX}_AUTHAPI_BASE_URL`: the auth API for task registration.
    authapi_base_url => "AUTHAPI_BASE_URL",
    /// `{PREFIX}_VAULT_MOUNT`: the KV v2 mount.
    vault_mount => "VAULT_MOUNT",
    /// `{PREFIX}_VAULT_PREFIX`: the path under the mount.
    vault_prefix => "VAULT_PREFIX",
    /// `{PREFIX}_VAULT_ADDRS`: Vault addresses, comma-separated, tried in
    /// order (wins over `VAULT_ADDR`, which may hold such a list too).
    vault_addrs => "VAULT_ADDRS",
    /// `{PREFIX}_VAULT_AUTH`: `token`, `approle`, `jwt` or `kubernetes`.
    vault_auth => "VAULT_AUTH",
    /// `{PREFIX}_VAULT_AUTH_MOUNT`: where the auth method is mounted
    /// (default `approle`, `jwt` or `kubernetes`).
    vault_auth_mount => "VAULT_AUTH_MOUNT",
    /// `{PREFIX}_VAULT_ROLE`: the role of a JWT or Kubernetes login.
    vault_role => "VAULT_ROLE",
    /// `{PREFIX}_VAULT_JWT_FILE`: the file holding the JWT of a JWT or
    /// Kubernetes login, read again on every login.
    vault_jwt_file => "VAULT_JWT_FILE",
    /// `{PREFIX}_VAULT_ALLOW_HTTP`: `1` allows plain http to a Vault that
    /// is not on loopback (the token then crosses the network in clear).
    vault_allow_http => "VAULT_ALLOW_HTTP",
    /// `{PREFIX}_NO_PLAINTEXT_WARNING`: `1` on a server that chose the file
    /// backend on purpose: `login` and `status` stop warning about it
    /// (`doctor` still says it).
    no_plaintext_warning => "NO_PLAINTEXT_WARNING",
    /// `{PREFIX}_AGENT_SOCK`: the signing agent's socket; when set, clients
    /// ask the agent instead of resolving a credential themselves.
    agent_sock => "AGENT_SOCK",
    /// `{PREFIX}_SEAL`: where the sealed backend's key comes from when no
    /// identity file is named: `systemd-creds`.
    seal => "SEAL",
    /// `{PREFIX}_SEAL_IDENTITY_FILE`: the age identity file that opens the
    /// sealed backend's files (never beside them).
    seal_identity_file => "SEAL_IDENTITY_FILE",
    /// `{PREFIX}_SEAL_CREDENTIAL`: the systemd credential holding the age
    /// identity (default `$HOME/seal-identity.cred`, `HOME` being
    /// `{PREFIX}_HOME`).
    seal_credential => "SEAL_CREDENTIAL",
    /// `{PREFIX}_SEAL_RECIPIENTS`: more age public keys (`age1…`, comma or
    /// space separated) every sealed file is also encrypted to.
    seal_recipients => "SEAL_RECIPIENTS",
}

impl EnvNames {
    /// Names for `prefix` (e.g. `CODEX`).
    pub fn new(prefix: &str) -> EnvNames {
        EnvNames {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{PREFIX}_{suffix}`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.prefix)
    }

    /// The variable holding a credential of `mode` directly.
    pub fn for_mode(&self, mode: crate::AuthMode) -> String {
        match mode {
            crate::AuthMode::ApiKey => self.api_key(),
            crate::AuthMode::AgentIdentity => self.agent_identity(),
        }
    }

    /// The four variables that carry a credential (or a path to one), in
    /// the order resolution tries them.
    pub fn credential_variables(&self) -> [String; 4] {
        [
            self.api_key(),
            self.api_key_file(),
            self.agent_identity(),
            self.agent_identity_file(),
        ]
    }
}

impl EnvNames {
    /// Every variable that holds a secret or names where one is: the four
    /// credential variables, the Vault login's (`VAULT_TOKEN`,
    /// `BAO_TOKEN`, `VAULT_ROLE_ID`, `VAULT_SECRET_ID`,
    /// `VAULT_WRAPPED_SECRET_ID`, `{PREFIX}_VAULT_JWT_FILE`) and the
    /// sealed backend's key (`{PREFIX}_SEAL_IDENTITY_FILE`, `_SEAL`,
    /// `_SEAL_CREDENTIAL`). `exec` removes them all from its child.
    pub fn secret_variables(&self) -> Vec<String> {
        let mut all = self.credential_variables().to_vec();
        all.extend(
            [
                "VAULT_TOKEN",
                "BAO_TOKEN",
                "VAULT_ROLE_ID",
                "VAULT_SECRET_ID",
                "VAULT_WRAPPED_SECRET_ID",
            ]
            .map(String::from),
        );
        all.extend([
            self.vault_jwt_file(),
            self.seal_identity_file(),
            self.seal(),
            self.seal_credential(),
        ]);
        all
    }
}

/// Reads `name` as whole seconds from 1 to `max`, or `None` when unset.
/// Anything else is a usage error naming the variable (never quoting more
/// than a few characters of the value).
pub fn seconds(env: &dyn Environment, name: &str, max: u64) -> Result<Option<u64>> {
    let Some(value) = env.text(name)? else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=max).contains(s))
        .map(Some)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{name} must be a whole number of seconds from 1 to {max}, got {:?}",
                value.trim().chars().take(20).collect::<String>()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_text_is_kept_untrimmed() {
        let env = MapEnv::new().with("A", "  ").with("B", " x ").with("C", "");
        assert!(env.text("A").unwrap().is_none());
        assert!(env.text("C").unwrap().is_none());
        assert!(env.text("NOPE").unwrap().is_none());
        assert_eq!(env.text("B").unwrap().unwrap().as_str(), " x ");
        assert!(!env.is_set("A") && env.is_set("B") && !env.is_set("NOPE"));
        assert_eq!(env.path("B"), Some(PathBuf::from("x")));
        assert_eq!(env.path("A"), None);
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_text_is_a_usage_error_and_paths_stay_raw() {
        use std::os::unix::ffi::OsStrExt;
        let raw = OsStr::from_bytes(b"/tmp/caf\xe9");
        let env = MapEnv::new().with("X", raw);
        let e = env.text("X").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("X is set but is not valid Unicode"),
            "{e}"
        );
        assert!(env.is_set("X"));
        assert_eq!(env.path("X").unwrap().as_os_str(), raw);
    }

    #[test]
    fn names_follow_the_prefix() {
        let n = EnvNames::new("CODEX");
        assert_eq!(n.api_key(), "CODEX_API_KEY");
        assert_eq!(n.vault_mount(), "CODEX_VAULT_MOUNT");
        assert!(n.all().iter().all(|v| v.starts_with("CODEX_")));
        assert!(EnvNames::default()
            .all()
            .contains(&"CREDSTORE_HOME".to_string()));
    }

    #[test]
    fn seconds_are_bounded() {
        let env = MapEnv::new().with("T", " 3 ").with("BAD", "soon");
        assert_eq!(seconds(&env, "T", 10).unwrap(), Some(3));
        assert_eq!(seconds(&env, "NONE", 10).unwrap(), None);
        assert_eq!(seconds(&env, "BAD", 10).unwrap_err().exit_code(), 2);
        assert_eq!(seconds(&env, "T", 2).unwrap_err().exit_code(), 2);
    }
}
