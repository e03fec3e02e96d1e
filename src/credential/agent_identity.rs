use super::claim::{describe_json_error, present, ClaimValue};
use super::{rfc3339, EXPIRY_LEEWAY_SECS, MAX_AGENT_IDENTITY_BYTES};
use crate::error::{Error, Result};
use crate::secret::secret_string;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::SigningKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The non-secret facts an agent identity carries (SPEC §1.1). These are
/// runtime state: they are shown by `status`, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `agent_runtime_id`.
    pub agent_runtime_id: String,
    /// `account_id`.
    pub account_id: String,
    /// `chatgpt_user_id`.
    pub chatgpt_user_id: String,
    /// `email`.
    pub email: String,
    /// `plan_type`, kept as given.
    pub plan_type: String,
    /// `chatgpt_account_is_fedramp` (default false).
    pub fedramp: bool,
    /// `iat`, seconds since the epoch.
    pub issued_at: i64,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `iss`, when present as a string.
    pub issuer: Option<String>,
    /// `aud`, when present as a string.
    pub audience: Option<String>,
}

/// The JWS header fields credstore looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    /// `alg`.
    pub alg: String,
    /// `kid`, when present as a string.
    pub kid: Option<String>,
}

/// A validated agent identity: the token as given, its claims, and the
/// parsed Ed25519 signing key (wiped on drop by `ed25519-dalek`'s
/// `ZeroizeOnDrop`). `Debug` shows the claims, never the token or the key.
pub struct AgentIdentity {
    token: SecretString,
    origin: String,
    header: JwtHeader,
    claims: Claims,
    signing_key: Box<SigningKey>,
}

impl std::fmt::Debug for AgentIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentIdentity")
            .field("token", &"[REDACTED]")
            .field("origin", &self.origin)
            .field("header", &self.header)
            .field("claims", &self.claims)
            .field("signing_key", &"[REDACTED]")
            .finish()
    }
}

