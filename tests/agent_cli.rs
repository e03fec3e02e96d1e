//! The agent runtime commands as a user runs them (SPEC §6, §7, §1.3):
//! `assertion`, `headers`, `register-task` (against the PyNaCl auth API on
//! 127.0.0.1), and `--jwks` / `CREDSTORE_JWKS` / `--issuer` / `--audience`
//! on login and resolution — with the exit code of every outcome, and no
//! secret where it must not be.

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::authapi::AuthApi;
use common::tokens::{real_now, SignFn, TokenBuilder};
use common::Home;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Checks an `AgentAssertion …` value with ring against `b`'s key and
/// returns its task id.
fn ring_check(b: &TokenBuilder, value: &str) -> String {
    let json = URL_SAFE_NO_PAD
        .decode(value.strip_prefix("AgentAssertion ").expect("scheme"))
        .expect("base64url");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let msg = format!(
        "{}:{}:{}",
        v["agent_runtime_id"].as_str().expect("rt"),
        v["task_id"].as_str().expect("task"),
        v["timestamp"].as_str().expect("ts")
    );
    let sig = STANDARD
        .decode(v["signature"].as_str().expect("sig"))
        .expect("b64");
    UnparsedPublicKey::new(&ED25519, b.verifying_key().to_bytes())
        .verify(msg.as_bytes(), &sig)
        .expect("ring verifies");
    v["task_id"].as_str().expect("task").to_string()
}

#[test]
fn assertion_from_env_and_from_the_store() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["assertion", "--task-id", "task-cli-1"])
        .expect(0);
    let line = out.stdout.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n'));
    assert_eq!(ring_check(&b, line), "task-cli-1");
    out.assert_no_secret(&token, "assertion");
    out.assert_no_secret(&b.private_key_b64(), "assertion");

    // Stored (file backend), with the environment ignored.
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(format!("{token}\n"))
        .expect(0);
    let out = home
        .run()
        .args([
            "--backend",
            "file",
            "--no-env",
            "assertion",
            "--task-id",
            "task-cli-2",
        ])
        .expect(0);
    assert_eq!(ring_check(&b, out.stdout.trim_end()), "task-cli-2");
}

#[test]
fn assertion_exit_codes() {
    let home = Home::new();
    // Nothing anywhere: exit 1.
    home.run()
        .args(["--backend", "file", "assertion", "--task-id", "t"])
        .expect(1);
    // An API key is not an agent identity: exit 1.
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", "sk-test-cli-9")
        .args(["assertion", "--task-id", "t"])
        .expect(1);
    assert!(
        out.stderr.contains("needs an agent identity"),
        "{}",
        out.stderr
    );
    out.assert_no_secret("sk-test-cli-9", "assertion with api key");
    // Expired: exit 3.
    let expired = TokenBuilder::new()
        .claim("exp", json!(real_now() - 3600))
        .build();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &expired)
        .args(["assertion", "--task-id", "t"])
        .expect(3);
    assert!(out.stdout.is_empty());
    // No --task-id, or an unusable one: exit 2.
    let token = TokenBuilder::new().build();
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["assertion"])
        .expect(2);
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["assertion", "--task-id", "a b"])
        .expect(2);
}

