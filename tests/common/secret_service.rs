//! A private D-Bus session bus and gnome-keyring Secret Service for one
//! test, on the test's own runtime directory and home, with `DISPLAY`
//! unset so no unlock dialog can open. Processes are stopped by PID when
//! the session is dropped. Nothing here touches the test process's own
//! environment: children get theirs from [`SecretServiceSession::command`].
//!
//! Needs `dbus-daemon`, `dbus-send` (Debian `dbus`), `gnome-keyring-daemon`
//! (`gnome-keyring`), `secret-tool` (`libsecret-tools`) and `kill`
//! (`procps`). When one is
//! missing the test FAILS and says what to install; it never skips.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The throwaway password of the test keyring.
const KEYRING_PASSWORD: &str = "credstore-test-keyring-password";

const PACKAGES: &str = "apt-get install -y dbus gnome-keyring libsecret-tools procps";

/// Fails the test unless `program` is on PATH.
pub fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed, and the keychain tests need a real Secret Service. \
         Install it: {PACKAGES}"
    );
}

/// One private session bus, optionally with gnome-keyring on it.
pub struct SecretServiceSession {
    dir: tempfile::TempDir,
    address: String,
    bus: Child,
    daemon: Option<Child>,
    stopped: bool,
}

impl SecretServiceSession {
    /// A bus with gnome-keyring's Secret Service, its default (`login`)
    /// collection created and unlocked.
    pub fn start() -> SecretServiceSession {
        let mut s = Self::bus_only();
        s.start_daemon();
        s
    }

    /// A bus with no Secret Service and none that can be activated.
    pub fn bus_only() -> SecretServiceSession {
        require("dbus-daemon");
        require("dbus-send");
        require("gnome-keyring-daemon");
        require("secret-tool");
        require("kill");
        let dir = tempfile::Builder::new()
            .prefix("credstore-ss-")
            .tempdir()
            .expect("temp dir");
        for sub in ["run", "home", "services"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        set_mode(&dir.path().join("run"), 0o700);
        // A session bus whose only service directory is empty: nothing is
        // activatable, so "no Secret Service" really means none.
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            include_str!("../fixtures/dbus-session.conf.in")
                .replace(
                    "@BUS_PATH@",
                    &dir.path().join("run/bus").display().to_string(),
                )
                .replace(
                    "@SERVICE_DIR@",
                    &dir.path().join("services").display().to_string(),
                ),
        )
        .expect("bus config");
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let stdout = bus.stdout.take().expect("bus stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read bus address");
        let address = line.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon gave no address: {address:?}"
        );
        SecretServiceSession {
            dir,
            address,
            bus,
            daemon: None,
            stopped: false,
        }
    }

    /// The bus address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The test's private home (gnome-keyring keeps its files under it).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A scratch directory that lives as long as the session.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// The environment a child needs to use this session and nothing
    /// else: `DBUS_SESSION_BUS_ADDRESS`, `XDG_RUNTIME_DIR`, `HOME`, `PATH`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.address.clone()),
            (
                "XDG_RUNTIME_DIR".into(),
                self.dir.path().join("run").display().to_string(),
            ),
            ("HOME".into(), self.home().display().to_string()),
            (
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
        ]
    }

    /// A command with a clean environment pointing at this session only
    /// (no `DISPLAY`, no `WAYLAND_DISPLAY`, no inherited bus).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// Starts gnome-keyring-daemon (secrets component) in the foreground,
    /// unlocking (creating on first start) the `login` collection with the
    /// throwaway password fed on stdin; waits until it owns its bus name.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        let log = std::fs::File::create(self.dir.path().join("gnome-keyring.log")).expect("log");
        let mut child = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets", "--unlock"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = child.stdin.take().expect("daemon stdin");
            stdin
                .write_all(KEYRING_PASSWORD.as_bytes())
                .expect("write keyring password");
        }
        self.daemon = Some(child);
        self.stopped = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.name_has_owner("org.freedesktop.secrets") && self.default_collection_ready() {
                return;
            }
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "gnome-keyring-daemon exited ({status}) before it was ready: {}",
                    self.daemon_log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not come up within 10 s: {}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The daemon's stderr so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gnome-keyring.log")).unwrap_or_default()
    }

    /// The daemon's PID.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").id()
    }

    /// Stops the daemon (SIGKILL by PID) and waits for it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            if self.stopped {
                self.signal("CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stopped = false;
        // Wait until the bus has noticed, so the next start is clean.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.name_has_owner("org.freedesktop.secrets") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the daemon (SIGSTOP): it keeps its bus name and socket but
    /// answers nothing.
    pub fn freeze_daemon(&mut self) {
        self.signal("STOP");
        self.stopped = true;
    }

    /// Thaws a frozen daemon (SIGCONT).
    pub fn thaw_daemon(&mut self) {
        self.signal("CONT");
        self.stopped = false;
    }

    fn signal(&self, name: &str) {
        let pid = self.daemon_pid().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Locks the `login` collection over D-Bus (`secret-tool lock` would
    /// wait for a prompt that cannot be shown).
    pub fn lock_default_collection(&self) {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ]);
        assert!(
            out.status.success(),
            "locking the collection failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(self.collection_locked(), "the collection did not lock");
    }

    /// Whether the `login` collection is locked.
    pub fn collection_locked(&self) -> bool {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets/collection/login",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.Secret.Collection",
            "string:Locked",
        ]);
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    fn default_collection_ready(&self) -> bool {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.ReadAlias",
            "string:default",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        out.status.success() && text.contains("/collection/") && !self.collection_locked()
    }

    fn name_has_owner(&self, name: &str) -> bool {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ]);
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    fn dbus_send(&self, args: &[&str]) -> Output {
        self.command("dbus-send")
            .args(["--session", "--print-reply", "--reply-timeout=2000"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run dbus-send")
    }

    /// `secret-tool store --label=… service credstore username PROFILE`
    /// with `value` on stdin.
    pub fn secret_tool_store(&self, profile: &str, value: &str) {
        let mut child = self
            .command("secret-tool")
            .args(["store", "--label=written by secret-tool"])
            .args(["service", "credstore", "username", profile])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run secret-tool store");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(value.as_bytes())
            .expect("write secret");
        let out = child.wait_with_output().expect("secret-tool store");
        assert!(
            out.status.success(),
            "secret-tool store failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `secret-tool lookup service credstore username ACCOUNT`.
    pub fn secret_tool_lookup(&self, account: &str) -> Option<String> {
        let out = self
            .command("secret-tool")
            .args(["lookup", "service", "credstore", "username", account])
            .stdin(Stdio::null())
            .output()
            .expect("run secret-tool lookup");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `username` attributes of every item with `service credstore`.
    pub fn credstore_accounts(&self) -> Vec<String> {
        let out = self
            .command("secret-tool")
            .args(["search", "--all", "--unlock", "service", "credstore"])
            .stdin(Stdio::null())
            .output()
            .expect("run secret-tool search");
        // secret-tool prints the attributes on stderr, one "attribute.username = X" per item.
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("attribute.username = "))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }
}

impl Drop for SecretServiceSession {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            if self.stopped {
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
