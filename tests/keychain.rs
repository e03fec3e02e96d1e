//! The keychain backend against a real Secret Service: a private D-Bus
//! session bus and gnome-keyring-daemon per test (see
//! `common/secret_service.rs`). Fails, never skips, when the daemons are
//! not installed.
//!
//! The library is exercised in a helper process (this test binary run
//! again, entry point [`zz_helper_process`]) so each one gets the session's
//! bus address in its own environment: the Secret Service connection reads
//! `DBUS_SESSION_BUS_ADDRESS`, and the test process's environment is never
//! changed. The helper keeps one `KeychainStore` for its whole life, which
//! is what the daemon-restart test needs.
// Unix only: a real gnome-keyring Secret Service on a private D-Bus (Linux). The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;
#[path = "common/secret_service.rs"]
mod secret_service;

use common::tokens;

use credstore::profile::Profile;
use credstore::store::keychain::{open_native_store, Connector};
use credstore::store::{KeychainOptions, KeychainStore, Store};
use credstore::stored::StoredCredential;
use credstore::Error;
use secret_service::SecretServiceSession;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HELPER_VAR: &str = "CREDSTORE_TEST_KEYCHAIN_HELPER";
const REPLY: &str = "@@reply ";

/// A helper process holding one `KeychainStore` on a session.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<String>,
}

#[derive(Default)]
struct HelperOptions {
    timeout_secs: Option<u64>,
    max_entry_len: Option<usize>,
    crash_after_writes: Option<usize>,
}

impl Helper {
    fn start(session: &SecretServiceSession, options: HelperOptions) -> Helper {
        Self::start_with(
            session.command(std::env::current_exe().expect("test exe")),
            options,
        )
    }