#[derive(Deserialize)]
struct RawHeader {
    #[serde(default, deserialize_with = "present")]
    alg: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<ClaimValue>,
    /// RFC 7515 §4.1.11: extensions the reader must understand. credstore
    /// understands none, so any `crit` is refused.
    #[serde(default, deserialize_with = "present")]
    crit: Option<ClaimValue>,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default, deserialize_with = "present")]
    agent_runtime_id: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    agent_private_key: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    account_id: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    chatgpt_user_id: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    email: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    plan_type: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    chatgpt_account_is_fedramp: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    iss: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<ClaimValue>,
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl AgentIdentity {
    /// Parses and validates a compact JWS (SPEC §1.1). Surrounding
    /// whitespace is trimmed; the size limit is checked before anything is
    /// decoded; the private key must parse. Expiry is *not* checked here
    /// (see [`AgentIdentity::ensure_not_expired`]); the signature is not
    /// verified (SPEC §1.3).
    pub fn parse(input: &[u8], origin: &str) -> Result<AgentIdentity> {
        // Key bytes pass through stack temporaries on the way into the box.
        crate::secret::with_stack_scrub(|| Self::parse_inner(input, origin))
    }

    fn parse_inner(input: &[u8], origin: &str) -> Result<AgentIdentity> {
        let invalid = |reason: String| Error::InvalidCredential {
            kind: "agent identity",
            origin: origin.to_string(),
            reason,
        };
        let token = crate::secret::trim_input(input);
        if token.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if token.len() > MAX_AGENT_IDENTITY_BYTES {
            return Err(invalid(format!(
                "it is {} bytes long; the limit is {MAX_AGENT_IDENTITY_BYTES}",
                token.len()
            )));
        }
        if let Some(pos) = token
            .iter()
            .position(|&b| !(is_base64url_byte(b) || b == b'.'))
        {
            let what = match token[pos] {
                b if b.is_ascii_whitespace() => "whitespace",
                b if b.is_ascii_control() => "a control character",
                b'=' => "base64 padding ('=')",
                _ => "a character outside base64url",
            };
            return Err(invalid(format!(
                "it contains {what} at byte {pos}; a JWT is three base64url segments joined by '.'"
            )));
        }
        let segments: Vec<&[u8]> = token.split(|&b| b == b'.').collect();
        if segments.len() != 3 {
            return Err(invalid(format!(
                "it has {} segment(s); a JWT has three (header.payload.signature)",
                segments.len()
            )));
        }
        for (seg, name) in segments.iter().zip(["header", "payload", "signature"]) {
            if seg.is_empty() {
                return Err(invalid(format!("its {name} segment is empty")));
            }
        }

        let header_bytes = decode_b64url(segments[0])
            .ok_or_else(|| invalid("its header is not valid base64url".into()))?;
        let header = parse_header(&header_bytes).map_err(invalid)?;

        let payload = decode_b64url(segments[1])
            .ok_or_else(|| invalid("its payload is not valid base64url".into()))?;
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(invalid("its payload is not a JSON object".into()));
        }
        let raw: RawClaims = serde_json::from_slice(&payload)
            .map_err(|e| invalid(format!("its payload {}", describe_json_error(&e))))?;
        drop(payload);

        if decode_b64url(segments[2]).is_none() {
            return Err(invalid("its signature is not valid base64url".into()));
        }

        let claims = Claims {
            agent_runtime_id: required_string(&raw.agent_runtime_id, "agent_runtime_id", true)
                .and_then(|v| check_runtime_id(&v).map(|()| v))
                .map_err(&invalid)?,
            account_id: required_string(&raw.account_id, "account_id", true)
                .and_then(|v| check_account_id(&v).map(|()| v))
                .map_err(&invalid)?,
            chatgpt_user_id: required_string(&raw.chatgpt_user_id, "chatgpt_user_id", false)
                .map_err(&invalid)?,
            email: required_string(&raw.email, "email", false).map_err(&invalid)?,
            plan_type: required_string(&raw.plan_type, "plan_type", false).map_err(&invalid)?,
            fedramp: match &raw.chatgpt_account_is_fedramp {
                None => false,
                Some(ClaimValue::Bool(b)) => *b,
                Some(other) => {
                    return Err(invalid(format!(
                        "claim `chatgpt_account_is_fedramp` must be a boolean, found {}",
                        other.type_name()
                    )))
                }
            },
            issued_at: required_int(&raw.iat, "iat").map_err(&invalid)?,
            expires_at: required_int(&raw.exp, "exp").map_err(&invalid)?,
            issuer: optional_string(&raw.iss),
            audience: optional_string(&raw.aud),
        };
        let signing_key = parse_private_key(&raw.agent_private_key).map_err(&invalid)?;
        let token = std::str::from_utf8(token).map_err(|_| invalid("it is not ASCII".into()))?;
        Ok(AgentIdentity {
            token: secret_string(token),
            origin: origin.to_string(),
            header,
            claims,
            signing_key,
        })
    }

    /// The non-secret claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Where this identity came from (an env variable, stdin, a path), as
    /// given to [`AgentIdentity::parse`]; used in error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The JWS header.
    pub fn header(&self) -> &JwtHeader {
        &self.header
    }

    /// The token as given (trimmed). For `token`, storage and verification.
    pub fn expose_token(&self) -> &str {
        self.token.expose_secret()
    }

    /// The Ed25519 signing key, parsed once at load time.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// Whether `exp` is earlier than `now` minus the 60 s leeway.
    pub fn is_expired_at(&self, now: i64) -> bool {
        self.claims.expires_at < now.saturating_sub(EXPIRY_LEEWAY_SECS)
    }

    /// An [`Error::Expired`] when the identity has expired at `now`.
    pub fn ensure_not_expired(&self, now: i64, origin: &str) -> Result<()> {
        if self.is_expired_at(now) {
            return Err(Error::Expired {
                origin: origin.to_string(),
                expired_at: rfc3339(self.claims.expires_at),
            });
        }
        Ok(())
    }
}

/// `agent_runtime_id` becomes a URL path segment, part of every signed
/// message and a field shown on terminals: no hidden characters (control,
/// format, separators…), never echoed when refused.
fn check_runtime_id(v: &str) -> std::result::Result<(), String> {
    match crate::text::first_hidden(v) {
        Some((pos, c)) => Err(format!(
            "claim `agent_runtime_id` contains {} (at character {pos}); it becomes part of URLs \
             and signed messages",
            crate::text::describe_hidden(c)
        )),
        None => Ok(()),
    }
}

/// `account_id` becomes the `ChatGPT-Account-ID` header value: printable
/// ASCII only (no CR/LF/NUL/DEL that would forge header lines, nothing a
/// server might read differently), no surrounding spaces.
fn check_account_id(v: &str) -> std::result::Result<(), String> {
    if let Some((pos, b)) = v
        .bytes()
        .enumerate()
        .find(|(_, b)| !(0x20..0x7f).contains(b))
    {
        let what = if b.is_ascii_control() {
            "a control character"
        } else {
            "a non-ASCII character"
        };
        return Err(format!(
            "claim `account_id` contains {what} (at byte {pos}); it becomes an HTTP header \
             value, which must be printable ASCII"
        ));
    }
    if v.starts_with(' ') || v.ends_with(' ') {
        return Err(
            "claim `account_id` starts or ends with a space; it becomes an HTTP header value"
                .into(),
        );
    }
    Ok(())
}

