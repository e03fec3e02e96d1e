//! Where the Vault server is, how to authenticate, and where credentials
//! live in it, read from the environment the way the Vault CLI does.

use super::auth::{self, AuthMethod};
use super::BACKEND;
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::secret::secret_string;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The KV v2 mount used when `CREDSTORE_VAULT_MOUNT` is not set.
pub const DEFAULT_MOUNT: &str = "secret";
/// The path prefix used when `CREDSTORE_VAULT_PREFIX` is not set.
pub const DEFAULT_PREFIX: &str = "credstore";

/// Where the Vault server is, how to authenticate, and where credentials
/// live in it. Built from an [`Environment`] like the Vault CLI; `Debug`
/// redacts every secret.
pub struct VaultConfig {
    /// Every address, in the order they are tried (at least one).
    pub(super) addrs: Vec<String>,
    pub(super) auth: Box<dyn AuthMethod>,
    pub(super) namespace: Option<String>,
    pub(super) ca_cert: Option<PathBuf>,
    pub(super) mount: String,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) insecure_http: bool,
    pub(super) names: EnvNames,
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addrs", &self.addrs)
            .field("auth", &format_args!("{} [REDACTED]", self.auth.source()))
            .field("namespace", &self.namespace)
            .field("ca_cert", &self.ca_cert)
            .field("mount", &self.mount)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("insecure_http", &self.insecure_http)
            .finish()
    }
}

impl VaultConfig {
    /// Reads the configuration:
    ///
    /// - addresses: `{PREFIX}_VAULT_ADDRS`, else `VAULT_ADDR` or
    ///   `BAO_ADDR`; each may hold several, comma-separated, tried in order
    ///   (`https://`; `http://` only for a loopback host, unless
    ///   `{PREFIX}_VAULT_ALLOW_HTTP=1`, since the token and the credential
    ///   would cross the network in clear);
    /// - auth: `{PREFIX}_VAULT_AUTH` (`token`, `approle`, `jwt`,
    ///   `kubernetes`), else the first found: `VAULT_TOKEN` or `BAO_TOKEN`;
    ///   AppRole with `VAULT_ROLE_ID` + `VAULT_SECRET_ID` (or
    ///   `VAULT_WRAPPED_SECRET_ID`); a JWT login with
    ///   `{PREFIX}_VAULT_JWT_FILE` + `{PREFIX}_VAULT_ROLE`; the token file
    ///   `$HOME/.vault-token` written by `vault login` / `bao login`.
    ///   `{PREFIX}_VAULT_AUTH_MOUNT` moves a login method's mount;
    /// - `VAULT_NAMESPACE` (or `BAO_NAMESPACE`), sent as `X-Vault-Namespace`;
    /// - `VAULT_CACERT` (or `BAO_CACERT`): a PEM file of the CA(s) to trust
    ///   instead of the built-in Mozilla roots;
    /// - `{PREFIX}_VAULT_MOUNT` (default `secret`), `{PREFIX}_VAULT_PREFIX`
    ///   (default `credstore`);
    /// - `{PREFIX}_HTTP_TIMEOUT`: whole seconds per operation (a read, a
    ///   write, a delete, with every retry, fail-over and login in it;
    ///   default 30).
    ///
    /// When a `VAULT_*` and its `BAO_*` twin are both set to different
    /// values, that is a usage error (credstore will not guess which server
    /// a token belongs to). A malformed value is a usage error naming the
    /// variable, never quoting a secret. No address or no token is
    /// [`Error::BackendUnavailable`] (exit 4) saying what to set.
    ///
    /// ```
    /// use credstore::env::{EnvNames, MapEnv};
    /// use credstore::store::VaultConfig;
    ///
    /// let env = MapEnv::new()
    ///     .with("VAULT_ADDR", "https://vault.example.com:8200/")
    ///     .with("VAULT_TOKEN", "hvs.example-token");
    /// let config = VaultConfig::from_env(&env, &EnvNames::default()).unwrap();
    /// assert_eq!(config.addr(), "https://vault.example.com:8200");
    /// assert_eq!(config.mount(), "secret");
    /// assert!(!format!("{config:?}").contains("hvs.example-token"));
    /// ```
    pub fn from_env(env: &dyn Environment, names: &EnvNames) -> Result<VaultConfig> {
        let list_var = names.vault_addrs();
        let (raw, addr_var): (Zeroizing<String>, String) = match env.text(&list_var)? {
            Some(list) => (list, list_var),
            None => match twin(env, "VAULT_ADDR", "BAO_ADDR")? {
                Some((addr, var)) => (addr, var.to_string()),
                None => {
                    return Err(Error::BackendUnavailable {
                        backend: BACKEND,
                        reason: "no Vault address: VAULT_ADDR (or BAO_ADDR) is not set".into(),
                        hint: "Set VAULT_ADDR=https://your-vault:8200 (several, comma-separated, for a cluster) and a token (VAULT_TOKEN), AppRole ids or a JWT file.".into(),
                    })
                }
            },
        };
        let addrs = parse_addrs(&raw, &addr_var)?;
        let allow_var = names.vault_allow_http();
        let allow_http = match env.text(&allow_var)? {
            None => false,
            Some(v) => match v.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => {
                    return Err(Error::Usage(format!(
                        "{allow_var} must be 1 (allow plain http to a remote Vault) or 0"
                    )))
                }
            },
        };
        let is_insecure =
            |addr: &str| addr.starts_with("http://") && !crate::http::is_loopback_url(addr);
        let insecure_http = addrs.iter().any(|a| is_insecure(a));
        if let Some(addr) = addrs.iter().find(|a| is_insecure(a)) {
            if !allow_http {
                return Err(Error::Usage(format!(
                    "{addr_var} holds {addr}: plain http to a host that is not loopback would send the Vault token and the credential in clear; use https:// (with VAULT_CACERT for a private CA), or set {allow_var}=1 to accept that risk"
                )));
            }
        }

