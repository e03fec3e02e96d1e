//! A keychain value (SPEC §2): a document or a bare token written by
//! another tool; a bad shape is exit 4, a bad token exit 3.
#![no_main]
mod common;

use credstore::stored::StoredCredential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match StoredCredential::from_keychain_value(data, "fuzz") {
        Ok(doc) => {
            if let Err(e) = doc.to_credential("fuzz") {
                common::expect_code(&e, &[3], "to_credential");
            }
        }
        Err(e) => common::expect_code(&e, &[4], "from_keychain_value"),
    }
});
