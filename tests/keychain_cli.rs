//! The CLI with the keychain as a user meets it: `--backend keychain`,
//! `auto`, `migrate` and `doctor`, each against a private gnome-keyring
//! (see `common/secret_service.rs`), or a bus with no Secret Service, or no
//! bus at all. Fails, never skips, when the daemons are not installed.
// Unix only: a real gnome-keyring Secret Service on a private D-Bus (Linux). The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;
#[path = "common/secret_service.rs"]
mod secret_service;

use common::tokens::TokenBuilder;
use common::{Home, Output, Run};
use secret_service::SecretServiceSession;
use std::time::{Duration, Instant};

/// `credstore` on `home`, talking to `session`'s bus only.
fn cli(home: &Home, session: &SecretServiceSession) -> Run {
    let mut run = home.run();
    for (k, v) in session.env() {
        if k != "HOME" {
            run = run.env(&k, v);
        }
    }
    run
}

/// `credstore` with no session bus at all.
fn cli_without_bus(home: &Home) -> Run {
    home.run()
        .env("XDG_RUNTIME_DIR", home.root().join("no-runtime"))
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
}

fn timed(run: Run) -> (Output, Duration) {
    let start = Instant::now();
    let out = run.output();
    (out, start.elapsed())
}

fn doc(mode: &str, token: &str) -> String {
    format!(r#"{{"auth_mode":"{mode}","{mode}":"{token}"}}"#)
}

#[test]
fn login_to_the_keychain_then_status_and_logout() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    let out = cli(&home, &session)
        .args(["login", "--with-agent-identity", "--backend", "keychain"])
        .stdin(format!("{jwt}\n"))
        .expect(0);
    out.assert_no_secret(&jwt, "login");
    assert!(
        out.stderr.contains("keychain credstore/default"),
        "{}",
        out.stderr
    );
    assert_eq!(
        session.secret_tool_lookup("default").unwrap().trim_end(),
        doc("agent_identity", &jwt)
    );
    assert!(!home.auth_json().exists(), "nothing in a plaintext file");

    // The default backend (auto) finds it in the keychain.
    let out = cli(&home, &session).args(["status", "--json"]).expect(0);
    let status = out.json();
    assert_eq!(status["source"]["kind"], "keychain");
    assert_eq!(status["source"]["detail"], "credstore/default");
    assert!(!out.stderr.contains("plaintext"), "{}", out.stderr);
    let out = cli(&home, &session).args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), jwt);

    cli(&home, &session).args(["logout"]).expect(0);
    assert_eq!(session.secret_tool_lookup("default"), None);
    cli(&home, &session).args(["status"]).expect(1);
}

#[test]
fn saving_to_the_keychain_removes_the_plaintext_copy_and_says_so() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    cli(&home, &session)
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin("sk-first-in-a-file\n")
        .expect(0);
    assert!(home.auth_json().exists());
    for backend in ["keychain", "auto"] {
        if !home.auth_json().exists() {
            cli(&home, &session)
                .args(["login", "--with-api-key", "--backend", "file"])
                .stdin("sk-first-in-a-file\n")
                .expect(0);
        }
        let out = cli(&home, &session)
            .args(["login", "--with-api-key", "--backend", backend])
            .stdin("sk-now-in-the-keychain\n")
            .expect(0);
        assert!(
            out.stderr.contains("Removed the plaintext copy") && out.stderr.contains("auth.json"),
            "{backend}: {}",
            out.stderr
        );
        assert!(!home.auth_json().exists(), "{backend}: file copy removed");
        assert_eq!(
            session.secret_tool_lookup("default").unwrap().trim_end(),
            doc("api_key", "sk-now-in-the-keychain")
        );
    }
}

