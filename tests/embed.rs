//! `examples/embed.rs`, the library-only program, with the prefix `CODEX`:
//! it reads `CODEX_*` and no `CREDSTORE_*` variable, through the store
//! factory, against the file backend, the environment and a real keychain
//! (the Vault case is in `tests/vault.rs`).
#![cfg(unix)]

mod common;
#[path = "common/secret_service.rs"]
mod secret_service;

use common::tokens::TokenBuilder;
use common::Home;
use secret_service::SecretServiceSession;
use std::process::Command;

/// The example, built by `cargo test` beside the test binaries.
pub fn embed_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("examples").join("embed");
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    bin
}

fn embed(envs: &[(&str, &str)]) -> (i32, serde_json::Value, String) {
    let out = Command::new(embed_binary())
        .args(["--prefix", "CODEX"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/credstore-test-no-bus",
        )
        .envs(envs.iter().copied())
        .output()
        .expect("run embed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

#[test]
fn the_file_backend_and_the_environment_by_the_embedders_names() {
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&jwt)
        .expect(0);
    let store = home.store_dir();
    let store = store.to_str().unwrap();
    let root = home.root().to_str().unwrap();

    // CODEX_HOME + CODEX_BACKEND choose the file; CREDSTORE_* is ignored.
    let (code, doc, err) = embed(&[
        ("HOME", root),
        ("CODEX_HOME", store),
        ("CODEX_BACKEND", "file"),
        ("CREDSTORE_API_KEY", "sk-credstore-must-be-ignored"),
        ("CREDSTORE_BACKEND", "memory"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["source"]["kind"], "file", "{doc}");
    assert_eq!(doc["auth_mode"], "agent_identity");
    assert_eq!(doc["identity"]["agent_runtime_id"], "rt-test-1");
    assert_eq!(doc["backend_chosen_by"], "env");

    // CODEX_API_KEY wins over the stored identity.
    let (code, doc, err) = embed(&[
        ("HOME", root),
        ("CODEX_HOME", store),
        ("CODEX_BACKEND", "file"),
        ("CODEX_API_KEY", "sk-codex-env"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["source"]["kind"], "env");
    assert_eq!(doc["source"]["detail"], "CODEX_API_KEY");
    assert!(
        !doc.to_string().contains("sk-codex-env"),
        "no secret in the document"
    );

    // A non-Unicode or bad CODEX_ value is an error naming it.
    let (code, _, err) = embed(&[("HOME", root), ("CODEX_BACKEND", "nope")]);
    assert_eq!(code, 2);
    assert!(err.contains("CODEX_BACKEND"), "{err}");
    let (code, _, err) = embed(&[("HOME", root), ("CODEX_KEYCHAIN_TIMEOUT", "soon")]);
    assert_eq!(code, 2);
    assert!(err.contains("CODEX_KEYCHAIN_TIMEOUT"), "{err}");

    // Nothing in a fresh CODEX_HOME: exit 1, logged_in false.
    let empty = home.root().join("empty");
    let (code, doc, _) = embed(&[
        ("HOME", root),
        ("CODEX_HOME", empty.to_str().unwrap()),
        ("CODEX_BACKEND", "file"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(doc["logged_in"], false);
}

#[test]
fn the_keychain_by_the_embedders_names() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    let mut login = home
        .run()
        .args(["login", "--with-api-key", "--backend", "keychain"])
        .stdin("sk-in-the-keychain");
    for (k, v) in session.env() {
        if k != "HOME" {
            login = login.env(&k, v);
        }
    }
    login.expect(0);
    let mut envs: Vec<(String, String)> = session.env();
    envs.push(("CODEX_BACKEND".into(), "keychain".into()));
    envs.push((
        "CODEX_HOME".into(),
        home.store_dir().to_str().unwrap().into(),
    ));
    let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, doc, err) = embed(&pairs);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["source"]["kind"], "keychain", "{doc}");
    assert_eq!(doc["auth_mode"], "api_key");
}
