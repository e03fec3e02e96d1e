//! Remembered settings (`config.toml`): which backend is used never
//! surprises. `login --backend X` records X for the profile, so a later
//! plain `token` reads where the credential was put, not the keychain's
//! older one; `status` says what chose the backend and warns of a copy in
//! another backend. Flags and variables still win; a broken or
//! others-writable config is refused with its line or its fix, and never
//! quoted.
// Unix only: file modes and a real gnome-keyring Secret Service.
#![cfg(unix)]

mod common;
#[path = "common/secret_service.rs"]
mod secret_service;

use common::{mode, Home, Run};
use secret_service::SecretServiceSession;

fn cli(home: &Home, session: &SecretServiceSession) -> Run {
    let mut run = home.run();
    for (k, v) in session.env() {
        if k != "HOME" {
            run = run.env(&k, v);
        }
    }
    run
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn api_key(tag: &str) -> String {
    format!("sk-test-config-{tag}-0123456789")
}

fn config_path(home: &Home) -> std::path::PathBuf {
    home.store_dir().join("config.toml")
}

#[test]
fn login_with_a_backend_is_remembered_and_a_shadowed_copy_is_named() {
    let session = SecretServiceSession::start();
    let home = Home::new();
    let (a, b) = (api_key("a"), api_key("b"));
    // Key A in the keychain (auto's first choice on a desktop).
    cli(&home, &session)
        .args(["login", "--with-api-key"])
        .stdin(&a)
        .expect(0);
    // Key B explicitly in the file.
    let out = cli(&home, &session)
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin(&b)
        .expect(0);
    assert!(out.stderr.contains("remembered in"), "{}", out.stderr);
    let text = std::fs::read_to_string(config_path(&home)).unwrap();
    assert!(text.contains("backend = \"file\""), "{text}");
    assert!(
        !text.contains(&b) && !text.contains(&a),
        "no secret in config"
    );
    assert_eq!(mode(&config_path(&home)), 0o600);

    // Plain token: the file's B, the one just logged in, not the keychain's A.
    let out = cli(&home, &session).args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), b);

    // status says what chose the backend and that the keychain holds a copy.
    let out = cli(&home, &session).args(["status", "--json"]).expect(0);
    let v = out.json();
    assert_eq!(v["schema"], 2);
    assert_eq!(v["backend"], "file");
    assert_eq!(v["backend_chosen_by"], "config");
    let warnings = v["warnings"].as_array().expect("warnings");
    let shadowed: Vec<_> = warnings
        .iter()
        .filter(|w| w["code"] == "shadowed_copy")
        .collect();
    assert_eq!(shadowed.len(), 1, "{v}");
    assert!(
        shadowed[0]["message"]
            .as_str()
            .unwrap()
            .contains("keychain"),
        "{v}"
    );
    out.assert_no_secret(&a, "status");
    out.assert_no_secret(&b, "status");
    let out = cli(&home, &session).args(["status"]).expect(0);
    assert!(
        out.stdout.contains("file (remembered in config.toml)"),
        "{}",
        out.stdout
    );

    // A flag and the variable still win over the config.
    let out = cli(&home, &session)
        .args(["--backend", "keychain", "token"])
        .expect(0);
    assert_eq!(out.stdout.trim_end(), a);
    let out = cli(&home, &session)
        .env("CREDSTORE_BACKEND", "keychain")
        .args(["status", "--json"])
        .expect(0);
    assert_eq!(out.json()["backend_chosen_by"], "env");

    // `config unset backend` goes back to auto: the keychain's A again.
    cli(&home, &session)
        .args(["config", "unset", "backend"])
        .expect(0);
    let out = cli(&home, &session)
        .args(["config", "get", "backend"])
        .expect(0);
    assert_eq!(out.stdout, "");
    let out = cli(&home, &session).args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), a);
    let out = cli(&home, &session).args(["status", "--json"]).expect(0);
    assert_eq!(out.json()["backend_chosen_by"], "default");
}

