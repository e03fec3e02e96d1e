//! The file backend (SPEC §4.1): `$CREDSTORE_HOME/auth.json` (profile
//! `default`) or `auth.<profile>.json`, directory 0700, file 0600. Writes are
//! atomic (temp file in the same directory, fsync, rename, directory fsync)
//! and serialized by an exclusive lock on `$CREDSTORE_HOME/.lock`; readers
//! take no lock and see either the old or the new whole document.

use super::{ChangeLock, Found, Location, SourceKind, Store};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::secret::{read_bounded, ReadError};
use crate::stored::StoredCredential;
use credstore_platform as platform;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const LOCK_FILE: &str = ".lock";
const TMP_SUFFIX: &str = ".tmp";

/// Credential files in one directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    home: PathBuf,
}

impl FileStore {
    /// A store in `home` (created 0700 on first write).
    pub fn new(home: impl Into<PathBuf>) -> FileStore {
        FileStore { home: home.into() }
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
        check_ancestors(&self.home)?;
        Ok(true)
    }

    /// Creates the directory (0700) when missing; checks it either way, so
    /// that a file in its place is reported as such.
    fn ensure_home(&self) -> Result<()> {
        if !self.check_home()? {
            check_ancestors(&self.home)?;
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

    /// Takes the change lock (`.lock` in the directory, created 0700 when
    /// missing), held until the guard drops: every change of several steps
    /// (`login`, `logout`, `migrate`, on any backend) holds it throughout,
    /// so to other writers it is one change. Re-entrant within a thread:
    /// this store's own saves and deletes take it again while it is held.
    pub fn lock_changes(&self) -> Result<ChangeLock> {
        self.ensure_home()?;
        let path = self.home.join(LOCK_FILE);
        if self.check_target(&path)? {
            // An existing lock file must be ours and private.
            let meta =
                fs::symlink_metadata(&path).map_err(|e| Error::io("inspecting", &path, e))?;
            check_file_security(&path, &meta, platform::ownership(&meta))?;
        }
        ChangeLock::acquire(&path)
    }

    /// Runs `delete` (a removal from any backend) as one change, without
    /// creating the home for a no-op: with no home there is no change in
    /// flight to wait for (each takes the lock in the home first); should
    /// one start meanwhile, the home exists afterwards and the removal is
    /// repeated under the lock, after that change.
    pub fn delete_as_one_change(
        &self,
        delete: &dyn Fn() -> Result<Vec<Location>>,
    ) -> Result<Vec<Location>> {
        if self.check_home()? {
            let _lock = self.lock_changes()?;
            return delete();
        }
        let mut removed = delete()?;
        if self.check_home()? {
            let _lock = self.lock_changes()?;
            for place in delete()? {
                if !removed.contains(&place) {
                    removed.push(place);
                }
            }
        }
        Ok(removed)
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

    /// Reads a file of this directory with every rule of a credential
    /// file: home and file checked (owner, modes or ACL, no symlink, a
    /// regular file), at most 64 KiB. `Ok(None)` when it is not there.
    pub(crate) fn read_private(
        &self,
        path: &Path,
        secrecy: Secrecy,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if !self.check_home()? || !self.check_target(path)? {
            return Ok(None);
        }
        let mut file = match platform::open_read_no_follow(path) {
            Ok(f) => f,
            // Removed between the check and the open: nothing there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening", path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspecting", path, e))?;
        let own = platform::file_ownership(&file).map_err(|e| Error::io("inspecting", path, e))?;
        check_file_security_as(path, &meta, own, secrecy)?;
        match read_bounded(&mut file) {
            Ok(b) => Ok(Some(b)),
            Err(ReadError::TooLarge) => Err(Error::CorruptStore {
                location: path.display().to_string(),
                reason: "it is larger than 64 KiB".into(),
            }),
            Err(ReadError::Io(e)) => Err(Error::io("reading", path, e)),
        }
    }

    /// Replaces the file `name` of this directory atomically (0600, the
    /// home created 0700), under the change lock.
    pub(crate) fn write_private(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let _lock = self.lock_changes()?;
        let target = self.home.join(name);
        self.check_target(&target)?;
        self.remove_stale_temps(name);
        self.write_atomically(&target, name, bytes)?;
        Ok(target)
    }

    /// Removes the file `name` of this directory (and temp files a killed
    /// writer of it left), under the change lock, and syncs the directory.
    /// `Ok(false)` when it was not there. A symlink there is refused.
    pub(crate) fn remove_private(&self, name: &str) -> Result<bool> {
        if !self.check_home()? {
            return Ok(false);
        }
        let _lock = self.lock_changes()?;
        let path = self.home.join(name);
        self.remove_stale_temps(name);
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

/// Checks every existing ancestor of `dir` the way OpenSSH's `safe_path`
/// does: each must belong to root or to this user, and must not be
/// writable by anyone else — except a sticky directory such as `/tmp`,
/// when the entry below it on the way to `dir` belongs to this user (so
/// nobody else can rename or replace it). Otherwise another user could
/// swap the credential directory between a check and a write.
fn check_ancestors(dir: &Path) -> Result<()> {
    // The deepest ancestor that exists, with links resolved: the chain that
    // is really used.
    let mut existing = dir.parent();
    let real = loop {
        let Some(p) = existing else { return Ok(()) };
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        match fs::canonicalize(p) {
            Ok(real) => break real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => existing = p.parent(),
            Err(e) => return Err(Error::io("inspecting", p, e)),
        }
    };
    let mut child_owned_by_user = true; // the part below `real` is ours or not there yet
    let mut below: Option<PathBuf> = None;
    if let Ok(meta) = fs::symlink_metadata(dir) {
        child_owned_by_user = platform::ownership(&meta).owned_by_current_user;
    }
    for ancestor in real.ancestors() {
        let meta = fs::metadata(ancestor).map_err(|e| Error::io("inspecting", ancestor, e))?;
        let own = platform::ownership(&meta);
        let trusted_owner = own.owned_by_current_user || own.owner == Some(0);
        let fix = || {
            format!(
                "set CREDSTORE_HOME to a directory whose parents only you or root can change (or fix {}: `chown root {p}` / `chmod go-w {p}`)",
                ancestor.display(),
                p = ancestor.display()
            )
        };
        if !trusted_owner {
            return Err(Error::InsecurePermissions {
                path: ancestor.to_path_buf(),
                mode: own.mode,
                problem: format!(
                    "is a parent of the credential directory and is owned by another user (uid {})",
                    own.owner.unwrap_or(0)
                ),
                fix: fix(),
            });
        }
        let sticky = own.mode & 0o1000 != 0;
        if own.writable_by_group_or_other() && !(sticky && child_owned_by_user) {
            return Err(Error::InsecurePermissions {
                path: ancestor.to_path_buf(),
                mode: own.mode,
                problem: if sticky {
                    format!(
                        "is a parent of the credential directory, writable by others, and the entry below it ({}) is not yours",
                        below.as_deref().unwrap_or(dir).display()
                    )
                } else {
                    "is a parent of the credential directory and is writable by group or others"
                        .into()
                },
                fix: fix(),
            });
        }
        child_owned_by_user = own.owned_by_current_user;
        below = Some(ancestor.to_path_buf());
    }
    Ok(())
}

/// The credential file's name for `profile` (`auth.json`, `auth.<profile>.json`).
pub(crate) fn file_name(profile: &Profile) -> String {
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
fn check_file_security(path: &Path, meta: &fs::Metadata, own: platform::Ownership) -> Result<()> {
    check_file_security_as(path, meta, own, Secrecy::Secret)
}

/// What a file of the credential directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    /// A credential: nobody else may read or change it.
    Secret,
    /// Settings (config.toml): others may read it, nobody else may
    /// change it (it decides where credentials are read from).
    Public,
}

fn check_file_security_as(
    path: &Path,
    meta: &fs::Metadata,
    own: platform::Ownership,
    secrecy: Secrecy,
) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::io(
            "reading",
            path,
            io::Error::other("it is not a regular file; remove it and log in again"),
        ));
    }
    if !own.owned_by_current_user {
        let uid = own.owner.map(|u| format!(" (uid {u})")).unwrap_or_default();
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: format!("is owned by another user{uid}"),
            fix: format!(
                "if you trust it, {}; otherwise remove it and log in again",
                platform::advice::take_ownership(path)
            ),
        });
    }
    if secrecy == Secrecy::Public && own.writable_by_group_or_other() {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: "is writable by group or others".into(),
            fix: platform::advice::make_private(path),
        });
    }
    if secrecy == Secrecy::Secret && own.grants_group_or_other() {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: "grants access to group or others".into(),
            fix: platform::advice::make_private(path),
        });
    }
    Ok(())
}