/// Whether `input` is a JWT whose payload carries `agent_private_key` —
/// an agent identity, whatever else it is. Used to refuse one where an API
/// key is expected (it would be sent as a Bearer token). The decoded
/// payload is wiped.
pub(crate) fn carries_private_key(input: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct KeyOnly {
        #[serde(default, deserialize_with = "present")]
        agent_private_key: Option<ClaimValue>,
    }
    let token = crate::secret::trim_input(input);
    let mut segments = token.split(|&b| b == b'.');
    let (Some(_), Some(payload), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return false;
    };
    let Some(json) = decode_b64url(payload) else {
        return false;
    };
    if json.trim_ascii_start().first() != Some(&b'{') {
        return false;
    }
    serde_json::from_slice::<KeyOnly>(&json).is_ok_and(|k| k.agent_private_key.is_some())
}

/// Decodes base64url without padding into a zeroized buffer allocated once.
fn decode_b64url(seg: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    decode_exact(&URL_SAFE_NO_PAD, seg)
}

fn decode_exact(engine: &impl Engine, input: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; input.len().div_ceil(4) * 3]);
    let n = engine.decode_slice(input, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn parse_header(bytes: &[u8]) -> std::result::Result<JwtHeader, String> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err("its header is not a JSON object".into());
    }
    let raw: RawHeader = serde_json::from_slice(bytes)
        .map_err(|e| format!("its header {}", describe_json_error(&e)))?;
    let alg = match raw.alg {
        Some(ClaimValue::Str(s)) => s.to_string(),
        None => return Err("its header has no `alg`".into()),
        Some(other) => {
            return Err(format!(
                "header field `alg` must be a string, found {}",
                other.type_name()
            ))
        }
    };
    if raw.crit.is_some() {
        return Err(
            "its header has `crit` (RFC 7515 critical extensions), and credstore understands \
             none; such a token is refused"
                .into(),
        );
    }
    Ok(JwtHeader {
        alg,
        kid: optional_string(&raw.kid),
    })
}

fn required_string(
    v: &Option<ClaimValue>,
    name: &str,
    non_empty: bool,
) -> std::result::Result<String, String> {
    match v {
        None => Err(format!("required claim `{name}` is missing")),
        Some(ClaimValue::Str(s)) if non_empty && s.is_empty() => {
            Err(format!("claim `{name}` must not be empty"))
        }
        Some(ClaimValue::Str(s)) => Ok(s.to_string()),
        Some(other) => Err(format!(
            "claim `{name}` must be a string, found {}",
            other.type_name()
        )),
    }
}

/// The instants an RFC 3339 time can show: 0000-01-01T00:00:00Z to
/// 9999-12-31T23:59:59Z. `status --json` prints `iat`/`exp` that way.
const RFC3339_SECONDS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

fn required_int(v: &Option<ClaimValue>, name: &str) -> std::result::Result<i64, String> {
    match v {
        None => Err(format!("required claim `{name}` is missing")),
        Some(ClaimValue::Int(i)) if !RFC3339_SECONDS.contains(i) => Err(format!(
            "claim `{name}` ({i}) is outside the years 0000-9999 (seconds since epoch expected)"
        )),
        Some(ClaimValue::Int(i)) => Ok(*i),
        Some(other) => Err(format!(
            "claim `{name}` must be an integer (seconds since epoch), found {}",
            other.type_name()
        )),
    }
}

fn optional_string(v: &Option<ClaimValue>) -> Option<String> {
    match v {
        Some(ClaimValue::Str(s)) => Some(s.to_string()),
        _ => None,
    }
}

fn parse_private_key(v: &Option<ClaimValue>) -> std::result::Result<Box<SigningKey>, String> {
    const NAME: &str = "agent_private_key";
    let b64 = match v {
        None => return Err(format!("required claim `{NAME}` is missing")),
        Some(ClaimValue::Str(s)) => s,
        Some(other) => {
            return Err(format!(
                "claim `{NAME}` must be a string, found {}",
                other.type_name()
            ))
        }
    };
    let der = decode_exact(&STANDARD, b64.as_bytes())
        .ok_or_else(|| format!("claim `{NAME}` is not valid standard base64"))?;
    let key = SigningKey::from_pkcs8_der(&der)
        .map_err(|_| format!("claim `{NAME}` is not a PKCS#8 DER Ed25519 private key"))?;
    Ok(Box::new(key))
}

