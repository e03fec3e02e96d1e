//! Concurrency on the file backend (SPEC §4.1, §8.4): many writers (`login`
//! processes and library `FileStore::save` calls from threads, each with its
//! own lock descriptor) and many readers (`token` processes and library
//! `FileStore::load` calls) at once. Readers take no lock and must always
//! get a whole credential from the written set; the final state is one of
//! the written ones; no temp file is left.

mod common;

use common::tokens::TokenBuilder;
use common::{assert_whole, dir_names, Home};
use credstore::credential::{AuthMode, Credential};
use credstore::profile::Profile;
use credstore::store::{FileStore, Store};
use credstore::stored::StoredCredential;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLI_WRITERS: usize = 4;
const CLI_LOGINS_EACH: usize = 8;
const LIB_WRITERS: usize = 2;
const LIB_SAVES_EACH: usize = 150;
const CLI_READERS: usize = 2;
const LIB_READERS: usize = 2;

fn stored(mode: AuthMode, token: &str) -> StoredCredential {
    StoredCredential::from_credential(&Credential::parse(mode, token.as_bytes(), "t").unwrap())
}

fn mode_of(token: &str) -> AuthMode {
    if token.starts_with("sk-") {
        AuthMode::ApiKey
    } else {
        AuthMode::AgentIdentity
    }
}

fn login_args(token: &str) -> [&'static str; 4] {
    match mode_of(token) {
        AuthMode::ApiKey => ["login", "--with-api-key", "--backend", "file"],
        AuthMode::AgentIdentity => ["login", "--with-agent-identity", "--backend", "file"],
    }
}

/// The written set: agent identities of different sizes and API keys.
fn written_set() -> Vec<String> {
    let mut tokens: Vec<String> = (0..3)
        .map(|i| {
            TokenBuilder::new()
                .claim("pad", serde_json::json!("q".repeat(i * 4000)))
                .build()
        })
        .collect();
    tokens.push("sk-concurrency-key-one".into());
    tokens.push(format!("sk-concurrency-key-two-{}", "k".repeat(3000)));
    tokens
}

struct Figures {
    cli_writes: AtomicUsize,
    lib_writes: AtomicUsize,
    logouts: AtomicUsize,
    cli_reads: AtomicUsize,
    lib_reads: AtomicUsize,
    absent_reads: AtomicUsize,
}

impl Figures {
    fn new() -> Figures {
        Figures {
            cli_writes: AtomicUsize::new(0),
            lib_writes: AtomicUsize::new(0),
            logouts: AtomicUsize::new(0),
            cli_reads: AtomicUsize::new(0),
            lib_reads: AtomicUsize::new(0),
            absent_reads: AtomicUsize::new(0),
        }
    }
    fn get(a: &AtomicUsize) -> usize {
        a.load(Ordering::Relaxed)
    }
}

