//! Environment-first resolution (SPEC §5):
//!
//! 1. `{PREFIX}_API_KEY` or `{PREFIX}_API_KEY_FILE`
//! 2. `{PREFIX}_AGENT_IDENTITY` or `{PREFIX}_AGENT_IDENTITY_FILE`
//! 3. the profile's stored credential
//!
//! The environment is read through [`Environment`], so tests inject a map
//! instead of mutating the real process environment. Nothing here ever
//! writes: an env credential cannot reach a [`Store`].

use crate::credential::{AuthMode, Credential};
use crate::error::{Error, Result};
use crate::jwks::Verifier;
use crate::profile::Profile;
use crate::secret::{read_bounded, ReadError};
use crate::store::{Location, SourceKind, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A source of environment variables.
pub trait Environment: Send + Sync {
    /// The variable's value, or `None` when unset or not Unicode.
    fn var(&self, name: &str) -> Option<Zeroizing<String>>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<Zeroizing<String>> {
        std::env::var(name).ok().map(Zeroizing::new)
    }
}

/// A fixed map of variables, for tests and for embedding programs that
/// pass configuration explicitly.
#[derive(Default, Clone)]
pub struct MapEnv(HashMap<String, String>);

impl MapEnv {
    /// An empty environment.
    pub fn new() -> MapEnv {
        MapEnv::default()
    }

    /// Adds a variable.
    pub fn with(mut self, name: &str, value: &str) -> MapEnv {
        self.0.insert(name.to_string(), value.to_string());
        self
    }
}

impl std::fmt::Debug for MapEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Environment for MapEnv {
    fn var(&self, name: &str) -> Option<Zeroizing<String>> {
        self.0.get(name).map(|v| Zeroizing::new(v.clone()))
    }
}

/// Reads a variable, treating empty or all-whitespace as unset.
pub fn non_blank(env: &dyn Environment, name: &str) -> Option<Zeroizing<String>> {
    env.var(name).filter(|v| !v.trim().is_empty())
}

/// The variable names for a prefix: `CREDSTORE` by default; an embedding
/// program passes its own (`CODEX` gives `CODEX_API_KEY`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNames {
    prefix: String,
}

impl Default for EnvNames {
    fn default() -> Self {
        EnvNames::new("CREDSTORE")
    }
}

impl EnvNames {
    /// Names for `prefix`.
    pub fn new(prefix: &str) -> EnvNames {
        EnvNames {
            prefix: prefix.to_string(),
        }
    }

    /// `{PREFIX}_{suffix}`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.prefix)
    }

    /// `{PREFIX}_API_KEY`.
    pub fn api_key(&self) -> String {
        self.name("API_KEY")
    }

    /// `{PREFIX}_AGENT_IDENTITY`.
    pub fn agent_identity(&self) -> String {
        self.name("AGENT_IDENTITY")
    }

    /// The variable for a credential kind.
    pub fn for_mode(&self, mode: AuthMode) -> String {
        match mode {
            AuthMode::ApiKey => self.api_key(),
            AuthMode::AgentIdentity => self.agent_identity(),
        }
    }
}

/// Where a resolved credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An environment variable (or its `_FILE` variant), by name.
    Env {
        /// The variable that supplied it, e.g. `CREDSTORE_API_KEY_FILE`.
        variable: String,
        /// The file it pointed at, for `_FILE` variables.
        file: Option<PathBuf>,
    },
    /// A backend.
    Stored(Location),
}

impl Source {
    /// The `source` object of `status --json`.
    pub fn location(&self) -> Location {
        match self {
            Source::Env { variable, .. } => Location {
                kind: SourceKind::Env,
                detail: variable.clone(),
            },
            Source::Stored(l) => l.clone(),
        }
    }

    /// A short name for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Env {
                variable,
                file: Some(p),
            } => format!("{variable} ({})", p.display()),
            Source::Env { variable, .. } => variable.clone(),
            Source::Stored(l) => l.detail.clone(),
        }
    }

    /// Whether this is an environment variable.
    pub fn is_env(&self) -> bool {
        matches!(self, Source::Env { .. })
    }
}

/// A credential and where it came from.
#[derive(Debug)]
pub struct Resolved {
    /// The validated credential.
    pub credential: Credential,
    /// Its source.
    pub source: Source,
}

/// An env variable that is set but loses to a higher-priority source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadowed {
    /// The variable that is set.
    pub variable: String,
    /// The variable that wins over it.
    pub by: String,
}

/// Resolves the active credential: environment first, then stored.
pub struct Resolver<'a> {
    env: &'a dyn Environment,
    names: EnvNames,
    use_env: bool,
    verifier: Option<&'a Verifier>,
}

