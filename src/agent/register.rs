//! Task registration with the auth API (SPEC §7), and [`TaskSession`], which
//! registers once per process and reuses the task id.

use super::assertion::{check_task_id, AgentAssertion};
use super::headers::RequestHeaders;
use crate::credential::{unix_now, AgentIdentity};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deadline for the whole registration request when
/// `{PREFIX}_HTTP_TIMEOUT` is not set (the same for every network call).
pub const DEFAULT_HTTP_TIMEOUT: Duration = crate::http::DEFAULT_TIMEOUT;

/// At most this many characters of an error answer's body are reported.
pub const MAX_ERROR_BODY_CHARS: usize = 512;

/// Largest answer read; a task id answer is tiny.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Where and how long to register: the auth API's base URL and the deadline
/// for the whole request (connect, send, answer, body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    base_url: String,
    loopback: bool,
    timeout: Duration,
    timeout_variable: String,
}

impl RegistrationConfig {
    /// A config for `base_url` (`https://…`; `http://` only for a loopback
    /// host such as `127.0.0.1` or `localhost`, since the signed request
    /// should not cross a network in clear). A trailing `/` is dropped;
    /// a query, fragment or user info is refused. Usage error (exit 2)
    /// otherwise. The timeout is [`DEFAULT_HTTP_TIMEOUT`].
    pub fn new(base_url: &str) -> Result<RegistrationConfig> {
        let (base_url, loopback) = check_base_url(base_url.trim())?;
        Ok(RegistrationConfig {
            base_url,
            loopback,
            timeout: DEFAULT_HTTP_TIMEOUT,
            timeout_variable: EnvNames::default().http_timeout(),
        })
    }

    /// Sets the deadline for the whole request (at least one second).
    pub fn with_timeout(mut self, timeout: Duration) -> RegistrationConfig {
        self.timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// The config a command line uses: `base_url` when given (`--base-url`),
    /// else `{PREFIX}_AUTHAPI_BASE_URL`; the deadline from
    /// `{PREFIX}_HTTP_TIMEOUT` (whole seconds, default 30). A missing base
    /// URL or a bad timeout is a usage error naming the variable.
    pub fn from_env(
        env: &dyn Environment,
        names: &EnvNames,
        base_url: Option<&str>,
    ) -> Result<RegistrationConfig> {
        let url_var = names.authapi_base_url();
        let from_var = env.text(&url_var)?;
        let url = match (base_url, from_var.as_deref()) {
            (Some(u), _) => u.to_string(),
            (None, Some(u)) => u.to_string(),
            (None, None) => {
                return Err(Error::Usage(format!(
                    "no auth API base URL: pass --base-url URL or set {url_var}"
                )))
            }
        };
        let mut config = RegistrationConfig::new(&url).map_err(|e| match (base_url, e) {
            (None, Error::Usage(m)) => Error::Usage(format!("{url_var}: {m}")),
            (_, e) => e,
        })?;
        let timeout_var = names.http_timeout();
        config.timeout = crate::http::timeout_from_env(env, names)?;
        config.timeout_variable = timeout_var;
        Ok(config)
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The deadline for the whole request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `{base}/v1/agent/{agent_runtime_id}/task/register`, the runtime id
    /// percent-encoded so it stays one path segment.
    pub fn register_url(&self, agent_runtime_id: &str) -> String {
        format!(
            "{}/v1/agent/{}/task/register",
            self.base_url,
            percent_encode_segment(agent_runtime_id)
        )
    }
}

fn check_base_url(url: &str) -> Result<(String, bool)> {
    let usage = |why: &str| {
        Error::Usage(format!(
            "invalid auth API base URL {:?}: {why}",
            redact_userinfo(url).chars().take(200).collect::<String>()
        ))
    };
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|_| usage("not a URL (expected https://host[:port][/path])"))?;
    let host = uri.host().ok_or_else(|| usage("it has no host"))?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    if authority.contains('@') {
        return Err(usage(
            "it carries user info (user@host); credentials do not belong in the URL",
        ));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(usage(
            "it has a query or fragment; give only scheme, host, port and path",
        ));
    }
    let loopback = crate::http::is_loopback_host(host);
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        Some("http") => return Err(usage(
            "plain http is only allowed for a loopback host (127.0.0.1, ::1, localhost); use https",
        )),
        _ => return Err(usage("the scheme must be https")),
    }
    Ok((url.trim_end_matches('/').to_string(), loopback))
}

