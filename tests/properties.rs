//! Property tests for every parser of untrusted bytes (SPEC §1, §2, §5,
//! §8.7), run on every `cargo test`: for arbitrary bytes and for structured
//! mutations of valid tokens and documents, `AgentIdentity::parse`,
//! `ApiKey::parse`, `StoredCredential::from_document`,
//! `StoredCredential::from_keychain_value` and the `_FILE` variables through
//! `Resolver` never panic, finish quickly, and fail only with the
//! documented exit code: a token → 3, a document → 4 (its token → 3), an
//! unreadable `_FILE` → 2. Valid inputs round-trip.
//!
//! Case counts are in each block's `ProptestConfig` (3,000 + 2 × 1,500 + 2,000 + 2 × 1,200 + 100 + 2 × 500
//! = 11,500 generated cases in all, plus fixed edge cases);
//! `PROPTEST_CASES` in the test's environment overrides them.

mod common;

use common::tokens::TokenBuilder;
use credstore::credential::{AuthMode, Credential, MAX_AGENT_IDENTITY_BYTES};
use credstore::env::MapEnv;
use credstore::resolve::Resolver;
use credstore::secret::trim_input;
use credstore::stored::{looks_like_jwt, StoredCredential};
use credstore::{AgentIdentity, ApiKey, Error};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every call must finish within this, even on a loaded debug build.
const QUICK: Duration = Duration::from_secs(1);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < QUICK, "{what} took {took:?}");
    out
}

fn code(e: &Error) -> u8 {
    e.exit_code()
}

/// One valid token (with its throwaway key) shared by the mutation tests.
fn base() -> &'static (TokenBuilder, String) {
    static BASE: OnceLock<(TokenBuilder, String)> = OnceLock::new();
    BASE.get_or_init(|| {
        let b = TokenBuilder::new();
        let t = b.build();
        (b, t)
    })
}

/// Runs `bytes` through every parser and checks the exit-code contract.
fn check_all_parsers(bytes: &[u8]) {
    match timed("AgentIdentity::parse", || AgentIdentity::parse(bytes, "p")) {
        Ok(id) => assert_eq!(id.expose_token().as_bytes(), trim_input(bytes)),
        Err(e) => assert_eq!(code(&e), 3, "token: {e}"),
    }
    match timed("ApiKey::parse", || ApiKey::parse(bytes, "p")) {
        Ok(k) => assert_eq!(k.expose().as_bytes(), trim_input(bytes)),
        Err(e) => assert_eq!(code(&e), 3, "api key: {e}"),
    }
    for (what, parsed) in [
        (
            "from_document",
            timed("from_document", || {
                StoredCredential::from_document(bytes, "loc")
            }),
        ),
        (
            "from_keychain_value",
            timed("from_keychain_value", || {
                StoredCredential::from_keychain_value(bytes, "loc")
            }),
        ),
    ] {
        match parsed {
            Ok(doc) => {
                if let Err(e) = timed("to_credential", || doc.to_credential("loc")) {
                    assert_eq!(code(&e), 3, "{what} then its token: {e}");
                }
            }
            Err(e) => {
                assert_eq!(code(&e), 4, "{what}: {e}");
                assert!(e.to_string().contains("loc"), "{what} names the location");
            }
        }
    }
}

/// Pieces that make arbitrary concatenations look like documents or JWTs.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(":".to_string()),
        Just(",".to_string()),
        Just("\"auth_mode\"".to_string()),
        Just("\"agent_identity\"".to_string()),
        Just("\"api_key\"".to_string()),
        Just("\"api_key\"".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        Just("\u{feff}".to_string()),
        Just(".".to_string()),
        Just("eyJhbGciOiJFZERTQSJ9".to_string()),
        Just(" \n\t".to_string()),
        "\"[a-zA-Z0-9_.-]{0,12}\"",
        "\\PC{0,6}",
    ]
}

