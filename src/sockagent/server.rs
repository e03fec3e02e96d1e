//! The signing agent's server (Unix): holds one credential, answers the
//! requests of [`protocol`](super::protocol) on a unix socket of mode 0600
//! to peers of its own uid, and never sends the key (nor the token, unless
//! export is allowed).

use super::audit::{AuditLog, Peer};
use super::protocol::{AnswerOut, Request, MAX_REQUEST_BYTES};
use crate::agent::{RegistrationConfig, TaskSession};
use crate::credential::{rfc3339, unix_now, AgentIdentity, Credential};
use crate::error::{Error, ErrorKind, Result};
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Worker threads serving connections when the configuration says nothing.
pub const DEFAULT_WORKERS: usize = 8;

/// A connection whose first byte of a request has not come this long
/// after it was accepted (or after the previous answer) is closed: idle
/// connections hold a worker only briefly, and a queued one whose time is
/// up is closed at once.
pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_millis(500);

/// A whole request line must have come within this of the connection's
/// accept (or of the previous answer), however slowly it trickles in.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(1500);

/// The most registered task sessions an agent keeps.
const MAX_TASK_SESSIONS: usize = 4;

/// Accepted connections waiting for a worker, per worker. Idle ones leave
/// the queue quickly (see [`CONNECTION_IDLE_TIMEOUT`]), so a long queue
/// costs only descriptors.
const QUEUE_PER_WORKER: usize = 32;

/// How the agent runs.
#[derive(Debug)]
pub struct AgentConfig {
    /// The socket path.
    pub socket: PathBuf,
    /// Whether `token` is answered (and, for an API key, `headers`).
    pub allow_export: bool,
    /// Stop after this long without a request.
    pub max_idle: Option<Duration>,
    /// Where every request is logged.
    pub audit: Option<AuditLog>,
    /// The auth API for `register-task`.
    pub registration: Option<RegistrationConfig>,
    /// Fields of the status document the embedder adds (profile, backend,
    /// …); never a secret.
    pub status_fields: Map<String, Value>,
    /// Where the credential came from, for the status document and log.
    pub credential_source: String,
    /// How many connections are served at once.
    pub workers: usize,
}

impl AgentConfig {
    /// A configuration for `socket` with the defaults: no export, no idle
    /// limit, no log, no registration, [`DEFAULT_WORKERS`].
    pub fn new(socket: PathBuf) -> AgentConfig {
        AgentConfig {
            socket,
            allow_export: false,
            max_idle: None,
            audit: None,
            registration: None,
            status_fields: Map::new(),
            credential_source: String::new(),
            workers: DEFAULT_WORKERS,
        }
    }
}

/// What the agent could do to keep its key out of reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryProtection {
    /// Whether the pages of the key and the token are locked (`mlock`).
    pub locked: bool,
    /// Why they are not, when they are not.
    pub lock_error: Option<String>,
    /// Whether the process can be dumped or traced (`None`: unknown).
    pub dumpable: Option<bool>,
}

/// The credential as the agent holds it. Taken out (and so wiped) on stop.
enum Held {
    Identity {
        identity: Arc<AgentIdentity>,
        /// Registered tasks, one per auth API.
        sessions: Mutex<Vec<Arc<TaskSession>>>,
    },
    ApiKey(Credential),
}

struct Shared {
    socket: PathBuf,
    /// Device and inode of the socket this agent bound: only that one is
    /// removed on stop (never another agent's at the same path).
    socket_id: (u64, u64),
    /// The lock on `<socket>.lock` (and its path), held until the agent
    /// ends.
    lock: (PathBuf, std::fs::File),
    uid: u32,
    held: RwLock<Option<Held>>,
    allow_export: bool,
    registration: Option<RegistrationConfig>,
    status_fields: Map<String, Value>,
    credential_source: String,
    audit: Option<AuditLog>,
    memory: MemoryProtection,
    stopping: AtomicBool,
    /// Wakes the accept loop on stop, without the filesystem: the socket
    /// file may be gone (removed by anyone of the user).
    wakeup: credstore_platform::Wakeup,
    stop_lock: Mutex<()>,
    stop_reason: Mutex<Option<String>>,
    last_request: Mutex<Instant>,
    max_idle: Option<Duration>,
    workers: usize,
}

