//! `AgentAssertion` header values (SPEC §7).

use crate::credential::{unix_now, AgentIdentity};
use crate::error::{Error, Result};
use crate::secret::secret_string;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::Signer;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use zeroize::Zeroizing;

/// The authorization scheme of an assertion header value.
pub const ASSERTION_SCHEME: &str = "AgentAssertion";

/// Longest task id accepted, in bytes. Task ids are short opaque strings;
/// the bound keeps a hostile server or caller from making huge headers.
pub(crate) const MAX_TASK_ID_BYTES: usize = 1024;

/// A signed `AgentAssertion …` header value. It is a bearer credential for
/// the task, so it is kept like a secret: `Debug` redacts it, there is no
/// `Display`, and [`AgentAssertion::expose`] is the one way out.
pub struct AgentAssertion {
    value: SecretString,
    timestamp: String,
}

impl std::fmt::Debug for AgentAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAssertion")
            .field("value", &"[REDACTED]")
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

impl AgentAssertion {
    /// The whole header value: `AgentAssertion <base64url JSON>`.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// The signed timestamp (RFC 3339, seconds, `Z`).
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// An assertion received from the signing agent: checked for the
    /// scheme and for being a valid header value, never echoed on error.
    pub(crate) fn received(value: &str, timestamp: &str) -> Option<AgentAssertion> {
        let ok = value
            .strip_prefix(ASSERTION_SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .is_some_and(|b64| {
                !b64.is_empty()
                    && b64
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            });
        (ok && timestamp.len() <= 32).then(|| AgentAssertion {
            value: secret_string(value),
            timestamp: timestamp.to_string(),
        })
    }
}

/// The JSON envelope; serde writes struct fields in declaration order, which
/// is the order SPEC §7 fixes.
#[derive(Serialize)]
struct Envelope<'a> {
    agent_runtime_id: &'a str,
    signature: &'a str,
    task_id: &'a str,
    timestamp: &'a str,
}

/// Formats seconds since the epoch as RFC 3339 in UTC with whole seconds and
/// a `Z` suffix (`2027-01-15T08:00:00Z`), the form every signed message uses.
pub fn format_timestamp(secs: i64) -> Result<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| {
        Error::Usage(format!(
            "timestamp {secs} is outside the range an RFC 3339 time can show"
        ))
    })?;
    if !(0..=9999).contains(&t.year()) {
        return Err(Error::Usage(format!(
            "timestamp {secs} is outside the years 0000-9999 of RFC 3339"
        )));
    }
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Checks a task id before it is signed or put in a header: non-empty, at
/// most [`MAX_TASK_ID_BYTES`], and no whitespace or control characters (it
/// goes into an HTTP header and a `:`-separated signed message).
pub(crate) fn check_task_id(task_id: &str) -> Result<()> {
    if task_id.is_empty() {
        return Err(Error::Usage(
            "the task id is empty; use the id that task registration returned".into(),
        ));
    }
    if task_id.len() > MAX_TASK_ID_BYTES {
        return Err(Error::Usage(format!(
            "the task id is {} bytes long; the limit is {MAX_TASK_ID_BYTES}",
            task_id.len()
        )));
    }
    if let Some(pos) = task_id
        .chars()
        .position(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Usage(format!(
            "the task id contains whitespace or a control character at character {pos}"
        )));
    }
    Ok(())
}

impl AgentIdentity {
    /// The `AgentAssertion …` header value for `task_id`, signed now.
    ///
    /// Refuses an expired identity ([`Error::Expired`], exit 3) and a bad
    /// task id ([`Error::Usage`], exit 2). See
    /// [`AgentIdentity::assertion_at`] for the exact format.
    pub fn assertion(&self, task_id: &str) -> Result<AgentAssertion> {
        self.assertion_at(task_id, unix_now())
    }

