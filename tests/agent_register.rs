//! Task registration (SPEC §7) against a real HTTP server on 127.0.0.1:
//! `tests/authapi_server.py`, which checks every signature with libsodium
//! (PyNaCl) and seals task ids with it. Needs Python 3 with PyNaCl
//! (`pip install pynacl`); without it these tests fail with that message.

mod common;

use common::authapi::AuthApi;
use common::tokens::{self, TokenBuilder};
use credstore::agent::{register_task, RegistrationConfig, TaskSession, MAX_ERROR_BODY_CHARS};
use credstore::env::{EnvNames, MapEnv};
use credstore::{AgentIdentity, Error};
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::net::TcpListener;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn registration_error(e: &Error) -> (Option<u16>, String) {
    match e {
        Error::Registration { status, .. } => (*status, e.to_string()),
        other => panic!("expected a registration error, got {other:?}"),
    }
}

#[test]
fn plain_and_camel_case_task_ids() {
    let api = AuthApi::start();
    let id = register_task(&api.identity("rt-plain"), &api.config()).expect("plain");
    assert_eq!(id, "task-plain-1");
    let id = register_task(&api.identity("rt-camel"), &api.config()).expect("camelCase");
    assert_eq!(id, "task-camel-1");
    // Each passed libsodium's signature check exactly once.
    assert_eq!(api.count("rt-plain"), 1);
    assert_eq!(api.count("rt-camel"), 1);
}

#[test]
fn sealed_task_ids_open_with_the_derived_x25519_key() {
    let api = AuthApi::start();
    let id = register_task(&api.identity("rt-sealed"), &api.config()).expect("sealed");
    assert_eq!(id, "task-sealed-1");
    let id = register_task(&api.identity("rt-sealed-camel"), &api.config()).expect("sealed camel");
    assert_eq!(id, "task-sealed-2");

    let e = register_task(&api.identity("rt-bad-seal"), &api.config()).expect_err("junk box");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("does not open"), "{e}");
}

#[test]
fn the_server_really_checks_the_signature() {
    let api = AuthApi::start();
    // Same runtime id, another key: the server must refuse it.
    let stranger = TokenBuilder::new()
        .claim("agent_runtime_id", json!("rt-plain"))
        .build();
    let stranger = AgentIdentity::parse(stranger.as_bytes(), "test").expect("parse");
    let e = register_task(&stranger, &api.config()).expect_err("wrong key");
    let (status, msg) = registration_error(&e);
    assert_eq!(status, Some(401));
    assert!(msg.contains("bad signature"), "{msg}");
    assert_eq!(e.exit_code(), 4);
    assert_eq!(api.count("rt-plain"), 0);
}

#[test]
fn http_errors_report_status_and_at_most_512_characters_of_body() {
    let api = AuthApi::start();
    let e = register_task(&api.identity("rt-400"), &api.config()).expect_err("400");
    let (status, msg) = registration_error(&e);
    assert_eq!(status, Some(400));
    assert_eq!(e.exit_code(), 4);
    assert!(msg.contains("HTTP 400"), "{msg}");
    assert!(msg.contains(&"E".repeat(MAX_ERROR_BODY_CHARS)), "{msg}");
    assert!(
        !msg.contains(&"E".repeat(MAX_ERROR_BODY_CHARS + 1)),
        "{msg}"
    );
    assert!(!msg.contains("TAIL-MARKER"), "{msg}");

    let e = register_task(&api.identity("rt-503"), &api.config()).expect_err("503");
    let (status, msg) = registration_error(&e);
    assert_eq!(status, Some(503));
    assert!(msg.contains("HTTP 503 Service Unavailable"), "{msg}");
    assert_eq!(
        msg.matches('S').count() - "Service".matches('S').count(),
        512,
        "{msg}"
    );
    assert!(msg.len() < 1000, "message too long: {} bytes", msg.len());
}

#[test]
fn answers_without_a_task_id_are_errors() {
    let api = AuthApi::start();
    let e = register_task(&api.identity("rt-empty"), &api.config()).expect_err("{}");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("none of `task_id`"), "{e}");
    let e = register_task(&api.identity("rt-not-json"), &api.config()).expect_err("text");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("not JSON"), "{e}");
}

#[test]
fn a_server_that_never_answers_times_out_in_seconds() {
    let api = AuthApi::start();
    let env = MapEnv::new()
        .with("CREDSTORE_AUTHAPI_BASE_URL", api.base_url())
        .with("CREDSTORE_HTTP_TIMEOUT", "2");
    let config = RegistrationConfig::from_env(&env, &EnvNames::default(), None).expect("config");
    let started = Instant::now();
    let e = register_task(&api.identity("rt-hang"), &config).expect_err("must time out");
    let took = started.elapsed();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("CREDSTORE_HTTP_TIMEOUT"), "{e}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "took {took:?}"
    );
}

#[test]
fn an_unreachable_server_is_a_backend_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let token = TokenBuilder::with_key(key).build();
    let identity = AgentIdentity::parse(token.as_bytes(), "test").expect("parse");
    let config = RegistrationConfig::new(&format!("http://127.0.0.1:{port}")).expect("url");
    let e = register_task(&identity, &config).expect_err("nothing listens");
    let (status, msg) = registration_error(&e);
    assert_eq!(status, None);
    assert_eq!(e.exit_code(), 4);
    assert!(msg.contains(&port.to_string()), "{msg}");
}

#[test]
fn an_expired_identity_is_not_registered() {
    let api = AuthApi::start();
    let token = TokenBuilder::with_key(api.key.clone())
        .claim("agent_runtime_id", json!("rt-plain"))
        .claim("exp", json!(tokens::real_now() - 3600))
        .build();
    let id = AgentIdentity::parse(token.as_bytes(), "test").expect("parse");
    let e = register_task(&id, &api.config()).expect_err("expired");
    assert_eq!(e.exit_code(), 3);
    assert_eq!(api.count("rt-plain"), 0);
}

#[test]
fn concurrent_first_use_of_a_session_registers_exactly_once() {
    let api = AuthApi::start();
    let session = Arc::new(TaskSession::new(
        Arc::new(api.identity("rt-slow")),
        api.config(),
    ));
    assert!(!session.registered());
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let session = Arc::clone(&session);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                session.task_id()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread").expect("task id"), "task-slow-1");
    }
    assert!(session.registered());
    assert_eq!(
        api.count("rt-slow"),
        1,
        "the server saw more than one registration"
    );

    // Later use reuses the id: still one registration.
    let headers = session.request_headers().expect("headers");
    assert!(headers
        .get("Authorization")
        .expect("authorization")
        .starts_with("AgentAssertion "));
    let a = session.assertion().expect("assertion");
    assert!(a.expose().starts_with("AgentAssertion "));
    assert_eq!(api.count("rt-slow"), 1);
}

#[test]
fn a_failed_registration_is_retried_by_the_session() {
    let api = AuthApi::start();
    let session = TaskSession::new(Arc::new(api.identity("rt-503")), api.config());
    assert!(session.task_id().is_err());
    assert!(session.task_id().is_err());
    assert!(!session.registered());
    assert_eq!(api.count("rt-503"), 2);
}
