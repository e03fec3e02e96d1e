//! Memory hygiene (SPEC §1.4, §8.3): after an identity is loaded, used to
//! sign and dropped, no copy of its private key (raw seed, PKCS#8 DER, the
//! base64 claim) or of its token payload is left anywhere in the process's
//! writable memory.
//!
//! The scan runs in a child process (this test binary, re-run on the
//! ignored `memory_child` test) so the parent's own copies don't count. The
//! child never holds the patterns in clear: they arrive XOR-masked and are
//! compared masked, byte by byte, against `/proc/self/mem`. Matches inside
//! the process's initial environment block (`env_start..env_end` of
//! `/proc/self/stat`) are expected for the env path and excluded: that
//! block belongs to the kernel/exec ABI and cannot be freed.
// Unix only: /proc/self/mem and Unix process APIs. The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::tokens::TokenBuilder;
use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};

const MASK: u8 = 0xA5;

fn masked(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b ^ MASK)).collect()
}

/// Runs the child for one loading path; returns its report.
fn run_child(path: &str) -> (bool, String) {
    let b = TokenBuilder::new();
    let token = b.build();
    let dir = tempfile::tempdir().unwrap();
    let seed = b.private_key_bytes();
    let key_b64 = b.private_key_b64();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&key_b64)
        .unwrap();
    let payload = token.split('.').nth(1).unwrap().to_string();
    let mut cmd_env: Vec<(&str, std::path::PathBuf)> = Vec::new();
    let patterns: [(&str, Vec<u8>); 6] = [
        ("raw Ed25519 seed", seed.to_vec()),
        ("PKCS#8 DER key", der),
        ("base64 private key claim", key_b64.as_bytes().to_vec()),
        (
            "token payload (base64url)",
            payload.as_bytes()[..64].to_vec(),
        ),
        (
            "token signature segment",
            token.split('.').nth(2).unwrap().as_bytes().to_vec(),
        ),
        (
            "decoded payload JSON",
            URL_SAFE_NO_PAD.decode(&payload).unwrap()[..40].to_vec(),
        ),
    ];
    let mut patterns = patterns.to_vec();
    if path.starts_with("sealed") {
        // The sealed backend's key: the home, the key outside it, and (to
        // load) a file sealed to it by the library in this parent process.
        let home = dir.path().join("home");
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let key = keys.join("id.txt");
        credstore::store::keygen(&key, &home).unwrap();
        let identity = std::fs::read_to_string(&key)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap()
            .to_string();
        patterns.push(("age identity (bech32)", identity.into_bytes()));
        cmd_env.push(("CREDSTORE_SEAL_IDENTITY_FILE", key.clone()));
        if path == "sealed" {
            use credstore::store::Store;
            let env = credstore::env::MapEnv::new().with("CREDSTORE_SEAL_IDENTITY_FILE", &key);
            let config = credstore::store::SealConfig::from_env(
                &env,
                &credstore::env::EnvNames::default(),
                &home,
            )
            .unwrap();
            let credential = credstore::credential::Credential::parse(
                credstore::credential::AuthMode::AgentIdentity,
                token.as_bytes(),
                "test",
            )
            .unwrap();
            credstore::store::SealedStore::new(credstore::store::FileStore::new(&home), config)
                .save(
                    &credstore::profile::Profile::default_profile(),
                    &credstore::stored::StoredCredential::from_credential(&credential),
                )
                .unwrap();
        }
    }
    let spec: String = patterns
        .iter()
        .map(|(name, p)| format!("{name}\t{}\n", masked(p)))
        .collect();
    std::fs::write(dir.path().join("patterns"), spec).unwrap();

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "memory_child",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_clear()
    .env("MEMTEST_MODE", path)
    .env("MEMTEST_DIR", dir.path())
    .envs(cmd_env.iter().map(|(k, v)| (k, v)))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .stdin(Stdio::piped());
    match path {
        "env" => {
            cmd.env("CREDSTORE_AGENT_IDENTITY", &token);
        }
        "file" | "leak" => {
            let home = dir.path().join("home");
            std::fs::create_dir(&home).unwrap();
            std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
            let f = home.join("auth.json");
            std::fs::write(
                &f,
                format!("{{\"auth_mode\":\"agent_identity\",\"agent_identity\":\"{token}\"}}\n"),
            )
            .unwrap();
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        _ => {}
    }
    // The client of a signing agent: the agent (another process) holds
    // the token; the scanned child only talks to it.
    let mut agent = None;
    if path == "agent_client" {
        let sock = dir.path().join("agent.sock");
        let mut a = Command::new(env!("CARGO_BIN_EXE_credstore"))
            .args(["agent", "--socket"])
            .arg(&sock)
            .env_clear()
            .env("CREDSTORE_AGENT_IDENTITY", &token)
            .env("CREDSTORE_HOME", dir.path().join("agent-home"))
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/no-bus")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(a.stdout.take().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert!(ready.starts_with("CREDSTORE_AGENT_SOCK="), "{ready}");
        cmd.env("CREDSTORE_AGENT_SOCK", &sock);
        agent = Some(a);
    }
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        if path == "stdin" || path == "sealed-save" {
            stdin.write_all(format!("{token}\n").as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    if let Some(mut a) = agent {
        let _ = a.kill();
        let _ = a.wait();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = stdout
        .lines()
        .filter_map(|l| l.find("MEMTEST").map(|i| &l[i..]))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !report.is_empty(),
        "child gave no report: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && report.contains("MEMTEST clean"),
        report,
    )
}

#[test]
fn no_key_material_survives_loading_from_stdin() {
    let (clean, report) = run_child("stdin");
    assert!(clean, "{report}");
}

#[test]
fn no_key_material_survives_loading_from_env() {
    let (clean, report) = run_child("env");
    assert!(clean, "{report}");
}

#[test]
fn no_key_material_survives_loading_from_file() {
    let (clean, report) = run_child("file");
    assert!(clean, "{report}");
}

/// A client of the signing agent, after it fetched headers and an
/// assertion: no byte of the key, no token (the agent never sent them).
#[test]
fn no_key_material_in_a_client_of_the_agent() {
    let (clean, report) = run_child("agent_client");
    assert!(clean, "{report}");
    assert!(report.contains("MEMTEST clean (agent_client)"), "{report}");
}

/// The sealed backend's load path: the identity file read, the identity
/// parsed, the file decrypted into the document, the document parsed; the
/// identity (in its bech32 form) is a pattern too.
#[test]
fn no_key_material_survives_loading_from_the_sealed_backend() {
    let (clean, report) = run_child("sealed");
    assert!(clean, "{report}");
}

/// The sealed backend's save path (`login --backend sealed`): the token
/// from stdin, sealed and written, read back, used.
#[test]
fn no_key_material_survives_saving_to_the_sealed_backend() {
    let (clean, report) = run_child("sealed-save");
    assert!(clean, "{report}");
}

/// The control: a deliberate copy of the token and of the raw seed must be
/// found, or the scan proves nothing.
#[test]
fn the_scan_finds_a_deliberate_copy() {
    let (clean, report) = run_child("leak");
    assert!(!clean, "the scan missed deliberate copies: {report}");
    assert!(report.contains("raw Ed25519 seed"), "{report}");
    assert!(report.contains("token payload"), "{report}");
}

/// The child: load, sign, drop, scan. Run only by the tests above.
#[test]
#[ignore = "run as a child process by the memory hygiene tests"]
fn memory_child() {
    let (Ok(mode), Ok(dir)) = (std::env::var("MEMTEST_MODE"), std::env::var("MEMTEST_DIR")) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let patterns: Vec<(String, Vec<u8>)> = std::fs::read_to_string(dir.join("patterns"))
        .unwrap()
        .lines()
        .map(|l| {
            let (name, hex) = l.split_once('\t').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (name.to_string(), bytes) // still masked
        })
        .collect();

    if mode == "agent_client" {
        fetch_from_agent();
    } else {
        load_sign_drop(&mode, &dir);
    }

    let env_block = env_block();
    let mut hits = Vec::new();
    scan(&patterns, env_block, &mut hits);
    if hits.is_empty() {
        println!(
            "MEMTEST clean ({mode}): {} patterns, no copies",
            patterns.len()
        );
    } else {
        for h in &hits {
            println!("MEMTEST found {h}");
        }
        std::process::exit(1);
    }
}

#[inline(never)]
fn load_sign_drop(mode: &str, dir: &std::path::Path) {
    use credstore::credential::{AuthMode, Credential};
    use credstore::env::ProcessEnv;
    use credstore::profile::Profile;
    use credstore::resolve::Resolver;
    use credstore::store::FileStore;

    let credential = match mode {
        "stdin" => credstore::input::credential_from_stdin(AuthMode::AgentIdentity).unwrap(),
        "env" => {
            Resolver::new(&ProcessEnv)
                .from_env()
                .unwrap()
                .unwrap()
                .credential
        }
        "file" | "leak" => {
            let store = FileStore::new(dir.join("home"));
            Resolver::new(&ProcessEnv)
                .resolve(&store, &Profile::default_profile())
                .unwrap()
                .unwrap()
                .credential
        }
        "sealed" | "sealed-save" => {
            use credstore::env::EnvNames;
            use credstore::store::{SealConfig, SealedStore, Store};
            let home = dir.join("home");
            let store = SealedStore::new(
                FileStore::new(&home),
                SealConfig::from_env(&ProcessEnv, &EnvNames::default(), &home).unwrap(),
            );
            if mode == "sealed-save" {
                let from_stdin =
                    credstore::input::credential_from_stdin(AuthMode::AgentIdentity).unwrap();
                let stored = credstore::stored::StoredCredential::from_credential(&from_stdin);
                store.save(&Profile::default_profile(), &stored).unwrap();
                drop((stored, from_stdin));
            }
            Resolver::new(&ProcessEnv)
                .resolve(&store, &Profile::default_profile())
                .unwrap()
                .unwrap()
                .credential
        }
        other => panic!("unknown mode {other}"),
    };
    let Credential::AgentIdentity(id) = &credential else {
        panic!("not an agent identity")
    };
    if mode == "leak" {
        std::mem::forget(id.expose_token().to_string());
        std::mem::forget(Box::new(id.signing_key().to_bytes()));
    }
    // The agent runtime paths use the cached key too, and must not leave a
    // decoded copy of it (or of the token) behind either.
    let assertion = id.assertion("task-hygiene").unwrap();
    std::hint::black_box(assertion.expose().len());
    drop(assertion);
    let headers = credential.request_headers(Some("task-hygiene")).unwrap();
    std::hint::black_box(headers.len());
    drop(headers);
    // Deriving the X25519 key for a sealed task id hashes the seed.
    let unopened = credstore::agent::open_sealed_task_id(id, &[7u8; 80]);
    std::hint::black_box(unopened.is_err());
    drop(credential);
}

#[inline(never)]
fn fetch_from_agent() {
    use credstore::env::{EnvNames, ProcessEnv};
    let agent = credstore::sockagent::AgentClient::from_env(&ProcessEnv, &EnvNames::default())
        .expect("CREDSTORE_AGENT_SOCK is set");
    let headers = agent.request_headers(Some("task-hygiene")).unwrap();
    assert!(headers
        .get("Authorization")
        .unwrap()
        .starts_with("AgentAssertion "));
    drop(headers);
    let assertion = agent.assertion("task-hygiene").unwrap();
    std::hint::black_box(assertion.expose().len());
    drop(assertion);
    let status = agent.status().unwrap();
    assert_eq!(status["source"]["kind"], "agent");
    // The agent refuses the token: nothing of it reaches this process.
    assert!(agent.token().is_err());
}

/// `env_start..env_end` from `/proc/self/stat` (fields 50 and 51).
fn env_block() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3.
    (f[50 - 3].parse().unwrap(), f[51 - 3].parse().unwrap())
}

fn scan(patterns: &[(String, Vec<u8>)], env: (u64, u64), hits: &mut Vec<String>) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let range = parts.next().unwrap();
        let perms = parts.next().unwrap();
        let name = line.split_whitespace().nth(5).unwrap_or("[anon]");
        if !perms.starts_with("rw") || name == "[vvar]" || name == "[vsyscall]" {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        for (pname, pat) in patterns {
            let first = pat[0] ^ MASK;
            let mut i = 0;
            while i + pat.len() <= buf.len() {
                if buf[i] == first
                    && buf[i..i + pat.len()]
                        .iter()
                        .zip(pat)
                        .all(|(m, p)| m ^ MASK == *p)
                {
                    let addr = start + i as u64;
                    if !(env.0..env.1).contains(&addr) {
                        hits.push(format!("{pname} at {addr:#x} in {name} ({perms})"));
                    }
                }
                i += 1;
            }
        }
        // Wipe our copy of the region before the next one (it may hold
        // matches, and it is heap memory of this scan).
        buf.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&buf);
    }
}