#[test]
fn config_set_get_and_profiles_are_separate() {
    let home = Home::new();
    home.run()
        .args(["--profile", "work", "config", "set", "backend", "file"])
        .expect(0);
    let out = home
        .run()
        .args(["--profile", "work", "config", "get", "backend"])
        .expect(0);
    assert_eq!(out.stdout, "file\n");
    let out = home.run().args(["config", "get", "backend"]).expect(0);
    assert_eq!(out.stdout, "", "the default profile has no setting");
    // memory is never remembered; a typo gets a suggestion, not an echo.
    let out = home
        .run()
        .args(["config", "set", "backend", "memory"])
        .expect(2);
    assert!(out.stderr.contains("memory"), "{}", out.stderr);
    let out = home
        .run()
        .args(["config", "set", "backend", "keychian"])
        .expect(2);
    assert!(
        out.stderr.contains("did you mean keychain?"),
        "{}",
        out.stderr
    );
    let out = home.run().args(["--backend", "vualt", "status"]).expect(2);
    assert!(out.stderr.contains("did you mean vault?"), "{}", out.stderr);
    assert!(!out.stderr.contains("vualt"), "{}", out.stderr);
    let out = home.run().args(["config", "path"]).expect(0);
    assert_eq!(
        out.stdout.trim_end(),
        config_path(&home).display().to_string()
    );
    // login --backend memory keeps nothing, so it records nothing.
    home.run()
        .args([
            "--profile",
            "mem",
            "login",
            "--with-api-key",
            "--backend",
            "memory",
        ])
        .stdin(api_key("m"))
        .expect(0);
    let text = std::fs::read_to_string(config_path(&home)).unwrap();
    assert!(!text.contains("mem"), "{text}");
}

