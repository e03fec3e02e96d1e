//! Credentials: an [`AgentIdentity`] (a JWT carrying an Ed25519 private key
//! and account facts) or an [`ApiKey`]. A value of these types exists only if
//! it passed every rule of SPEC §1; decoded material lives only at run time.

mod agent_identity;
mod api_key;
pub(crate) mod claim;

pub use agent_identity::{AgentIdentity, Claims, JwtHeader};
pub use api_key::ApiKey;

/// Test tokens (`tests/common/tokens.rs`), shared with other modules' tests.
#[cfg(test)]
pub(crate) use agent_identity::tokens;

use crate::error::Result;

/// Largest agent identity accepted, after trimming (SPEC §1.1).
pub const MAX_AGENT_IDENTITY_BYTES: usize = 16 * 1024;
/// Largest API key accepted, after trimming (SPEC §1.2).
pub const MAX_API_KEY_BYTES: usize = 4 * 1024;
/// Leeway when deciding whether a token has expired, in seconds.
pub const EXPIRY_LEEWAY_SECS: i64 = 60;

/// The two kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// An agent identity JWT.
    AgentIdentity,
    /// An opaque API key.
    ApiKey,
}

impl AuthMode {
    /// The name used in the stored form and in `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::AgentIdentity => "agent_identity",
            AuthMode::ApiKey => "api_key",
        }
    }

    /// A human name, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            AuthMode::AgentIdentity => "agent identity",
            AuthMode::ApiKey => "API key",
        }
    }
}

/// A validated credential. `Debug` never shows a secret.
#[derive(Debug)]
pub enum Credential {
    /// An API key.
    ApiKey(ApiKey),
    /// An agent identity (boxed: it holds the parsed signing key).
    AgentIdentity(Box<AgentIdentity>),
}

impl Credential {
    /// Parses `input` (surrounding whitespace is trimmed) as a credential of
    /// the given kind; `origin` names its source in errors.
    pub fn parse(mode: AuthMode, input: &[u8], origin: &str) -> Result<Credential> {
        Ok(match mode {
            AuthMode::ApiKey => Credential::ApiKey(ApiKey::parse(input, origin)?),
            AuthMode::AgentIdentity => {
                Credential::AgentIdentity(Box::new(AgentIdentity::parse(input, origin)?))
            }
        })
    }

    /// Which kind this is.
    pub fn auth_mode(&self) -> AuthMode {
        match self {
            Credential::ApiKey(_) => AuthMode::ApiKey,
            Credential::AgentIdentity(_) => AuthMode::AgentIdentity,
        }
    }

    /// The agent identity, if this is one.
    pub fn agent_identity(&self) -> Option<&AgentIdentity> {
        match self {
            Credential::AgentIdentity(id) => Some(id),
            Credential::ApiKey(_) => None,
        }
    }

    /// The raw token (JWT or API key). This is the one place a credential's
    /// secret leaves the wrapper, for `token`, storage and request headers.
    pub fn expose_token(&self) -> &str {
        match self {
            Credential::ApiKey(k) => k.expose(),
            Credential::AgentIdentity(id) => id.expose_token(),
        }
    }

    /// Refuses an expired agent identity (an API key never expires).
    pub fn ensure_not_expired(&self, now: i64, origin: &str) -> Result<()> {
        match self {
            Credential::AgentIdentity(id) => id.ensure_not_expired(now, origin),
            Credential::ApiKey(_) => Ok(()),
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Formats seconds since the epoch as RFC 3339 (seconds, `Z`); out-of-range
/// values are shown as the raw number.
pub fn rfc3339(secs: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} (seconds since epoch)"))
}
