use super::MAX_API_KEY_BYTES;
use crate::error::{Error, Result};
use crate::secret::secret_string;
use secrecy::{ExposeSecret, SecretString};

/// An opaque API key (SPEC §1.2): trimmed, non-empty, no whitespace or
/// control characters inside, at most 4 KiB. `Debug` shows a redaction;
/// there is no `Display`.
pub struct ApiKey {
    key: SecretString,
    origin: String,
}

impl ApiKey {
    /// Parses and validates `input` (surrounding whitespace is trimmed).
    pub fn parse(input: &[u8], origin: &str) -> Result<ApiKey> {
        let invalid = |reason: String| Error::InvalidCredential {
            kind: "API key",
            origin: origin.to_string(),
            reason,
        };
        let trimmed = crate::secret::trim_input(input);
        if trimmed.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if trimmed.len() > MAX_API_KEY_BYTES {
            return Err(invalid(format!(
                "it is {} bytes long; the limit is {MAX_API_KEY_BYTES}",
                trimmed.len()
            )));
        }
        let text = std::str::from_utf8(trimmed)
            .map_err(|e| invalid(format!("it is not UTF-8 (at byte {})", e.valid_up_to())))?;
        if let Some((pos, c)) = text
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || crate::text::is_hidden(*c))
        {
            let what = if c.is_whitespace() {
                format!("whitespace (U+{:04X})", c as u32)
            } else {
                crate::text::describe_hidden(c)
            };
            return Err(invalid(format!(
                "it contains {what} at byte {pos}; an API key is one word"
            )));
        }
        if super::agent_identity::carries_private_key(trimmed) {
            // Say where it belongs: the agent identity variable beside the
            // API key one; elsewhere the front end says how.
            let instead = match origin.split_once("_API_KEY") {
                Some((prefix, _)) if !prefix.is_empty() => {
                    format!("set {prefix}_AGENT_IDENTITY (or {prefix}_AGENT_IDENTITY_FILE) instead")
                }
                _ => "store it as an agent identity instead".to_string(),
            };
            return Err(Error::AgentIdentityAsApiKey {
                origin: origin.to_string(),
                instead,
            });
        }
        Ok(ApiKey {
            key: secret_string(text),
            origin: origin.to_string(),
        })
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        self.key.expose_secret()
    }

    /// Where this key came from (an env variable, stdin, a path), as given
    /// to [`ApiKey::parse`]; used in error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_trims() {
        let k = ApiKey::parse(b"  sk-abc_123\n", "stdin").unwrap();
        assert_eq!(k.expose(), "sk-abc_123");
        assert_eq!(format!("{k:?}"), "ApiKey([REDACTED])");
    }

    #[test]
    fn refuses_bad_keys_with_exit_3() {
        for bad in [
            &b""[..],
            b"   \n",
            b"sk abc",
            b"sk\tabc",
            b"sk\x01abc",
            b"sk\xffabc",
            "sk\u{a0}abc".as_bytes(),
            "sk\u{200b}abc".as_bytes(),
            "sk\u{feff}abc".as_bytes(),
            "sk\u{2066}abc\u{2069}".as_bytes(),
            "sk\u{61c}abc".as_bytes(),
            "sk\u{ad}abc".as_bytes(),
            "sk\u{e0041}abc".as_bytes(),
            "sk\u{e000}abc".as_bytes(),
        ] {
            let e = ApiKey::parse(bad, "stdin").unwrap_err();
            assert_eq!(e.exit_code(), 3, "{bad:?}");
        }
        let big = vec![b'k'; MAX_API_KEY_BYTES + 1];
        let e = ApiKey::parse(&big, "stdin").unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        let max = vec![b'k'; MAX_API_KEY_BYTES];
        assert!(ApiKey::parse(&max, "stdin").is_ok());
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_part_of_the_key() {
        let k = ApiKey::parse("\u{feff}sk-from-notepad\r\n".as_bytes(), "file").unwrap();
        assert_eq!(k.expose(), "sk-from-notepad");
    }

    #[test]
    fn error_does_not_echo_the_key() {
        let e = ApiKey::parse(b"sk-SECRETVALUE with-space", "CREDSTORE_API_KEY").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("SECRETVALUE"), "{msg}");
        assert!(msg.contains("CREDSTORE_API_KEY"), "{msg}");
    }
}
