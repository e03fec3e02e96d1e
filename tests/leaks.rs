//! No secret leaks (SPEC §8.2): every command, on its success and failure
//! paths, run with a canary credential and `RUST_LOG=trace
//! RUST_BACKTRACE=1`; neither the token, nor the base64 private key, nor
//! the raw key bytes in base64, base64url or hex — nor any 16-character
//! piece of them — may appear on stdout (except `token`'s, which must be
//! exactly the token) or stderr. Also `Debug` of every public type that
//! holds a secret, errors, and panic messages.
// Unix only: Unix file modes and /proc. The Windows side is checked by
// scripts/check-cross (build, lint, unit tests and a CLI smoke under Wine).
#![cfg(unix)]

mod common;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use common::tokens::{real_now, TokenBuilder};
use common::{Home, Output};
use credstore::credential::{AuthMode, Credential};
use credstore::env::MapEnv;
use credstore::resolve::Resolver;
use credstore::store::MemoryStore;
use credstore::stored::StoredCredential;
use credstore::{AgentIdentity, ApiKey};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde_json::json;
use std::collections::HashSet;
use std::path::Path;

/// Shorter pieces are too likely to occur by chance in ordinary output.
const WINDOW: usize = 16;

/// The canary credentials and every form of their secrets.
struct Canary {
    token: String,
    expired: String,
    api_key: String,
    forms: Vec<(&'static str, String)>,
}

impl Canary {
    fn new() -> Canary {
        let b = TokenBuilder::new().claim("agent_runtime_id", json!("rt-canary"));
        let now = real_now();
        let expired = b
            .clone()
            .claim("iat", json!(now - 7200))
            .claim("exp", json!(now - 3600))
            .build();
        let raw = b.private_key_bytes();
        let der = b.signing_key().to_pkcs8_der().expect("der");
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let api_key = format!("sk-canary-{}", hex(&rand_bytes()));
        let token = b.build();
        let forms = vec![
            ("token", token.clone()),
            ("expired token", expired.clone()),
            ("API key", api_key.clone()),
            ("private key claim (base64 PKCS#8)", b.private_key_b64()),
            ("raw key base64", STANDARD.encode(raw)),
            ("raw key base64 no pad", STANDARD_NO_PAD.encode(raw)),
            ("raw key base64url", URL_SAFE.encode(raw)),
            ("raw key base64url no pad", URL_SAFE_NO_PAD.encode(raw)),
            ("raw key hex", hex(&raw)),
            ("raw key HEX", hex(&raw).to_uppercase()),
            ("PKCS#8 DER hex", hex(der.as_bytes())),
            (
                "PKCS#8 DER base64url",
                URL_SAFE_NO_PAD.encode(der.as_bytes()),
            ),
        ];
        Canary {
            token,
            expired,
            api_key,
            forms,
        }
    }

    /// Every `WINDOW`-byte piece of every secret form (from `skip` on).
    fn windows(&self, skip: usize) -> HashSet<Vec<u8>> {
        let mut set = HashSet::new();
        for (_, s) in &self.forms[skip..] {
            assert!(s.len() >= WINDOW);
            for w in s.as_bytes().windows(WINDOW) {
                set.insert(w.to_vec());
            }
        }
        set
    }

    /// Panics when `text` holds any secret form or a piece of one.
    fn assert_absent(&self, text: &str, what: &str) {
        self.assert_absent_pieces_from(text, what, 0);
    }

    /// For a signed output (`assertion`, `headers` of an agent identity,
    /// which SPEC §8.2 exempts): no whole secret, and no piece of the key
    /// in any form. Pieces of the token itself are not checked there: the
    /// assertion is base64url JSON that starts, like the token's payload,
    /// with `{"agent_runtime_id":…`, public text whose encoding coincides.
    fn assert_absent_signed(&self, text: &str, what: &str) {
        self.assert_absent_pieces_from(text, what, 2);
    }

    fn assert_absent_pieces_from(&self, text: &str, what: &str, skip: usize) {
        for (name, s) in &self.forms {
            assert!(!text.contains(s.as_str()), "{what}: the {name} leaked");
        }
        let windows = self.windows(skip);
        if let Some(pos) = text
            .as_bytes()
            .windows(WINDOW)
            .position(|w| windows.contains(w))
        {
            let (name, _) = self
                .forms
                .iter()
                .find(|(_, s)| {
                    s.as_bytes()
                        .windows(WINDOW)
                        .any(|w| w == &text.as_bytes()[pos..pos + WINDOW])
                })
                .expect("a form");
            panic!("{what}: a {WINDOW}-character piece of the {name} leaked at byte {pos}");
        }
    }