/// A bound signing agent, ready to [`serve`](SigningAgent::serve).
pub struct SigningAgent {
    listener: UnixListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SigningAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningAgent")
            .field("socket", &self.shared.socket)
            .finish_non_exhaustive()
    }
}

/// Stops a running agent from another thread (a signal handler thread,
/// `exec` when its child exits).
#[derive(Clone)]
pub struct AgentHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("socket", &self.shared.socket)
            .finish()
    }
}

impl SigningAgent {
    /// Binds the socket for `credential`: the directory is created (0700)
    /// when missing, a stale socket is replaced only when nothing listens
    /// on it, and the socket appears at its path already with mode 0600.
    /// The key's and token's pages are locked in memory, best effort.
    pub fn bind(credential: Credential, config: AgentConfig) -> Result<SigningAgent> {
        let socket = config.socket.clone();
        let dir = match socket.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Bound under a temporary name and renamed: the kernel would never
        // see an address too long for sun_path, and clients could not reach
        // it.
        if std::os::unix::net::SocketAddr::from_pathname(&socket).is_err() {
            return Err(Error::Usage(format!(
                "the socket path {} is too long for a unix socket address ({} bytes; the \
                 limit is about 100); choose a shorter --socket path",
                socket.display(),
                socket.as_os_str().len()
            )));
        }
        prepare_dir(&dir)?;
        let file_name = socket
            .file_name()
            .ok_or_else(|| Error::Usage(format!("{} is not a socket path", socket.display())))?;
        if file_name.is_empty() {
            return Err(Error::Usage(format!(
                "{} is not a socket path",
                socket.display()
            )));
        }
        // Held from the stale check until the agent ends: two agents on
        // one path never both get past it.
        let lock = lock_socket_path(&socket)?;
        clear_stale(&socket)?;
        // Bound under a temporary name, made 0600, then renamed: the
        // socket is never reachable at its path with wider modes.
        let tmp = dir.join(format!(".cs-agent-{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(|e| Error::io("binding", &tmp, e))?;
        let made_private = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .and_then(|()| place_socket(&tmp, &socket));
        if let Err(e) = made_private {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(already_listens(&socket));
            }
            return Err(Error::io("creating the socket", &socket, e));
        }
        let meta = std::fs::symlink_metadata(&socket)
            .map_err(|e| Error::io("checking the socket", &socket, e))?;
        // Non-blocking: the accept loop waits in poll, together with the
        // wakeup of stop.
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("setting up", &socket, e))?;
        let wakeup =
            credstore_platform::Wakeup::new().map_err(|e| Error::io("setting up", &socket, e))?;

        let (held, memory) = hold(credential);
        let shared = Arc::new(Shared {
            socket,
            socket_id: (meta.dev(), meta.ino()),
            lock,
            uid: credstore_platform::effective_uid(),
            held: RwLock::new(Some(held)),
            allow_export: config.allow_export,
            registration: config.registration,
            status_fields: config.status_fields,
            credential_source: config.credential_source,
            audit: config.audit,
            memory,
            stopping: AtomicBool::new(false),
            wakeup,
            stop_lock: Mutex::new(()),
            stop_reason: Mutex::new(None),
            last_request: Mutex::new(Instant::now()),
            max_idle: config.max_idle,
            workers: config.workers.max(1),
        });
        if let Some(log) = &shared.audit {
            log.event(
                "start",
                json!({
                    "pid": std::process::id(),
                    "socket": shared.socket.to_string_lossy(),
                    "credential_source": shared.credential_source,
                    "export_allowed": shared.allow_export,
                    "memory_locked": shared.memory.locked,
                }),
            )?;
        }
        Ok(SigningAgent { listener, shared })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// What protects the key in this process.
    pub fn memory(&self) -> &MemoryProtection {
        &self.shared.memory
    }

    /// A handle that stops the agent.
    pub fn handle(&self) -> AgentHandle {
        AgentHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until stopped ([`AgentHandle::stop`], or the idle limit);
    /// returns why it stopped. The key is wiped and the socket removed by
    /// then.
    pub fn serve(self) -> Result<String> {
        let shared = self.shared;
        let (tx, rx) = sync_channel::<(UnixStream, Instant)>(shared.workers * QUEUE_PER_WORKER);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..shared.workers {
            let for_worker = Arc::clone(&shared);
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("agent-worker-{i}"))
                .spawn(move || worker(&for_worker, &rx))
                .map_err(|e| Error::io("starting a worker thread for", &shared.socket, e))?;
        }
        if let Some(limit) = shared.max_idle {
            let handle = AgentHandle {
                shared: Arc::clone(&shared),
            };
            std::thread::Builder::new()
                .name("agent-idle".into())
                .spawn(move || idle_watch(&handle, limit))
                .map_err(|e| Error::io("starting the idle timer for", &shared.socket, e))?;
        }
        loop {
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            match shared.wakeup.wait_readable(self.listener.as_fd(), None) {
                Ok(true) => {}
                // Woken by stop: `stopping` is set.
                Ok(false) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            match self.listener.accept() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // Served in blocking mode with timeouts (BSDs hand on the
                // listener's non-blocking flag).
                Ok((stream, _)) if stream.set_nonblocking(false).is_err() => {}
                Ok((stream, _)) => match tx.try_send((stream, Instant::now())) {
                    Ok(()) => {}
                    Err(TrySendError::Full((stream, _))) => {
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = (&stream).write_all(
                            &AnswerOut::error(
                                ErrorKind::Backend,
                                "the agent is busy (every worker is serving a connection); try again",
                            )
                            .to_line(),
                        );
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                },
                // Out of descriptors or an aborted connection: keep serving.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        drop(tx);
        // Stopped by the idle timer or a handle: make sure all of stop ran.
        let handle = AgentHandle { shared };
        handle.stop("stopped");
        Ok(handle.reason())
    }
}

impl AgentHandle {
    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// Stops the agent: no new request is answered, the key is wiped
    /// (after the requests being signed finish, waiting at most 2 s), the
    /// socket is removed, and [`SigningAgent::serve`] returns. Calling it
    /// again does nothing.
    pub fn stop(&self, reason: &str) {
        // Held through the whole stop: a second caller (the accept loop,
        // woken by the first) returns only once the first has finished.
        let _stopping = self
            .shared
            .stop_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        *self
            .shared
            .stop_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.shared.held.try_write() {
                Ok(mut held) => {
                    drop(held.take());
                    break;
                }
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    drop(p.into_inner().take());
                    break;
                }
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::sync::TryLockError::WouldBlock) => break,
            }
        }
        // Wakes the accept loop, which then sees `stopping`; never through
        // the socket's path, which may be gone.
        self.shared.wakeup.wake();
        self.shared.remove_socket();
        if let Some(log) = &self.shared.audit {
            let _ = log.event("stop", json!({"reason": reason}));
        }
    }

    fn reason(&self) -> String {
        self.shared
            .stop_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }
}

impl Shared {
    fn remove_socket(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.socket) {
            if (meta.dev(), meta.ino()) == self.socket_id {
                let _ = std::fs::remove_file(&self.socket);
            }
        }
        // Our lock file too (still locked by us: an agent that opened it
        // before cannot lock it while we run, and one that starts after
        // makes a new one; the socket itself is never replaced either way).
        let (path, file) = &self.lock;
        if let (Ok(ours), Ok(there)) = (file.metadata(), std::fs::symlink_metadata(path)) {
            if (ours.dev(), ours.ino()) == (there.dev(), there.ino()) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The directory of the socket: created 0700 when missing; an existing one
/// that others may write to (sticky bit or not), or that belongs to
/// another user, is refused.
fn prepare_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        credstore_platform::create_private_dir_all(dir)
            .map_err(|e| Error::io("creating", dir, e))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| Error::io("checking", dir, e))?;
    let mode = meta.mode() & 0o7777;
    let own = credstore_platform::ownership(&meta);
    if !own.owned_by_current_user && own.owner != Some(0) {
        return Err(Error::InsecurePermissions {
            path: dir.to_path_buf(),
            mode,
            problem: "belongs to another user, who could replace the agent's socket".into(),
            fix: "choose a socket path in a directory of your own".into(),
        });
    }
    // Even with the sticky bit (/tmp): others could create a socket of
    // their own at the path first, or while the agent is not running.
    if mode & 0o022 != 0 {
        return Err(Error::InsecurePermissions {
            path: dir.to_path_buf(),
            mode,
            problem: "can be written by other users, who could put a socket of their own at the \
                      agent's path"
                .into(),
            fix: format!(
                "use a directory only you can write to (the default one, $XDG_RUNTIME_DIR/credstore, \
                 is 0700), or chmod 700 {}",
                dir.display()
            ),
        });
    }
    Ok(())
}

fn already_listens(socket: &Path) -> Error {
    Error::Backend {
        backend: "signing agent",
        message: format!(
            "another agent already listens on {} (or is starting there); stop it, or choose \
             another socket path",
            socket.display()
        ),
    }
}

/// Takes the lock `<socket>.lock` beside the socket (in its private
/// directory), without waiting: held by another agent, it is an error.
fn lock_socket_path(socket: &Path) -> Result<(PathBuf, std::fs::File)> {
    let mut name = socket.as_os_str().to_os_string();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file =
        credstore_platform::open_lock_file(&path).map_err(|e| Error::io("opening", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok((path, file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(already_listens(socket)),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &path, e)),
    }
}

/// Puts the bound socket `tmp` at `socket` without ever replacing what is
/// there: a hard link (fails when the name exists), else, where the
/// filesystem has no hard links, a rename under the lock.
fn place_socket(tmp: &Path, socket: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, socket) {
        Ok(()) => std::fs::remove_file(tmp),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => std::fs::rename(tmp, socket),
    }
}

/// Removes a socket nobody listens on; refuses to touch anything else.
fn clear_stale(socket: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("checking", socket, e)),
        Ok(m) => m,
    };
    if meta.file_type().is_symlink() {
        return Err(Error::Symlink {
            path: socket.to_path_buf(),
            fix: "remove the link, or choose another socket path".into(),
        });
    }
    if !meta.file_type().is_socket() {
        return Err(Error::Usage(format!(
            "{} exists and is not a socket; refusing to replace it (choose another socket path)",
            socket.display()
        )));
    }
    match credstore_platform::connect_unix(socket, Duration::from_millis(500)) {
        Ok(_) => Err(already_listens(socket)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(socket)
            .map_err(|e| Error::io("removing the stale socket", socket, e)),
        Err(e) => Err(Error::Backend {
            backend: "signing agent",
            message: format!(
                "{} is a socket that neither answers nor refuses ({e}); refusing to replace it",
                socket.display()
            ),
        }),
    }
}

