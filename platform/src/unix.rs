//! The Unix implementation (Linux, macOS, the BSDs), on rustix's safe API.

use super::Ownership;
use rustix::fs::OFlags;
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

pub fn disable_core_dumps() -> io::Result<()> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

fn no_follow() -> i32 {
    (OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32
}

pub fn open_read_no_follow(path: &Path) -> io::Result<File> {
    // O_NONBLOCK: opening a FIFO planted at the path must not block
    // (the caller then refuses anything that is not a regular file;
    // reads of regular files ignore the flag).
    OpenOptions::new()
        .read(true)
        .custom_flags(no_follow() | OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

pub fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(path)
}

pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(path)
}

pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

pub fn ownership(meta: &Metadata) -> Ownership {
    let uid = meta.uid();
    Ownership {
        mode: meta.mode() & 0o7777,
        owner: Some(uid),
        owned_by_current_user: uid == rustix::process::geteuid().as_raw(),
    }
}

pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(rustix::stdio::stdin(), buf)?)
}

pub struct SavedTermios(rustix::termios::Termios);

pub fn disable_stdin_echo() -> io::Result<Option<SavedTermios>> {
    use rustix::termios::{isatty, tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = rustix::stdio::stdin();
    if !isatty(stdin) {
        return Ok(None);
    }
    let saved = tcgetattr(stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    tcsetattr(stdin, OptionalActions::Flush, &quiet)?;
    Ok(Some(SavedTermios(saved)))
}

pub fn restore_termios(saved: SavedTermios) {
    use rustix::termios::{tcsetattr, OptionalActions};
    // Nothing useful can be done if restoring fails (the terminal is gone).
    let _ = tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &saved.0);
}
