//! HTTP to Vault: every operation under one deadline, retried and failed
//! over inside it; answers read into bounded, zeroized buffers; each
//! failure turned into an error that says what happened and what to do.
//!
//! # Retries and fail-over
//!
//! The configured addresses are tried in order, starting with the one that
//! answered last. An address that answers 412, 429, 472, 473 or 503 (not
//! caught up, rate limited, a standby that cannot serve, sealed, no leader
//! yet), a 400 "waiting for the primary to upgrade" (a standby's KV copy), a
//! redirect (never followed: the token would go elsewhere), a 500/502/504,
//! or whose connection fails or is reset, is followed by the next one; a
//! round over all of them is repeated after a pause that doubles (100 ms
//! to 2 s) with jitter, at most [`ROUNDS`] rounds, never past the deadline.
//! A sealed or redirecting address is not asked again in the same call.
//!
//! That is for requests that may be repeated ([`Retry::Idempotent`]:
//! reads, deletes, logins). A request that must not be applied twice
//! ([`Retry::UntilSent`]: a check-and-set write, an unwrap) is repeated
//! only after failures where the server surely did not apply it (a refused
//! connection, 412/429/472/473/503); after an ambiguous one (a reset
//! connection, no answer in time, 500/502/504) it is handed back with
//! [`Failure::maybe_applied`] set, and the caller learns the outcome
//! (the write reads the version back).

use super::config::VaultConfig;
use super::errors::{describe_errors, mentions};
use super::BACKEND;
use crate::error::{Error, Result};
use crate::secret::{read_config_file, ReadError, READ_LIMIT};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Rounds over the addresses before a call gives up (if the deadline has
/// not ended it first).
pub(crate) const ROUNDS: u32 = 6;
/// The first pause between rounds; it doubles each round.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between rounds.
const MAX_PAUSE: Duration = Duration::from_secs(2);

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

/// Whether a request may be sent again after an ambiguous failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Retry {
    /// Sending it twice does no harm (reads, deletes, logins).
    Idempotent,
    /// Sent again only when the server surely did not apply it.
    UntilSent,
}

/// The end of one operation: every request, retry, fail-over and login it
/// makes ends by then. `{PREFIX}_HTTP_TIMEOUT` long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    end: Instant,
}

impl Deadline {
    pub(crate) fn after(limit: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + limit,
        }
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Sleeps for `pause`, or returns `false` without sleeping when the
    /// deadline would pass first.
    pub(crate) fn pause(&self, pause: Duration) -> bool {
        // Leave time for at least one more short request after the pause.
        if self.remaining() <= pause + Duration::from_millis(50) {
            return false;
        }
        std::thread::sleep(pause);
        true
    }
}

/// The pause before round `round` (1, 2, …): doubling from 100 ms up to
/// 2 s, half of it fixed and half random, so clients that failed together
/// do not come back together.
pub(crate) fn backoff(round: u32) -> Duration {
    let full = FIRST_PAUSE
        .saturating_mul(1u32 << round.saturating_sub(1).min(16))
        .min(MAX_PAUSE);
    let half = full / 2;
    half + half.mul_f64(jitter())
}

/// A number in [0, 1) that differs between calls and processes (not for
/// cryptography: only to spread retries).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A status and a body read into a bounded, zeroized buffer, and which
/// address answered.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Zeroizing<Vec<u8>>,
    pub(crate) node: usize,
}

impl Answer {
    /// A 404 for a path no secrets engine is mounted at.
    pub(crate) fn is_missing_mount(&self) -> bool {
        self.status == 404 && mentions(self, "no handler for route")
    }
}

/// A request that failed without an answer to hand back.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The server may have applied the request (the connection broke
    /// after it was sent, or no answer came in time).
    pub(crate) maybe_applied: bool,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        f.error
    }
}

/// What an answer means for the retry loop.
enum Served {
    /// The caller's to interpret (2xx, 4xx, …).
    Yes,
    /// Not served here, nothing applied: ask the next address. `skip`:
    /// not this address again in this call (sealed, redirecting).
    No { skip: bool },
    /// A server error after which the request may have been applied.
    Maybe,
}

