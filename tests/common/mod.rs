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

    /// Runs in `dir` (the working directory config rules look at).
    #[allow(dead_code)] // not every test binary uses it
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Run {
        self.cmd.current_dir(dir);
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

    /// `program args` with this run's environment (and nothing else of
    /// the caller's), e.g. a shell that calls credstore itself.
    pub fn into_command_with(self, program: &str, args: &[&str]) -> Command {
        let mut other = Command::new(program);
        other.env_clear().args(args);
        for (k, v) in self.cmd.get_envs() {
            if let Some(v) = v {
                other.env(k, v);
            }
        }
        other
    }
}

/// What a reader finds at a credential path: nothing (`None`) or a whole
/// stored document whose token is one of `known` (returned). Panics on a
/// torn, empty or unknown document — the states atomic replace forbids.
pub fn assert_whole(path: &Path, known: &[String]) -> Option<String> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("read {}: {e}", path.display()),
        Ok(bytes) => {
            let doc = credstore::stored::StoredCredential::from_document(&bytes, "x")
                .unwrap_or_else(|e| panic!("torn or empty file ({} bytes): {e}", bytes.len()));
            let token = doc.expose_token();
            assert!(
                known.iter().any(|k| k == token),
                "unknown token in file ({} bytes)",
                bytes.len()
            );
            Some(token.to_string())
        }
    }
}

/// The names in a directory, sorted (empty when it does not exist).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// A small deterministic generator (SplitMix64) so that randomized tests
/// print their seed and can be replayed exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from `var` in the test's environment when set (to replay a
    /// run), else from the clock.
    pub fn seed_from(var: &str) -> u64 {
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Mode bits of a path.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// Runs `run` (its program, arguments and environment) on a pseudo-terminal
/// through util-linux `script`; returns what the terminal showed.
pub fn on_a_terminal(run: Run) -> (i32, String) {
    let mut line = String::new();
    {
        let cmd = &run.cmd;
        for part in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
            let part = part.to_str().expect("utf-8");
            line.push_str(&format!("'{}' ", part.replace('\'', r"'\''")));
        }
    }
    let mut script = run.into_command_with("script", &["-qec", &line, "/dev/null"]);
    script.stdin(std::process::Stdio::null());
    let out = script.output().expect("util-linux script");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A throwaway age identity for the sealed backend, made by credstore's
/// own `keygen` in `<home root>/keys/<name>` (0700 directory, 0600 file,
/// outside the credential directory). Never a real key.
pub struct SealKey {
    pub path: PathBuf,
    pub public: String,
}

impl SealKey {
    pub fn new(home: &Home, name: &str) -> SealKey {
        let dir = home.root().join("keys");
        if !dir.exists() {
            std::fs::create_dir(&dir).expect("keys dir");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .expect("chmod keys dir");
            }
        }
        let path = dir.join(name);
        let public = credstore::store::keygen(&path, &home.store_dir()).expect("keygen");
        SealKey { path, public }
    }
}

impl Home {
    /// `auth.json.age` of the default profile.
    pub fn sealed_json(&self) -> PathBuf {
        self.store_dir().join("auth.json.age")
    }
}

impl Run {
    /// Uses `key` for the sealed backend (`CREDSTORE_SEAL_IDENTITY_FILE`,
    /// a path: the key itself is never in the environment).
    pub fn seal_key(self, key: &SealKey) -> Run {
        self.env("CREDSTORE_SEAL_IDENTITY_FILE", &key.path)
    }
}

/// What a reader finds at a sealed path, opened with `key` through the
/// library: nothing, or a whole document whose token is one of `known`.
/// Panics on a file that does not open (torn, empty) or an unknown token.
pub fn assert_whole_sealed(home: &Home, key: &SealKey, known: &[String]) -> Option<String> {
    use credstore::store::Store;
    let env = credstore::env::MapEnv::new().with("CREDSTORE_SEAL_IDENTITY_FILE", &key.path);
    let config = credstore::store::SealConfig::from_env(
        &env,
        &credstore::env::EnvNames::default(),
        &home.store_dir(),
    )
    .expect("seal config");
    let store = credstore::store::SealedStore::new(
        credstore::store::FileStore::new(home.store_dir()),
        config,
    );
    let size = std::fs::metadata(home.sealed_json()).map(|m| m.len());
    match store.load(&credstore::profile::Profile::default_profile()) {
        Ok(None) => None,
        Ok(Some(found)) => {
            let token = found.expose_token();
            assert!(
                known.iter().any(|k| k == token),
                "unknown token in the sealed file"
            );
            Some(token.to_string())
        }
        Err(e) => panic!("torn or empty sealed file ({size:?} bytes): {e}"),
    }
}