    fn assert_output_clean(&self, out: &Output, what: &str) {
        self.assert_absent(&out.stdout, &format!("{what} (stdout)"));
        self.assert_absent(&out.stderr, &format!("{what} (stderr)"));
    }
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b
}

fn write_private(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("parent");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// One invocation: what the store holds first, args, env, stdin, exit code.
struct Case {
    name: &'static str,
    stored: Option<String>,
    args: Vec<&'static str>,
    env: Vec<(&'static str, String)>,
    stdin: String,
    code: i32,
    /// `token` (and `headers` for an API key) success: stdout must be
    /// exactly this and a newline.
    token_out: Option<String>,
    /// `assertion` / `headers` success: stdout is a signed value.
    signed: bool,
}

fn case(name: &'static str, args: &[&'static str], code: i32) -> Case {
    Case {
        name,
        stored: None,
        args: args.to_vec(),
        env: Vec::new(),
        stdin: String::new(),
        code,
        token_out: None,
        signed: false,
    }
}

impl Case {
    fn stored(mut self, doc: String) -> Case {
        self.stored = Some(doc);
        self
    }
    fn env(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.env.push((k, v.into()));
        self
    }
    fn stdin(mut self, s: impl Into<String>) -> Case {
        self.stdin = s.into();
        self
    }
    fn signed(mut self) -> Case {
        self.signed = true;
        self
    }
    fn prints_token(mut self, t: &str) -> Case {
        self.token_out = Some(t.to_string());
        self
    }
}

fn agent_doc(t: &str) -> String {
    format!("{{\"auth_mode\":\"agent_identity\",\"agent_identity\":\"{t}\"}}\n")
}

fn key_doc(k: &str) -> String {
    format!("{{\"auth_mode\":\"api_key\",\"api_key\":\"{k}\"}}\n")
}

/// The token with one payload character changed so that it no longer
/// decodes to valid JSON (and the key inside it is still nearly whole).
fn broken(token: &str) -> String {
    let dot = token.find('.').expect("dot");
    let mut b = token.as_bytes().to_vec();
    b[dot + 3] = b'!';
    String::from_utf8(b).expect("ascii")
}

fn cases(c: &Canary, files: &Path, authapi: &str) -> Vec<Case> {
    let t = &c.token;
    let k = &c.api_key;
    let with_bad_type = TokenBuilder::new()
        .claim("iat", json!(c.forms[3].1.clone()))
        .build();
    let token_file = files.join("token.jwt");
    let key_file = files.join("key.txt");
    let broken_file = files.join("broken.jwt");
    std::fs::write(&token_file, format!("{t}\n")).unwrap();
    std::fs::write(&key_file, format!("{k}\n")).unwrap();
    std::fs::write(&broken_file, broken(t)).unwrap();
    let p = |p: &Path| p.display().to_string();
    // A JWKS of another key: the canary (no `kid`) fails verification.
    let jwks = files.join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"other","x":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}"#,
    )
    .unwrap();
    let jwks_arg: &'static str = Box::leak(p(&jwks).into_boxed_str());
    let authapi: &'static str = Box::leak(authapi.to_string().into_boxed_str());
    let login_a = ["login", "--with-agent-identity", "--backend", "file"];
    let login_k = ["login", "--with-api-key", "--backend", "file"];
    vec![
        // Help and version.
        case("--help", &["--help"], 0),
        case("--version", &["--version"], 0),
        case("login --help", &["login", "--help"], 0),
        case("help token", &["help", "token"], 0),
        // login: success and every failure.
        case("login agent identity", &login_a, 0).stdin(format!("{t}\n")),
        case(
            "login --json",
            &[
                "login",
                "--with-agent-identity",
                "--backend",
                "file",
                "--json",
            ],
            0,
        )
        .stdin(t.clone()),
        case("login api key", &login_k, 0).stdin(k.clone()),
        case(
            "login memory",
            &["login", "--with-agent-identity", "--backend", "memory"],
            0,
        )
        .stdin(t.clone()),
        case(
            "login auto (plaintext fallback)",
            &["login", "--with-agent-identity"],
            0,
        )
        .stdin(t.clone()),
        case("login with env set", &login_a, 0)
            .stdin(t.clone())
            .env("CREDSTORE_API_KEY", k.clone()),
        case("login expired", &login_a, 3).stdin(c.expired.clone()),
        case("login broken token", &login_a, 3).stdin(broken(t)),
        case("login wrong-typed claim holding the key", &login_a, 3).stdin(with_bad_type),
        case("login token with a space", &login_a, 3).stdin(format!("{} {}", &t[..30], &t[30..])),
        case("login two segments", &login_a, 3)
            .stdin(t.rsplit_once('.').expect("dot").0.to_string()),
        case("login api key as agent identity", &login_a, 3).stdin(k.clone()),
        case("login token as api key with newline inside", &login_k, 3).stdin(format!("{k}\n{t}")),
        case("login oversize stdin", &login_a, 3).stdin(t.repeat(70_000 / t.len() + 1)),
        case("login no kind", &["login", "--backend", "file"], 2).stdin(t.clone()),
        case(
            "login both kinds",
            &["login", "--with-agent-identity", "--with-api-key"],
            2,
        )
        .stdin(t.clone()),
        case(
            "login bad flag",
            &["login", "--with-agent-identity", "--bogus"],
            2,
        )
        .stdin(t.clone()),
        case(
            "login keychain (not built)",
            &["login", "--with-agent-identity", "--backend", "keychain"],
            4,
        )
        .stdin(t.clone()),
        case(
            "login bad backend",
            &["login", "--with-agent-identity", "--backend", "nope"],
            2,
        )
        .stdin(t.clone()),
        case(
            "login bad profile",
            &["login", "--with-agent-identity", "--profile", "../x"],
            2,
        )
        .stdin(t.clone()),
        case("login over a corrupt store", &login_a, 0)
            .stdin(t.clone())
            .stored(format!("{{\"agent_identity\":\"{t}\"")),
        // status
        case("status nothing", &["status"], 1),
        case("status stored", &["status", "--backend", "file"], 0).stored(agent_doc(t)),
        case("status --json stored", &["status", "--json"], 0).stored(agent_doc(t)),
        case("status api key", &["status", "--json"], 0).stored(key_doc(k)),
        case("status expired", &["status"], 1).stored(agent_doc(&c.expired)),
        case("status --json expired", &["status", "--json"], 1).stored(agent_doc(&c.expired)),
        case("status env", &["status", "--json"], 0).env("CREDSTORE_AGENT_IDENTITY", t.clone()),
        case("status env shadowing stored", &["status"], 0)
            .stored(agent_doc(t))
            .env("CREDSTORE_API_KEY", k.clone())
            .env("CREDSTORE_AGENT_IDENTITY", t.clone()),
        case("status env _FILE", &["status"], 0)
            .env("CREDSTORE_AGENT_IDENTITY_FILE", p(&token_file)),
        case("status --no-env", &["status", "--no-env"], 1)
            .env("CREDSTORE_AGENT_IDENTITY", t.clone()),
        case("status invalid env", &["status"], 3).env("CREDSTORE_AGENT_IDENTITY", broken(t)),
        case("status expired env", &["status", "--json"], 1)
            .env("CREDSTORE_AGENT_IDENTITY", c.expired.clone()),
        case("status invalid api key env", &["status"], 3)
            .env("CREDSTORE_API_KEY", format!("{k} {t}")),
        case("status both X and X_FILE", &["status"], 2)
            .env("CREDSTORE_AGENT_IDENTITY", t.clone())
            .env("CREDSTORE_AGENT_IDENTITY_FILE", p(&token_file)),
        case("status missing _FILE", &["status"], 2)
            .env("CREDSTORE_API_KEY_FILE", p(&files.join("missing"))),
        case("status _FILE is a directory", &["status"], 2).env("CREDSTORE_API_KEY_FILE", p(files)),
        case("status broken _FILE", &["status"], 3)
            .env("CREDSTORE_AGENT_IDENTITY_FILE", p(&broken_file)),
        case("status corrupt store (truncated)", &["status"], 4)
            .stored(format!("{{\"agent_identity\":\"{t}\"")),
        case(
            "status corrupt store (both, no mode)",
            &["status", "--json"],
            4,
        )
        .stored(format!(
            "{{\"agent_identity\":\"{t}\",\"api_key\":\"{k}\"}}"
        )),
        case("status corrupt store (token as auth_mode)", &["status"], 4)
            .stored(format!("{{\"auth_mode\":\"{t}\",\"api_key\":\"{k}\"}}")),
        case("status corrupt store (array)", &["status"], 4).stored(format!("[\"{t}\"]")),
        case("status corrupt store (duplicate)", &["status"], 4)
            .stored(format!("{{\"api_key\":\"{k}\",\"api_key\":\"{k}\"}}")),
        case("status invalid stored token", &["status"], 3).stored(agent_doc(&broken(t))),
        case("status keychain", &["status", "--backend", "keychain"], 4),
        // token
        case("token stored", &["token"], 0)
            .stored(agent_doc(t))
            .prints_token(t),
        case("token api key", &["token"], 0)
            .stored(key_doc(k))
            .prints_token(k),
        case("token env", &["token"], 0)
            .env("CREDSTORE_AGENT_IDENTITY", t.clone())
            .prints_token(t),
        case("token env _FILE", &["token"], 0)
            .env("CREDSTORE_API_KEY_FILE", p(&key_file))
            .prints_token(k),
        case("token nothing", &["token"], 1),
        case("token expired stored", &["token"], 3).stored(agent_doc(&c.expired)),
        case("token expired env", &["token"], 3).env("CREDSTORE_AGENT_IDENTITY", c.expired.clone()),
        case("token invalid env", &["token"], 3).env("CREDSTORE_AGENT_IDENTITY", broken(t)),
        case("token corrupt store", &["token"], 4).stored(format!("[\"{t}\",")),
        case("token bad flag", &["token", "--json"], 2).stored(agent_doc(t)),
        // logout
        case("logout stored", &["logout"], 0).stored(agent_doc(t)),
        case("logout nothing", &["logout"], 1),
        case("logout with env set", &["logout"], 0)
            .stored(key_doc(k))
            .env("CREDSTORE_AGENT_IDENTITY", t.clone()),
        case("logout corrupt store", &["logout"], 0).stored(format!("{{\"api_key\":\"{k}")),
        // assertion, headers, register-task, completions
        case("assertion", &["assertion", "--task-id", "task-1"], 0)
            .stored(agent_doc(t))
            .signed(),
        case("assertion env", &["assertion", "--task-id", "task-1"], 0)
            .env("CREDSTORE_AGENT_IDENTITY", t.clone())
            .signed(),
        case("assertion no task id", &["assertion"], 2).stored(agent_doc(t)),
        case(
            "assertion bad task id",
            &["assertion", "--task-id", "a b\n"],
            2,
        )
        .stored(agent_doc(t)),
        case(
            "assertion api key",
            &["assertion", "--task-id", "task-1"],
            1,
        )
        .stored(key_doc(k)),
        case(
            "assertion expired",
            &["assertion", "--task-id", "task-1"],
            3,
        )
        .stored(agent_doc(&c.expired)),
        case(
            "assertion invalid env",
            &["assertion", "--task-id", "task-1"],
            3,
        )
        .env("CREDSTORE_AGENT_IDENTITY", broken(t)),
        case(
            "assertion nothing",
            &["assertion", "--task-id", "task-1"],
            1,
        ),
        case("headers agent", &["headers", "--task-id", "task-1"], 0)
            .stored(agent_doc(t))
            .signed(),
        case(
            "headers --json agent",
            &["headers", "--task-id", "task-1", "--json"],
            0,
        )
        .stored(agent_doc(t))
        .signed(),
        case("headers agent no task id", &["headers"], 2).stored(agent_doc(t)),
        case("headers api key", &["headers"], 0)
            .stored(key_doc(k))
            .prints_token(&format!("Authorization: Bearer {k}")),
        case("headers expired", &["headers", "--task-id", "task-1"], 3)
            .stored(agent_doc(&c.expired)),
        case("headers corrupt store", &["headers"], 4).stored(format!("{{\"api_key\":\"{k}\"")),
        case(
            "register-task",
            &["register-task", "--base-url", authapi],
            0,
        )
        .stored(agent_doc(t))
        .prints_token("task-from-local-authapi"),
        case(
            "register-task unreachable",
            &["register-task", "--base-url", "http://127.0.0.1:9"],
            4,
        )
        .stored(agent_doc(t)),
        case("register-task key in base URL", &["register-task"], 2)
            .stored(agent_doc(t))
            .env(
                "CREDSTORE_AUTHAPI_BASE_URL",
                format!("https://agent:{k}@auth.example"),
            ),
        case("register-task no base URL", &["register-task"], 2).stored(agent_doc(t)),
        case(
            "register-task api key",
            &["register-task", "--base-url", authapi],
            1,
        )
        .stored(key_doc(k)),
        case(
            "register-task expired",
            &["register-task", "--base-url", authapi],
            3,
        )
        .stored(agent_doc(&c.expired)),
        // doctor and migrate
        case("doctor stored", &["doctor"], 0).stored(agent_doc(t)),
        case("doctor nothing", &["doctor"], 0),
        case("doctor corrupt store", &["doctor"], 1)
            .stored(format!("{{\"agent_identity\":\"{t}\"")),
        case("doctor expired", &["doctor"], 1).stored(agent_doc(&c.expired)),
        case("doctor env", &["doctor"], 0).env("CREDSTORE_AGENT_IDENTITY", t.clone()),
        case("doctor invalid env", &["doctor"], 1).env("CREDSTORE_AGENT_IDENTITY", broken(t)),
        case("doctor both X and X_FILE", &["doctor"], 1)
            .env("CREDSTORE_API_KEY", k.clone())
            .env("CREDSTORE_API_KEY_FILE", p(&key_file)),
        case(
            "migrate to keychain (none here)",
            &["migrate", "--to", "keychain", "--from", "file"],
            4,
        )
        .stored(agent_doc(t)),
        case(
            "migrate to memory",
            &["migrate", "--to", "memory", "--from", "file"],
            2,
        )
        .stored(agent_doc(t)),
        case(
            "migrate to vault (unconfigured)",
            &["migrate", "--to", "vault", "--from", "file"],
            4,
        )
        .stored(agent_doc(t)),
        case(
            "migrate nothing stored",
            &["migrate", "--to", "keychain", "--from", "file"],
            1,
        ),
        case(
            "migrate corrupt store",
            &["migrate", "--to", "keychain", "--from", "file"],
            4,
        )
        .stored(format!("[\"{t}\"]")),
        case("migrate bad backend", &["migrate", "--to", "floppy"], 2).stored(agent_doc(t)),
        case("completions", &["completions", "bash"], 0),
        case("completions bad shell", &["completions", "nope"], 2),
        // JWKS verification failures carry no secret either.
        case(
            "status --jwks other key",
            &["status", "--jwks", jwks_arg],
            3,
        )
        .stored(agent_doc(t)),
        case("token --jwks other key", &["token", "--jwks", jwks_arg], 3)
            .env("CREDSTORE_AGENT_IDENTITY", t.clone()),
        case(
            "login --jwks other key",
            &["login", "--with-agent-identity", "--jwks", jwks_arg],
            3,
        )
        .stdin(t.clone()),
        case(
            "token --jwks missing",
            &["token", "--jwks", "/nonexistent/jwks.json"],
            2,
        )
        .stored(agent_doc(t)),
        // Secrets on the command line are refused without being echoed.
        case(
            "token as an argument",
            &["login", "--with-agent-identity", "ARG_TOKEN"],
            2,
        ),
        case("unknown command", &["frobnicate"], 2).stored(agent_doc(t)),
    ]
}

