//! The file backend (SPEC §4.1): `$CREDSTORE_HOME/auth.json` (profile
//! `default`) or `auth.<profile>.json`, directory 0700, file 0600. Writes are
//! atomic (temp file in the same directory, fsync, rename, directory fsync)
//! and serialized by an exclusive lock on `$CREDSTORE_HOME/.lock`; readers
//! take no lock and see either the old or the new whole document.

use super::{ChangeLock, Location, SourceKind, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::secret::{read_bounded, ReadError};
use crate::stored::StoredCredential;
use credstore_platform as platform;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = ".lock";
const TMP_SUFFIX: &str = ".tmp";

/// Credential files in one directory.
#[derive(Debug)]
pub struct FileStore {
    home: PathBuf,
    /// The writers' lock while a [`Store::lock_changes`] guard lives, with
    /// the thread that holds it (only that thread's writes reuse it; other
    /// threads wait on the flock like other processes).
    held: std::sync::Mutex<Option<(std::thread::ThreadId, File)>>,
}

impl Clone for FileStore {
    fn clone(&self) -> FileStore {
        FileStore::new(self.home.clone())
    }
}

impl FileStore {
    /// A store in `home` (created 0700 on first write).
    pub fn new(home: impl Into<PathBuf>) -> FileStore {
        FileStore {
            home: home.into(),
            held: std::sync::Mutex::new(None),
        }
    }

    /// The directory holding the credential files.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The credential file of `profile`.
    pub fn path(&self, profile: &Profile) -> PathBuf {
        self.home.join(file_name(profile))
    }

    /// Checks the directory: not a symlink, owned by this user, not
    /// writable by group or others. `Ok(false)` when it does not exist.
    fn check_home(&self) -> Result<bool> {
        let meta = match fs::symlink_metadata(&self.home) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("inspecting", &self.home, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(Error::Symlink {
                path: self.home.clone(),
                fix: format!(
                    "point CREDSTORE_HOME at the directory itself (`export CREDSTORE_HOME=\"$(readlink -f {})\"`)",
                    self.home.display()
                ),
            });
        }
        if !meta.is_dir() {
            return Err(Error::io(
                "using",
                &self.home,
                io::Error::other("it is not a directory; point CREDSTORE_HOME at a directory"),
            ));
        }
        let own = platform::ownership(&meta);
        if !own.owned_by_current_user {
            return Err(Error::InsecurePermissions {
                path: self.home.clone(),
                mode: own.mode,
                problem: format!("is owned by another user (uid {})", own.owner.unwrap_or(0)),
                fix: "use a directory you own: set CREDSTORE_HOME".into(),
            });
        }
        if own.writable_by_group_or_other() {
            return Err(Error::InsecurePermissions {
                path: self.home.clone(),
                mode: own.mode,
                problem: "is writable by group or others".into(),
                fix: format!("chmod 700 {}", self.home.display()),
            });
        }
        Ok(true)
    }

    /// Creates the directory (0700) when missing; checks it either way, so
    /// that a file in its place is reported as such.
    fn ensure_home(&self) -> Result<()> {
        if !self.check_home()? {
            platform::create_private_dir_all(&self.home)
                .map_err(|e| Error::io("creating directory", &self.home, e))?;
            self.check_home()?;
        }
        Ok(())
    }

    /// Refuses a symlink at `path`; tells whether a file is there.
    fn check_target(&self, path: &Path) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Err(Error::Symlink {
                path: path.to_path_buf(),
                fix: format!("remove the link (`rm {}`) and log in again", path.display()),
            }),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("inspecting", path, e)),
        }
    }

    /// Takes the writers' lock for one save or delete; `None` when this
    /// thread already holds it through [`Store::lock_changes`].
    fn lock(&self) -> Result<Option<File>> {
        let me = std::thread::current().id();
        if let Ok(held) = self.held.lock() {
            if held.as_ref().is_some_and(|(owner, _)| *owner == me) {
                return Ok(None);
            }
        }
        self.acquire_lock().map(Some)
    }

    /// Takes the writers' lock; released when the returned file is dropped.
    fn acquire_lock(&self) -> Result<File> {
        let path = self.home.join(LOCK_FILE);
        if self.check_target(&path)? {
            // An existing lock file must be ours and private.
            let meta =
                fs::symlink_metadata(&path).map_err(|e| Error::io("inspecting", &path, e))?;
            check_file_security(&path, &meta)?;
        }
        let file = platform::open_lock_file(&path).map_err(|e| Error::io("opening", &path, e))?;
        file.lock().map_err(|e| Error::io("locking", &path, e))?;
        Ok(file)
    }

    /// Removes temp files a killed writer left behind. Called with the lock
    /// held, so no live writer owns them.
    fn remove_stale_temps(&self, target_name: &str) {
        let prefix = format!(".{target_name}.");
        let Ok(entries) = fs::read_dir(&self.home) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(&prefix) && name.ends_with(TMP_SUFFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn write_atomically(&self, target: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        let tmp = self.home.join(format!(
            ".{name}.{}.{}{TMP_SUFFIX}",
            std::process::id(),
            unique_suffix()
        ));
        let result = (|| {
            let mut f =
                platform::create_new_private(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
            f.write_all(bytes)
                .map_err(|e| Error::io("writing", &tmp, e))?;
            f.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
            drop(f);
            fs::rename(&tmp, target).map_err(|e| Error::io("replacing", target, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            return result;
        }
        platform::sync_dir(&self.home).map_err(|e| Error::io("syncing directory", &self.home, e))
    }
}

fn file_name(profile: &Profile) -> String {
    if profile.is_default() {
        "auth.json".to_string()
    } else {
        format!("auth.{profile}.json")
    }
}

fn unique_suffix() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    nanos ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A credential file must be a regular file owned by this user with no
/// group or other permission bits.
fn check_file_security(path: &Path, meta: &fs::Metadata) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::io(
            "reading",
            path,
            io::Error::other("it is not a regular file; remove it and log in again"),
        ));
    }
    let own = platform::ownership(meta);
    if !own.owned_by_current_user {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: format!("is owned by another user (uid {})", own.owner.unwrap_or(0)),
            fix: format!(
                "if you trust it, `chown $(id -u) {p}`; otherwise remove it (`rm {p}`) and log in again",
                p = path.display()
            ),
        });
    }
    if own.grants_group_or_other() {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: "grants access to group or others".into(),
            fix: format!("chmod 600 {}", path.display()),
        });
    }
    Ok(())
}

