use super::{FileStore, Location, Store};
use crate::error::Result;
use crate::profile::Profile;
use crate::stored::StoredCredential;

/// Called before `auto` writes a plaintext file, with the file's location,
/// so the warning is shown before the write (SPEC §4.5).
pub type FallbackNotice = Box<dyn Fn(&Location) + Send + Sync>;

/// The default backend (SPEC §4.5): reads the keychain, then the file;
/// writes to the keychain when it answers, else to the file after a
/// warning.
///
/// The keychain backend is not built yet, so today `auto` is the file
/// backend with the plaintext warning before every write.
pub struct AutoStore {
    file: FileStore,
    on_plaintext_fallback: FallbackNotice,
}

impl AutoStore {
    /// `auto` over a file store; `on_plaintext_fallback` runs before any
    /// write to the plaintext file.
    pub fn new(file: FileStore, on_plaintext_fallback: FallbackNotice) -> AutoStore {
        AutoStore {
            file,
            on_plaintext_fallback,
        }
    }
}

impl Store for AutoStore {
    fn name(&self) -> &'static str {
        "auto"
    }

    fn load(&self, profile: &Profile) -> Result<Option<StoredCredential>> {
        self.file.load(profile)
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<()> {
        (self.on_plaintext_fallback)(&self.file.describe(profile));
        self.file.save(profile, credential)
    }

    fn delete(&self, profile: &Profile) -> Result<bool> {
        self.file.delete(profile)
    }

    fn describe(&self, profile: &Profile) -> Location {
        self.file.describe(profile)
    }
}
