//! Speed of the paths a program embedding credstore takes on every start:
//! parsing an agent identity, reading the file store, resolving from env.
//! Run: `cargo bench --bench core`. Figures go in BENCHMARKS.md.

#[path = "../tests/common/tokens.rs"]
mod tokens;

use credstore::credential::{AuthMode, Credential};
use credstore::env::MapEnv;
use credstore::profile::Profile;
use credstore::resolve::Resolver;
use credstore::store::{FileStore, MemoryStore, Store};
use credstore::stored::StoredCredential;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let token = tokens::TokenBuilder::new().build();
    c.bench_function("parse agent identity (JWT + PKCS#8 key)", |b| {
        b.iter(|| {
            Credential::parse(
                AuthMode::AgentIdentity,
                black_box(token.as_bytes()),
                "bench",
            )
            .unwrap()
        })
    });
    c.bench_function("parse API key", |b| {
        b.iter(|| {
            Credential::parse(
                AuthMode::ApiKey,
                black_box(b"sk-bench-0123456789abcdef"),
                "bench",
            )
            .unwrap()
        })
    });

    let cred = Credential::parse(AuthMode::AgentIdentity, token.as_bytes(), "bench").unwrap();
    let stored = StoredCredential::from_credential(&cred);
    c.bench_function("stored document: serialize + parse", |b| {
        b.iter(|| {
            StoredCredential::from_document(&black_box(&stored).to_document(), "bench").unwrap()
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("home"));
    let profile = Profile::default_profile();
    c.bench_function(
        "file store: save (lock, temp, fsync, rename, dir fsync)",
        |b| b.iter(|| store.save(&profile, &stored).unwrap()),
    );
    c.bench_function("file store: load (checks + read + parse document)", |b| {
        b.iter(|| store.load(&profile).unwrap().unwrap())
    });
    let env = MapEnv::new();
    c.bench_function(
        "resolve: stored agent identity from file (load + validate)",
        |b| {
            b.iter(|| {
                Resolver::new(&env)
                    .resolve(&store, &profile)
                    .unwrap()
                    .unwrap()
            })
        },
    );
    let env = MapEnv::new().with("CREDSTORE_AGENT_IDENTITY", &token);
    let empty = MemoryStore::new();
    c.bench_function("resolve: agent identity from env", |b| {
        b.iter(|| {
            Resolver::new(&env)
                .resolve(&empty, &profile)
                .unwrap()
                .unwrap()
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);
