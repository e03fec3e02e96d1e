//! The stored form (SPEC §2): one JSON document holding the token only,
//! the same in every backend:
//!
//! ```text
//! {"auth_mode":"agent_identity","agent_identity":"<jwt>"}
//! {"auth_mode":"api_key","api_key":"<key>"}
//! ```
//!
//! Decoded fields never appear here. Parsing a document checks its shape
//! only (a bad shape is a corrupt store, exit 4); turning it into a
//! [`Credential`] validates the token (a bad token is exit 3).

use crate::credential::claim::{describe_json_error, present, ClaimValue};
use crate::credential::{AuthMode, Credential};
use crate::error::{Error, Result};
use crate::secret::secret_string;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::io::Write;
use zeroize::Zeroizing;

/// A credential as stored: its kind and its raw token. `Debug` redacts.
pub struct StoredCredential {
    mode: AuthMode,
    token: SecretString,
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredCredential({}, [REDACTED])", self.mode.as_str())
    }
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(default, deserialize_with = "present")]
    auth_mode: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    agent_identity: Option<ClaimValue>,
    #[serde(default, deserialize_with = "present")]
    api_key: Option<ClaimValue>,
}

#[derive(serde::Serialize)]
struct Document<'a> {
    auth_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_identity: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
}

impl StoredCredential {
    /// The token-only form of a validated credential.
    pub fn from_credential(credential: &Credential) -> StoredCredential {
        StoredCredential {
            mode: credential.auth_mode(),
            token: secret_string(credential.expose_token()),
        }
    }

    /// The kind of credential.
    pub fn auth_mode(&self) -> AuthMode {
        self.mode
    }

    /// Whether `other` is the same credential (kind and token).
    pub(crate) fn same_as(&self, other: &StoredCredential) -> bool {
        self.mode == other.mode && self.token.expose_secret() == other.token.expose_secret()
    }

    /// The raw token.
    pub fn expose_token(&self) -> &str {
        self.token.expose_secret()
    }

    /// Validates the token (SPEC §1); `origin` names the store location.
    pub fn to_credential(&self, origin: &str) -> Result<Credential> {
        Credential::parse(self.mode, self.token.expose_secret().as_bytes(), origin)
    }

    /// Serializes to the stored document (compact JSON and a newline) in a
    /// zeroized buffer sized exactly, so no reallocation leaves a copy.
    pub fn to_document(&self) -> Zeroizing<Vec<u8>> {
        let token = self.token.expose_secret();
        let doc = Document {
            auth_mode: self.mode.as_str(),
            agent_identity: (self.mode == AuthMode::AgentIdentity).then_some(token),
            api_key: (self.mode == AuthMode::ApiKey).then_some(token),
        };
        let mut counter = ByteCounter(0);
        // Serializing plain strings into a counter or a Vec cannot fail.
        let _ = serde_json::to_writer(&mut counter, &doc);
        let mut out = Zeroizing::new(Vec::with_capacity(counter.0 + 1));
        let _ = serde_json::to_writer(&mut *out, &doc);
        out.push(b'\n');
        out
    }

    /// Parses a stored document (SPEC §2). `location` names where it came
    /// from; the content is never echoed in errors.
    pub fn from_document(bytes: &[u8], location: &str) -> Result<StoredCredential> {
        let corrupt = |reason: String| Error::CorruptStore {
            location: location.to_string(),
            reason,
        };
        let bytes = crate::secret::trim_input(bytes);
        if bytes.first() != Some(&b'{') {
            return Err(corrupt("it is not a JSON object".into()));
        }
        let raw: RawDocument = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(format!("it {}", describe_json_error(&e))))?;
        let mode =
            match &raw.auth_mode {
                Some(ClaimValue::Str(s)) => match s.as_str() {
                    "agent_identity" => AuthMode::AgentIdentity,
                    "api_key" => AuthMode::ApiKey,
                    _ => {
                        return Err(corrupt(
                            "`auth_mode` must be \"agent_identity\" or \"api_key\"".into(),
                        ))
                    }
                },
                Some(other) => {
                    return Err(corrupt(format!(
                        "`auth_mode` must be a string, found {}",
                        other.type_name()
                    )))
                }
                None => match (&raw.agent_identity, &raw.api_key) {
                    (Some(_), None) => AuthMode::AgentIdentity,
                    (None, Some(_)) => AuthMode::ApiKey,
                    (Some(_), Some(_)) => return Err(corrupt(
                        "it has both `agent_identity` and `api_key` but no `auth_mode` to choose"
                            .into(),
                    )),
                    (None, None) => {
                        return Err(corrupt(
                            "it has neither `agent_identity` nor `api_key`".into(),
                        ))
                    }
                },
            };
        let field = match mode {
            AuthMode::AgentIdentity => &raw.agent_identity,
            AuthMode::ApiKey => &raw.api_key,
        };
        let name = mode.as_str();
        let token = match field {
            Some(ClaimValue::Str(s)) => secret_string(s),
            Some(other) => {
                return Err(corrupt(format!(
                    "`{name}` must be a string, found {}",
                    other.type_name()
                )))
            }
            None => {
                return Err(corrupt(format!(
                    "`auth_mode` is \"{name}\" but there is no `{name}` field"
                )))
            }
        };
        Ok(StoredCredential { mode, token })
    }

    /// Parses a keychain value: the stored document, or a bare token written
    /// by another tool (read as an agent identity when it has the JWT shape,
    /// else as an API key).
    pub fn from_keychain_value(bytes: &[u8], location: &str) -> Result<StoredCredential> {
        let trimmed = crate::secret::trim_input(bytes);
        if trimmed.first() == Some(&b'{') {
            return Self::from_document(trimmed, location);
        }
        let text = std::str::from_utf8(trimmed).map_err(|_| Error::CorruptStore {
            location: location.to_string(),
            reason: "the value is neither JSON nor UTF-8 text".into(),
        })?;
        let mode = if looks_like_jwt(text) {
            AuthMode::AgentIdentity
        } else {
            AuthMode::ApiKey
        };
        Ok(StoredCredential {
            mode,
            token: secret_string(text),
        })
    }
}

