//! The signing agent (`credstore agent`) and its clients, as real
//! processes on real sockets: start and stop, socket and directory modes,
//! a peer of another uid refused, malformed and oversized requests, many
//! clients at once (every assertion checked with ring, an independent
//! Ed25519), a dead or stuck agent reported with exit 4 in under 2 s,
//! `token` refused without `--allow-export`, and the audit log.
#![cfg(unix)]

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::tokens::TokenBuilder;
use common::Home;
use credstore::sockagent::AgentClient;
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `credstore agent`, killed on drop if still running.
struct Agent {
    child: Child,
    socket: PathBuf,
    stderr: Option<std::process::ChildStderr>,
}

impl Agent {
    /// Starts `credstore agent ARGS` with `token` as its env credential and
    /// waits for its ready line.
    fn start(home: &Home, token: &str, args: &[&str], env: &[(&str, &Path)]) -> Agent {
        let mut run = home
            .run()
            .env("CREDSTORE_AGENT_IDENTITY", token)
            .arg("agent");
        for a in args {
            run = run.arg(a);
        }
        for (k, v) in env {
            run = run.env(k, v);
        }
        let mut cmd = run.into_command();
        cmd.stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn agent");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let mut stderr = child.stderr.take();
        if line.is_empty() {
            let mut err = String::new();
            if let Some(e) = stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the agent did not start: {err}");
        }
        let rest = line
            .strip_prefix("CREDSTORE_AGENT_SOCK=")
            .unwrap_or_else(|| panic!("ready line: {line:?}"));
        let (path, tail) = rest.split_once("; ").expect("ready line shape");
        assert_eq!(tail, "export CREDSTORE_AGENT_SOCK;\n");
        Agent {
            child,
            socket: PathBuf::from(path),
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits at most `limit` for the agent to exit; its exit code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn stderr_text(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait RunExt {
    fn arg(self, a: &str) -> Self;
}
impl RunExt for common::Run {
    fn arg(self, a: &str) -> Self {
        self.args([a])
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// Checks an `AgentAssertion …` value with ring; returns its task id.
fn ring_check(b: &TokenBuilder, value: &str) -> String {
    let json = URL_SAFE_NO_PAD
        .decode(value.strip_prefix("AgentAssertion ").expect("scheme"))
        .expect("base64url");
    let v: Value = serde_json::from_slice(&json).expect("json");
    let msg = format!(
        "{}:{}:{}",
        v["agent_runtime_id"].as_str().expect("rt"),
        v["task_id"].as_str().expect("task"),
        v["timestamp"].as_str().expect("ts")
    );
    let sig = STANDARD
        .decode(v["signature"].as_str().expect("sig"))
        .expect("b64");
    UnparsedPublicKey::new(&ED25519, b.verifying_key().to_bytes())
        .verify(msg.as_bytes(), &sig)
        .expect("ring verifies the agent's signature");
    v["task_id"].as_str().expect("task").to_string()
}

/// One raw request line; the answer line as JSON.
fn raw(stream: &mut UnixStream, line: &[u8]) -> Value {
    stream.write_all(line).expect("send");
    let mut answer = String::new();
    BufReader::new(&*stream)
        .read_line(&mut answer)
        .expect("answer");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?}: {e}"))
}

fn socket_dir(home: &Home) -> PathBuf {
    let d = home.root().join("s");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn start_modes_and_stop_on_sigterm_and_sigint() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let runtime = home.root().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut agent = Agent::start(&home, &token, &[], &[("XDG_RUNTIME_DIR", &runtime)]);
    let expected = runtime.join("credstore").join("agent-default.sock");
    assert_eq!(agent.socket, expected);
    assert_eq!(mode(&runtime.join("credstore")), 0o700);
    assert_eq!(mode(&expected), 0o600);
    assert!(std::fs::symlink_metadata(&expected)
        .unwrap()
        .file_type()
        .is_socket_like());
    agent.signal("TERM");
    assert_eq!(
        agent.wait(Duration::from_secs(3)),
        Some(0),
        "exit 0 on TERM"
    );
    assert!(!expected.exists(), "the socket is removed on SIGTERM");
    let err = agent.stderr_text();
    assert!(err.contains("signal SIGTERM"), "{err}");
    assert!(!err.contains(&token));

    // Without XDG_RUNTIME_DIR: in the credential directory. SIGINT too.
    let mut agent = Agent::start(&home, &token, &[], &[]);
    assert_eq!(agent.socket, home.store_dir().join("agent-default.sock"));
    assert_eq!(mode(&home.store_dir()), 0o700);
    assert_eq!(mode(&agent.socket), 0o600);
    agent.signal("INT");
    assert_eq!(agent.wait(Duration::from_secs(3)), Some(0), "exit 0 on INT");
    assert!(!agent.socket.exists());
}

#[test]
fn an_agent_whose_socket_was_removed_still_stops_on_sigterm() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let sock = socket_dir(&home).join("a.sock");
    let mut agent = Agent::start(&home, &token, &["--socket", sock.to_str().unwrap()], &[]);
    std::fs::remove_file(&sock).unwrap();
    agent.signal("TERM");
    assert_eq!(
        agent.wait(Duration::from_secs(3)),
        Some(0),
        "exit 0 on TERM with the socket file gone"
    );
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}
impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_socket(self)
    }
}

#[test]
fn clients_ask_the_agent_and_never_see_the_token() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let agent = Agent::start(&home, &token, &["--socket", sock.to_str().unwrap()], &[]);
    let client = || home.run().env("CREDSTORE_AGENT_SOCK", &agent.socket);

    let out = client()
        .args(["assertion", "--task-id", "task-a"])
        .expect(0);
    assert_eq!(ring_check(&b, out.stdout.trim_end()), "task-a");

    let out = client()
        .args(["headers", "--task-id", "task-h", "--json"])
        .expect(0);
    let h = out.json();
    assert_eq!(h["ChatGPT-Account-ID"], "acct-test-1");
    assert_eq!(
        ring_check(&b, h["Authorization"].as_str().unwrap()),
        "task-h"
    );
    let out = client().args(["headers", "--task-id", "t2"]).expect(0);
    assert!(out.stdout.starts_with("Authorization: AgentAssertion "));

    // No task id and no registered task: a usage error, as without agent.
    let out = client().args(["headers"]).expect(2);
    assert!(out.stderr.contains("--task-id"), "{}", out.stderr);

    let out = client().args(["status", "--json"]).expect(0);
    let s = out.json();
    assert_eq!(s["source"]["kind"], "agent");
    assert_eq!(s["source"]["detail"], agent.socket.to_str().unwrap());
    assert_eq!(s["auth_mode"], "agent_identity");
    assert_eq!(s["identity"]["agent_runtime_id"], "rt-test-1");
    assert_eq!(s["agent"]["credential_source"], "CREDSTORE_AGENT_IDENTITY");
    assert_eq!(s["agent"]["dumpable"], false);
    assert_eq!(s["profile"], "default");
    out.assert_no_secret(&token, "status");
    out.assert_no_secret(&b.private_key_b64(), "status");
    let out = client().args(["status"]).expect(0);
    assert!(
        out.stdout.contains("through the signing agent"),
        "{}",
        out.stdout
    );

    // token: refused (exit 1), saying why and what to do.
    let out = client().args(["token"]).expect(1);
    assert!(
        out.stderr.contains("does not export tokens"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--allow-export"), "{}", out.stderr);
    out.assert_no_secret(&token, "token refused");

    // --no-agent: resolve here, where there is nothing.
    client()
        .args(["--no-agent", "headers", "--task-id", "t"])
        .expect(1);
    client().args(["--no-agent", "token"]).expect(1);

    // The library client gives the same as the CLI.
    let lib = AgentClient::new(&agent.socket);
    let a = lib.assertion("task-lib").unwrap();
    assert_eq!(ring_check(&b, a.expose()), "task-lib");
    let h = lib.request_headers(Some("task-lib")).unwrap();
    assert_eq!(h.len(), 2);
    let e = lib.token().unwrap_err();
    assert_eq!(e.exit_code(), 1);
    let e = lib.assertion("bad id").unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
}

#[test]
fn allow_export_answers_token() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let mut agent = Agent::start(
        &home,
        &token,
        &["--socket", sock.to_str().unwrap(), "--allow-export"],
        &[],
    );
    let out = home
        .run()
        .env("CREDSTORE_AGENT_SOCK", &agent.socket)
        .args(["token"])
        .expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));
    agent.signal("TERM");
    agent.wait(Duration::from_secs(3));
    assert!(agent.stderr_text().contains("--allow-export"));
}

