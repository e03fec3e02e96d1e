//! The Vault / OpenBao backend (SPEC §4.4): one KV version 2 secret per
//! profile at `<mount>/data/<prefix>/<profile>`, whose data is the stored
//! form of SPEC §2.
//!
//! Configuration follows the Vault CLI ([`VaultConfig::from_env`]). Every
//! request has its own deadline (`CREDSTORE_HTTP_TIMEOUT`, default 10 s)
//! covering connect, send and the whole answer; answers are read into a
//! bounded, zeroized buffer. Writes use check-and-set, so two writers cannot
//! silently overwrite each other, and they work on a mount with
//! `cas_required`. Each failure — unreachable, no answer, sealed, forbidden,
//! missing mount, check-and-set conflict, a bad answer — has its own message
//! saying what happened and what to do. The Vault token, the AppRole ids
//! and the credential never appear in an error or in `Debug` output.
//!
//! A token needs this policy (for the default mount and prefix):
//!
//! ```hcl
//! path "secret/data/credstore/*"     { capabilities = ["create", "read", "update"] }
//! path "secret/metadata/credstore/*" { capabilities = ["read", "delete"] }
//! ```

use super::{Location, SourceKind, Store};
use crate::credential::claim::describe_json_error;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::resolve::{non_blank, Environment};
use crate::secret::{read_bounded, secret_string, ReadError, READ_LIMIT};
use crate::stored::StoredCredential;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

const BACKEND: &str = "vault";

/// The KV v2 mount used when `CREDSTORE_VAULT_MOUNT` is not set.
pub const DEFAULT_MOUNT: &str = "secret";
/// The path prefix used when `CREDSTORE_VAULT_PREFIX` is not set.
pub const DEFAULT_PREFIX: &str = "credstore";
/// The per-request deadline used when `CREDSTORE_HTTP_TIMEOUT` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of Vault's error text an error message quotes.
const MAX_QUOTED: usize = 300;

/// How credstore authenticates to Vault. `Debug` never shows a secret.
enum VaultAuth {
    /// A token from `VAULT_TOKEN`, `BAO_TOKEN` or `~/.vault-token`.
    Token { token: SecretString, source: String },
    /// AppRole login (`auth/approle/login`) with these ids.
    AppRole {
        role_id: SecretString,
        secret_id: SecretString,
    },
}

impl VaultAuth {
    fn source(&self) -> &str {
        match self {
            VaultAuth::Token { source, .. } => source,
            VaultAuth::AppRole { .. } => "AppRole login (VAULT_ROLE_ID, VAULT_SECRET_ID)",
        }
    }
}

