//! Request headers for the active credential (SPEC §7).

use super::assertion::AgentAssertion;
use crate::credential::{unix_now, AgentIdentity, Credential};
use crate::error::{Error, Result};
use crate::secret::secret_string;
use secrecy::{ExposeSecret, SecretString};

/// `Authorization`.
pub const AUTHORIZATION_HEADER: &str = "Authorization";
/// `ChatGPT-Account-ID`, the agent identity's `account_id`.
pub const ACCOUNT_ID_HEADER: &str = "ChatGPT-Account-ID";
/// `X-OpenAI-Fedramp`, sent as `true` for a FedRAMP account.
pub const FEDRAMP_HEADER: &str = "X-OpenAI-Fedramp";

/// The headers a request needs, in order. The `Authorization` value is a
/// secret (an API key or an assertion): `Debug` redacts it, and
/// [`RequestHeaders::iter`] is the one way to read the values.
pub struct RequestHeaders {
    entries: Vec<(&'static str, SecretString)>,
}

impl std::fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (name, value) in &self.entries {
            if *name == AUTHORIZATION_HEADER {
                m.entry(name, &"[REDACTED]");
            } else {
                m.entry(name, &value.expose_secret());
            }
        }
        m.finish()
    }
}

/// Whether `value` may be sent as an HTTP header value as it is: printable
/// ASCII (space and tab allowed inside), not empty, no surrounding
/// whitespace. Anything else — CR, LF, NUL, DEL, non-ASCII — could forge a
/// header line or be read differently by the server.
pub fn is_valid_header_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.iter().all(|&c| (0x20..0x7f).contains(&c) || c == b'\t')
        && !matches!(b.first(), Some(b' ' | b'\t'))
        && !matches!(b.last(), Some(b' ' | b'\t'))
}

impl RequestHeaders {
    /// Builds the headers, refusing any value that is not a valid HTTP
    /// header value ([`is_valid_header_value`]): such a value can never be
    /// in a `RequestHeaders`. The value is not echoed in the error.
    fn build(entries: Vec<(&'static str, SecretString)>, origin: &str) -> Result<RequestHeaders> {
        for (name, value) in &entries {
            if !is_valid_header_value(value.expose_secret()) {
                return Err(Error::InvalidCredential {
                    kind: if *name == AUTHORIZATION_HEADER
                        && !value.expose_secret().starts_with("AgentAssertion ")
                    {
                        "API key"
                    } else {
                        "agent identity"
                    },
                    origin: origin.to_string(),
                    reason: format!(
                        "its {name} header value would not be a valid HTTP header value \
                         (only printable ASCII can be sent)"
                    ),
                });
            }
        }
        Ok(RequestHeaders { entries })
    }

    /// `Authorization: Bearer <key>`, for an API key.
    fn bearer(key: &str, origin: &str) -> Result<RequestHeaders> {
        let mut value = zeroize::Zeroizing::new(String::with_capacity(7 + key.len()));
        value.push_str("Bearer ");
        value.push_str(key);
        RequestHeaders::build(vec![(AUTHORIZATION_HEADER, secret_string(&value))], origin)
    }

    /// The headers for an agent identity and its signed assertion.
    fn agent(
        assertion: &AgentAssertion,
        account_id: &str,
        fedramp: bool,
        origin: &str,
    ) -> Result<RequestHeaders> {
        let mut entries = vec![
            (AUTHORIZATION_HEADER, secret_string(assertion.expose())),
            (ACCOUNT_ID_HEADER, secret_string(account_id)),
        ];
        if fedramp {
            entries.push((FEDRAMP_HEADER, secret_string("true")));
        }
        RequestHeaders::build(entries, origin)
    }

    /// Headers received from the signing agent: only the names credstore
    /// itself sends are accepted, and every value is checked as when it is
    /// built here.
    pub(crate) fn received<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
        origin: &str,
    ) -> Result<RequestHeaders> {
        let mut out = Vec::new();
        for (name, value) in entries {
            let name = [AUTHORIZATION_HEADER, ACCOUNT_ID_HEADER, FEDRAMP_HEADER]
                .into_iter()
                .find(|known| *known == name)
                .ok_or_else(|| Error::Backend {
                    backend: "signing agent",
                    message: "the answer names a header credstore does not send".into(),
                })?;
            out.push((name, secret_string(value)));
        }
        if out.is_empty() {
            return Err(Error::Backend {
                backend: "signing agent",
                message: "the answer carries no header".into(),
            });
        }
        RequestHeaders::build(out, origin)
    }

