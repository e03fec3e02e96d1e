//! The CLI end to end, as a user runs it: every core command and exit code
//! (SPEC §6), environment-first resolution (§5), the token-only file (§2,
//! §4.1), and that no secret reaches any output.
// Unix only: Unix file modes and signals throughout. The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use common::tokens::{real_now, TokenBuilder};
use common::{mode, Home};
use serde_json::json;

const LOGIN_AGENT: [&str; 4] = ["login", "--with-agent-identity", "--backend", "file"];
const LOGIN_KEY: [&str; 4] = ["login", "--with-api-key", "--backend", "file"];

fn login(home: &Home, token: &str) {
    let out = home
        .run()
        .args(LOGIN_AGENT)
        .stdin(format!("{token}\n"))
        .expect(0);
    out.assert_no_secret(token, "login");
}

#[test]
fn login_stores_exactly_the_token_only_document_with_private_modes() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let out = home
        .run()
        .args(LOGIN_AGENT)
        .stdin(format!("{token}\n"))
        .expect(0);
    out.assert_no_secret(&token, "login");
    out.assert_no_secret(&b.private_key_b64(), "login");
    assert!(
        out.stderr.contains("rt-test-1") && out.stderr.contains("acct-test-1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "the human summary is a message (stderr)"
    );
    let doc = std::fs::read_to_string(home.auth_json()).unwrap();
    assert_eq!(
        doc,
        format!("{{\"auth_mode\":\"agent_identity\",\"agent_identity\":\"{token}\"}}\n")
    );
    for decoded in ["acct-test-1", "agent@example.com", "rt-test-1"] {
        assert!(
            !doc.contains(decoded),
            "decoded claim {decoded} must not be stored"
        );
    }
    assert_eq!(mode(&home.auth_json()), 0o600);
    assert_eq!(mode(&home.store_dir()), 0o700);
    assert_eq!(mode(&home.store_dir().join(".lock")), 0o600);
    let names: Vec<_> = std::fs::read_dir(home.store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only auth.json and .lock, no temp files: {names:?}"
    );
}

#[test]
fn login_api_key_and_token_round_trip() {
    let home = Home::new();
    let out = home
        .run()
        .args(LOGIN_KEY)
        .stdin("  sk-test-canary-123\n")
        .expect(0);
    out.assert_no_secret("sk-test-canary-123", "login api key");
    let doc = std::fs::read_to_string(home.auth_json()).unwrap();
    assert_eq!(
        doc,
        "{\"auth_mode\":\"api_key\",\"api_key\":\"sk-test-canary-123\"}\n"
    );
    let out = home.run().args(["token"]).expect(0);
    assert_eq!(out.stdout, "sk-test-canary-123\n");
    let out = home.run().args(["status", "--json"]).expect(0);
    let v = out.json();
    assert_eq!(v["auth_mode"], "api_key");
    assert_eq!(v["identity"], serde_json::Value::Null);
    out.assert_no_secret("sk-test-canary-123", "status");
}

#[test]
fn login_json_prints_status_fields_on_stdout() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let out = home
        .run()
        .args([
            "login",
            "--with-agent-identity",
            "--backend",
            "file",
            "--json",
        ])
        .stdin(&token)
        .expect(0);
    let v = out.json();
    assert_eq!(v["profile"], "default");
    assert_eq!(v["source"]["kind"], "file");
    assert_eq!(
        v["source"]["detail"],
        home.auth_json().display().to_string()
    );
    assert_eq!(v["auth_mode"], "agent_identity");
    assert_eq!(v["identity"]["agent_runtime_id"], "rt-test-1");
    out.assert_no_secret(&token, "login --json");
}

