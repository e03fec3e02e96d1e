//! The contents of a `CREDSTORE_*_FILE` (SPEC §5), through the resolver as
//! an embedding program calls it: the first byte picks the variable, the
//! rest is the file. A readable file gives its credential or exit 3.
#![no_main]
mod common;

use credstore::env::MapEnv;
use credstore::resolve::Resolver;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("credstore-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("secret")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, contents)) = data.split_first() else {
        return;
    };
    let var = if pick & 1 == 0 {
        "CREDSTORE_API_KEY_FILE"
    } else {
        "CREDSTORE_AGENT_IDENTITY_FILE"
    };
    std::fs::write(path(), contents).expect("write the file");
    let env = MapEnv::new().with(var, path().to_str().expect("utf-8 path"));
    match Resolver::new(&env).from_env() {
        Ok(Some(r)) => {
            assert_eq!(
                r.credential.expose_token().as_bytes(),
                common::expected_token(contents)
            )
        }
        Ok(None) => panic!("a set _FILE variable was ignored"),
        Err(e) => common::expect_code(&e, &[3], "resolve _FILE"),
    }
});