    /// The assertion for `task_id` at `timestamp` (seconds since the epoch),
    /// as SPEC §7 fixes it: the Ed25519 signature of
    /// `"{agent_runtime_id}:{task_id}:{ts}"` (`ts` in RFC 3339, seconds,
    /// `Z`), put with the other three fields in the JSON object
    /// `{"agent_runtime_id", "signature" (standard base64), "task_id",
    /// "timestamp"}` — keys in that order — whose base64url (no padding)
    /// follows `AgentAssertion `. Signs with the key parsed at load time.
    ///
    /// The identity must not be expired at `timestamp`.
    pub fn assertion_at(&self, task_id: &str, timestamp: i64) -> Result<AgentAssertion> {
        check_task_id(task_id)?;
        self.ensure_not_expired(timestamp, self.origin())?;
        let ts = format_timestamp(timestamp)?;
        let runtime = &self.claims().agent_runtime_id;
        let message = format!("{runtime}:{task_id}:{ts}");
        // Signing hashes the seed in stack buffers no destructor wipes.
        let signature =
            crate::secret::with_stack_scrub(|| self.signing_key().sign(message.as_bytes()));
        let signature = Zeroizing::new(STANDARD.encode(signature.to_bytes()));
        // Buffers are sized once up front (JSON escaping at most sextuples a
        // character) so no grown-out copy of the assertion is left behind,
        // and all of them are wiped on drop.
        let mut json = Zeroizing::new(Vec::with_capacity(
            64 + 6 * (runtime.len() + task_id.len()) + signature.len() + ts.len(),
        ));
        serde_json::to_writer(
            &mut *json,
            &Envelope {
                agent_runtime_id: runtime,
                signature: &signature,
                task_id,
                timestamp: &ts,
            },
        )
        .map_err(|e| Error::Usage(format!("cannot encode the assertion: {e}")))?;
        let prefix = format!("{ASSERTION_SCHEME} ");
        let encoded_len = base64::encoded_len(json.len(), false).unwrap_or(0);
        let mut value = Zeroizing::new(String::with_capacity(prefix.len() + encoded_len));
        value.push_str(&prefix);
        URL_SAFE_NO_PAD.encode_string(&json[..], &mut value);
        Ok(AgentAssertion {
            value: secret_string(&value),
            timestamp: ts,
        })
    }

    /// Signs `"{agent_runtime_id}:{ts}"` for task registration; returns the
    /// RFC 3339 timestamp and the standard-base64 signature.
    pub(crate) fn registration_signature(&self, timestamp: i64) -> Result<(String, String)> {
        let ts = format_timestamp(timestamp)?;
        let message = format!("{}:{ts}", self.claims().agent_runtime_id);
        let signature =
            crate::secret::with_stack_scrub(|| self.signing_key().sign(message.as_bytes()));
        Ok((ts, STANDARD.encode(signature.to_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::tokens::{TokenBuilder, NOW};
    use ed25519_dalek::{Signature, Verifier};
    use serde_json::json;

    fn identity(b: &TokenBuilder) -> AgentIdentity {
        AgentIdentity::parse(b.build().as_bytes(), "test").unwrap()
    }

    #[test]
    fn timestamp_is_rfc3339_seconds_z() {
        assert_eq!(format_timestamp(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(NOW).unwrap(), "2027-01-15T08:00:00Z");
        assert_eq!(
            format_timestamp(951_782_400).unwrap(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(format_timestamp(i64::MAX).unwrap_err().exit_code(), 2);
        assert_eq!(
            format_timestamp(253_402_300_800).unwrap_err().exit_code(),
            2
        );
    }

    #[test]
    fn envelope_has_exact_shape_and_order() {
        let b = TokenBuilder::new().claim("exp", json!(NOW + 3600));
        let id = identity(&b);
        let a = id.assertion_at("task-42", NOW).unwrap();
        let v = a.expose();
        let payload = v.strip_prefix("AgentAssertion ").unwrap();
        assert!(!payload.contains('=') && !payload.contains('+') && !payload.contains('/'));
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        let sig_b64 = parsed["signature"].as_str().unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"agent_runtime_id":"rt-test-1","signature":"{sig_b64}","task_id":"task-42","timestamp":"2027-01-15T08:00:00Z"}}"#
            )
        );
        let sig = STANDARD.decode(sig_b64).unwrap();
        assert_eq!(sig.len(), 64);
        let sig = Signature::from_slice(&sig).unwrap();
        b.verifying_key()
            .verify(b"rt-test-1:task-42:2027-01-15T08:00:00Z", &sig)
            .unwrap();
        assert_eq!(a.timestamp(), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn expired_identity_and_bad_task_ids_are_refused() {
        let b = TokenBuilder::new().claim("exp", json!(NOW));
        let id = identity(&b);
        assert!(id.assertion_at("t", NOW + 60).is_ok());
        let e = id.assertion_at("t", NOW + 61).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("test"), "{e}");
        for bad in ["", "a b", "a\nb", "a\u{7f}"] {
            assert_eq!(id.assertion_at(bad, NOW).unwrap_err().exit_code(), 2);
        }
        let long = "x".repeat(MAX_TASK_ID_BYTES + 1);
        assert_eq!(id.assertion_at(&long, NOW).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn debug_redacts_the_value() {
        let id = identity(&TokenBuilder::new());
        let a = id.assertion("task-1").unwrap();
        let dbg = format!("{a:?}");
        assert!(dbg.contains("REDACTED"));
        let payload = a.expose().strip_prefix("AgentAssertion ").unwrap();
        assert!(!dbg.contains(payload));
    }
}