#[test]
fn failed_logins_leave_the_store_byte_identical() {
    let home = Home::new();
    let first = TokenBuilder::new().build();
    login(&home, &first);
    let before = home.snapshot();
    let expired = TokenBuilder::new()
        .claim("exp", json!(real_now() - 3600))
        .build();
    let bad_key = TokenBuilder::new()
        .claim("agent_private_key", json!("AAAA"))
        .build();
    let cases: Vec<(&[&str], Vec<u8>, i32)> = vec![
        (&LOGIN_AGENT, expired.into_bytes(), 3),
        (&LOGIN_AGENT, bad_key.into_bytes(), 3),
        (&LOGIN_AGENT, b"not-a-jwt".to_vec(), 3),
        (&LOGIN_AGENT, b"".to_vec(), 3),
        (&LOGIN_AGENT, vec![b'a'; 200 * 1024], 3),
        (&LOGIN_KEY, b"two words".to_vec(), 3),
        (&LOGIN_KEY, b"".to_vec(), 3),
        (&["login", "--backend", "file"], b"sk-x".to_vec(), 2),
        (
            &["login", "--with-api-key", "--with-agent-identity"],
            b"sk-x".to_vec(),
            2,
        ),
        (
            &["login", "--with-api-key", "--profile", "../x"],
            b"sk-x".to_vec(),
            2,
        ),
        (
            &["login", "--with-api-key", "--backend", "floppy"],
            b"sk-x".to_vec(),
            2,
        ),
    ];
    for (args, stdin, code) in cases {
        let out = home.run().args(args).stdin(&stdin).output();
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
        assert_eq!(home.snapshot(), before, "{args:?} changed the store");
    }
    assert_eq!(
        home.run().args(["token"]).expect(0).stdout,
        format!("{first}\n")
    );
}

#[test]
fn oversize_stdin_is_refused_with_exit_3() {
    let home = Home::new();
    let out = home
        .run()
        .args(LOGIN_AGENT)
        .stdin(vec![b'x'; 17 * 1024])
        .expect(3);
    assert!(out.stderr.contains("16384"), "{}", out.stderr);
    let out = home
        .run()
        .args(LOGIN_AGENT)
        .stdin(vec![b'x'; 65 * 1024])
        .expect(3);
    assert!(out.stderr.contains("64 KiB"), "{}", out.stderr);
    assert!(!home.auth_json().exists());
}

#[test]
fn status_and_token_with_nothing_stored() {
    let home = Home::new();
    let out = home.run().args(["status", "--json"]).expect(1);
    let v = out.json();
    assert_eq!(v["logged_in"], false);
    assert_eq!(v["source"], serde_json::Value::Null);
    assert_eq!(v["auth_mode"], serde_json::Value::Null);
    assert_eq!(v["identity"], serde_json::Value::Null);
    let out = home.run().args(["status"]).expect(1);
    assert!(out.stdout.contains("Not logged in"), "{}", out.stdout);
    let out = home.run().args(["token"]).expect(1);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("login"), "{}", out.stderr);
    home.run().args(["logout"]).expect(1);
    assert!(
        !home.store_dir().exists(),
        "reading must not create anything"
    );
}

#[test]
fn status_json_has_the_documented_schema() {
    let home = Home::new();
    let token = TokenBuilder::new()
        .claim("chatgpt_account_is_fedramp", json!(true))
        .claim("iat", json!(1_700_000_000))
        .claim("exp", json!(4_000_000_000i64))
        .build();
    login(&home, &token);
    let out = home.run().args(["status", "--json"]).expect(0);
    out.assert_no_secret(&token, "status");
    let v = out.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "schema",
            "logged_in",
            "profile",
            "source",
            "auth_mode",
            "identity",
            "backend",
            "backend_chosen_by",
            "warnings"
        ]
    );
    assert_eq!(v["schema"], 2);
    assert_eq!(v["backend"], "auto");
    assert_eq!(v["backend_chosen_by"], "default");
    assert_eq!(v["logged_in"], true);
    assert_eq!(
        v["source"],
        json!({"kind": "file", "detail": home.auth_json().display().to_string()})
    );
    assert_eq!(
        v["identity"],
        json!({
            "agent_runtime_id": "rt-test-1", "account_id": "acct-test-1",
            "chatgpt_user_id": "user-test-1", "email": "agent@example.com",
            "plan_type": "pro", "fedramp": true,
            "issued_at": "2023-11-14T22:13:20Z", "expires_at": "2096-10-02T07:06:40Z",
            "expires_in_seconds": v["identity"]["expires_in_seconds"],
            "expired": false
        })
    );
    let left = v["identity"]["expires_in_seconds"].as_i64().unwrap();
    let wanted = 4_000_000_000i64 - common::tokens::real_now();
    assert!((wanted - left).abs() <= 5, "{left} vs {wanted}");
    // Warnings are {code, message} objects (schema 2).
    let warnings = v["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["code"] == "plaintext_file"
            && w["message"].as_str().unwrap().contains("plaintext")),
        "{warnings:?}"
    );
}

