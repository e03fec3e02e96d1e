//! `credstore profiles` (alias `list`), `status --all` and `logout --all` on
//! the file backend with no keychain on the host (the keychain side is in
//! keychain_cli.rs, Vault's in vault.rs).
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::Home;
use serde_json::json;

const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz-9876";

fn login_identity(home: &Home, profile: &str, account: &str) -> String {
    let jwt = TokenBuilder::new()
        .claim("account_id", json!(account))
        .build();
    home.run()
        .args(["--profile", profile, "login", "--with-agent-identity"])
        .args(["--backend", "file"])
        .stdin(format!("{jwt}\n"))
        .expect(0);
    jwt
}

fn login_key(home: &Home, profile: &str) {
    home.run()
        .args(["--profile", profile, "login", "--with-api-key"])
        .args(["--backend", "file"])
        .stdin(KEY)
        .expect(0);
}

#[test]
fn profiles_lists_every_stored_profile_without_secrets() {
    let home = Home::new();
    // Nothing yet: exit 1, and no keychain named on a host that has none.
    let out = home.run().args(["profiles"]).expect(1);
    assert!(
        out.stderr.contains("No credential is stored"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("keychain"), "{}", out.stderr);

    let jwt = login_identity(&home, "default", "acct-one");
    login_key(&home, "work");
    // A file that is not a credential file is not a profile.
    std::fs::write(home.store_dir().join("notes.txt"), "x").expect("write");

    let out = home.run().args(["profiles"]).expect(0);
    out.assert_no_secret(&jwt, "profiles");
    out.assert_no_secret(KEY, "profiles");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].contains("PROFILE") && lines[0].contains("BACKEND"));
    assert!(lines[1].starts_with("* default"), "{}", lines[1]);
    assert!(lines[1].contains("agent identity") && lines[1].contains("acct-one"));
    assert!(lines[1].contains("in use"), "{}", lines[1]);
    assert!(lines[2].starts_with("  work"), "{}", lines[2]);
    assert!(lines[2].contains("API key") && lines[2].contains("sk-…9876"));

    // `list` is the same command; --json has the documented fields.
    let out = home.run().args(["list", "--json"]).expect(0);
    out.assert_no_secret(&jwt, "list --json");
    out.assert_no_secret(KEY, "list --json");
    let doc = out.json();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["current_profile"], "default");
    let listed = doc["profiles"].as_array().expect("profiles");
    assert_eq!(listed.len(), 2, "{doc}");
    assert_eq!(listed[0]["profile"], "default");
    assert_eq!(listed[0]["backend"], "file");
    assert_eq!(listed[0]["auth_mode"], "agent_identity");
    assert_eq!(listed[0]["account_id"], "acct-one");
    assert_eq!(listed[0]["in_use"], true);
    assert!(listed[0]["expires_in_seconds"].as_i64().expect("secs") > 0);
    assert_eq!(listed[1]["profile"], "work");
    assert_eq!(listed[1]["auth_mode"], "api_key");
    assert_eq!(listed[1]["key_hint"], "sk-…9876");
    assert!(listed[1]["expires_at"].is_null());
    assert_eq!(doc["unreachable"], json!([]));
}

#[test]
fn an_unreadable_entry_is_listed_with_its_error_and_exit_4() {
    let home = Home::new();
    login_key(&home, "good");
    let bad = home.store_dir().join("auth.broken.json");
    std::fs::write(&bad, "{ not json").expect("write");
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let before = home.snapshot();
    let out = home.run().args(["profiles"]).expect(4);
    assert!(out.stdout.contains("good"), "{}", out.stdout);
    assert!(
        out.stdout.contains("broken") && out.stdout.contains("unreadable"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("profile broken in file"),
        "{}",
        out.stderr
    );
    let doc = home.run().args(["profiles", "--json"]).expect(4).json();
    let broken = &doc["profiles"][0];
    assert_eq!(broken["profile"], "broken");
    assert!(broken["error"].as_str().is_some_and(|e| !e.is_empty()));
    // Listing changed nothing.
    assert_eq!(home.snapshot(), before);
}

#[test]
fn status_all_reports_each_profile_and_the_worst_exit_code() {
    let home = Home::new();
    login_identity(&home, "default", "acct-one");
    login_key(&home, "work");
    let out = home.run().args(["status", "--all"]).expect(0);
    out.assert_no_secret(KEY, "status --all");
    assert_eq!(
        out.stdout.matches("Logged in:").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("profile   default"));
    assert!(out.stdout.contains("profile   work"));
    let doc = home
        .run()
        .args(["status", "--all", "--json"])
        .expect(0)
        .json();
    let all = doc["profiles"].as_array().expect("profiles");
    assert_eq!(all.len(), 2, "{doc}");
    assert_eq!(all[1]["profile"], "work");
    assert_eq!(all[1]["auth_mode"], "api_key");

    // An expired identity in one profile makes the whole answer 1.
    let expired = TokenBuilder::new()
        .claim("exp", json!(common::tokens::real_now() - 3600))
        .build();
    std::fs::write(
        home.store_dir().join("auth.old.json"),
        format!(r#"{{"auth_mode":"agent_identity","agent_identity":"{expired}"}}"#),
    )
    .expect("write");
    std::fs::set_permissions(
        home.store_dir().join("auth.old.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let out = home.run().args(["status", "--all"]).output();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("has expired"), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("profile   ").count(),
        3,
        "{}",
        out.stdout
    );
}

#[test]
fn logout_all_removes_every_profile_and_names_each_place() {
    let home = Home::new();
    login_identity(&home, "default", "acct-one");
    login_key(&home, "work");
    login_key(&home, "ci");
    let out = home.run().args(["logout", "--all"]).expect(0);
    for p in ["default", "ci", "work"] {
        assert!(
            out.stderr
                .contains(&format!("Removed the credential of profile {p} from file ")),
            "{p}: {}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("keychain"), "{}", out.stderr);
    let left: Vec<String> = common::dir_names(&home.store_dir())
        .into_iter()
        .filter(|n| n.starts_with("auth"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let out = home.run().args(["logout", "--all"]).expect(1);
    assert!(out.stderr.contains("Nothing to remove"), "{}", out.stderr);
    // No keychain on this host: none is named, by either logout.
    assert!(!out.stderr.contains("keychain"), "{}", out.stderr);
    let out = home.run().args(["logout"]).expect(1);
    assert!(
        out.stderr.contains("Nothing to remove") && out.stderr.contains("auth.json"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("keychain"), "{}", out.stderr);
    // An environment credential is named and left alone.
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", KEY)
        .args(["logout", "--all"])
        .expect(1);
    assert!(
        out.stderr.contains("CREDSTORE_API_KEY is still set"),
        "{}",
        out.stderr
    );
    out.assert_no_secret(KEY, "logout --all");
}

#[test]
fn logout_all_with_a_backend_stays_inside_it() {
    let home = Home::new();
    login_key(&home, "work");
    // The memory backend holds nothing between runs: nothing of the
    // file's is touched.
    home.run()
        .args(["--backend", "memory", "logout", "--all"])
        .expect(1);
    assert!(home.store_dir().join("auth.work.json").exists());
    home.run()
        .args(["--backend", "file", "logout", "--all"])
        .expect(0);
    assert!(!home.store_dir().join("auth.work.json").exists());
}
