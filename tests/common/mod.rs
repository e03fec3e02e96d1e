//! A small harness for driving the `credstore` binary as a user would:
//! a clean environment (nothing inherited but PATH), a private temporary
//! home, bytes on stdin, and the exit code, stdout and stderr back.
#![allow(dead_code)]

pub mod authapi;
pub mod conformance;
pub mod tokens;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_credstore")
}

/// A private temporary directory used as `CREDSTORE_HOME` (and `HOME`).
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("credstore-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The credential directory (`CREDSTORE_HOME`), not created yet.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `auth.json` of the default profile.
    pub fn auth_json(&self) -> PathBuf {
        self.store_dir().join("auth.json")
    }

    /// Every file under the home (relative path → bytes).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }

    pub fn run(&self) -> Run {
        Run::new(self)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let ft = e.file_type().expect("file type");
        if ft.is_dir() {
            walk(root, &p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap_or_default();
            out.insert(p.strip_prefix(root).expect("prefix").to_path_buf(), bytes);
        }
    }
}

/// One invocation being prepared.
pub struct Run {
    cmd: Command,
    stdin: Vec<u8>,
}

/// What an invocation did.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts `secret` appears in neither stream.
    pub fn assert_no_secret(&self, secret: &str, what: &str) {
        assert!(!self.stdout.contains(secret), "{what}: secret on stdout");
        assert!(!self.stderr.contains(secret), "{what}: secret on stderr");
    }
}

impl Run {
    fn new(home: &Home) -> Run {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.root())
            .env("CREDSTORE_HOME", home.store_dir())
            // Never the developer's real session bus (and keyring): zbus
            // would otherwise fall back to /run/user/<uid>/bus.
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/credstore-test-no-bus",
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Run {
            cmd,
            stdin: Vec::new(),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Run {
        self.cmd.env_remove(k);
        self
    }

    pub fn stdin(mut self, bytes: impl AsRef<[u8]>) -> Run {
        self.stdin = bytes.as_ref().to_vec();
        self
    }

    pub fn output(mut self) -> Output {
        let mut child = self.cmd.spawn().expect("spawn credstore");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            // The binary may refuse early and close stdin; that is fine.
            let _ = stdin.write_all(&self.stdin);
        }
        let out = child.wait_with_output().expect("wait");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and asserts the exit code.
    pub fn expect(self, code: i32) -> Output {
        let out = self.output();
        assert_eq!(
            out.code, code,
            "unexpected exit code; stderr: {}",
            out.stderr
        );
        out
    }

    /// The command, for tests that manage the process themselves.
    pub fn into_command(self) -> Command {
        self.cmd
    }
}

/// Mode bits of a path.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}