#[test]
fn expired_and_expiring_credentials() {
    let home = Home::new();
    // Stored while valid, expired now: write the document as login would.
    let expired = TokenBuilder::new()
        .claim("exp", json!(real_now() - 3600))
        .build();
    std::fs::create_dir_all(home.store_dir()).unwrap();
    set_mode(&home.store_dir(), 0o700);
    write_private(
        &home.auth_json(),
        &format!("{{\"agent_identity\":\"{expired}\"}}"),
    );
    let out = home.run().args(["status", "--json"]).expect(1);
    let v = out.json();
    assert_eq!(v["logged_in"], true);
    assert_eq!(v["identity"]["expired"], true);
    assert!(v["warnings"].to_string().contains("expired"), "{v}");
    let out = home.run().args(["token"]).expect(3);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("expired"), "{}", out.stderr);
    // A stored identity is replaced by logging in: the CLI says how.
    assert!(
        out.stderr.contains("credstore login --with-agent-identity"),
        "{}",
        out.stderr
    );
    // One from a variable is replaced in the variable: no login advice,
    // the variable named.
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &expired)
        .args(["token"])
        .expect(3);
    assert!(
        out.stderr.contains("CREDSTORE_AGENT_IDENTITY"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("credstore login"), "{}", out.stderr);

    // Within the 60 s leeway: still usable, and said so.
    let edge = TokenBuilder::new()
        .claim("exp", json!(real_now() - 30))
        .build();
    let out = home.run().args(LOGIN_AGENT).stdin(&edge).expect(0);
    assert!(
        out.stderr.contains("within the 60 s leeway"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("in 0 minutes"), "{}", out.stderr);
    home.run().args(["token"]).expect(0);

    let soon = TokenBuilder::new()
        .claim("exp", json!(real_now() + 3 * 86400))
        .build();
    login(&home, &soon);
    let out = home.run().args(["status", "--json"]).expect(0);
    assert!(
        out.json()["warnings"]
            .to_string()
            .contains("expires in 2 days")
            || out.json()["warnings"]
                .to_string()
                .contains("expires in 3 days"),
        "{}",
        out.stdout
    );
}

#[test]
fn environment_comes_first_in_order() {
    let home = Home::new();
    let stored = TokenBuilder::new()
        .claim("agent_runtime_id", json!("rt-stored"))
        .build();
    login(&home, &stored);
    let env_id = TokenBuilder::new()
        .claim("agent_runtime_id", json!("rt-env"))
        .build();

    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_AGENT_IDENTITY", &env_id)
        .expect(0);
    assert_eq!(out.stdout, format!("{env_id}\n"));
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_AGENT_IDENTITY", &env_id)
        .env("CREDSTORE_API_KEY", "sk-env")
        .expect(0);
    assert_eq!(out.stdout, "sk-env\n");
    let out = home
        .run()
        .args(["token", "--no-env"])
        .env("CREDSTORE_API_KEY", "sk-env")
        .expect(0);
    assert_eq!(out.stdout, format!("{stored}\n"));
    // Blank counts as unset.
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_API_KEY", "  \n")
        .expect(0);
    assert_eq!(out.stdout, format!("{stored}\n"));

    let out = home
        .run()
        .args(["status", "--json"])
        .env("CREDSTORE_AGENT_IDENTITY", &env_id)
        .env("CREDSTORE_API_KEY", "sk-env")
        .expect(0);
    out.assert_no_secret("sk-env", "status");
    out.assert_no_secret(&env_id, "status");
    let v = out.json();
    assert_eq!(
        v["source"],
        json!({"kind": "env", "detail": "CREDSTORE_API_KEY"})
    );
    let w = v["warnings"].to_string();
    assert!(
        w.contains("CREDSTORE_AGENT_IDENTITY is set but CREDSTORE_API_KEY takes precedence"),
        "{w}"
    );
    assert!(
        w.contains("CREDSTORE_API_KEY shadows the credential stored in"),
        "{w}"
    );
}

#[test]
fn file_variants_of_the_env_variables() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("identity");
    let token = TokenBuilder::new().build();
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let out = home
        .run()
        .args(["status", "--json"])
        .env("CREDSTORE_AGENT_IDENTITY_FILE", &token_file)
        .expect(0);
    assert_eq!(
        out.json()["source"]["detail"],
        "CREDSTORE_AGENT_IDENTITY_FILE"
    );
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_AGENT_IDENTITY_FILE", &token_file)
        .expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));

    // X and X_FILE both set: usage error.
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_AGENT_IDENTITY_FILE", &token_file)
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .expect(2);
    assert!(
        out.stderr
            .contains("both CREDSTORE_AGENT_IDENTITY and CREDSTORE_AGENT_IDENTITY_FILE"),
        "{}",
        out.stderr
    );
    out.assert_no_secret(&token, "both set");

    // An unreadable _FILE names the path, exit 2.
    let missing = dir.path().join("nope");
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_API_KEY_FILE", &missing)
        .expect(2);
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );

    // A huge _FILE is refused without exhausting memory.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'k'; 1 << 20]).unwrap();
    home.run()
        .args(["token"])
        .env("CREDSTORE_API_KEY_FILE", &big)
        .expect(3);
}

