//! What a Vault answer that is not what an operation expects means, in
//! credstore's own words.
//!
//! A server's error text is never printed: a hostile or compromised server
//! (or a proxy in front of it) could echo a slice of the token, the
//! credential or its key there. Vault's `errors` are matched against the
//! phrases Vault and OpenBao are known to use, and what is shown is the
//! HTTP status and credstore's fixed description of each phrase found.

use super::client::Answer;
use serde::Deserialize;

/// Known phrases (lowercase substrings of Vault's error text) and what
/// credstore says for each.
const KNOWN: &[(&str, &str)] = &[
    ("permission denied", "permission denied"),
    (
        "check-and-set parameter did not match",
        "check-and-set version mismatch",
    ),
    (
        "check-and-set parameter required",
        "the mount requires check-and-set",
    ),
    ("no handler for route", "nothing is mounted at that path"),
    ("vault is sealed", "Vault is sealed"),
    ("missing client token", "no token was sent"),
    ("invalid token", "the token is not valid (expired or revoked)"),
    ("bad token", "the token is not valid (expired or revoked)"),
    ("invalid role or secret id", "invalid role id or secret id"),
    ("invalid role id", "invalid role id or secret id"),
    ("invalid secret id", "invalid role id or secret id"),
    ("rate limit", "rate limited"),
    (
        "local node not active",
        "this node is not the active one and no active node was found (a leader election may be in progress)",
    ),
    (
        "active cluster node not found",
        "no active node was found (a leader election may be in progress)",
    ),
    ("node is not active", "this node is a standby"),
    (
        "waiting for the primary to upgrade",
        "the KV mount is not ready on this node yet (it was just mounted, or a new leader is taking over)",
    ),
    ("namespace not found", "no such namespace"),
    ("token is expired", "the login JWT has expired"),
    (
        "aud claim does not match",
        "the login JWT's audience does not match the role",
    ),
    (
        "error validating claims",
        "the login JWT's claims do not match the role",
    ),
    ("could not be found", "no such role"),
    ("role not found", "no such role"),
    (
        "failed to verify id token signature",
        "the login JWT's signature does not verify",
    ),
    (
        "no known key successfully validated",
        "the login JWT's signature does not verify",
    ),
    ("wrapping token is not valid", "the wrapping token is not valid (used, expired or unknown)"),
];

/// Vault's `errors` array; empty when there is none.
pub(crate) fn vault_errors(answer: &Answer) -> Vec<String> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    serde_json::from_slice::<Errors>(&answer.body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

/// Whether one of Vault's errors contains `phrase` (ASCII case-insensitive).
pub(crate) fn mentions(answer: &Answer, phrase: &str) -> bool {
    vault_errors(answer)
        .iter()
        .any(|e| e.to_ascii_lowercase().contains(phrase))
}

/// `HTTP 403: permission denied` — the status and credstore's description
/// of every known phrase in Vault's errors; never the server's own text.
pub(crate) fn describe_errors(answer: &Answer) -> String {
    let errors = vault_errors(answer);
    let mut said: Vec<&str> = Vec::new();
    for e in &errors {
        let e = e.to_ascii_lowercase();
        for (phrase, description) in KNOWN {
            if e.contains(phrase) && !said.contains(description) {
                said.push(description);
            }
        }
    }
    if !said.is_empty() {
        format!("HTTP {}: {}", answer.status, said.join("; "))
    } else if errors.is_empty() {
        format!("HTTP {}", answer.status)
    } else {
        format!(
            "HTTP {}; Vault's message is not shown, since a server can echo secrets in it — see the server's log",
            answer.status
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: Zeroizing::new(body.as_bytes().to_vec()),
            node: 0,
        }
    }

    #[test]
    fn known_phrases_are_described_in_our_words() {
        let a = answer(
            403,
            r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#,
        );
        assert_eq!(describe_errors(&a), "HTTP 403: permission denied");
        let a = answer(
            400,
            r#"{"errors":["check-and-set parameter did not match the current version"]}"#,
        );
        assert!(describe_errors(&a).contains("check-and-set version mismatch"));
        assert!(mentions(&a, "check-and-set"));
        assert_eq!(describe_errors(&answer(502, "")), "HTTP 502");
    }

    #[test]
    fn server_text_never_reaches_a_message() {
        // A hostile server echoes fragments of secrets around a known phrase.
        for body in [
            r#"{"errors":["bad thing: sk-CRED-abcdefgh s.tok-SECRET-1234"]}"#,
            r#"{"errors":["permission denied for s.tok-SECRET-1234 \u001b[31m"]}"#,
            r#"{"errors":["MC4CAQAwBQYDK2VwBCIEIOKEYFRAGMENT"]}"#,
        ] {
            let d = describe_errors(&answer(500, body));
            for fragment in [
                "SECRET",
                "CRED",
                "abcdefgh",
                "KEYFRAGMENT",
                "\u{1b}",
                "MC4C",
            ] {
                assert!(!d.contains(fragment), "{d}");
            }
        }
    }
}
