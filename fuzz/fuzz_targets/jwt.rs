//! An agent identity JWT (SPEC §1.1): accepted exactly as given (trimmed),
//! or refused with exit 3 — never a panic.
#![no_main]
mod common;

use credstore::AgentIdentity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match AgentIdentity::parse(data, "fuzz") {
        Ok(id) => {
            assert_eq!(id.expose_token().as_bytes(), common::expected_token(data));
            assert!(!format!("{id:?}").contains(id.expose_token()));
        }
        Err(e) => common::expect_code(&e, &[3], "AgentIdentity::parse"),
    }
});
