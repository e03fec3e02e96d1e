//! The sealed backend (issue "The sealed backend"): the conformance suite,
//! interop both ways with the real `age` binary (Debian's `age`), the
//! systemd-creds host-key round trip, every key failure (wrong, missing,
//! loose, beside the data), tampering and truncation at every byte, a
//! failed save that leaves the old file, migrate in both directions, and
//! `auto` left as it was.
// Unix only: Unix modes, the age and systemd-creds binaries. The Windows
// side is compiled and linted by scripts/check-cross.
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::{mode, Home, SealKey};
use credstore::credential::{AuthMode, Credential};
use credstore::env::{EnvNames, MapEnv};
use credstore::profile::Profile;
use credstore::store::{FileStore, SealConfig, SealedStore, Store};
use credstore::stored::StoredCredential;
use credstore::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

const LOGIN: [&str; 4] = ["login", "--with-agent-identity", "--backend", "sealed"];

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn stored(mode: AuthMode, token: &str) -> StoredCredential {
    StoredCredential::from_credential(&Credential::parse(mode, token.as_bytes(), "t").unwrap())
}

fn store_with(home: &Home, env: &MapEnv) -> SealedStore {
    let config = SealConfig::from_env(env, &EnvNames::default(), &home.store_dir()).unwrap();
    SealedStore::new(FileStore::new(home.store_dir()), config)
}

fn store_for(home: &Home, key: &SealKey) -> SealedStore {
    store_with(
        home,
        &MapEnv::new().with("CREDSTORE_SEAL_IDENTITY_FILE", &key.path),
    )
}

/// The `age` binary, or a loud failure: scripts/test-all installs it.
fn age_bin() -> &'static str {
    let ok = Command::new("age")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the `age` binary is missing: `apt-get install -y age` (scripts/test-all installs it)"
    );
    "age"
}