/// Arbitrary JSON, with unicode, NULs, huge and fractional numbers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        "\\PC{0,24}".prop_map(Value::from),
        "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,12}".prop_map(Value::from),
        Just(Value::from("")),
        Just(Value::from("\0")),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Truncate(usize),
    DuplicateSegment(usize),
    Pad(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (0..3usize).prop_map(Mutation::DuplicateSegment),
        "[ \t\r\n]{0,3}".prop_map(Mutation::Pad),
    ]
}

fn apply(token: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut t = token.to_vec();
    for m in mutations {
        let len = t.len().max(1);
        match m {
            Mutation::Flip(i, x) if !t.is_empty() => t[i % len] ^= x,
            Mutation::Insert(i, b) => t.insert(i % (t.len() + 1), *b),
            Mutation::Delete(i, n) if !t.is_empty() => {
                let start = i % len;
                let end = (start + n).min(t.len());
                t.drain(start..end);
            }
            Mutation::Truncate(i) => t.truncate(i % len),
            Mutation::DuplicateSegment(s) => {
                let text = String::from_utf8_lossy(&t).into_owned();
                let parts: Vec<&str> = text.split('.').collect();
                if let Some(seg) = parts.get(*s) {
                    let mut v = parts.clone();
                    v.insert(*s, seg);
                    t = v.join(".").into_bytes();
                }
            }
            Mutation::Pad(p) => {
                let mut v = p.as_bytes().to_vec();
                v.extend_from_slice(&t);
                v.extend_from_slice(p.as_bytes());
                t = v;
            }
            _ => {}
        }
    }
    t
}

/// Seconds since the epoch of 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
const RFC3339_SECONDS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// Whether `value` is acceptable for claim `name` (SPEC §1.1).
fn claim_is_valid(name: &str, value: &Value) -> bool {
    match name {
        // Part of URLs and signed messages: no hidden character.
        "agent_runtime_id" => value
            .as_str()
            .is_some_and(|s| !s.is_empty() && !s.chars().any(credstore::text::is_hidden)),
        // An HTTP header value: printable ASCII, no surrounding spaces.
        "account_id" => value.as_str().is_some_and(|s| {
            !s.is_empty()
                && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
                && !s.starts_with(' ')
                && !s.ends_with(' ')
        }),
        "chatgpt_user_id" | "email" | "plan_type" => value.is_string(),
        "chatgpt_account_is_fedramp" => value.is_boolean(),
        // An integer an RFC 3339 time can show (years 0000-9999).
        "iat" | "exp" => value.as_i64().is_some_and(|v| RFC3339_SECONDS.contains(&v)),
        _ => true, // iss, aud, unknown claims: any type is accepted
    }
}

