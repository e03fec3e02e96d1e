//! AppRole login (`auth/approle/login`) with `VAULT_ROLE_ID` and
//! `VAULT_SECRET_ID`.

use super::AuthMethod;
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::store::vault::client::{json_exact, Client, Method};
use crate::store::vault::config::parse_token;
use crate::store::vault::errors::describe_errors;
use crate::store::vault::BACKEND;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

pub(crate) struct AppRole {
    role_id: SecretString,
    secret_id: SecretString,
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: Option<String>,
}

/// The token of a login answer (`auth.client_token`), checked.
pub(crate) fn client_token(body: &[u8], what: &str) -> Option<Result<SecretString>> {
    let token = serde_json::from_slice::<LoginAnswer>(body)
        .ok()
        .and_then(|a| a.auth)
        .and_then(|a| a.client_token)
        .map(Zeroizing::new)
        .filter(|t| !t.is_empty())?;
    Some(parse_token(&token, what))
}

impl AppRole {
    pub(crate) fn from_env(env: &dyn Environment) -> Result<Option<AppRole>> {
        match (env.text("VAULT_ROLE_ID")?, env.text("VAULT_SECRET_ID")?) {
            (Some(role_id), Some(secret_id)) => Ok(Some(AppRole {
                role_id: parse_token(&role_id, "VAULT_ROLE_ID")?,
                secret_id: parse_token(&secret_id, "VAULT_SECRET_ID")?,
            })),
            (Some(_), None) | (None, Some(_)) => Err(Error::Usage(
                "AppRole login needs both VAULT_ROLE_ID and VAULT_SECRET_ID; only one is set"
                    .into(),
            )),
            (None, None) => Ok(None),
        }
    }
}

impl AuthMethod for AppRole {
    fn source(&self) -> String {
        "AppRole login (VAULT_ROLE_ID, VAULT_SECRET_ID)".into()
    }

    fn login(&self, client: &Client) -> Result<SecretString> {
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let body = json_exact(&Login {
            role_id: self.role_id.expose_secret(),
            secret_id: self.secret_id.expose_secret(),
        });
        let path = "auth/approle/login";
        let answer = client.request(Method::Post, path, Some(&body), None)?;
        match answer.status {
            200 => client_token(&answer.body, "the AppRole login answer").unwrap_or_else(|| {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the AppRole login at {} answered without a client token; check that VAULT_ADDR points at Vault",
                        client.addr()
                    ),
                })
            }),
            400 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "AppRole login at {} was refused ({}): check VAULT_ROLE_ID and VAULT_SECRET_ID (a secret id can expire or run out of uses) and that AppRole is enabled at auth/approle",
                    client.addr(),
                    describe_errors(&answer)
                ),
            }),
            _ => Err(client.failure(&answer, "log in with AppRole at", path, None)),
        }
    }

    fn can_relogin(&self) -> bool {
        true
    }
}
