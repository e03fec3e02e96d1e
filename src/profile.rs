//! Profile names (SPEC §3): one credential slot each.

use crate::error::{Error, Result};

/// A validated profile name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profile(String);

impl Profile {
    /// The profile used when none is named.
    pub const DEFAULT: &'static str = "default";

    /// Validates a profile name; anything else is a usage error (exit 2).
    pub fn new(name: &str) -> Result<Profile> {
        let bytes = name.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Profile(name.to_string()))
        } else {
            // The name is not repeated: a secret pasted in the wrong place
            // must not be echoed.
            Err(Error::Usage(format!(
                "invalid profile name ({} characters): use 1 to 64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
                name.chars().count()
            )))
        }
    }

    /// The `default` profile.
    pub fn default_profile() -> Profile {
        Profile(Self::DEFAULT.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the `default` profile.
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["default", "a", "9", "work.prod_1-x", &"a".repeat(64)] {
            assert!(Profile::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "-a",
            "_a",
            "a b",
            "a/b",
            "../x",
            "a\n",
            "é",
            &"a".repeat(65),
        ] {
            let e = Profile::new(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }
}
