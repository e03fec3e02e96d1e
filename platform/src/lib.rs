//! Platform-specific pieces of credstore.
//!
//! Every `cfg(target_os)` / `cfg(unix)` of the project lives in this crate so
//! that the main crate stays portable and free of `unsafe`. The Unix side is
//! built on `rustix`'s safe wrappers and needs no `unsafe`; the Windows side
//! (`windows.rs`: ACLs, the console) calls Win32 through `windows-sys`, and
//! each of its `unsafe` blocks carries a `// SAFETY:` comment.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod keychain;

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

/// Turns off core dumps for this process before it reads any secret:
/// `RLIMIT_CORE` is set to 0 (soft and hard), and on Linux the process is
/// marked non-dumpable (`PR_SET_DUMPABLE 0`), which also keeps other
/// processes of the same user from attaching with ptrace or reading
/// `/proc/<pid>/mem`.
pub fn disable_core_dumps() -> io::Result<()> {
    imp::disable_core_dumps()
}

/// Creates `path` and any missing parents with mode 0700 (Unix).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    imp::create_private_dir_all(path)
}

/// Opens an existing file read-only without following a symlink at the last
/// component (`O_NOFOLLOW`): a symlink gives an error (`ELOOP` on Linux).
pub fn open_read_no_follow(path: &Path) -> io::Result<File> {
    imp::open_read_no_follow(path)
}

/// Creates a new file, failing if anything (file or symlink) already has the
/// name (`O_CREAT|O_EXCL|O_NOFOLLOW`), with mode 0600, opened for writing.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    imp::create_new_private(path)
}

/// Opens (creating when missing, mode 0600) a lock file for reading and
/// writing, refusing a symlink.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    imp::open_lock_file(path)
}

/// Opens `path` for appending, creating it with mode 0600 when missing,
/// refusing a symlink at the last component (an audit log).
pub fn open_append_private(path: &Path) -> io::Result<File> {
    imp::open_append_private(path)
}

/// Flushes a directory's entries to disk so that a rename in it survives a
/// crash. A no-op where directories cannot be opened (Windows).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    imp::sync_dir(path)
}

/// What the credential files' security checks need to know about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// Permission bits (`st_mode & 0o7777`); 0o600 on platforms without modes.
    pub mode: u32,
    /// The owner's numeric id, where the platform has one.
    pub owner: Option<u32>,
    /// Whether the file belongs to the effective user of this process.
    pub owned_by_current_user: bool,
}

impl Ownership {
    /// Whether any group or other permission bit is set.
    pub fn grants_group_or_other(&self) -> bool {
        self.mode & 0o077 != 0
    }

    /// Whether group or others may write.
    pub fn writable_by_group_or_other(&self) -> bool {
        self.mode & 0o022 != 0
    }
}

/// The command that fixes a credential file's protection, in the words of
/// this platform's shell.
pub mod advice {
    use std::path::Path;

    /// Makes `path` readable and writable by its owner only.
    pub fn make_private(path: &Path) -> String {
        if cfg!(windows) {
            format!(
                "icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\"",
                path.display()
            )
        } else {
            format!("chmod 600 {}", path.display())
        }
    }

    /// Makes the current user the owner of `path`.
    pub fn take_ownership(path: &Path) -> String {
        if cfg!(windows) {
            format!("`takeown /f \"{}\"`", path.display())
        } else {
            format!("`chown $(id -u) {}`", path.display())
        }
    }
}

/// Reads mode and owner from metadata. On Windows, where metadata has no
/// owner or ACL, this says "private, ours": use [`file_ownership`] for a
/// credential file.
pub fn ownership(meta: &Metadata) -> Ownership {
    imp::ownership(meta)
}

