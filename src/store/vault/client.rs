//! HTTP to Vault: one request at a time under the configured deadline,
//! answers read into bounded, zeroized buffers, and each failure turned into
//! an error that says what happened and what to do.

use super::config::VaultConfig;
use super::errors::{describe_errors, mentions};
use super::BACKEND;
use crate::error::{Error, Result};
use crate::secret::{read_config_file, ReadError, READ_LIMIT};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// A status and a body read into a bounded, zeroized buffer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

impl Answer {
    /// A 404 for a path no secrets engine is mounted at.
    pub(crate) fn is_missing_mount(&self) -> bool {
        self.status == 404 && mentions(self, "no handler for route")
    }
}

/// What the failure messages need to know about the configuration.
struct Scope {
    mount: String,
    prefix: String,
    timeout_variable: String,
}

/// The HTTP side of a [`VaultStore`](super::VaultStore).
pub(crate) struct Client {
    addr: String,
    namespace: Option<String>,
    timeout: Duration,
    agent: ureq::Agent,
    scope: Scope,
}

impl Client {
    /// A client for `config`. Reads the `VAULT_CACERT` file now, so a bad
    /// CA file is reported before any request.
    pub(crate) fn new(config: &VaultConfig) -> Result<Client> {
        let ca_certs = match &config.ca_cert {
            Some(path) => Some(read_ca_file(path)?),
            None => None,
        };
        let agent = crate::http::client(&crate::http::ClientOptions {
            timeout: config.timeout,
            loopback: crate::http::is_loopback_url(&config.addr),
            ca_certs,
        });
        Ok(Client {
            addr: config.addr.clone(),
            namespace: config.namespace.clone(),
            timeout: config.timeout,
            agent,
            scope: Scope {
                mount: config.mount.clone(),
                prefix: config.prefix.clone(),
                timeout_variable: config.names.http_timeout(),
            },
        })
    }

    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// One HTTP request to `/v1/<path>` within the configured deadline.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> Result<Answer> {
        let url = format!("{}/v1/{path}", self.addr);
        let what = format!("{} {path}", method.as_str());
        let namespace = self.namespace.as_deref();
        let sent = match method {
            Method::Get => with_headers(self.agent.get(&url), token, namespace).call(),
            Method::Delete => with_headers(self.agent.delete(&url), token, namespace).call(),
            Method::Post => with_headers(self.agent.post(&url), token, namespace)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(b"{}")),
        };
        let mut response = sent.map_err(|e| self.transport_error(e, &what))?;
        let status = response.status().as_u16();
        let body = crate::http::read_body(&mut response).map_err(|e| match e {
            ReadError::TooLarge => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the answer to {what} from {} is larger than {} KiB, so credstore stopped reading; check that VAULT_ADDR points at Vault",
                    self.addr,
                    READ_LIMIT / 1024
                ),
            },
            ReadError::Io(e) => self.transport_error(ureq::Error::from(e), &what),
        })?;
        Ok(Answer { status, body })
    }

    fn transport_error(&self, e: ureq::Error, what: &str) -> Error {
        let addr = &self.addr;
        let unreachable = |reason: String| Error::BackendUnavailable {
            backend: BACKEND,
            reason,
            hint:
                "Check VAULT_ADDR and that the server is running (`bao status` / `vault status`)."
                    .into(),
        };
        match e {
            ureq::Error::Timeout(_) => self.timeout_error(what),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                self.timeout_error(what)
            }
            ureq::Error::HostNotFound => {
                unreachable(format!("cannot resolve the host of VAULT_ADDR ({addr})"))
            }
            ureq::Error::ConnectionFailed => unreachable(format!("cannot connect to {addr}")),
            // rustls reports a failed handshake (untrusted certificate,
            // wrong host, not TLS at all) as invalid data on the stream.
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                self.tls_error(&io)
            }
            ureq::Error::Io(io) => unreachable(format!("cannot reach {addr} ({io})")),
            e @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_)) => {
                self.tls_error(&e)
            }
            e => Error::Backend {
                backend: BACKEND,
                message: format!("{what} at {addr} failed ({e}); check VAULT_ADDR"),
            },
        }
    }

    fn tls_error(&self, e: &dyn std::fmt::Display) -> Error {
        Error::BackendUnavailable {
            backend: BACKEND,
            reason: format!("TLS with {} failed ({e})", self.addr),
            hint: "If the server's certificate comes from a private CA, set VAULT_CACERT to that CA's PEM file; check that VAULT_ADDR uses the right scheme (http:// or https://) and host name.".into(),
        }
    }

    fn timeout_error(&self, what: &str) -> Error {
        Error::Timeout {
            backend: BACKEND,
            seconds: self.timeout.as_secs(),
            what: format!("{what} at {}", self.addr),
            hint: format!(
                "the server or the network did not answer in time; check it with `bao status` / `vault status`, or raise {} for a slow link",
                self.scope.timeout_variable
            ),
        }
    }

    /// The error for an answer that is not what the operation expects.
    /// `auth_source` names where the token came from, for a 403.
    pub(crate) fn failure(
        &self,
        answer: &Answer,
        verb: &str,
        path: &str,
        auth_source: Option<&str>,
    ) -> Error {
        let addr = &self.addr;
        let mount = &self.scope.mount;
        let described = describe_errors(answer);
        match answer.status {
            403 => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "permission denied: Vault at {addr} refused to let the token{} {verb} {path} ({described}). The token may have expired, or its policies do not cover this path; it needs `path \"{mount}/data/{prefix}/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}` and `path \"{mount}/metadata/{prefix}/*\" {{ capabilities = [\"read\", \"delete\"] }}`",
                    auth_source.map(|s| format!(" from {s}")).unwrap_or_default(),
                    prefix = self.scope.prefix,
                ),
            },
            404 if answer.is_missing_mount() => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "no secrets engine is mounted at {mount}/ on {addr}{}: set the mount variable to your KV v2 mount, or enable one with `bao secrets enable -path={mount} kv-v2`",
                    self.namespace
                        .as_deref()
                        .map(|ns| format!(" (namespace {ns})"))
                        .unwrap_or_default()
                ),
            },
            503 => {
                let sealed = mentions(answer, "sealed") || self.is_sealed().unwrap_or(false);
                if sealed {
                    Error::BackendUnavailable {
                        backend: BACKEND,
                        reason: format!("Vault at {addr} is sealed, so nothing can be read or written"),
                        hint: "An operator must unseal it (`bao operator unseal` / `vault operator unseal`); then run the command again.".into(),
                    }
                } else {
                    Error::BackendUnavailable {
                        backend: BACKEND,
                        reason: format!("Vault at {addr} is not ready to serve ({described})"),
                        hint: "It may be starting, in standby or uninitialized; check `bao status` and run the command again.".into(),
                    }
                }
            }
            300..=399 => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "Vault at {addr} answered {verb} {path} with a redirect (HTTP {}); credstore does not follow redirects, so the token is not sent elsewhere: set VAULT_ADDR to the active node's address",
                    answer.status
                ),
            },
            429 => Error::BackendUnavailable {
                backend: BACKEND,
                reason: format!("Vault at {addr} is rate limiting requests ({described})"),
                hint: "Wait a moment and run the command again.".into(),
            },
            _ => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "Vault at {addr} could not {verb} {path} ({described}); check the server's log and `bao status`"
                ),
            },
        }
    }

    /// Asks the unauthenticated `sys/seal-status` whether Vault is sealed.
    fn is_sealed(&self) -> Option<bool> {
        #[derive(Deserialize)]
        struct SealStatus {
            sealed: bool,
        }
        let answer = self
            .request(Method::Get, "sys/seal-status", None, None)
            .ok()?;
        (answer.status == 200)
            .then(|| serde_json::from_slice::<SealStatus>(&answer.body).ok())
            .flatten()
            .map(|s| s.sealed)
    }
}

