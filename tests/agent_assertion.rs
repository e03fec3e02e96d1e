//! Assertions and request headers (SPEC §7), with every signature checked by
//! `ring` — an Ed25519 implementation independent of the `ed25519-dalek`
//! that credstore signs with.

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::tokens::{self as tokens, TokenBuilder, NOW};
use credstore::{AgentIdentity, AuthMode, Credential};
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::json;

/// Decodes an `AgentAssertion …` value into its exact JSON text.
fn envelope(value: &str) -> String {
    let b64 = value
        .strip_prefix("AgentAssertion ")
        .expect("AgentAssertion scheme");
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .expect("base64url without padding");
    String::from_utf8(bytes).expect("utf-8 JSON")
}

/// Checks `value` with ring against the agent's public key and returns the
/// envelope's fields.
fn check_with_ring(b: &TokenBuilder, value: &str) -> serde_json::Value {
    let json = envelope(value);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    // serde_json's map is sorted here, so check the order on the raw text.
    assert_eq!(keys.len(), 4, "{json}");
    let positions: Vec<usize> = [
        "\"agent_runtime_id\":",
        "\"signature\":",
        "\"task_id\":",
        "\"timestamp\":",
    ]
    .iter()
    .map(|k| {
        json.find(k)
            .unwrap_or_else(|| panic!("{k} missing in {json}"))
    })
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order: {json}"
    );
    let message = format!(
        "{}:{}:{}",
        v["agent_runtime_id"].as_str().expect("runtime"),
        v["task_id"].as_str().expect("task"),
        v["timestamp"].as_str().expect("ts")
    );
    let sig = STANDARD
        .decode(v["signature"].as_str().expect("sig"))
        .expect("standard base64 signature");
    assert_eq!(sig.len(), 64);
    UnparsedPublicKey::new(&ED25519, b.verifying_key().to_bytes())
        .verify(message.as_bytes(), &sig)
        .expect("ring verifies the assertion signature");
    v
}

#[test]
fn assertion_verifies_with_an_independent_ed25519() {
    let b = TokenBuilder::new()
        .claim("agent_runtime_id", json!("rt-ring-1"))
        .claim("exp", json!(NOW + 3600));
    let id = AgentIdentity::parse(b.build().as_bytes(), "test").expect("parse");
    let a = id.assertion_at("task-ring-1", NOW).expect("assertion");
    let v = check_with_ring(&b, a.expose());
    assert_eq!(v["agent_runtime_id"], "rt-ring-1");
    assert_eq!(v["task_id"], "task-ring-1");
    assert_eq!(v["timestamp"], "2027-01-15T08:00:00Z");

    // A signature over anything else does not verify: the check above is real.
    let sig = STANDARD
        .decode(v["signature"].as_str().expect("sig"))
        .expect("b64");
    assert!(
        UnparsedPublicKey::new(&ED25519, b.verifying_key().to_bytes())
            .verify(b"rt-ring-1:task-ring-2:2027-01-15T08:00:00Z", &sig)
            .is_err()
    );
}

#[test]
fn assertion_now_uses_the_current_time() {
    let b = TokenBuilder::new();
    let id = AgentIdentity::parse(b.build().as_bytes(), "test").expect("parse");
    let before = tokens::real_now();
    let a = id.assertion("t-1").expect("assertion");
    let v = check_with_ring(&b, a.expose());
    let ts = v["timestamp"].as_str().expect("ts");
    assert_eq!(ts, a.timestamp());
    let after = tokens::real_now();
    // format_timestamp is pinned to fixed values by its unit tests.
    assert!(
        (before..=after).any(|t| credstore::agent::format_timestamp(t).expect("ts") == ts),
        "{ts} is not a time between the calls"
    );
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && !ts.contains('.'),
        "{ts}"
    );
}

#[test]
fn request_headers_for_each_kind() {
    // Agent identity, FedRAMP: three headers, the assertion verifies.
    let b = TokenBuilder::new()
        .claim("account_id", json!("acct-fed-1"))
        .claim("chatgpt_account_is_fedramp", json!(true));
    let c =
        Credential::parse(AuthMode::AgentIdentity, b.build().as_bytes(), "test").expect("parse");
    let h = c.request_headers(Some("task-h-1")).expect("headers");
    let all: Vec<(&str, &str)> = h.iter().collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].0, "Authorization");
    let v = check_with_ring(&b, all[0].1);
    assert_eq!(v["task_id"], "task-h-1");
    assert_eq!(all[1], ("ChatGPT-Account-ID", "acct-fed-1"));
    assert_eq!(all[2], ("X-OpenAI-Fedramp", "true"));

    // Not FedRAMP: no such header at all (not "false").
    let b = TokenBuilder::new().claim("chatgpt_account_is_fedramp", json!(false));
    let c =
        Credential::parse(AuthMode::AgentIdentity, b.build().as_bytes(), "test").expect("parse");
    let h = c.request_headers(Some("t")).expect("headers");
    assert_eq!(h.len(), 2);
    assert!(h.get("X-OpenAI-Fedramp").is_none());

    // No task id: usage error (exit 2).
    assert_eq!(
        c.request_headers(None).expect_err("needs task").exit_code(),
        2
    );

    // API key: Bearer only.
    let c = Credential::parse(AuthMode::ApiKey, b"sk-live-xyz", "test").expect("parse");
    let h = c.request_headers(None).expect("headers");
    assert_eq!(
        h.iter().collect::<Vec<_>>(),
        vec![("Authorization", "Bearer sk-live-xyz")]
    );
}

#[test]
fn expired_identity_gives_no_assertion_or_headers() {
    let b = TokenBuilder::new().claim("exp", json!(tokens::real_now() - 120));
    let c = Credential::parse(
        AuthMode::AgentIdentity,
        b.build().as_bytes(),
        "CREDSTORE_AGENT_IDENTITY",
    )
    .expect("parse");
    let e = c.request_headers(Some("t")).expect_err("expired");
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("CREDSTORE_AGENT_IDENTITY"), "{e}");
    let id = c.agent_identity().expect("agent");
    assert_eq!(id.assertion("t").expect_err("expired").exit_code(), 3);
}
