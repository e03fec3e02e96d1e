//! Workload-identity login with a JWT: the JWT auth method
//! (`auth/<mount>/login`, mount `jwt`) for a CI OIDC token or a projected
//! service-account token, and the Kubernetes auth method (mount
//! `kubernetes`) for a pod's service-account token. Both send a `role` and
//! a `jwt`; the JWT is read from its file on every login, so a rotated
//! token is picked up, and nothing long-lived sits on the machine.

use super::{issued, AuthMethod, Issued};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::secret::{read_config_file, ReadError};
use crate::store::vault::client::{json_exact, Client, Deadline, Method, Retry};
use crate::store::vault::config::parse_token;
use crate::store::vault::errors::{describe_errors, mentions};
use crate::store::vault::BACKEND;
use secrecy::ExposeSecret;
use std::path::PathBuf;

/// Where a pod's service-account token is mounted.
pub(crate) const KUBERNETES_TOKEN_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Jwt,
    Kubernetes,
}

pub(crate) struct RoleJwt {
    flavour: Flavour,
    mount: String,
    role: String,
    role_var: String,
    file: PathBuf,
    file_var: String,
}

fn role(env: &dyn Environment, names: &EnvNames, what: &str) -> Result<String> {
    let var = names.vault_role();
    match env.text(&var)? {
        Some(r) => {
            let r = r.trim();
            if r.is_empty()
                || r.len() > 256
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
            {
                return Err(Error::Usage(format!(
                    "{var} must be a Vault role name (letters, digits, '.', '_', '-', '@')"
                )));
            }
            Ok(r.to_string())
        }
        None => Err(Error::Usage(format!(
            "a {what} login needs a role: set {var} to the role configured in Vault"
        ))),
    }
}

impl RoleJwt {
    /// A JWT login when `{PREFIX}_VAULT_JWT_FILE` is set.
    pub(crate) fn jwt_from_env(
        env: &dyn Environment,
        names: &EnvNames,
        mount: String,
    ) -> Result<Option<RoleJwt>> {
        let file_var = names.vault_jwt_file();
        let Some(file) = env.path(&file_var) else {
            return Ok(None);
        };
        Ok(Some(RoleJwt {
            flavour: Flavour::Jwt,
            mount,
            role: role(env, names, "JWT")?,
            role_var: names.vault_role(),
            file,
            file_var,
        }))
    }

    /// A Kubernetes login: the JWT file defaults to the pod's
    /// service-account token.
    pub(crate) fn kubernetes_from_env(
        env: &dyn Environment,
        names: &EnvNames,
        mount: String,
    ) -> Result<RoleJwt> {
        let file_var = names.vault_jwt_file();
        Ok(RoleJwt {
            flavour: Flavour::Kubernetes,
            mount,
            role: role(env, names, "Kubernetes")?,
            role_var: names.vault_role(),
            file: env
                .path(&file_var)
                .unwrap_or_else(|| PathBuf::from(KUBERNETES_TOKEN_FILE)),
            file_var,
        })
    }

    fn name(&self) -> &'static str {
        match self.flavour {
            Flavour::Jwt => "JWT",
            Flavour::Kubernetes => "Kubernetes",
        }
    }

    /// The JWT, read now (it may have been rotated since the last login).
    fn read_jwt(&self) -> Result<secrecy::SecretString> {
        let path = &self.file;
        let bytes = read_config_file(path).map_err(|e| match e {
            ReadError::TooLarge => Error::Usage(format!(
                "{} names {}, which is larger than 64 KiB; it cannot be a JWT",
                self.file_var,
                path.display()
            )),
            ReadError::Io(e) => Error::BackendUnavailable {
                backend: BACKEND,
                reason: format!(
                    "the {} login needs the JWT in {}, which cannot be read ({e})",
                    self.name(),
                    path.display()
                ),
                hint: match self.flavour {
                    Flavour::Kubernetes => format!(
                        "In a pod, mount the service account token there (automountServiceAccountToken) or set {} to a projected token's path.",
                        self.file_var
                    ),
                    Flavour::Jwt => format!("Set {} to the file your platform writes the workload's JWT to.", self.file_var),
                },
            },
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::Usage(format!("{} is not a UTF-8 text file", path.display())))?;
        parse_token(text, &format!("the JWT file {}", path.display()))
    }
}

impl AuthMethod for RoleJwt {
    fn source(&self) -> String {
        format!(
            "{} login at auth/{} (role {}, JWT from {})",
            self.name(),
            self.mount,
            self.role,
            self.file.display()
        )
    }

    fn login(&self, client: &Client, deadline: &Deadline) -> Result<Issued> {
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role: &'a str,
            jwt: &'a str,
        }
        let jwt = self.read_jwt()?;
        let body = json_exact(&Login {
            role: &self.role,
            jwt: jwt.expose_secret(),
        });
        drop(jwt);
        let path = format!("auth/{}/login", self.mount);
        // A JWT can be presented again: a retried login at worst leaves an
        // unused token that expires with its TTL.
        let answer = client.request(
            deadline,
            Retry::Idempotent,
            Method::Post,
            &path,
            Some(&body),
            None,
        )?;
        let name = self.name();
        let addr = client.addr_of(&answer);
        match answer.status {
            200 => issued(&answer.body, "the login answer").unwrap_or_else(|| {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the {name} login at {addr} answered without a client token; check that VAULT_ADDR points at Vault"
                    ),
                })
            }),
            404 if answer.is_missing_mount() || mentions(&answer, "unsupported path") => {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "no auth method is mounted at auth/{} on {addr}; enable it (`bao auth enable {}`) or set the auth mount variable to where it is",
                        self.mount,
                        match self.flavour {
                            Flavour::Jwt => "jwt",
                            Flavour::Kubernetes => "kubernetes",
                        }
                    ),
                })
            }
            400 | 401 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the {name} login at {addr} (auth/{}, role {}) was refused ({}): check {} and that the JWT in {} is current and matches the role's bound audience, subject and claims",
                    self.mount,
                    self.role,
                    describe_errors(&answer),
                    self.role_var,
                    self.file.display()
                ),
            }),
            _ => Err(client.failure(&answer, &format!("log in ({name}) at"), &path, None)),
        }
    }

    fn can_relogin(&self) -> bool {
        true
    }
}
