//! The behaviour every [`Store`] must have, run against each backend
//! (file and memory here; keychain and Vault in their own test files).
#![allow(dead_code)]

use super::tokens::TokenBuilder;
use credstore::credential::{AuthMode, Credential};
use credstore::profile::Profile;
use credstore::store::Store;
use credstore::stored::StoredCredential;

fn stored(mode: AuthMode, token: &str) -> StoredCredential {
    let c = Credential::parse(mode, token.as_bytes(), "test").expect("valid test credential");
    StoredCredential::from_credential(&c)
}

/// Runs the whole suite on `store`, using profiles whose names start with
/// `prefix` (so suites can share a real backend without colliding).
pub fn run_suite(store: &dyn Store, prefix: &str) {
    let p1 = Profile::new(&format!("{prefix}one")).unwrap();
    let p2 = Profile::new(&format!("{prefix}two")).unwrap();
    for p in [&p1, &p2] {
        let _ = store.delete(p);
    }

    // Empty: nothing stored, nothing to delete.
    assert!(
        store.load(&p1).unwrap().is_none(),
        "{}: empty load",
        store.name()
    );
    assert!(
        store.delete(&p1).unwrap().is_empty(),
        "{}: empty delete",
        store.name()
    );

    // Save and load back exactly.
    let saved_at = store
        .save(&p1, &stored(AuthMode::ApiKey, "sk-conformance-1"))
        .unwrap();
    assert_eq!(saved_at, store.describe(&p1), "save says where it wrote");
    let got = store.load(&p1).unwrap().expect("saved");
    assert_eq!(got.location, saved_at, "load says where it found it");
    assert_eq!(got.auth_mode(), AuthMode::ApiKey);
    assert_eq!(got.expose_token(), "sk-conformance-1");

    // Loading does not change anything.
    let again = store.load(&p1).unwrap().expect("still there");
    assert_eq!(again.expose_token(), "sk-conformance-1");

    // Replace with another kind.
    let jwt = TokenBuilder::new().build();
    store
        .save(&p1, &stored(AuthMode::AgentIdentity, &jwt))
        .unwrap();
    let got = store.load(&p1).unwrap().expect("replaced");
    assert_eq!(got.auth_mode(), AuthMode::AgentIdentity);
    assert_eq!(got.expose_token(), jwt);
    let cred = got.to_credential("test").expect("valid after round trip");
    assert_eq!(
        cred.agent_identity().unwrap().claims().agent_runtime_id,
        "rt-test-1"
    );

    // Profiles are separate.
    assert!(store.load(&p2).unwrap().is_none());
    store
        .save(&p2, &stored(AuthMode::ApiKey, "sk-conformance-2"))
        .unwrap();
    assert_eq!(store.load(&p1).unwrap().unwrap().expose_token(), jwt);
    assert_eq!(
        store.load(&p2).unwrap().unwrap().expose_token(),
        "sk-conformance-2"
    );

    // describe names the backend kind.
    let loc = store.describe(&p2);
    assert_eq!(loc.kind.as_str(), store.name(), "describe kind");
    assert!(
        loc.detail.contains(p2.as_str()),
        "describe detail {:?}",
        loc.detail
    );

    // Delete one; the other stays.
    assert_eq!(store.delete(&p1).unwrap(), vec![store.describe(&p1)]);
    assert!(store.load(&p1).unwrap().is_none());
    assert!(store.delete(&p1).unwrap().is_empty());
    assert_eq!(
        store.load(&p2).unwrap().unwrap().expose_token(),
        "sk-conformance-2"
    );
    assert!(!store.delete(&p2).unwrap().is_empty());
    assert!(store.load(&p2).unwrap().is_none());
}