fn served(answer: &Answer) -> Served {
    match answer.status {
        // 412: a node that has not caught up with the X-Vault-Index sent
        // (Vault Enterprise, when it may not forward); the others: rate
        // limited, a DR or performance standby that cannot serve.
        412 | 429 | 472 | 473 => Served::No { skip: false },
        503 => Served::No {
            skip: mentions(answer, "sealed"),
        },
        300..=399 => Served::No { skip: true },
        // A standby whose KV mount waits for the active node (right after
        // the mount was made, or while a new leader takes over).
        400 if mentions(answer, "waiting for the primary to upgrade") => Served::No { skip: false },
        500 | 502 | 504 => Served::Maybe,
        _ => Served::Yes,
    }
}

/// A transport error in a few words, for the summary of every address.
fn short(e: &Error) -> String {
    match e {
        Error::Timeout { .. } => "no answer in time".into(),
        Error::BackendUnavailable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// One configured address and its HTTP agent (loopback ones bypass any
/// proxy, so each has its own).
struct Node {
    addr: String,
    agent: ureq::Agent,
}

/// What the failure messages need to know about the configuration.
struct Scope {
    mount: String,
    prefix: String,
    timeout_variable: String,
}

/// The HTTP side of a [`VaultStore`](super::VaultStore).
pub(crate) struct Client {
    nodes: Vec<Node>,
    /// The address that answered last: the first one asked next time.
    preferred: AtomicUsize,
    /// The newest `X-Vault-Index` a write answered with: sent with later
    /// requests (and `X-Vault-Inconsistent: forward-active-node`), so a
    /// standby that has not applied that write yet forwards the request to
    /// the active node instead of answering (or checking a write's
    /// check-and-set version) from an older state.
    index: std::sync::Mutex<Option<String>>,
    namespace: Option<String>,
    timeout: Duration,
    scope: Scope,
}

/// How one attempt failed before an answer came.
enum Broken {
    /// Nothing reached the server (no such host, connection refused).
    NotSent(Error),
    /// The request may have reached it (reset, closed, no answer in time).
    Maybe(Error),
    /// Retrying cannot help (TLS, a malformed answer, a bad URL).
    Fatal(Error),
}

impl Client {
    /// A client for `config`. Reads the `VAULT_CACERT` file now, so a bad
    /// CA file is reported before any request.
    pub(crate) fn new(config: &VaultConfig) -> Result<Client> {
        let ca_certs = match &config.ca_cert {
            Some(path) => Some(read_ca_file(path)?),
            None => None,
        };
        let nodes = config
            .addrs
            .iter()
            .map(|addr| Node {
                addr: addr.clone(),
                agent: crate::http::client(&crate::http::ClientOptions {
                    timeout: config.timeout,
                    loopback: crate::http::is_loopback_url(addr),
                    ca_certs: ca_certs.clone(),
                }),
            })
            .collect();
        Ok(Client {
            nodes,
            preferred: AtomicUsize::new(0),
            index: std::sync::Mutex::new(None),
            namespace: config.namespace.clone(),
            timeout: config.timeout,
            scope: Scope {
                mount: config.mount.clone(),
                prefix: config.prefix.clone(),
                timeout_variable: config.names.http_timeout(),
            },
        })
    }

    /// The address that answered `answer`.
    pub(crate) fn addr_of(&self, answer: &Answer) -> &str {
        self.addr(answer.node)
    }

    fn addr(&self, node: usize) -> &str {
        self.nodes.get(node).map(|n| n.addr.as_str()).unwrap_or("")
    }

    /// Every address, for messages: `a` or `a, b and c`.
    pub(crate) fn addrs_text(&self) -> String {
        let all: Vec<&str> = self.nodes.iter().map(|n| n.addr.as_str()).collect();
        match all.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => all.join(""),
        }
    }

    /// A request to `/v1/<path>`, retried and failed over as the module
    /// docs say, within `deadline`.
    pub(crate) fn request(
        &self,
        deadline: &Deadline,
        retry: Retry,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> std::result::Result<Answer, Failure> {
        let n = self.nodes.len().max(1);
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut skip = vec![false; n];
        // The last problem seen at each address, for the final error.
        let mut problems: Vec<Option<String>> = vec![None; n];
        let mut last_answer: Option<Answer> = None;
        let mut last_broken: Option<Failure> = None;
        'rounds: for round in 0..ROUNDS {
            if round > 0 && !deadline.pause(backoff(round)) {
                break;
            }
            let order: Vec<usize> = (0..n)
                .map(|i| (start + i) % n)
                .filter(|&i| !skip[i])
                .collect();
            if order.is_empty() {
                break;
            }
            for (k, &node) in order.iter().enumerate() {
                let remaining = deadline.remaining();
                if remaining.is_zero() {
                    break 'rounds;
                }
                // Leave the later addresses a share of the time, so one
                // silent address does not use all of it.
                let left = (order.len() - k) as u32;
                let budget = if left == 1 {
                    remaining
                } else {
                    (remaining / left).max(remaining.min(Duration::from_secs(2)))
                };
                match self.attempt(node, budget, method, path, body, token) {
                    Ok(answer) => match served(&answer) {
                        Served::Yes => {
                            self.preferred.store(node, Ordering::Relaxed);
                            return Ok(answer);
                        }
                        Served::No { skip: s } => {
                            skip[node] |= s;
                            last_answer = Some(answer);
                        }
                        Served::Maybe => {
                            if retry == Retry::UntilSent {
                                return Ok(answer);
                            }
                            last_answer = Some(answer);
                        }
                    },
                    Err(Broken::Fatal(error)) => {
                        return Err(Failure {
                            error,
                            maybe_applied: false,
                        })
                    }
                    Err(Broken::Maybe(error)) if retry == Retry::UntilSent => {
                        return Err(Failure {
                            error,
                            maybe_applied: true,
                        })
                    }
                    Err(Broken::Maybe(error)) | Err(Broken::NotSent(error)) => {
                        problems[node] = Some(short(&error));
                        last_broken = Some(Failure {
                            error,
                            maybe_applied: false,
                        });
                    }
                }
            }
        }
        // An answer says more than a connection that failed (a standby
        // saying that no leader is elected yet, a sealed node…).
        if let Some(answer) = last_answer {
            return Ok(answer);
        }
        match last_broken {
            Some(f) if n == 1 => Err(f),
            Some(f) => Err(Failure {
                error: self.none_answered(&problems),
                maybe_applied: f.maybe_applied,
            }),
            None => Err(Failure {
                error: self.timeout_error(&format!("{} {path}", method.as_str()), None),
                maybe_applied: false,
            }),
        }
    }

    fn none_answered(&self, problems: &[Option<String>]) -> Error {
        let each: Vec<String> = problems
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| format!("{}: {p}", self.addr(i))))
            .collect();
        Error::BackendUnavailable {
            backend: BACKEND,
            reason: format!(
                "none of the {} Vault addresses answered ({})",
                self.nodes.len(),
                each.join("; ")
            ),
            hint: "Check VAULT_ADDR / CREDSTORE_VAULT_ADDRS and that the servers are running (`bao status` / `vault status`).".into(),
        }
    }

    /// One HTTP request to one address within `budget`.
    fn attempt(
        &self,
        node: usize,
        budget: Duration,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> std::result::Result<Answer, Broken> {
        let Some(n) = self.nodes.get(node) else {
            return Err(Broken::Fatal(Error::Backend {
                backend: BACKEND,
                message: "no Vault address is configured".into(),
            }));
        };
        let url = format!("{}/v1/{path}", n.addr);
        let what = format!("{} {path}", method.as_str());
        let namespace = self.namespace.as_deref();
        let connect = budget.min(crate::http::MAX_CONNECT_TIMEOUT);
        // A standby also runs a write's checks (check-and-set) against its
        // own copy before it forwards the write: the index makes it forward
        // at once when that copy is behind this process's last write.
        let index = self.index.lock().ok().and_then(|i| i.clone());
        let index = index.as_deref();
        let sent = match method {
            Method::Get => with_headers(
                n.agent
                    .get(&url)
                    .config()
                    .timeout_global(Some(budget))
                    .timeout_connect(Some(connect))
                    .build(),
                token,
                namespace,
                index,
            )
            .call(),
            Method::Delete => with_headers(
                n.agent
                    .delete(&url)
                    .config()
                    .timeout_global(Some(budget))
                    .timeout_connect(Some(connect))
                    .build(),
                token,
                namespace,
                index,
            )
            .call(),
            Method::Post => with_headers(
                n.agent
                    .post(&url)
                    .config()
                    .timeout_global(Some(budget))
                    .timeout_connect(Some(connect))
                    .build(),
                token,
                namespace,
                index,
            )
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(b"{}")),
        };
        let mut response = sent.map_err(|e| self.transport_error(node, e, &what))?;
        let status = response.status().as_u16();
        if let Some(i) = response
            .headers()
            .get("X-Vault-Index")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 4096 && v.bytes().all(|b| b.is_ascii_graphic()))
        {
            if let Ok(mut slot) = self.index.lock() {
                *slot = Some(i.to_string());
            }
        }
        let body = crate::http::read_body(&mut response).map_err(|e| match e {
            ReadError::TooLarge => Broken::Fatal(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the answer to {what} from {} is larger than {} KiB, so credstore stopped reading; check that VAULT_ADDR points at Vault",
                    n.addr,
                    READ_LIMIT / 1024
                ),
            }),
            ReadError::Io(e) => self.transport_error(node, ureq::Error::from(e), &what),
        })?;
        Ok(Answer { status, body, node })
    }

    fn transport_error(&self, node: usize, e: ureq::Error, what: &str) -> Broken {
        use std::io::ErrorKind as K;
        let addr = self.addr(node);
        let unreachable = |reason: String| Error::BackendUnavailable {
            backend: BACKEND,
            reason,
            hint:
                "Check VAULT_ADDR and that the server is running (`bao status` / `vault status`)."
                    .into(),
        };
        match e {
            ureq::Error::Timeout(_) => Broken::Maybe(self.timeout_error(what, Some(node))),
            ureq::Error::Io(io) if io.kind() == K::TimedOut => {
                Broken::Maybe(self.timeout_error(what, Some(node)))
            }
            ureq::Error::HostNotFound => Broken::NotSent(unreachable(format!(
                "cannot resolve the host of VAULT_ADDR ({addr})"
            ))),
            ureq::Error::ConnectionFailed => {
                Broken::NotSent(unreachable(format!("cannot connect to {addr}")))
            }
            // rustls reports a failed handshake (untrusted certificate,
            // wrong host, not TLS at all) as invalid data on the stream.
            ureq::Error::Io(io) if io.kind() == K::InvalidData => {
                Broken::Fatal(self.tls_error(node, &io))
            }
            ureq::Error::Io(io) if matches!(io.kind(), K::ConnectionRefused | K::NotFound) => {
                Broken::NotSent(unreachable(format!("cannot reach {addr} ({io})")))
            }
            ureq::Error::Io(io) => {
                Broken::Maybe(unreachable(format!("cannot reach {addr} ({io})")))
            }
            e @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_)) => {
                Broken::Fatal(self.tls_error(node, &e))
            }
            // A connection closed in the middle of an answer.
            e @ ureq::Error::Protocol(_) => Broken::Maybe(unreachable(format!(
                "the connection to {addr} broke during {what} ({e})"
            ))),
            e => Broken::Fatal(Error::Backend {
                backend: BACKEND,
                message: format!("{what} at {addr} failed ({e}); check VAULT_ADDR"),
            }),
        }
    }

    fn tls_error(&self, node: usize, e: &dyn std::fmt::Display) -> Error {
        Error::BackendUnavailable {
            backend: BACKEND,
            reason: format!("TLS with {} failed ({e})", self.addr(node)),
            hint: "If the server's certificate comes from a private CA, set VAULT_CACERT to that CA's PEM file; check that VAULT_ADDR uses the right scheme (http:// or https://) and host name.".into(),
        }
    }

    /// The error for an operation whose deadline ended.
    pub(crate) fn timeout_error_for(&self, what: &str) -> Error {
        self.timeout_error(what, None)
    }

    fn timeout_error(&self, what: &str, node: Option<usize>) -> Error {
        Error::Timeout {
            backend: BACKEND,
            seconds: self.timeout.as_secs(),
            what: match node {
                Some(n) => format!("{what} at {}", self.addr(n)),
                None => format!("{what} at {}", self.addrs_text()),
            },
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
        let addr = self.addr_of(answer);
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
                if mentions(answer, "sealed") {
                    Error::BackendUnavailable {
                        backend: BACKEND,
                        reason: format!("Vault at {addr} is sealed, so nothing can be read or written"),
                        hint: "An operator must unseal it (`bao operator unseal` / `vault operator unseal`); then run the command again.".into(),
                    }
                } else {
                    Error::BackendUnavailable {
                        backend: BACKEND,
                                reason: format!("Vault at {addr} is not ready to serve ({described})"),
                        hint: "It may be starting, in standby without an active node, or uninitialized; check `bao status` and run the command again.".into(),
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
}

/// Adds the headers every request carries.
fn with_headers<B>(
    mut r: ureq::RequestBuilder<B>,
    token: Option<&SecretString>,
    namespace: Option<&str>,
    index: Option<&str>,
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
    if let Some(i) = index {
        r = r
            .header("X-Vault-Index", i)
            .header("X-Vault-Inconsistent", "forward-active-node");
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

#[cfg(test)]
mod tests {
    //! The retry loop against small loopback fakes (the real cluster is in
    //! tests/vault_cluster.rs).
    use super::*;
    use crate::env::{EnvNames, MapEnv};
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    /// A server answering its n-th request with `answers[n]` (the last one
    /// from then on); `None` holds the connection without answering.
    /// Returns its address and the count of requests it got.
    fn fake(answers: Vec<Option<(u16, &'static str)>>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 8192];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.read(&mut buf);
                let n = seen.fetch_add(1, Ordering::SeqCst);
                match answers[n.min(answers.len() - 1)] {
                    None => held.push(stream),
                    Some((status, body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                }
            }
        });
        (addr, count)
    }

    fn closed() -> String {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    }

    fn client(addrs: &[&str], timeout: u64) -> Client {
        let env = MapEnv::new()
            .with("VAULT_ADDR", addrs.join(","))
            .with("VAULT_TOKEN", "s.tok-SECRET-1234")
            .with("CREDSTORE_HTTP_TIMEOUT", timeout.to_string());
        Client::new(&VaultConfig::from_env(&env, &EnvNames::default()).unwrap()).unwrap()
    }

    fn get(c: &Client, retry: Retry) -> std::result::Result<Answer, Failure> {
        let dl = Deadline::after(c.timeout);
        c.request(&dl, retry, Method::Get, "sys/health", None, None)
    }

    const OK: Option<(u16, &str)> = Some((200, "{}"));

    #[test]
    fn fails_over_in_order_and_remembers_who_answered() {
        let (good, hits) = fake(vec![OK]);
        let dead = closed();
        let c = client(&[&dead, &good], 5);
        let a = get(&c, Retry::Idempotent).unwrap();
        assert_eq!((a.status, c.addr_of(&a)), (200, good.as_str()));
        assert_eq!(c.preferred.load(Ordering::SeqCst), 1);
        get(&c, Retry::Idempotent).unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn retries_what_was_not_served_and_gives_up_after_the_rounds() {
        for status in [412, 429, 472, 473, 503, 500, 502, 504] {
            let (addr, hits) = fake(vec![Some((status, "{}")), OK]);
            let a = get(&client(&[&addr], 5), Retry::Idempotent).unwrap();
            assert_eq!(a.status, 200, "after {status}");
            assert_eq!(hits.load(Ordering::SeqCst), 2, "after {status}");
        }
        // Always 503: ROUNDS attempts, then the last answer for the caller.
        let (addr, hits) = fake(vec![Some((503, r#"{"errors":["no leader"]}"#))]);
        let started = Instant::now();
        let a = get(&client(&[&addr], 10), Retry::Idempotent).unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(hits.load(Ordering::SeqCst), ROUNDS as usize);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Sealed: not asked again in the same call.
        let (addr, hits) = fake(vec![Some((503, r#"{"errors":["Vault is sealed"]}"#))]);
        assert_eq!(
            get(&client(&[&addr], 10), Retry::Idempotent)
                .unwrap()
                .status,
            503
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A standby whose KV copy is not ready yet: asked again.
        let (addr, hits) = fake(vec![
            Some((
                400,
                r#"{"errors":["Waiting for the primary to upgrade from non-versioned to versioned data."]}"#,
            )),
            OK,
        ]);
        assert_eq!(
            get(&client(&[&addr], 5), Retry::Idempotent).unwrap().status,
            200
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // A 4xx is the caller's answer, not retried.
        let (addr, hits) = fake(vec![Some((403, "{}")), OK]);
        assert_eq!(
            get(&client(&[&addr], 5), Retry::Idempotent).unwrap().status,
            403
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_write_is_not_repeated_after_an_ambiguous_failure() {
        // 500 may mean "applied": handed back after one attempt.
        let (addr, hits) = fake(vec![Some((500, "{}")), OK]);
        assert_eq!(
            get(&client(&[&addr], 5), Retry::UntilSent).unwrap().status,
            500
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // 503 means "not served": sent again.
        let (addr, hits) = fake(vec![Some((503, "{}")), OK]);
        assert_eq!(
            get(&client(&[&addr], 5), Retry::UntilSent).unwrap().status,
            200
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        // No answer in time: maybe applied, not sent to the next address.
        let (silent, _) = fake(vec![None]);
        let (good, hits) = fake(vec![OK]);
        let f = match get(&client(&[&silent, &good], 2), Retry::UntilSent) {
            Err(f) => f,
            Ok(a) => panic!("answered {}", a.status),
        };
        assert!(f.maybe_applied);
        assert_eq!(f.error.exit_code(), 4);
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        // A refused connection surely sent nothing: the next address gets it.
        let (good, hits) = fake(vec![OK]);
        let dead = closed();
        assert_eq!(
            get(&client(&[&dead, &good], 5), Retry::UntilSent)
                .unwrap()
                .status,
            200
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn every_retry_stays_inside_the_one_deadline() {
        // A silent first address does not use up the time of the second.
        let (silent, _) = fake(vec![None]);
        let (good, _) = fake(vec![OK]);
        let started = Instant::now();
        let a = get(&client(&[&silent, &good], 3), Retry::Idempotent).unwrap();
        assert_eq!(a.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // Nothing answers: the whole call ends with the deadline.
        let (s1, _) = fake(vec![None]);
        let (s2, _) = fake(vec![None]);
        let started = Instant::now();
        let f = get(&client(&[&s1, &s2], 2), Retry::Idempotent)
            .err()
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(2600),
            "{took:?}"
        );
        let msg = f.error.to_string();
        assert!(
            msg.contains("none of the 2 Vault addresses") && msg.contains(&s1),
            "{msg}"
        );
        // Unreachable everywhere: each address named with its problem.
        let (d1, d2) = (closed(), closed());
        let f = get(&client(&[&d1, &d2], 2), Retry::Idempotent)
            .err()
            .unwrap();
        let msg = f.error.to_string();
        assert!(msg.contains(&format!("{d2}: cannot")), "{msg}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for round in 1..10 {
            let full = FIRST_PAUSE.saturating_mul(1 << (round - 1)).min(MAX_PAUSE);
            let pauses: Vec<Duration> = (0..20).map(|_| backoff(round)).collect();
            assert!(
                pauses.iter().all(|p| *p >= full / 2 && *p <= full),
                "{round}"
            );
            assert!(
                pauses.iter().any(|p| *p != pauses[0]),
                "jitter in round {round}"
            );
        }
    }
}