/// `url` with any `user:password@` in its authority replaced by `***@`,
/// so a message about a bad URL never repeats a password.
fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// Everything but RFC 3986 unreserved characters is encoded, so a runtime
/// id stays exactly one path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Registers a task for `identity` now and returns its id. See
/// [`register_task_at`].
pub fn register_task(identity: &AgentIdentity, config: &RegistrationConfig) -> Result<String> {
    register_task_at(identity, config, unix_now())
}

/// Registers a task, signing `timestamp` (seconds since the epoch):
/// `POST {base}/v1/agent/{agent_runtime_id}/task/register` with
/// `{"timestamp": ts, "signature": base64(sign("{agent_runtime_id}:{ts}"))}`.
/// The answer's `task_id`/`taskId` is returned as is; an
/// `encrypted_task_id`/`encryptedTaskId` (a libsodium sealed box to the
/// identity's derived X25519 key, base64) is opened first.
///
/// Errors: an expired identity ([`Error::Expired`], exit 3); no answer in
/// time ([`Error::Timeout`], exit 4); unreachable, an HTTP error (its status
/// and at most 512 characters of its body) or an answer without a usable
/// task id ([`Error::Registration`], exit 4). Redirects are not followed.
pub fn register_task_at(
    identity: &AgentIdentity,
    config: &RegistrationConfig,
    timestamp: i64,
) -> Result<String> {
    identity.ensure_not_expired(timestamp, identity.origin())?;
    let url = config.register_url(&identity.claims().agent_runtime_id);
    let (ts, signature) = identity.registration_signature(timestamp)?;
    let body = serde_json::to_vec(&serde_json::json!({
        "timestamp": ts,
        "signature": signature,
    }))
    .map_err(|e| failure(&url, None, format!("cannot encode the request: {e}")))?;

    let agent = crate::http::client(&crate::http::ClientOptions {
        timeout: config.timeout,
        loopback: config.loopback,
        ca_certs: None,
    });

    let mut response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .send(&body[..])
        .map_err(|e| transport_error(e, &url, config))?;
    let status = response.status();
    let answer = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec();

    if !status.is_success() {
        let shown = match &answer {
            Ok(bytes) if bytes.is_empty() => "(empty body)".to_string(),
            Ok(bytes) => format!("body: {}", body_excerpt(bytes)),
            Err(e) => format!("body unreadable: {e}"),
        };
        let reason = status.canonical_reason().unwrap_or("");
        return Err(failure(
            &url,
            Some(status.as_u16()),
            format!(
                "the server answered HTTP {} {reason}; {shown}",
                status.as_u16()
            ),
        ));
    }
    let answer = answer.map_err(|e| transport_error(e, &url, config))?;
    task_id_from_answer(identity, &answer)
        .map_err(|detail| failure(&url, Some(status.as_u16()), detail))
}

fn failure(url: &str, status: Option<u16>, detail: String) -> Error {
    Error::Registration {
        url: url.to_string(),
        status,
        detail,
    }
}