const CLAIMS: &[&str] = &[
    "agent_runtime_id",
    "account_id",
    "chatgpt_user_id",
    "email",
    "plan_type",
    "chatgpt_account_is_fedramp",
    "iat",
    "exp",
    "iss",
    "aud",
    "extra",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_all_parsers(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn document_like_text_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
        check_all_parsers(parts.concat().as_bytes());
    }

    #[test]
    fn any_document_field_values_give_4_or_a_token_check(
        mode in prop::option::of(json_value()),
        agent in prop::option::of(json_value()),
        key in prop::option::of(json_value()),
        extra in json_value(),
    ) {
        let mut doc = serde_json::Map::new();
        for (k, v) in [("auth_mode", mode), ("agent_identity", agent), ("api_key", key)] {
            if let Some(v) = v {
                doc.insert(k.to_string(), v);
            }
        }
        doc.insert("x".into(), extra);
        let bytes = serde_json::to_vec(&Value::Object(doc.clone())).unwrap();
        check_all_parsers(&bytes);
        // The stored-form rules, restated: a document parses exactly when
        // auth_mode (or the single present field) selects a string field.
        let field = match doc.get("auth_mode") {
            Some(Value::String(s)) if s == "agent_identity" || s == "api_key" => Some(s.as_str()),
            Some(_) => None,
            None => match (doc.get("agent_identity"), doc.get("api_key")) {
                (Some(_), None) => Some("agent_identity"),
                (None, Some(_)) => Some("api_key"),
                _ => None,
            },
        };
        let expect_ok = field.is_some_and(|f| doc.get(f).is_some_and(Value::is_string));
        let got = StoredCredential::from_document(&bytes, "loc");
        prop_assert_eq!(got.is_ok(), expect_ok, "{:?}", got.err().map(|e| e.to_string()));
        if let Ok(c) = got {
            let f = field.unwrap();
            prop_assert_eq!(Some(c.expose_token()), doc[f].as_str());
            prop_assert_eq!(c.auth_mode().as_str(), f);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_tokens_give_3_or_parse_exactly(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let (_, token) = base();
        let bytes = apply(token.as_bytes(), &mutations);
        check_all_parsers(&bytes);
        // Inside a well-formed stored document, a bad token is exit 3 (an
        // invalid credential), never 4 (a corrupt store).
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let doc = serde_json::to_vec(&json!({"agent_identity": text})).unwrap();
            let stored = StoredCredential::from_document(&doc, "loc").expect("well-formed document");
            prop_assert_eq!(stored.expose_token(), text);
            if let Err(e) = stored.to_credential("loc") {
                prop_assert_eq!(e.exit_code(), 3);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1200))]

    #[test]
    fn claims_of_any_type_are_checked_and_named(
        name in prop::sample::select(CLAIMS),
        value in json_value(),
        in_header in any::<bool>(),
    ) {
        let (b, _) = base();
        if in_header {
            // The header's `alg` must be a string; other fields are free.
            let t = b.clone().header_field("alg", value.clone()).build();
            match AgentIdentity::parse(t.as_bytes(), "p") {
                Ok(id) => prop_assert_eq!(Some(id.header().alg.as_str()), value.as_str()),
                Err(e) => {
                    prop_assert_eq!(e.exit_code(), 3);
                    prop_assert!(!value.is_string() || t.len() > MAX_AGENT_IDENTITY_BYTES);
                }
            }
            return Ok(());
        }
        let t = b.clone().claim(name, value.clone()).build();
        let valid = claim_is_valid(name, &value) && t.len() <= MAX_AGENT_IDENTITY_BYTES;
        match timed("parse", || AgentIdentity::parse(t.as_bytes(), "p")) {
            Ok(id) => {
                prop_assert!(valid, "{name}={value} was accepted");
                let c = id.claims();
                match name {
                    "agent_runtime_id" => prop_assert_eq!(Some(c.agent_runtime_id.as_str()), value.as_str()),
                    "account_id" => prop_assert_eq!(Some(c.account_id.as_str()), value.as_str()),
                    "chatgpt_user_id" => prop_assert_eq!(Some(c.chatgpt_user_id.as_str()), value.as_str()),
                    "email" => prop_assert_eq!(Some(c.email.as_str()), value.as_str()),
                    "plan_type" => prop_assert_eq!(Some(c.plan_type.as_str()), value.as_str()),
                    "chatgpt_account_is_fedramp" => prop_assert_eq!(Some(c.fedramp), value.as_bool()),
                    "iat" => prop_assert_eq!(Some(c.issued_at), value.as_i64()),
                    "exp" => prop_assert_eq!(Some(c.expires_at), value.as_i64()),
                    "iss" => prop_assert_eq!(c.issuer.as_deref(), value.as_str()),
                    "aud" => prop_assert_eq!(c.audience.as_deref(), value.as_str()),
                    _ => {}
                }
            }
            Err(e) => {
                prop_assert_eq!(e.exit_code(), 3);
                prop_assert!(!valid, "{name}={value} was refused: {e}");
                if t.len() <= MAX_AGENT_IDENTITY_BYTES {
                    prop_assert!(e.to_string().contains(name), "the error names the claim: {e}");
                }
            }
        }
    }

    #[test]
    fn api_keys_round_trip_through_every_stored_form(
        key in "[^\\s\\p{C}]{1,120}",
        pad in "[ \t\r\n]{0,3}",
    ) {
        prop_assume!(key.len() <= 4096 && !key.chars().any(|c| c.is_whitespace() || c.is_control()));
        let input = format!("{pad}{key}{pad}");
        let parsed = ApiKey::parse(input.as_bytes(), "p").expect("a valid key");
        prop_assert_eq!(parsed.expose(), key.as_str());
        let cred = Credential::parse(AuthMode::ApiKey, input.as_bytes(), "p").unwrap();
        let stored = StoredCredential::from_credential(&cred);
        let doc = stored.to_document();
        prop_assert_eq!(doc.len(), doc.capacity());
        for back in [
            StoredCredential::from_document(&doc, "loc").unwrap(),
            StoredCredential::from_keychain_value(&doc, "loc").unwrap(),
        ] {
            prop_assert_eq!(back.auth_mode(), AuthMode::ApiKey);
            prop_assert_eq!(back.expose_token(), key.as_str());
            let again = back.to_credential("loc").unwrap();
            prop_assert_eq!(again.expose_token(), key.as_str());
        }
        // A bare keychain value is an agent identity only when JWT-shaped
        // (one starting with `{` is read as a document: not a bare key).
        prop_assume!(!key.starts_with('{'));
        let bare = StoredCredential::from_keychain_value(input.as_bytes(), "kc").unwrap();
        let expected = if looks_like_jwt(&key) { AuthMode::AgentIdentity } else { AuthMode::ApiKey };
        prop_assert_eq!(bare.auth_mode(), expected);
        prop_assert_eq!(bare.expose_token(), key.as_str());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn valid_identities_round_trip(
        runtime in "[^\\p{C}\\p{Zl}\\p{Zp}]{1,40}",
        account in "[!-~]([ -~]{0,38}[!-~])?",
        user in "\\PC{0,40}",
        email in "\\PC{0,40}",
        plan in "\\PC{0,20}",
        fedramp in prop::option::of(any::<bool>()),
        iat in RFC3339_SECONDS,
        exp in RFC3339_SECONDS,
        pad in "[ \t\r\n]{0,3}",
    ) {
        let mut b = TokenBuilder::new()
            .claim("agent_runtime_id", json!(runtime))
            .claim("account_id", json!(account))
            .claim("chatgpt_user_id", json!(user))
            .claim("email", json!(email))
            .claim("plan_type", json!(plan))
            .claim("iat", json!(iat))
            .claim("exp", json!(exp));
        if let Some(f) = fedramp {
            b = b.claim("chatgpt_account_is_fedramp", json!(f));
        }
        let t = b.build();
        let input = format!("{pad}{t}{pad}");
        let id = AgentIdentity::parse(input.as_bytes(), "p").expect("valid");
        let c = id.claims();
        prop_assert_eq!(id.expose_token(), t.as_str());
        prop_assert_eq!(&c.agent_runtime_id, &runtime);
        prop_assert_eq!(&c.account_id, &account);
        prop_assert_eq!(&c.chatgpt_user_id, &user);
        prop_assert_eq!(&c.email, &email);
        prop_assert_eq!(&c.plan_type, &plan);
        prop_assert_eq!(c.fedramp, fedramp.unwrap_or(false));
        prop_assert_eq!((c.issued_at, c.expires_at), (iat, exp));
        prop_assert_eq!(id.signing_key().verifying_key(), b.verifying_key());

        let cred = Credential::parse(AuthMode::AgentIdentity, input.as_bytes(), "p").unwrap();
        let doc = StoredCredential::from_credential(&cred).to_document();
        for back in [
            StoredCredential::from_document(&doc, "loc").unwrap(),
            StoredCredential::from_keychain_value(&doc, "loc").unwrap(),
            StoredCredential::from_keychain_value(input.as_bytes(), "loc").unwrap(),
        ] {
            prop_assert_eq!(back.auth_mode(), AuthMode::AgentIdentity);
            prop_assert_eq!(back.expose_token(), t.as_str());
            let again = back.to_credential("loc").unwrap();
            prop_assert_eq!(again.agent_identity().unwrap().claims(), c);
        }
        // Through the environment, directly and by file.
        let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY", &input);
        let r = Resolver::new(&env).from_env().unwrap().expect("from env");
        prop_assert_eq!(r.credential.expose_token(), t.as_str());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, &input).unwrap();
        let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY_FILE", f.to_str().unwrap());
        let r = Resolver::new(&env).from_env().unwrap().expect("from file");
        prop_assert_eq!(r.credential.expose_token(), t.as_str());
    }
}

/// What an env `_FILE` may hold: arbitrary bytes, padded valid credentials,
/// or more than the 64 KiB read limit.
fn file_contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..1024),
        2 => prop::collection::vec(mutation(), 0..3)
            .prop_map(|m| apply(base().1.as_bytes(), &m)),
        1 => "[ \t\n]{0,2}sk-[a-z0-9]{1,20}[ \t\n]{0,2}".prop_map(String::into_bytes),
        1 => (64 * 1024 - 2..64 * 1024 + 64usize).prop_map(|n| vec![b'k'; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn env_file_contents_give_a_credential_or_3(
        contents in file_contents(),
        api in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, &contents).unwrap();
        let var = if api { "CREDSTORE_API_KEY_FILE" } else { "CREDSTORE_AGENT_IDENTITY_FILE" };
        let env = MapEnv::new().with(var, f.to_str().unwrap());
        match timed("resolve _FILE", || Resolver::new(&env).from_env()) {
            Ok(Some(r)) => {
                prop_assert_eq!(r.credential.expose_token().as_bytes(), trim_input(&contents));
                prop_assert_eq!(r.credential.auth_mode() == AuthMode::ApiKey, api);
            }
            Ok(None) => prop_assert!(false, "a set _FILE variable was ignored"),
            Err(e) => {
                prop_assert_eq!(e.exit_code(), 3, "{}", e);
                prop_assert!(e.to_string().contains(var), "names the variable: {}", e);
            }
        }
        // The same bytes in the variable itself (when they are text).
        if let Ok(text) = std::str::from_utf8(&contents) {
            let direct = var.trim_end_matches("_FILE");
            let env = MapEnv::new().with(direct, text);
            match Resolver::new(&env).from_env() {
                Ok(Some(r)) => prop_assert_eq!(r.credential.expose_token(), std::str::from_utf8(trim_input(text.as_bytes())).unwrap()),
                Ok(None) => prop_assert!(text.trim().is_empty(), "blank counts as unset"),
                Err(e) => prop_assert_eq!(e.exit_code(), 3, "{}", e),
            }
        }
    }

    #[test]
    fn unreadable_env_files_are_usage_errors(rel in "[a-z./]{0,16}") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing-here").join(&rel);
        for var in ["CREDSTORE_API_KEY_FILE", "CREDSTORE_AGENT_IDENTITY_FILE"] {
            let env = MapEnv::new().with(var, path.to_str().unwrap());
            let e = Resolver::new(&env).from_env().unwrap_err();
            prop_assert_eq!(e.exit_code(), 2, "{}", e);
            prop_assert!(e.to_string().contains(var));
        }
    }
}

