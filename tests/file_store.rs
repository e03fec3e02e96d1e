//! The file backend's safety rules (SPEC §4.1): modes, symlink refusal,
//! permission and owner checks, corrupt files left alone, atomic replace
//! under a killed writer, and serialized concurrent writers.
// Unix only: the Unix mode, owner and symlink rules of SPEC §4.1. The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::{assert_whole, mode, Home};
use credstore::credential::{AuthMode, Credential};
use credstore::profile::Profile;
use credstore::store::{FileStore, Store};
use credstore::stored::StoredCredential;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn api_key(k: &str) -> StoredCredential {
    StoredCredential::from_credential(
        &Credential::parse(AuthMode::ApiKey, k.as_bytes(), "t").unwrap(),
    )
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn setup() -> (tempfile::TempDir, FileStore, Profile) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("home"));
    (dir, store, Profile::default_profile())
}

#[test]
fn creates_private_directory_and_file() {
    let (_d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    assert_eq!(mode(store.home()), 0o700);
    assert_eq!(mode(&store.path(&p)), 0o600);
    // Replacing keeps 0600 even if someone loosened the old file.
    chmod(&store.path(&p), 0o644);
    store.save(&p, &api_key("sk-2")).unwrap();
    assert_eq!(mode(&store.path(&p)), 0o600);
    assert_eq!(store.load(&p).unwrap().unwrap().expose_token(), "sk-2");
}

#[test]
fn loose_permissions_are_refused_with_the_fix() {
    let (_d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    let path = store.path(&p);
    for m in [0o640, 0o604, 0o660, 0o610, 0o601, 0o700 | 0o044] {
        chmod(&path, m);
        let e = store.load(&p).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("{:04o}", m)),
            "mode in message: {msg}"
        );
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
    }
    chmod(&path, 0o400);
    assert!(store.load(&p).unwrap().is_some(), "owner-only read is fine");
}

#[test]
fn symlinks_are_refused_for_reading_and_writing() {
    let (d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    let target = d.path().join("elsewhere.json");
    std::fs::write(&target, "{\"api_key\":\"sk-attacker\"}").unwrap();
    chmod(&target, 0o600);
    let path = store.path(&p);
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = store.load(&p).unwrap_err();
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = store.save(&p, &api_key("sk-2")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "{\"api_key\":\"sk-attacker\"}"
    );
    assert!(store.delete(&p).is_err());
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());

    // The directory itself replaced by a symlink.
    let (d2, store2, p2) = setup();
    let real = d2.path().join("real");
    std::fs::create_dir(&real).unwrap();
    chmod(&real, 0o700);
    std::os::unix::fs::symlink(&real, store2.home()).unwrap();
    assert!(store2
        .save(&p2, &api_key("sk-3"))
        .unwrap_err()
        .to_string()
        .contains("symbolic link"));
    assert!(store2
        .load(&p2)
        .unwrap_err()
        .to_string()
        .contains("symbolic link"));
    assert!(
        std::fs::read_dir(&real).unwrap().next().is_none(),
        "nothing written through the link"
    );
}

#[test]
fn a_directory_writable_by_others_is_refused() {
    let (_d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    chmod(store.home(), 0o777);
    let e = store.load(&p).unwrap_err();
    assert!(e.to_string().contains("chmod 700"), "{e}");
    assert!(store.save(&p, &api_key("sk-2")).is_err());
    chmod(store.home(), 0o700);
    assert_eq!(store.load(&p).unwrap().unwrap().expose_token(), "sk-1");
}

#[test]
fn a_file_owned_by_another_user_is_refused() {
    let (_d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    let path = store.path(&p);
    let out = std::process::Command::new("chown")
        .arg("65534")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "this test needs root to chown (CI runs as root)"
    );
    let e = store.load(&p).unwrap_err();
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("owned by another user"), "{e}");
}