/// Takes the credential in and locks its secret pages, best effort.
fn hold(credential: Credential) -> (Held, MemoryProtection) {
    let mut lock_error = None;
    let mut lock = |r: std::io::Result<()>| {
        if let Err(e) = r {
            lock_error.get_or_insert_with(|| e.to_string());
        }
    };
    let held = match credential {
        Credential::AgentIdentity(identity) => {
            lock(credstore_platform::lock_memory(identity.signing_key()));
            lock(credstore_platform::lock_memory(identity.expose_token()));
            Held::Identity {
                identity: Arc::from(identity),
                sessions: Mutex::new(Vec::new()),
            }
        }
        Credential::ApiKey(key) => {
            let credential = Credential::ApiKey(key);
            lock(credstore_platform::lock_memory(credential.expose_token()));
            Held::ApiKey(credential)
        }
    };
    let memory = MemoryProtection {
        locked: lock_error.is_none(),
        lock_error,
        dumpable: credstore_platform::is_dumpable(),
    };
    (held, memory)
}

fn idle_watch(handle: &AgentHandle, limit: Duration) {
    let tick = limit.min(Duration::from_secs(1));
    loop {
        std::thread::sleep(tick);
        if handle.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let last = *handle
            .shared
            .last_request
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= limit {
            handle.stop("idle");
            return;
        }
    }
}