#[test]
fn an_api_key_agent_refuses_assertions_and_hands_out_the_key_only_with_export() {
    let home = Home::new();
    let sock = socket_dir(&home).join("k.sock");
    let mut cmd = home
        .run()
        .env("CREDSTORE_API_KEY", "sk-test-agent-key-1234567")
        .args(["agent", "--socket", sock.to_str().unwrap()])
        .into_command();
    cmd.stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("CREDSTORE_AGENT_SOCK="), "{line}");
    let client = || home.run().env("CREDSTORE_AGENT_SOCK", &sock);
    let out = client().args(["assertion", "--task-id", "t"]).expect(1);
    assert!(out.stderr.contains("API key"), "{}", out.stderr);
    let out = client().args(["headers"]).expect(1);
    out.assert_no_secret("sk-test-agent-key-1234567", "headers refused");
    let out = client().args(["status", "--json"]).expect(0);
    assert_eq!(out.json()["auth_mode"], "api_key");
    out.assert_no_secret("sk-test-agent-key-1234567", "status");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn another_uid_is_refused_and_logged() {
    if credstore_platform::effective_uid() != 0 {
        eprintln!("SKIPPED: needs root to run a client as another uid (setpriv)");
        return;
    }
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    // A directory and socket others may reach, so that only the agent's
    // own peer check stands between uid 65534 and a signature.
    let dir = home.root().join("open");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("a.sock");
    let log = home.root().join("audit.log");
    let mut agent = Agent::start(
        &home,
        &token,
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(mode(&sock), 0o600);
    let as_nobody = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        cmd.arg(common::bin());
        cmd.args(extra);
        cmd.env_clear()
            .env("CREDSTORE_AGENT_SOCK", &sock)
            .env("CREDSTORE_HOME", "/nonexistent/credstore-test")
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null());
        cmd.output().expect("setpriv")
    };
    // With the socket's own mode 0600, uid 65534 cannot even connect (its
    // client refuses the socket of another user before trying).
    let out = as_nobody(&["headers", "--task-id", "t"]);
    assert_eq!(out.status.code(), Some(4), "{:?}", out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not your agent"), "{err}");

    // With the socket opened up, the client itself refuses an agent of
    // another uid; and the agent's peer check refuses uid 65534 (a raw
    // client, which does not check who listens).
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&["headers", "--task-id", "t"]);
    assert_eq!(out.status.code(), Some(4), "{:?}", out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not your agent"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    let raw = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "/usr/bin/python3",
            "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
             s.sendall(b'{\"op\":\"assertion\",\"task_id\":\"t\"}\\n')\n\
             print(s.makefile().readline())",
        ])
        .arg(&sock)
        .env_clear()
        .output()
        .expect("setpriv python3");
    let answer = String::from_utf8_lossy(&raw.stdout);
    assert!(answer.contains("refused"), "{answer} {raw:?}");
    assert!(answer.contains("uid 65534"), "{answer}");
    assert!(!answer.contains("AgentAssertion"), "{answer}");
    // The agent's own user is still served.
    home.run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["assertion", "--task-id", "t"])
        .expect(0);
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(3)), Some(0));
    let agent_err = agent.stderr_text();
    assert!(
        agent_err.contains("refused a connection from uid 65534"),
        "{agent_err}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["result"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["peer"]["uid"], 65534);
    assert!(refused[0]["peer"]["pid"].as_u64().is_some());
}

