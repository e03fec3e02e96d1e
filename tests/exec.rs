//! `credstore exec` as a user runs it: the child's environment holds no
//! credential variable but an agent socket that works (and is gone once
//! the child exits), `--token-env` hands the token over, the secrets are
//! masked in the child's output unless `--no-mask`, and the child's exit
//! code and signals are credstore's.
#![cfg(unix)]

mod common;

use common::tokens::TokenBuilder;
use common::Home;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const CREDENTIAL_VARS: [&str; 4] = [
    "CREDSTORE_API_KEY",
    "CREDSTORE_API_KEY_FILE",
    "CREDSTORE_AGENT_IDENTITY",
    "CREDSTORE_AGENT_IDENTITY_FILE",
];

fn env_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn the_child_has_an_agent_and_no_credential_variable() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .env("CREDSTORE_AGENT_SOCK", "/nonexistent/inherited.sock")
        .args(["exec", "--", "env"])
        .expect(0);
    let names = env_names(&out.stdout);
    for v in CREDENTIAL_VARS {
        assert!(!names.iter().any(|n| n == v), "{v} reached the child");
    }
    assert!(names.iter().any(|n| n == "CREDSTORE_AGENT_SOCK"));
    assert!(!out.stdout.contains("/nonexistent/inherited.sock"));
    out.assert_no_secret(&token, "exec env");

    // Both kinds through _FILE variables: neither reaches the child.
    let dir = home.root().join("files");
    std::fs::create_dir(&dir).unwrap();
    let key_file = dir.join("key");
    let id_file = dir.join("id");
    std::fs::write(&key_file, "sk-test-exec-key-0123456789\n").unwrap();
    std::fs::write(&id_file, format!("{token}\n")).unwrap();
    let out = home
        .run()
        .env("CREDSTORE_API_KEY_FILE", &key_file)
        .env("CREDSTORE_AGENT_IDENTITY_FILE", &id_file)
        .args(["exec", "--", "env"])
        .expect(0);
    let names = env_names(&out.stdout);
    for v in CREDENTIAL_VARS {
        assert!(!names.iter().any(|n| n == v), "{v} reached the child");
    }
}

#[test]
fn the_child_signs_through_its_agent_which_is_gone_afterwards() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args([
            "exec",
            "--",
            "sh",
            "-c",
            "echo \"sock=$CREDSTORE_AGENT_SOCK\"; \"$0\" headers --task-id task-exec --json",
            common::bin(),
        ])
        .expect(0);
    let mut lines = out.stdout.lines();
    let sock = PathBuf::from(lines.next().unwrap().strip_prefix("sock=").unwrap());
    let headers: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert!(headers["Authorization"]
        .as_str()
        .unwrap()
        .starts_with("AgentAssertion "));
    assert!(sock
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("exec-"));
    assert!(!sock.exists(), "the socket is removed when the child exits");
    out.assert_no_secret(&token, "exec headers");
}

#[test]
fn output_is_masked_unless_no_mask() {
    let home = Home::new();
    let b = TokenBuilder::new();
    let token = b.build();
    let key_file = home.root().join("key.b64");
    std::fs::write(&key_file, format!("key: {}\n", b.private_key_b64())).unwrap();
    let script = "echo \"token=$TOK\"; echo \"$TOK\" >&2; cat \"$0\"; \
                  echo \"$TOK\" | cut -d. -f2; printf 'no newline %s' \"$TOK\"";
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["exec", "--token-env", "TOK", "--", "sh", "-c", script])
        .arg_path(&key_file)
        .expect(0);
    assert_eq!(
        out.stdout,
        "token=<redacted>\nkey: <redacted>\n<redacted>\nno newline <redacted>"
    );
    assert!(out.stderr.contains("<redacted>\n"), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: --token-env TOK"),
        "{}",
        out.stderr
    );
    out.assert_no_secret(&token, "masked");
    out.assert_no_secret(token.split('.').nth(1).unwrap(), "masked payload");
    out.assert_no_secret(&b.private_key_b64(), "masked key");

    // --no-mask: the child's bytes as they are (a throwaway test token).
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["exec", "--no-mask", "--token-env", "TOK", "--", "sh", "-c"])
        .args(["echo \"$TOK\""])
        .expect(0);
    assert_eq!(out.stdout, format!("{token}\n"));

    // An API key is masked too.
    let out = home
        .run()
        .env("CREDSTORE_API_KEY", "sk-test-exec-key-0123456789")
        .args(["exec", "--token-env", "OPENAI_API_KEY", "--", "sh", "-c"])
        .args(["echo \"Bearer $OPENAI_API_KEY\""])
        .expect(0);
    assert_eq!(out.stdout, "Bearer <redacted>\n");
    assert!(!out.stderr.contains("warning"), "no warning for an API key");
}

