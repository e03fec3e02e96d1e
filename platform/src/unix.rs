//! The Unix implementation (Linux, macOS, the BSDs), on rustix's safe API.

use super::Ownership;
use rustix::fs::OFlags;
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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

pub fn open_append_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
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

pub fn secret_input_mode() -> io::Result<Option<SavedTermios>> {
    use rustix::termios::{
        isatty, tcgetattr, tcsetattr, LocalModes, OptionalActions, SpecialCodeIndex,
    };
    let stdin = rustix::stdio::stdin();
    if !isatty(stdin) {
        return Ok(None);
    }
    let saved = tcgetattr(stdin)?;
    let mut raw = saved.clone();
    raw.local_modes
        .remove(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG | LocalModes::IEXTEN);
    raw.special_codes[SpecialCodeIndex::VMIN] = 1;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    // `Flush`: input typed before the prompt is discarded, not read as
    // part of the secret.
    tcsetattr(stdin, OptionalActions::Flush, &raw)?;
    Ok(Some(SavedTermios(saved)))
}

pub fn restore_termios(saved: SavedTermios) {
    use rustix::termios::{tcflush, tcsetattr, OptionalActions, QueueSelector};
    let stdin = rustix::stdio::stdin();
    // The rest of a wrapped paste must not reach the shell once echo and
    // line editing come back. Nothing useful can be done if this fails
    // (the terminal is gone).
    let _ = tcflush(stdin, QueueSelector::IFlush);
    let _ = tcsetattr(stdin, OptionalActions::Flush, &saved.0);
}

pub fn stdin_has_input(timeout: std::time::Duration) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdin = rustix::stdio::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let t = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    loop {
        match poll(&mut fds, Some(&t)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

pub fn sanitize_std_fds() {
    use rustix::fd::AsRawFd;
    use rustix::stdio::{stderr, stdin, stdout};
    // Rust's runtime has usually done the reopening already, before
    // `main`: it opens /dev/null read-write for a closed 0, 1 or 2. A
    // shell's `>/dev/null` opens it write-only, so a read-write /dev/null
    // at 1 means standard output was closed (`>&-`). (`1<>/dev/null` is
    // taken as closed too: that case is rare and fails safe.)
    if reopened_by_the_runtime(stdout()) {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
    }
    for (fd, borrowed) in [(0, stdin()), (1, stdout()), (2, stderr())] {
        // Only asks whether the number is open.
        if rustix::io::fcntl_getfd(borrowed).is_ok() {
            continue;
        }
        if fd == 1 {
            STDOUT_CLOSED.store(true, Ordering::SeqCst);
        }
        // Take the number with /dev/null; open returns the lowest free
        // number, which is `fd` since the lower ones are open by now.
        if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
            if null.as_raw_fd() == fd {
                // Kept open for the life of the process, on purpose.
                std::mem::forget(null);
            }
        }
    }
}

fn reopened_by_the_runtime(fd: rustix::fd::BorrowedFd<'_>) -> bool {
    use rustix::fs::{fcntl_getfl, fstat, stat, FileType, OFlags};
    let (Ok(flags), Ok(st), Ok(null)) = (fcntl_getfl(fd), fstat(fd), stat("/dev/null")) else {
        return false;
    };
    flags & OFlags::RWMODE == OFlags::RDWR
        && FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
        && st.st_rdev == null.st_rdev
}

pub fn write_stdout(buf: &[u8]) -> io::Result<usize> {
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "standard output is closed",
        ));
    }
    loop {
        match rustix::io::write(rustix::stdio::stdout(), buf) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn open_regular_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    Ok(file)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(u64, u64);

pub fn file_id(file: &File, _path: &Path) -> io::Result<FileId> {
    let meta = file.metadata()?;
    Ok(FileId(meta.dev(), meta.ino()))
}

pub fn trim_os_str(s: &std::ffi::OsStr) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(s.as_bytes().trim_ascii())
}

pub fn file_ownership(file: &File) -> io::Result<Ownership> {
    Ok(ownership(&file.metadata()?))
}

#[allow(unsafe_code)]
pub fn lock_memory(ptr: *const u8, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: `ptr..ptr+len` is the memory of one live value the caller
    // borrows for the duration of this call (`lock_memory` takes `&T`).
    // mlock neither reads nor writes it: it only pins the pages that
    // contain the range (rounded out to page boundaries by the kernel),
    // and fails with ENOMEM on anything unmapped.
    unsafe { rustix::mm::mlock(ptr.cast_mut().cast(), len) }?;
    Ok(())
}