#[test]
fn invalid_env_credential_names_the_variable_and_never_falls_back() {
    let home = Home::new();
    let stored = TokenBuilder::new().build();
    login(&home, &stored);
    for (var, value) in [
        ("CREDSTORE_API_KEY", "has space"),
        ("CREDSTORE_AGENT_IDENTITY", "a.b"),
        ("CREDSTORE_AGENT_IDENTITY", "eyJhbGciOiJub25lIn0.eyJ9.c2ln"),
    ] {
        let out = home.run().args(["token"]).env(var, value).expect(3);
        assert!(out.stderr.contains(var), "{var}: {}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "no fallback to the stored credential"
        );
        let out = home.run().args(["status"]).env(var, value).expect(3);
        assert!(out.stderr.contains(var));
    }
    let expired = TokenBuilder::new()
        .claim("exp", json!(real_now() - 3600))
        .build();
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_AGENT_IDENTITY", &expired)
        .expect(3);
    assert!(
        out.stderr.contains("CREDSTORE_AGENT_IDENTITY"),
        "{}",
        out.stderr
    );
    out.assert_no_secret(&expired, "expired env");
}

#[test]
fn env_credentials_are_never_written() {
    let home = Home::new();
    let env_id = TokenBuilder::new().build();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "sk-from-file-canary").unwrap();
    let commands: [&[&str]; 6] = [
        &["status"],
        &["status", "--json"],
        &["token"],
        &["logout"],
        &["status", "--backend", "memory"],
        &["token", "--backend", "file"],
    ];
    for args in commands {
        for (var, value) in [
            ("CREDSTORE_AGENT_IDENTITY", env_id.as_str()),
            ("CREDSTORE_API_KEY", "sk-env-canary"),
            ("CREDSTORE_API_KEY_FILE", key_file.to_str().unwrap()),
        ] {
            home.run().args(args).env(var, value).output();
            assert!(
                home.snapshot().is_empty(),
                "{args:?} with {var} wrote {:?}",
                home.snapshot().keys()
            );
        }
    }
    // login stores what came on stdin, never the env credential, and warns.
    let stdin_key = "sk-from-stdin";
    let out = home
        .run()
        .args(LOGIN_KEY)
        .env("CREDSTORE_AGENT_IDENTITY", &env_id)
        .stdin(stdin_key)
        .expect(0);
    assert!(
        out.stderr
            .contains("CREDSTORE_AGENT_IDENTITY is set: it will keep shadowing"),
        "{}",
        out.stderr
    );
    out.assert_no_secret(&env_id, "login with env");
    for (path, bytes) in home.snapshot() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&env_id), "{path:?} holds the env credential");
    }
    assert!(std::fs::read_to_string(home.auth_json())
        .unwrap()
        .contains(stdin_key));
}