#[test]
fn headers_human_and_json() {
    let home = Home::new();
    let b = TokenBuilder::new()
        .claim("account_id", json!("acct-cli-7"))
        .claim("chatgpt_account_is_fedramp", json!(true));
    let token = b.build();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["headers", "--task-id", "task-h"])
        .expect(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    let auth = lines[0]
        .strip_prefix("Authorization: ")
        .expect("authorization first");
    assert_eq!(ring_check(&b, auth), "task-h");
    assert_eq!(lines[1], "ChatGPT-Account-ID: acct-cli-7");
    assert_eq!(lines[2], "X-OpenAI-Fedramp: true");
    out.assert_no_secret(&token, "headers");

    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["headers", "--task-id", "task-j", "--json"])
        .expect(0);
    let v = out.json();
    assert_eq!(v.as_object().expect("object").len(), 3);
    assert_eq!(
        ring_check(&b, v["Authorization"].as_str().expect("auth")),
        "task-j"
    );
    assert_eq!(v["ChatGPT-Account-ID"], "acct-cli-7");
    assert_eq!(v["X-OpenAI-Fedramp"], "true");

    // An agent identity without --task-id: usage error.
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["headers"])
        .expect(2);
    assert!(out.stderr.contains("--task-id"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    // An API key needs no task id.
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", "sk-test-cli-1")
        .args(["headers"])
        .expect(0);
    assert_eq!(out.stdout, "Authorization: Bearer sk-test-cli-1\n");
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", "sk-test-cli-1")
        .args(["headers", "--json"])
        .expect(0);
    assert_eq!(out.json(), json!({"Authorization": "Bearer sk-test-cli-1"}));
    home.run().args(["--backend", "file", "headers"]).expect(1);
}

#[test]
fn register_task_each_outcome_and_exit_code() {
    let api = AuthApi::start();
    let home = Home::new();
    let run = |runtime: &str| {
        home.run()
            .env("CREDSTORE_AGENT_IDENTITY", api.token(runtime))
            .env("CREDSTORE_AUTHAPI_BASE_URL", api.base_url())
            .env("CREDSTORE_HTTP_TIMEOUT", "2")
            .args(["register-task"])
    };
    assert_eq!(run("rt-plain").expect(0).stdout, "task-plain-1\n");
    assert_eq!(run("rt-camel").expect(0).stdout, "task-camel-1\n");
    assert_eq!(run("rt-sealed").expect(0).stdout, "task-sealed-1\n");
    assert_eq!(run("rt-sealed-camel").expect(0).stdout, "task-sealed-2\n");

    let out = run("rt-400").expect(4);
    assert!(out.stderr.contains("HTTP 400"), "{}", out.stderr);
    assert!(out.stderr.contains(&"E".repeat(512)) && !out.stderr.contains(&"E".repeat(513)));
    assert!(!out.stderr.contains("TAIL-MARKER"));
    let out = run("rt-503").expect(4);
    assert!(out.stderr.contains("HTTP 503"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    run("rt-bad-seal").expect(4);
    run("rt-empty").expect(4);

    let started = Instant::now();
    let out = run("rt-hang").expect(4);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out.stderr.contains("did not answer within 2 s"),
        "{}",
        out.stderr
    );

    // --base-url wins over the variable.
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", api.token("rt-plain"))
        .env("CREDSTORE_AUTHAPI_BASE_URL", "http://127.0.0.1:1")
        .args(["register-task", "--base-url", &api.base_url()])
        .expect(0);
    assert_eq!(out.stdout, "task-plain-1\n");
}

#[test]
fn register_task_usage_and_credential_errors() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    // No base URL anywhere.
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["register-task"])
        .expect(2);
    assert!(
        out.stderr.contains("CREDSTORE_AUTHAPI_BASE_URL"),
        "{}",
        out.stderr
    );
    // Plain http to a remote host is refused before anything is sent.
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["register-task", "--base-url", "http://auth.example.com"])
        .expect(2);
    // Unreachable: exit 4.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args([
            "register-task",
            "--base-url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .expect(4);
    // An API key: exit 1.
    home.run()
        .env("CREDSTORE_API_KEY", "sk-test-x")
        .args(["register-task", "--base-url", "https://auth.example.com"])
        .expect(1);
}

/// An Ed25519 issuer key made by ring, its JWKS, and a signer.
fn issuer() -> (serde_json::Value, SignFn) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "iss-1",
        "x": URL_SAFE_NO_PAD.encode(kp.public_key().as_ref())}]});
    let kp = Arc::new(kp);
    (jwks, Arc::new(move |m: &[u8]| kp.sign(m).as_ref().to_vec()))
}

