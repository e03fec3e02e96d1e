//! Moving a profile's stored credential from one backend to another
//! (`credstore migrate`): copy, verify by reading back, then delete from
//! the source. On any failure before the delete, the source is untouched.
//! Environment credentials are never involved: only what `from` stores.

use super::{ChangeLock, Location, SourceKind, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Where the credential was.
    pub source: Location,
    /// Where it is now.
    pub target: Location,
    /// Whether the target already held a credential that was replaced.
    pub replaced: bool,
}

/// Moves `profile`'s credential from `from` to `to`. `before_write` runs
/// just before the target is written (to warn about a plaintext file).
///
/// `_lock` is the change lock ([`FileStore::lock_changes`](super::FileStore::lock_changes)),
/// held by the caller for the whole copy–verify–delete, so that to other
/// writers on this machine it is one change. Writers elsewhere (another
/// machine on the same Vault) are caught by check-and-set: the target is
/// written only if it still has the version first read here, and a Vault
/// source is deleted only if it still has the version that was copied.
///
/// A target that cannot be read is not written blindly; a copy that does
/// not read back the same is an error and the source stays; a failed
/// delete after a verified copy is an error that says the credential is
/// now in both places.
pub fn migrate(
    from: &dyn Store,
    to: &dyn Store,
    profile: &Profile,
    _lock: &ChangeLock,
    before_write: &dyn Fn(&Location),
) -> Result<Migration> {
    if from.name() == to.name() {
        return Err(Error::Usage(format!(
            "the credential of profile {profile} is already in the {} backend; choose another destination backend",
            to.name()
        )));
    }
    let source_revision = from.revision(profile)?;
    let Some(found) = from.load(profile)? else {
        return Err(Error::NoCredential(format!(
            "nothing to migrate: no credential is stored for profile {profile} in {} \
             (environment credentials are never migrated)",
            from.describe(profile)
        )));
    };
    let source = found.location;
    let credential = found.credential;
    let target = to.describe(profile);
    // The version first read is what the write is checked against; a
    // destination that cannot be read is not written blindly.
    let target_revision = to.revision(profile)?;
    let replaced = to.load(profile)?.is_some();
    before_write(&target);
    to.save_if(profile, &credential, target_revision)?;
    let verified = to.load(profile)?.is_some_and(|back| {
        back.credential.auth_mode() == credential.auth_mode()
            && back.credential.expose_token().as_bytes() == credential.expose_token().as_bytes()
    });
    if !verified {
        return Err(Error::Backend {
            backend: to.name(),
            message: format!(
                "the copy in {target} did not read back the same; the source {source} was left as it is"
            ),
        });
    }
    from.delete_if(profile, source_revision)
        .map_err(|e| Error::Backend {
            backend: from.name(),
            message: format!(
                "the credential was copied to {target} and verified, but removing it from {source} \
                 failed ({e}); it is now in both places — remove it from {} yourself",
                from.name()
            ),
        })?;
    Ok(Migration {
        source,
        target,
        replaced,
    })
}

/// Whether `location` is a plaintext file (for the warning before writing).
pub fn is_plaintext(location: &Location) -> bool {
    location.kind == SourceKind::File
}