/// Runs writers and readers together. With `logouts`, one more thread
/// removes the credential now and then, so readers may also find nothing
/// (exit 1 / `Ok(None)`), but never an error or a partial credential.
fn run(logouts: bool) -> (Figures, Duration, Vec<String>, Home) {
    let home = Home::new();
    let tokens = written_set();
    home.run()
        .args(login_args(&tokens[0]))
        .stdin(&tokens[0])
        .expect(0);
    let store = FileStore::new(home.store_dir());
    let profile = Profile::default_profile();
    let figures = Figures::new();
    let writers_done = AtomicBool::new(false);
    let start = Instant::now();

    std::thread::scope(|s| {
        let (home, tokens, store, profile, figures, done) =
            (&home, &tokens, &store, &profile, &figures, &writers_done);
        let mut writers = Vec::new();
        for w in 0..CLI_WRITERS {
            writers.push(s.spawn(move || {
                for i in 0..CLI_LOGINS_EACH {
                    let t = &tokens[(w + i) % tokens.len()];
                    let out = home.run().args(login_args(t)).stdin(t).output();
                    assert_eq!(out.code, 0, "login failed: {}", out.stderr);
                    figures.cli_writes.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for w in 0..LIB_WRITERS {
            writers.push(s.spawn(move || {
                for i in 0..LIB_SAVES_EACH {
                    let t = &tokens[(w * 7 + i) % tokens.len()];
                    store
                        .save(profile, &stored(mode_of(t), t))
                        .unwrap_or_else(|e| panic!("save: {e}"));
                    figures.lib_writes.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        if logouts {
            writers.push(s.spawn(move || {
                for _ in 0..12 {
                    let out = home.run().args(["logout", "--backend", "file"]).output();
                    assert!(
                        out.code == 0 || out.code == 1,
                        "logout failed: {}",
                        out.stderr
                    );
                    figures.logouts.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(15));
                }
            }));
        }
        let mut readers = Vec::new();
        for _ in 0..CLI_READERS {
            readers.push(s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let out = home.run().args(["token", "--backend", "file"]).output();
                    match out.code {
                        0 => {
                            let got = out.stdout.strip_suffix('\n').expect("newline");
                            assert!(
                                tokens.iter().any(|t| t == got),
                                "a reader got a token that was never written ({} bytes)",
                                got.len()
                            );
                        }
                        1 if logouts => {
                            figures.absent_reads.fetch_add(1, Ordering::Relaxed);
                        }
                        code => panic!("token exited {code}: {}", out.stderr),
                    }
                    figures.cli_reads.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for _ in 0..LIB_READERS {
            readers.push(s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    match store.load(profile) {
                        Ok(Some(doc)) => {
                            assert!(
                                tokens.iter().any(|t| t == doc.expose_token()),
                                "load returned a token that was never written"
                            );
                            assert_eq!(doc.auth_mode(), mode_of(doc.expose_token()));
                        }
                        Ok(None) if logouts => {
                            figures.absent_reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => panic!("load found nothing while a credential was stored"),
                        Err(e) => panic!("load failed under concurrent writes: {e}"),
                    }
                    figures.lib_reads.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for w in writers {
            w.join().expect("writer");
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().expect("reader");
        }
    });
    let elapsed = start.elapsed();
    (figures, elapsed, tokens, home)
}

#[test]
fn concurrent_writers_and_readers_always_see_a_whole_credential() {
    let (f, elapsed, tokens, home) = run(false);
    let last = assert_whole(&home.auth_json(), &tokens);
    assert!(last.is_some(), "final state is one of the written ones");
    assert_eq!(
        dir_names(&home.store_dir()),
        [".lock", "auth.json"],
        "no temp file left"
    );
    let g = Figures::get;
    eprintln!(
        "concurrency: {} writes ({} login processes from {CLI_WRITERS} threads, {} library saves \
         from {LIB_WRITERS} threads) against {} reads ({} token processes, {} library loads); \
         partial or unknown reads: 0; elapsed {elapsed:.1?}",
        g(&f.cli_writes) + g(&f.lib_writes),
        g(&f.cli_writes),
        g(&f.lib_writes),
        g(&f.cli_reads) + g(&f.lib_reads),
        g(&f.cli_reads),
        g(&f.lib_reads),
    );
    assert_eq!(g(&f.cli_writes), CLI_WRITERS * CLI_LOGINS_EACH);
    assert!(g(&f.cli_reads) > 0 && g(&f.lib_reads) > 0);
}

#[test]
fn concurrent_logins_logouts_and_readers() {
    let (f, elapsed, tokens, home) = run(true);
    // The final state: absent or one of the written documents.
    let last = assert_whole(&home.auth_json(), &tokens);
    let expected: &[&str] = if last.is_some() {
        &[".lock", "auth.json"]
    } else {
        &[".lock"]
    };
    assert_eq!(dir_names(&home.store_dir()), expected, "no temp file left");
    let g = Figures::get;
    eprintln!(
        "concurrency with logouts: {} writes and {} logouts against {} reads ({} found nothing \
         between a logout and the next login); errors or partial reads: 0; elapsed {elapsed:.1?}",
        g(&f.cli_writes) + g(&f.lib_writes),
        g(&f.logouts),
        g(&f.cli_reads) + g(&f.lib_reads),
        g(&f.absent_reads),
    );
}
