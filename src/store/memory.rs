use super::{Found, Location, SourceKind, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Keeps credentials in this process only (SPEC §4.3); nothing touches
/// disk. Values go through the same stored form as every other backend.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn entries(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Zeroizing<Vec<u8>>>>> {
        self.entries.lock().map_err(|_| Error::Backend {
            backend: "memory",
            message: "the store's lock was poisoned by a panic in another thread".into(),
        })
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        let entries = self.entries()?;
        match entries.get(profile.as_str()) {
            None => Ok(None),
            Some(doc) => {
                let location = self.describe(profile);
                let credential = StoredCredential::from_document(doc, &location.detail)?;
                Ok(Some(Found {
                    credential,
                    location,
                }))
            }
        }
    }

    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        Ok(Some(super::profile_list(self.entries()?.keys())))
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let doc = credential.to_document();
        self.entries()?.insert(profile.as_str().to_string(), doc);
        Ok(self.describe(profile))
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        let removed = self.entries()?.remove(profile.as_str()).is_some();
        Ok(if removed {
            vec![self.describe(profile)]
        } else {
            Vec::new()
        })
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::Memory,
            detail: format!("memory/{profile}"),
        }
    }
}