fn worker(shared: &Shared, rx: &Mutex<Receiver<(UnixStream, Instant)>>) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((stream, accepted)) = next else {
            return;
        };
        if shared.stopping.load(Ordering::SeqCst) {
            continue;
        }
        serve_connection(shared, &stream, accepted);
    }
}

enum Line {
    Complete,
    Eof,
    TooLong,
}

/// Reads one line of at most [`MAX_REQUEST_BYTES`] into `buf`; before
/// each read `before_read` is told whether a byte of the line has come
/// (and sets the read's deadline).
fn read_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    before_read: &mut dyn FnMut(bool) -> std::io::Result<()>,
) -> std::io::Result<Line> {
    buf.clear();
    loop {
        before_read(!buf.is_empty())?;
        let available = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > MAX_REQUEST_BYTES {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(Line::Complete);
        }
    }
}

fn serve_connection(shared: &Shared, stream: &UnixStream, accepted: Instant) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut writer = stream;
    let creds = match credstore_platform::peer_credentials(stream) {
        Ok(c) => c,
        Err(e) => {
            let _ = writer.write_all(
                &AnswerOut::error(
                    ErrorKind::AgentUnavailable,
                    format!("refused: the agent cannot tell who is connecting ({e})"),
                )
                .to_line(),
            );
            return;
        }
    };
    let peer = Peer::describe(creds.pid, creds.uid);
    if creds.uid != shared.uid {
        // Root is not special: only the agent's own user is served.
        if let Some(log) = &shared.audit {
            let _ = log.request(Some(&peer), "connect", None, "refused", None);
        }
        eprintln!(
            "credstore agent: refused a connection from uid {} (pid {}): only uid {} is served",
            creds.uid,
            creds.pid.map_or_else(|| "?".into(), |p| p.to_string()),
            shared.uid
        );
        let _ = writer.write_all(
            &AnswerOut::error(
                ErrorKind::AgentUnavailable,
                format!(
                    "refused: this agent serves only uid {}, not uid {}",
                    shared.uid, creds.uid
                ),
            )
            .to_line(),
        );
        return;
    }
    let mut reader = BufReader::with_capacity(4096, stream);
    let mut line = Vec::with_capacity(1024);
    // From the accept, then from each answer: the first byte within
    // CONNECTION_IDLE_TIMEOUT, the whole line within REQUEST_DEADLINE.
    let mut since = accepted;
    loop {
        let mut deadlines = |started: bool| {
            let limit = if started {
                REQUEST_DEADLINE
            } else {
                CONNECTION_IDLE_TIMEOUT
            };
            let left = (since + limit).saturating_duration_since(Instant::now());
            if left.is_zero() && started {
                return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
            }
            // Even when the time is up: one look at what already came.
            stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        };
        match read_line(&mut reader, &mut line, &mut deadlines) {
            Ok(Line::Eof) => return,
            Err(e) => {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    if let Some(log) = &shared.audit {
                        let what = if line.is_empty() { "idle" } else { "slow" };
                        let _ = log.request(Some(&peer), what, None, "closed", None);
                    }
                }
                return;
            }
            Ok(Line::TooLong) => {
                if let Some(log) = &shared.audit {
                    let _ = log.request(Some(&peer), "invalid", None, "error", Some("usage"));
                }
                let _ = writer.write_all(
                    &AnswerOut::error(
                        ErrorKind::Usage,
                        format!(
                            "request larger than {MAX_REQUEST_BYTES} bytes; the connection is closed"
                        ),
                    )
                    .to_line(),
                );
                return;
            }
            Ok(Line::Complete) => {}
        }
        *shared
            .last_request
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let request = std::str::from_utf8(&line)
            .map_err(|_| "the request is not UTF-8".to_string())
            .and_then(|text| {
                serde_json::from_str::<Request>(text.trim_end())
                    .map_err(|e| format!("malformed request ({e})"))
            });
        let answer = match &request {
            Ok(request) => answer(shared, request),
            Err(why) => AnswerOut::error(ErrorKind::Usage, why.clone()).to_line(),
        };
        if let Some(log) = &shared.audit {
            let (op, task) = match &request {
                Ok(r) => (r.op(), r.task_id()),
                Err(_) => ("invalid", None),
            };
            let kind = answer_error_kind(&answer);
            let result = if kind.is_some() { "error" } else { "ok" };
            // The auth API a registration asked for (or the agent's own).
            let url = match &request {
                Ok(Request::RegisterTask { base_url }) => base_url.clone().or_else(|| {
                    shared
                        .registration
                        .as_ref()
                        .map(|r| r.base_url().to_string())
                }),
                _ => None,
            };
            if let Err(e) = log.request_with_url(
                Some(&peer),
                op,
                task,
                url.as_deref(),
                result,
                kind.as_deref(),
            ) {
                eprintln!("credstore agent: {e}");
            }
        }
        if writer.write_all(&answer).is_err() {
            return;
        }
        since = Instant::now();
    }
}