/// Where the Vault server is, how to authenticate, and where credentials
/// live in it. Built from an [`Environment`] like the Vault CLI; `Debug`
/// redacts the token and the AppRole ids.
pub struct VaultConfig {
    addr: String,
    auth: VaultAuth,
    namespace: Option<String>,
    ca_cert: Option<PathBuf>,
    mount: String,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addr", &self.addr)
            .field("auth", &format_args!("{} [REDACTED]", self.auth.source()))
            .field("namespace", &self.namespace)
            .field("ca_cert", &self.ca_cert)
            .field("mount", &self.mount)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl VaultConfig {
    /// Reads the configuration:
    ///
    /// - address: `VAULT_ADDR` or `BAO_ADDR` (`http://` or `https://`);
    /// - auth, first found: `VAULT_TOKEN` or `BAO_TOKEN`; AppRole with
    ///   `VAULT_ROLE_ID` + `VAULT_SECRET_ID`; the token file
    ///   `$HOME/.vault-token` written by `vault login` / `bao login`;
    /// - `VAULT_NAMESPACE` (or `BAO_NAMESPACE`), sent as `X-Vault-Namespace`;
    /// - `VAULT_CACERT` (or `BAO_CACERT`): a PEM file of the CA(s) to trust
    ///   instead of the built-in Mozilla roots;
    /// - `CREDSTORE_VAULT_MOUNT` (default `secret`), `CREDSTORE_VAULT_PREFIX`
    ///   (default `credstore`);
    /// - `CREDSTORE_HTTP_TIMEOUT`: whole seconds per request (default 10).
    ///
    /// When a `VAULT_*` and its `BAO_*` twin are both set to different
    /// values, that is a usage error (credstore will not guess which server
    /// a token belongs to). A malformed value is a usage error naming the
    /// variable, never quoting a secret. No address or no token is
    /// [`Error::BackendUnavailable`] (exit 4) saying what to set.
    ///
    /// ```
    /// use credstore::resolve::MapEnv;
    /// use credstore::store::VaultConfig;
    ///
    /// let env = MapEnv::new()
    ///     .with("VAULT_ADDR", "https://vault.example.com:8200/")
    ///     .with("VAULT_TOKEN", "hvs.example-token");
    /// let config = VaultConfig::from_env(&env).unwrap();
    /// assert_eq!(config.addr(), "https://vault.example.com:8200");
    /// assert_eq!(config.mount(), "secret");
    /// assert!(!format!("{config:?}").contains("hvs.example-token"));
    /// ```
    pub fn from_env(env: &dyn Environment) -> Result<VaultConfig> {
        let Some((addr, addr_var)) = twin(env, "VAULT_ADDR", "BAO_ADDR")? else {
            return Err(Error::BackendUnavailable {
                backend: BACKEND,
                reason: "no Vault address: VAULT_ADDR (or BAO_ADDR) is not set".into(),
                hint: "Set VAULT_ADDR=https://your-vault:8200 and a token (VAULT_TOKEN, or VAULT_ROLE_ID + VAULT_SECRET_ID), or choose another --backend.".into(),
            });
        };
        let addr = parse_addr(&addr, addr_var)?;

        let timeout = match non_blank(env, "CREDSTORE_HTTP_TIMEOUT") {
            None => DEFAULT_TIMEOUT,
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&s| s > 0 && s <= 3600)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    Error::Usage(
                        "CREDSTORE_HTTP_TIMEOUT must be a whole number of seconds from 1 to 3600"
                            .into(),
                    )
                })?,
        };

        let mount = match non_blank(env, "CREDSTORE_VAULT_MOUNT") {
            Some(m) => parse_vault_path(&m, "CREDSTORE_VAULT_MOUNT")?,
            None => DEFAULT_MOUNT.to_string(),
        };
        let prefix = match non_blank(env, "CREDSTORE_VAULT_PREFIX") {
            Some(p) => parse_vault_path(&p, "CREDSTORE_VAULT_PREFIX")?,
            None => DEFAULT_PREFIX.to_string(),
        };

        let namespace = match twin(env, "VAULT_NAMESPACE", "BAO_NAMESPACE")? {
            Some((ns, var)) => Some(parse_vault_path(&ns, var)?),
            None => None,
        };
        let ca_cert = twin(env, "VAULT_CACERT", "BAO_CACERT")?
            .map(|(path, _)| PathBuf::from(path.trim().to_string()));

        let auth = auth_from_env(env)?;
        Ok(VaultConfig {
            addr,
            auth,
            namespace,
            ca_cert,
            mount,
            prefix,
            timeout,
        })
    }

    /// The server's address, without a trailing `/`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The KV v2 mount.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The path under the mount that holds one secret per profile.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Vault namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The CA file trusted for TLS, if any.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The deadline of each request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where the token comes from (`VAULT_TOKEN`, `~/.vault-token`, AppRole
    /// login…), for messages. Never the token itself.
    pub fn auth_source(&self) -> &str {
        self.auth.source()
    }

    /// The secret's path relative to the mount: `<prefix>/<profile>`.
    fn secret_path(&self, profile: &Profile) -> String {
        format!("{}/{}", self.prefix, profile.as_str())
    }
}

/// Reads `primary`, else `twin`; both set to different values is an error.
fn twin(
    env: &dyn Environment,
    primary: &'static str,
    twin: &'static str,
) -> Result<Option<(Zeroizing<String>, &'static str)>> {
    match (non_blank(env, primary), non_blank(env, twin)) {
        (Some(a), Some(b)) if a.trim() != b.trim() => Err(Error::Usage(format!(
            "{primary} and {twin} are both set, to different values; unset one so credstore knows which to use"
        ))),
        (Some(a), _) => Ok(Some((a, primary))),
        (None, Some(b)) => Ok(Some((b, twin))),
        (None, None) => Ok(None),
    }
}

fn parse_addr(raw: &str, var: &str) -> Result<String> {
    let addr = raw.trim().trim_end_matches('/');
    let bad = |why: &str| {
        Error::Usage(format!(
            "{var} {why}; expected e.g. https://vault.example.com:8200"
        ))
    };
    let uri: ureq::http::Uri = addr.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if uri.query().is_some() || addr.contains('@') || addr.contains('#') {
        return Err(bad(
            "must not carry a query, a fragment or user information",
        ));
    }
    Ok(addr.to_string())
}

/// A mount, prefix or namespace: `/`-separated segments of
/// `[A-Za-z0-9._-]`, none `.` or `..`; surrounding slashes are dropped.
/// These characters need no escaping in a URL path.
fn parse_vault_path(raw: &str, var: &str) -> Result<String> {
    let path = raw.trim().trim_matches('/');
    let ok = !path.is_empty()
        && path.len() <= 256
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(path.to_string())
    } else {
        Err(Error::Usage(format!(
            "{var} must be a path of segments made of letters, digits, '.', '_' or '-', separated by '/' (e.g. `secret` or `teams/agents`)"
        )))
    }
}

