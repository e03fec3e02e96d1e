//! [`KeychainOptions`]: the service name, the deadline of each operation
//! (from `{PREFIX}_KEYCHAIN_TIMEOUT`) and the per-entry limit.

use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use credstore_platform::keychain as platform;
use std::time::Duration;

/// The keychain service name credstore uses unless told otherwise.
pub const DEFAULT_SERVICE: &str = "credstore";

/// The default deadline of one keychain operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest per-entry limit accepted: a manifest must fit in one entry.
pub const MIN_ENTRY_LEN: usize = 192;

/// Settings of a [`KeychainStore`](super::KeychainStore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeychainOptions {
    service: String,
    timeout: Duration,
    max_entry_len: Option<usize>,
    /// The variable the deadline comes from, named in the timeout hint.
    timeout_variable: String,
}

impl Default for KeychainOptions {
    fn default() -> Self {
        KeychainOptions {
            service: DEFAULT_SERVICE.to_string(),
            timeout: DEFAULT_TIMEOUT,
            max_entry_len: platform::max_entry_len(),
            timeout_variable: EnvNames::default().keychain_timeout(),
        }
    }
}

impl KeychainOptions {
    /// Service `credstore`, a 10 s deadline, the platform's entry limit;
    /// the timeout hint names `CREDSTORE_KEYCHAIN_TIMEOUT`.
    pub fn new() -> KeychainOptions {
        KeychainOptions::default()
    }

    /// The defaults, with the deadline from `{PREFIX}_KEYCHAIN_TIMEOUT`
    /// (whole seconds, 1 to 3600) when set. A bad value is a usage error.
    /// The timeout hint names that variable (`CODEX_KEYCHAIN_TIMEOUT` for
    /// the prefix `CODEX`).
    pub fn from_env(env: &dyn Environment, names: &EnvNames) -> Result<KeychainOptions> {
        let mut options = KeychainOptions::new().with_timeout_variable(&names.keychain_timeout());
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

    /// Names the variable a user raises to lengthen the deadline, for the
    /// hint of [`Error::Timeout`] ([`KeychainOptions::from_env`] sets it
    /// from its [`EnvNames`]).
    pub fn with_timeout_variable(mut self, name: &str) -> KeychainOptions {
        self.timeout_variable = name.to_string();
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

    /// The variable the timeout hint names (`{PREFIX}_KEYCHAIN_TIMEOUT`).
    pub fn timeout_variable(&self) -> &str {
        &self.timeout_variable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

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

    #[test]
    fn the_timeout_variable_follows_the_prefix() {
        assert_eq!(
            KeychainOptions::new().timeout_variable(),
            "CREDSTORE_KEYCHAIN_TIMEOUT"
        );
        let codex = EnvNames::new("CODEX");
        let env = MapEnv::new()
            .with("CODEX_KEYCHAIN_TIMEOUT", "7")
            .with("CREDSTORE_KEYCHAIN_TIMEOUT", "3");
        let o = KeychainOptions::from_env(&env, &codex).unwrap();
        assert_eq!(o.timeout(), Duration::from_secs(7));
        assert_eq!(o.timeout_variable(), "CODEX_KEYCHAIN_TIMEOUT");
        // Only the prefix's own variable is read.
        let env = MapEnv::new().with("CREDSTORE_KEYCHAIN_TIMEOUT", "3");
        let o = KeychainOptions::from_env(&env, &codex).unwrap();
        assert_eq!(o.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(o.timeout_variable(), "CODEX_KEYCHAIN_TIMEOUT");
        let env = MapEnv::new().with("CODEX_KEYCHAIN_TIMEOUT", "soon");
        let err = KeychainOptions::from_env(&env, &codex).unwrap_err();
        assert!(err.to_string().contains("CODEX_KEYCHAIN_TIMEOUT"), "{err}");
    }
}
