//! The split-value protocol (see [the module's documentation](super#split-values)):
//! a value longer than the per-entry limit is written as parts under
//! `<profile>:split:<generation>:<i>`, then committed by replacing the
//! profile's own entry with a manifest; reads join the parts and check them
//! against the manifest's length and SHA-256.

use super::worker::{Ctx, OpError, OpResult};
use super::BACKEND;
use crate::error::Error;
use crate::profile::Profile;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use zeroize::Zeroizing;

const SPLIT_MAGIC: &str = "credstore-split/1";
const MAX_PARTS: usize = 512;

impl Ctx<'_> {
    /// The profile's whole value: the entry itself, or its parts joined and
    /// checked. `Ok(None)` only when the profile's entry does not exist.
    pub(super) fn read_value(&self, profile: &Profile) -> OpResult<Option<Value>> {
        let Some(head) = self.read_entry(profile.as_str())? else {
            return Ok(None);
        };
        let corrupt = |reason: String| {
            OpError::Done(Error::CorruptStore {
                location: format!("keychain {}/{profile}", self.options.service()),
                reason,
            })
        };
        let manifest = match Manifest::parse(&head) {
            None => {
                return Ok(Some(Value {
                    text: head,
                    manifest: None,
                }))
            }
            Some(Err(reason)) => return Err(corrupt(reason)),
            Some(Ok(m)) => m,
        };
        let mut text = Zeroizing::new(String::with_capacity(manifest.len));
        for i in 0..manifest.parts {
            let account = manifest.part_account(profile, i);
            match self.read_entry(&account)? {
                Some(part) => {
                    if text.len() + part.len() > manifest.len {
                        return Err(corrupt(format!(
                            "its split value is longer than its manifest says (at part {} of {})",
                            i + 1,
                            manifest.parts
                        )));
                    }
                    text.push_str(&part);
                }
                None => {
                    return Err(corrupt(format!(
                        "part {} of {} of its split value is missing (entry {account})",
                        i + 1,
                        manifest.parts
                    )))
                }
            }
        }
        if text.len() != manifest.len || sha256_hex(text.as_bytes()) != manifest.sha256 {
            return Err(corrupt(
                "its split value does not match its manifest (a part was changed or mixed \
                 up)"
                .into(),
            ));
        }
        Ok(Some(Value {
            text,
            manifest: Some(manifest),
        }))
    }

    /// Writes `text` as the profile's value (split when needed), reads it
    /// back, then removes parts of the value it replaced.
    pub(super) fn write_value(&self, profile: &Profile, text: &str) -> OpResult<()> {
        // What is there now decides which parts become garbage; a value
        // that cannot be read stops the save (nothing is overwritten
        // blindly), except a corrupt one, which is replaced.
        let previous = match self.read_value(profile) {
            Ok(v) => v.and_then(|v| v.manifest),
            Err(OpError::Done(Error::CorruptStore { .. })) => self
                .read_entry(profile.as_str())?
                .and_then(|head| Manifest::parse(&head).and_then(|m| m.ok())),
            Err(e) => return Err(e),
        };
        let written = match self.options.max_entry_len() {
            Some(limit) if text.len() > limit => {
                let parts = split_at_char_boundaries(text, limit);
                if parts.len() > MAX_PARTS {
                    return Err(OpError::Done(Error::Backend {
                        backend: BACKEND,
                        message: format!(
                            "the credential needs {} keychain entries of {limit} bytes; the \
                             limit is {MAX_PARTS}",
                            parts.len()
                        ),
                    }));
                }
                let manifest = Manifest {
                    generation: new_generation(),
                    parts: parts.len(),
                    len: text.len(),
                    sha256: sha256_hex(text.as_bytes()),
                };
                for (i, part) in parts.iter().enumerate() {
                    self.write_entry(&manifest.part_account(profile, i), part)?;
                }
                // The commit point: one entry replaced.
                self.write_entry(profile.as_str(), &manifest.render())?;
                Some(manifest)
            }
            _ => {
                self.write_entry(profile.as_str(), text)?;
                None
            }
        };
        match self.read_value(profile) {
            Ok(Some(v)) if v.text.as_bytes() == text.as_bytes() => {}
            Ok(_) | Err(OpError::Done(Error::CorruptStore { .. })) => {
                return Err(OpError::Done(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the credential was written to {}/{profile} but reading it back gave \
                         something else; the keychain did not keep it. Nothing was reported \
                         as saved",
                        self.options.service()
                    ),
                }))
            }
            Err(e) => return Err(e),
        }
        if let Some(old) = previous {
            if written.as_ref().map(|m| &m.generation) != Some(&old.generation) {
                for i in 0..old.parts {
                    // Garbage now; a failure only leaves an unused entry.
                    let _ = self.delete_entry(&old.part_account(profile, i));
                }
            }
        }
        self.sweep_orphan_parts(profile, written.as_ref());
        Ok(())
    }

    /// Removes parts left by a save that crashed before its commit point.
    /// Best effort, where the platform store can search.
    fn sweep_orphan_parts(&self, profile: &Profile, current: Option<&Manifest>) {
        let mut spec = HashMap::new();
        spec.insert("service", self.options.service());
        let Ok(found) = self.store.search(&spec) else {
            return;
        };
        let prefix = format!("{profile}:split:");
        let keep = current.map(|m| format!("{prefix}{}:", m.generation));
        for entry in found {
            let Some((service, account)) = entry.get_specifiers() else {
                continue;
            };
            if service != self.options.service() || !account.starts_with(&prefix) {
                continue;
            }
            if keep.as_deref().is_some_and(|k| account.starts_with(k)) {
                continue;
            }
            if self.check_not_cancelled().is_err() {
                return;
            }
            let _ = entry.delete_credential();
        }
    }

    /// Deletes the profile's value: its entry first (after that the
    /// credential is gone), then its parts.
    pub(super) fn delete_value(&self, profile: &Profile) -> OpResult<bool> {
        let manifest = match self.read_value(profile) {
            Ok(None) => return Ok(false),
            Ok(Some(v)) => v.manifest,
            // A corrupt value may be removed: that is how a user fixes it.
            Err(OpError::Done(Error::CorruptStore { .. })) => self
                .read_entry(profile.as_str())?
                .and_then(|head| Manifest::parse(&head).and_then(|m| m.ok())),
            Err(e) => return Err(e),
        };
        let existed = self.delete_entry(profile.as_str())?;
        if let Some(m) = manifest {
            for i in 0..m.parts {
                let _ = self.delete_entry(&m.part_account(profile, i));
            }
        }
        self.sweep_orphan_parts(profile, None);
        Ok(existed)
    }
}

