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
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::jwks::Verifier;
use crate::profile::Profile;
use crate::secret::ReadError;
use crate::store::{Location, SourceKind, Store};
use std::path::PathBuf;

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
#[derive(Clone)]
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

    /// Uses these variable names.
    pub fn with_names(mut self, names: EnvNames) -> Resolver<'a> {
        self.names = names;
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
        let Some(found) = store.load(profile)? else {
            return Ok(None);
        };
        let credential = self.verified(found.credential.to_credential(&found.location.detail)?)?;
        Ok(Some(Resolved {
            credential,
            source: Source::Stored(found.location),
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
        if self.env.is_set(&name) {
            Some(name)
        } else if self.env.is_set(&file_name) {
            Some(file_name)
        } else {
            None
        }
    }

    fn read_env_pair(&self, mode: AuthMode) -> Result<Option<Resolved>> {
        let name = self.names.for_mode(mode);
        let file_name = format!("{name}_FILE");
        if self.env.is_set(&name) && self.env.is_set(&file_name) {
            return Err(Error::Usage(format!(
                "both {name} and {file_name} are set; unset one of them"
            )));
        }
        if let Some(value) = self.env.text(&name)? {
            let credential = self.verified(Credential::parse(mode, value.as_bytes(), &name)?)?;
            return Ok(Some(Resolved {
                credential,
                source: Source::Env {
                    variable: name,
                    file: None,
                },
            }));
        }
        let Some(path) = self.env.path(&file_name) else {
            return Ok(None);
        };
        let origin = format!("{file_name} ({})", path.display());
        let bytes = crate::secret::read_config_file(&path).map_err(|e| match e {
            ReadError::TooLarge => Error::InvalidCredential {
                kind: mode.describe(),
                origin: origin.clone(),
                reason: "the file is larger than 64 KiB".into(),
            },
            ReadError::Io(e) => Error::Usage(format!(
                "{file_name} names {}, which cannot be read: {e}",
                path.display()
            )),
        })?;
        let credential = self.verified(Credential::parse(mode, &bytes, &origin)?)?;
        Ok(Some(Resolved {
            credential,
            source: Source::Env {
                variable: file_name,
                file: Some(path),
            },
        }))
    }
}