fn auth_from_env(env: &dyn Environment) -> Result<VaultAuth> {
    if let Some((token, var)) = twin(env, "VAULT_TOKEN", "BAO_TOKEN")? {
        return Ok(VaultAuth::Token {
            token: parse_token(&token, var)?,
            source: var.to_string(),
        });
    }
    match (
        non_blank(env, "VAULT_ROLE_ID"),
        non_blank(env, "VAULT_SECRET_ID"),
    ) {
        (Some(role_id), Some(secret_id)) => {
            return Ok(VaultAuth::AppRole {
                role_id: parse_token(&role_id, "VAULT_ROLE_ID")?,
                secret_id: parse_token(&secret_id, "VAULT_SECRET_ID")?,
            })
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Usage(
                "AppRole login needs both VAULT_ROLE_ID and VAULT_SECRET_ID; only one is set"
                    .into(),
            ))
        }
        (None, None) => {}
    }
    if let Some(home) = non_blank(env, "HOME") {
        let path = Path::new(home.trim()).join(".vault-token");
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let bytes = read_bounded(&mut file).map_err(|e| match e {
                    ReadError::TooLarge => Error::Usage(format!(
                        "{} is larger than 64 KiB; it cannot be a Vault token",
                        path.display()
                    )),
                    ReadError::Io(e) => Error::io("reading", &path, e),
                })?;
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    Error::Usage(format!("{} is not a UTF-8 text file", path.display()))
                })?;
                if !text.trim().is_empty() {
                    let source = "~/.vault-token";
                    return Ok(VaultAuth::Token {
                        token: parse_token(text, source)?,
                        source: source.to_string(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading", &path, e)),
        }
    }
    Err(Error::BackendUnavailable {
        backend: BACKEND,
        reason: "no Vault token: VAULT_TOKEN (or BAO_TOKEN) is not set, VAULT_ROLE_ID + VAULT_SECRET_ID are not set, and there is no ~/.vault-token".into(),
        hint: "Set VAULT_TOKEN, or AppRole ids, or run `bao login` / `vault login` first.".into(),
    })
}

/// A token or id goes into an HTTP header or JSON: visible ASCII only.
fn parse_token(raw: &str, var: &str) -> Result<SecretString> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Usage(format!(
            "{var} does not hold a usable Vault token or id (it must be visible ASCII, no spaces, at most 4 KiB)"
        )));
    }
    Ok(secret_string(t))
}

/// A KV v2 store on a Vault or OpenBao server.
///
/// ```no_run
/// use credstore::profile::Profile;
/// use credstore::resolve::ProcessEnv;
/// use credstore::store::{Store, VaultStore};
///
/// let store = VaultStore::from_env(&ProcessEnv)?;
/// let stored = store.load(&Profile::default_profile())?;
/// # Ok::<(), credstore::Error>(())
/// ```
pub struct VaultStore {
    config: VaultConfig,
    agent: ureq::Agent,
    /// The token in use; for AppRole, fetched on first use.
    token: Mutex<Option<Arc<SecretString>>>,
    /// Set once the mount was seen to be KV v2.
    mount_checked: Mutex<bool>,
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
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
struct Answer {
    status: u16,
    body: Zeroizing<Vec<u8>>,
}

impl Answer {
    /// Vault's `errors` array, joined; empty when there is none.
    fn errors(&self) -> Vec<String> {
        #[derive(Deserialize)]
        struct Errors {
            #[serde(default)]
            errors: Vec<String>,
        }
        serde_json::from_slice::<Errors>(&self.body)
            .map(|e| e.errors)
            .unwrap_or_default()
    }

    /// A 404 for a path no secrets engine is mounted at.
    fn is_missing_mount(&self) -> bool {
        self.status == 404
            && self
                .errors()
                .iter()
                .any(|e| e.contains("no handler for route"))
    }
}

#[derive(Deserialize)]
struct DataAnswer<'a> {
    #[serde(borrow)]
    data: Option<DataAnswerData<'a>>,
}

#[derive(Deserialize)]
struct DataAnswerData<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    metadata: Option<VersionInfo>,
}

#[derive(Deserialize)]
struct VersionInfo {
    version: Option<u64>,
}

#[derive(Deserialize)]
struct WriteAnswer {
    data: Option<VersionInfo>,
}

#[derive(Deserialize)]
struct MountAnswer {
    data: Option<MountInfo>,
}

#[derive(Deserialize)]
struct MountInfo {
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    options: Option<MountOptions>,
}

#[derive(Deserialize)]
struct MountOptions {
    version: Option<String>,
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: Option<LoginAuth>,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: Option<String>,
}

