//! File-system attacks on the file backend (SPEC §4.1, §8.4), beyond those
//! in `tests/file_store.rs` (symlinked file and directory, 0777 directory,
//! foreign-owned file, planted temp symlink): FIFOs and directories at the
//! credential path or the lock, a symlinked, foreign-owned, loose or
//! special `.lock`, a foreign-owned or group-writable home, a home that is
//! a file, dangling symlinks, hard links, planted temp names. Each is run
//! through the CLI as a user would, with a deadline (nothing may hang), and
//! each must be refused with a clear error — or, for the writer, replaced
//! safely — with nothing outside the store touched.
// Unix only: Unix modes, owners, FIFOs and symlinks. The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::{dir_names, mode, Home, Output};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(5);
const LOGIN: [&str; 4] = ["login", "--with-agent-identity", "--backend", "file"];

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(p)
        .status()
        .expect("mkfifo");
    assert!(ok.success());
}

fn chown_nobody(p: &Path) {
    let out = std::process::Command::new("chown")
        .args(["-h", "65534"])
        .arg(p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "this test needs root to chown (CI runs as root)"
    );
}

/// A private store directory with `auth.json` holding `token`, and an
/// "outside" directory next to it that the attacks point at.
struct Scene {
    home: Home,
    token: String,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let home = Home::new();
        let token = TokenBuilder::new().build();
        home.run().args(LOGIN).stdin(&token).expect(0);
        let outside = home.root().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), "keep me").unwrap();
        chmod(&outside.join("victim"), 0o600);
        Scene {
            home,
            token,
            outside,
        }
    }

    fn store(&self) -> PathBuf {
        self.home.store_dir()
    }

    fn lock(&self) -> PathBuf {
        self.store().join(".lock")
    }

    fn outside_snapshot(&self) -> BTreeMap<String, (Vec<u8>, u32)> {
        dir_names(&self.outside)
            .into_iter()
            .map(|n| {
                let p = self.outside.join(&n);
                let bytes = std::fs::read(&p).unwrap_or_default();
                (n, (bytes, mode(&p)))
            })
            .collect()
    }

    /// Runs the CLI with a deadline: a command that hangs fails the test.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.home.run().args(args).into_command();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes());
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let (mut out, mut err) = (String::new(), String::new());
                let _ = child.stdout.take().expect("out").read_to_string(&mut out);
                let _ = child.stderr.take().expect("err").read_to_string(&mut err);
                return Output {
                    code: status.code().unwrap_or(-1),
                    stdout: out,
                    stderr: err,
                };
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`credstore {}` hung for {DEADLINE:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn login(&self) -> Output {
        self.run(&LOGIN, &self.token)
    }

    fn token_cmd(&self) -> Output {
        self.run(&["token", "--backend", "file"], "")
    }

    fn logout(&self) -> Output {
        self.run(&["logout", "--backend", "file"], "")
    }
}

/// Asserts an error with exit 4 whose message names `path` and contains
/// `what`, and that no secret is echoed.
fn refused(out: &Output, path: &Path, what: &str, token: &str, ctx: &str) {
    assert_eq!(out.code, 4, "{ctx}: exit code; stderr: {}", out.stderr);
    assert!(
        out.stderr.contains(&path.display().to_string()),
        "{ctx}: the error names the path: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(what),
        "{ctx}: expected {what:?} in: {}",
        out.stderr
    );
    out.assert_no_secret(token, ctx);
}

#[test]
fn a_fifo_at_the_credential_path_is_refused_without_hanging() {
    let s = Scene::new();
    let path = s.home.auth_json();
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    refused(
        &s.token_cmd(),
        &path,
        "not a regular file",
        &s.token,
        "token",
    );
    refused(
        &s.run(&["status", "--backend", "file"], ""),
        &path,
        "not a regular file",
        &s.token,
        "status",
    );
}