#[test]
fn malformed_and_oversized_requests_get_error_answers() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let mut agent = Agent::start(&home, &token, &["--socket", sock.to_str().unwrap()], &[]);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for bad in [
        &b"not json\n"[..],
        b"{\"op\":\"sign\"}\n",
        b"{\"op\":\"status\",\"extra\":1}\n",
        b"{\"op\":\"assertion\"}\n",
        b"{\"op\":\"assertion\",\"task_id\":\"a b\"}\n",
        b"\xff\xfe\n",
        b"[1,2,3]\n",
        b"\n",
    ] {
        let a = raw(&mut s, bad);
        assert_eq!(a["ok"], false, "{bad:?}");
        assert_eq!(a["error"]["kind"], "usage", "{bad:?}: {a}");
    }
    // The same connection still works after each of them.
    let a = raw(&mut s, b"{\"op\":\"assertion\",\"task_id\":\"t-ok\"}\n");
    assert_eq!(a["ok"], true);
    assert_eq!(ring_check(&b, a["assertion"].as_str().unwrap()), "t-ok");

    // Oversized: an error answer, then the connection is closed.
    let mut big = vec![b'x'; 20 * 1024];
    big.push(b'\n');
    let mut s2 = UnixStream::connect(&sock).unwrap();
    s2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s2.write_all(&big);
    let mut answer = String::new();
    let mut r = BufReader::new(&s2);
    r.read_line(&mut answer).unwrap();
    let a: Value = serde_json::from_str(&answer).unwrap();
    assert!(a["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger than"));
    let mut rest = String::new();
    assert_eq!(r.read_line(&mut rest).unwrap_or(0), 0, "closed after");

    // A client that connects and says nothing does not stop the others.
    let _idle = UnixStream::connect(&sock).unwrap();
    home.run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["assertion", "--task-id", "t"])
        .expect(0);
    assert_eq!(agent.wait(Duration::from_millis(10)), None, "still running");
}