fn run_age(args: &[&std::ffi::OsStr], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(age_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn age");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sealed_store_conforms() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    common::conformance::run_suite(&store_for(&home, &key), "sealed-");
    // Every file it wrote was private, and none holds a token in clear.
    assert_eq!(mode(&home.store_dir()), 0o700);
    for name in common::dir_names(&home.store_dir()) {
        let p = home.store_dir().join(&name);
        assert_eq!(mode(&p), 0o600, "{name}");
    }
}

#[test]
fn credstore_writes_what_age_decrypts_and_reads_what_age_encrypts() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let token = TokenBuilder::new().build();
    let out = home
        .run()
        .seal_key(&key)
        .args(LOGIN)
        .stdin(&token)
        .expect(0);
    out.assert_no_secret(&token, "login --backend sealed");
    let sealed = std::fs::read(home.sealed_json()).unwrap();
    assert!(
        sealed.starts_with(b"age-encryption.org/v1\n"),
        "binary age v1"
    );
    assert!(!String::from_utf8_lossy(&sealed).contains(&token[..40]));
    assert_eq!(mode(&home.sealed_json()), 0o600);
    assert!(!home.auth_json().exists(), "no plaintext file");

    // age -d -i KEY FILE gives the token-only document.
    let (ok, plain, err) = run_age(
        &[
            "-d".as_ref(),
            "-i".as_ref(),
            key.path.as_os_str(),
            home.sealed_json().as_os_str(),
        ],
        b"",
    );
    assert!(ok, "age -d failed: {err}");
    let doc = format!("{{\"auth_mode\":\"agent_identity\",\"agent_identity\":\"{token}\"}}\n");
    assert_eq!(String::from_utf8(plain).unwrap(), doc);

    // age -e to our public key writes what credstore reads, for another
    // profile (and an API key, hand-written without auth_mode).
    let out_path = home.store_dir().join("auth.work.json.age");
    let (ok, _, err) = run_age(
        &[
            "-e".as_ref(),
            "-r".as_ref(),
            key.public.as_ref(),
            "-o".as_ref(),
            out_path.as_os_str(),
        ],
        b"{\"api_key\":\"sk-from-age-binary-1\"}\n",
    );
    assert!(ok, "age -e failed: {err}");
    chmod(&out_path, 0o600);
    let out = home
        .run()
        .seal_key(&key)
        .args(["token", "--backend", "sealed", "--profile", "work"])
        .expect(0);
    assert_eq!(out.stdout, "sk-from-age-binary-1\n");
    // The identity file keygen wrote is one age-keygen reads.
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&key.path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), key.public);

    // status: encrypted at rest, no plaintext warning.
    let out = home.run().seal_key(&key).args(["status"]).expect(0);
    assert!(
        out.stdout.contains(&format!(
            "encrypted at rest (age, 1 recipient, key from CREDSTORE_SEAL_IDENTITY_FILE ({}))",
            key.path.display()
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("plaintext"), "{}", out.stderr);
    let json = home
        .run()
        .seal_key(&key)
        .args(["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(json["source"]["kind"], "sealed");
    assert_eq!(json["backend"], "sealed");
    assert_eq!(json["backend_chosen_by"], "config", "login remembered it");
    assert!(
        json["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["code"] != "plaintext_file"),
        "{json}"
    );
}

#[test]
fn extra_recipients_open_the_same_file() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let fleet = SealKey::new(&home, "fleet.txt");
    let recovery = SealKey::new(&home, "recovery.txt");
    let recipients = format!("{}, {}", fleet.public, recovery.public);
    home.run()
        .seal_key(&key)
        .env("CREDSTORE_SEAL_RECIPIENTS", &recipients)
        .args(["login", "--with-api-key", "--backend", "sealed"])
        .stdin("sk-fleet-test-0001")
        .expect(0);
    for k in [&key, &fleet, &recovery] {
        let out = home
            .run()
            .seal_key(k)
            .args(["token", "--backend", "sealed"])
            .expect(0);
        assert_eq!(out.stdout, "sk-fleet-test-0001\n");
        let (ok, plain, err) = run_age(
            &[
                "-d".as_ref(),
                "-i".as_ref(),
                k.path.as_os_str(),
                home.sealed_json().as_os_str(),
            ],
            b"",
        );
        assert!(ok, "{err}");
        assert!(String::from_utf8_lossy(&plain).contains("sk-fleet-test-0001"));
    }
    let out = home.run().seal_key(&recovery).args(["status"]).expect(0);
    assert!(out.stdout.contains("age, 3 recipients"), "{}", out.stdout);
    // A recipient that is not a public key is a usage error, unquoted.
    let out = home
        .run()
        .seal_key(&key)
        .env(
            "CREDSTORE_SEAL_RECIPIENTS",
            "AGE-SECRET-KEY-1NOTAPUBLICKEYXXXXXXXX",
        )
        .args(["token", "--backend", "sealed"])
        .expect(2);
    assert!(
        out.stderr.contains("CREDSTORE_SEAL_RECIPIENTS: entry 1"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("NOTAPUBLICKEY"), "{}", out.stderr);
}

#[test]
fn key_failures_are_exit_4_naming_the_file_and_never_change_it() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let other = SealKey::new(&home, "other.txt");
    let token = TokenBuilder::new().build();
    home.run()
        .seal_key(&key)
        .args(LOGIN)
        .stdin(&token)
        .expect(0);
    let before = std::fs::read(home.sealed_json()).unwrap();
    let sealed = home.sealed_json().display().to_string();
    let check = |out: &common::Output, what: &str, names: &str, says: &str| {
        assert!(out.stderr.contains(names), "{what}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{what}: {}", out.stderr);
        assert!(out.stderr.contains("Fix: "), "{what}: {}", out.stderr);
        out.assert_no_secret(&token, what);
        assert_eq!(
            std::fs::read(home.sealed_json()).unwrap(),
            before,
            "{what}: changed"
        );
    };
    let token_cmd = ["token", "--backend", "sealed"];

    // Wrong key.
    let out = home.run().seal_key(&other).args(token_cmd).expect(4);
    check(&out, "wrong key", &sealed, "opens it");
    // Missing key: no source, and a path where there is none.
    let out = home.run().args(token_cmd).expect(4);
    check(&out, "no key", &sealed, "CREDSTORE_SEAL_IDENTITY_FILE");
    let gone = home.root().join("keys/gone.txt");
    let out = home
        .run()
        .env("CREDSTORE_SEAL_IDENTITY_FILE", &gone)
        .args(token_cmd)
        .expect(4);
    check(
        &out,
        "missing key file",
        &gone.display().to_string(),
        "does not exist",
    );
    // Loose permissions, group or other, read or write.
    for m in [0o640, 0o604, 0o620, 0o644] {
        chmod(&key.path, m);
        let out = home.run().seal_key(&key).args(token_cmd).expect(4);
        check(
            &out,
            "loose key",
            &key.path.display().to_string(),
            "chmod 600",
        );
        // And a save with it: nothing written.
        let out = home
            .run()
            .seal_key(&key)
            .args(LOGIN)
            .stdin(&token)
            .expect(4);
        check(
            &out,
            "login with a loose key",
            &key.path.display().to_string(),
            "group or others",
        );
    }
    chmod(&key.path, 0o600);
    // The key beside the data (a copy in the home, or a link from it).
    let beside = home.store_dir().join("id.txt");
    std::fs::copy(&key.path, &beside).unwrap();
    chmod(&beside, 0o600);
    let out = home
        .run()
        .env("CREDSTORE_SEAL_IDENTITY_FILE", &beside)
        .args(token_cmd)
        .expect(4);
    check(
        &out,
        "key in the home",
        &beside.display().to_string(),
        "credential directory",
    );
    std::fs::remove_file(&beside).unwrap();
    let outside_link = home.root().join("keys/link.txt");
    std::os::unix::fs::symlink(&beside, &outside_link).unwrap();
    std::fs::copy(&key.path, &beside).unwrap();
    chmod(&beside, 0o600);
    let out = home
        .run()
        .env("CREDSTORE_SEAL_IDENTITY_FILE", &outside_link)
        .args(token_cmd)
        .expect(4);
    check(
        &out,
        "link to a key in the home",
        "credential directory",
        "beside",
    );
    std::fs::remove_file(&beside).unwrap();
    // A file that is not an identity: the line is named, not quoted.
    let junk = home.root().join("keys/junk.txt");
    std::fs::write(&junk, "# comment\nsk-not-an-identity-SECRETISH\n").unwrap();
    chmod(&junk, 0o600);
    let out = home
        .run()
        .env("CREDSTORE_SEAL_IDENTITY_FILE", &junk)
        .args(token_cmd)
        .expect(4);
    check(&out, "junk key", "line 2", "not an age X25519 identity");
    assert!(!out.stderr.contains("SECRETISH"), "{}", out.stderr);
    // Both sources set: a usage error.
    let out = home
        .run()
        .seal_key(&key)
        .env("CREDSTORE_SEAL", "systemd-creds")
        .args(token_cmd)
        .expect(2);
    assert!(out.stderr.contains("both set"), "{}", out.stderr);
    // The right key still opens the untouched file.
    let out = home.run().seal_key(&key).args(token_cmd).expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));
    // The library gives kinds, not only words.
    let e = store_for(&home, &other)
        .load(&Profile::default_profile())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SealKey);
}