        let timeout = crate::http::timeout_from_env(env, names)?;
        let mount = match env.text(&names.vault_mount())? {
            Some(m) => parse_vault_path(&m, &names.vault_mount())?,
            None => DEFAULT_MOUNT.to_string(),
        };
        let prefix = match env.text(&names.vault_prefix())? {
            Some(p) => parse_vault_path(&p, &names.vault_prefix())?,
            None => DEFAULT_PREFIX.to_string(),
        };
        let namespace = match twin(env, "VAULT_NAMESPACE", "BAO_NAMESPACE")? {
            Some((ns, var)) => Some(parse_vault_path(&ns, var)?),
            None => None,
        };
        let ca_cert = twin_path(env, "VAULT_CACERT", "BAO_CACERT")?;
        let auth = auth::from_env(env, names)?;
        Ok(VaultConfig {
            addrs,
            auth,
            namespace,
            ca_cert,
            mount,
            prefix,
            timeout,
            insecure_http,
            names: names.clone(),
        })
    }

    /// The first server address, without a trailing `/`.
    pub fn addr(&self) -> &str {
        self.addrs.first().map(String::as_str).unwrap_or("")
    }

    /// Every server address, in the order they are tried.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
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

    /// The deadline of each operation (all its requests and retries).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the address is plain http to a host that is not loopback
    /// (allowed only by `{PREFIX}_VAULT_ALLOW_HTTP=1`): the caller should
    /// warn that the token and the credential cross the network in clear.
    pub fn insecure_http(&self) -> bool {
        self.insecure_http
    }

    /// Where the token comes from (`VAULT_TOKEN`, `~/.vault-token`, AppRole
    /// login…), for messages. Never the token itself.
    pub fn auth_source(&self) -> String {
        self.auth.source()
    }

    /// The secret's path relative to the mount: `<prefix>/<profile>`.
    pub(super) fn secret_path(&self, profile: &crate::profile::Profile) -> String {
        format!("{}/{}", self.prefix, profile.as_str())
    }
}