/// Adds the headers every request carries.
fn with_headers<B>(
    mut r: ureq::RequestBuilder<B>,
    token: Option<&SecretString>,
    namespace: Option<&str>,
) -> ureq::RequestBuilder<B> {
    r = r
        .header("Accept", "application/json")
        .header("X-Vault-Request", "true");
    if let Some(t) = token {
        r = r.header("X-Vault-Token", t.expose_secret());
    }
    if let Some(ns) = namespace {
        r = r.header("X-Vault-Namespace", ns);
    }
    r
}

/// Serializes into a zeroized buffer sized exactly (no reallocation copy).
pub(crate) fn json_exact<T: serde::Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    struct Counter(usize);
    impl Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing plain strings cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    let _ = serde_json::to_writer(&mut *out, value);
    out
}

fn read_ca_file(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = read_config_file(path).map_err(|e| {
        Error::Usage(match e {
            ReadError::TooLarge => format!(
                "VAULT_CACERT names {}, which is larger than 64 KiB",
                path.display()
            ),
            ReadError::Io(e) => format!(
                "VAULT_CACERT names {}, which cannot be opened ({e})",
                path.display()
            ),
        })
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(_) => {
                return Err(Error::Usage(format!(
                    "VAULT_CACERT names {}, which is not a valid PEM file",
                    path.display()
                )))
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "VAULT_CACERT names {}, which holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}