/// The error kind of an encoded answer, for the log.
fn answer_error_kind(answer: &[u8]) -> Option<String> {
    // Only error answers start so; a success never has an "error" field.
    if !answer.starts_with(br#"{"ok":false"#) {
        return None;
    }
    let v: Value = serde_json::from_slice(answer).ok()?;
    v["error"]["kind"].as_str().map(str::to_string)
}

fn error_answer(e: &Error) -> zeroize::Zeroizing<Vec<u8>> {
    AnswerOut::error(e.kind(), e.to_string()).to_line()
}

fn answer(shared: &Shared, request: &Request) -> zeroize::Zeroizing<Vec<u8>> {
    let guard = shared.held.read().unwrap_or_else(|p| p.into_inner());
    let Some(held) = guard
        .as_ref()
        .filter(|_| !shared.stopping.load(Ordering::SeqCst))
    else {
        return error_answer(&Error::Backend {
            backend: "signing agent",
            message: "the agent is stopping".into(),
        });
    };
    match answer_held(shared, held, request) {
        Ok(line) => line,
        Err(e) => error_answer(&e),
    }
}

fn not_identity(op: &str) -> Error {
    Error::NoCredential(format!(
        "the agent holds an API key, not an agent identity; {op} needs an agent identity"
    ))
}

