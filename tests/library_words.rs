//! The library's errors carry a structured kind and name no command-line
//! word: an embedder (Codex, say) shows them to its own users, who have no
//! `credstore login` and no `--task-id`. The CLI adds that advice itself
//! (tests/cli.rs, tests/agent_cli.rs check it is there).

mod common;

use common::tokens::{real_now, TokenBuilder};
use credstore::{AuthMode, Credential, ErrorKind};
use serde_json::json;

/// Words that belong to the CLI, never to a library message.
fn assert_no_cli_words(message: &str) {
    for word in [
        "credstore login",
        "credstore logout",
        "credstore migrate",
        "credstore register-task",
        "--",
    ] {
        assert!(
            !message.contains(word),
            "library message names {word:?}: {message}"
        );
    }
}

#[test]
fn an_expired_identity_is_kind_expired_without_cli_words() {
    let token = TokenBuilder::new()
        .claim("exp", json!(real_now() - 3600))
        .build();
    let credential = Credential::parse(AuthMode::AgentIdentity, token.as_bytes(), "stdin")
        .expect("an expired identity still parses");
    let e = credential
        .ensure_not_expired(real_now(), "stdin")
        .expect_err("expired");
    assert_eq!(e.kind(), ErrorKind::Expired);
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("expired at"), "{e}");
    assert_no_cli_words(&e.to_string());
}

#[test]
fn headers_without_a_task_id_are_kind_missing_task_id() {
    let token = TokenBuilder::new().build();
    let credential =
        Credential::parse(AuthMode::AgentIdentity, token.as_bytes(), "stdin").expect("parses");
    let e = credential
        .request_headers(None)
        .expect_err("needs a task id");
    assert_eq!(e.kind(), ErrorKind::MissingTaskId);
    assert_eq!(e.exit_code(), 2);
    assert_no_cli_words(&e.to_string());

    let e = credential
        .agent_identity()
        .expect("identity")
        .assertion("")
        .expect_err("empty task id");
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.to_string().contains("task id is empty"), "{e}");
    assert_no_cli_words(&e.to_string());
}

#[test]
fn an_identity_given_as_an_api_key_is_refused_without_cli_words() {
    let token = TokenBuilder::new().build();
    let e = Credential::parse(AuthMode::ApiKey, token.as_bytes(), "stdin")
        .expect_err("an identity is not an API key");
    assert_eq!(e.kind(), ErrorKind::InvalidCredential);
    assert!(e.to_string().contains("agent identity instead"), "{e}");
    assert_no_cli_words(&e.to_string());
}

#[test]
fn kinds_agree_with_exit_codes() {
    // A malformed token: invalid credential, exit 3.
    let e = Credential::parse(AuthMode::AgentIdentity, b"not.a.jwt", "stdin").expect_err("bad");
    assert_eq!(e.kind(), ErrorKind::InvalidCredential);
    assert_eq!(e.exit_code(), 3);
    // A bad profile name: usage, exit 2.
    let e = credstore::profile::Profile::new("../x").expect_err("bad profile");
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert_eq!(e.exit_code(), 2);
}

/// The sealed backend's key errors: kind SealKey (exit 4), the file named,
/// no credstore command or flag in the message (the CLI adds `seal keygen`).
#[test]
fn sealed_key_errors_are_kind_seal_key_without_cli_words() {
    use credstore::env::{EnvNames, MapEnv};
    use credstore::profile::Profile;
    use credstore::store::{FileStore, SealConfig, SealedStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let stored = credstore::stored::StoredCredential::from_credential(
        &Credential::parse(AuthMode::ApiKey, b"sk-library-words-01", "t").unwrap(),
    );
    let p = Profile::default_profile();
    for env in [
        MapEnv::new(),
        MapEnv::new().with("CREDSTORE_SEAL_IDENTITY_FILE", dir.path().join("missing")),
        MapEnv::new().with("CREDSTORE_SEAL_IDENTITY_FILE", home.join("beside.key")),
        MapEnv::new()
            .with("CREDSTORE_SEAL", "systemd-creds")
            .with("CREDSTORE_SEAL_CREDENTIAL", dir.path().join("no.cred")),
    ] {
        let config = SealConfig::from_env(&env, &EnvNames::default(), &home).unwrap();
        let e = SealedStore::new(FileStore::new(&home), config)
            .save(&p, &stored)
            .expect_err("no usable key");
        assert_eq!(e.kind(), ErrorKind::SealKey, "{e}");
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("Fix: "), "{e}");
        assert_no_cli_words(&e.to_string());
    }
}