impl<'a> Resolver<'a> {
    /// A resolver reading `env` with the default `CREDSTORE` prefix.
    pub fn new(env: &'a dyn Environment) -> Resolver<'a> {
        Resolver {
            env,
            names: EnvNames::default(),
            use_env: true,
            verifier: None,
        }
    }

    /// Verifies every agent identity it resolves — from the environment or
    /// from the store — against `verifier`'s JWKS (SPEC §1.3, §5). A failure
    /// is an error (exit 3), never a fallback to another source.
    pub fn with_verifier(mut self, verifier: &'a Verifier) -> Resolver<'a> {
        self.verifier = Some(verifier);
        self
    }

    fn verified(&self, credential: Credential) -> Result<Credential> {
        if let Some(v) = self.verifier {
            v.verify_credential(&credential)?;
        }
        Ok(credential)
    }

    /// Uses another variable prefix (`CODEX` → `CODEX_API_KEY`, …).
    pub fn with_prefix(mut self, prefix: &str) -> Resolver<'a> {
        self.names = EnvNames::new(prefix);
        self
    }

    /// Skips the environment (`--no-env`).
    pub fn without_env(mut self) -> Resolver<'a> {
        self.use_env = false;
        self
    }

    /// The variable names in use.
    pub fn names(&self) -> &EnvNames {
        &self.names
    }

    /// Steps 1–2: the credential from the environment, if one is set.
    /// An invalid one is an error naming the variable (no fallback).
    pub fn from_env(&self) -> Result<Option<Resolved>> {
        if !self.use_env {
            return Ok(None);
        }
        for mode in [AuthMode::ApiKey, AuthMode::AgentIdentity] {
            if let Some(found) = self.read_env_pair(mode)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The whole chain: environment, then `store`'s credential for
    /// `profile`. `Ok(None)` when there is none anywhere.
    pub fn resolve(&self, store: &dyn Store, profile: &Profile) -> Result<Option<Resolved>> {
        if let Some(found) = self.from_env()? {
            return Ok(Some(found));
        }
        let Some(stored) = store.load(profile)? else {
            return Ok(None);
        };
        let location = store.locate(profile)?;
        let credential = self.verified(stored.to_credential(&location.detail)?)?;
        Ok(Some(Resolved {
            credential,
            source: Source::Stored(location),
        }))
    }

    /// Names the set env variables that lose to another one (for `status`).
    pub fn shadowed(&self) -> Vec<Shadowed> {
        if !self.use_env {
            return Vec::new();
        }
        let api = self.set_variable(AuthMode::ApiKey);
        let agent = self.set_variable(AuthMode::AgentIdentity);
        match (api, agent) {
            (Some(by), Some(variable)) => vec![Shadowed { variable, by }],
            _ => Vec::new(),
        }
    }

    /// The variable (`X` or `X_FILE`) set for `mode`, if any.
    pub fn set_variable(&self, mode: AuthMode) -> Option<String> {
        if !self.use_env {
            return None;
        }
        let name = self.names.for_mode(mode);
        let file_name = format!("{name}_FILE");
        if non_blank(self.env, &name).is_some() {
            Some(name)
        } else if non_blank(self.env, &file_name).is_some() {
            Some(file_name)
        } else {
            None
        }
    }

    fn read_env_pair(&self, mode: AuthMode) -> Result<Option<Resolved>> {
        let name = self.names.for_mode(mode);
        let file_name = format!("{name}_FILE");
        let direct = non_blank(self.env, &name);
        let file = non_blank(self.env, &file_name);
        match (direct, file) {
            (Some(_), Some(_)) => Err(Error::Usage(format!(
                "both {name} and {file_name} are set; unset one of them"
            ))),
            (Some(value), None) => {
                let credential =
                    self.verified(Credential::parse(mode, value.as_bytes(), &name)?)?;
                Ok(Some(Resolved {
                    credential,
                    source: Source::Env {
                        variable: name,
                        file: None,
                    },
                }))
            }
            (None, Some(path)) => {
                let path = PathBuf::from(path.trim());
                let origin = format!("{file_name} ({})", path.display());
                let mut f = std::fs::File::open(&path).map_err(|e| {
                    Error::Usage(format!(
                        "{file_name} names {}, which cannot be read: {e}",
                        path.display()
                    ))
                })?;
                let bytes = match read_bounded(&mut f) {
                    Ok(b) => b,
                    Err(ReadError::TooLarge) => {
                        return Err(Error::InvalidCredential {
                            kind: mode.describe(),
                            origin,
                            reason: "the file is larger than 64 KiB".into(),
                        })
                    }
                    Err(ReadError::Io(e)) => {
                        return Err(Error::Usage(format!(
                            "{file_name} names {}, which cannot be read: {e}",
                            path.display()
                        )))
                    }
                };
                let credential = self.verified(Credential::parse(mode, &bytes, &origin)?)?;
                Ok(Some(Resolved {
                    credential,
                    source: Source::Env {
                        variable: file_name,
                        file: Some(path),
                    },
                }))
            }
            (None, None) => Ok(None),
        }
    }
}
