//! An API key (SPEC §1.2): accepted exactly as given (trimmed, a leading byte-order mark dropped), or refused
//! with exit 3.
#![no_main]
mod common;

use credstore::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ApiKey::parse(data, "fuzz") {
        Ok(k) => assert_eq!(k.expose().as_bytes(), common::expected_token(data)),
        Err(e) => common::expect_code(&e, &[3], "ApiKey::parse"),
    }
});