    fn start_with(mut command: std::process::Command, options: HelperOptions) -> Helper {
        command
            .args([
                "--exact",
                "zz_helper_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_VAR, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = options.timeout_secs {
            command.env("CREDSTORE_KEYCHAIN_TIMEOUT", t.to_string());
        }
        if let Some(l) = options.max_entry_len {
            command.env("HELPER_MAX_ENTRY_LEN", l.to_string());
        }
        if let Some(n) = options.crash_after_writes {
            command.env("HELPER_CRASH_AFTER_WRITES", n.to_string());
        }
        let mut child = command.spawn().expect("start helper");
        let stdin = child.stdin.take().expect("helper stdin");
        let stdout = child.stdout.take().expect("helper stdout");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print "test zz_helper_process ... " first.
                if let Some((_, reply)) = line.split_once(REPLY) {
                    if tx.send(reply.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Helper {
            child,
            stdin,
            replies,
        }
    }

    /// Sends one request; the reply, or `None` when the helper died.
    fn try_call(&mut self, request: Value) -> Option<Value> {
        writeln!(self.stdin, "{request}").ok()?;
        self.stdin.flush().ok()?;
        match self.replies.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => Some(serde_json::from_str(&line).expect("helper reply is JSON")),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the helper hung on {}", request["op"]),
        }
    }

    fn call(&mut self, request: Value) -> Value {
        self.try_call(request.clone())
            .unwrap_or_else(|| panic!("the helper died on {}", request["op"]))
    }

    fn save(&mut self, profile: &str, mode: &str, token: &str) -> Value {
        self.call(json!({"op": "save", "profile": profile, "mode": mode, "token": token}))
    }

    fn save_ok(&mut self, profile: &str, mode: &str, token: &str) {
        let r = self.save(profile, mode, token);
        assert_eq!(r["ok"], true, "save failed: {r}");
    }

    fn load(&mut self, profile: &str) -> Value {
        self.call(json!({"op": "load", "profile": profile}))
    }

    /// The stored token, `None` when nothing is stored; panics on errors.
    fn load_token(&mut self, profile: &str) -> Option<String> {
        let r = self.load(profile);
        assert_eq!(r["ok"], true, "load failed: {r}");
        r["token"].as_str().map(str::to_string)
    }

    fn delete(&mut self, profile: &str) -> Value {
        self.call(json!({"op": "delete", "profile": profile}))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn api_key_doc(key: &str) -> String {
    format!(r#"{{"auth_mode":"api_key","api_key":"{key}"}}"#)
}

fn long_key(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

fn assert_fast(r: &Value, limit_ms: u64) {
    let ms = r["ms"].as_u64().expect("ms");
    assert!(ms < limit_ms, "took {ms} ms, limit {limit_ms} ms: {r}");
}

fn assert_error(r: &Value, kind: &str, contains: &str) {
    assert_eq!(r["ok"], false, "expected an error: {r}");
    assert_eq!(r["kind"], kind, "{r}");
    assert_eq!(r["exit"], 4, "{r}");
    let msg = r["message"].as_str().unwrap_or("");
    assert!(msg.contains(contains), "{contains:?} not in {msg:?}");
}

// ---------------------------------------------------------------------------
// Conformance: what every Store promises, on the real Secret Service.

#[test]
fn shared_conformance_suite_on_gnome_keyring() {
    let session = SecretServiceSession::start();
    let mut h = Helper::start(&session, HelperOptions::default());
    let r = h.call(json!({"op": "conformance"}));
    assert_eq!(
        r["passed"], true,
        "the shared suite failed in the helper (its panic is above)"
    );
    // And with values split over entries.
    let mut h = Helper::start(
        &session,
        HelperOptions {
            max_entry_len: Some(200),
            ..Default::default()
        },
    );
    let r = h.call(json!({"op": "conformance"}));
    assert_eq!(r["passed"], true, "the shared suite failed on split values");
    assert!(
        session.credstore_accounts().is_empty(),
        "{:?}",
        session.credstore_accounts()
    );
}

#[test]
fn conformance_on_gnome_keyring() {
    let session = SecretServiceSession::start();
    let mut h = Helper::start(&session, HelperOptions::default());
    let jwt = tokens::TokenBuilder::new().build();

    assert_eq!(h.load_token("default"), None, "empty store");
    let r = h.delete("default");
    assert_eq!(
        (r["ok"].clone(), r["deleted"].clone()),
        (json!(true), json!(false))
    );

    h.save_ok("default", "agent_identity", &jwt);
    let r = h.load("default");
    assert_eq!(
        (r["mode"].as_str(), r["token"].as_str()),
        (Some("agent_identity"), Some(&*jwt))
    );
    assert_eq!(r["detail"], "credstore/default");
    assert_eq!(r["kind_of_source"], "keychain");

    // Replacing keeps one entry per profile.
    h.save_ok("default", "api_key", "sk-replaced");
    assert_eq!(h.load_token("default").as_deref(), Some("sk-replaced"));
    assert_eq!(session.credstore_accounts(), vec!["default".to_string()]);

    // Profiles are independent.
    h.save_ok("work.2", "api_key", "sk-work");
    assert_eq!(h.load_token("work.2").as_deref(), Some("sk-work"));
    assert_eq!(h.load_token("default").as_deref(), Some("sk-replaced"));
    let r = h.delete("work.2");
    assert_eq!(r["deleted"], true, "{r}");
    assert_eq!(h.load_token("work.2"), None);
    assert_eq!(h.load_token("default").as_deref(), Some("sk-replaced"));
    assert_eq!(h.delete("default")["deleted"], true);
    assert_eq!(h.delete("default")["deleted"], false);
    assert!(session.credstore_accounts().is_empty());
}

// ---------------------------------------------------------------------------
// Interoperability with the platform's own tool.

#[test]
fn secret_tool_reads_what_credstore_writes() {
    let session = SecretServiceSession::start();
    let mut h = Helper::start(&session, HelperOptions::default());
    let jwt = tokens::TokenBuilder::new().build();
    h.save_ok("default", "agent_identity", &jwt);
    h.save_ok("ci", "api_key", "sk-ci-key");
    let looked_up = session
        .secret_tool_lookup("default")
        .expect("secret-tool lookup");
    assert_eq!(
        looked_up.trim_end(),
        format!(r#"{{"auth_mode":"agent_identity","agent_identity":"{jwt}"}}"#)
    );
    assert_eq!(
        session.secret_tool_lookup("ci").expect("lookup").trim_end(),
        api_key_doc("sk-ci-key")
    );
}

#[test]
fn credstore_reads_what_secret_tool_writes() {
    let session = SecretServiceSession::start();
    let jwt = tokens::TokenBuilder::new().build();
    session.secret_tool_store("doc", &api_key_doc("sk-from-secret-tool"));
    session.secret_tool_store("bare-jwt", &jwt);
    session.secret_tool_store("bare-key", "sk-bare");
    session.secret_tool_store("pasted", &format!(r#"{{"agent_identity":"{jwt}"}}"#));
    let mut h = Helper::start(&session, HelperOptions::default());
    assert_eq!(h.load_token("doc").as_deref(), Some("sk-from-secret-tool"));
    let r = h.load("bare-jwt");
    assert_eq!(
        (r["mode"].as_str(), r["token"].as_str()),
        (Some("agent_identity"), Some(&*jwt))
    );
    let r = h.load("bare-key");
    assert_eq!(
        (r["mode"].as_str(), r["token"].as_str()),
        (Some("api_key"), Some("sk-bare"))
    );
    assert_eq!(h.load("pasted")["mode"], "agent_identity");
    // credstore updates the item secret-tool made rather than adding one.
    h.save_ok("doc", "api_key", "sk-updated");
    assert_eq!(
        session.secret_tool_lookup("doc").unwrap().trim_end(),
        api_key_doc("sk-updated")
    );
    assert_eq!(
        session
            .credstore_accounts()
            .iter()
            .filter(|a| *a == "doc")
            .count(),
        1
    );
    // A corrupt document is reported as such (exit 4), not as "nothing stored".
    session.secret_tool_store("broken", r#"{"auth_mode":"api_key""#);
    assert_error(
        &h.load("broken"),
        "CorruptStore",
        "keychain credstore/broken",
    );
}

// ---------------------------------------------------------------------------
// Split values, with the per-entry limit lowered.

#[test]
fn long_values_are_split_over_entries_and_reassembled() {
    let session = SecretServiceSession::start();
    let opts = || HelperOptions {
        max_entry_len: Some(256),
        ..Default::default()
    };
    let mut h = Helper::start(&session, opts());
    let jwt = tokens::TokenBuilder::new()
        .claim("padding", json!(long_key('p', 800)))
        .build();
    h.save_ok("default", "agent_identity", &jwt);
    let head = session.secret_tool_lookup("default").unwrap();
    assert!(head.starts_with("credstore-split/1 "), "{head}");
    let accounts = session.credstore_accounts();
    let parts: Vec<&String> = accounts
        .iter()
        .filter(|a| a.starts_with("default:split:"))
        .collect();
    let doc_len = format!(r#"{{"auth_mode":"agent_identity","agent_identity":"{jwt}"}}"#).len();
    assert_eq!(parts.len(), doc_len.div_ceil(256), "{accounts:?}");
    for part in &parts {
        assert!(session.secret_tool_lookup(part).unwrap().len() <= 256);
    }
    // Another process reassembles it.
    let mut other = Helper::start(&session, HelperOptions::default());
    assert_eq!(other.load_token("default").as_deref(), Some(&*jwt));
    // A short value replaces it and removes the parts.
    h.save_ok("default", "api_key", "sk-short");
    assert_eq!(session.credstore_accounts(), vec!["default".to_string()]);
    h.save_ok("default", "agent_identity", &jwt);
    assert_eq!(h.delete("default")["deleted"], true);
    assert!(session.credstore_accounts().is_empty());
}

#[test]
fn a_crash_between_part_writes_leaves_the_previous_credential() {
    let session = SecretServiceSession::start();
    let limited = |crash: Option<usize>| HelperOptions {
        max_entry_len: Some(256),
        crash_after_writes: crash,
        ..Default::default()
    };
    let old = long_key('o', 700);
    let new = long_key('n', 900);
    let mut h = Helper::start(&session, limited(None));
    h.save_ok("default", "api_key", &old);
    let before = session.credstore_accounts();
    drop(h);

    // The process dies (abort) after two of the new value's parts.
    let mut crasher = Helper::start(&session, limited(Some(2)));
    assert!(
        crasher
            .try_call(json!({"op": "save", "profile": "default", "mode": "api_key", "token": new}))
            .is_none(),
        "the helper should have crashed"
    );
    let status = crasher.child.wait().expect("wait");
    assert!(!status.success(), "{status}");
    assert_eq!(
        session.credstore_accounts().len(),
        before.len() + 2,
        "two orphan parts"
    );

    let mut h = Helper::start(&session, limited(None));
    assert_eq!(
        h.load_token("default").as_deref(),
        Some(&*old),
        "the old credential, whole"
    );
    // The next save sweeps the orphans.
    h.save_ok("default", "api_key", &new);
    assert_eq!(h.load_token("default").as_deref(), Some(&*new));
    let doc_len = api_key_doc(&new).len();
    assert_eq!(
        session.credstore_accounts().len(),
        1 + doc_len.div_ceil(256)
    );
}

// ---------------------------------------------------------------------------
// Faults: locked, frozen, restarted, absent.

#[test]
fn a_locked_collection_is_an_access_error_not_an_empty_store() {
    let session = SecretServiceSession::start();
    let mut h = Helper::start(&session, HelperOptions::default());
    h.save_ok("default", "api_key", "sk-locked-away");
    session.lock_default_collection();

    let r = h.load("default");
    assert_error(&r, "Backend", "locked");
    assert_fast(&r, 5_000);
    let r = h.call(json!({"op": "probe", "profile": "default"}));
    assert_error(&r, "Backend", "locked");
    // Nothing is deleted or overwritten because a read failed.
    assert_error(&h.delete("default"), "Backend", "locked");
    assert_error(
        &h.save("default", "api_key", "sk-other"),
        "Backend",
        "locked",
    );
    let r = h.load("missing-profile");
    assert!(r["ok"] == false || r["token"].is_null(), "{r}");

    // Unlocked again (the daemon restarted with the password), it is all there.
    let mut session = session;
    session.kill_daemon();
    session.start_daemon();
    assert_eq!(h.load_token("default").as_deref(), Some("sk-locked-away"));
}

#[test]
fn a_frozen_daemon_times_out_instead_of_hanging() {
    let mut session = SecretServiceSession::start();
    let mut h = Helper::start(
        &session,
        HelperOptions {
            timeout_secs: Some(1),
            ..Default::default()
        },
    );
    h.save_ok("default", "api_key", "sk-frozen");
    session.freeze_daemon();
    for op in ["load", "save", "delete", "probe"] {
        let r =
            h.call(json!({"op": op, "profile": "default", "mode": "api_key", "token": "sk-new"}));
        assert_error(&r, "Timeout", "did not answer within 1 s");
        assert_fast(&r, 2_500);
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("CREDSTORE_KEYCHAIN_TIMEOUT"),
            "{r}"
        );
    }
    // A new process is bounded too (connecting needs the daemon).
    let mut fresh = Helper::start(
        &session,
        HelperOptions {
            timeout_secs: Some(1),
            ..Default::default()
        },
    );
    let r = fresh.load("default");
    assert_error(&r, "Timeout", "within 1 s");
    session.thaw_daemon();
    // The same process goes on working; the abandoned save and delete
    // never ran after their deadline.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.load_token("default").as_deref(), Some("sk-frozen"));
}

#[test]
fn a_running_process_survives_a_daemon_restart() {
    let mut session = SecretServiceSession::start();
    let mut h = Helper::start(&session, HelperOptions::default());
    h.save_ok("default", "api_key", "sk-before-restart");
    assert_eq!(
        h.load_token("default").as_deref(),
        Some("sk-before-restart")
    );

    session.kill_daemon();
    // While it is gone the keychain is "not there" (nothing can start it
    // on this bus), reported at once.
    let r = h.load("default");
    assert_error(&r, "BackendUnavailable", "Secret Service");
    assert_fast(&r, 1_000);

    session.start_daemon();
    assert_eq!(
        h.load_token("default").as_deref(),
        Some("sk-before-restart")
    );
    h.save_ok("default", "api_key", "sk-after-restart");
    let r = h.call(json!({"op": "connects"}));
    assert!(r["connects"].as_u64().unwrap() >= 2, "reconnected: {r}");
    assert_eq!(
        session.secret_tool_lookup("default").unwrap().trim_end(),
        api_key_doc("sk-after-restart")
    );
}

#[test]
fn no_secret_service_on_the_bus_is_reported_at_once() {
    let session = SecretServiceSession::bus_only();
    let mut h = Helper::start(&session, HelperOptions::default());
    for op in ["load", "save", "delete", "probe"] {
        let r = h.call(json!({"op": op, "profile": "default", "mode": "api_key", "token": "sk-x"}));
        assert_error(&r, "BackendUnavailable", "no Secret Service");
        assert!(
            r["message"].as_str().unwrap().contains("the file backend"),
            "{r}"
        );
        assert_fast(&r, 1_000);
    }
}

#[test]
fn no_session_bus_is_reported_at_once() {
    let session = SecretServiceSession::bus_only();
    let empty_runtime = session.scratch("empty-runtime");
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", session.home())
        .env("XDG_RUNTIME_DIR", &empty_runtime);
    let mut h = Helper::start_with(command, HelperOptions::default());
    let r = h.load("default");
    assert_error(&r, "BackendUnavailable", "no D-Bus session bus");
    assert!(
        r["message"].as_str().unwrap().contains("the file backend"),
        "{r}"
    );
    assert_fast(&r, 1_000);
    // A bus address that points nowhere is the same.
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}/nothing", empty_runtime.display()),
        );
    let mut h = Helper::start_with(command, HelperOptions::default());
    let r = h.call(json!({"op": "probe"}));
    assert_error(&r, "BackendUnavailable", "no D-Bus session bus");
    assert_fast(&r, 1_000);
}

// ---------------------------------------------------------------------------
// The helper process.

/// Entry point of the helper process; does nothing in a normal test run.
/// Reads one JSON request per line on stdin, answers one `@@reply` line.
#[test]
fn zz_helper_process() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let env = credstore::env::ProcessEnv;
    let mut options =
        KeychainOptions::from_env(&env, &Default::default()).expect("keychain options");
    if let Some(limit) = std::env::var("HELPER_MAX_ENTRY_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options = options.with_max_entry_len(Some(limit));
    }
    let crash_after: Option<usize> = std::env::var("HELPER_CRASH_AFTER_WRITES")
        .ok()
        .and_then(|v| v.parse().ok());
    let connects = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = connects.clone();
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let connector: Connector = std::sync::Arc::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let store = open_native_store()?;
        Ok(match crash_after {
            None => store,
            Some(n) => crash::wrap(store, n, writes.clone()),
        })
    });
    let store = KeychainStore::with_connector(options, connector).with_platform_checks(true);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let req: Value = serde_json::from_str(&line).expect("request JSON");
        let start = Instant::now();
        let profile = req["profile"]
            .as_str()
            .map(|p| Profile::new(p).expect("profile"))
            .unwrap_or_else(Profile::default_profile);
        let result: Result<Value, Error> = match req["op"].as_str().unwrap_or("") {
            "load" => store.load(&profile).map(|c| match c {
                None => json!({"token": null}),
                Some(c) => json!({
                    "token": c.expose_token(),
                    "mode": c.auth_mode().as_str(),
                    "detail": store.describe(&profile).detail,
                    "kind_of_source": store.describe(&profile).kind.as_str(),
                }),
            }),
            "save" => {
                let doc =
                    json!({"auth_mode": req["mode"], req["mode"].as_str().unwrap(): req["token"]});
                let c = StoredCredential::from_document(doc.to_string().as_bytes(), "test")
                    .expect("test document");
                store.save(&profile, &c).map(|_| json!({}))
            }
            "delete" => store
                .delete(&profile)
                .map(|d| json!({"deleted": !d.is_empty()})),
            "probe" => store.probe().map(|()| json!({})),
            "conformance" => {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    common::conformance::run_suite(&store, "kc-")
                }));
                Ok(json!({"passed": run.is_ok()}))
            }
            "connects" => {
                Ok(json!({"connects": connects.load(std::sync::atomic::Ordering::SeqCst)}))
            }
            other => panic!("unknown op {other}"),
        };
        let ms = start.elapsed().as_millis() as u64;
        let mut reply = match result {
            Ok(v) => v,
            Err(e) => json!({
                "ok": false,
                "exit": e.exit_code(),
                "kind": kind(&e),
                "message": e.to_string(),
            }),
        };
        if reply.get("ok").is_none() {
            reply["ok"] = json!(true);
        }
        reply["ms"] = json!(ms);
        println!("{REPLY}{reply}");
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::BackendUnavailable { .. } => "BackendUnavailable",
        Error::Timeout { .. } => "Timeout",
        Error::Backend { .. } => "Backend",
        Error::CorruptStore { .. } => "CorruptStore",
        Error::Usage(_) => "Usage",
        _ => "Other",
    }
}

/// A store that kills the process (abort: no destructors, no flushing)
/// when it is about to make its (n+1)-th write: a crash between writes.
mod crash {
    use credstore::store::keychain::keyring_core::api::{
        Credential, CredentialApi, CredentialStore, CredentialStoreApi,
    };
    use credstore::store::keychain::keyring_core::{Entry, Result};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    pub fn wrap(
        inner: Arc<CredentialStore>,
        n: usize,
        writes: Arc<AtomicUsize>,
    ) -> Arc<CredentialStore> {
        Arc::new(Crashing { inner, n, writes })
    }