#[test]
fn auto_without_a_secret_service_warns_before_writing_the_file() {
    let session = SecretServiceSession::bus_only();
    let home = Home::new();
    let (out, took) = timed(
        cli(&home, &session)
            .args(["login", "--with-api-key"])
            .stdin("sk-headless\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(out.stderr.contains("no Secret Service"), "{}", out.stderr);
    assert!(
        out.stderr.contains("plaintext file")
            && out.stderr.contains(&home.auth_json().display().to_string())
            && out.stderr.contains("--backend file"),
        "{}",
        out.stderr
    );
    assert!(home.auth_json().exists());
    let out = cli(&home, &session).args(["status"]).expect(0);
    assert!(out.stderr.contains("plaintext file"), "{}", out.stderr);

    // The warning comes before the write: when the write fails, it has
    // already been printed. (The home itself is usable, so the change
    // lock is taken; the file cannot be written, as a directory holds
    // its name.)
    let blocked = home.root().join("blocked");
    std::fs::create_dir_all(blocked.join("auth.json")).unwrap();
    set_private(&blocked);
    let out = cli(&home, &session)
        .env("CREDSTORE_HOME", &blocked)
        .args(["login", "--with-api-key"])
        .stdin("sk-headless\n")
        .expect(4);
    let warned = out.stderr.find("plaintext file").expect("warning printed");
    let failed = out.stderr.find("error:").expect("error printed");
    assert!(warned < failed, "{}", out.stderr);

    // No session bus at all: the same, and fast.
    let home = Home::new();
    let (out, took) = timed(
        cli_without_bus(&home)
            .args(["login", "--with-api-key"])
            .stdin("sk-x\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("no D-Bus session bus"),
        "{}",
        out.stderr
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn auto_with_a_locked_keychain_fails_and_leaves_the_file_alone() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    cli(&home, &session)
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin("sk-in-file\n")
        .expect(0);
    cli(&home, &session)
        .args(["login", "--with-api-key", "--profile", "kc"])
        .stdin("sk-in-keychain\n")
        .expect(0);
    session.lock_default_collection();
    let before = home.snapshot();

    let out = cli(&home, &session)
        .args(["status", "--profile", "kc"])
        .expect(4);
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
    let out = cli(&home, &session)
        .args(["login", "--with-api-key"])
        .stdin("sk-replacement\n")
        .expect(4);
    assert!(
        !out.stderr.contains("plaintext file:"),
        "no fallback: {}",
        out.stderr
    );
    cli(&home, &session)
        .args(["logout", "--profile", "kc"])
        .expect(4);
    assert_eq!(home.snapshot(), before, "the file was not touched");

    let out = cli(&home, &session).args(["doctor"]).expect(1);
    assert!(out.stdout.contains("locked"), "{}", out.stdout);
    let out = cli(&home, &session)
        .args(["migrate", "--to", "keychain", "--from", "file"])
        .expect(4);
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
    assert_eq!(home.snapshot(), before, "migrate left the source as it was");
}

#[test]
fn a_frozen_keychain_gives_errors_within_the_timeout() {
    let mut session = SecretServiceSession::start();
    let home = Home::new();
    cli(&home, &session)
        .args(["login", "--with-api-key", "--backend", "keychain"])
        .stdin("sk-frozen\n")
        .expect(0);
    session.freeze_daemon();
    for args in [
        vec!["status"],
        vec!["token"],
        vec!["logout"],
        vec!["login", "--with-api-key"],
        vec!["migrate", "--to", "file"],
    ] {
        let (out, took) = timed(
            cli(&home, &session)
                .env("CREDSTORE_KEYCHAIN_TIMEOUT", "1")
                .args(&args)
                .stdin("sk-new\n"),
        );
        assert_eq!(out.code, 4, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("did not answer within 1 s"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(took < Duration::from_millis(2500), "{args:?}: {took:?}");
        assert!(
            !home.auth_json().exists(),
            "{args:?}: no fallback to the file"
        );
    }
    let (out, took) = timed(
        cli(&home, &session)
            .env("CREDSTORE_KEYCHAIN_TIMEOUT", "1")
            .args(["doctor"]),
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("did not answer within 1 s"),
        "{}",
        out.stdout
    );
    assert!(took < Duration::from_millis(2500), "{took:?}");
    session.thaw_daemon();
    let out = cli(&home, &session).args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), "sk-frozen");
}

#[test]
fn migrate_file_to_keychain_to_file() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    cli(&home, &session)
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&jwt)
        .expect(0);

    let out = cli(&home, &session)
        .args(["migrate", "--to", "keychain", "--from", "file"])
        .expect(0);
    out.assert_no_secret(&jwt, "migrate");
    assert!(out.stderr.contains("verified"), "{}", out.stderr);
    assert!(!home.auth_json().exists(), "source removed");
    assert_eq!(
        session.secret_tool_lookup("default").unwrap().trim_end(),
        doc("agent_identity", &jwt)
    );
    let status = cli(&home, &session)
        .args(["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["source"]["kind"], "keychain");

    // Back again, from wherever auto reads it (the keychain).
    let out = cli(&home, &session)
        .args(["migrate", "--to", "file"])
        .expect(0);
    assert!(out.stderr.contains("plaintext file"), "{}", out.stderr);
    assert_eq!(
        session.secret_tool_lookup("default"),
        None,
        "source removed"
    );
    assert_eq!(common::mode(&home.auth_json()), 0o600);
    let status = cli(&home, &session)
        .args(["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["source"]["kind"], "file");
    let out = cli(&home, &session).args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), jwt);

    // Same backend twice is a usage error; nothing stored is exit 1.
    cli(&home, &session)
        .args(["migrate", "--to", "file", "--from", "file"])
        .expect(2);
    cli(&home, &session)
        .args(["migrate", "--to", "file", "--profile", "empty"])
        .expect(1);
}

#[test]
fn migrate_never_moves_an_environment_credential() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    let out = cli(&home, &session)
        .env("CREDSTORE_API_KEY", "sk-from-env-only")
        .args(["migrate", "--to", "keychain", "--from", "file"])
        .expect(1);
    assert!(out.stderr.contains("never migrated"), "{}", out.stderr);
    out.assert_no_secret("sk-from-env-only", "migrate");
    assert!(session.credstore_accounts().is_empty());
    assert!(!home.auth_json().exists());
}

#[test]
fn doctor_reports_each_situation() {
    // Healthy: keychain answers.
    let session = SecretServiceSession::start();
    let home = Home::new();
    let out = cli(&home, &session).args(["doctor"]).expect(0);
    assert!(out.stdout.contains("ok       keychain"), "{}", out.stdout);
    assert!(out.stdout.contains("result: healthy"), "{}", out.stdout);

    // An env credential shadows the stored one: doctor says which wins.
    cli(&home, &session)
        .args(["login", "--with-api-key"])
        .stdin("sk-stored\n")
        .expect(0);
    let out = cli(&home, &session)
        .env("CREDSTORE_API_KEY", "sk-env-wins")
        .args(["doctor"])
        .expect(0);
    out.assert_no_secret("sk-env-wins", "doctor");
    out.assert_no_secret("sk-stored", "doctor");
    assert!(
        out.stdout.contains("CREDSTORE_API_KEY wins"),
        "{}",
        out.stdout
    );

    // A credential file others can read is a problem with its fix.
    let file_home = Home::new();
    cli(&file_home, &session)
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin("sk-file\n")
        .expect(0);
    std::fs::set_permissions(
        file_home.auth_json(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = cli(&file_home, &session)
        .args(["doctor", "--backend", "file"])
        .expect(1);
    assert!(out.stdout.contains("chmod 600"), "{}", out.stdout);

    // No Secret Service: auto is fine (with a warning), keychain is not; fast.
    let bare = SecretServiceSession::bus_only();
    let home = Home::new();
    let (out, took) = timed(cli(&home, &bare).args(["doctor"]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("missing  keychain"), "{}", out.stdout);
    assert!(out.stdout.contains("plaintext"), "{}", out.stdout);
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (out, took) = timed(cli(&home, &bare).args(["doctor", "--backend", "keychain"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("the file backend"), "{}", out.stdout);
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (out, took) = timed(cli_without_bus(&home).args(["doctor", "--backend", "keychain"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("no D-Bus session bus"),
        "{}",
        out.stdout
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn no_keychain_is_a_fast_clear_error_when_selected() {
    let home = Home::new();
    let (out, took) = timed(
        cli_without_bus(&home)
            .args(["login", "--with-api-key", "--backend", "keychain"])
            .stdin("sk-x\n"),
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("no D-Bus session bus"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("the file backend"), "{}", out.stderr);
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Nothing stored: at most the (empty) change lock, which a change
    // takes before it asks the keychain.
    let written = home.snapshot();
    assert!(
        written
            .iter()
            .all(|(path, bytes)| path.ends_with(".lock") && bytes.is_empty()),
        "nothing written but the lock: {:?}",
        written.keys()
    );
}

fn set_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn logout_during_a_migrate_is_one_change_after_the_other() {
    // Before: a logout that ran between migrate's copy to the keychain
    // and its delete of the file printed "Nothing to remove" and left the
    // credential in the keychain. Now each change holds the profile's
    // lock throughout, so logout runs wholly before or after migrate.
    let session = SecretServiceSession::start();
    for round in 0..6 {
        let home = Home::new();
        cli(&home, &session)
            .args(["login", "--with-api-key", "--backend", "file"])
            .stdin(format!("sk-round-{round}"))
            .expect(0);
        let migrate = cli(&home, &session)
            .args(["migrate", "--from", "file", "--to", "keychain"])
            .into_command()
            .spawn()
            .expect("spawn migrate");
        std::thread::sleep(Duration::from_millis(5 * round));
        let logout = cli(&home, &session).args(["logout"]).output();
        let migrated = migrate.wait_with_output().expect("migrate");
        assert_eq!(
            logout.code, 0,
            "round {round}: logout found nothing, migrate said {:?}: {}",
            migrated.status, logout.stderr
        );
        let status = cli(&home, &session).args(["status", "--json"]).expect(1);
        assert_eq!(status.json()["logged_in"], false, "round {round}");
        assert_eq!(session.secret_tool_lookup("default"), None, "round {round}");
        assert!(!home.auth_json().exists(), "round {round}");
    }
}

#[test]
fn profiles_and_logout_all_cover_the_keychain_and_the_file() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    let jwt = TokenBuilder::new().build();
    let key = "sk-proj-abcdefghijklmnopqrstuvwxyz-1234";
    cli(&home, &session)
        .args(["login", "--with-agent-identity", "--backend", "keychain"])
        .stdin(format!("{jwt}\n"))
        .expect(0);
    for profile in ["work", "default"] {
        cli(&home, &session)
            .args(["--profile", profile, "login", "--with-api-key"])
            .args(["--backend", "file"])
            .stdin(key)
            .expect(0);
    }
    // default: in the keychain and in the file; the file login remembered
    // the file backend for it (auto would read the keychain's), so the
    // file's copy is the one used.
    let out = cli(&home, &session).args(["profiles", "--json"]).expect(0);
    out.assert_no_secret(&jwt, "profiles");
    out.assert_no_secret(key, "profiles");
    let doc = out.json();
    let rows: Vec<(String, String, bool)> = doc["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .map(|r| {
            (
                r["profile"].as_str().unwrap_or_default().to_string(),
                r["backend"].as_str().unwrap_or_default().to_string(),
                r["in_use"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("default".to_string(), "file".to_string(), true),
            ("default".to_string(), "keychain".to_string(), false),
            ("work".to_string(), "file".to_string(), true),
        ],
        "{doc}"
    );
    // Forgetting it leaves auto, which reads the keychain's copy.
    cli(&home, &session)
        .args(["config", "unset", "backend"])
        .expect(0);
    let doc = cli(&home, &session)
        .args(["list", "--json"])
        .expect(0)
        .json();
    assert_eq!(doc["profiles"][0]["in_use"], false, "{doc}");
    assert_eq!(doc["profiles"][1]["in_use"], true, "{doc}");

    // logout --all --backend keychain: the keychain only.
    let out = cli(&home, &session)
        .args(["--backend", "keychain", "logout", "--all"])
        .expect(0);
    assert!(
        out.stderr
            .contains("Removed the credential of profile default from keychain credstore/default"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("from file"), "{}", out.stderr);
    cli(&home, &session)
        .args(["--backend", "keychain", "status"])
        .expect(1);
    // logout --all: everything left, each place named.
    let out = cli(&home, &session).args(["logout", "--all"]).expect(0);
    assert_eq!(
        out.stderr.matches("Removed the credential").count(),
        2,
        "{}",
        out.stderr
    );
    cli(&home, &session).args(["profiles"]).expect(1);
    // With a keychain on the host, an empty logout names both places.
    let out = cli(&home, &session).args(["logout"]).expect(1);
    assert!(
        out.stderr.contains("keychain credstore/default or file "),
        "{}",
        out.stderr
    );
}

#[test]
fn a_slow_keychain_call_says_what_it_waits_for_on_a_terminal_only() {
    let mut session = SecretServiceSession::start();
    let home = Home::new();
    cli(&home, &session)
        .args(["login", "--with-api-key", "--backend", "keychain"])
        .stdin("sk-slow\n")
        .expect(0);
    session.freeze_daemon();
    let slow = || {
        cli(&home, &session)
            .env("CREDSTORE_KEYCHAIN_TIMEOUT", "2")
            .env("TERM", "xterm")
            .args(["--backend", "keychain", "status"])
    };
    // A terminal: the spinner with the deadline, erased at the end.
    let (code, shown) = common::on_a_terminal(slow());
    assert_eq!(code, 4, "{shown}");
    assert!(shown.contains("waiting for the keychain: "), "{shown}");
    assert!(shown.contains("(gives up after 2 s)"), "{shown}");
    assert!(shown.contains("\x1b[2K"), "the line is erased: {shown:?}");
    assert!(shown.contains("did not answer within 2 s"), "{shown}");
    // NO_COLOR: one plain line, no animation.
    let (code, shown) = common::on_a_terminal(slow().env("NO_COLOR", "1"));
    assert_eq!(code, 4, "{shown}");
    assert_eq!(
        shown
            .matches("waiting for the keychain (credstore gives up after 2 s)")
            .count(),
        1,
        "{shown}"
    );
    assert!(
        !shown.contains('⠋') && !shown.contains("\x1b[2K"),
        "{shown:?}"
    );
    // Not a terminal: nothing but the error.
    let out = slow().expect(4);
    assert!(
        !out.stderr.contains("waiting for the keychain"),
        "{}",
        out.stderr
    );
    // A fast answer shows nothing, even on a terminal.
    let (_, shown) = common::on_a_terminal(home.run().env("TERM", "xterm").args([
        "--backend",
        "file",
        "profiles",
    ]));
    assert!(!shown.contains("waiting for the"), "{shown}");
}
