//! An `encrypted_task_id` from the auth API (SPEC §7), which a hostile or
//! broken server controls. The first byte picks the mode: raw bytes as the
//! box (garbage never opens), or the rest sealed properly to the agent's
//! key, so the checks on the decrypted task id see arbitrary content. Every
//! failure is an error with exit 4, never a panic.
#![no_main]
mod common;

use credstore::agent::open_sealed_task_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let id = common::identity();
    if mode & 1 == 0 {
        match open_sealed_task_id(id, rest) {
            // Only a box sealed to this (per-process, random) key opens.
            Ok(task) => panic!("garbage opened as task id {task:?}"),
            Err(e) => common::expect_code(&e, &[4], "open garbage"),
        }
    } else {
        let secret = crypto_box::SecretKey::from_bytes(id.signing_key().to_scalar_bytes());
        let sealed = secret
            .public_key()
            .seal(&mut rand_core::OsRng, rest)
            .expect("seal");
        match open_sealed_task_id(id, &sealed) {
            Ok(task) => assert_eq!(task.as_bytes(), rest, "opened to something else"),
            Err(e) => common::expect_code(&e, &[4], "open sealed content"),
        }
    }
});