fn answer_held(
    shared: &Shared,
    held: &Held,
    request: &Request,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    Ok(match (request, held) {
        (Request::Assertion { task_id }, Held::Identity { identity, .. }) => {
            let a = identity.assertion(task_id)?;
            AnswerOut {
                ok: true,
                assertion: Some(a.expose()),
                timestamp: Some(a.timestamp()),
                ..AnswerOut::default()
            }
            .to_line()
        }
        (Request::Assertion { .. }, Held::ApiKey(_)) => return Err(not_identity("an assertion")),
        (Request::Headers { task_id }, Held::Identity { identity, sessions }) => {
            let task_id = match task_id {
                Some(t) => t.clone(),
                None => registered_task(sessions).ok_or_else(|| Error::MissingTaskId {
                    origin: shared.credential_source.clone(),
                })?,
            };
            let headers = identity.request_headers(&task_id)?;
            AnswerOut {
                ok: true,
                headers: Some(headers.iter().collect()),
                ..AnswerOut::default()
            }
            .to_line()
        }
        (Request::Headers { task_id }, Held::ApiKey(credential)) => {
            if !shared.allow_export {
                return Err(Error::NoCredential(
                    "the agent holds an API key, and its request header is the key itself: \
                     the agent hands it out only when started with export allowed"
                        .into(),
                ));
            }
            let headers = credential.request_headers(task_id.as_deref())?;
            AnswerOut {
                ok: true,
                headers: Some(headers.iter().collect()),
                ..AnswerOut::default()
            }
            .to_line()
        }
        (Request::RegisterTask { base_url }, Held::Identity { identity, sessions }) => {
            let config = registration_config(shared, base_url.as_deref())?;
            let session = {
                let mut list = sessions.lock().unwrap_or_else(|p| p.into_inner());
                match list
                    .iter()
                    .find(|s| s.config().base_url() == config.base_url())
                {
                    Some(s) => Arc::clone(s),
                    // Only the agent's own auth API is registered with
                    // (one session); the cap is a second guard.
                    None if list.len() >= MAX_TASK_SESSIONS => {
                        return Err(Error::Usage(format!(
                            "the agent already holds {MAX_TASK_SESSIONS} task sessions"
                        )))
                    }
                    None => {
                        let s = Arc::new(TaskSession::new(Arc::clone(identity), config));
                        list.push(Arc::clone(&s));
                        s
                    }
                }
            };
            // Outside the list's lock: registering may take the whole HTTP
            // timeout, and the session itself makes racing callers wait
            // for the one registration in flight.
            let id = session.task_id()?;
            AnswerOut {
                ok: true,
                task_id: Some(&id),
                ..AnswerOut::default()
            }
            .to_line()
        }
        (Request::RegisterTask { .. }, Held::ApiKey(_)) => {
            return Err(not_identity("task registration"))
        }
        (Request::Status {}, held) => AnswerOut {
            ok: true,
            status: Some(status_document(shared, held)),
            ..AnswerOut::default()
        }
        .to_line(),
        (Request::Token {}, held) => {
            if !shared.allow_export {
                return Err(Error::NoCredential(
                    "the agent does not export tokens: it signs and builds headers, and hands \
                     out the token only when started with export allowed"
                        .into(),
                ));
            }
            let token = match held {
                Held::Identity { identity, .. } => identity.expose_token(),
                Held::ApiKey(c) => c.expose_token(),
            };
            AnswerOut {
                ok: true,
                token: Some(token),
                ..AnswerOut::default()
            }
            .to_line()
        }
    })
}