#[test]
fn many_clients_at_once_all_get_valid_signatures() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let _agent = Agent::start(&home, &token, &["--socket", sock.to_str().unwrap()], &[]);
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sock = sock.clone();
            let b = b.clone();
            std::thread::spawn(move || {
                let client = AgentClient::new(&sock).with_timeout(Duration::from_secs(10));
                for i in 0..200 {
                    let task = format!("task-{t}-{i}");
                    let a = client.assertion(&task).expect("assertion");
                    assert_eq!(ring_check(&b, a.expose()), task);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    eprintln!("1600 assertions in {:?}", started.elapsed());
}

#[test]
fn a_dead_or_stuck_agent_is_exit_4_within_2_seconds() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let mut agent = Agent::start(&home, &token, &["--socket", sock.to_str().unwrap()], &[]);
    agent.signal("KILL");
    agent.wait(Duration::from_secs(3));
    assert!(sock.exists(), "SIGKILL leaves the socket behind");
    let t = Instant::now();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["headers", "--task-id", "t"])
        .expect(4);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        out.stderr.contains(sock.to_str().unwrap()),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("CREDSTORE_AGENT_SOCK"),
        "{}",
        out.stderr
    );

    // No socket file at all.
    let missing = sock.with_file_name("none.sock");
    home.run()
        .env("CREDSTORE_AGENT_SOCK", &missing)
        .args(["assertion", "--task-id", "t"])
        .expect(4);

    // An agent that dies mid-request (reads it, then its connection
    // closes), and one that never answers.
    for hang in [false, true] {
        let path = sock.with_file_name(format!("fake-{hang}.sock"));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            if hang {
                std::thread::sleep(Duration::from_secs(4));
            }
            drop(s);
        });
        let t = Instant::now();
        let out = home
            .run()
            .env("CREDSTORE_AGENT_SOCK", &path)
            .args(["headers", "--task-id", "t"])
            .expect(4);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{hang}: {:?}",
            t.elapsed()
        );
        let why = if hang {
            "did not answer"
        } else {
            "closed the connection"
        };
        assert!(out.stderr.contains(why), "{}", out.stderr);
        server.join().unwrap();
    }
}