/// Reads `primary`, else `twin`; both set to different values is an error.
pub(super) fn twin(
    env: &dyn Environment,
    primary: &'static str,
    twin: &'static str,
) -> Result<Option<(Zeroizing<String>, &'static str)>> {
    match (env.text(primary)?, env.text(twin)?) {
        (Some(a), Some(b)) if a.trim() != b.trim() => Err(Error::Usage(format!(
            "{primary} and {twin} are both set, to different values; unset one so credstore knows which to use"
        ))),
        (Some(a), _) => Ok(Some((a, primary))),
        (None, Some(b)) => Ok(Some((b, twin))),
        (None, None) => Ok(None),
    }
}

/// Like [`twin`] for path variables (raw OS paths).
fn twin_path(
    env: &dyn Environment,
    primary: &'static str,
    twin: &'static str,
) -> Result<Option<PathBuf>> {
    match (env.path(primary), env.path(twin)) {
        (Some(a), Some(b)) if a != b => Err(Error::Usage(format!(
            "{primary} and {twin} are both set, to different files; unset one"
        ))),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// A comma-separated list of addresses (one is a list too): each checked
/// like [`parse_addr`], blanks between commas ignored, repeats dropped.
pub(crate) fn parse_addrs(raw: &str, var: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',').filter(|s| !s.trim().is_empty()) {
        let addr = parse_addr(item, var)?;
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "{var} holds no address; expected e.g. https://vault.example.com:8200"
        )));
    }
    if out.len() > 16 {
        return Err(Error::Usage(format!("{var} holds more than 16 addresses")));
    }
    Ok(out)
}

