//! Crash safety at scale (SPEC §4.1, §8.4): hundreds of `credstore login
//! --backend file` (and `--backend sealed`) processes, each SIGKILLed at a random moment of its run
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
use common::{assert_whole, assert_whole_sealed, dir_names, mode, Home, Rng, SealKey};
use serde_json::json;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const KILLS: usize = 300;
const SEALED_KILLS: usize = 200;

/// One backend under test: how to log in, where the credential lands and
/// how a reader checks it is whole.
struct Target<'a> {
    backend: &'static str,
    /// The credential file's name in the home.
    file: &'static str,
    /// The sealed backend's key (outside the home), when sealed.
    key: Option<&'a SealKey>,
    /// Everything the home holds after a finished login.
    settled: &'static [&'static str],
}

impl Target<'_> {
    fn is_temp(&self, name: &str) -> bool {
        name.starts_with(&format!(".{}.", self.file)) && name.ends_with(".tmp")
    }

    fn temps(&self, home: &Home) -> Vec<String> {
        dir_names(&home.store_dir())
            .into_iter()
            .filter(|n| self.is_temp(n))
            .collect()
    }

    /// What a reader sees: nothing or a whole known document (panics otherwise).
    fn read(&self, home: &Home, known: &[String]) -> Option<String> {
        match self.key {
            Some(key) => assert_whole_sealed(home, key, known),
            None => assert_whole(&home.store_dir().join(self.file), known),
        }
    }

    /// Starts a login of `token`, feeds stdin, and returns the child.
    fn spawn_login(&self, home: &Home, token: &str) -> std::process::Child {
        let mut run =
            home.run()
                .args(["login", "--with-agent-identity", "--backend", self.backend]);
        if let Some(key) = self.key {
            run = run.seal_key(key);
        }
        let mut cmd = run.into_command();
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
}

#[test]
fn sigkilled_logins_leave_the_old_or_the_new_document() {
    let home = Home::new();
    let target = Target {
        backend: "file",
        file: "auth.json",
        key: None,
        settled: &[".lock", "auth.json"],
    };
    sigkilled_logins(&home, &target, KILLS);
}

/// The sealed backend writes with the file backend's code: the same kills
/// find the old or the new sealed file, always one that decrypts whole.
#[test]
fn sigkilled_sealed_logins_leave_the_old_or_the_new_sealed_file() {
    let home = Home::new();
    let key = SealKey::new(&home, "id.txt");
    let target = Target {
        backend: "sealed",
        file: "auth.json.age",
        key: Some(&key),
        // The first login remembers the backend (auto never reads sealed);
        // the calibration logins write config.toml before any kill.
        settled: &[".lock", "auth.json.age", "config.toml"],
    };
    sigkilled_logins(&home, &target, SEALED_KILLS);
}

fn sigkilled_logins(home: &Home, target: &Target<'_>, kills: usize) {
    let seed = Rng::seed_from("CREDSTORE_CRASH_SEED");
    let mut rng = Rng::new(seed);
    let path = home.store_dir().join(target.file);
    let backend = target.backend;

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
        let status = target.spawn_login(home, t).wait().expect("wait");
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
    for i in 0..kills {
        let token = &tokens[i % tokens.len()];
        let before = target.read(home, &tokens);
        let temps_before = target.temps(home);
        let delay = Duration::from_micros(rng.below(max_delay_us));

        let mut child = target.spawn_login(home, token);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; fails harmlessly if it has exited
        let status = child.wait().expect("wait");

        let after = target.read(home, &tokens);
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
        let temps_after = target.temps(home);
        if status.success() {
            completed += 1;
            assert_eq!(
                dir_names(&home.store_dir()),
                target.settled,
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
    let status = target.spawn_login(home, last).wait().expect("wait");
    assert!(status.success());
    assert_eq!(
        dir_names(&home.store_dir()),
        target.settled,
        "stray temp files after the final write"
    );
    assert_eq!(target.read(home, &tokens).as_deref(), Some(last.as_str()));

    let elapsed = start.elapsed();
    eprintln!(
        "crash safety ({backend}): {kills} logins, {killed} SIGKILLed ({before_write} before writing, \
         {mid_write} mid-write with a temp file left, {after_rename} after the rename), \
         {completed} completed; torn or empty files: 0; stray temp files after the next \
         write: 0; typical login {typical:?}; elapsed {elapsed:.1?}; seed {seed}"
    );
    // The test must actually have hit each phase, or it proves little.
    // (Timing on a shared machine varies; a quarter is a loose floor.)
    assert!(
        killed >= kills / 4,
        "too few kills landed in a run ({killed}, seed {seed})"
    );
    assert!(mid_write > 0, "no kill landed mid-write (seed {seed})");
}
