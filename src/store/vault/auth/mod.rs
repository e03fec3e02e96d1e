//! How credstore authenticates to Vault: one [`AuthMethod`] per way of
//! getting a token, each in its own file, so a new method is one file and
//! one line in [`from_env`].

mod approle;
mod token;

use super::client::Client;
use crate::env::Environment;
use crate::error::Result;
use secrecy::SecretString;

pub(super) use approle::AppRole;
pub(super) use token::StaticToken;

/// A way to get a Vault token. `Debug` is never derived: the methods hold
/// secrets.
pub(crate) trait AuthMethod: Send + Sync {
    /// Where the token comes from, for messages (never a secret).
    fn source(&self) -> String;

    /// A token to use now: the configured one, or a fresh login. A login
    /// token stays in memory only.
    fn login(&self, client: &Client) -> Result<SecretString>;

    /// Whether a refused token can be cured by logging in again (a login
    /// method), as opposed to a fixed token that stays refused.
    fn can_relogin(&self) -> bool;
}

/// The method the environment configures, first found: `VAULT_TOKEN` or
/// `BAO_TOKEN`; AppRole (`VAULT_ROLE_ID` + `VAULT_SECRET_ID`); the token
/// file `$HOME/.vault-token` written by `vault login` / `bao login`.
pub(super) fn from_env(env: &dyn Environment) -> Result<Box<dyn AuthMethod>> {
    if let Some(t) = StaticToken::from_variables(env)? {
        return Ok(Box::new(t));
    }
    if let Some(a) = AppRole::from_env(env)? {
        return Ok(Box::new(a));
    }
    if let Some(t) = StaticToken::from_token_file(env)? {
        return Ok(Box::new(t));
    }
    Err(crate::Error::BackendUnavailable {
        backend: super::BACKEND,
        reason: "no Vault token: VAULT_TOKEN (or BAO_TOKEN) is not set, VAULT_ROLE_ID + VAULT_SECRET_ID are not set, and there is no ~/.vault-token".into(),
        hint: "Set VAULT_TOKEN, or AppRole ids, or run `bao login` / `vault login` first.".into(),
    })
}
