//! The change lock: one exclusive `flock` on `$CREDSTORE_HOME/.lock`, held
//! across every step of a change (`login`, `logout`, `migrate`), whatever
//! the backend — file, keychain, Vault, `auto` (SPEC §4.1, §9).
//!
//! The kernel serializes processes (and threads of one process, since each
//! acquisition opens its own file description). Within one thread the lock
//! is re-entrant: a change that holds it can call a store's `save` or
//! `delete`, which take it again, without deadlocking on itself. The table
//! of locks this process holds is keyed by the lock file's identity
//! (device and inode), not its path, so two spellings of one home are one
//! lock.

use crate::error::{Error, Result};
use credstore_platform::{self as platform, FileIdentity};
use std::fs::File;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Mutex;
use std::thread::{self, ThreadId};

struct Held {
    id: FileIdentity,
    thread: ThreadId,
    depth: usize,
    /// Closing it releases the flock.
    _file: File,
}

/// The change locks this process holds (a handful at most).
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<Held>> {
    // A panic while holding the table cannot leave it inconsistent: every
    // update is a single push, increment or removal.
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// A held change lock; released when the last guard of this thread for
/// this lock file drops. Not `Send`: it belongs to the thread that took it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ChangeLock {
    id: Option<FileIdentity>,
    _not_send: PhantomData<*const ()>,
}

impl ChangeLock {
    /// A guard that holds nothing (a backend without a lock: memory).
    pub fn none() -> ChangeLock {
        ChangeLock {
            id: None,
            _not_send: PhantomData,
        }
    }

    /// Whether this guard holds a lock.
    pub fn is_held(&self) -> bool {
        self.id.is_some()
    }

    /// Takes the lock on the lock file at `path` (created 0600 when
    /// missing, a symlink refused), blocking until no other process or
    /// thread holds it. The caller has checked the file's security.
    pub(crate) fn acquire(path: &Path) -> Result<ChangeLock> {
        let file = platform::open_lock_file(path).map_err(|e| Error::io("opening", path, e))?;
        let id =
            platform::file_identity(&file, path).map_err(|e| Error::io("inspecting", path, e))?;
        let me = thread::current().id();
        {
            let mut table = held();
            if let Some(h) = table.iter_mut().find(|h| h.id == id && h.thread == me) {
                h.depth += 1;
                return Ok(ChangeLock {
                    id: Some(id),
                    _not_send: PhantomData,
                });
            }
        }
        // Blocks while another process, or another thread of this one
        // (its own open file description), holds it.
        file.lock().map_err(|e| Error::io("locking", path, e))?;
        held().push(Held {
            id: id.clone(),
            thread: me,
            depth: 1,
            _file: file,
        });
        Ok(ChangeLock {
            id: Some(id),
            _not_send: PhantomData,
        })
    }
}

impl Drop for ChangeLock {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let me = thread::current().id();
        let mut table = held();
        if let Some(pos) = table.iter().position(|h| h.id == id && h.thread == me) {
            table[pos].depth -= 1;
            if table[pos].depth == 0 {
                // Dropping the entry closes the file: the flock is released.
                table.swap_remove(pos);
            }
        }
    }
}

impl std::fmt::Debug for ChangeLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.id.is_some() {
            "ChangeLock(held)"
        } else {
            "ChangeLock(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn reentrant_in_one_thread_exclusive_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let outer = ChangeLock::acquire(&path).unwrap();
        // Another spelling of the same file is the same lock.
        let inner = ChangeLock::acquire(&dir.path().join(".").join(".lock")).unwrap();
        assert!(outer.is_held() && inner.is_held());
        drop(inner);
        let got = Arc::new(AtomicBool::new(false));
        let g = Arc::clone(&got);
        let p = path.clone();
        let t = thread::spawn(move || {
            let _l = ChangeLock::acquire(&p).unwrap();
            g.store(true, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(300));
        assert!(!got.load(Ordering::SeqCst), "held by the outer guard");
        drop(outer);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
        assert!(held().is_empty());
    }
}