/// Mode and owner of an open file: on Unix from `fstat`; on Windows from
/// its owner SID and DACL, with `mode` 0o600 when only this user, SYSTEM
/// and Administrators may open it, and group/other bits set for any other
/// trustee that may read (0o044) or change (0o022) it.
pub fn file_ownership(file: &File) -> io::Result<Ownership> {
    imp::file_ownership(file)
}

/// Standard input read straight from file descriptor 0, without the
/// process-wide buffer of `std::io::Stdin` (which would keep a copy of a
/// pasted secret that is never wiped).
#[derive(Debug, Default, Clone, Copy)]
pub struct RawStdin;

impl std::io::Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        imp::read_stdin(buf)
    }
}

/// The terminal mode for reading a secret, restored when dropped.
///
/// While it lives, standard input (a terminal) has echo off, canonical line
/// editing off — so a pasted token is not cut at the kernel's 4095-byte
/// line limit — and signal characters off, so Ctrl-C arrives as a byte and
/// the terminal is always restored. On drop, input still pending (the rest
/// of a wrapped paste) is discarded before the settings come back, so the
/// shell never runs it as a command.
#[must_use = "the terminal is restored when the guard is dropped"]
pub struct SecretInputGuard {
    inner: Option<imp::SavedTermios>,
}

impl Drop for SecretInputGuard {
    fn drop(&mut self) {
        if let Some(saved) = self.inner.take() {
            imp::restore_termios(saved);
        }
    }
}

/// Whether standard input is a terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdin().is_terminal()
}

/// Puts standard input, when it is a terminal, into the mode for reading a
/// secret (see [`SecretInputGuard`]). Input typed before this call is
/// discarded.
pub fn secret_input_mode() -> io::Result<SecretInputGuard> {
    Ok(SecretInputGuard {
        inner: imp::secret_input_mode()?,
    })
}

/// Waits at most `timeout` for input to become readable on standard input.
pub fn stdin_has_input(timeout: std::time::Duration) -> io::Result<bool> {
    imp::stdin_has_input(timeout)
}

/// Makes sure file descriptors 0, 1 and 2 are open (as `/dev/null` when
/// they were closed), so that no file credstore opens later can take their
/// number and receive output meant for the terminal. Remembers whether
/// standard output was closed: [`RawStdout`] then fails instead of writing.
/// Call once, first thing in `main`.
pub fn sanitize_std_fds() {
    imp::sanitize_std_fds()
}

/// Standard output written straight to file descriptor 1, without the
/// process-wide buffer of `std::io::Stdout` (which would keep a copy of a
/// printed token) and without its habit of treating a closed descriptor as
/// a sink: a closed or failing stdout is an error.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawStdout;