/// Three non-empty base64url segments joined by dots.
pub fn looks_like_jwt(s: &str) -> bool {
    let mut n = 0;
    for seg in s.split('.') {
        n += 1;
        if seg.is_empty()
            || !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    n == 3
}

struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt(doc: &str) -> String {
        let e = StoredCredential::from_document(doc.as_bytes(), "/x/auth.json").unwrap_err();
        assert_eq!(e.exit_code(), 4, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("/x/auth.json"), "{msg}");
        msg
    }

    #[test]
    fn round_trips_exactly_the_token_only_form() {
        let c = StoredCredential {
            mode: AuthMode::ApiKey,
            token: secret_string("sk-\"quoted\"\\"),
        };
        let doc = c.to_document();
        assert_eq!(
            std::str::from_utf8(&doc).unwrap(),
            "{\"auth_mode\":\"api_key\",\"api_key\":\"sk-\\\"quoted\\\"\\\\\"}\n"
        );
        assert_eq!(doc.capacity(), doc.len(), "sized exactly: no reallocation");
        let back = StoredCredential::from_document(&doc, "x").unwrap();
        assert_eq!(back.expose_token(), "sk-\"quoted\"\\");
        let c = StoredCredential {
            mode: AuthMode::AgentIdentity,
            token: secret_string("a.b.c"),
        };
        assert_eq!(
            &c.to_document()[..],
            b"{\"auth_mode\":\"agent_identity\",\"agent_identity\":\"a.b.c\"}\n"
        );
    }

    #[test]
    fn infers_auth_mode_and_ignores_unknown_fields() {
        let c = StoredCredential::from_document(br#"{"agent_identity":"a.b.c"}"#, "x").unwrap();
        assert_eq!(c.auth_mode(), AuthMode::AgentIdentity);
        let c = StoredCredential::from_document(br#"{"api_key":"k","other":[1]}"#, "x").unwrap();
        assert_eq!(c.auth_mode(), AuthMode::ApiKey);
        let c = StoredCredential::from_document(
            br#"{"auth_mode":"api_key","api_key":"k","agent_identity":"a.b.c"}"#,
            "x",
        )
        .unwrap();
        assert_eq!(c.auth_mode(), AuthMode::ApiKey);
    }

    #[test]
    fn inconsistent_documents_are_corrupt() {
        assert!(corrupt(r#"{"agent_identity":"a","api_key":"k"}"#).contains("both"));
        assert!(corrupt(r#"{}"#).contains("neither"));
        assert!(
            corrupt(r#"{"auth_mode":"api_key","agent_identity":"a.b.c"}"#).contains("no `api_key`")
        );
        assert!(corrupt(r#"{"auth_mode":"password","api_key":"k"}"#).contains("must be"));
        assert!(corrupt(r#"{"auth_mode":1,"api_key":"k"}"#).contains("must be a string"));
        assert!(corrupt(r#"{"api_key":null}"#).contains("must be a string"));
        assert!(corrupt(r#"{"api_key":"#).contains("not valid JSON"));
        assert!(corrupt(r#"["api_key"]"#).contains("not a JSON object"));
        assert!(corrupt("").contains("not a JSON object"));
    }

    #[test]
    fn corrupt_errors_do_not_echo_content() {
        let msg = corrupt(r#"{"api_key":"sk-SECRET","api_key":"sk-SECRET"}"#);
        assert!(!msg.contains("sk-SECRET"), "{msg}");
        let msg = corrupt(r#"{"auth_mode":"sk-SECRET","api_key":"k"}"#);
        assert!(!msg.contains("sk-SECRET"), "{msg}");
    }

    #[test]
    fn keychain_bare_tokens() {
        let c = StoredCredential::from_keychain_value(b"aGVh.cGF5.c2ln\n", "kc").unwrap();
        assert_eq!(c.auth_mode(), AuthMode::AgentIdentity);
        assert_eq!(c.expose_token(), "aGVh.cGF5.c2ln");
        let c = StoredCredential::from_keychain_value(b"sk-abc", "kc").unwrap();
        assert_eq!(c.auth_mode(), AuthMode::ApiKey);
        let c = StoredCredential::from_keychain_value(br#" {"api_key":"k"}"#, "kc").unwrap();
        assert_eq!(c.expose_token(), "k");
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c=d"));
    }
}