#[test]
fn a_fifo_at_the_credential_path_does_not_hang_the_writer() {
    let s = Scene::new();
    let path = s.home.auth_json();
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let before = s.outside_snapshot();
    let out = s.login();
    // Replacing the FIFO with the private file, or refusing, are both safe.
    match out.code {
        0 => {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.is_file(), "replaced by a regular file");
            assert_eq!(mode(&path), 0o600);
        }
        4 => refused(&out, &path, "", &s.token, "login over a FIFO"),
        code => panic!("login over a FIFO exited {code}: {}", out.stderr),
    }
    assert_eq!(s.outside_snapshot(), before);
}

#[test]
fn a_directory_at_the_credential_path_is_refused() {
    let s = Scene::new();
    let path = s.home.auth_json();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), "x").unwrap();
    refused(
        &s.token_cmd(),
        &path,
        "not a regular file",
        &s.token,
        "token",
    );
    let out = s.login();
    assert_eq!(out.code, 4, "login over a directory: {}", out.stderr);
    assert!(out.stderr.contains(&path.display().to_string()));
    assert_eq!(
        std::fs::read(path.join("inside")).unwrap(),
        b"x",
        "the directory is left alone"
    );
    // A failed write leaves no temp file behind.
    assert_eq!(dir_names(&s.store()), [".lock", "auth.json"]);
}

#[test]
fn dangling_and_device_symlinks_at_the_credential_path_are_refused() {
    for target in ["outside/not-yet-there", "/dev/zero", "outside/victim"] {
        let s = Scene::new();
        let path = s.home.auth_json();
        std::fs::remove_file(&path).unwrap();
        let target = if target.starts_with('/') {
            PathBuf::from(target)
        } else {
            s.home.root().join(target)
        };
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let before = s.outside_snapshot();
        refused(&s.token_cmd(), &path, "symbolic link", &s.token, "token");
        refused(&s.login(), &path, "symbolic link", &s.token, "login");
        refused(&s.logout(), &path, "symbolic link", &s.token, "logout");
        assert_eq!(s.outside_snapshot(), before, "{}", target.display());
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link is left as it is"
        );
    }
}

#[test]
fn a_hard_link_at_the_credential_path_is_replaced_not_written_through() {
    let s = Scene::new();
    let path = s.home.auth_json();
    std::fs::remove_file(&path).unwrap();
    let victim = s.outside.join("victim");
    std::fs::hard_link(&victim, &path).unwrap();
    let out = s.login();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"keep me",
        "atomic rename replaces the link; the other name keeps its content"
    );
    assert_eq!(s.token_cmd().stdout.trim_end(), s.token);
}

#[test]
fn a_symlinked_lock_is_refused_and_its_target_untouched() {
    for target in ["outside/victim", "outside/created-through-link"] {
        let s = Scene::new();
        let lock = s.lock();
        std::fs::remove_file(&lock).unwrap();
        std::os::unix::fs::symlink(s.home.root().join(target), &lock).unwrap();
        let before = s.outside_snapshot();
        let stored = std::fs::read(s.home.auth_json()).unwrap();
        refused(&s.login(), &lock, "symbolic link", &s.token, "login");
        refused(&s.logout(), &lock, "symbolic link", &s.token, "logout");
        assert_eq!(s.outside_snapshot(), before, "{target}");
        assert_eq!(std::fs::read(s.home.auth_json()).unwrap(), stored);
        // Readers take no lock: reading still works.
        let out = s.token_cmd();
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.stdout.trim_end(), s.token);
    }
}