#[test]
fn a_directory_or_an_endless_device_as_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = MapEnv::new().with("CREDSTORE_API_KEY_FILE", dir.path().to_str().unwrap());
    let e = Resolver::new(&env).from_env().unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    // A device (an endless one, or a FIFO that would block) is refused at
    // once, before any read.
    let devices: &[&str] = if cfg!(windows) {
        &["NUL"]
    } else {
        &["/dev/zero", "/dev/urandom"]
    };
    for &dev in devices {
        for var in ["CREDSTORE_API_KEY_FILE", "CREDSTORE_AGENT_IDENTITY_FILE"] {
            let env = MapEnv::new().with(var, dev);
            let e = timed(dev, || Resolver::new(&env).from_env()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
    }
    // Reading stops at 64 KiB: a huge file cannot exhaust memory.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'k'; 10 * 1024 * 1024]).unwrap();
    for var in ["CREDSTORE_API_KEY_FILE", "CREDSTORE_AGENT_IDENTITY_FILE"] {
        let env = MapEnv::new().with(var, &big);
        let e = timed("big", || Resolver::new(&env).from_env()).unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
        assert!(e.to_string().contains("64 KiB"), "{e}");
    }
}

/// A claims payload with `placeholder` replaced by raw JSON text.
fn raw_payload_token(name: &str, raw: &str) -> String {
    let (b, _) = base();
    let mut claims = b.claims().clone();
    claims.insert(name.to_string(), json!("@@RAW@@"));
    let text = serde_json::to_string(&claims).unwrap();
    b.with_raw_payload(text.replace("\"@@RAW@@\"", raw).as_bytes())
}

#[test]
fn deep_nesting_and_huge_numbers() {
    // Nesting in an ignored claim, in a typed claim, and in a document:
    // never a stack overflow; a typed claim holding an array is an error.
    for depth in [1usize, 64, 126, 127, 128, 129, 1000, 5000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        for claim in ["extra", "exp", "email"] {
            let t = raw_payload_token(claim, &nested);
            match timed("deep token", || AgentIdentity::parse(t.as_bytes(), "p")) {
                // (serde_json skips ignored values without recursing, so an
                // unknown claim may nest arbitrarily deep.)
                Ok(_) => assert_eq!(claim, "extra", "depth {depth}"),
                Err(e) => assert_eq!(e.exit_code(), 3, "{e}"),
            }
        }
        let doc = format!("{{\"api_key\":\"k\",\"x\":{nested}}}");
        check_all_parsers(doc.as_bytes());
        let doc = format!("{{\"api_key\":{nested}}}");
        let e = StoredCredential::from_document(doc.as_bytes(), "loc").unwrap_err();
        assert_eq!(e.exit_code(), 4);
        let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        check_all_parsers(format!("{{\"api_key\":\"k\",\"x\":{objects}}}").as_bytes());
    }
    for (raw, ok) in [
        ("0", true),
        ("-0", false),          // serde_json reads -0 as a float
        ("253402300799", true), // 9999-12-31T23:59:59Z
        ("253402300800", false),
        ("-62167219200", true), // 0000-01-01T00:00:00Z
        ("-62167219201", false),
        ("9223372036854775807", false),
        ("-9223372036854775808", false),
        ("9223372036854775808", false),
        ("-9223372036854775809", false),
        ("18446744073709551616", false),
        ("123456789012345678901234567890", false),
        ("1e400", false),
        ("-1e400", false),
        ("1.0", false),
        ("1e3", false),
        ("0.5", false),
    ] {
        for claim in ["iat", "exp"] {
            let t = raw_payload_token(claim, raw);
            let r = AgentIdentity::parse(t.as_bytes(), "p");
            assert_eq!(r.is_ok(), ok, "{claim}={raw}: {:?}", r.err());
            if let Err(e) = r {
                assert_eq!(e.exit_code(), 3);
                // 1e400 is out of serde_json's range: a JSON error with its
                // position; every other case names the claim.
                let msg = e.to_string();
                assert!(
                    msg.contains(claim) || msg.contains("not valid JSON"),
                    "{msg}"
                );
            }
        }
    }
    // Strings with NULs, lone surrogates, and unicode escapes.
    for (raw, ok) in [
        ("\"a\\u0000b\"", true),
        ("\"\\ud800\"", false),
        ("\"\\udc00\\ud800\"", false),
        ("\"\\ud83d\\ude00\"", true),
        ("\"é\u{202e}\"", true),
    ] {
        let t = raw_payload_token("email", raw);
        let r = AgentIdentity::parse(t.as_bytes(), "p");
        assert_eq!(r.is_ok(), ok, "email={raw}: {:?}", r.err());
    }
    // Sizes around the 16 KiB limit are decided before decoding.
    let t = TokenBuilder::new().build();
    for n in [
        MAX_AGENT_IDENTITY_BYTES - t.len() + 1,
        MAX_AGENT_IDENTITY_BYTES,
    ] {
        let long = format!("{t}{}", "A".repeat(n));
        let e = timed("oversize", || AgentIdentity::parse(long.as_bytes(), "p")).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("limit"), "{e}");
    }
}
