//! How credstore authenticates to Vault: one [`AuthMethod`] per way of
//! getting a token, each in its own file, so a new method is one file and
//! one line in [`from_env`].
//!
//! A token a login returns stays in this process's memory only: it is
//! never written to disk, printed or put in an error.

mod approle;
mod role_jwt;
mod token;

use super::client::{Client, Deadline};
use super::config::parse_vault_path;
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;
use zeroize::Zeroizing;

pub(super) use approle::AppRole;
pub(super) use role_jwt::RoleJwt;
pub(super) use token::StaticToken;

/// A token and what Vault said about it when it handed it out.
pub(crate) struct Issued {
    pub(crate) token: SecretString,
    /// Its lease from now; `None` when unknown or it never expires.
    pub(crate) ttl: Option<Duration>,
    pub(crate) renewable: bool,
}

impl Issued {
    /// A token whose lease is not known (a fixed token).
    pub(crate) fn fixed(token: SecretString) -> Issued {
        Issued {
            token,
            ttl: None,
            renewable: false,
        }
    }
}

/// A way to get a Vault token. `Debug` is never derived: the methods hold
/// secrets.
pub(crate) trait AuthMethod: Send + Sync {
    /// Where the token comes from, for messages (never a secret).
    fn source(&self) -> String;

    /// A token to use now: the configured one, or a fresh login. A login
    /// token stays in memory only.
    fn login(&self, client: &Client, deadline: &Deadline) -> Result<Issued>;

    /// Whether a refused token can be cured by logging in again (a login
    /// method), as opposed to a fixed token that stays refused.
    fn can_relogin(&self) -> bool;
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: Option<String>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

/// The token of a login answer (`auth.client_token`) and its lease,
/// checked; `None` when the answer has no token.
pub(crate) fn issued(body: &[u8], what: &str) -> Option<Result<Issued>> {
    let auth = serde_json::from_slice::<LoginAnswer>(body).ok()?.auth?;
    let lease = auth.lease_duration;
    let renewable = auth.renewable;
    let token = Zeroizing::new(auth.client_token?);
    if token.is_empty() {
        return None;
    }
    Some(
        super::config::parse_token(&token, what).map(|token| Issued {
            token,
            ttl: (lease > 0).then(|| Duration::from_secs(lease)),
            renewable,
        }),
    )
}

/// The methods `{PREFIX}_VAULT_AUTH` names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Token,
    AppRole,
    Jwt,
    Kubernetes,
}

/// The mount of a login method: `{PREFIX}_VAULT_AUTH_MOUNT`, else `default`.
fn mount(env: &dyn Environment, names: &EnvNames, default: &str) -> Result<String> {
    match env.text(&names.vault_auth_mount())? {
        Some(m) => parse_vault_path(&m, &names.vault_auth_mount()),
        None => Ok(default.to_string()),
    }
}

/// The method the environment configures. `{PREFIX}_VAULT_AUTH` (`token`,
/// `approle`, `jwt`, `kubernetes`) chooses one; unset, the first found:
/// `VAULT_TOKEN` or `BAO_TOKEN`; AppRole (`VAULT_ROLE_ID` +
/// `VAULT_SECRET_ID` or `VAULT_WRAPPED_SECRET_ID`); a JWT file
/// (`{PREFIX}_VAULT_JWT_FILE`); the token file `$HOME/.vault-token`
/// written by `vault login` / `bao login`.
pub(super) fn from_env(env: &dyn Environment, names: &EnvNames) -> Result<Box<dyn AuthMethod>> {
    let auth_var = names.vault_auth();
    let chosen = match env.text(&auth_var)? {
        None => None,
        Some(v) => Some(match v.trim().to_ascii_lowercase().as_str() {
            "token" => Kind::Token,
            "approle" => Kind::AppRole,
            "jwt" | "oidc" => Kind::Jwt,
            "kubernetes" | "k8s" => Kind::Kubernetes,
            _ => {
                return Err(Error::Usage(format!(
                    "{auth_var} must be token, approle, jwt or kubernetes"
                )))
            }
        }),
    };
    let missing = |what: &str, hint: &str| Error::BackendUnavailable {
        backend: super::BACKEND,
        reason: format!("{auth_var} asks for {what}, but it is not configured"),
        hint: hint.to_string(),
    };
    match chosen {
        Some(Kind::Token) => {
            if let Some(t) = StaticToken::from_variables(env)? {
                return Ok(Box::new(t));
            }
            if let Some(t) = StaticToken::from_token_file(env)? {
                return Ok(Box::new(t));
            }
            Err(missing(
                "a Vault token",
                "Set VAULT_TOKEN, or run `bao login` / `vault login` first.",
            ))
        }
        Some(Kind::AppRole) => match AppRole::from_env(env, mount(env, names, "approle")?)? {
            Some(a) => Ok(Box::new(a)),
            None => Err(missing(
                "AppRole",
                "Set VAULT_ROLE_ID and VAULT_SECRET_ID (or VAULT_WRAPPED_SECRET_ID).",
            )),
        },
        Some(Kind::Jwt) => match RoleJwt::jwt_from_env(env, names, mount(env, names, "jwt")?)? {
            Some(j) => Ok(Box::new(j)),
            None => Err(missing(
                "a JWT login",
                &format!(
                    "Set {} to the file holding the JWT, and {} to the role.",
                    names.vault_jwt_file(),
                    names.vault_role()
                ),
            )),
        },
        Some(Kind::Kubernetes) => Ok(Box::new(RoleJwt::kubernetes_from_env(
            env,
            names,
            mount(env, names, "kubernetes")?,
        )?)),
        None => {
            if let Some(t) = StaticToken::from_variables(env)? {
                return Ok(Box::new(t));
            }
            if let Some(a) = AppRole::from_env(env, mount(env, names, "approle")?)? {
                return Ok(Box::new(a));
            }
            if let Some(j) = RoleJwt::jwt_from_env(env, names, mount(env, names, "jwt")?)? {
                return Ok(Box::new(j));
            }
            if let Some(t) = StaticToken::from_token_file(env)? {
                return Ok(Box::new(t));
            }
            Err(Error::BackendUnavailable {
                backend: super::BACKEND,
                reason: format!(
                    "no Vault token: VAULT_TOKEN (or BAO_TOKEN) is not set, VAULT_ROLE_ID + VAULT_SECRET_ID are not set, {} is not set, and there is no ~/.vault-token",
                    names.vault_jwt_file()
                ),
                hint: format!(
                    "Set VAULT_TOKEN, or AppRole ids, or {} and {} for a JWT login ({}=kubernetes in a pod), or run `bao login` / `vault login` first.",
                    names.vault_jwt_file(),
                    names.vault_role(),
                    auth_var
                ),
            })
        }
    }
}