#[test]
fn a_special_foreign_or_loose_lock_is_refused() {
    type Plant = fn(&Path);
    let cases: [(&str, Plant, &str); 4] = [
        (
            "FIFO",
            |p| {
                std::fs::remove_file(p).unwrap();
                mkfifo(p);
            },
            "not a regular file",
        ),
        (
            "directory",
            |p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            },
            "not a regular file",
        ),
        (
            "foreign owner",
            |p| chown_nobody(p),
            "owned by another user",
        ),
        ("mode 0666", |p| chmod(p, 0o666), "chmod 600"),
    ];
    for (name, plant, what) in cases {
        let s = Scene::new();
        let lock = s.lock();
        plant(&lock);
        let stored = std::fs::read(s.home.auth_json()).unwrap();
        refused(&s.login(), &lock, what, &s.token, name);
        refused(&s.logout(), &lock, what, &s.token, name);
        assert_eq!(
            std::fs::read(s.home.auth_json()).unwrap(),
            stored,
            "{name}: the credential is unchanged"
        );
    }
}

#[test]
fn a_home_owned_by_another_user_or_writable_by_others_is_refused() {
    let s = Scene::new();
    let store = s.store();
    chown_nobody(&store);
    for (args, stdin) in [
        (&LOGIN[..], s.token.as_str()),
        (&["token", "--backend", "file"][..], ""),
        (&["logout", "--backend", "file"][..], ""),
    ] {
        refused(
            &s.run(args, stdin),
            &store,
            "owned by another user",
            &s.token,
            args[0],
        );
    }

    for m in [0o770, 0o720, 0o702, 0o1777, 0o2770] {
        let s = Scene::new();
        let store = s.store();
        chmod(&store, m);
        let stored = std::fs::read(s.home.auth_json()).unwrap();
        for (args, stdin) in [
            (&LOGIN[..], s.token.as_str()),
            (&["token", "--backend", "file"][..], ""),
            (&["logout", "--backend", "file"][..], ""),
        ] {
            let ctx = format!("{} with home mode {m:o}", args[0]);
            refused(
                &s.run(args, stdin),
                &store,
                "writable by group or others",
                &s.token,
                &ctx,
            );
        }
        assert_eq!(std::fs::read(s.home.auth_json()).unwrap(), stored);
    }
}

#[test]
fn a_home_that_is_a_file_is_refused() {
    let home = Home::new();
    std::fs::write(home.store_dir(), "not a dir").unwrap();
    let token = TokenBuilder::new().build();
    let s = Scene {
        outside: home.root().to_path_buf(),
        home,
        token,
    };
    for (args, stdin) in [
        (&LOGIN[..], s.token.as_str()),
        (&["token", "--backend", "file"][..], ""),
    ] {
        let out = s.run(args, stdin);
        assert_eq!(out.code, 4, "{}: {}", args[0], out.stderr);
        // (`login` says "creating directory …: File exists"; `token` says
        // "it is not a directory": both name the path.)
        assert!(
            out.stderr.contains(&s.store().display().to_string()),
            "{}",
            out.stderr
        );
    }
    assert_eq!(std::fs::read(s.store()).unwrap(), b"not a dir");
}

#[test]
fn planted_temp_names_do_not_disturb_the_write() {
    let s = Scene::new();
    let store = s.store();
    // Entries at temp-like names: a FIFO, a file owned by another user, a
    // symlink to a file outside, and a directory.
    mkfifo(&store.join(".auth.json.1.1.tmp"));
    std::fs::write(store.join(".auth.json.2.2.tmp"), "planted").unwrap();
    chown_nobody(&store.join(".auth.json.2.2.tmp"));
    std::os::unix::fs::symlink(s.outside.join("victim"), store.join(".auth.json.3.3.tmp")).unwrap();
    std::fs::create_dir(store.join(".auth.json.4.4.tmp")).unwrap();
    let before = s.outside_snapshot();
    let other = TokenBuilder::new().build();
    let out = s.run(&LOGIN, &other);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(s.outside_snapshot(), before, "nothing outside touched");
    assert_eq!(s.token_cmd().stdout.trim_end(), other);
    assert_eq!(mode(&s.home.auth_json()), 0o600);
    let left: Vec<String> = dir_names(&store)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(
        left,
        [".auth.json.4.4.tmp"],
        "stale temp files swept (a directory cannot be, and is harmless)"
    );
}