/// A profile's value as read.
pub(super) struct Value {
    pub(super) text: Zeroizing<String>,
    manifest: Option<Manifest>,
}

/// The manifest of a split value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Manifest {
    generation: String,
    parts: usize,
    len: usize,
    sha256: String,
}

impl Manifest {
    fn render(&self) -> String {
        format!(
            "{SPLIT_MAGIC} generation={} parts={} len={} sha256={}",
            self.generation, self.parts, self.len, self.sha256
        )
    }

    /// `None` when `value` is not a manifest (a document or a bare token:
    /// neither starts with the magic and contains a space).
    fn parse(value: &str) -> Option<std::result::Result<Manifest, String>> {
        let rest = value.trim().strip_prefix(SPLIT_MAGIC)?.strip_prefix(' ')?;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for word in rest.split(' ') {
            let Some((k, v)) = word.split_once('=') else {
                return Some(Err("its split-value manifest is malformed".into()));
            };
            fields.insert(k, v);
        }
        let get = |k: &str| fields.get(k).copied().unwrap_or("");
        let generation = get("generation");
        let sha256 = get("sha256");
        let parts = get("parts").parse::<usize>().ok();
        let len = get("len").parse::<usize>().ok();
        let ok_generation = !generation.is_empty()
            && generation.len() <= 32
            && generation.bytes().all(|b| b.is_ascii_hexdigit());
        let ok_sha = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        match (parts, len) {
            (Some(parts), Some(len))
                if ok_generation
                    && ok_sha
                    && (1..=MAX_PARTS).contains(&parts)
                    && len <= 64 * 1024 =>
            {
                Some(Ok(Manifest {
                    generation: generation.to_string(),
                    parts,
                    len,
                    sha256: sha256.to_ascii_lowercase(),
                }))
            }
            _ => Some(Err("its split-value manifest is malformed".into())),
        }
    }