#[test]
fn a_live_socket_is_never_replaced_and_a_stale_one_is() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let dir = socket_dir(&home);
    let sock = dir.join("a.sock");
    let sock_arg = sock.to_str().unwrap().to_string();
    let mut first = Agent::start(&home, &token, &["--socket", &sock_arg], &[]);
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", &sock_arg])
        .expect(4);
    assert!(out.stderr.contains("already listens"), "{}", out.stderr);
    first.signal("KILL");
    first.wait(Duration::from_secs(3));
    assert!(sock.exists());
    let second = Agent::start(&home, &token, &["--socket", &sock_arg], &[]);
    home.run()
        .env("CREDSTORE_AGENT_SOCK", &second.socket)
        .args(["assertion", "--task-id", "t"])
        .expect(0);

    // A regular file, or a symlink, at the path is never removed.
    let file = dir.join("file.sock");
    std::fs::write(&file, b"keep me").unwrap();
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", file.to_str().unwrap()])
        .expect(2);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", link.to_str().unwrap()])
        .expect(4);
    // A directory others may write to (without the sticky bit).
    let open = home.root().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", open.join("a.sock").to_str().unwrap()])
        .expect(4);
    assert!(out.stderr.contains("chmod 700"), "{}", out.stderr);
    // Sticky (like /tmp) is refused too: another user could be first.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", open.join("b.sock").to_str().unwrap()])
        .expect(4);
    assert!(out.stderr.contains("other users"), "{}", out.stderr);
    assert!(!open.join("b.sock").exists());
}

#[test]
fn a_fake_agent_of_another_uid_is_not_trusted() {
    if credstore_platform::effective_uid() != 0 || !Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIPPED: needs root (setpriv) and /usr/bin/python3");
        return;
    }
    let home = Home::new();
    std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shared = home.root().join("tmp");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let sock = shared.join("agent.sock");
    // uid 65534's fake agent: answers every request with made-up headers.
    let script = r#"
import socket, os, sys, json
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX); s.bind(p); os.chmod(p, 0o666); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.recv(65536)
    c.sendall(json.dumps({"ok": True, "headers": [["Authorization", "AgentAssertion fake"]]}).encode() + b"\n")
    c.close()
"#;
    let mut fake = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["/usr/bin/python3", "-c", script])
        .arg(&sock)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv");
    let mut line = String::new();
    BufReader::new(fake.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let ask = || {
        home.run()
            .env("CREDSTORE_AGENT_SOCK", &sock)
            .args(["headers", "--task-id", "t", "--json"])
            .expect(4)
    };
    // The socket file is uid 65534's.
    let out = ask();
    assert!(out.stderr.contains("not your agent"), "{}", out.stderr);
    assert!(out.stderr.contains("uid 65534"), "{}", out.stderr);
    assert!(!out.stdout.contains("fake"), "{}", out.stdout);
    // Made to look like ours: the listener's own uid (SO_PEERCRED) tells.
    std::os::unix::fs::chown(&sock, Some(0), Some(0)).unwrap();
    let out = ask();
    assert!(out.stderr.contains("served by uid 65534"), "{}", out.stderr);
    assert!(!out.stdout.contains("fake"), "{}", out.stdout);
    let _ = fake.kill();
    let _ = fake.wait();
}

