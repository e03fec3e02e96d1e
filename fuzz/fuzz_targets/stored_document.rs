//! A stored document (SPEC §2): a bad shape is exit 4, its bad token exit
//! 3; a parsed document re-serializes to one that parses the same.
#![no_main]
mod common;

use credstore::stored::StoredCredential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match StoredCredential::from_document(data, "fuzz") {
        Ok(doc) => {
            let again = StoredCredential::from_document(&doc.to_document(), "fuzz")
                .expect("a written document parses");
            assert_eq!(again.expose_token(), doc.expose_token());
            assert_eq!(again.auth_mode(), doc.auth_mode());
            if let Err(e) = doc.to_credential("fuzz") {
                common::expect_code(&e, &[3], "to_credential");
            }
        }
        Err(e) => common::expect_code(&e, &[4], "from_document"),
    }
});