#[test]
fn logout_removes_and_reports_nothing_to_remove() {
    let home = Home::new();
    login(&home, &TokenBuilder::new().build());
    let out = home.run().args(["logout", "--backend", "file"]).expect(0);
    assert!(out.stderr.contains("Removed"), "{}", out.stderr);
    assert!(!home.auth_json().exists());
    home.run().args(["logout", "--backend", "file"]).expect(1);
    let out = home
        .run()
        .args(["logout"])
        .env("CREDSTORE_API_KEY", "sk-x")
        .expect(1);
    assert!(
        out.stderr.contains("CREDSTORE_API_KEY is still set"),
        "{}",
        out.stderr
    );
}

#[test]
fn profiles_are_separate_slots() {
    let home = Home::new();
    let a = TokenBuilder::new().build();
    login(&home, &a);
    home.run()
        .args([
            "login",
            "--with-api-key",
            "--backend",
            "file",
            "--profile",
            "work.ci-1",
        ])
        .stdin("sk-work")
        .expect(0);
    assert!(home.store_dir().join("auth.work.ci-1.json").exists());
    assert_eq!(
        home.run()
            .args(["token", "--profile", "work.ci-1"])
            .expect(0)
            .stdout,
        "sk-work\n"
    );
    assert_eq!(
        home.run()
            .args(["token"])
            .env("CREDSTORE_PROFILE", "work.ci-1")
            .expect(0)
            .stdout,
        "sk-work\n"
    );
    assert_eq!(
        home.run().args(["token"]).expect(0).stdout,
        format!("{a}\n")
    );
    for bad in ["../etc", "", "-x", "a/b", &"p".repeat(65)] {
        let out = home.run().args(["token", "--profile", bad]).output();
        assert_eq!(out.code, 2, "{bad:?}: {}", out.stderr);
    }
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_PROFILE", "bad name")
        .expect(2);
    assert!(
        out.stderr.contains("CREDSTORE_PROFILE"),
        "names the variable: {}",
        out.stderr
    );
    let out = home
        .run()
        .args(["token"])
        .env("CREDSTORE_BACKEND", "floppy")
        .expect(2);
    assert!(
        out.stderr.contains("CREDSTORE_BACKEND"),
        "names the variable: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("floppy"),
        "the value is not echoed: {}",
        out.stderr
    );
}

#[test]
fn memory_backend_validates_and_keeps_nothing() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let out = home
        .run()
        .args(["login", "--with-agent-identity", "--backend", "memory"])
        .stdin(&token)
        .expect(0);
    assert!(out.stderr.contains("nothing kept"), "{}", out.stderr);
    assert!(home.snapshot().is_empty());
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "memory"])
        .stdin("garbage")
        .expect(3);
    home.run().args(["status", "--backend", "memory"]).expect(1);
}

#[test]
fn auto_falls_back_to_the_file_with_a_warning_before_writing() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let out = home
        .run()
        .args(["login", "--with-agent-identity"])
        .stdin(&token)
        .expect(0);
    let warn = out
        .stderr
        .find("plaintext file")
        .expect("plaintext warning");
    let summary = out.stderr.find("Logged in").expect("summary");
    assert!(
        warn < summary,
        "the warning comes before the write: {}",
        out.stderr
    );
    assert!(out.stderr.contains("--backend file"), "{}", out.stderr);
    assert!(home.auth_json().exists());
    let out = home.run().args(["status", "--json"]).expect(0);
    assert!(out.json()["warnings"].to_string().contains("plaintext"));
    // logout names where it removed the credential from: the file.
    let out = home.run().args(["logout"]).expect(0);
    assert!(
        out.stderr.contains(&home.auth_json().display().to_string()),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("keychain credstore"), "{}", out.stderr);
}

#[test]
fn login_json_carries_the_plaintext_warning() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let out = home
        .run()
        .args(["login", "--with-agent-identity", "--json"])
        .stdin(&token)
        .expect(0);
    assert!(
        out.json()["warnings"].to_string().contains("plaintext"),
        "{}",
        out.stdout
    );
}