#[test]
fn every_flipped_byte_and_every_truncation_is_an_error_and_leaves_the_file() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let store = store_for(&home, &key);
    let p = Profile::default_profile();
    store
        .save(&p, &stored(AuthMode::ApiKey, "sk-tamper-test-000001"))
        .unwrap();
    let path = home.sealed_json();
    let good = std::fs::read(&path).unwrap();
    let mut kinds = std::collections::BTreeMap::new();
    let mut attempt = |bytes: &[u8], what: &str| {
        std::fs::write(&path, bytes).unwrap();
        let e = match store.load(&p) {
            Err(e) => e,
            Ok(found) => panic!(
                "{what}: a changed file was accepted ({})",
                found.map(|f| f.expose_token().len()).unwrap_or(0)
            ),
        };
        assert_eq!(e.exit_code(), 4, "{what}: {e}");
        assert!(
            e.to_string().contains(&path.display().to_string()),
            "{what}: {e}"
        );
        assert!(!e.to_string().contains("sk-tamper"), "{what}: {e}");
        *kinds.entry(format!("{:?}", e.kind())).or_insert(0) += 1;
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{what}: the read changed it"
        );
    };
    for i in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= bit;
            attempt(&bad, &format!("byte {i} ^ {bit:#x}"));
        }
    }
    for len in 0..good.len() {
        attempt(&good[..len], &format!("truncated to {len}"));
    }
    let mut longer = good.clone();
    longer.push(0);
    attempt(&longer, "a byte appended");
    eprintln!(
        "tamper: {} flipped bytes and {} truncations of a {}-byte sealed file: all refused, file \
         unchanged by every read; error kinds {kinds:?}",
        good.len() * 2,
        good.len(),
        good.len()
    );
    std::fs::write(&path, &good).unwrap();
    assert_eq!(
        store.load(&p).unwrap().unwrap().expose_token(),
        "sk-tamper-test-000001"
    );

    // Through the CLI: a flipped payload byte and a cut file, exit 4.
    for bad in [
        {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] ^= 1;
            b
        },
        good[..good.len() - 10].to_vec(),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let out = home
            .run()
            .seal_key(&key)
            .args(["token", "--backend", "sealed"])
            .expect(4);
        assert!(
            out.stderr.contains("corrupt credential store"),
            "{}",
            out.stderr
        );
        assert!(out.stdout.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), bad);
    }
}