    struct Crashing {
        inner: Arc<CredentialStore>,
        n: usize,
        writes: Arc<AtomicUsize>,
    }

    impl std::fmt::Debug for Crashing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Crashing")
        }
    }

    impl CredentialStoreApi for Crashing {
        fn vendor(&self) -> String {
            self.inner.vendor()
        }
        fn id(&self) -> String {
            self.inner.id()
        }
        fn build(
            &self,
            service: &str,
            user: &str,
            m: Option<&HashMap<&str, &str>>,
        ) -> Result<Entry> {
            let inner = self.inner.build(service, user, m)?;
            Ok(Entry::new_with_credential(Arc::new(Cred {
                inner,
                n: self.n,
                writes: self.writes.clone(),
            })))
        }
        fn search(&self, spec: &HashMap<&str, &str>) -> Result<Vec<Entry>> {
            self.inner.search(spec)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    struct Cred {
        inner: Entry,
        n: usize,
        writes: Arc<AtomicUsize>,
    }

    impl std::fmt::Debug for Cred {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Cred")
        }
    }

    impl CredentialApi for Cred {
        fn set_secret(&self, secret: &[u8]) -> Result<()> {
            if self.writes.fetch_add(1, Ordering::SeqCst) >= self.n {
                std::process::abort();
            }
            self.inner.set_secret(secret)
        }
        fn get_secret(&self) -> Result<Vec<u8>> {
            self.inner.get_secret()
        }
        fn delete_credential(&self) -> Result<()> {
            self.inner.delete_credential()
        }
        fn get_credential(&self) -> Result<Option<Arc<Credential>>> {
            Ok(None)
        }
        fn get_specifiers(&self) -> Option<(String, String)> {
            self.inner.get_specifiers()
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }
}
