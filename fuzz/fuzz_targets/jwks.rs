//! A JWKS (SPEC §1.3): malformed is a usage error (exit 2); a parsed one
//! verifies an identity (it did not sign) with exit 3, never a panic.
#![no_main]
mod common;

use credstore::jwks::Verifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Verifier::from_jwks_json(data, "fuzz.json") {
        Ok(v) => {
            let v = v.with_issuer("iss").with_audience("aud");
            if let Err(e) = v.verify(common::identity()) {
                common::expect_code(&e, &[3], "verify");
            }
        }
        Err(e) => common::expect_code(&e, &[2], "from_jwks_json"),
    }
});
