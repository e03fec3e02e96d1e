//! What `status` and `login` tell the user beyond the facts: a masked
//! API-key hint, a note when a login replaces another account, and the
//! plaintext warning switched off on a server that chose the file backend.
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::Home;
use serde_json::json;

#[test]
fn status_shows_a_masked_hint_of_a_long_api_key_only() {
    let home = Home::new();
    let key = "sk-proj-abcdefghijklmnopqrstuvwxyz-9876";
    home.run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin(key)
        .expect(0);
    let out = home.run().args(["status"]).expect(0);
    assert!(out.stdout.contains("key       sk-…9876"), "{}", out.stdout);
    out.assert_no_secret(key, "status");
    // No 5 characters of the key in a row beyond the hint's 4.
    for w in key.as_bytes().windows(5) {
        let piece = std::str::from_utf8(w).unwrap();
        assert!(!out.stdout.contains(piece), "{piece} shown: {}", out.stdout);
    }
    // A short key gets no hint at all.
    let short = "sk-short-12345";
    home.run()
        .args([
            "--profile",
            "s",
            "login",
            "--with-api-key",
            "--backend",
            "file",
        ])
        .stdin(short)
        .expect(0);
    let out = home.run().args(["--profile", "s", "status"]).expect(0);
    assert!(!out.stdout.contains("key  "), "{}", out.stdout);
    assert!(!out.stdout.contains("2345"), "{}", out.stdout);
}

