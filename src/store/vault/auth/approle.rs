//! AppRole login (`auth/<mount>/login`, mount `approle` unless
//! `{PREFIX}_VAULT_AUTH_MOUNT` says otherwise) with `VAULT_ROLE_ID` and
//! either `VAULT_SECRET_ID` or `VAULT_WRAPPED_SECRET_ID`: a response-wrapping
//! token that holds the secret id, unwrapped once (`sys/wrapping/unwrap`)
//! on the first login and then kept in memory only.

use super::{issued, AuthMethod, Issued};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::store::vault::client::{json_exact, Client, Deadline, Method, Retry};
use crate::store::vault::config::parse_token;
use crate::store::vault::errors::{describe_errors, mentions};
use crate::store::vault::BACKEND;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Mutex;
use zeroize::Zeroizing;

pub(crate) struct AppRole {
    role_id: SecretString,
    mount: String,
    secret: Mutex<Secret>,
}

enum Secret {
    Plain(SecretString),
    /// A wrapping token, not unwrapped yet.
    Wrapped(SecretString),
    /// Unwrapping was tried and failed: a wrapping token is single use,
    /// so it is not tried again.
    Spent,
}

impl AppRole {
    pub(crate) fn from_env(env: &dyn Environment, mount: String) -> Result<Option<AppRole>> {
        let role_id = env.text("VAULT_ROLE_ID")?;
        let secret_id = env.text("VAULT_SECRET_ID")?;
        let wrapped = env.text("VAULT_WRAPPED_SECRET_ID")?;
        let secret = match (&secret_id, &wrapped) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(
                    "VAULT_SECRET_ID and VAULT_WRAPPED_SECRET_ID are both set; unset one".into(),
                ))
            }
            (Some(s), None) => Some(Secret::Plain(parse_token(s, "VAULT_SECRET_ID")?)),
            (None, Some(w)) => Some(Secret::Wrapped(parse_token(w, "VAULT_WRAPPED_SECRET_ID")?)),
            (None, None) => None,
        };
        match (role_id, secret) {
            (Some(role_id), Some(secret)) => Ok(Some(AppRole {
                role_id: parse_token(&role_id, "VAULT_ROLE_ID")?,
                mount,
                secret: Mutex::new(secret),
            })),
            (Some(_), None) | (None, Some(_)) => Err(Error::Usage(
                "AppRole login needs VAULT_ROLE_ID and VAULT_SECRET_ID (or VAULT_WRAPPED_SECRET_ID); only one is set"
                    .into(),
            )),
            (None, None) => Ok(None),
        }
    }

    /// The secret id, unwrapping it on first use.
    fn secret_id(&self, client: &Client, deadline: &Deadline) -> Result<SecretString> {
        let mut slot = self.secret.lock().map_err(|_| Error::Backend {
            backend: BACKEND,
            message: "the AppRole lock was poisoned by a panic in another thread".into(),
        })?;
        match &*slot {
            Secret::Plain(s) => return Ok(crate::secret::secret_string(s.expose_secret())),
            Secret::Spent => {
                return Err(Error::Backend {
                    backend: BACKEND,
                    message: "the wrapped secret id in VAULT_WRAPPED_SECRET_ID could not be unwrapped earlier, and a wrapping token works only once; get a new one".into(),
                })
            }
            Secret::Wrapped(_) => {}
        }
        let Secret::Wrapped(wrapping) = std::mem::replace(&mut *slot, Secret::Spent) else {
            return Err(Error::Backend {
                backend: BACKEND,
                message: "the AppRole secret id changed state unexpectedly".into(),
            });
        };
        let path = "sys/wrapping/unwrap";
        let answer = client.request(
            deadline,
            Retry::UntilSent,
            Method::Post,
            path,
            None,
            Some(&wrapping),
        )?;
        match answer.status {
            200 => {
                #[derive(Deserialize)]
                struct Unwrapped {
                    data: Option<UnwrappedData>,
                }
                #[derive(Deserialize)]
                struct UnwrappedData {
                    secret_id: Option<String>,
                }
                let secret = serde_json::from_slice::<Unwrapped>(&answer.body)
                    .ok()
                    .and_then(|u| u.data)
                    .and_then(|d| d.secret_id)
                    .map(Zeroizing::new)
                    .ok_or_else(|| Error::Backend {
                        backend: BACKEND,
                        message: format!(
                            "VAULT_WRAPPED_SECRET_ID unwrapped at {} to something that is not an AppRole secret id (wrap the answer of `auth/approle/role/NAME/secret-id`)",
                            client.addr_of(&answer)
                        ),
                    })?;
                let secret = parse_token(&secret, "the unwrapped secret id")?;
                *slot = Secret::Plain(crate::secret::secret_string(secret.expose_secret()));
                Ok(secret)
            }
            400 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "Vault at {} refused to unwrap VAULT_WRAPPED_SECRET_ID ({}): the wrapping token expired or was already unwrapped. A wrapping token works once, so if this process did not use it, someone else may have: get a new one and check Vault's audit log",
                    client.addr_of(&answer),
                    describe_errors(&answer)
                ),
            }),
            _ => Err(client.failure(&answer, "unwrap the secret id at", path, None)),
        }
    }
}

impl AuthMethod for AppRole {
    fn source(&self) -> String {
        let secret = match self.secret.lock().as_deref() {
            Ok(Secret::Plain(_)) | Err(_) => "VAULT_SECRET_ID",
            Ok(_) => "VAULT_WRAPPED_SECRET_ID",
        };
        format!(
            "AppRole login at auth/{} (VAULT_ROLE_ID, {secret})",
            self.mount
        )
    }

    fn login(&self, client: &Client, deadline: &Deadline) -> Result<Issued> {
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let secret_id = self.secret_id(client, deadline)?;
        let body = json_exact(&Login {
            role_id: self.role_id.expose_secret(),
            secret_id: secret_id.expose_secret(),
        });
        let path = format!("auth/{}/login", self.mount);
        // Not repeated after an ambiguous failure: a secret id may be
        // limited to a number of uses.
        let answer = client.request(
            deadline,
            Retry::UntilSent,
            Method::Post,
            &path,
            Some(&body),
            None,
        )?;
        match answer.status {
            200 => issued(&answer.body, "the AppRole login answer").unwrap_or_else(|| {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the AppRole login at {} answered without a client token; check that VAULT_ADDR points at Vault",
                        client.addr_of(&answer)
                    ),
                })
            }),
            404 if answer.is_missing_mount() || mentions(&answer, "unsupported path") => {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "no AppRole auth method is mounted at auth/{} on {}; enable it (`bao auth enable approle`) or set the auth mount variable to where it is",
                        self.mount,
                        client.addr_of(&answer)
                    ),
                })
            }
            400 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "AppRole login at {} was refused ({}): check VAULT_ROLE_ID and VAULT_SECRET_ID (a secret id can expire or run out of uses) and that AppRole is enabled at auth/{}",
                    client.addr_of(&answer),
                    describe_errors(&answer),
                    self.mount
                ),
            }),
            _ => Err(client.failure(&answer, "log in with AppRole at", &path, None)),
        }
    }

    fn can_relogin(&self) -> bool {
        true
    }
}
