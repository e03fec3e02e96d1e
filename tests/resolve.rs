//! Environment-first resolution through the library, with an injected
//! environment (the real process environment is never touched).

mod common;

use common::tokens::TokenBuilder;
use credstore::credential::{AuthMode, Credential};
use credstore::env::MapEnv;
use credstore::profile::Profile;
use credstore::resolve::{Resolver, Source};
use credstore::store::{MemoryStore, SourceKind, Store};
use credstore::stored::StoredCredential;

fn store_with(token: &str) -> MemoryStore {
    let store = MemoryStore::new();
    let c = Credential::parse(AuthMode::AgentIdentity, token.as_bytes(), "t").unwrap();
    store
        .save(
            &Profile::default_profile(),
            &StoredCredential::from_credential(&c),
        )
        .unwrap();
    store
}

fn token_of(r: &Resolver, store: &MemoryStore) -> Option<(String, Source)> {
    r.resolve(store, &Profile::default_profile())
        .unwrap()
        .map(|x| (x.credential.expose_token().to_string(), x.source))
}

#[test]
fn order_is_api_key_then_agent_identity_then_stored() {
    let stored = TokenBuilder::new().build();
    let env_id = TokenBuilder::new().build();
    let store = store_with(&stored);
    let p = Profile::default_profile();

    let env = MapEnv::new();
    let (t, src) = token_of(&Resolver::new(&env), &store).unwrap();
    assert_eq!(t, stored);
    assert_eq!(src, Source::Stored(store.describe(&p)));

    let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY", &env_id);
    let (t, src) = token_of(&Resolver::new(&env), &store).unwrap();
    assert_eq!(t, env_id);
    assert_eq!(src.location().kind, SourceKind::Env);
    assert_eq!(src.location().detail, "CREDSTORE_AGENT_IDENTITY");

    let env = env.with("CREDSTORE_API_KEY", "sk-env");
    let (t, _) = token_of(&Resolver::new(&env), &store).unwrap();
    assert_eq!(t, "sk-env");
    let shadowed = Resolver::new(&env).shadowed();
    assert_eq!(shadowed.len(), 1);
    assert_eq!(shadowed[0].variable, "CREDSTORE_AGENT_IDENTITY");
    assert_eq!(shadowed[0].by, "CREDSTORE_API_KEY");

    let (t, _) = token_of(&Resolver::new(&env).without_env(), &store).unwrap();
    assert_eq!(t, stored, "--no-env skips steps 1-2");
    assert!(Resolver::new(&env).without_env().shadowed().is_empty());
}

#[test]
fn blank_values_count_as_unset() {
    let store = MemoryStore::new();
    let env = MapEnv::new()
        .with("CREDSTORE_API_KEY", "")
        .with("CREDSTORE_AGENT_IDENTITY", " \n\t ")
        .with("CREDSTORE_API_KEY_FILE", "  ");
    assert!(token_of(&Resolver::new(&env), &store).is_none());
}

#[test]
fn prefix_is_a_library_parameter() {
    let store = MemoryStore::new();
    let env = MapEnv::new()
        .with("CODEX_API_KEY", "sk-codex")
        .with("CREDSTORE_API_KEY", "sk-credstore");
    let r = Resolver::new(&env).with_prefix("CODEX");
    assert_eq!(r.names().api_key(), "CODEX_API_KEY");
    assert_eq!(r.names().agent_identity(), "CODEX_AGENT_IDENTITY");
    let (t, src) = token_of(&r, &store).unwrap();
    assert_eq!(t, "sk-codex");
    assert_eq!(src.location().detail, "CODEX_API_KEY");
    let id = TokenBuilder::new().build();
    let env = MapEnv::new().with("CODEX_AGENT_IDENTITY", &id);
    let (t, _) = token_of(&Resolver::new(&env).with_prefix("CODEX"), &store).unwrap();
    assert_eq!(t, id);
    assert!(
        token_of(&Resolver::new(&env), &store).is_none(),
        "CREDSTORE_ prefix ignores CODEX_"
    );
}

#[test]
fn env_errors_name_the_variable_and_do_not_fall_back() {
    let store = store_with(&TokenBuilder::new().build());
    let p = Profile::default_profile();
    let env = MapEnv::new().with("CREDSTORE_API_KEY", "two words");
    let e = Resolver::new(&env).resolve(&store, &p).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("CREDSTORE_API_KEY"));

    let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY", "x.y.z");
    let e = Resolver::new(&env).resolve(&store, &p).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("CREDSTORE_AGENT_IDENTITY"));

    let env = MapEnv::new()
        .with("CREDSTORE_API_KEY", "sk-1")
        .with("CREDSTORE_API_KEY_FILE", "/dev/null");
    let e = Resolver::new(&env).resolve(&store, &p).unwrap_err();
    assert_eq!(e.exit_code(), 2);

    let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY_FILE", "/nonexistent/credstore/x");
    let e = Resolver::new(&env).resolve(&store, &p).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("/nonexistent/credstore/x"));
}

#[test]
fn file_variant_reads_and_trims() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("key");
    std::fs::write(&f, "sk-from-file\n").unwrap();
    let env = MapEnv::new().with("CREDSTORE_API_KEY_FILE", f.to_str().unwrap());
    let (t, src) = token_of(&Resolver::new(&env), &MemoryStore::new()).unwrap();
    assert_eq!(t, "sk-from-file");
    assert_eq!(
        src,
        Source::Env {
            variable: "CREDSTORE_API_KEY_FILE".into(),
            file: Some(f.clone())
        }
    );
}

#[test]
fn resolving_never_writes_to_the_store() {
    let store = MemoryStore::new();
    let env = MapEnv::new().with("CREDSTORE_API_KEY", "sk-env");
    let p = Profile::default_profile();
    let r = Resolver::new(&env);
    for _ in 0..3 {
        assert!(r.resolve(&store, &p).unwrap().is_some());
    }
    assert!(
        store.load(&p).unwrap().is_none(),
        "env credential reached the store"
    );
}
