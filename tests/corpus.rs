//! The checked-in corpus of malformed inputs (`tests/corpus/`, made by
//! `tests/corpus/generate.py`): each file is run through its parser — and
//! through the CLI as a user would feed it — and must give the exit code in
//! its name (`<code>-<what>.<ext>`; 0: accepted). The directory names the
//! parser: `tokens/`, `api_keys/`, `documents/` (a document error is 4,
//! its token's 3), `keychain/`. No error may echo content (inputs carrying
//! `corpus-canary` check it). Valid tokens carry a private key, so they
//! are minted here at test time rather than checked in.
// Unix only: Unix file modes for the checked-in files it writes. The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::Home;
use credstore::stored::StoredCredential;
use credstore::{AgentIdentity, ApiKey, Error};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CANARY: &str = "corpus-canary";

fn corpus_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(sub)
}

/// (file name, expected exit code, bytes) for every file of `sub`.
fn files(sub: &str) -> Vec<(String, i32, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(corpus_dir(sub))
        .unwrap_or_else(|e| panic!("tests/corpus/{sub}: {e}"))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let code = name
                .split('-')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("{sub}/{name}: the name must start with `<code>-`"));
            (name, code, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "tests/corpus/{sub} is nearly empty");
    out
}

/// Checks a library result against the expected code, bounded in time.
fn check<T>(what: &str, expected: i32, start: Instant, r: Result<T, Error>) -> Option<T> {
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{what}: took {:?}",
        start.elapsed()
    );
    match r {
        Ok(v) => {
            assert_eq!(expected, 0, "{what}: accepted, expected exit {expected}");
            Some(v)
        }
        Err(e) => {
            assert_eq!(i32::from(e.exit_code()), expected, "{what}: {e}");
            let msg = format!("{e} {e:?}");
            assert!(
                !msg.contains(CANARY),
                "{what}: the error echoes content: {msg}"
            );
            None
        }
    }
}

/// A stored document or keychain value: shape first (4), then the token (3).
fn check_stored(what: &str, expected: i32, r: Result<StoredCredential, Error>) {
    let start = Instant::now();
    match r {
        Ok(doc) => {
            check(what, expected, start, doc.to_credential("loc"));
        }
        Err(e) => {
            check::<()>(what, expected, start, Err(e));
        }
    }
}

#[test]
fn every_corpus_file_gives_its_documented_exit_code() {
    let mut n = 0;
    for (name, code, bytes) in files("tokens") {
        let start = Instant::now();
        check(&name, code, start, AgentIdentity::parse(&bytes, "stdin"));
        n += 1;
    }
    for (name, code, bytes) in files("api_keys") {
        let start = Instant::now();
        check(&name, code, start, ApiKey::parse(&bytes, "stdin"));
        n += 1;
    }
    for (name, code, bytes) in files("documents") {
        check_stored(&name, code, StoredCredential::from_document(&bytes, "loc"));
        n += 1;
    }
    for (name, code, bytes) in files("keychain") {
        check_stored(
            &name,
            code,
            StoredCredential::from_keychain_value(&bytes, "loc"),
        );
        n += 1;
    }
    eprintln!("corpus: {n} files, each gave its documented exit code");
}

#[test]
fn valid_tokens_minted_now_are_accepted_in_every_form() {
    let t = TokenBuilder::new().build();
    for input in [t.clone(), format!("{t}\n"), format!(" \t{t}\r\n")] {
        let start = Instant::now();
        check(
            "minted",
            0,
            start,
            AgentIdentity::parse(input.as_bytes(), "x"),
        );
        check_stored(
            "minted bare keychain value",
            0,
            StoredCredential::from_keychain_value(input.as_bytes(), "loc"),
        );
    }
    let doc = serde_json::json!({"agent_identity": t}).to_string();
    check_stored(
        "minted document",
        0,
        StoredCredential::from_document(doc.as_bytes(), "loc"),
    );
}

/// The same files through the binary: `login` for tokens and API keys
/// (a failed login stores nothing), `token` over a stored document.
#[test]
fn the_cli_gives_the_same_exit_codes() {
    let mut n = 0;
    for (sub, flag) in [
        ("tokens", "--with-agent-identity"),
        ("api_keys", "--with-api-key"),
    ] {
        for (name, code, bytes) in files(sub) {
            let home = Home::new();
            let out = home
                .run()
                .args(["login", flag, "--backend", "file"])
                .stdin(&bytes)
                .output();
            assert_eq!(out.code, code, "{sub}/{name}: {}", out.stderr);
            assert!(!out.stderr.contains(CANARY), "{sub}/{name}: {}", out.stderr);
            if code != 0 {
                assert!(
                    !home.auth_json().exists(),
                    "{sub}/{name}: a failed login stored something"
                );
            }
            n += 1;
        }
    }
    for (name, code, bytes) in files("documents") {
        let home = Home::new();
        let dir = home.store_dir();
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(home.auth_json(), &bytes).unwrap();
        std::fs::set_permissions(home.auth_json(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = home.run().args(["token", "--backend", "file"]).output();
        assert_eq!(out.code, code, "documents/{name}: {}", out.stderr);
        assert!(
            !out.stderr.contains(CANARY),
            "documents/{name}: {}",
            out.stderr
        );
        if code == 0 {
            let doc = StoredCredential::from_document(&bytes, "x").unwrap();
            assert_eq!(out.stdout, format!("{}\n", doc.expose_token()));
        } else {
            assert!(out.stdout.is_empty(), "documents/{name}: {}", out.stdout);
        }
        assert_eq!(
            std::fs::read(home.auth_json()).unwrap(),
            bytes,
            "documents/{name}: reading changed the file"
        );
        n += 1;
    }
    eprintln!("corpus through the CLI: {n} runs, each gave its documented exit code");
}