#[test]
fn exit_codes_are_the_childs() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let run = || home.run().env("CREDSTORE_AGENT_IDENTITY", &token);
    run().args(["exec", "--", "sh", "-c", "exit 7"]).expect(7);
    run().args(["exec", "--no-mask", "--", "true"]).expect(0);
    let out = run()
        .args(["exec", "--", "/nonexistent/credstore-test-cmd"])
        .expect(127);
    assert!(out.stderr.contains("cannot run"), "{}", out.stderr);
    // Nothing to hand over: credstore's own exit code, nothing run.
    home.run().args(["exec", "--", "true"]).expect(1);
    home.run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["exec", "--token-env", "1BAD", "--", "true"])
        .expect(2);
}

/// Starts `credstore exec -- sh -c SCRIPT` and waits for its first line.
fn start(
    home: &Home,
    token: &str,
    script: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut cmd = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", token)
        .args(["exec", "--", "sh", "-c", script])
        .into_command();
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, out)
}

fn wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "exec did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_reach_the_child_and_its_death_is_credstores() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    for (sig, code) in [("TERM", 42), ("INT", 43)] {
        let script = format!(
            "trap 'echo got-{sig}; exit {code}' {sig}; echo ready; while :; do sleep 0.05; done"
        );
        let (mut child, mut out) = start(&home, &token, &script);
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let status = wait(&mut child);
        assert_eq!(status.code(), Some(code), "{sig}");
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, format!("got-{sig}\n"));
    }
    // A child killed by a signal: credstore ends by the same signal.
    let (mut child, _out) = start(&home, &token, "echo ready; kill -TERM $$");
    let status = wait(&mut child);
    assert_eq!(status.signal(), Some(15), "{status:?}");
}

trait ArgPath {
    fn arg_path(self, p: &std::path::Path) -> Self;
}
impl ArgPath for common::Run {
    fn arg_path(self, p: &std::path::Path) -> Self {
        self.args([p])
    }
}

#[test]
fn a_child_that_removes_the_socket_does_not_hang_exec() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let mut cmd = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args([
            "exec",
            "--",
            "sh",
            "-c",
            "rm \"$CREDSTORE_AGENT_SOCK\"; exit 3",
        ])
        .into_command();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let deadline = started + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("exec hung after its child removed the socket");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn a_pkcs8_v1_key_claim_is_masked_in_every_form() {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let home = Home::new();
    let base = TokenBuilder::new();
    let seed = base.private_key_bytes();
    // A throwaway key, its claim in PKCS#8 v1 (RFC 8410) DER.
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&seed);
    let claim = STANDARD.encode(&v1);
    assert!(claim.starts_with("MC4CAQAw"));
    let v2 = base
        .signing_key()
        .to_pkcs8_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let b = base.claim(
        "agent_private_key",
        serde_json::Value::String(claim.clone()),
    );
    let token = b.build();
    let mut forms = vec![claim.clone()];
    for bytes in [&v1[..], &v2[..], &seed[..]] {
        for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(e.encode(bytes));
        }
    }
    forms.push(seed.iter().map(|b| format!("{b:02x}")).collect());
    forms.push(seed.iter().map(|b| format!("{b:02X}")).collect());
    // As a JSON encoder may write it.
    for f in forms.clone() {
        if f.contains('/') {
            forms.push(f.replace('/', "\\/"));
        }
    }
    forms.push(token.split('.').nth(1).unwrap().to_string());
    let file = home.root().join("forms.txt");
    let text: String = forms.iter().map(|f| format!("k: {f}\n")).collect();
    std::fs::write(&file, &text).unwrap();
    let out = home
        .run()
        .env("CREDSTORE_AGENT_IDENTITY", &token)
        .args(["exec", "--", "cat"])
        .arg_path(&file)
        .expect(0);
    // Not printed on failure: which lines were left is enough.
    let left: Vec<usize> = out
        .stdout
        .lines()
        .enumerate()
        .filter(|(_, l)| *l != "k: <redacted>")
        .map(|(i, _)| i)
        .collect();
    assert!(
        left.is_empty(),
        "forms not masked: {left:?} of {}",
        forms.len()
    );
    assert_eq!(out.stdout.lines().count(), forms.len());
    for f in &forms {
        out.assert_no_secret(f, "a form of the v1 key");
    }
}

#[test]
fn vault_and_sealed_backend_secrets_do_not_reach_the_child() {
    let home = Home::new();
    let token = TokenBuilder::new().build();
    let vars = [
        "VAULT_TOKEN",
        "BAO_TOKEN",
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
        "VAULT_WRAPPED_SECRET_ID",
        "CREDSTORE_VAULT_JWT_FILE",
        "CREDSTORE_SEAL_IDENTITY_FILE",
        "CREDSTORE_SEAL",
        "CREDSTORE_SEAL_CREDENTIAL",
    ];
    let mut run = home.run().env("CREDSTORE_AGENT_IDENTITY", &token);
    for v in vars {
        run = run.env(v, "test-value-not-a-secret");
    }
    let out = run.args(["exec", "--", "env"]).expect(0);
    let names = env_names(&out.stdout);
    for v in vars {
        assert!(!names.iter().any(|n| n == v), "{v} reached the child");
    }
}