#[test]
fn two_agents_started_at_once_on_one_path_one_serves_the_other_fails() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let dir = socket_dir(&home);
    for round in 0..6 {
        let sock = dir.join(format!("race-{round}.sock"));
        let mut children: Vec<Child> = (0..8)
            .map(|_| {
                let mut cmd = home
                    .run()
                    .env("CREDSTORE_AGENT_IDENTITY", &token)
                    .args(["agent", "--socket", sock.to_str().unwrap()])
                    .into_command();
                cmd.stdin(Stdio::null());
                cmd.spawn().expect("spawn agent")
            })
            .collect();
        let mut served = 0;
        let mut failed = 0;
        for child in &mut children {
            let mut line = String::new();
            let stdout = child.stdout.take().expect("stdout");
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.starts_with("CREDSTORE_AGENT_SOCK=") {
                served += 1;
            } else {
                let status = child.wait().expect("wait");
                let mut err = String::new();
                let _ = child
                    .stderr
                    .take()
                    .expect("stderr")
                    .read_to_string(&mut err);
                assert_eq!(status.code(), Some(4), "{err}");
                assert!(err.contains("already listens"), "{err}");
                failed += 1;
            }
        }
        assert_eq!((served, failed), (1, 7), "round {round}");
        home.run()
            .env("CREDSTORE_AGENT_SOCK", &sock)
            .args(["assertion", "--task-id", "t"])
            .expect(0);
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn an_agent_starting_while_another_holds_the_socket_lock_refuses() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let sock = socket_dir(&home).join("held.sock");
    // What an agent between its stale check and its socket's placing holds.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(sock.with_extension("sock.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut cmd = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", sock.to_str().unwrap()])
        .into_command();
    cmd.stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started although another holds the socket's lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(status.code(), Some(4), "{err}");
    assert!(err.contains("already listens"), "{err}");
    assert!(!sock.exists());
}

#[test]
fn max_idle_stops_the_agent() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let sock = socket_dir(&home).join("a.sock");
    let mut agent = Agent::start(
        &home,
        &token,
        &["--socket", sock.to_str().unwrap(), "--max-idle", "1"],
        &[],
    );
    assert_eq!(agent.wait(Duration::from_secs(4)), Some(0));
    assert!(!sock.exists());
    assert!(agent.stderr_text().contains("idle"));
}

