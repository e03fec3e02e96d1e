//! Targets without Unix file modes (Windows): plain std calls; Windows ACLs
//! on the user's profile directory protect the file.

use super::Ownership;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

pub fn disable_core_dumps() -> io::Result<()> {
    Ok(())
}
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(path)
}
fn refuse_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to follow a symbolic link",
        )),
        _ => Ok(()),
    }
}
pub fn open_read_no_follow(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    File::open(path)
}
pub fn create_new_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}
pub fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}
pub fn ownership(_meta: &Metadata) -> Ownership {
    Ownership {
        mode: 0o600,
        owner: None,
        owned_by_current_user: true,
    }
}
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    io::stdin().read(buf)
}
pub struct SavedTermios;
pub fn disable_stdin_echo() -> io::Result<Option<SavedTermios>> {
    Ok(None)
}
pub fn restore_termios(_saved: SavedTermios) {}