#[test]
fn a_broken_or_foreign_writable_config_is_refused_and_never_quoted() {
    let home = Home::new();
    let key = api_key("f");
    home.run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin(&key)
        .expect(0);
    let path = config_path(&home);
    let secret_looking = "sk-live-PASTED-BY-MISTAKE-4242";
    for (text, code, wanted) in [
        (
            format!("[profiles.default]\nbackend = {secret_looking}\n"),
            2,
            "line 2",
        ),
        (
            format!("[profiles.default]\nbackend = \"{secret_looking}\"\n"),
            2,
            "profiles.default.backend",
        ),
        (
            "[profiles.default]\nbakend = \"file\"\n".to_string(),
            2,
            "line 2",
        ),
        // serde quotes what it does not expect; none of it may be shown.
        (format!("profiles = \"{secret_looking}\"\n"), 2, "line 1"),
        (format!("{secret_looking} = 1\n"), 2, "line 1"),
        (
            format!("[profiles.default]\nenv = \"{secret_looking}\"\n"),
            2,
            "line 2",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let out = home.run().args(["token"]).expect(code);
        assert!(out.stderr.contains(wanted), "{wanted}: {}", out.stderr);
        assert!(out.stderr.contains("config.toml"), "{}", out.stderr);
        assert!(!out.stderr.contains(secret_looking), "{}", out.stderr);
        assert!(out.stdout.is_empty());
        // Flags work beside a broken config: it is not read when both the
        // profile and the backend are chosen (its rules pick either).
        let out = home
            .run()
            .args(["--profile", "default", "--backend", "file", "token"])
            .expect(0);
        assert_eq!(out.stdout.trim_end(), key);
        // Nothing was rewritten.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
    // A login that would have to update a broken config fails before it
    // stores anything (both flags given, so the config is not read first).
    std::fs::write(&path, "[profiles.default]\nbakend = \"file\"\n").unwrap();
    let out = home
        .run()
        .args([
            "--profile",
            "default",
            "login",
            "--with-api-key",
            "--backend",
            "file",
        ])
        .stdin(api_key("other"))
        .expect(2);
    assert!(out.stderr.contains("config.toml"), "{}", out.stderr);
    let out = home
        .run()
        .args(["--profile", "default", "--backend", "file", "token"])
        .expect(0);
    assert_eq!(
        out.stdout.trim_end(),
        key,
        "the stored credential is unchanged"
    );
    // Readable by others is fine (no secret in it); writable by others is
    // refused with the fix, and left as it is.
    std::fs::write(&path, "[profiles.default]\nbackend = \"file\"\n").unwrap();
    set_mode(&path, 0o644);
    let out = home.run().args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), key);
    set_mode(&path, 0o666);
    let out = home.run().args(["token"]).expect(4);
    assert!(
        out.stderr.contains("writable by group or others"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    assert_eq!(mode(&path), 0o666);
    // A symlink there is refused too.
    set_mode(&path, 0o600);
    let elsewhere = home.root().join("elsewhere.toml");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let out = home.run().args(["token"]).expect(4);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
}

#[test]
fn man_pages_render_with_man() {
    let home = Home::new();
    let dir = home.root().join("man");
    let out = home
        .run()
        .args(["man", "--dir", dir.to_str().unwrap()])
        .expect(0);
    assert!(out.stderr.contains("manual pages"), "{}", out.stderr);
    for page in [
        "credstore",
        "credstore-login",
        "credstore-config",
        "credstore-token",
    ] {
        let path = dir.join(format!("{page}.1"));
        assert!(path.is_file(), "{} missing", path.display());
        let shown = std::process::Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("`man` is needed to render the pages (Debian package man-db)");
        assert!(shown.status.success(), "man -l {page}: {:?}", shown);
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(text.contains("SYNOPSIS"), "{page}: {text}");
        assert!(text.contains(page), "{page}: {text}");
    }
    // `credstore man` alone prints the main page: `man -l -` reads it.
    let page = home.run().args(["man"]).expect(0);
    assert!(page.stdout.starts_with(".ie") || page.stdout.contains(".TH credstore"));
    assert!(page.stdout.contains("config"), "lists the config command");
}

#[test]
fn a_match_rule_chooses_the_profile_by_directory() {
    let home = Home::new();
    let work = home.root().join("work");
    let deep = work.join("repo").join("src");
    std::fs::create_dir_all(&deep).unwrap();
    let elsewhere = home.root().join("workshop");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(home.store_dir()).unwrap();
    set_mode(&home.store_dir(), 0o700);
    std::fs::write(
        config_path(&home),
        format!(
            "[[match]]\ndir = \"{}/**\"\nprofile = \"work\"\n",
            work.display()
        ),
    )
    .unwrap();
    set_mode(&config_path(&home), 0o600);
    let key = api_key("w");
    home.run()
        .args([
            "--profile",
            "work",
            "login",
            "--with-api-key",
            "--backend",
            "file",
        ])
        .stdin(&key)
        .expect(0);
    // Below the rule's directory: the work profile, said by status.
    let out = home.run().current_dir(&deep).args(["token"]).expect(0);
    assert_eq!(out.stdout.trim_end(), key);
    let out = home.run().current_dir(&deep).args(["status"]).expect(0);
    assert!(
        out.stdout.contains("work (config.toml rule dir = "),
        "{}",
        out.stdout
    );
    // A sibling whose name merely starts the same is not below it.
    let out = home.run().current_dir(&elsewhere).args(["token"]).expect(1);
    assert!(out.stderr.contains("profile default"), "{}", out.stderr);
    // The variable and the flag beat the rule.
    home.run()
        .current_dir(&deep)
        .env("CREDSTORE_PROFILE", "default")
        .args(["token"])
        .expect(1);
    home.run()
        .current_dir(&deep)
        .args(["--profile", "default", "token"])
        .expect(1);
    // A relative dir is refused with the rule's number.
    std::fs::write(
        config_path(&home),
        "[[match]]\ndir = \"work\"\nprofile = \"work\"\n",
    )
    .unwrap();
    let out = home.run().current_dir(&deep).args(["token"]).expect(2);
    assert!(out.stderr.contains("match rule 1"), "{}", out.stderr);
}