impl VaultStore {
    /// A store for `config`. Reads the `VAULT_CACERT` file now, so a bad
    /// CA file is reported before any request.
    pub fn new(config: VaultConfig) -> Result<VaultStore> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &config.ca_cert {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&read_ca_file(path)?));
        }
        let loopback = is_loopback(&config.addr);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // One deadline per request, covering connect, send and the
            // whole answer: a server that accepts and never answers gives
            // a timeout, not a hang.
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect would carry the token to another host: never follow.
            .max_redirects(0)
            // A loopback server is never reached through a proxy; elsewhere
            // HTTPS_PROXY / ALL_PROXY / NO_PROXY apply, as for the Vault CLI.
            .proxy(if loopback {
                None
            } else {
                ureq::Proxy::try_from_env()
            })
            .user_agent(concat!("credstore/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .new_agent();
        let token = match &config.auth {
            VaultAuth::Token { token, .. } => Some(Arc::new(secret_string(token.expose_secret()))),
            VaultAuth::AppRole { .. } => None,
        };
        Ok(VaultStore {
            config,
            agent,
            token: Mutex::new(token),
            mount_checked: Mutex::new(false),
        })
    }

    /// [`VaultConfig::from_env`] then [`VaultStore::new`].
    pub fn from_env(env: &dyn Environment) -> Result<VaultStore> {
        VaultStore::new(VaultConfig::from_env(env)?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The current version of the profile's secret: `0` when it has never
    /// been written (or its metadata was deleted). A soft-deleted latest
    /// version still counts. This is the value check-and-set compares.
    pub fn current_version(&self, profile: &Profile) -> Result<u64> {
        let path = self.data_path(profile);
        let answer = self.authed(Method::Get, &path, None)?;
        match answer.status {
            200 | 404 if !answer.is_missing_mount() => {
                // A 404 for a soft-deleted version still carries metadata.
                if answer.status == 404 && answer.body.trim_ascii().is_empty() {
                    return Ok(0);
                }
                let parsed: DataAnswer<'_> = match serde_json::from_slice(&answer.body) {
                    Ok(p) => p,
                    Err(_) if answer.status == 404 => return Ok(0),
                    Err(e) => return Err(self.bad_answer(profile, &e)),
                };
                Ok(parsed
                    .data
                    .and_then(|d| d.metadata)
                    .and_then(|m| m.version)
                    .unwrap_or(0))
            }
            _ => Err(self.failure(&answer, "read", &path, None)),
        }
    }

    /// Writes the credential only if the secret's current version is still
    /// `expected` (`0`: only if nothing is stored). Returns the new version.
    /// When another writer got there first this is an error (exit 4) and
    /// nothing was overwritten.
    pub fn save_with_cas(
        &self,
        profile: &Profile,
        credential: &StoredCredential,
        expected: u64,
    ) -> Result<u64> {
        self.check_mount(profile)?;
        let path = self.data_path(profile);
        let body = write_body(&credential.to_document(), expected);
        let answer = self.authed(Method::Post, &path, Some(&body))?;
        let secret = Some(credential.expose_token());
        match answer.status {
            200 => {
                let parsed: WriteAnswer = serde_json::from_slice(&answer.body)
                    .map_err(|e| self.bad_answer(profile, &e))?;
                parsed.data.and_then(|d| d.version).ok_or_else(|| Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "Vault at {} accepted the write to {} but did not answer with a KV v2 version; check that {}/ is a KV version 2 mount",
                        self.config.addr, path, self.config.mount
                    ),
                })
            }
            204 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{}/ at {} answered like a KV version 1 mount, so the write went to the wrong path; enable versioning (`bao kv enable-versioning {}`) or set CREDSTORE_VAULT_MOUNT to a KV v2 mount",
                    self.config.mount, self.config.addr, self.config.mount
                ),
            }),
            400 if answer
                .errors()
                .iter()
                .any(|e| e.contains("check-and-set")) =>
            {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "check-and-set conflict at {}: another writer changed it after credstore read version {expected}, so nothing was overwritten; check what is stored now (`credstore status --backend vault`) and run the command again if you still want to replace it",
                        self.describe(profile).detail
                    ),
                })
            }
            _ => Err(self.failure(&answer, "write", &path, secret)),
        }
    }

    fn data_path(&self, profile: &Profile) -> String {
        format!(
            "{}/data/{}",
            self.config.mount,
            self.config.secret_path(profile)
        )
    }

    fn metadata_path(&self, profile: &Profile) -> String {
        format!(
            "{}/metadata/{}",
            self.config.mount,
            self.config.secret_path(profile)
        )
    }

    /// Checks once per store that the mount is KV version 2 and really is
    /// the mount holding the path, so a write never lands at the wrong
    /// path of a KV v1 mount. Inconclusive answers (a token that may not
    /// ask) leave the check to the write itself.
    fn check_mount(&self, profile: &Profile) -> Result<()> {
        let mut checked = self.lock(&self.mount_checked)?;
        if *checked {
            return Ok(());
        }
        let path = format!(
            "sys/internal/ui/mounts/{}/{}",
            self.config.mount,
            self.config.secret_path(profile)
        );
        let answer = self.authed(Method::Get, &path, None)?;
        if answer.status == 503 {
            return Err(self.failure(&answer, "inspect the mount of", &path, None));
        }
        if answer.status != 200 {
            return Ok(());
        }
        let Ok(MountAnswer { data: Some(info) }) = serde_json::from_slice(&answer.body) else {
            return Ok(());
        };
        let mount = &self.config.mount;
        if let Some(actual) = info.path.as_deref().map(|p| p.trim_end_matches('/')) {
            if actual != mount {
                return Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "{mount}/{} is inside the mount {actual}/, not {mount}/; set CREDSTORE_VAULT_MOUNT={actual} (and the rest of the path in CREDSTORE_VAULT_PREFIX)",
                        self.config.secret_path(profile)
                    ),
                });
            }
        }
        let kind = info.kind.as_deref().unwrap_or("unknown");
        let version = info.options.and_then(|o| o.version);
        if kind != "kv" {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{mount}/ at {} is a {kind:?} secrets engine, not KV version 2; set CREDSTORE_VAULT_MOUNT to a KV v2 mount or enable one (`bao secrets enable -path=NAME kv-v2`)",
                    self.config.addr
                ),
            });
        }
        if version.as_deref() != Some("2") {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{mount}/ at {} is a KV version 1 mount; credstore needs KV version 2 (check-and-set, versions): upgrade it with `bao kv enable-versioning {mount}` or set CREDSTORE_VAULT_MOUNT to a KV v2 mount",
                    self.config.addr
                ),
            });
        }
        *checked = true;
        Ok(())
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> Result<std::sync::MutexGuard<'a, T>> {
        m.lock().map_err(|_| Error::Backend {
            backend: BACKEND,
            message: "the store's lock was poisoned by a panic in another thread".into(),
        })
    }

    /// The token to send; for AppRole, logs in on first use. The flag
    /// tells whether the token was fetched by this call.
    fn token(&self) -> Result<(Arc<SecretString>, bool)> {
        let mut slot = self.lock(&self.token)?;
        if let Some(t) = slot.as_ref() {
            return Ok((Arc::clone(t), false));
        }
        let token = Arc::new(self.approle_login()?);
        *slot = Some(Arc::clone(&token));
        Ok((token, true))
    }

    fn approle_login(&self) -> Result<SecretString> {
        let VaultAuth::AppRole { role_id, secret_id } = &self.config.auth else {
            return Err(Error::Backend {
                backend: BACKEND,
                message: "no Vault token is configured".into(),
            });
        };
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let body = json_exact(&Login {
            role_id: role_id.expose_secret(),
            secret_id: secret_id.expose_secret(),
        });
        let path = "auth/approle/login";
        let answer = self.request(Method::Post, path, Some(&body), None)?;
        match answer.status {
            200 => {
                let token = serde_json::from_slice::<LoginAnswer>(&answer.body)
                    .ok()
                    .and_then(|a| a.auth)
                    .and_then(|a| a.client_token)
                    .map(Zeroizing::new)
                    .filter(|t| !t.is_empty());
                match token {
                    Some(t) => parse_token(&t, "the AppRole login answer"),
                    None => Err(Error::Backend {
                        backend: BACKEND,
                        message: format!(
                            "the AppRole login at {} answered without a client token; check that VAULT_ADDR points at Vault",
                            self.config.addr
                        ),
                    }),
                }
            }
            400 | 403 => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "AppRole login at {} was refused ({}): check VAULT_ROLE_ID and VAULT_SECRET_ID (a secret id can expire or run out of uses) and that AppRole is enabled at auth/approle",
                    self.config.addr,
                    self.quote_errors(&answer, None)
                ),
            }),
            _ => Err(self.failure(&answer, "log in with AppRole at", path, None)),
        }
    }

    /// A request with the token; an AppRole token refused as expired is
    /// renewed by logging in again, once.
    fn authed(&self, method: Method, path: &str, body: Option<&[u8]>) -> Result<Answer> {
        let (token, fresh) = self.token()?;
        let answer = self.request(method, path, body, Some(&token))?;
        if answer.status == 403 && !fresh && matches!(self.config.auth, VaultAuth::AppRole { .. }) {
            *self.lock(&self.token)? = None;
            let (token, _) = self.token()?;
            return self.request(method, path, body, Some(&token));
        }
        Ok(answer)
    }

    /// One HTTP request to `/v1/<path>` within the configured deadline.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> Result<Answer> {
        let url = format!("{}/v1/{path}", self.config.addr);
        let what = format!("{} {path}", method.as_str());
        let headers = |r| with_headers(r, token, self.config.namespace.as_deref());
        let sent = match (method, body) {
            (Method::Get, _) => headers(self.agent.get(&url)).call(),
            (Method::Delete, _) => headers(self.agent.delete(&url)).call(),
            (Method::Post, body) => with_headers(
                self.agent.post(&url),
                token,
                self.config.namespace.as_deref(),
            )
            .header("Content-Type", "application/json")
            .send(body.unwrap_or(b"{}")),
        };
        let mut response = sent.map_err(|e| self.transport_error(e, &what))?;
        let status = response.status().as_u16();
        // A backstop above read_bounded's own limit, which reports first.
        let mut reader = response
            .body_mut()
            .with_config()
            .limit(2 * READ_LIMIT as u64)
            .reader();
        let body = read_bounded(&mut reader).map_err(|e| match e {
            ReadError::TooLarge => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the answer to {what} from {} is larger than {} KiB, so credstore stopped reading; check that VAULT_ADDR points at Vault",
                    self.config.addr,
                    READ_LIMIT / 1024
                ),
            },
            ReadError::Io(e) => self.transport_error(ureq::Error::from(e), &what),
        })?;
        Ok(Answer { status, body })
    }

    fn transport_error(&self, e: ureq::Error, what: &str) -> Error {
        let addr = &self.config.addr;
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
            reason: format!("TLS with {} failed ({e})", self.config.addr),
            hint: "If the server's certificate comes from a private CA, set VAULT_CACERT to that CA's PEM file; check that VAULT_ADDR uses the right scheme (http:// or https://) and host name.".into(),
        }
    }

    fn timeout_error(&self, what: &str) -> Error {
        Error::Timeout {
            backend: BACKEND,
            seconds: self.config.timeout.as_secs(),
            what: format!("{what} at {}", self.config.addr),
            hint: "the server or the network did not answer in time; check it with `bao status` / `vault status`, or raise CREDSTORE_HTTP_TIMEOUT for a slow link".into(),
        }
    }

    /// Vault's error text for a message: at most a few hundred visible
    /// characters, with any configured secret (and `extra`) cut out.
    fn quote_errors(&self, answer: &Answer, extra: Option<&str>) -> String {
        let mut text = answer.errors().join("; ");
        let mut secrets: Vec<&str> = Vec::new();
        if let VaultAuth::AppRole { role_id, secret_id } = &self.config.auth {
            secrets.push(role_id.expose_secret());
            secrets.push(secret_id.expose_secret());
        }
        // try_lock: the AppRole login reports errors while holding it.
        let token = self.token.try_lock().ok().and_then(|t| t.clone());
        if let Some(t) = &token {
            secrets.push(t.expose_secret());
        }
        secrets.extend(extra);
        // Cut secrets out before shortening, so no partial one survives.
        // Real tokens and AppRole ids are long; cutting very short values
        // would only mangle ordinary words of the message.
        for s in secrets.into_iter().filter(|s| s.len() >= 8) {
            text = text.replace(s, "[REDACTED]");
        }
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_QUOTED)
            .collect();
        if text.is_empty() {
            format!("HTTP {}", answer.status)
        } else {
            format!("HTTP {}: {text}", answer.status)
        }
    }

    /// The error for an answer that is not what the operation expects.
    fn failure(&self, answer: &Answer, verb: &str, path: &str, secret: Option<&str>) -> Error {
        let addr = &self.config.addr;
        let mount = &self.config.mount;
        let quoted = self.quote_errors(answer, secret);
        match answer.status {
            403 => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "permission denied: Vault at {addr} refused to let the token from {} {verb} {path} ({quoted}). The token may have expired, or its policies do not cover this path; it needs `path \"{mount}/data/{prefix}/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}` and `path \"{mount}/metadata/{prefix}/*\" {{ capabilities = [\"read\", \"delete\"] }}`",
                    self.config.auth.source(),
                    prefix = self.config.prefix,
                ),
            },
            404 if answer.is_missing_mount() => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "no secrets engine is mounted at {mount}/ on {addr}{}: set CREDSTORE_VAULT_MOUNT to your KV v2 mount, or enable one with `bao secrets enable -path={mount} kv-v2`",
                    self.config
                        .namespace
                        .as_deref()
                        .map(|ns| format!(" (namespace {ns})"))
                        .unwrap_or_default()
                ),
            },
            503 => {
                let sealed = answer.errors().iter().any(|e| e.contains("sealed"))
                    || self.is_sealed().unwrap_or(false);
                if sealed {
                    Error::BackendUnavailable {
                        backend: BACKEND,
                        reason: format!("Vault at {addr} is sealed, so nothing can be read or written"),
                        hint: "An operator must unseal it (`bao operator unseal` / `vault operator unseal`); then run the command again.".into(),
                    }
                } else {
                    Error::BackendUnavailable {
                        backend: BACKEND,
                        reason: format!("Vault at {addr} is not ready to serve ({quoted})"),
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
                reason: format!("Vault at {addr} is rate limiting requests ({quoted})"),
                hint: "Wait a moment and run the command again.".into(),
            },
            _ => Error::Backend {
                backend: BACKEND,
                message: format!(
                    "Vault at {addr} could not {verb} {path} ({quoted}); check the server's log and `bao status`"
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

    fn bad_answer(&self, profile: &Profile, e: &serde_json::Error) -> Error {
        Error::CorruptStore {
            location: self.location_text(profile),
            reason: format!(
                "Vault's answer {}, not a KV v2 secret (is VAULT_ADDR pointing at Vault?)",
                describe_json_error(e)
            ),
        }
    }

    fn location_text(&self, profile: &Profile) -> String {
        format!("{} on {}", self.describe(profile).detail, self.config.addr)
    }
}

impl Store for VaultStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn load(&self, profile: &Profile) -> Result<Option<StoredCredential>> {
        let path = self.data_path(profile);
        let answer = self.authed(Method::Get, &path, None)?;
        match answer.status {
            200 => {
                let parsed: DataAnswer<'_> = serde_json::from_slice(&answer.body)
                    .map_err(|e| self.bad_answer(profile, &e))?;
                let raw = parsed.data.and_then(|d| d.data);
                match raw {
                    // A version that was deleted or destroyed.
                    None => Ok(None),
                    Some(raw) if raw.get() == "null" => Ok(None),
                    Some(raw) => StoredCredential::from_document(
                        raw.get().as_bytes(),
                        &self.location_text(profile),
                    )
                    .map(Some),
                }
            }
            404 if !answer.is_missing_mount() => Ok(None),
            _ => Err(self.failure(&answer, "read", &path, None)),
        }
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<()> {
        self.check_mount(profile)?;
        let version = self.current_version(profile)?;
        self.save_with_cas(profile, credential, version).map(|_| ())
    }

    fn delete(&self, profile: &Profile) -> Result<bool> {
        let path = self.metadata_path(profile);
        let answer = self.authed(Method::Get, &path, None)?;
        match answer.status {
            200 => {}
            404 if !answer.is_missing_mount() => return Ok(false),
            _ => return Err(self.failure(&answer, "read", &path, None)),
        }
        let answer = self.authed(Method::Delete, &path, None)?;
        match answer.status {
            200 | 204 => Ok(true),
            404 if !answer.is_missing_mount() => Ok(false),
            _ => Err(self.failure(&answer, "delete", &path, None)),
        }
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::Vault,
            detail: format!("{}/{}", self.config.mount, self.config.secret_path(profile)),
        }
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

/// `{"options":{"cas":N},"data":<document>}` in one exact-size buffer.
fn write_body(document: &[u8], cas: u64) -> Zeroizing<Vec<u8>> {
    let head = format!("{{\"options\":{{\"cas\":{cas}}},\"data\":");
    let mut out = Zeroizing::new(Vec::with_capacity(head.len() + document.len() + 1));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(document);
    out.push(b'}');
    out
}

/// Serializes into a zeroized buffer sized exactly (no reallocation copy).
fn json_exact<T: serde::Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
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
    let mut file = std::fs::File::open(path).map_err(|e| {
        Error::Usage(format!(
            "VAULT_CACERT names {}, which cannot be opened ({e})",
            path.display()
        ))
    })?;
    let pem = read_bounded(&mut file).map_err(|e| {
        Error::Usage(match e {
            ReadError::TooLarge => format!(
                "VAULT_CACERT names {}, which is larger than 64 KiB",
                path.display()
            ),
            ReadError::Io(e) => format!(
                "VAULT_CACERT names {}, which cannot be read ({e})",
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

fn is_loopback(addr: &str) -> bool {
    let Ok(uri) = addr.parse::<ureq::http::Uri>() else {
        return false;
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_matches(|c| c == '[' || c == ']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::MapEnv;

    fn base() -> MapEnv {
        MapEnv::new()
            .with("VAULT_ADDR", "http://127.0.0.1:8200")
            .with("VAULT_TOKEN", "s.tok-SECRET-1234")
    }

    fn usage(env: &MapEnv) -> String {
        match VaultConfig::from_env(env) {
            Err(e @ Error::Usage(_)) => e.to_string(),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_describe() {
        let c = VaultConfig::from_env(&base()).unwrap();
        assert_eq!(c.addr(), "http://127.0.0.1:8200");
        assert_eq!(c.mount(), "secret");
        assert_eq!(c.prefix(), "credstore");
        assert_eq!(c.timeout(), Duration::from_secs(10));
        assert_eq!(c.auth_source(), "VAULT_TOKEN");
        assert!(c.namespace().is_none());
        let s = VaultStore::new(c).unwrap();
        let p = Profile::new("work").unwrap();
        assert_eq!(s.describe(&p).detail, "secret/credstore/work");
        assert_eq!(s.describe(&p).kind, SourceKind::Vault);
        assert_eq!(s.data_path(&p), "secret/data/credstore/work");
        assert_eq!(s.metadata_path(&p), "secret/metadata/credstore/work");
    }

    #[test]
    fn custom_mount_prefix_namespace_timeout() {
        let env = base()
            .with("CREDSTORE_VAULT_MOUNT", "/kv/team/")
            .with("CREDSTORE_VAULT_PREFIX", "agents/prod")
            .with("VAULT_NAMESPACE", "eng")
            .with("CREDSTORE_HTTP_TIMEOUT", " 2 ");
        let c = VaultConfig::from_env(&env).unwrap();
        assert_eq!(c.mount(), "kv/team");
        assert_eq!(c.prefix(), "agents/prod");
        assert_eq!(c.namespace(), Some("eng"));
        assert_eq!(c.timeout(), Duration::from_secs(2));
        let s = VaultStore::new(c).unwrap();
        assert_eq!(
            s.data_path(&Profile::default_profile()),
            "kv/team/data/agents/prod/default"
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in ["0", "-1", "1.5", "ten", "99999"] {
            assert!(usage(&base().with("CREDSTORE_HTTP_TIMEOUT", bad))
                .contains("CREDSTORE_HTTP_TIMEOUT"));
        }
        for bad in ["a/../b", "a b", "a//b", "a?b", "%2e%2e", "."] {
            assert!(usage(&base().with("CREDSTORE_VAULT_PREFIX", bad))
                .contains("CREDSTORE_VAULT_PREFIX"));
        }
        assert!(usage(&base().with("VAULT_ADDR", "127.0.0.1:8200")).contains("VAULT_ADDR"));
        assert!(usage(&base().with("VAULT_ADDR", "ftp://x")).contains("http://"));
        assert!(usage(&base().with("VAULT_ADDR", "https://u:p@x")).contains("user"));
    }

    #[test]
    fn twins_that_disagree_are_refused_without_quoting_them() {
        let msg = usage(&base().with("BAO_TOKEN", "s.other-SECRET-5678"));
        assert!(msg.contains("VAULT_TOKEN and BAO_TOKEN"), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        // The same value twice is fine.
        VaultConfig::from_env(&base().with("BAO_TOKEN", "s.tok-SECRET-1234")).unwrap();
        let c = VaultConfig::from_env(
            &MapEnv::new()
                .with("BAO_ADDR", "https://bao.example")
                .with("BAO_TOKEN", "t-abcd"),
        )
        .unwrap();
        assert_eq!(c.addr(), "https://bao.example");
        assert_eq!(c.auth_source(), "BAO_TOKEN");
        usage(&base().with("BAO_ADDR", "http://elsewhere:8200"));
    }

    #[test]
    fn a_token_with_inner_whitespace_is_refused_without_echo() {
        let msg = usage(&base().with("VAULT_TOKEN", "s.SECRET part"));
        assert!(!msg.contains("SECRET"), "{msg}");
    }

    #[test]
    fn missing_address_or_token_says_what_to_set() {
        let e = VaultConfig::from_env(&MapEnv::new().with("VAULT_TOKEN", "t-abcd")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("VAULT_ADDR"), "{e}");
        let e = VaultConfig::from_env(&MapEnv::new().with("VAULT_ADDR", "http://x:1")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    }

    #[test]
    fn approle_and_token_file_precedence() {
        let approle = MapEnv::new()
            .with("VAULT_ADDR", "http://x:1")
            .with("VAULT_ROLE_ID", "role-HIDDEN-1")
            .with("VAULT_SECRET_ID", "sid-HIDDEN-2");
        let c = VaultConfig::from_env(&approle).unwrap();
        assert!(c.auth_source().contains("AppRole"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("HIDDEN"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        // An explicit token wins over AppRole.
        let c = VaultConfig::from_env(&approle.clone().with("VAULT_TOKEN", "t-abcd")).unwrap();
        assert_eq!(c.auth_source(), "VAULT_TOKEN");
        // Half an AppRole is a mistake worth reporting.
        usage(
            &MapEnv::new()
                .with("VAULT_ADDR", "http://x:1")
                .with("VAULT_ROLE_ID", "r"),
        );

        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), "s.file-SECRET-9\n").unwrap();
        let env = MapEnv::new()
            .with("VAULT_ADDR", "http://x:1")
            .with("HOME", home.path().to_str().unwrap());
        let c = VaultConfig::from_env(&env).unwrap();
        assert_eq!(c.auth_source(), "~/.vault-token");
        let VaultAuth::Token { token, .. } = &c.auth else {
            panic!("token auth")
        };
        assert_eq!(token.expose_secret(), "s.file-SECRET-9");
        assert!(!format!("{c:?}").contains("SECRET"));
        // AppRole wins over the token file.
        let c = VaultConfig::from_env(
            &env.with("VAULT_ROLE_ID", "r-abcd")
                .with("VAULT_SECRET_ID", "s-abcd"),
        )
        .unwrap();
        assert!(c.auth_source().contains("AppRole"));
    }

    #[test]
    fn bad_ca_file_is_reported_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let env = base().with("VAULT_CACERT", path.to_str().unwrap());
        let e = VaultStore::from_env(&env).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("ca.pem"), "{e}");
        let env = base().with("VAULT_CACERT", "/nonexistent/ca.pem");
        assert!(VaultStore::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("cannot be opened"));
    }

    #[test]
    fn write_body_is_the_kv2_shape() {
        let body = write_body(b"{\"api_key\":\"k\"}\n", 7);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["options"]["cas"], 7);
        assert_eq!(v["data"]["api_key"], "k");
        assert_eq!(body.len(), body.capacity());
    }

    #[test]
    fn quoted_vault_errors_never_carry_secrets() {
        let store = VaultStore::from_env(&base()).unwrap();
        let answer = Answer {
            status: 400,
            body: Zeroizing::new(
                br#"{"errors":["bad token s.tok-SECRET-1234 and sk-CRED-abc","x\u0007y"]}"#
                    .to_vec(),
            ),
        };
        let q = store.quote_errors(&answer, Some("sk-CRED-abc"));
        assert!(!q.contains("SECRET") && !q.contains("CRED"), "{q}");
        assert!(q.contains("[REDACTED]") && q.contains("x y"), "{q}");
        // A secret cut at the length cap leaves no prefix behind.
        let long = format!(
            r#"{{"errors":["{}s.tok-SECRET-1234"]}}"#,
            "a".repeat(MAX_QUOTED - 8)
        );
        let answer = Answer {
            status: 400,
            body: Zeroizing::new(long.into_bytes()),
        };
        let q = store.quote_errors(&answer, None);
        assert!(!q.contains("s.tok-SE"), "{q}");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8200"));
        assert!(is_loopback("http://localhost:8200"));
        assert!(is_loopback("http://[::1]:8200"));
        assert!(!is_loopback("https://vault.example.com"));
    }
}