    fn part_account(&self, profile: &Profile, index: usize) -> String {
        format!("{profile}:split:{}:{index}", self.generation)
    }
}

/// Splits `text` into pieces of at most `limit` bytes, never inside a
/// UTF-8 character.
fn split_at_char_boundaries(text: &str, limit: usize) -> Vec<&str> {
    let limit = limit.max(4);
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = limit.min(rest.len());
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        parts.push(head);
        rest = tail;
    }
    parts
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A generation id unique enough to tell two saves apart.
fn new_generation() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!(
        "{nanos}:{}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    sha256_hex(seed.as_bytes())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::super::fake::{api_key, long_key, profile, Fake};
    use super::super::{DEFAULT_SERVICE, MIN_ENTRY_LEN};
    use super::*;
    use crate::store::Store;

    #[test]
    fn long_values_are_split_and_reassembled() {
        let fake = Fake::new();
        let store = fake.store(Some(MIN_ENTRY_LEN));
        let p = profile("work");
        let key = long_key('k', 1000);
        store.save(&p, &api_key(&key)).unwrap();
        let head = fake.raw("work").unwrap();
        assert!(head.starts_with("credstore-split/1 "), "{head}");
        let parts = fake
            .accounts()
            .iter()
            .filter(|a| a.starts_with("work:split:"))
            .count();
        assert_eq!(
            parts,
            1043_usize.div_ceil(MIN_ENTRY_LEN),
            "{:?}",
            fake.accounts()
        );
        for account in fake.accounts() {
            assert!(fake.raw(&account).unwrap().len() <= MIN_ENTRY_LEN);
        }
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            key
        );

        // Replacing with another long value leaves only the new generation.
        let key2 = long_key('m', 700);
        store.save(&p, &api_key(&key2)).unwrap();
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            key2
        );
        let generations: std::collections::HashSet<String> = fake
            .accounts()
            .iter()
            .filter_map(|a| a.strip_prefix("work:split:"))
            .filter_map(|a| a.split(':').next().map(str::to_string))
            .collect();
        assert_eq!(generations.len(), 1, "{:?}", fake.accounts());

        // A short value removes every part.
        store.save(&p, &api_key("sk-short")).unwrap();
        assert_eq!(fake.accounts(), vec!["work".to_string()]);
        store.save(&p, &api_key(&key)).unwrap();
        assert!(!store.delete(&p).unwrap().is_empty());
        assert!(fake.accounts().is_empty(), "{:?}", fake.accounts());
    }

    #[test]
    fn a_crash_between_part_writes_keeps_the_previous_credential() {
        for fail_after in [0, 1, 3, 6] {
            let fake = Fake::new();
            let store = fake.store(Some(MIN_ENTRY_LEN));
            let p = profile("default");
            let old = long_key('o', 600);
            store.save(&p, &api_key(&old)).unwrap();
            // 1043 bytes: 6 parts, then the manifest (the 7th write).
            *fake.faults.fail_writes_after.lock().unwrap() = Some(fail_after);
            let new = long_key('n', 1000);
            let err = store.save(&p, &api_key(&new)).unwrap_err();
            assert_eq!(err.exit_code(), 4, "{err}");
            let loaded = store.load(&p).unwrap().unwrap().credential;
            assert_eq!(
                loaded.expose_token(),
                old,
                "after failing write {fail_after}"
            );
            // The next save sweeps the orphaned parts.
            store.save(&p, &api_key(&new)).unwrap();
            assert_eq!(
                store.load(&p).unwrap().unwrap().credential.expose_token(),
                new
            );
            let expected = 1 + 1043_usize.div_ceil(MIN_ENTRY_LEN);
            assert_eq!(fake.accounts().len(), expected, "{:?}", fake.accounts());
        }
    }

    #[test]
    fn a_first_long_save_that_crashes_leaves_nothing_readable() {
        let fake = Fake::new();
        let store = fake.store(Some(MIN_ENTRY_LEN));
        let p = profile("default");
        *fake.faults.fail_writes_after.lock().unwrap() = Some(2);
        assert!(store.save(&p, &api_key(&long_key('n', 1000))).is_err());
        assert!(store.load(&p).unwrap().is_none());
    }

    #[test]
    fn missing_or_changed_parts_are_corrupt_never_partial() {
        let fake = Fake::new();
        let store = fake.store(Some(MIN_ENTRY_LEN));
        let p = profile("default");
        store.save(&p, &api_key(&long_key('x', 900))).unwrap();
        let parts: Vec<String> = fake
            .accounts()
            .into_iter()
            .filter(|a| a.contains(":split:"))
            .collect();

        let victim = &parts[1];
        let saved = fake.raw(victim).unwrap();
        fake.set_raw(victim, &saved.replace('x', "y"));
        let err = store.load(&p).unwrap_err();
        assert!(matches!(err, Error::CorruptStore { .. }), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(
            !err.to_string().contains("xxxx"),
            "no content in errors: {err}"
        );

        fake.mock
            .build(DEFAULT_SERVICE, victim, None)
            .unwrap()
            .delete_credential()
            .unwrap();
        let err = store.load(&p).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // A corrupt value can still be removed, parts included.
        assert!(!store.delete(&p).unwrap().is_empty());
        assert!(fake.accounts().is_empty(), "{:?}", fake.accounts());
    }

    #[test]
    fn a_bad_manifest_is_corrupt() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        fake.set_raw("default", "credstore-split/1 generation=zz parts=2");
        let err = store.load(&p).unwrap_err();
        assert!(matches!(err, Error::CorruptStore { .. }), "{err}");
        // And a save replaces it.
        store.save(&p, &api_key("sk-new")).unwrap();
        assert_eq!(
            store.load(&p).unwrap().unwrap().credential.expose_token(),
            "sk-new"
        );
    }

    #[test]
    fn a_lost_write_is_an_error_not_a_success() {
        let fake = Fake::new();
        let store = fake.store(None);
        let p = profile("default");
        fake.faults.drop_writes.store(true, Ordering::SeqCst);
        let err = store.save(&p, &api_key("sk-lost")).unwrap_err();
        assert!(err.to_string().contains("reading it back"), "{err}");
        assert_eq!(err.exit_code(), 4);
    }

    #[test]
    fn manifests_are_told_apart_from_credentials() {
        assert!(Manifest::parse(r#"{"api_key":"credstore-split/1"}"#).is_none());
        assert!(Manifest::parse("credstore-split/1").is_none());
        assert!(Manifest::parse("credstore-split/1x generation=1").is_none());
        let m = Manifest {
            generation: "0123abcd".into(),
            parts: 3,
            len: 500,
            sha256: sha256_hex(b"x"),
        };
        assert_eq!(Manifest::parse(&m.render()), Some(Ok(m)));
        assert!(matches!(
            Manifest::parse("credstore-split/1 generation=01 parts=0 len=1 sha256=00"),
            Some(Err(_))
        ));
    }

    #[test]
    fn splitting_never_cuts_a_character() {
        let text = "aé€😀".repeat(50);
        for limit in [4, 5, 7, 10, 33] {
            let parts = split_at_char_boundaries(&text, limit);
            assert!(parts.iter().all(|p| p.len() <= limit && !p.is_empty()));
            assert_eq!(parts.concat(), text);
        }
    }
}