#[test]
fn terminal_control_characters_in_claims_are_escaped() {
    let home = Home::new();
    let token = TokenBuilder::new()
        .claim("email", json!("a\u{1b}[31mRED\u{7}\nforged: line"))
        .claim("plan_type", json!("pro\u{202e}evil"))
        .build();
    let out = home.run().args(LOGIN_AGENT).stdin(&token).expect(0);
    for text in [&out.stderr, &home.run().args(["status"]).expect(0).stdout] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'),
            "{text:?}"
        );
        assert!(
            !text.contains("\nforged"),
            "a claim forged a line: {text:?}"
        );
        assert!(text.contains("\\u{1b}[31mRED"), "shown escaped: {text:?}");
    }
    // JSON keeps the value exactly (escaped by JSON itself).
    let v = home.run().args(["status", "--json"]).expect(0).json();
    assert_eq!(v["identity"]["email"], "a\u{1b}[31mRED\u{7}\nforged: line");
}

#[test]
fn corrupt_or_invalid_stored_credentials() {
    let home = Home::new();
    std::fs::create_dir_all(home.store_dir()).unwrap();
    set_mode(&home.store_dir(), 0o700);
    let canary = "sk-corrupt-canary";
    for (doc, code) in [
        (format!("{{\"api_key\":\"{canary}\""), 4),
        (
            format!("{{\"api_key\":\"{canary}\",\"agent_identity\":\"x\"}}"),
            4,
        ),
        (format!("[\"{canary}\"]"), 4),
        (
            "{\"auth_mode\":\"agent_identity\",\"agent_identity\":\"not.a.jwt\"}".to_string(),
            3,
        ),
        (format!("{{\"api_key\":\"{canary} with space\"}}"), 3),
    ] {
        write_private(&home.auth_json(), &doc);
        let before = home.snapshot();
        for args in [&["status"][..], &["status", "--json"], &["token"]] {
            let out = home.run().args(args).output();
            assert_eq!(out.code, code, "{doc}: {}", out.stderr);
            assert!(
                out.stderr.contains(&home.auth_json().display().to_string()),
                "{}",
                out.stderr
            );
            out.assert_no_secret(canary, "corrupt store");
            assert!(
                !out.stdout.contains("logged_in"),
                "an error, not a status document"
            );
        }
        assert_eq!(home.snapshot(), before, "reading left the file as it was");
    }
}

#[test]
fn secrets_on_the_command_line_are_refused_unechoed() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let out = home
        .run()
        .args(["login", "--with-agent-identity", &token])
        .expect(2);
    out.assert_no_secret(&token, "argv token");
    assert!(out.stderr.contains("stdin"), "{}", out.stderr);
    assert!(home.snapshot().is_empty());
}

#[test]
fn version_and_help() {
    let home = Home::new();
    let out = home.run().args(["--version"]).expect(0);
    assert_eq!(
        out.stdout.trim(),
        format!("credstore {}", env!("CARGO_PKG_VERSION"))
    );
    for cmd in ["login", "logout", "status", "token"] {
        let out = home.run().args([cmd, "--help"]).expect(0);
        assert!(out.stdout.contains("Usage"), "{cmd}");
    }
    home.run().args(["frobnicate"]).expect(2);
}

#[test]
fn completions_for_each_shell() {
    let home = Home::new();
    // The code calls credstore back for the words (tests/ux.rs runs the
    // bash one for real).
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = home.run().args(["completions", shell]).expect(0);
        assert!(
            out.stdout.contains("CREDSTORE_COMPLETE") && out.stdout.contains("credstore"),
            "{shell}: {}",
            out.stdout
        );
    }
    home.run().args(["completions", "tcsh"]).expect(2);
}