#[test]
fn a_login_over_another_account_says_so() {
    let home = Home::new();
    let a = TokenBuilder::new()
        .claim("account_id", json!("acct-first"))
        .build();
    let b = TokenBuilder::new()
        .claim("account_id", json!("acct-second"))
        .build();
    let login = ["login", "--with-agent-identity", "--backend", "file"];
    let out = home.run().args(login).stdin(&a).expect(0);
    assert!(!out.stderr.contains("replaced"), "{}", out.stderr);
    // The same account again (a renewed identity): nothing to say.
    let a2 = TokenBuilder::new()
        .claim("account_id", json!("acct-first"))
        .claim("iat", json!(common::tokens::real_now() - 5))
        .build();
    let out = home.run().args(login).stdin(&a2).expect(0);
    assert!(!out.stderr.contains("replaced"), "{}", out.stderr);
    let out = home.run().args(login).stdin(&b).expect(0);
    assert!(
        out.stderr.contains(
            "replaced the agent identity of account acct-first by the agent identity of account acct-second"
        ),
        "{}",
        out.stderr
    );
    out.assert_no_secret(&a, "login");
    out.assert_no_secret(&b, "login");
    let out = home
        .run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin("sk-test-ux-key-000111222333")
        .expect(0);
    assert!(
        out.stderr
            .contains("replaced the agent identity of account acct-second by an API key"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_plaintext_warning_can_be_switched_off_on_a_server() {
    let home = Home::new();
    let key = "sk-test-ux-server-000111222333";
    let out = home
        .run()
        .env("CREDSTORE_NO_PLAINTEXT_WARNING", "1")
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin(key)
        .expect(0);
    assert!(!out.stderr.contains("plaintext"), "{}", out.stderr);
    let out = home
        .run()
        .env("CREDSTORE_NO_PLAINTEXT_WARNING", "1")
        .args(["--backend", "file", "status", "--json"])
        .expect(0);
    assert!(!out.stdout.contains("plaintext_file"), "{}", out.stdout);
    // Without it, status warns; doctor says it either way.
    let out = home
        .run()
        .args(["--backend", "file", "status", "--json"])
        .expect(0);
    assert!(out.stdout.contains("plaintext_file"), "{}", out.stdout);
    let out = home
        .run()
        .env("CREDSTORE_NO_PLAINTEXT_WARNING", "1")
        .args(["--backend", "file", "doctor"])
        .output();
    assert!(out.stdout.contains("plaintext"), "{}", out.stdout);
    // token never warned about it.
    let out = home.run().args(["--backend", "file", "token"]).expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn the_shadow_guard_names_both_credentials_and_can_deny() {
    let home = Home::new();
    let stored = TokenBuilder::new()
        .claim("account_id", json!("acct-stored"))
        .build();
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&stored)
        .expect(0);
    let ambient = "sk-test-ambient-key-99887766";
    // An ambient API key hides the stored identity: one line naming both.
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", ambient)
        .args(["--backend", "file", "token"])
        .expect(0);
    assert_eq!(out.stdout.trim_end(), ambient);
    let line =
        "CREDSTORE_API_KEY (an API key) is used, not the agent identity of account acct-stored";
    assert!(out.stderr.contains(line), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    out.assert_no_secret(&stored, "token");
    assert!(!out.stderr.contains(ambient));
    // The same account from a variable: nothing to say.
    let same = TokenBuilder::new()
        .claim("account_id", json!("acct-stored"))
        .build();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &same)
        .args(["--backend", "file", "token"])
        .expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // headers runs the same guard.
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", ambient)
        .args(["--backend", "file", "headers"])
        .expect(0);
    assert!(out.stderr.contains(line), "{}", out.stderr);
    // env = "deny": refused, exit 2, with the fix; nothing printed on stdout.
    home.run().args(["config", "set", "env", "deny"]).expect(0);
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", ambient)
        .args(["--backend", "file", "token"])
        .expect(2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("env = \"deny\""), "{}", out.stderr);
    assert!(!out.stderr.contains(ambient));
    // allow: silent.
    home.run().args(["config", "set", "env", "allow"]).expect(0);
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", ambient)
        .args(["--backend", "file", "token"])
        .expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let out = home.run().args(["config", "get", "env"]).expect(0);
    assert_eq!(out.stdout, "allow\n");
}

#[test]
fn deny_refuses_when_the_stored_credential_cannot_be_checked() {
    let home = Home::new();
    home.run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin("sk-test-ux-stored-000111222333")
        .expect(0);
    home.run().args(["config", "set", "env", "deny"]).expect(0);
    // The stored file turns unreadable (corrupt): deny must not take
    // "could not check" for "nothing hidden".
    std::fs::write(home.auth_json(), b"{ not json").unwrap();
    let ambient = "sk-test-ambient-key-44556677";
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", ambient)
        .args(["--backend", "file", "token"])
        .expect(2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("cannot be checked"), "{}", out.stderr);
    assert!(!out.stderr.contains(ambient));
    // warn: used, with a warning that it could not check.
    home.run().args(["config", "set", "env", "warn"]).expect(0);
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", ambient)
        .args(["--backend", "file", "token"])
        .expect(0);
    assert_eq!(out.stdout.trim_end(), ambient);
    assert!(out.stderr.contains("could not check"), "{}", out.stderr);
}

/// What bash's completion of `words` (the last one being completed) offers,
/// through the code `credstore completions bash` prints, run by a real bash
/// in `cwd`.
fn bash_completes(home: &Home, cwd: &std::path::Path, words: &[&str]) -> Vec<String> {
    let bin_dir = home.root().join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    let link = bin_dir.join("credstore");
    if !link.exists() {
        std::os::unix::fs::symlink(common::bin(), &link).expect("symlink");
    }
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    let script = format!(
        "source <(credstore completions bash) || exit 9\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9\n\
         _clap_complete_credstore credstore \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        cword = words.len() - 1
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = home
        .run()
        .into_command_with("bash", &["--norc", "--noprofile", "-c", &script])
        .env("PATH", path)
        .current_dir(cwd)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    got.sort();
    got
}

#[test]
fn completion_offers_backends_and_stored_profiles_never_file_names() {
    let home = Home::new();
    for p in ["work", "ci"] {
        home.run()
            .args([
                "--profile",
                p,
                "login",
                "--with-api-key",
                "--backend",
                "file",
            ])
            .stdin("sk-completion-test-key")
            .expect(0);
    }
    std::fs::write(
        home.store_dir().join("config.toml"),
        "[[match]]\ndir = \"/srv/x\"\nprofile = \"rules\"\n",
    )
    .expect("config");
    std::fs::set_permissions(
        home.store_dir().join("config.toml"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    // A directory full of files that must not be offered for a name.
    let cwd = home.root().join("cwd");
    std::fs::create_dir_all(&cwd).expect("cwd");
    for f in ["work.txt", "file-a", "keys.json"] {
        std::fs::write(cwd.join(f), "x").expect("file");
    }
    let c = |words: &[&str]| bash_completes(&home, &cwd, words);
    assert_eq!(
        c(&["credstore", "--profile", ""]),
        ["ci", "default", "rules", "work"]
    );
    assert_eq!(c(&["credstore", "--profile", "w"]), ["work"]);
    assert_eq!(
        c(&["credstore", "--backend", ""]),
        ["auto", "file", "keychain", "memory", "sealed", "vault"]
    );
    assert_eq!(c(&["credstore", "--backend", "k"]), ["keychain"]);
    assert_eq!(c(&["credstore", "migrate", "--to", "v"]), ["vault"]);
    assert_eq!(c(&["credstore", "config", "set", "env", "d"]), ["deny"]);
    let commands = c(&["credstore", "pro"]);
    assert_eq!(commands, ["profiles"]);
    // Free values and arguments: nothing, least of all the files here.
    assert!(c(&["credstore", "status", ""])
        .iter()
        .all(|w| !w.contains("work.txt")));
    assert!(c(&["credstore", "register-task", "--base-url", ""]).is_empty());
    assert!(c(&["credstore", "assertion", "--task-id", ""]).is_empty());
    // A path option completes paths.
    assert_eq!(c(&["credstore", "token", "--jwks", "key"]), ["keys.json"]);
}

#[test]
fn every_command_has_examples_in_its_long_help() {
    let home = Home::new();
    for command in [
        "login",
        "logout",
        "status",
        "profiles",
        "token",
        "assertion",
        "headers",
        "register-task",
        "agent",
        "exec",
        "migrate",
        "doctor",
        "config",
        "man",
        "completions",
    ] {
        let out = home.run().args([command, "--help"]).expect(0);
        let examples = out
            .stdout
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{command}: no examples: {}", out.stdout));
        assert!(
            examples
                .lines()
                .next()
                .is_some_and(|l| l.contains("credstore")),
            "{command}: {examples}"
        );
        // The short help stays short.
        let short = home.run().args([command, "-h"]).expect(0);
        assert!(!short.stdout.contains("Examples:"), "{command}");
    }
}
