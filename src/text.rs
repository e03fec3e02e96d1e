//! One rule for untrusted text, shared by the parsers that refuse it and the
//! escaper that shows it: a character is *hidden* when its Unicode general
//! category is control (Cc), format (Cf — zero-width, bidi controls, soft
//! hyphen, tag characters…), line or paragraph separator (Zl, Zp), private
//! use (Co) or unassigned (Cn). Such characters can restyle a terminal,
//! forge lines, reorder what is shown or hide part of a value, so a secret
//! never contains one and a claim shown on a terminal has them escaped.

use std::borrow::Cow;
use unicode_general_category::{get_general_category, GeneralCategory};

/// Whether `c` is hidden (see the module docs).
pub fn is_hidden(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    )
}

/// The first hidden character of `text`, as (character index, char).
pub fn first_hidden(text: &str) -> Option<(usize, char)> {
    text.chars().enumerate().find(|(_, c)| is_hidden(*c))
}

/// `text` as it may be shown on a terminal: every hidden character written
/// as `\u{…}`, everything else as it is.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// What hidden character `c` is, for messages: its kind and code point
/// (`an invisible formatting character (U+2066)`). The code point names a
/// character the user cannot see without showing anything secret.
pub fn describe_hidden(c: char) -> String {
    format!("{} (U+{:04X})", hidden_kind(c), c as u32)
}

fn hidden_kind(c: char) -> &'static str {
    match get_general_category(c) {
        GeneralCategory::Control => "a control character",
        GeneralCategory::Format => "an invisible formatting character",
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            "a line or paragraph separator"
        }
        GeneralCategory::PrivateUse => "a private-use character",
        _ => "an unassigned character",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_decide() {
        for c in [
            '\0',
            '\n',
            '\r',
            '\u{7f}',
            '\u{1b}',
            '\u{85}', // Cc
            '\u{ad}',
            '\u{61c}',
            '\u{200b}',
            '\u{200e}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{e0041}', // Cf, tag characters
            '\u{2028}',
            '\u{2029}', // Zl, Zp
            '\u{e000}',
            '\u{f8ff}',
            '\u{10fffd}', // Co
            '\u{378}',
            '\u{fffe}', // Cn
        ] {
            assert!(is_hidden(c), "{:?}", c.escape_unicode().to_string());
        }
        for c in ['a', 'é', '€', '😀', ' ', '-', '\u{a0}', 'ß', 'ж'] {
            assert!(!is_hidden(c), "{c}");
        }
    }

    #[test]
    fn shown_escapes_only_hidden_characters() {
        assert!(matches!(shown("plain é"), Cow::Borrowed(_)));
        assert_eq!(shown("a\u{1b}[31mb"), "a\\u{1b}[31mb");
        assert_eq!(shown("x\u{61c}y\u{ad}"), "x\\u{61c}y\\u{ad}");
        assert_eq!(first_hidden("ab\u{2067}c"), Some((2, '\u{2067}')));
        assert_eq!(
            describe_hidden('\u{2067}'),
            "an invisible formatting character (U+2067)"
        );
    }
}