#[test]
fn the_audit_log_has_one_line_per_request_and_no_secret() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let log = home.root().join("logs").join("agent.log");
    let mut agent = Agent::start(
        &home,
        &token,
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    let client = || home.run().env("CREDSTORE_AGENT_SOCK", &sock);
    let a = client()
        .args(["assertion", "--task-id", "task-log-1"])
        .expect(0);
    let h = client()
        .args(["headers", "--task-id", "task-log-2"])
        .expect(0);
    client().args(["token"]).expect(1);
    client().args(["status"]).expect(0);
    let mut s = UnixStream::connect(&sock).unwrap();
    raw(&mut s, b"{oops\n");
    drop(s);
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(3)), Some(0));

    assert_eq!(mode(&log), 0o600);
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        token.as_str(),
        token.split('.').nth(1).unwrap(),
        token.split('.').nth(2).unwrap(),
        &b.private_key_b64(),
        a.stdout.trim_end(),
        h.stdout.lines().next().unwrap(),
    ] {
        assert!(!text.contains(secret), "a secret in the audit log");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.first().unwrap()["event"], "start");
    assert_eq!(lines.last().unwrap()["event"], "stop");
    assert_eq!(lines.last().unwrap()["reason"], "signal SIGTERM");
    let requests: Vec<&Value> = lines.iter().filter(|l| l["event"] == "request").collect();
    let ops: Vec<(&str, &str)> = requests
        .iter()
        .map(|l| (l["op"].as_str().unwrap(), l["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("assertion", "ok"),
            ("headers", "ok"),
            ("token", "error"),
            ("status", "ok"),
            ("invalid", "error"),
        ]
    );
    assert_eq!(requests[0]["task_id"], "task-log-1");
    assert_eq!(requests[1]["task_id"], "task-log-2");
    assert_eq!(requests[2]["error_kind"], "no_credential");
    for r in &requests {
        assert_eq!(r["peer"]["uid"], credstore_platform::effective_uid());
        assert!(r["peer"]["pid"].as_u64().is_some());
        // The CLI client is not dumpable, so only its name is known to an
        // agent without root; as root the executable shows too.
        assert!(r["peer"]["comm"].is_string() || r["peer"]["exe"].is_string());
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
    }
    // The log is appended to, never truncated.
    let agent = Agent::start(
        &home,
        &token,
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    drop(agent);
    let again = std::fs::read_to_string(&log).unwrap();
    assert!(again.starts_with(&text));
    // A log others may read is refused.
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket", sock.to_str().unwrap()])
        .args(["--log", log.to_str().unwrap()])
        .expect(4);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
}

#[test]
fn register_task_through_the_agent_is_cached() {
    let api = common::authapi::AuthApi::start();
    let home = Home::new();
    let token = api.token("rt-plain");
    let sock = socket_dir(&home).join("a.sock");
    let base = api.base_url();
    let _agent = Agent::start(
        &home,
        &token,
        &["--socket", sock.to_str().unwrap(), "--base-url", &base],
        &[],
    );
    let client = || home.run().env("CREDSTORE_AGENT_SOCK", &sock);
    let first = client().args(["register-task"]).expect(0);
    let second = client().args(["register-task"]).expect(0);
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(api.count("rt-plain"), 1, "registered once");
    // headers without --task-id use the registered task.
    let h = client().args(["headers", "--json"]).expect(0);
    let b64 = h.json()["Authorization"]
        .as_str()
        .unwrap()
        .strip_prefix("AgentAssertion ")
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap();
    assert_eq!(
        v["task_id"].as_str().unwrap(),
        first.stdout.trim_end(),
        "the cached task"
    );
    // Another auth API than the agent's is refused.
    let out = client()
        .args(["register-task", "--base-url", "https://other.example"])
        .expect(2);
    assert!(
        out.stderr.contains("registers tasks with"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_client_cannot_name_the_auth_api_of_an_agent_without_one() {
    let api = common::authapi::AuthApi::start();
    let home = Home::new();
    let token = api.token("rt-none");
    let sock = socket_dir(&home).join("a.sock");
    let log = home.root().join("audit.log");
    let base = api.base_url();
    let _agent = Agent::start(
        &home,
        &token,
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    let client = || home.run().env("CREDSTORE_AGENT_SOCK", &sock);
    let out = client()
        .args(["register-task", "--base-url", &base])
        .expect(2);
    assert!(out.stderr.contains("--base-url"), "{}", out.stderr);
    assert!(out.stderr.contains("AUTHAPI_BASE_URL"), "{}", out.stderr);
    assert_eq!(api.count("rt-none"), 0, "nothing was registered");
    // No registered task: headers without a task id is a usage error.
    client().args(["headers", "--json"]).expect(2);
    let text = std::fs::read_to_string(&log).unwrap();
    let reg: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["op"] == "register-task")
        .collect();
    assert_eq!(reg.len(), 1, "{text}");
    assert_eq!(reg[0]["base_url"], base.as_str(), "{text}");
    assert_eq!(reg[0]["result"], "error");
}

#[test]
fn idle_connections_do_not_lock_out_clients() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("a.sock");
    let log = home.root().join("audit.log");
    let _agent = Agent::start(
        &home,
        &token,
        &[
            "--socket",
            sock.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    // 40 connections that never send a byte (more than workers + queue
    // used to hold).
    let idle: Vec<UnixStream> = (0..40)
        .map(|_| UnixStream::connect(&sock).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let value = AgentClient::new(&sock)
        .assertion("task-idle")
        .expect("an answer despite the idle connections");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        t.elapsed()
    );
    ring_check(&b, value.expose());
    drop(idle);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""op":"idle""#), "{text}");
}

#[test]
fn a_peer_outside_the_agents_pid_namespace_is_served_without_a_pid() {
    if credstore_platform::effective_uid() != 0 || !Path::new("/usr/bin/unshare").exists() {
        eprintln!("SKIPPED: needs root and unshare for a pid namespace");
        return;
    }
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let sock = socket_dir(&home).join("ns.sock");
    let log = home.root().join("audit.log");
    let inner = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["agent", "--socket"])
        .args([&sock])
        .args(["--log"])
        .args([&log])
        .into_command();
    // The agent in a pid namespace of its own: the kernel reports the pid
    // of a peer outside it (this test) as 0.
    let mut cmd = std::process::Command::new("/usr/bin/unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--"])
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("unshare");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.starts_with("CREDSTORE_AGENT_SOCK=") {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("SKIPPED: no pid namespace here");
        return;
    }
    let value = AgentClient::new(&sock)
        .assertion("task-ns")
        .expect("served");
    ring_check(&b, value.expose());
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let req: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["op"] == "assertion")
        .collect();
    assert_eq!(req.len(), 1, "{text}");
    assert_eq!(req[0]["result"], "ok", "{text}");
    assert!(req[0]["peer"]["pid"].is_null(), "{text}");
    assert_eq!(req[0]["peer"]["uid"], 0, "{text}");
}

#[test]
fn a_socket_path_too_long_for_sun_path_is_a_usage_error() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    // The temporary name it is bound under fits; the final one does not.
    let sock = socket_dir(&home).join(format!("{}.sock", "a".repeat(110)));
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        // (--max-idle: an agent that did start ends by itself.)
        .args([
            "agent",
            "--max-idle",
            "1",
            "--socket",
            sock.to_str().unwrap(),
        ])
        .expect(2);
    assert!(out.stderr.contains("too long"), "{}", out.stderr);
    assert!(
        !out.stdout.contains("CREDSTORE_AGENT_SOCK"),
        "{}",
        out.stdout
    );
    assert!(!sock.exists());
}

#[test]
fn a_hostile_agents_error_message_is_shown_sanitized_and_cut() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIPPED: needs /usr/bin/python3 for a fake agent");
        return;
    }
    let home = Home::new();
    let sock = socket_dir(&home).join("evil.sock");
    let script = r#"