pub(crate) fn parse_addr(raw: &str, var: &str) -> Result<String> {
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
pub(crate) fn parse_vault_path(raw: &str, var: &str) -> Result<String> {
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

/// A token or id goes into an HTTP header or JSON: visible ASCII only.
pub(super) fn parse_token(raw: &str, var: &str) -> Result<SecretString> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Usage(format!(
            "{var} does not hold a usable Vault token or id (it must be visible ASCII, no spaces, at most 4 KiB)"
        )));
    }
    Ok(secret_string(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn base() -> MapEnv {
        MapEnv::new()
            .with("VAULT_ADDR", "http://127.0.0.1:8200")
            .with("VAULT_TOKEN", "s.tok-SECRET-1234")
    }

    fn from(env: &MapEnv) -> Result<VaultConfig> {
        VaultConfig::from_env(env, &EnvNames::default())
    }

    fn usage(env: &MapEnv) -> String {
        match from(env) {
            Err(e @ Error::Usage(_)) => e.to_string(),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = from(&base()).unwrap();
        assert_eq!(c.addr(), "http://127.0.0.1:8200");
        assert_eq!(c.mount(), "secret");
        assert_eq!(c.prefix(), "credstore");
        assert_eq!(c.timeout(), crate::http::DEFAULT_TIMEOUT);
        assert_eq!(c.auth_source(), "VAULT_TOKEN");
        assert!(c.namespace().is_none());
        assert!(!c.insecure_http());
    }

    #[test]
    fn custom_mount_prefix_namespace_timeout_and_other_prefixes() {
        let env = base()
            .with("CREDSTORE_VAULT_MOUNT", "/kv/team/")
            .with("CREDSTORE_VAULT_PREFIX", "agents/prod")
            .with("VAULT_NAMESPACE", "eng")
            .with("CREDSTORE_HTTP_TIMEOUT", " 2 ");
        let c = from(&env).unwrap();
        assert_eq!(c.mount(), "kv/team");
        assert_eq!(c.prefix(), "agents/prod");
        assert_eq!(c.namespace(), Some("eng"));
        assert_eq!(c.timeout(), Duration::from_secs(2));
        // With another prefix, CREDSTORE_* is not read at all.
        let codex = VaultConfig::from_env(&env, &EnvNames::new("CODEX")).unwrap();
        assert_eq!(codex.mount(), "secret");
        let env = base().with("CODEX_VAULT_MOUNT", "kv2");
        let codex = VaultConfig::from_env(&env, &EnvNames::new("CODEX")).unwrap();
        assert_eq!(codex.mount(), "kv2");
    }

    #[test]
    fn address_lists_from_vault_addr_or_the_list_variable() {
        let c = from(&base().with(
            "VAULT_ADDR",
            " http://127.0.0.1:8200/, https://vault-b.example:8200 ,,http://127.0.0.1:8200",
        ))
        .unwrap();
        assert_eq!(
            c.addrs(),
            ["http://127.0.0.1:8200", "https://vault-b.example:8200"]
        );
        assert_eq!(c.addr(), "http://127.0.0.1:8200");
        // The list variable wins over VAULT_ADDR (which config.toml may
        // fill in), and follows the prefix.
        let env = base().with(
            "CREDSTORE_VAULT_ADDRS",
            "https://a.example,https://b.example",
        );
        assert_eq!(
            from(&env).unwrap().addrs(),
            ["https://a.example", "https://b.example"]
        );
        let codex = VaultConfig::from_env(&env, &EnvNames::new("CODEX")).unwrap();
        assert_eq!(codex.addrs(), ["http://127.0.0.1:8200"]);
        // Each address is checked; the error names the variable.
        let msg = usage(&base().with("CREDSTORE_VAULT_ADDRS", "https://a.example,ftp://b"));
        assert!(msg.contains("CREDSTORE_VAULT_ADDRS"), "{msg}");
        assert!(usage(&base().with("VAULT_ADDR", " , ")).contains("no address"));
        // One plain-http remote address in the list is enough to refuse.
        let msg = usage(&base().with("VAULT_ADDR", "https://a.example,http://b.example"));
        assert!(
            msg.contains("http://b.example") && msg.contains("in clear"),
            "{msg}"
        );
    }

    #[test]
    fn login_method_selection() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = dir.path().join("jwt");
        let addr = MapEnv::new().with("VAULT_ADDR", "http://127.0.0.1:8200");
        let names = EnvNames::default();
        let source = |env: &MapEnv| VaultConfig::from_env(env, &names).map(|c| c.auth_source());
        // Default: a token, else AppRole, else a JWT file.
        let all = addr
            .clone()
            .with("VAULT_TOKEN", "s.tok-SECRET-1234")
            .with("VAULT_ROLE_ID", "r-1")
            .with("VAULT_SECRET_ID", "s-SECRET-2")
            .with("CREDSTORE_VAULT_JWT_FILE", &jwt)
            .with("CREDSTORE_VAULT_ROLE", "agents");
        assert_eq!(source(&all).unwrap(), "VAULT_TOKEN");
        let no_token = all.clone().without("VAULT_TOKEN");
        assert!(source(&no_token)
            .unwrap()
            .starts_with("AppRole login at auth/approle"));
        let jwt_only = no_token
            .clone()
            .without("VAULT_ROLE_ID")
            .without("VAULT_SECRET_ID");
        let s = source(&jwt_only).unwrap();
        assert!(s.starts_with("JWT login at auth/jwt (role agents"), "{s}");
        // Chosen explicitly, with a mount.
        let s = source(
            &all.clone()
                .with("CREDSTORE_VAULT_AUTH", "jwt")
                .with("CREDSTORE_VAULT_AUTH_MOUNT", "ci/gitlab"),
        )
        .unwrap();
        assert!(s.starts_with("JWT login at auth/ci/gitlab"), "{s}");
        let s = source(&all.clone().with("CREDSTORE_VAULT_AUTH", "kubernetes")).unwrap();
        assert!(s.starts_with("Kubernetes login at auth/kubernetes"), "{s}");
        let k8s = addr
            .clone()
            .with("CREDSTORE_VAULT_AUTH", "kubernetes")
            .with("CREDSTORE_VAULT_ROLE", "pod");
        assert!(source(&k8s)
            .unwrap()
            .contains("/var/run/secrets/kubernetes.io/serviceaccount/token"));
        let s = source(
            &all.clone()
                .with("CREDSTORE_VAULT_AUTH", "approle")
                .with("CREDSTORE_VAULT_AUTH_MOUNT", "machines"),
        )
        .unwrap();
        assert!(s.starts_with("AppRole login at auth/machines"), "{s}");
        // Wrapped secret ids; never both kinds.
        let wrapped = addr
            .clone()
            .with("VAULT_ROLE_ID", "r-1")
            .with("VAULT_WRAPPED_SECRET_ID", "w-SECRET-3");
        assert!(source(&wrapped)
            .unwrap()
            .contains("VAULT_WRAPPED_SECRET_ID"));
        assert!(usage(&wrapped.clone().with("VAULT_SECRET_ID", "s-SECRET-2")).contains("both set"));
        // Usage errors name the variable and never a secret.
        for (env, needle) in [
            (
                all.clone().with("CREDSTORE_VAULT_AUTH", "ldap"),
                "CREDSTORE_VAULT_AUTH",
            ),
            (
                jwt_only.clone().without("CREDSTORE_VAULT_ROLE"),
                "CREDSTORE_VAULT_ROLE",
            ),
            (
                jwt_only.clone().with("CREDSTORE_VAULT_ROLE", "a b"),
                "CREDSTORE_VAULT_ROLE",
            ),
            (
                jwt_only.clone().with("CREDSTORE_VAULT_AUTH_MOUNT", "../x"),
                "CREDSTORE_VAULT_AUTH_MOUNT",
            ),
        ] {
            let msg = usage(&env);
            assert!(msg.contains(needle), "{msg}");
            assert!(!msg.contains("SECRET"), "{msg}");
        }
        // Asked for, not configured: exit 4 saying what to set.
        let e = from(&addr.clone().with("CREDSTORE_VAULT_AUTH", "jwt")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("CREDSTORE_VAULT_JWT_FILE"), "{e}");
        let e = from(&addr.with("CREDSTORE_VAULT_AUTH", "token")).unwrap_err();
        assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    }

    #[test]
    fn plain_http_to_a_remote_host_needs_an_explicit_opt_in() {
        let env = base().with("VAULT_ADDR", "http://vault.example.com:8200");
        let msg = usage(&env);
        assert!(
            msg.contains("in clear") && msg.contains("CREDSTORE_VAULT_ALLOW_HTTP"),
            "{msg}"
        );
        let c = from(&env.clone().with("CREDSTORE_VAULT_ALLOW_HTTP", "1")).unwrap();
        assert!(c.insecure_http());
        usage(&env.with("CREDSTORE_VAULT_ALLOW_HTTP", "maybe"));
        assert!(
            !from(&base().with("VAULT_ADDR", "https://vault.example.com"))
                .unwrap()
                .insecure_http()
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
        from(&base().with("BAO_TOKEN", "s.tok-SECRET-1234")).unwrap();
        let c = from(
            &MapEnv::new()
                .with("BAO_ADDR", "https://bao.example")
                .with("BAO_TOKEN", "t-abcd"),
        )
        .unwrap();
        assert_eq!(c.addr(), "https://bao.example");
        assert_eq!(c.auth_source(), "BAO_TOKEN");
        usage(&base().with("BAO_ADDR", "http://127.0.0.2:8200"));
    }

    #[test]
    fn missing_address_or_token_says_what_to_set() {
        let e = from(&MapEnv::new().with("VAULT_TOKEN", "t-abcd")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("VAULT_ADDR"), "{e}");
        let e = from(&MapEnv::new().with("VAULT_ADDR", "http://127.0.0.1:1")).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_values_are_usage_errors() {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"s.tok\xff");
        let e = from(&base().with("VAULT_TOKEN", bad)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
    }
}