#[test]
fn a_failed_save_leaves_the_old_file() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    home.run()
        .seal_key(&key)
        .args(["login", "--with-api-key", "--backend", "sealed"])
        .stdin("sk-old-credential-0001")
        .expect(0);
    let before = std::fs::read(home.sealed_json()).unwrap();
    // A key that does not parse: nothing is sealed, nothing written.
    let broken = home.root().join("keys/broken.txt");
    std::fs::write(&broken, "AGE-SECRET-KEY-1BROKEN\n").unwrap();
    chmod(&broken, 0o600);
    let out = home
        .run()
        .env("CREDSTORE_SEAL_IDENTITY_FILE", &broken)
        .args(["login", "--with-api-key", "--backend", "sealed"])
        .stdin("sk-new-credential-0002")
        .expect(4);
    assert!(
        out.stderr.contains("not an age X25519 identity"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(home.sealed_json()).unwrap(), before);
    // A home others may write to: refused before anything is written.
    chmod(&home.store_dir(), 0o777);
    home.run()
        .seal_key(&key)
        .args(["login", "--with-api-key", "--backend", "sealed"])
        .stdin("sk-new-credential-0003")
        .expect(4);
    chmod(&home.store_dir(), 0o700);
    assert_eq!(std::fs::read(home.sealed_json()).unwrap(), before);
    let out = home
        .run()
        .seal_key(&key)
        .args(["token", "--backend", "sealed"])
        .expect(0);
    assert_eq!(out.stdout, "sk-old-credential-0001\n");
}

#[test]
fn migrate_file_to_sealed_removes_the_plaintext_and_back() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let token = TokenBuilder::new().build();
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&token)
        .expect(0);
    assert!(home.auth_json().exists());
    let out = home
        .run()
        .seal_key(&key)
        .args(["migrate", "--to", "sealed", "--from", "file"])
        .expect(0);
    out.assert_no_secret(&token, "migrate --to sealed");
    assert!(!home.auth_json().exists(), "the plaintext copy is removed");
    assert!(home.sealed_json().exists());
    // The remembered backend follows (auto would not read it).
    let out = home.run().seal_key(&key).args(["token"]).expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));
    let out = home
        .run()
        .seal_key(&key)
        .args(["config", "get", "backend"])
        .expect(0);
    assert_eq!(out.stdout, "sealed\n");
    // Nothing in the home holds the token in clear.
    for (path, bytes) in home.snapshot() {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token[20..60]),
            "{} holds the token",
            path.display()
        );
    }
    // And back.
    home.run()
        .seal_key(&key)
        .args(["migrate", "--to", "file", "--from", "sealed"])
        .expect(0);
    assert!(!home.sealed_json().exists());
    let out = home.run().args(["token", "--backend", "file"]).expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));
    // Without a key, migrate to sealed fails and the source stays.
    home.run()
        .args(["migrate", "--to", "sealed", "--from", "file"])
        .expect(4);
    assert!(home.auth_json().exists());
}