fn transport_error(e: ureq::Error, url: &str, config: &RegistrationConfig) -> Error {
    let timeout = || Error::Timeout {
        backend: "auth API",
        seconds: config.timeout.as_secs(),
        what: format!("POST {url}"),
        hint: format!(
            "check that the auth API is up; a slow one needs a larger {}",
            config.timeout_variable
        ),
    };
    match e {
        ureq::Error::Timeout(_) => timeout(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => timeout(),
        ureq::Error::HostNotFound => failure(
            url,
            None,
            "the host was not found; check the base URL".to_string(),
        ),
        ureq::Error::ConnectionFailed => failure(
            url,
            None,
            "cannot connect; check the base URL and that the auth API is up".to_string(),
        ),
        ureq::Error::Io(io) => failure(
            url,
            None,
            format!("cannot reach the auth API ({io}); check the base URL and that it is up"),
        ),
        ureq::Error::BodyExceedsLimit(_) => failure(
            url,
            None,
            format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
        ),
        other => failure(url, None, other.to_string()),
    }
}

/// At most [`MAX_ERROR_BODY_CHARS`] characters of `body`, with control
/// characters replaced so a hostile server cannot drive the terminal.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let total = text.chars().count();
    let mut out: String = text
        .chars()
        .take(MAX_ERROR_BODY_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if total > MAX_ERROR_BODY_CHARS {
        out.push_str(&format!(
            " […{} more characters]",
            total - MAX_ERROR_BODY_CHARS
        ));
    }
    out
}

fn task_id_from_answer(
    identity: &AgentIdentity,
    answer: &[u8],
) -> std::result::Result<String, String> {
    let value: Value = serde_json::from_slice(answer)
        .map_err(|_| format!("the answer is not JSON; body: {}", body_excerpt(answer)))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "the answer is not a JSON object".to_string())?;
    let field =
        |names: [&'static str; 2]| -> std::result::Result<Option<(&'static str, &str)>, String> {
            for name in names {
                match obj.get(name) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(s)) => return Ok(Some((name, s.as_str()))),
                    Some(_) => return Err(format!("the answer's `{name}` is not a string")),
                }
            }
            Ok(None)
        };
    if let Some((name, id)) = field(["task_id", "taskId"])? {
        check_task_id(id).map_err(|e| format!("the answer's `{name}` is unusable: {e}"))?;
        return Ok(id.to_string());
    }
    if let Some((name, sealed)) = field(["encrypted_task_id", "encryptedTaskId"])? {
        let bytes = [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(sealed.trim()).ok())
            .ok_or_else(|| format!("the answer's `{name}` is not base64"))?;
        return super::sealed::open(identity, &bytes).map_err(|e| format!("`{name}`: {e}"));
    }
    Err(
        "the answer has none of `task_id`, `taskId`, `encrypted_task_id`, `encryptedTaskId`"
            .to_string(),
    )
}

/// A process-scoped registration: the first caller of
/// [`TaskSession::task_id`] registers, every later caller (on any thread)
/// gets the same task id. Callers that race on first use wait for the one
/// registration in flight instead of starting their own. A failed
/// registration is not remembered: the next call tries again.
///
/// Keep one per process (in a `static` `OnceLock`, or an `Arc` handed
/// around); it is `Send + Sync`.
pub struct TaskSession {
    identity: Arc<AgentIdentity>,
    config: RegistrationConfig,
    task_id: Mutex<Option<String>>,
}

impl std::fmt::Debug for TaskSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSession")
            .field("agent_runtime_id", &self.identity.claims().agent_runtime_id)
            .field("base_url", &self.config.base_url)
            .field("registered", &self.registered())
            .finish()
    }
}

impl TaskSession {
    /// A session for `identity` against the auth API of `config`. Nothing
    /// is sent until the first [`TaskSession::task_id`].
    pub fn new(identity: Arc<AgentIdentity>, config: RegistrationConfig) -> TaskSession {
        TaskSession {
            identity,
            config,
            task_id: Mutex::new(None),
        }
    }

    /// The identity this session signs with.
    pub fn identity(&self) -> &AgentIdentity {
        &self.identity
    }

    /// Where this session registers.
    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// The task id: registered on first use, then reused.
    pub fn task_id(&self) -> Result<String> {
        // Holding the lock across the request is what makes concurrent first
        // use register exactly once. A poisoned lock only means a thread
        // panicked while holding it; the Option inside is still consistent.
        let mut slot = self
            .task_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(id) = slot.as_ref() {
            return Ok(id.clone());
        }
        let id = register_task(&self.identity, &self.config)?;
        *slot = Some(id.clone());
        Ok(id)
    }