#[test]
fn no_command_leaks_a_secret_on_any_path() {
    let c = Canary::new();
    let files = tempfile::tempdir().unwrap();
    let authapi = local_authapi();
    let all = cases(&c, files.path(), &authapi);
    let n = all.len();
    for case in all {
        let home = Home::new();
        if let Some(doc) = &case.stored {
            write_private(&home.auth_json(), doc);
        }
        let args: Vec<String> = case
            .args
            .iter()
            .map(|a| {
                if *a == "ARG_TOKEN" {
                    c.token.clone()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let mut run = home
            .run()
            .args(&args)
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .env("CREDSTORE_BACKEND", "file")
            .stdin(&case.stdin);
        for (k, v) in &case.env {
            run = run.env(k, v);
        }
        let out = run.output();
        assert_eq!(
            out.code, case.code,
            "{}: exit code; stderr: {}",
            case.name, out.stderr
        );
        match &case.token_out {
            Some(t) => {
                assert_eq!(out.stdout, format!("{t}\n"), "{}: token stdout", case.name);
                c.assert_absent(&out.stderr, &format!("{} (stderr)", case.name));
            }
            None if case.signed => {
                c.assert_absent_signed(&out.stdout, &format!("{} (stdout)", case.name));
                c.assert_absent(&out.stderr, &format!("{} (stderr)", case.name));
            }
            None => c.assert_output_clean(&out, case.name),
        }
        // Nothing the command wrote to the store may carry anything but the
        // token-only form (decoded key material never reaches disk).
        for (path, bytes) in home.snapshot() {
            let text = String::from_utf8_lossy(&bytes);
            for (name, s) in &c.forms[3..] {
                assert!(
                    !text.contains(s.as_str()),
                    "{}: the {name} was written to {}",
                    case.name,
                    path.display()
                );
            }
        }
    }
    eprintln!(
        "leaks: {n} command invocations (success and failure paths) checked for {} secret forms \
         and every {WINDOW}-character piece of them: 0 found",
        c.forms.len()
    );
}

/// A local auth API (loopback only) answering every registration with a
/// fixed task id; it echoes nothing of the request.
fn local_authapi() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len.min(1 << 16)];
            let _ = reader.read_exact(&mut body);
            let answer = r#"{"task_id":"task-from-local-authapi"}"#;
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn an_api_key_on_the_command_line_is_refused_unechoed() {
    let c = Canary::new();
    let home = Home::new();
    for args in [
        vec!["login", "--with-api-key", c.api_key.as_str()],
        vec![c.api_key.as_str()],
        vec!["help", c.api_key.as_str()],
        vec!["token", c.api_key.as_str()],
        // (A key-shaped `--profile` is a valid profile name by SPEC §3, so
        // it is not refused; `--backend` values are checked by credstore.)
        vec!["status", "--backend", c.api_key.as_str()],
    ] {
        let out = home.run().args(&args).output();
        assert_eq!(out.code, 2, "{args:?}");
        c.assert_output_clean(&out, &format!("{:?}", args[0]));
    }
}

/// A stdout that is closed before the command writes: an error (exit 4),
/// never a panic, and it carries no secret (with `RUST_BACKTRACE=1`).
#[test]
fn a_closed_stdout_does_not_leak() {
    let c = Canary::new();
    let home = Home::new();
    write_private(&home.auth_json(), &agent_doc(&c.token));
    for args in [&["token"][..], &["status"], &["status", "--json"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut cmd = home.run().args(args).into_command();
        cmd.env("RUST_BACKTRACE", "1")
            .env("CREDSTORE_BACKEND", "file")
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .stderr(std::process::Stdio::piped());
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A failed write is an I/O error (exit 4), not a panic (101).
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        c.assert_absent(&stderr, &format!("{args:?} with stdout closed"));
    }
}

fn debug_forms(v: &dyn std::fmt::Debug) -> String {
    format!("{v:?}\n{v:#?}")
}

#[test]
fn debug_of_every_secret_holding_type_redacts() {
    let c = Canary::new();
    let id = AgentIdentity::parse(c.token.as_bytes(), "stdin").unwrap();
    c.assert_absent(&debug_forms(&id), "AgentIdentity");
    c.assert_absent(&debug_forms(id.claims()), "Claims");
    c.assert_absent(&debug_forms(id.header()), "JwtHeader");
    let key = ApiKey::parse(c.api_key.as_bytes(), "stdin").unwrap();
    c.assert_absent(&debug_forms(&key), "ApiKey");
    for (mode, t) in [
        (AuthMode::AgentIdentity, &c.token),
        (AuthMode::ApiKey, &c.api_key),
    ] {
        let cred = Credential::parse(mode, t.as_bytes(), "stdin").unwrap();
        c.assert_absent(&debug_forms(&cred), "Credential");
        let stored = StoredCredential::from_credential(&cred);
        c.assert_absent(&debug_forms(&stored), "StoredCredential");
        let doc = stored.to_document();
        let back = StoredCredential::from_document(&doc, "x").unwrap();
        c.assert_absent(&debug_forms(&back), "StoredCredential from a document");
        let kc = StoredCredential::from_keychain_value(t.as_bytes(), "kc").unwrap();
        c.assert_absent(&debug_forms(&kc), "StoredCredential from a keychain value");
    }
    let env = MapEnv::new()
        .with("CREDSTORE_AGENT_IDENTITY", &c.token)
        .with("CREDSTORE_API_KEY", &c.api_key)
        .with("OTHER", &c.forms[3].1);
    c.assert_absent(&debug_forms(&env), "MapEnv");
    let resolved = Resolver::new(&env)
        .resolve(
            &MemoryStore::new(),
            &credstore::profile::Profile::default_profile(),
        )
        .unwrap()
        .expect("resolved");
    c.assert_absent(&debug_forms(&resolved), "Resolved");
    c.assert_absent(&debug_forms(&resolved.source), "Source");
    let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY", &c.token);
    let resolved = Resolver::new(&env).from_env().unwrap().expect("resolved");
    c.assert_absent(&debug_forms(&resolved), "Resolved agent identity");
    // The agent runtime's values: an assertion and request headers are
    // bearer values too, so their Debug redacts them entirely.
    let assertion = id.assertion("task-1").unwrap();
    let dbg = debug_forms(&assertion);
    c.assert_absent(&dbg, "AgentAssertion");
    assert!(
        !dbg.contains(assertion.expose()),
        "AgentAssertion shows its value"
    );
    let headers = id.request_headers("task-1").unwrap();
    let dbg = debug_forms(&headers);
    c.assert_absent(&dbg, "RequestHeaders of an agent identity");
    assert!(!dbg.contains(assertion.expose().split(' ').nth(1).unwrap_or("-")));
    let key_cred = Credential::parse(AuthMode::ApiKey, c.api_key.as_bytes(), "x").unwrap();
    let headers = key_cred.request_headers(None).unwrap();
    c.assert_absent(&debug_forms(&headers), "RequestHeaders of an API key");
    let session = credstore::agent::TaskSession::new(
        std::sync::Arc::new(AgentIdentity::parse(c.token.as_bytes(), "stdin").unwrap()),
        credstore::agent::RegistrationConfig::new("https://auth.example").unwrap(),
    );
    c.assert_absent(&debug_forms(&session), "TaskSession");
}

#[test]
fn errors_never_carry_the_secret() {
    let c = Canary::new();
    let mut inputs = vec![
        broken(&c.token),
        format!("{} {}", &c.token[..40], &c.token[40..]),
        format!("{}.x", c.token),
        c.token.replace('.', ","),
        c.expired.replace('-', "+"),
        format!("{}\0", c.api_key),
    ];
    // Every claim replaced, in turn, by the private key of the wrong type
    // or by a wrong-typed value next to it.
    for claim in ["iat", "exp", "agent_runtime_id", "account_id", "plan_type"] {
        inputs.push(
            TokenBuilder::new()
                .claim(claim, json!([c.forms[3].1.clone()]))
                .build(),
        );
    }
    for input in &inputs {
        for mode in [AuthMode::AgentIdentity, AuthMode::ApiKey] {
            if let Err(e) = Credential::parse(mode, input.as_bytes(), "stdin") {
                c.assert_absent(&format!("{e}\n{e:?}"), "parse error");
            }
        }
        for doc in [
            format!("{{\"agent_identity\":\"{input}\""),
            format!("{{\"api_key\":{input}}}"),
            format!("{{\"auth_mode\":\"{input}\"}}"),
        ] {
            if let Err(e) = StoredCredential::from_document(doc.as_bytes(), "x") {
                c.assert_absent(&format!("{e}\n{e:?}"), "document error");
            }
        }
    }
    let id = AgentIdentity::parse(c.expired.as_bytes(), "stdin").unwrap();
    let e = id.ensure_not_expired(real_now(), "stdin").unwrap_err();
    c.assert_absent(&format!("{e}\n{e:?}"), "expired error");
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        String::new()
    }
}

#[test]
fn panic_messages_never_carry_the_secret() {
    let c = Canary::new();
    // A thread that holds credentials and panics, formatting them.
    let (token, key) = (c.token.clone(), c.api_key.clone());
    let payload = std::thread::spawn(move || {
        let id = Credential::parse(AuthMode::AgentIdentity, token.as_bytes(), "stdin").unwrap();
        let key = Credential::parse(AuthMode::ApiKey, key.as_bytes(), "stdin").unwrap();
        let stored = StoredCredential::from_credential(&id);
        panic!("worker failed holding {id:?} and {key:?} and {stored:#?}");
    })
    .join()
    .expect_err("the thread panicked");
    let msg = panic_message(payload);
    assert!(msg.contains("REDACTED"), "{msg}");
    c.assert_absent(&msg, "panic in a thread holding a credential");

    // `unwrap_err` on a valid credential panics with its Debug; `unwrap` on
    // a failed parse panics with the error's Debug.
    let t = c.token.clone();
    let payload = std::thread::spawn(move || {
        Credential::parse(AuthMode::AgentIdentity, t.as_bytes(), "stdin").unwrap_err();
    })
    .join()
    .expect_err("panicked");
    c.assert_absent(&panic_message(payload), "unwrap_err on a credential");
    let t = broken(&c.token);
    let payload = std::thread::spawn(move || {
        Credential::parse(AuthMode::AgentIdentity, t.as_bytes(), "stdin").unwrap();
    })
    .join()
    .expect_err("panicked");
    let msg = panic_message(payload);
    assert!(msg.contains("invalid agent identity") || msg.contains("InvalidCredential"));
    c.assert_absent(&msg, "unwrap on a parse error");
    let doc = format!("{{\"agent_identity\":\"{}\",\"api_key\":\"x\"}}", c.token);
    let payload = std::thread::spawn(move || {
        StoredCredential::from_document(doc.as_bytes(), "x").unwrap();
    })
    .join()
    .expect_err("panicked");
    c.assert_absent(&panic_message(payload), "unwrap on a corrupt document");
}

/// The leak sweep on the sealed backend: every command with `--backend
/// sealed`, on its success and failure paths (wrong, missing and loose
/// key, a tampered and a cut file, migrate both ways), with the canary
/// credential: no secret form or piece on stdout (but `token`'s) or stderr,
/// and no file of the home holds any form of it — the sealed file is
/// ciphertext, and the plaintext copy is gone after `migrate --to sealed`.
#[test]
fn no_sealed_command_leaks_a_secret() {
    use common::SealKey;
    let c = Canary::new();
    let t = &c.token;
    enum Setup {
        Nothing,
        Sealed,
        Plain,
        Tampered,
        Cut,
    }
    // (name, setup, args, key: 0 right / 1 wrong / 2 none / 3 loose, stdin, code, token out)
    type SealedCase<'a> = (
        &'a str,
        Setup,
        Vec<&'a str>,
        u8,
        String,
        i32,
        Option<&'a str>,
    );
    let cases: Vec<SealedCase> = vec![
        (
            "login",
            Setup::Nothing,
            vec!["login", "--with-agent-identity"],
            0,
            t.clone(),
            0,
            None,
        ),
        (
            "login api key",
            Setup::Nothing,
            vec!["login", "--with-api-key"],
            0,
            c.api_key.clone(),
            0,
            None,
        ),
        (
            "login --json",
            Setup::Nothing,
            vec!["login", "--with-agent-identity", "--json"],
            0,
            t.clone(),
            0,
            None,
        ),
        (
            "login no key",
            Setup::Nothing,
            vec!["login", "--with-agent-identity"],
            2,
            t.clone(),
            4,
            None,
        ),
        (
            "login loose key",
            Setup::Sealed,
            vec!["login", "--with-agent-identity"],
            3,
            t.clone(),
            4,
            None,
        ),
        (
            "login expired",
            Setup::Sealed,
            vec!["login", "--with-agent-identity"],
            0,
            c.expired.clone(),
            3,
            None,
        ),
        (
            "status",
            Setup::Sealed,
            vec!["status"],
            0,
            String::new(),
            0,
            None,
        ),
        (
            "status --json",
            Setup::Sealed,
            vec!["status", "--json"],
            0,
            String::new(),
            0,
            None,
        ),
        (
            "status wrong key",
            Setup::Sealed,
            vec!["status"],
            1,
            String::new(),
            4,
            None,
        ),
        (
            "status no key",
            Setup::Sealed,
            vec!["status", "--json"],
            2,
            String::new(),
            4,
            None,
        ),
        (
            "token",
            Setup::Sealed,
            vec!["token"],
            0,
            String::new(),
            0,
            Some(t.as_str()),
        ),
        (
            "token tampered",
            Setup::Tampered,
            vec!["token"],
            0,
            String::new(),
            4,
            None,
        ),
        (
            "token cut",
            Setup::Cut,
            vec!["token"],
            0,
            String::new(),
            4,
            None,
        ),
        (
            "token loose key",
            Setup::Sealed,
            vec!["token"],
            3,
            String::new(),
            4,
            None,
        ),
        (
            "headers",
            Setup::Sealed,
            vec!["headers", "--task-id", "task-1"],
            0,
            String::new(),
            0,
            None,
        ),
        (
            "doctor",
            Setup::Sealed,
            vec!["doctor"],
            0,
            String::new(),
            0,
            None,
        ),
        (
            "doctor wrong key",
            Setup::Sealed,
            vec!["doctor"],
            1,
            String::new(),
            1,
            None,
        ),
        (
            "migrate to sealed",
            Setup::Plain,
            vec!["migrate", "--to", "sealed", "--from", "file"],
            0,
            String::new(),
            0,
            None,
        ),
        (
            "migrate to sealed no key",
            Setup::Plain,
            vec!["migrate", "--to", "sealed", "--from", "file"],
            2,
            String::new(),
            4,
            None,
        ),
        (
            "migrate to file",
            Setup::Sealed,
            vec!["migrate", "--to", "file", "--from", "sealed"],
            0,
            String::new(),
            0,
            None,
        ),
        (
            "migrate wrong key",
            Setup::Sealed,
            vec!["migrate", "--to", "file", "--from", "sealed"],
            1,
            String::new(),
            4,
            None,
        ),
        (
            "logout",
            Setup::Sealed,
            vec!["logout"],
            2,
            String::new(),
            0,
            None,
        ),
    ];
    let n = cases.len();
    for (name, setup, args, key_kind, stdin, code, token_out) in cases {
        let home = Home::new();
        let key = SealKey::new(&home, "id.txt");
        let wrong = SealKey::new(&home, "wrong.txt");
        let with_key = |run: common::Run| run.seal_key(&key);
        match setup {
            Setup::Nothing => {}
            Setup::Plain => write_private(&home.auth_json(), &agent_doc(t)),
            Setup::Sealed | Setup::Tampered | Setup::Cut => {
                with_key(home.run())
                    .args(["login", "--with-agent-identity", "--backend", "sealed"])
                    .stdin(t)
                    .expect(0);
                let mut bytes = std::fs::read(home.sealed_json()).unwrap();
                match setup {
                    Setup::Tampered => {
                        let at = bytes.len() - 20;
                        bytes[at] ^= 0x10;
                    }
                    Setup::Cut => bytes.truncate(bytes.len() - 17),
                    _ => {}
                }
                std::fs::write(home.sealed_json(), &bytes).unwrap();
            }
        }
        let mut run = home
            .run()
            .args(&args)
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "1")
            .env("CREDSTORE_BACKEND", "sealed")
            .stdin(&stdin);
        run = match key_kind {
            0 => run.seal_key(&key),
            1 => run.seal_key(&wrong),
            3 => {
                std::fs::set_permissions(
                    &key.path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o644),
                )
                .unwrap();
                run.seal_key(&key)
            }
            _ => run,
        };
        let out = run.output();
        assert_eq!(out.code, code, "{name}: exit code; stderr: {}", out.stderr);
        match token_out {
            Some(t) => assert_eq!(out.stdout, format!("{t}\n"), "{name}: token stdout"),
            None if name == "headers" => {
                c.assert_absent_signed(&out.stdout, &format!("{name} (stdout)"))
            }
            None => c.assert_absent(&out.stdout, &format!("{name} (stdout)")),
        }
        c.assert_absent(&out.stderr, &format!("{name} (stderr)"));
        for (path, bytes) in home.snapshot() {
            if path.starts_with("store/auth.json") && !path.starts_with("store/auth.json.age") {
                continue; // the file backend's plaintext, when migrated there
            }
            let text = String::from_utf8_lossy(&bytes);
            for (form, s) in &c.forms {
                assert!(
                    !text.contains(s.as_str()),
                    "{name}: the {form} is in {}",
                    path.display()
                );
            }
        }
    }
    eprintln!(
        "leaks (sealed): {n} invocations checked for {} secret forms and every {WINDOW}-character \
         piece of them: 0 found; no file of the home holds a form of the canary",
        c.forms.len()
    );
}