/// The task id of a registered session, if one has registered.
fn registered_task(sessions: &Mutex<Vec<Arc<TaskSession>>>) -> Option<String> {
    let list = sessions.lock().unwrap_or_else(|p| p.into_inner());
    list.iter()
        .find(|s| s.registered())
        .and_then(|s| s.task_id().ok())
}

/// The auth API a registration goes to: only the agent's own (a client
/// may name it, never another one: the auth API answers with a box sealed
/// to the identity's key, which the agent would open for whoever asked).
fn registration_config(shared: &Shared, asked: Option<&str>) -> Result<RegistrationConfig> {
    match (&shared.registration, asked) {
        (Some(own), None) => Ok(own.clone()),
        (Some(own), Some(url)) => {
            let asked = RegistrationConfig::new(url)?;
            if asked.base_url() == own.base_url() {
                Ok(own.clone())
            } else {
                Err(Error::Usage(format!(
                    "the agent registers tasks with {} only, not {}",
                    own.base_url(),
                    asked.base_url()
                )))
            }
        }
        (None, _) => Err(Error::Usage(
            "the agent has no auth API base URL of its own, and registers tasks only with its \
             own: start it with --base-url URL, or with CREDSTORE_AUTHAPI_BASE_URL (or the \
             config setting authapi-base-url) set"
                .into(),
        )),
    }
}

fn status_document(shared: &Shared, held: &Held) -> Value {
    let now = unix_now();
    let mut doc = Map::new();
    doc.insert("schema".into(), json!(2));
    doc.insert("logged_in".into(), json!(true));
    for (k, v) in &shared.status_fields {
        doc.insert(k.clone(), v.clone());
    }
    doc.insert(
        "source".into(),
        json!({"kind": "agent", "detail": shared.socket.to_string_lossy()}),
    );
    let (mode, identity) = match held {
        Held::Identity { identity, .. } => {
            let c = identity.claims();
            (
                "agent_identity",
                json!({
                    "agent_runtime_id": c.agent_runtime_id,
                    "account_id": c.account_id,
                    "chatgpt_user_id": c.chatgpt_user_id,
                    "email": c.email,
                    "plan_type": c.plan_type,
                    "fedramp": c.fedramp,
                    "issued_at": rfc3339(c.issued_at),
                    "expires_at": rfc3339(c.expires_at),
                    "expires_in_seconds": c.expires_at - now,
                    "expired": identity.is_expired_at(now),
                }),
            )
        }
        Held::ApiKey(_) => ("api_key", Value::Null),
    };
    doc.insert("auth_mode".into(), json!(mode));
    doc.insert("identity".into(), identity);
    doc.entry("warnings").or_insert_with(|| json!([]));
    doc.insert(
        "agent".into(),
        json!({
            "pid": std::process::id(),
            "socket": shared.socket.to_string_lossy(),
            "credential_source": shared.credential_source,
            "export_allowed": shared.allow_export,
            "memory_locked": shared.memory.locked,
            "memory_lock_error": shared.memory.lock_error,
            "dumpable": shared.memory.dumpable,
        }),
    );
    Value::Object(doc)
}