impl Store for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn load(&self, profile: &Profile) -> Result<Option<StoredCredential>> {
        let path = self.path(profile);
        if !self.check_home()? || !self.check_target(&path)? {
            return Ok(None);
        }
        let mut file = match platform::open_read_no_follow(&path) {
            Ok(f) => f,
            // Removed between the check and the open: nothing stored.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening", &path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspecting", &path, e))?;
        check_file_security(&path, &meta)?;
        let location = path.display().to_string();
        let bytes = match read_bounded(&mut file) {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(Error::CorruptStore {
                    location,
                    reason: "it is larger than 64 KiB".into(),
                })
            }
            Err(ReadError::Io(e)) => return Err(Error::io("reading", &path, e)),
        };
        StoredCredential::from_document(&bytes, &location).map(Some)
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<()> {
        self.ensure_home()?;
        let _lock = self.lock()?;
        let name = file_name(profile);
        let target = self.home.join(&name);
        self.check_target(&target)?;
        self.remove_stale_temps(&name);
        let doc = credential.to_document();
        self.write_atomically(&target, &name, &doc)
    }

    fn delete(&self, profile: &Profile) -> Result<bool> {
        if !self.check_home()? {
            return Ok(false);
        }
        let _lock = self.lock()?;
        let path = self.path(profile);
        self.remove_stale_temps(&file_name(profile));
        if !self.check_target(&path)? {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        platform::sync_dir(&self.home)
            .map_err(|e| Error::io("syncing directory", &self.home, e))?;
        Ok(true)
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::File,
            detail: self.path(profile).display().to_string(),
        }
    }

    fn lock_changes(&self) -> Result<ChangeLock<'_>> {
        self.ensure_home()?;
        let file = self.acquire_lock()?;
        let me = std::thread::current().id();
        let mut held = self.held.lock().map_err(|_| Error::Backend {
            backend: "file",
            message: "the store's lock state was poisoned by a panic in another thread".into(),
        })?;
        *held = Some((me, file));
        drop(held);
        Ok(ChangeLock::new(move || {
            if let Ok(mut held) = self.held.lock() {
                held.take();
            }
        }))
    }
}
