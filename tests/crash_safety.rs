//! Crash safety at scale (SPEC §4.1, §8.4): hundreds of `credstore login
//! --backend file` processes, each SIGKILLed at a random moment of its run
//! (start-up, reading stdin, parsing, waiting for the lock, writing the temp
//! file, fsync, rename, directory fsync). After every kill the credential
//! file must be absent (before the first write) or a whole document — the
//! one before this login or the one it was writing — never torn, never
//! empty, never gone once written; after every login that finished, no
//! stray temp file may remain.
//!
//! The delays come from a seeded generator: the seed is printed, and
//! `CREDSTORE_CRASH_SEED=<seed>` in the test's environment replays a run.
// Unix only: SIGKILLed writers and Unix file modes. The Windows side is
// checked by scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::{assert_whole, dir_names, mode, Home, Rng};
use serde_json::json;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const KILLS: usize = 300;
const LOGIN: [&str; 4] = ["login", "--with-agent-identity", "--backend", "file"];

fn is_temp(name: &str) -> bool {
    name.starts_with(".auth.json.") && name.ends_with(".tmp")
}

fn temps(home: &Home) -> Vec<String> {
    dir_names(&home.store_dir())
        .into_iter()
        .filter(|n| is_temp(n))
        .collect()
}

/// Starts a login of `token`, feeds stdin, and returns the child.
fn spawn_login(home: &Home, token: &str) -> std::process::Child {
    let mut cmd = home.run().args(LOGIN).into_command();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn login");
    let mut stdin = child.stdin.take().expect("stdin");
    // A token is at most 16 KiB: it fits the pipe buffer, so this does not
    // block; an early kill may close the pipe (EPIPE), which is fine.
    let _ = stdin.write_all(token.as_bytes());
    drop(stdin);
    child
}

#[test]
fn sigkilled_logins_leave_the_old_or_the_new_document() {
    let seed = Rng::seed_from("CREDSTORE_CRASH_SEED");
    let mut rng = Rng::new(seed);
    let home = Home::new();
    let path = home.auth_json();

    // Small (~700 B) and big (~15 KiB, near the 16 KiB limit) tokens,
    // alternated so that the written document's size varies from one
    // login to the next.
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(TokenBuilder::new().build());
        tokens.push(
            TokenBuilder::new()
                .claim("pad", json!(format!("{i}{}", "p".repeat(11_000))))
                .build(),
        );
    }
    assert!(tokens.iter().all(|t| t.len() <= 16 * 1024));

    // Calibrate: how long a whole login takes here, so the kill delays
    // spread over a whole run rather than all landing before or after it.
    let mut runs = Vec::new();
    for t in tokens.iter().take(4) {
        let start = Instant::now();
        let status = spawn_login(&home, t).wait().expect("wait");
        assert!(status.success(), "calibration login failed");
        runs.push(start.elapsed());
    }
    runs.sort();
    let typical = runs[runs.len() / 2];
    // Delays uniform in [0, 1.2 × typical]: most kills land inside a run.
    let max_delay_us = (typical.as_micros() as u64 * 6 / 5).max(1000);
    std::fs::remove_file(&path).expect("start from an absent file");

    let start = Instant::now();
    let (mut killed, mut completed) = (0usize, 0usize);
    let (mut before_write, mut mid_write, mut after_rename) = (0usize, 0usize, 0usize);
    let mut written_once = false;
    for i in 0..KILLS {
        let token = &tokens[i % tokens.len()];
        let before = assert_whole(&path, &tokens);
        let temps_before = temps(&home);
        let delay = Duration::from_micros(rng.below(max_delay_us));

        let mut child = spawn_login(&home, token);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; fails harmlessly if it has exited
        let status = child.wait().expect("wait");

        let after = assert_whole(&path, &tokens);
        assert!(
            after == before || after.as_deref() == Some(token.as_str()),
            "kill {i} (seed {seed}, delay {delay:?}): the file holds neither the old nor the new document"
        );
        if written_once {
            assert!(
                after.is_some(),
                "kill {i} (seed {seed}): the file disappeared"
            );
        }
        if after.is_some() {
            written_once = true;
            assert_eq!(mode(&path), 0o600, "kill {i}: mode");
        }
        let temps_after = temps(&home);
        if status.success() {
            completed += 1;
            assert_eq!(
                dir_names(&home.store_dir()),
                [".lock", "auth.json"],
                "login {i} (seed {seed}) finished: no stray temp file may remain"
            );
        } else {
            killed += 1;
            if temps_after.iter().any(|t| !temps_before.contains(t)) {
                mid_write += 1; // killed between creating and renaming its temp file
            } else if after != before {
                after_rename += 1; // renamed, killed before it could exit
            } else {
                before_write += 1;
            }
        }
    }

    // The next successful write sweeps every temp file a kill left behind.
    let last = &tokens[0];
    let status = spawn_login(&home, last).wait().expect("wait");
    assert!(status.success());
    assert_eq!(
        dir_names(&home.store_dir()),
        [".lock", "auth.json"],
        "stray temp files after the final write"
    );
    assert_eq!(assert_whole(&path, &tokens).as_deref(), Some(last.as_str()));

    let elapsed = start.elapsed();
    eprintln!(
        "crash safety: {KILLS} logins, {killed} SIGKILLed ({before_write} before writing, \
         {mid_write} mid-write with a temp file left, {after_rename} after the rename), \
         {completed} completed; torn or empty files: 0; stray temp files after the next \
         write: 0; typical login {typical:?}; elapsed {elapsed:.1?}; seed {seed}"
    );
    // The test must actually have hit each phase, or it proves little.
    // (Timing on a shared machine varies; a quarter is a loose floor.)
    assert!(
        killed >= KILLS / 4,
        "too few kills landed in a run ({killed}, seed {seed})"
    );
    assert!(mid_write > 0, "no kill landed mid-write (seed {seed})");
}