#[test]
fn auto_is_unchanged_unless_sealed_is_named() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let store = store_for(&home, &key);
    store
        .save(
            &Profile::default_profile(),
            &stored(AuthMode::ApiKey, "sk-sealed-only-0001"),
        )
        .unwrap();
    // auto reads keychain then file: the sealed file is not its business.
    let out = home.run().seal_key(&key).args(["token"]).expect(1);
    assert!(out.stdout.is_empty());
    let out = home
        .run()
        .seal_key(&key)
        .args(["status", "--json"])
        .expect(1);
    assert_eq!(out.json()["backend"], "auto");
    // Named by the config: used.
    home.run()
        .args(["config", "set", "backend", "sealed"])
        .expect(0);
    let out = home.run().seal_key(&key).args(["token"]).expect(0);
    assert_eq!(out.stdout, "sk-sealed-only-0001\n");
    let json = home
        .run()
        .seal_key(&key)
        .args(["status", "--json"])
        .expect(0)
        .json();
    assert_eq!(json["backend_chosen_by"], "config");
    // By the variable or the flag too; and logout removes it.
    home.run().args(["config", "unset", "backend"]).expect(0);
    home.run()
        .seal_key(&key)
        .env("CREDSTORE_BACKEND", "sealed")
        .args(["token"])
        .expect(0);
    let out = home.run().args(["logout", "--backend", "sealed"]).expect(0);
    assert!(out.stderr.contains("auth.json.age"), "{}", out.stderr);
    assert!(!home.sealed_json().exists());
}

#[test]
fn keygen_makes_a_private_new_file_outside_the_home() {
    let home = Home::new();
    let dir = home.root().join("k");
    std::fs::create_dir(&dir).unwrap();
    let out_path = dir.join("id.txt");
    let out = home
        .run()
        .args([
            "seal".as_ref(),
            "keygen".as_ref(),
            "--out".as_ref(),
            out_path.as_os_str(),
        ])
        .expect(0);
    let public = out.stdout.trim().to_string();
    assert!(public.starts_with("age1"), "{public}");
    assert_eq!(mode(&out_path), 0o600);
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert!(text.contains(&format!("# public key: {public}")));
    assert!(!out.stderr.contains("AGE-SECRET-KEY"), "{}", out.stderr);
    // Never replaced.
    let out = home
        .run()
        .args([
            "seal".as_ref(),
            "keygen".as_ref(),
            "--out".as_ref(),
            out_path.as_os_str(),
        ])
        .expect(2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), text);
    // Never beside the data.
    let inside = home.store_dir().join("id.txt");
    home.run()
        .args([
            "seal".as_ref(),
            "keygen".as_ref(),
            "--out".as_ref(),
            inside.as_os_str(),
        ])
        .expect(4);
    assert!(!inside.exists());
}

