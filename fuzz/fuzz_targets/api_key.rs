//! An API key (SPEC §1.2): accepted exactly as given (trimmed), or refused
//! with exit 3.
#![no_main]
mod common;

use credstore::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ApiKey::parse(data, "fuzz") {
        Ok(k) => assert_eq!(k.expose().as_bytes(), data.trim_ascii()),
        Err(e) => common::expect_code(&e, &[3], "ApiKey::parse"),
    }
});