import socket, sys, json
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
print("ready", flush=True)
c, _ = s.accept(); c.recv(65536)
msg = "\x1b]0;PWNED\x07\x1b[2J\rfake\nline " + "x" * 5000
c.sendall(json.dumps({"ok": False, "error": {"kind": "usage", "message": msg}}).encode() + b"\n")
c.close()
"#;
    let mut fake = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(fake.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let out = home
        .run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["status"])
        .expect(2);
    let _ = fake.kill();
    let _ = fake.wait();
    let err = &out.stderr;
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {err:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(err.len() < 1500, "{} bytes", err.len());
    assert!(err.contains("PWNED"), "{err:?}");
}

#[test]
fn an_agent_trickling_its_answer_is_cut_off_at_one_deadline() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIPPED: needs /usr/bin/python3 for a fake agent");
        return;
    }
    let home = Home::new();
    let sock = socket_dir(&home).join("slow.sock");
    // One byte every 200 ms for 8 s: never silent for a whole timeout.
    let script = r#"
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
print("ready", flush=True)
c, _ = s.accept(); c.recv(65536)
for _ in range(40):
    try:
        c.sendall(b" ")
    except OSError:
        break
    time.sleep(0.2)
"#;
    let mut fake = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(fake.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let t = Instant::now();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["status"])
        .expect(4);
    let took = t.elapsed();
    let _ = fake.kill();
    let _ = fake.wait();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(out.stderr.contains("did not answer"), "{}", out.stderr);
}

#[test]
fn doctor_reports_the_agent() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let sock = socket_dir(&home).join("a.sock");
    let mut agent = Agent::start(&home, &token, &["--socket", sock.to_str().unwrap()], &[]);
    let out = home
        .run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["--backend", "file", "doctor"])
        .output();
    assert!(out.stdout.contains("signing agent:"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{} answers", sock.display())));
    assert!(out.stdout.contains("not dumpable"), "{}", out.stdout);
    assert!(out.stdout.contains("locked in memory"), "{}", out.stdout);
    out.assert_no_secret(&token, "doctor");
    agent.signal("TERM");
    agent.wait(Duration::from_secs(3));
    let out = home
        .run()
        .env("CREDSTORE_AGENT_SOCK", &sock)
        .args(["--backend", "file", "doctor"])
        .expect(1);
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
}