impl Store for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        let path = self.path(profile);
        let Some(bytes) = self.read_private(&path, Secrecy::Secret)? else {
            return Ok(None);
        };
        let location = path.display().to_string();
        let credential = StoredCredential::from_document(&bytes, &location)?;
        Ok(Some(Found {
            credential,
            location: self.describe(profile),
        }))
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let doc = credential.to_document();
        self.write_private(&file_name(profile), &doc)?;
        Ok(self.describe(profile))
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        Ok(if self.remove_private(&file_name(profile))? {
            vec![self.describe(profile)]
        } else {
            Vec::new()
        })
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::File,
            detail: self.path(profile).display().to_string(),
        }
    }

    /// The profiles with a credential file (`auth.json`, `auth.NAME.json`)
    /// in the directory; a symlink is listed too, so that reading it says
    /// why it is refused.
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        self.profiles_with_suffix("").map(Some)
    }
}

impl FileStore {
    /// The profiles with a file named as the file backend names its own
    /// plus `suffix` (`.age` for the sealed backend's).
    pub(crate) fn profiles_with_suffix(&self, suffix: &str) -> Result<Vec<Profile>> {
        if !self.check_home()? {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(&self.home).map_err(|e| Error::io("listing", &self.home, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &self.home, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|n| n.strip_suffix(suffix)) else {
                continue;
            };
            if let Some(name) = profile_of_file(name) {
                names.push(name.to_string());
            }
        }
        Ok(super::profile_list(names))
    }
}

/// The profile whose credential file is called `name` (the inverse of
/// [`file_name`]), if it is one.
fn profile_of_file(name: &str) -> Option<&str> {
    if name == "auth.json" {
        return Some(Profile::DEFAULT);
    }
    let middle = name.strip_prefix("auth.")?.strip_suffix(".json")?;
    // `auth.default.json` is never written (the default is `auth.json`).
    (middle != Profile::DEFAULT).then_some(middle)
}