#[test]
fn corrupt_json_names_the_path_and_is_left_untouched() {
    let (_d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    let path = store.path(&p);
    std::fs::write(&path, b"{\"api_key\": \"sk-sec").unwrap();
    let e = store.load(&p).unwrap_err();
    assert_eq!(e.exit_code(), 4);
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && !msg.contains("sk-sec"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"{\"api_key\": \"sk-sec");
}

#[test]
fn a_pre_created_temp_name_does_not_redirect_the_write() {
    // A symlink planted at a likely temp name must not be followed: temp
    // files are created with O_EXCL|O_NOFOLLOW under unique names, and
    // stale ones are swept under the lock.
    let (d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let planted = store
        .home()
        .join(format!(".auth.json.{}.1.tmp", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    store.save(&p, &api_key("sk-2")).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert_eq!(store.load(&p).unwrap().unwrap().expose_token(), "sk-2");
    assert!(
        !planted.exists() && std::fs::symlink_metadata(&planted).is_err(),
        "stale temp name swept"
    );
}

#[test]
fn killed_writers_never_leave_a_torn_file() {
    let home = Home::new();
    let tokens: Vec<String> = (0..2).map(|_| TokenBuilder::new().build()).collect();
    let dir = tempfile::tempdir().unwrap();
    for (i, t) in tokens.iter().enumerate() {
        std::fs::write(dir.path().join(format!("t{i}")), t).unwrap();
    }
    // A shell loop of logins, killed (SIGKILL, whole group) at varying moments.
    let script = format!(
        "while :; do \"$BIN\" login --with-agent-identity --backend file < {d}/t0; \"$BIN\" login --with-agent-identity --backend file < {d}/t1; done",
        d = dir.path().display()
    );
    let mut kills = 0;
    let start = Instant::now();
    for i in 0..40u64 {
        let cmd = home.run().into_command();
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(&script)
            .env_clear()
            .envs(
                cmd.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .env("BIN", common::bin())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut sh, 0);
        let mut child = sh.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(5 + (i * 7) % 60));
        let pgid = child.id();
        std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status()
            .unwrap();
        let _ = child.wait();
        kills += 1;
        assert_whole(&home.auth_json(), &tokens);
    }
    // The next write sweeps whatever temp files the kills left.
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&tokens[0])
        .expect(0);
    let names: Vec<String> = std::fs::read_dir(home.store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "auth.json and .lock only, no stray temp: {names:?}"
    );
    eprintln!("{kills} killed writers in {:?}", start.elapsed());
}

#[test]
fn concurrent_writers_and_readers() {
    let home = Home::new();
    let tokens: Vec<String> = (0..6).map(|_| TokenBuilder::new().build()).collect();
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&tokens[0])
        .expect(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|s| {
        let mut readers = Vec::new();
        for _ in 0..2 {
            let stop = stop.clone();
            let home = &home;
            let tokens = &tokens;
            readers.push(s.spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let out = home.run().args(["token", "--backend", "file"]).output();
                    assert_eq!(out.code, 0, "reader failed: {}", out.stderr);
                    let t = out.stdout.trim_end();
                    assert!(tokens.iter().any(|k| k == t), "reader saw a partial token");
                    reads += 1;
                }
                reads
            }));
        }
        let writers: Vec<_> = tokens
            .iter()
            .map(|t| {
                let home = &home;
                s.spawn(move || {
                    for _ in 0..8 {
                        home.run()
                            .args(["login", "--with-agent-identity", "--backend", "file"])
                            .stdin(t)
                            .expect(0);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(reads > 0);
    });
    assert_whole(&home.auth_json(), &tokens);
    let names = std::fs::read_dir(home.store_dir()).unwrap().count();
    assert_eq!(names, 2, "no temp files left after clean writes");
}

#[test]
fn a_change_lock_holds_other_writers_off_until_released() {
    let (_d, store, p) = setup();
    store.save(&p, &api_key("sk-1")).unwrap();
    let guard = store.lock_changes().unwrap();
    // The holding thread's own writes go through (no self-deadlock).
    store.save(&p, &api_key("sk-2")).unwrap();
    // Another process's login waits for the lock...
    let home = Home::new();
    let mut login = home
        .run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .env("CREDSTORE_HOME", store.home())
        .into_command();
    login.stdin(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"sk-3").unwrap();
    }
    // ...and so does another thread of this process.
    let other = std::thread::spawn({
        let store = store.clone();
        let p = p.clone();
        move || store.save(&p, &api_key("sk-4"))
    });
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        child.try_wait().unwrap().is_none(),
        "login wrote while the lock was held"
    );
    assert!(
        !other.is_finished(),
        "another thread wrote while the lock was held"
    );
    assert_eq!(store.load(&p).unwrap().unwrap().expose_token(), "sk-2");
    drop(guard);
    assert!(child.wait().unwrap().success());
    other.join().unwrap().unwrap();
    let last = store.load(&p).unwrap().unwrap();
    assert!(["sk-3", "sk-4"].contains(&last.expose_token()));
}

#[test]
fn a_file_where_the_directory_should_be_is_named_as_such() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    std::fs::write(&home, "").unwrap();
    let store = FileStore::new(&home);
    let e = store
        .save(&Profile::default_profile(), &api_key("sk-1"))
        .unwrap_err();
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("not a directory"), "{e}");
}