    /// Whether a task id has been obtained.
    pub fn registered(&self) -> bool {
        self.task_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    /// An assertion for the session's task, signed now.
    pub fn assertion(&self) -> Result<AgentAssertion> {
        let task_id = self.task_id()?;
        self.identity.assertion(&task_id)
    }

    /// The request headers for the session's task, signed now.
    pub fn request_headers(&self) -> Result<RequestHeaders> {
        let task_id = self.task_id()?;
        self.identity.request_headers(&task_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn base_url_rules() {
        let ok = |u: &str| RegistrationConfig::new(u).unwrap().base_url().to_string();
        assert_eq!(ok("https://auth.example.com/"), "https://auth.example.com");
        assert_eq!(
            ok("https://auth.example.com/api//"),
            "https://auth.example.com/api"
        );
        assert_eq!(ok("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(ok("http://localhost:1"), "http://localhost:1");
        assert_eq!(ok("http://[::1]:9"), "http://[::1]:9");
        for bad in [
            "http://auth.example.com",
            "http://10.0.0.1",
            "ftp://auth.example.com",
            "auth.example.com",
            "https://user:pw@auth.example.com",
            "https://auth.example.com/?x=1",
            "https://auth.example.com/#frag",
            "",
        ] {
            let e = RegistrationConfig::new(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://u:pw@h.example/p@x"),
            "https://***@h.example/p@x"
        );
        assert_eq!(
            redact_userinfo("https://h.example/p@x"),
            "https://h.example/p@x"
        );
        assert_eq!(redact_userinfo("u:pw@h"), "***@h");
    }

    #[test]
    fn register_url_keeps_runtime_id_in_one_segment() {
        let c = RegistrationConfig::new("https://a.example/base").unwrap();
        assert_eq!(
            c.register_url("rt-1"),
            "https://a.example/base/v1/agent/rt-1/task/register"
        );
        assert_eq!(
            c.register_url("a/../b?c#d é"),
            "https://a.example/base/v1/agent/a%2F..%2Fb%3Fc%23d%20%C3%A9/task/register"
        );
    }

    #[test]
    fn config_from_env() {
        let names = EnvNames::default();
        let env = MapEnv::new();
        let e = RegistrationConfig::from_env(&env, &names, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("CREDSTORE_AUTHAPI_BASE_URL"), "{e}");

        let env = MapEnv::new()
            .with("CREDSTORE_AUTHAPI_BASE_URL", "https://env.example")
            .with("CREDSTORE_HTTP_TIMEOUT", "7");
        let c = RegistrationConfig::from_env(&env, &names, None).unwrap();
        assert_eq!(c.base_url(), "https://env.example");
        assert_eq!(c.timeout(), Duration::from_secs(7));
        // The flag wins over the variable.
        let c = RegistrationConfig::from_env(&env, &names, Some("https://flag.example")).unwrap();
        assert_eq!(c.base_url(), "https://flag.example");

        let c = RegistrationConfig::from_env(
            &MapEnv::new().with("CREDSTORE_AUTHAPI_BASE_URL", "https://x.example"),
            &names,
            None,
        )
        .unwrap();
        assert_eq!(c.timeout(), DEFAULT_HTTP_TIMEOUT);

        for bad in ["0", "-1", "1.5", "soon"] {
            let env = MapEnv::new()
                .with("CREDSTORE_AUTHAPI_BASE_URL", "https://x.example")
                .with("CREDSTORE_HTTP_TIMEOUT", bad);
            let e = RegistrationConfig::from_env(&env, &names, None).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("CREDSTORE_HTTP_TIMEOUT"), "{e}");
        }
        let env = MapEnv::new().with("CREDSTORE_AUTHAPI_BASE_URL", "http://remote.example");
        let e = RegistrationConfig::from_env(&env, &names, None).unwrap_err();
        assert!(e.to_string().contains("CREDSTORE_AUTHAPI_BASE_URL"), "{e}");

        // Another prefix reads other variables.
        let env = MapEnv::new().with("CODEX_AUTHAPI_BASE_URL", "https://codex.example");
        let c = RegistrationConfig::from_env(&env, &EnvNames::new("CODEX"), None).unwrap();
        assert_eq!(c.base_url(), "https://codex.example");
    }

    #[test]
    fn error_body_is_cut_at_512_characters_and_defanged() {
        let mut body = "é".repeat(MAX_ERROR_BODY_CHARS);
        body.push_str("TAIL");
        let shown = body_excerpt(body.as_bytes());
        assert!(shown.starts_with(&"é".repeat(MAX_ERROR_BODY_CHARS)));
        assert!(!shown.contains("TAIL"));
        assert!(shown.contains("4 more characters"));
        let shown = body_excerpt(b"a\x1b[31mb\n");
        assert!(!shown.contains('\x1b') && !shown.contains('\n'));
    }
}
