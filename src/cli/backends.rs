//! Printing what `auto` and the keychain backend tell the user (on stderr).

use credstore::store::AutoNotice;

/// Prints a notice from `auto` or the keychain backend.
pub fn print_notice(notice: AutoNotice<'_>) {
    match notice {
        AutoNotice::PlaintextFallback { file, reason } => eprintln!(
            "warning: {reason}\nwarning: so the credential goes to a plaintext file: {} \
             (mode 0600, readable by you and root). To choose explicitly, pass --backend file \
             or --backend keychain (or set CREDSTORE_BACKEND).",
            file.detail
        ),
        AutoNotice::PlaintextCopyRemoved { file, keychain } => eprintln!(
            "Removed the plaintext copy {}: the credential is now in the keychain ({}).",
            file.detail, keychain.detail
        ),
        AutoNotice::PlaintextCopyKept { file, error } => eprintln!(
            "warning: the credential is in the keychain, but its plaintext copy {} could not \
             be removed: {error}. Remove it yourself.",
            file.detail
        ),
        other => eprintln!("note: {other:?}"),
    }
}
