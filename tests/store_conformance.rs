//! The shared store conformance suite on the file and memory backends.

mod common;

use credstore::store::{FileStore, MemoryStore};

#[test]
fn memory_store_conforms() {
    common::conformance::run_suite(&MemoryStore::new(), "mem-");
}

#[test]
fn file_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("home"));
    common::conformance::run_suite(&store, "file-");
}