pub fn is_dumpable() -> Option<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::process::{dumpable_behavior, DumpableBehavior};
        dumpable_behavior()
            .ok()
            .map(|b| b != DumpableBehavior::NotDumpable)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// `SO_PEERCRED` read into the kernel's own `struct ucred`: its pid is 0
/// for a peer outside this process's pid namespace (rustix's `UCred`
/// holds a non-zero pid, and reading 0 into it would be undefined
/// behaviour). A pid of 0 is reported as `None`; the uid is always there.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
pub fn peer_credentials(
    stream: &std::os::unix::net::UnixStream,
) -> io::Result<super::PeerCredentials> {
    use std::os::unix::io::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let size = std::mem::size_of::<libc::ucred>();
    let mut len = libc::socklen_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "ucred size"))?;
    // SAFETY: the descriptor is a Unix socket owned by `stream`, alive for
    // this call; `cred` is a valid, writable `ucred` of `len` bytes (any
    // bit pattern is a valid `ucred`: three plain integers), and `len` a
    // valid, writable `socklen_t`; the kernel writes at most `len` bytes
    // and neither pointer is kept after the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if usize::try_from(len).ok() != Some(size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "SO_PEERCRED answered with an unexpected size",
        ));
    }
    Ok(super::PeerCredentials {
        uid: cred.uid,
        pid: u32::try_from(cred.pid).ok().filter(|&p| p != 0),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(unsafe_code)]
pub fn peer_credentials(
    stream: &std::os::unix::net::UnixStream,
) -> io::Result<super::PeerCredentials> {
    use std::os::unix::io::AsRawFd;
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: the descriptor is a connected Unix socket owned by `stream`,
    // alive for this call; `uid` and `gid` are valid, writable locals the
    // call fills in and nothing else keeps.
    let rc = unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(super::PeerCredentials { uid, pid: None })
}

pub fn connect_unix(
    path: &Path,
    timeout: std::time::Duration,
) -> io::Result<std::os::unix::net::UnixStream> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path)?;
    // Apple has no SOCK_CLOEXEC/SOCK_NONBLOCK: set both right after.
    #[cfg(not(target_vendor = "apple"))]
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    #[cfg(target_vendor = "apple")]
    let flags = SocketFlags::empty();
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
    #[cfg(target_vendor = "apple")]
    {
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&fd, true)?;
    }
    let deadline = std::time::Instant::now() + timeout;
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} ms", timeout.as_millis()),
        )
    };
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => break,
            Err(Errno::INTR) => continue,
            // Linux: the listener's queue is full; try again shortly.
            Err(Errno::AGAIN) => {
                if std::time::Instant::now() >= deadline {
                    return Err(timed_out());
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            // Elsewhere the connection completes in the background.
            Err(Errno::INPROGRESS) => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let t = Timespec {
                    tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
                match poll(&mut fds, Some(&t)) {
                    Ok(0) => return Err(timed_out()),
                    Ok(_) => {}
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                rustix::net::sockopt::socket_error(&fd)??;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    rustix::io::ioctl_fionbio(&fd, false)?;
    Ok(std::os::unix::net::UnixStream::from(fd))
}

pub fn wait_readable(
    fd: std::os::unix::io::BorrowedFd<'_>,
    wake: std::os::unix::io::BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let t = timeout.map(|left| Timespec {
        tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(left.subsec_nanos()),
    });
    let mut fds = [
        PollFd::new(&fd, PollFlags::IN),
        PollFd::new(&wake, PollFlags::IN),
    ];
    poll(&mut fds, t.as_ref())?;
    let woken = !fds[1].revents().is_empty();
    let ready = !fds[0].revents().is_empty();
    Ok(ready && !woken)
}

pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    let signal = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a signal number"))?;
    Ok(rustix::process::kill_process(pid, signal)?)
}

pub fn in_terminal_foreground() -> bool {
    use rustix::stdio::{stderr, stdin};
    let own = rustix::process::getpgrp();
    [stdin(), stderr()].into_iter().any(|fd| {
        rustix::termios::isatty(fd) && rustix::termios::tcgetpgrp(fd).is_ok_and(|pg| pg == own)
    })
}