impl std::io::Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        imp::write_stdout(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a file named by configuration (a `_FILE` variable, a JWKS, a CA
/// file) for reading: symlinks are followed (secret mounts use them), but
/// the open never blocks (a FIFO with no writer) and anything that is not
/// a regular file is refused with [`io::ErrorKind::InvalidInput`].
pub fn open_regular_file(path: &Path) -> io::Result<File> {
    imp::open_regular_file(path)
}

/// Which file an open handle is, for telling two opens of the same lock
/// file apart from two different files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileIdentity(imp::FileId);

/// The identity of the open file `file` (found at `path`).
pub fn file_identity(file: &File, path: &Path) -> io::Result<FileIdentity> {
    imp::file_id(file, path).map(FileIdentity)
}

/// `s` without surrounding ASCII whitespace, whatever its encoding.
pub fn trim_os_str(s: &std::ffi::OsStr) -> &std::ffi::OsStr {
    imp::trim_os_str(s)
}

/// Locks the pages that hold `value` in memory (`mlock`), so a secret in
/// them is never written to swap. Best effort: the lock may be refused
/// (`RLIMIT_MEMLOCK`, a container without the right), which is an error the
/// caller reports, not a reason to stop. Unsupported platforms give
/// [`io::ErrorKind::Unsupported`].
pub fn lock_memory<T: ?Sized>(value: &T) -> io::Result<()> {
    imp::lock_memory(
        std::ptr::from_ref(value).cast::<u8>(),
        std::mem::size_of_val(value),
    )
}

/// Whether this process may be dumped or traced by others of its user
/// (`PR_GET_DUMPABLE`); `None` where the platform cannot say.
pub fn is_dumpable() -> Option<bool> {
    imp::is_dumpable()
}

/// Who is at the other end of a Unix socket, as the kernel says.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's process id, where the platform reports it (Linux).
    pub pid: Option<u32>,
}

/// The credentials of the peer of a connected Unix stream socket:
/// `SO_PEERCRED` on Linux, `getpeereid` on macOS and the BSDs.
#[cfg(unix)]
pub fn peer_credentials(stream: &std::os::unix::net::UnixStream) -> io::Result<PeerCredentials> {
    imp::peer_credentials(stream)
}

/// This process's effective user id.
#[cfg(unix)]
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Connects to the Unix stream socket at `path`, giving up after
/// `timeout` (a listener whose queue is full, or a stopped one, never
/// makes the caller hang). The returned stream is in blocking mode.
#[cfg(unix)]
pub fn connect_unix(
    path: &Path,
    timeout: std::time::Duration,
) -> io::Result<std::os::unix::net::UnixStream> {
    imp::connect_unix(path, timeout)
}

/// Wakes a thread waiting in [`Wakeup::wait_readable`] from another
/// thread, without the filesystem (a socket pair inside the process): a
/// listener whose socket file was removed is still woken.
#[cfg(unix)]
#[derive(Debug)]
pub struct Wakeup {
    rx: std::os::unix::net::UnixStream,
    tx: std::os::unix::net::UnixStream,
}

#[cfg(unix)]
impl Wakeup {
    /// A new, not yet woken, wakeup.
    pub fn new() -> io::Result<Wakeup> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Wakeup { rx, tx })
    }

    /// Wakes every present and later [`wait_readable`](Wakeup::wait_readable)
    /// (it stays woken). Never blocks.
    pub fn wake(&self) {
        use std::io::Write;
        let _ = (&self.tx).write(&[1]);
    }

    /// Waits until `fd` is readable (`Ok(true)`), or this is woken or
    /// `timeout` passes (`Ok(false)`).
    pub fn wait_readable(
        &self,
        fd: std::os::unix::io::BorrowedFd<'_>,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<bool> {
        use std::os::unix::io::AsFd;
        imp::wait_readable(fd, self.rx.as_fd(), timeout)
    }
}

/// Whether this process is in the foreground process group of the
/// terminal on its standard input or error: then a Ctrl-C or Ctrl-\\
/// from that terminal reaches every process of the group (a child too)
/// without anyone forwarding it.
#[cfg(unix)]
pub fn in_terminal_foreground() -> bool {
    imp::in_terminal_foreground()
}

/// Sends signal number `signal` to process `pid`.
#[cfg(unix)]
pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    imp::send_signal(pid, signal)
}

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;

// Plain std, for targets without Unix modes; Windows builds on it and
// replaces the parts that matter there (ACLs, the console).
#[cfg(not(unix))]
#[cfg_attr(windows, allow(dead_code))]
#[path = "other.rs"]
mod other;

#[cfg(all(not(unix), not(windows)))]
use other as imp;

#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn create_new_private_is_0600_and_exclusive() {
        let dir = std::env::temp_dir().join(format!("cs-plat-{}", std::process::id()));
        create_private_dir_all(&dir).unwrap();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(ownership(&meta).mode, 0o700);
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        let mut f = create_new_private(&p).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(ownership(&f.metadata().unwrap()).mode, 0o600);
        assert!(
            create_new_private(&p).is_err(),
            "O_EXCL must refuse an existing name"
        );
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(
            open_read_no_follow(&link).is_err(),
            "a symlink must not be followed"
        );
        assert!(open_lock_file(&link).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