#[cfg(test)]
#[path = "../../tests/common/tokens.rs"]
pub(crate) mod tokens;

#[cfg(test)]
mod tests {
    use super::tokens::{TokenBuilder, NOW};
    use super::*;
    use serde_json::json;

    fn reason(input: &[u8]) -> String {
        let e = AgentIdentity::parse(input, "stdin").unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
        e.to_string()
    }

    #[test]
    fn parses_a_valid_token_and_trims() {
        let b = TokenBuilder::new();
        let bom = format!("\u{feff}{}\r\n", b.build());
        let id = AgentIdentity::parse(bom.as_bytes(), "file").unwrap();
        assert_eq!(id.expose_token(), b.build(), "a leading BOM is dropped");
        let t = format!("  {}\n", b.build());
        let id = AgentIdentity::parse(t.as_bytes(), "stdin").unwrap();
        assert_eq!(id.claims().agent_runtime_id, "rt-test-1");
        assert_eq!(id.claims().account_id, "acct-test-1");
        assert_eq!(id.claims().plan_type, "pro");
        assert!(!id.claims().fedramp);
        assert_eq!(id.expose_token(), b.build());
        assert_eq!(id.signing_key().verifying_key(), b.verifying_key());
        assert_eq!(id.header().alg, "EdDSA");
    }

    #[test]
    fn debug_redacts_token_and_key() {
        let b = TokenBuilder::new();
        let tok = b.build();
        let id = AgentIdentity::parse(tok.as_bytes(), "stdin").unwrap();
        let dbg = format!("{id:?}");
        assert!(!dbg.contains(&tok));
        assert!(!dbg.contains(&b.private_key_b64()));
        assert!(dbg.contains("REDACTED"));
    }

    #[test]
    fn malformed_shapes_are_refused() {
        let good = TokenBuilder::new().build();
        let parts: Vec<&str> = good.split('.').collect();
        assert!(reason(format!("{}.{}", parts[0], parts[1]).as_bytes()).contains("segment"));
        assert!(reason(format!("{good}.x").as_bytes()).contains("segment"));
        assert!(reason(format!("{}..{}", parts[0], parts[2]).as_bytes())
            .contains("payload segment is empty"));
        assert!(reason(format!("{}.{}.", parts[0], parts[1]).as_bytes())
            .contains("signature segment is empty"));
        assert!(reason(
            format!(
                "{}.{} {}.{}",
                parts[0],
                &parts[1][..4],
                &parts[1][4..],
                parts[2]
            )
            .as_bytes()
        )
        .contains("whitespace"));
        assert!(
            reason(format!("{}=.{}.{}", parts[0], parts[1], parts[2]).as_bytes())
                .contains("padding")
        );
        assert!(
            reason(format!("{}.{}+.{}", parts[0], parts[1], parts[2]).as_bytes())
                .contains("outside base64url")
        );
        // A length of 4n+1 base64 characters cannot be decoded.
        assert!(
            reason(format!("{}.{}.{}", parts[0], "abcde", parts[2]).as_bytes())
                .contains("payload is not valid base64url")
        );
        assert!(reason(b"").contains("empty"));
        assert!(reason(b" \n ").contains("empty"));
    }

