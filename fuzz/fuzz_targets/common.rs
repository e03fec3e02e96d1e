//! Shared by the fuzz targets: the exit-code contract (SPEC §6.1) and a
//! throwaway identity minted once per process (never a real credential).
#![allow(dead_code)]

#[path = "../../tests/common/tokens.rs"]
pub mod tokens;

use credstore::{AgentIdentity, Error};
use std::sync::OnceLock;

/// Panics (a crash for libFuzzer) unless `e` has one of `codes`.
pub fn expect_code(e: &Error, codes: &[u8], what: &str) {
    let code = e.exit_code();
    assert!(
        codes.contains(&code),
        "{what}: exit code {code}, expected one of {codes:?}: {e}"
    );
}

/// A valid identity with a throwaway key, minted once.
pub fn identity() -> &'static AgentIdentity {
    static ID: OnceLock<AgentIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        let t = tokens::TokenBuilder::new().build();
        AgentIdentity::parse(t.as_bytes(), "fuzz").expect("minted token parses")
    })
}

/// What an accepted credential must equal: the input without a leading
/// byte-order mark, trimmed (SPEC §1.1, §1.2).
pub fn expected_token(data: &[u8]) -> &[u8] {
    credstore::secret::trim_input(data)
}
