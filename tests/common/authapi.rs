//! A stand-in auth API for the task-registration tests: starts
//! `tests/authapi_server.py` (a real HTTP server on 127.0.0.1 that checks
//! signatures with libsodium through PyNaCl) and stops it by PID on drop.
//! Needs Python 3 with PyNaCl (`pip install pynacl`); without it the test
//! fails with that message, never skips.

use super::tokens::TokenBuilder;
use credstore::agent::RegistrationConfig;
use credstore::AgentIdentity;
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authapi_server.py");

/// The test server, stopped (by its PID, through the `Child` handle) on drop.
pub struct AuthApi {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The agent key it trusts.
    pub key: SigningKey,
}

impl AuthApi {
    /// Starts a server that trusts a fresh agent key.
    pub fn start() -> AuthApi {
        let probe = Command::new("python3")
            .args(["-c", "import nacl.public, nacl.signing"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "the auth API tests need Python 3 with PyNaCl (an independent libsodium): \
                 run `pip install pynacl`"
            ),
        }
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let hex: String = key
            .verifying_key()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut child = Command::new("python3")
            .args([SERVER, "--public-key", &hex])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3 tests/authapi_server.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read server port");
        let port = match line.trim().strip_prefix("PORT ").map(str::parse::<u16>) {
            Some(Ok(p)) => p,
            _ => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let _ = child.kill();
                panic!("authapi_server.py did not start: {line:?} {err}");
            }
        };
        AuthApi { child, port, key }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn config(&self) -> RegistrationConfig {
        RegistrationConfig::new(&self.base_url()).expect("loopback URL")
    }

    /// A token with the server's trusted key and `runtime` as its id.
    pub fn token(&self, runtime: &str) -> String {
        TokenBuilder::with_key(self.key.clone())
            .claim("agent_runtime_id", json!(runtime))
            .build()
    }

    /// An identity with the server's trusted key and `runtime` as its id.
    pub fn identity(&self, runtime: &str) -> AgentIdentity {
        AgentIdentity::parse(self.token(runtime).as_bytes(), "test").expect("token parses")
    }

    /// How many registrations for `runtime` passed the server's signature check.
    pub fn count(&self, runtime: &str) -> u64 {
        let body = ureq::get(format!("http://127.0.0.1:{}/count/{runtime}", self.port))
            .call()
            .expect("count request")
            .body_mut()
            .read_to_string()
            .expect("count body");
        let v: serde_json::Value = serde_json::from_str(&body).expect("count json");
        v["count"].as_u64().expect("count number")
    }
}

impl Drop for AuthApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