/// Starts `login` through `wrapper` (prlimit, setpriv…) with the harness
/// environment, and waits until the credstore process itself sits in
/// read(2) on stdin. Returns the child (stdin still open) and its pid.
fn login_blocked_on_stdin(home: &Home, wrapper: &[&str]) -> (std::process::Child, u32) {
    let inner = home
        .run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .into_command();
    let mut cmd = std::process::Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs `{}`: {e}", wrapper[0]));
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        // Syscall 0 is read(2) on x86_64 and the process is credstore (not
        // the wrapper before its exec).
        if exe.ends_with("credstore") && syscall.split_whitespace().next() == Some("0") {
            return (child, pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("credstore login did not start reading stdin within 10 s");
}

#[test]
fn core_dumps_are_off_before_a_secret_is_read() {
    // Started with a raised core limit (raising a hard limit needs
    // CAP_SYS_RESOURCE: CI runs as root); read from outside while `login`
    // waits for the secret.
    let home = Home::new();
    let (mut child, pid) = login_blocked_on_stdin(&home, &["prlimit", "--core=1048576:1048576"]);
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    drop(child.stdin.take());
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &f[4..6],
        ["0", "0"],
        "RLIMIT_CORE (soft, hard) while login reads stdin: {line}"
    );
}

#[test]
fn the_process_is_not_dumpable_while_reading_a_secret() {
    // A non-dumpable process's /proc/<pid> files belong to root even when
    // the process runs as another user; a dumpable one's belong to that
    // user. Run as nobody (65534) to tell the two apart.
    use std::os::unix::fs::MetadataExt;
    let home = Home::new();
    std::fs::set_permissions(
        home.root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (mut child, pid) = login_blocked_on_stdin(
        &home,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mem_owner = std::fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid();
    drop(child.stdin.take());
    let _ = child.wait();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.contains("65534"),
        "setpriv did not switch user: {uid_line}"
    );
    assert_eq!(
        mem_owner, 0,
        "/proc/{pid}/mem owned by {mem_owner}: the process is dumpable"
    );
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn write_private(path: &std::path::Path, content: &str) {
    std::fs::write(path, content).unwrap();
    set_mode(path, 0o600);
}

#[test]
fn terminal_input_is_not_echoed() {
    // `script` gives credstore a real pseudo-terminal as stdin; whatever the
    // terminal echoes comes back on script's stdout.
    use std::io::Write;
    let home = Home::new();
    let inner = home
        .run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .into_command();
    let command_line = format!("{} login --with-api-key --backend file", common::bin());
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("this test needs `script` (util-linux)");
    // Type only once the prompt is on screen (echo is off by then).
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut screen = Vec::new();
        let mut buf = [0u8; 256];
        let mut told = false;
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
            if !told && String::from_utf8_lossy(&screen).contains("input is hidden") {
                told = true;
                let _ = tx.send(());
            }
        }
        String::from_utf8_lossy(&screen).into_owned()
    });
    let prompted = rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
    if prompted {
        stdin.write_all(b"sk-typed-at-a-terminal\r").unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let screen = reader.join().unwrap();
    assert!(prompted, "no prompt within 10 s: {screen}");
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("sk-typed"), "the key was echoed: {screen}");
    let doc = std::fs::read_to_string(home.auth_json()).unwrap();
    assert!(
        doc.contains("\"sk-typed-at-a-terminal\""),
        "stored what was typed"
    );
}

#[test]
fn status_warns_about_a_listable_credential_directory() {
    let home = Home::new();
    login(&home, &TokenBuilder::new().build());
    set_mode(&home.store_dir(), 0o755);
    let out = home.run().args(["status", "--json"]).expect(0);
    let w = out.json()["warnings"].to_string();
    assert!(w.contains("0755") && w.contains("chmod 700"), "{w}");
    let out = home.run().args(LOGIN_KEY).stdin("sk-again").expect(0);
    assert!(
        out.stderr.contains("chmod 700"),
        "login warns too: {}",
        out.stderr
    );
    set_mode(&home.store_dir(), 0o700);
    let out = home.run().args(["status", "--json"]).expect(0);
    assert!(!out.json()["warnings"].to_string().contains("chmod 700"));
}

#[test]
fn doctor_does_not_call_an_unusable_credential_none() {
    let home = Home::new();
    login(&home, &TokenBuilder::new().build());
    for (var, value) in [
        ("CREDSTORE_AGENT_IDENTITY", "garbage"),
        ("CREDSTORE_API_KEY", "two words"),
    ] {
        let out = home
            .run()
            .args(["doctor", "--backend", "file"])
            .env(var, value)
            .expect(1);
        assert!(out.stdout.contains("error:"), "{}", out.stdout);
        assert!(
            !out.stdout.contains("none:"),
            "contradicts the error: {}",
            out.stdout
        );
    }
    let out = home.run().args(["doctor", "--backend", "file"]).expect(0);
    assert!(
        out.stdout.contains("agent identity from file"),
        "{}",
        out.stdout
    );
}