    #[test]
    fn non_json_or_non_object_payload_is_refused() {
        let b = TokenBuilder::new();
        assert!(reason(b.with_raw_payload(b"not json").as_bytes()).contains("not a JSON object"));
        assert!(reason(b.with_raw_payload(b"{\"a\":").as_bytes()).contains("not valid JSON"));
        assert!(reason(b.with_raw_payload(b"[1,2]").as_bytes()).contains("not a JSON object"));
        assert!(reason(b.with_raw_payload(b"\"str\"").as_bytes()).contains("not a JSON object"));
        assert!(reason(b.with_raw_header(b"[]").as_bytes()).contains("header is not a JSON object"));
        assert!(reason(b.with_raw_header(b"{}").as_bytes()).contains("no `alg`"));
        assert!(reason(b.with_raw_header(br#"{"alg":1}"#).as_bytes())
            .contains("`alg` must be a string"));
    }

    #[test]
    fn duplicate_claim_is_refused_by_name() {
        let b = TokenBuilder::new();
        let mut claims = serde_json::to_string(&b.claims()).unwrap();
        claims.pop();
        claims.push_str(",\"exp\":1}");
        assert!(reason(b.with_raw_payload(claims.as_bytes()).as_bytes())
            .contains("has the field `exp` more than once"));
    }

    #[test]
    fn oversize_is_refused_before_decoding() {
        // Not even a JWT shape: the size check must come first.
        let big = vec![b'!'; MAX_AGENT_IDENTITY_BYTES + 1];
        assert!(reason(&big).contains("limit is 16384"));
        let b = TokenBuilder::new().claim("pad", json!("x".repeat(MAX_AGENT_IDENTITY_BYTES)));
        assert!(reason(b.build().as_bytes()).contains("limit"));
    }

    #[test]
    fn every_required_claim_is_named_when_missing() {
        for name in [
            "agent_runtime_id",
            "agent_private_key",
            "account_id",
            "chatgpt_user_id",
            "email",
            "plan_type",
            "iat",
            "exp",
        ] {
            let t = TokenBuilder::new().without(name).build();
            let r = reason(t.as_bytes());
            assert!(r.contains(&format!("`{name}` is missing")), "{name}: {r}");
        }
    }

    #[test]
    fn wrong_types_name_the_claim() {
        let cases = [
            ("agent_runtime_id", json!(5), "must be a string"),
            ("agent_runtime_id", json!(""), "must not be empty"),
            ("account_id", json!(""), "must not be empty"),
            ("account_id", json!(null), "must be a string"),
            ("chatgpt_user_id", json!(true), "must be a string"),
            ("email", json!(["a"]), "must be a string"),
            ("plan_type", json!({"a": 1}), "must be a string"),
            (
                "chatgpt_account_is_fedramp",
                json!("true"),
                "must be a boolean",
            ),
            ("iat", json!("1700000000"), "must be an integer"),
            ("exp", json!(1.5), "must be an integer"),
            ("exp", json!(u64::MAX), "must be an integer"),
            ("exp", json!(9_999_999_999_999i64), "outside the years"),
            ("iat", json!(-99_999_999_999_999i64), "outside the years"),
            (
                "account_id",
                json!("acct\r\nAuthorization: x"),
                "control character",
            ),
            ("account_id", json!("acct\u{0}x"), "control character"),
            ("account_id", json!("acct\u{7f}x"), "control character"),
            ("account_id", json!("acct-é"), "non-ASCII"),
            ("account_id", json!(" acct"), "space"),
            ("agent_runtime_id", json!("rt\n1"), "control character"),
            (
                "agent_runtime_id",
                json!("rt\u{202e}1"),
                "invisible formatting",
            ),
            ("agent_private_key", json!(12), "must be a string"),
            (
                "agent_private_key",
                json!("not base64!"),
                "not valid standard base64",
            ),
            (
                "agent_private_key",
                json!("AAAA"),
                "not a PKCS#8 DER Ed25519",
            ),
        ];
        for (name, value, want) in cases {
            let t = TokenBuilder::new().claim(name, value.clone()).build();
            let r = reason(t.as_bytes());
            assert!(r.contains(name) && r.contains(want), "{name}={value}: {r}");
        }
    }

    #[test]
    fn optional_and_extra_claims() {
        let t = TokenBuilder::new()
            .claim("chatgpt_account_is_fedramp", json!(true))
            .claim("plan_type", json!("some-future-plan"))
            .claim("extra", json!({"nested": [1, 2, 3]}))
            .claim("email", json!(""))
            .build();
        let id = AgentIdentity::parse(t.as_bytes(), "stdin").unwrap();
        assert!(id.claims().fedramp);
        assert_eq!(id.claims().plan_type, "some-future-plan");
        assert_eq!(id.claims().email, "");
    }

    #[test]
    fn expiry_has_sixty_seconds_of_leeway() {
        let t = TokenBuilder::new().claim("exp", json!(NOW)).build();
        let id = AgentIdentity::parse(t.as_bytes(), "stdin").unwrap();
        assert!(!id.is_expired_at(NOW + 60));
        assert!(id.is_expired_at(NOW + 61));
        let e = id
            .ensure_not_expired(NOW + 61, "CREDSTORE_AGENT_IDENTITY")
            .unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("CREDSTORE_AGENT_IDENTITY"));
        assert!(e.to_string().contains("expired"));
    }

    #[test]
    fn errors_never_echo_secret_material() {
        let b = TokenBuilder::new();
        let key = b.private_key_b64();
        let t = b.claim("iat", json!(key.clone())).build();
        let r = reason(t.as_bytes());
        assert!(!r.contains(&key[..20]), "{r}");
        let t = TokenBuilder::new().with_raw_payload(format!("\"{key}\"").as_bytes());
        let r = reason(t.as_bytes());
        assert!(!r.contains(&key[..20]), "{r}");
    }
}
