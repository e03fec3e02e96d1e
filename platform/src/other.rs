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
pub fn open_append_private(path: &Path) -> io::Result<File> {
    refuse_symlink(path)?;
    OpenOptions::new().append(true).create(true).open(path)
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
pub fn secret_input_mode() -> io::Result<Option<SavedTermios>> {
    Ok(None)
}
pub fn restore_termios(_saved: SavedTermios) {}
pub fn stdin_has_input(_timeout: std::time::Duration) -> io::Result<bool> {
    Ok(false)
}
pub fn sanitize_std_fds() {}
pub fn write_stdout(buf: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    let mut out = io::stdout().lock();
    out.write_all(buf)?;
    out.flush()?;
    Ok(buf.len())
}
pub fn open_regular_file(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    // A device (NUL, CON) has no file information on Windows: that, too,
    // is "not a regular file", said before anything is read.
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    Ok(file)
}
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(std::path::PathBuf);
pub fn file_id(_file: &File, path: &Path) -> io::Result<FileId> {
    std::fs::canonicalize(path).map(FileId)
}
pub fn trim_os_str(s: &std::ffi::OsStr) -> &std::ffi::OsStr {
    match s.to_str() {
        Some(t) => std::ffi::OsStr::new(t.trim_matches(|c: char| c.is_ascii_whitespace())),
        None => s,
    }
}
pub fn file_ownership(file: &File) -> io::Result<Ownership> {
    Ok(ownership(&file.metadata()?))
}
pub fn lock_memory(_ptr: *const u8, _len: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "memory locking is not implemented on this platform",
    ))
}
pub fn is_dumpable() -> Option<bool> {
    None
}