    /// `(name, value)` pairs in order. This exposes the secret values.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.entries
            .iter()
            .map(|(name, value)| (*name, value.expose_secret()))
    }

    /// The value of `name` (ASCII case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (never, for a built value).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Credential {
    /// The request headers for this credential, signed now (SPEC §7):
    /// `Authorization: Bearer <key>` for an API key; for an agent identity
    /// `Authorization: AgentAssertion …`, `ChatGPT-Account-ID`, and
    /// `X-OpenAI-Fedramp: true` when the account is FedRAMP.
    ///
    /// An agent identity needs `task_id` (without one: [`Error::Usage`],
    /// exit 2; an API key ignores it). An expired identity is refused.
    pub fn request_headers(&self, task_id: Option<&str>) -> Result<RequestHeaders> {
        self.request_headers_at(task_id, unix_now())
    }

    /// [`Credential::request_headers`] with the assertion signed at
    /// `timestamp` (seconds since the epoch).
    pub fn request_headers_at(
        &self,
        task_id: Option<&str>,
        timestamp: i64,
    ) -> Result<RequestHeaders> {
        match self {
            Credential::ApiKey(key) => RequestHeaders::bearer(key.expose(), key.origin()),
            Credential::AgentIdentity(id) => {
                let task_id = task_id.ok_or_else(|| Error::MissingTaskId {
                    origin: id.origin().to_string(),
                })?;
                id.request_headers_at(task_id, timestamp)
            }
        }
    }
}

impl AgentIdentity {
    /// The request headers for this identity and `task_id`, signed now:
    /// `Authorization: AgentAssertion …`, `ChatGPT-Account-ID`, and
    /// `X-OpenAI-Fedramp: true` for a FedRAMP account.
    pub fn request_headers(&self, task_id: &str) -> Result<RequestHeaders> {
        self.request_headers_at(task_id, unix_now())
    }

    /// [`AgentIdentity::request_headers`] signed at `timestamp`.
    pub fn request_headers_at(&self, task_id: &str, timestamp: i64) -> Result<RequestHeaders> {
        let assertion = self.assertion_at(task_id, timestamp)?;
        let claims = self.claims();
        RequestHeaders::agent(
            &assertion,
            &claims.account_id,
            claims.fedramp,
            self.origin(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::tokens::{TokenBuilder, NOW};
    use crate::credential::AuthMode;
    use serde_json::json;

    fn agent(b: &TokenBuilder) -> Credential {
        Credential::parse(AuthMode::AgentIdentity, b.build().as_bytes(), "test").unwrap()
    }

    #[test]
    fn api_key_gives_bearer_only() {
        let c = Credential::parse(AuthMode::ApiKey, b"sk-test-123", "test").unwrap();
        let h = c.request_headers(None).unwrap();
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![("Authorization", "Bearer sk-test-123")]
        );
        // A task id is ignored for an API key.
        assert_eq!(c.request_headers(Some("t")).unwrap().len(), 1);
        assert!(!format!("{h:?}").contains("sk-test-123"));
    }

    #[test]
    fn agent_identity_headers() {
        let b = TokenBuilder::new().claim("exp", json!(NOW + 3600));
        let c = agent(&b);
        let h = c.request_headers_at(Some("task-9"), NOW).unwrap();
        let names: Vec<_> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Authorization", "ChatGPT-Account-ID"]);
        let expected = c
            .agent_identity()
            .unwrap()
            .assertion_at("task-9", NOW)
            .unwrap();
        // Ed25519 is deterministic: same message, same signature.
        assert_eq!(h.get("authorization"), Some(expected.expose()));
        assert_eq!(h.get("ChatGPT-Account-ID"), Some("acct-test-1"));
        assert_eq!(h.get(FEDRAMP_HEADER), None);
        let dbg = format!("{h:?}");
        assert!(dbg.contains("acct-test-1") && !dbg.contains(expected.expose()));
    }

    #[test]
    fn header_values_are_checked() {
        assert!(is_valid_header_value("Bearer sk-1"));
        assert!(is_valid_header_value("a\tb"));
        for bad in [
            "",
            " a",
            "a ",
            "a\r\nX-Forged: 1",
            "a\0",
            "a\u{7f}",
            "caf\u{e9}",
        ] {
            assert!(!is_valid_header_value(bad), "{bad:?}");
        }
        // An API key that is valid as a key but cannot travel in a header.
        let c = Credential::parse(AuthMode::ApiKey, "sk-caf\u{e9}".as_bytes(), "test").unwrap();
        let e = c.request_headers(None).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(!e.to_string().contains("caf"), "{e}");
    }

    #[test]
    fn fedramp_adds_header() {
        let b = TokenBuilder::new().claim("chatgpt_account_is_fedramp", json!(true));
        let h = agent(&b).request_headers(Some("t")).unwrap();
        assert_eq!(h.get("X-OpenAI-Fedramp"), Some("true"));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn agent_identity_without_task_id_is_a_usage_error() {
        let e = agent(&TokenBuilder::new())
            .request_headers(None)
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.kind(), crate::error::ErrorKind::MissingTaskId);
        // The library names no flag: the CLI adds its own advice.
        assert!(!e.to_string().contains("--"), "{e}");
    }
}