#[test]
fn doctor_checks_the_key_source() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    home.run()
        .seal_key(&key)
        .args(["login", "--with-api-key", "--backend", "sealed"])
        .stdin("sk-doctor-test-000001")
        .expect(0);
    let out = home.run().seal_key(&key).args(["doctor"]).expect(0);
    assert!(out.stdout.contains("ok       sealed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("encrypted at rest (age, 1 recipient"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("plaintext"), "{}", out.stdout);
    chmod(&key.path, 0o644);
    let out = home.run().seal_key(&key).args(["doctor"]).expect(1);
    assert!(out.stdout.contains("FAILED   sealed"), "{}", out.stdout);
    assert!(out.stdout.contains("chmod 600"), "{}", out.stdout);
    chmod(&key.path, 0o600);
    // Not selected and not configured: not a problem.
    let other = Home::new();
    let out = other.run().args(["doctor", "--backend", "file"]).expect(0);
    assert!(
        out.stdout.contains("--       sealed    not configured"),
        "{}",
        out.stdout
    );
    // Selected without a key: a problem.
    let out = other
        .run()
        .args(["doctor", "--backend", "sealed"])
        .expect(1);
    assert!(
        out.stdout
            .contains("the sealed backend is selected but fails"),
        "{}",
        out.stdout
    );
}

/// systemd-creds with the host key (root on this machine): `seal init`
/// makes the credential, `login` and `token` decrypt it at each use.
#[test]
fn systemd_creds_host_key_round_trip() {
    let present = Command::new("systemd-creds")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        eprintln!(
            "\n!!! SKIPPED systemd_creds_host_key_round_trip: systemd-creds is not installed \
             here (Debian's systemd package has it) !!!\n"
        );
        return;
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    assert!(
        is_root,
        "the host key of systemd-creds is root's: run this test as root (CI does)"
    );
    let home = Home::new();
    let run = || home.run().env("CREDSTORE_SEAL", "systemd-creds");
    let out = run().args(["seal", "init", "--with-key", "host"]).expect(0);
    let public = out.stdout.trim().to_string();
    assert!(public.starts_with("age1"), "{}", out.stderr);
    let cred = home.store_dir().join("seal-identity.cred");
    assert_eq!(mode(&cred), 0o600);
    assert!(
        !std::fs::read_to_string(&cred)
            .unwrap_or_default()
            .contains("AGE-SECRET-KEY"),
        "the credential holds the identity encrypted"
    );
    // Never replaced.
    run().args(["seal", "init", "--with-key", "host"]).expect(2);
    let token = TokenBuilder::new().build();
    run().args(LOGIN).stdin(&token).expect(0);
    let out = run().args(["token", "--backend", "sealed"]).expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));
    let out = run().args(["status", "--backend", "sealed"]).expect(0);
    assert!(
        out.stdout
            .contains(&format!("key from systemd-creds ({})", cred.display())),
        "{}",
        out.stdout
    );
    // The public key printed is the one the file is sealed to: an age
    // encryption to it is read back.
    let other = home.store_dir().join("auth.api.json.age");
    let (ok, _, err) = run_age(
        &[
            "-e".as_ref(),
            "-r".as_ref(),
            public.as_ref(),
            "-o".as_ref(),
            other.as_os_str(),
        ],
        b"{\"api_key\":\"sk-to-systemd-key-01\"}",
    );
    assert!(ok, "{err}");
    chmod(&other, 0o600);
    let out = run()
        .args(["token", "--backend", "sealed", "--profile", "api"])
        .expect(0);
    assert_eq!(out.stdout, "sk-to-systemd-key-01\n");
    // A credential that is not one (changed bytes): exit 4, named.
    let mut bytes = std::fs::read(&cred).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&cred, &bytes).unwrap();
    let out = run().args(["token", "--backend", "sealed"]).expect(4);
    assert!(
        out.stderr.contains("systemd-creds could not decrypt it"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&cred.display().to_string()),
        "{}",
        out.stderr
    );
    // Missing.
    std::fs::remove_file(&cred).unwrap();
    let out = run().args(["token", "--backend", "sealed"]).expect(4);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

#[test]
fn profiles_lists_sealed_files_and_says_when_the_key_is_missing() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let jwt = TokenBuilder::new().build();
    home.run()
        .seal_key(&key)
        .args(["--profile", "srv"])
        .args(LOGIN)
        .stdin(format!("{jwt}\n"))
        .expect(0);
    // With the key: the sealed copy, read and in use (login remembered
    // the backend for the profile).
    let out = home
        .run()
        .seal_key(&key)
        .args(["profiles", "--json"])
        .expect(0);
    out.assert_no_secret(&jwt, "profiles");
    let doc = out.json();
    let rows = doc["profiles"].as_array().expect("profiles");
    assert_eq!(rows.len(), 1, "{doc}");
    assert_eq!(rows[0]["profile"], "srv");
    assert_eq!(rows[0]["backend"], "sealed");
    assert_eq!(rows[0]["auth_mode"], "agent_identity");
    assert_eq!(rows[0]["in_use"], true);
    // Without it: still listed, unreadable, exit 4 with the fix.
    let out = home.run().args(["profiles"]).expect(4);
    assert!(
        out.stdout.contains("srv") && out.stdout.contains("sealed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("profile srv in sealed"),
        "{}",
        out.stderr
    );
    // logout --all removes it.
    let out = home
        .run()
        .seal_key(&key)
        .args(["logout", "--all"])
        .expect(0);
    assert!(out.stderr.contains("auth.srv.json.age"), "{}", out.stderr);
    assert!(!home.store_dir().join("auth.srv.json.age").exists());
}
