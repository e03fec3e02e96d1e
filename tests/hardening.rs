//! Hardening, round 2: one test (at least) per defect found by attacking
//! `main` and by a new user's first hour (issue 8). Each would fail on the
//! code before the fix. The Vault items live in `tests/vault.rs`, the
//! keychain serialization in `tests/keychain_cli.rs`.
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::Home;
use serde_json::json;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

const LOGIN_AGENT: [&str; 4] = ["login", "--with-agent-identity", "--backend", "file"];
const LOGIN_KEY: [&str; 4] = ["login", "--with-api-key", "--backend", "file"];

fn not_utf8() -> &'static OsStr {
    OsStr::from_bytes(b"sk-\xff\xfe-not-unicode")
}

// 1. Header injection through claims -------------------------------------

#[test]
fn claims_that_would_forge_header_lines_are_refused_everywhere() {
    let home = Home::new();
    for (claim, value) in [
        ("account_id", "acct-1\r\nAuthorization: Bearer forged"),
        ("account_id", "acct-1\nX-Evil: 1"),
        ("account_id", "acct\u{0}1"),
        ("account_id", "acct\u{7f}1"),
        ("account_id", " acct-1"),
        ("agent_runtime_id", "rt-1\r\nHost: evil.example"),
        ("agent_runtime_id", "rt\u{202e}1"),
    ] {
        let jwt = TokenBuilder::new().claim(claim, json!(value)).build();
        let out = home.run().args(LOGIN_AGENT).stdin(&jwt).expect(3);
        assert!(
            out.stderr.contains(claim),
            "names the claim: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("forged") && !out.stderr.contains("evil"),
            "does not echo the claim: {}",
            out.stderr
        );
        assert!(home.snapshot().is_empty(), "nothing stored for {value:?}");
        // From the environment, `headers` refuses it as well: no forged
        // line reaches stdout.
        let out = home
            .run()
            .args(["headers", "--task-id", "t-1"])
            .env("CREDSTORE_AGENT_IDENTITY", &jwt)
            .expect(3);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    // A clean identity gives exactly three lines, one Authorization.
    let jwt = TokenBuilder::new()
        .claim("chatgpt_account_is_fedramp", json!(true))
        .build();
    let out = home
        .run()
        .args(["headers", "--task-id", "t-1"])
        .env("CREDSTORE_AGENT_IDENTITY", &jwt)
        .expect(0);
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    assert_eq!(out.stdout.matches("Authorization:").count(), 1);
}

// 3. Non-Unicode environment values ---------------------------------------

#[test]
fn non_unicode_credential_and_name_variables_are_usage_errors() {
    let home = Home::new();
    home.run().args(LOGIN_KEY).stdin("sk-stored-one").expect(0);
    for var in [
        "CREDSTORE_API_KEY",
        "CREDSTORE_AGENT_IDENTITY",
        "CREDSTORE_PROFILE",
        "CREDSTORE_BACKEND",
        "CREDSTORE_KEYCHAIN_TIMEOUT",
    ] {
        // A flag would win over the variable itself (flag > env).
        let args: &[&str] = if var == "CREDSTORE_BACKEND" {
            &["token"]
        } else {
            &["token", "--backend", "file"]
        };
        let out = home.run().args(args).env(var, not_utf8()).expect(2);
        assert!(out.stderr.contains(var), "names {var}: {}", out.stderr);
        assert!(
            !out.stdout.contains("sk-stored-one"),
            "{var}: no fallback to the stored credential"
        );
    }
}

#[test]
fn non_unicode_path_variables_are_raw_paths() {
    let home = Home::new();
    // A home whose name is not Unicode is still the home.
    let odd_home = home.root().join(OsStr::from_bytes(b"store-\xff"));
    home.run()
        .args(LOGIN_KEY)
        .env("CREDSTORE_HOME", &odd_home)
        .stdin("sk-in-odd-home")
        .expect(0);
    assert!(odd_home.join("auth.json").is_file());
    let out = home
        .run()
        .args(["token", "--backend", "file"])
        .env("CREDSTORE_HOME", &odd_home)
        .expect(0);
    assert_eq!(out.stdout, "sk-in-odd-home\n");

    // A _FILE variable naming a non-Unicode path is read from that path.
    let key_file = home.root().join(OsStr::from_bytes(b"key-\xfe.txt"));
    std::fs::write(&key_file, "sk-from-odd-file\n").unwrap();
    let out = home
        .run()
        .args(["token", "--backend", "file"])
        .env("CREDSTORE_API_KEY_FILE", &key_file)
        .expect(0);
    assert_eq!(out.stdout, "sk-from-odd-file\n");
}

#[test]
fn a_non_unicode_jwks_path_still_verifies() {
    // Before: the JWKS variable was "unset" when not Unicode, so
    // verification was silently off and any token was accepted.
    let home = Home::new();
    let jwks_path = home.root().join(OsStr::from_bytes(b"jwks-\xff.json"));
    let other = TokenBuilder::new();
    let x = base64_url(other.verifying_key().as_bytes());
    std::fs::write(
        &jwks_path,
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": x}]}).to_string(),
    )
    .unwrap();
    // Signed by a key that is not in the JWKS.
    let jwt = TokenBuilder::new().header_field("kid", json!("k1")).build();
    let out = home
        .run()
        .args(["status"])
        .env("CREDSTORE_JWKS", &jwks_path)
        .env("CREDSTORE_AGENT_IDENTITY", &jwt)
        .expect(3);
    assert!(out.stderr.contains("signature"), "{}", out.stderr);
    // A non-Unicode path that does not exist is an error naming the
    // variable, never "no JWKS".
    let out = home
        .run()
        .args(["status"])
        .env(
            "CREDSTORE_JWKS",
            home.root().join(OsStr::from_bytes(b"no-\xff")),
        )
        .env("CREDSTORE_AGENT_IDENTITY", &jwt)
        .expect(2);
    assert!(out.stderr.contains("CREDSTORE_JWKS"), "{}", out.stderr);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// 4. Weak Ed25519 keys and `crit` ------------------------------------------

#[test]
fn a_jwks_with_a_weak_ed25519_key_is_refused_and_no_forgery_verifies() {
    let home = Home::new();
    // The identity point (small order): with it, R = identity and S = 0
    // "verify" under the non-strict equation for every message.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let jwks_path = home.root().join("weak.json");
    std::fs::write(
        &jwks_path,
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": base64_url(&weak)}]})
            .to_string(),
    )
    .unwrap();
    let mut forged_sig = [0u8; 64];
    forged_sig[0] = 1; // R = identity, S = 0
    let sig = forged_sig;
    let forged = TokenBuilder::new()
        .signed_by(
            "EdDSA",
            Some("weak"),
            std::sync::Arc::new(move |_input: &[u8]| sig.to_vec()),
        )
        .build();
    let out = home
        .run()
        .args(["status", "--jwks"])
        .args([&jwks_path])
        .env("CREDSTORE_AGENT_IDENTITY", &forged)
        .output();
    assert_ne!(
        out.code, 0,
        "a forged token must not verify: {}",
        out.stderr
    );
    assert!(out.stderr.contains("weak"), "{}", out.stderr);
}

#[test]
fn a_token_with_crit_is_refused() {
    let home = Home::new();
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let jwt = TokenBuilder::new().header_field("crit", crit).build();
        let out = home.run().args(LOGIN_AGENT).stdin(&jwt).expect(3);
        assert!(out.stderr.contains("crit"), "{}", out.stderr);
        assert!(home.snapshot().is_empty());
    }
}

// 5. An agent identity is not an API key -----------------------------------

#[test]
fn an_agent_identity_is_refused_where_an_api_key_is_expected() {
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    let out = home.run().args(LOGIN_KEY).stdin(&jwt).expect(3);
    assert!(
        out.stderr.contains("--with-agent-identity"),
        "says what to use: {}",
        out.stderr
    );
    out.assert_no_secret(&jwt, "login");
    assert!(home.snapshot().is_empty());
    let out = home
        .run()
        .args(["headers"])
        .env("CREDSTORE_API_KEY", &jwt)
        .expect(3);
    assert!(
        out.stderr.contains("CREDSTORE_AGENT_IDENTITY"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "no Bearer line carries the key");
}

// 8, 9. The terminal: wrapped pastes and long tokens -----------------------

/// Runs `shell_line` under `script` (a real pseudo-terminal), typing
/// `input` once the hidden prompt shows; returns (exit success, screen).
fn on_a_terminal(home: &Home, shell_line: &str, input: &[u8]) -> (bool, String) {
    on_a_terminal_then(home, shell_line, input, None)
}

/// Like [`on_a_terminal`], then types `then.1` once `then.0` shows.
fn on_a_terminal_then(
    home: &Home,
    shell_line: &str,
    input: &[u8],
    then: Option<(&'static str, &[u8])>,
) -> (bool, String) {
    use std::io::{Read, Write};
    let inner = home.run().into_command();
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", shell_line, "/dev/null"])
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("this test needs `script` (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let second_marker = then.map(|(m, _)| m);
    let reader = std::thread::spawn(move || {
        let mut screen = Vec::new();
        let mut buf = [0u8; 4096];
        let mut markers = vec!["input is hidden"];
        markers.extend(second_marker);
        let mut next = 0;
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
            while next < markers.len() && String::from_utf8_lossy(&screen).contains(markers[next]) {
                next += 1;
                let _ = tx.send(());
            }
        }
        String::from_utf8_lossy(&screen).into_owned()
    });
    let prompted = rx.recv_timeout(Duration::from_secs(15)).is_ok();
    if prompted {
        // One write, as a terminal delivers a paste.
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
        if let Some((_, more)) = then {
            if rx.recv_timeout(Duration::from_secs(15)).is_ok() {
                stdin.write_all(more).unwrap();
                stdin.flush().unwrap();
            }
        }
    }
    // Keep the terminal open until the command is done with it.
    let status = child.wait().unwrap();
    drop(stdin);
    let screen = reader.join().unwrap();
    assert!(prompted, "no prompt within 15 s: {screen}");
    (status.success(), screen)
}

#[test]
fn a_wrapped_paste_is_refused_and_its_rest_never_reaches_the_shell() {
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    let (first, rest) = jwt.split_at(jwt.len() / 2);
    // After credstore, a shell `read` stands for the user's shell: it gets
    // whatever credstore left in the terminal's input queue.
    // Once credstore is done, one Enter is typed: `read` then gets the
    // rest of the paste if it was left in the queue, else an empty line.
    let line = format!(
        "{} login --with-agent-identity --backend file; echo EXIT=$?; \
         read left; echo LEFT=[$left]",
        common::bin()
    );
    let paste = format!("{first}\r{rest}\r");
    let (_, screen) = on_a_terminal_then(&home, &line, paste.as_bytes(), Some(("EXIT=", b"\r")));
    assert!(screen.contains("EXIT=3"), "refused: {screen}");
    assert!(screen.contains("more than one line"), "{screen}");
    assert!(
        screen.contains("LEFT=[]"),
        "the rest was left for the shell: {screen}"
    );
    assert!(!screen.contains(rest), "the rest was shown: {screen}");
    assert!(home.snapshot().is_empty(), "nothing stored");
}

#[test]
fn a_token_longer_than_the_terminal_line_limit_is_stored_whole() {
    let home = Home::new();
    // 4097+ characters: past the kernel's 4095-byte canonical line.
    let jwt = TokenBuilder::new()
        .claim("padding", json!("p".repeat(4200)))
        .build();
    assert!(jwt.len() > 4097);
    let line = format!(
        "{} login --with-agent-identity --backend file",
        common::bin()
    );
    let (ok, screen) = on_a_terminal(&home, &line, format!("{jwt}\r").as_bytes());
    assert!(ok, "{screen}");
    let doc = std::fs::read_to_string(home.auth_json()).unwrap();
    assert!(doc.contains(&jwt), "stored whole ({} bytes)", jwt.len());
}

// 10. A FIFO at a _FILE path -------------------------------------------------

#[test]
fn a_fifo_at_a_file_variable_is_refused_at_once() {
    let home = Home::new();
    let fifo = home.root().join("key.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    for var in ["CREDSTORE_API_KEY_FILE", "CREDSTORE_AGENT_IDENTITY_FILE"] {
        let mut cmd = home
            .run()
            .args(["token", "--backend", "file"])
            .env(var, &fifo)
            .into_command();
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let mut code = None;
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(s) = child.try_wait().unwrap() {
                code = s.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if code.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
        assert_eq!(code, Some(2), "{var}: refused, not a hang");
    }
}

// 11. The home's ancestors ----------------------------------------------------

#[test]
fn a_home_under_a_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let open_dir = home.root().join("shared");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let store = open_dir.join("store");
    let out = home
        .run()
        .args(LOGIN_KEY)
        .env("CREDSTORE_HOME", &store)
        .stdin("sk-never-written")
        .expect(4);
    assert!(
        out.stderr.contains(&*open_dir.to_string_lossy()),
        "names the directory: {}",
        out.stderr
    );
    assert!(!store.exists(), "nothing created under it");
    // Sticky (/tmp-style) is fine when the home itself is ours.
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    home.run()
        .args(LOGIN_KEY)
        .env("CREDSTORE_HOME", &store)
        .stdin("sk-written")
        .expect(0);
}

#[test]
fn a_home_under_another_users_directory_is_refused() {
    // Needs root to hand a directory to another user; CI runs as root.
    if !is_root() {
        eprintln!("skipped: needs root to chown a directory to another user");
        return;
    }
    let home = Home::new();
    let theirs = home.root().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let store = theirs.join("store");
    let out = home
        .run()
        .args(LOGIN_KEY)
        .env("CREDSTORE_HOME", &store)
        .stdin("sk-never-written")
        .expect(4);
    assert!(out.stderr.contains("owned by"), "{}", out.stderr);
    assert!(!store.exists());
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

// 12. Hidden Unicode characters ------------------------------------------------

#[test]
fn hidden_characters_never_reach_the_terminal_raw() {
    let home = Home::new();
    // Format characters that a hand-written list missed, by category Cf.
    let hidden = ['\u{061C}', '\u{00AD}', '\u{E0041}', '\u{2066}', '\u{FEFF}'];
    let email: String = format!("a{}b@example.com", hidden.iter().collect::<String>());
    let jwt = TokenBuilder::new().claim("email", json!(email)).build();
    let out = home.run().args(LOGIN_AGENT).stdin(&jwt).expect(0);
    for c in hidden {
        assert!(!out.stderr.contains(c), "login shows {c:?} raw");
    }
    let out = home.run().args(["status", "--backend", "file"]).expect(0);
    for c in hidden {
        assert!(!out.stdout.contains(c), "status shows {c:?} raw");
    }
    assert!(out.stdout.contains("u{61c}"), "escaped: {}", out.stdout);
}

#[test]
fn an_api_key_with_hidden_characters_is_refused() {
    let home = Home::new();
    for key in [
        "sk-\u{2066}abc\u{2069}",
        "sk-\u{200B}x",
        "sk-\u{E0041}x",
        "sk-a\u{85}b",
    ] {
        let out = home.run().args(LOGIN_KEY).stdin(key).expect(3);
        assert!(
            out.stderr.contains("U+"),
            "names the character: {}",
            out.stderr
        );
        assert!(home.snapshot().is_empty());
    }
}

// 13. A failing stdout --------------------------------------------------------

#[test]
fn a_full_or_closed_stdout_is_exit_4_never_a_panic() {
    let home = Home::new();
    home.run().args(LOGIN_KEY).stdin("sk-for-stdout").expect(0);
    for args in [
        &["completions", "bash"][..],
        &["token", "--backend", "file"],
        &["status", "--backend", "file"],
        &["--help"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = home
            .run()
            .args(args)
            .into_command()
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?} >/dev/full: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A closed stdout: the shell's `>&-`.
    for args in ["completions bash", "token --backend file"] {
        let inner = home.run().into_command();
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("exec {} {args} >&-", common::bin())])
            .env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args} >&-: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