#[test]
fn jwks_on_login_env_and_stored() {
    let home = Home::new();
    let (jwks, sign) = issuer();
    let jwks_path = home.root().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).expect("write jwks");
    let jwks_arg = jwks_path.to_str().expect("utf-8").to_string();
    let signed = TokenBuilder::new()
        .claim("iss", json!("https://issuer.example"))
        .signed_by("EdDSA", Some("iss-1"), sign.clone())
        .build();
    let unsigned = TokenBuilder::new().build();
    let login = ["login", "--with-agent-identity", "--backend", "file"];

    // A token the JWKS does not vouch for: login refuses (3), stores nothing.
    let before = home.snapshot();
    let out = home
        .run()
        .args(login)
        .args(["--jwks", &jwks_arg])
        .stdin(format!("{unsigned}\n"))
        .expect(3);
    assert!(out.stderr.contains("failed verification"), "{}", out.stderr);
    out.assert_no_secret(&unsigned, "refused login");
    assert_eq!(home.snapshot(), before, "a failed login changes nothing");

    // Wrong issuer: 3.
    home.run()
        .args(login)
        .args(["--jwks", &jwks_arg, "--issuer", "https://other.example"])
        .stdin(format!("{signed}\n"))
        .expect(3);
    // Right key and issuer: stored.
    home.run()
        .args(login)
        .args(["--jwks", &jwks_arg, "--issuer", "https://issuer.example"])
        .stdin(format!("{signed}\n"))
        .expect(0);

    // The env credential is verified when CREDSTORE_JWKS is set; no
    // fallback to the (valid) stored one.
    let out = home
        .run()
        .env("CREDSTORE_JWKS", &jwks_arg)
        .env("CREDSTORE_AGENT_IDENTITY", &unsigned)
        .args(["--backend", "file", "token"])
        .expect(3);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("CREDSTORE_AGENT_IDENTITY"),
        "{}",
        out.stderr
    );
    home.run()
        .env("CREDSTORE_JWKS", &jwks_arg)
        .env("CREDSTORE_AGENT_IDENTITY", &signed)
        .args(["--backend", "file", "assertion", "--task-id", "t"])
        .expect(0);

    // The stored credential is verified too: fine against its JWKS, refused
    // against one that does not hold its key.
    home.run()
        .args(["--backend", "file", "status", "--jwks", &jwks_arg])
        .expect(0);
    let (other_jwks, _) = issuer();
    let other_path = home.root().join("other.json");
    std::fs::write(&other_path, other_jwks.to_string()).expect("write");
    home.run()
        .args([
            "--backend",
            "file",
            "token",
            "--jwks",
            other_path.to_str().expect("utf-8"),
        ])
        .expect(3);

    // Misconfiguration is a usage error.
    home.run()
        .args(["--backend", "file", "status", "--issuer", "x"])
        .expect(2);
    home.run()
        .args([
            "--backend",
            "file",
            "status",
            "--jwks",
            "/nonexistent/jwks.json",
        ])
        .expect(2);
    // Only the commands that use an agent identity take the options.
    for args in [
        ["--backend", "file", "--jwks", &jwks_arg, "status"],
        ["--backend", "file", "logout", "--jwks", &jwks_arg],
        ["--backend", "file", "profiles", "--jwks", &jwks_arg],
    ] {
        let out = home.run().args(args).expect(2);
        assert!(out.stderr.contains("--jwks"), "{args:?}: {}", out.stderr);
    }
    let out = home.run().args(["--backend", "file", "status"]).expect(0);
    assert!(out.stdout.contains("agent identity"), "{}", out.stdout);
    std::fs::write(&other_path, "not json").expect("write");
    home.run()
        .env("CREDSTORE_JWKS", &other_path)
        .args(["--backend", "file", "status"])
        .expect(2);
}

#[test]
fn a_silent_auth_api_says_what_it_waits_for_on_a_terminal() {
    // Accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    let run = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &jwt)
        .env("CREDSTORE_HTTP_TIMEOUT", "2")
        .env("TERM", "xterm")
        .args(["register-task", "--base-url", &base]);
    let (code, shown) = common::on_a_terminal(run);
    assert_eq!(code, 4, "{shown}");
    assert!(
        shown.contains(&format!("waiting for the auth API at {base}: ")),
        "{shown}"
    );
    assert!(shown.contains("(gives up after 2 s)"), "{shown}");
    assert!(!shown.contains(&jwt), "{shown}");
}

#[test]
fn the_auth_api_base_url_is_remembered_per_profile() {
    let api = AuthApi::start();
    let home = Home::new();
    home.run()
        .args(["config", "set", "authapi-base-url", &api.base_url()])
        .expect(0);
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", api.token("rt-plain"))
        .env("CREDSTORE_HTTP_TIMEOUT", "2")
        .args(["register-task"])
        .expect(0);
    assert_eq!(out.stdout, "task-plain-1\n");
    // Another profile has none; a flag wins over the remembered one.
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", api.token("rt-plain"))
        .args(["--profile", "other", "register-task"])
        .expect(2);
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", api.token("rt-plain"))
        .env("CREDSTORE_HTTP_TIMEOUT", "1")
        .args(["register-task", "--base-url", "http://127.0.0.1:9"])
        .expect(4);
    // Not a URL: refused, named by its key.
    let out = home
        .run()
        .args(["config", "set", "authapi-base-url", "ftp://x"])
        .expect(2);
    assert!(out.stderr.contains("authapi_base_url"), "{}", out.stderr);
}
