//! Feedback while a keychain, Vault or auth-API call is slow: after 0.5 s a
//! line on stderr says what credstore waits for, for how long it has, and
//! when it gives up. Only on a terminal: a spinner with the elapsed time
//! that is erased when the call returns; with `NO_COLOR` or `TERM=dumb`,
//! one plain line instead. Nothing at all when stderr is not a terminal
//! (scripts, pipes, logs), and no thread is started then.

use credstore::profile::Profile;
use credstore::store::{Found, Location, Revision, Store};
use credstore::stored::StoredCredential;
use credstore::Result;
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a call may take before anything is shown.
const DELAY: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(100);
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Whether the spinner's line is on the terminal now (a message written
/// meanwhile erases it first; see [`write_stderr`]).
static SHOWN: Mutex<bool> = Mutex::new(false);

/// Writes to stderr with `f`, first erasing the spinner's line if one is
/// shown (the spinner draws it again on its next tick). Locks are always
/// taken in this order, the spinner's flag and then stderr.
pub fn write_stderr(f: impl FnOnce(&mut std::io::StderrLock<'static>)) {
    use std::io::Write;
    let mut shown = SHOWN.lock().unwrap_or_else(|p| p.into_inner());
    let mut err = std::io::stderr().lock();
    if *shown {
        let _ = err.write_all(b"\r\x1b[2K");
        *shown = false;
    }
    f(&mut err);
}

/// How the wait is shown, decided once from the environment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Spinner,
    Plain,
}

fn style() -> Option<Style> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    Some(if dumb || no_color {
        Style::Plain
    } else {
        Style::Spinner
    })
}

/// Runs `f`; if it takes longer than 0.5 s, says `what` it waits for on a
/// terminal, with `limit` (the deadline the call has) in the line.
pub fn run<T>(what: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    let Some(style) = style() else {
        return f();
    };
    let (done, wait) = mpsc::channel::<()>();
    // Escaped like every other text shown on the terminal.
    let what = credstore::text::shown(what).into_owned();
    let watcher = std::thread::Builder::new()
        .name("credstore-progress".into())
        .spawn(move || watch(&what, limit, style, &wait));
    let out = f();
    drop(done);
    if let Ok(handle) = watcher {
        let _ = handle.join();
    }
    out
}

fn watch(what: &str, limit: Duration, style: Style, wait: &mpsc::Receiver<()>) {
    let start = Instant::now();
    if !matches!(wait.recv_timeout(DELAY), Err(RecvTimeoutError::Timeout)) {
        return;
    }
    let secs = limit.as_secs();
    if style == Style::Plain {
        eprintln!("waiting for {what} (credstore gives up after {secs} s)…");
        let _ = wait.recv();
        return;
    }
    let mut frame = 0usize;
    loop {
        {
            use std::io::Write;
            let mut shown = SHOWN.lock().unwrap_or_else(|p| p.into_inner());
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2K{} waiting for {what}: {:.1} s (gives up after {secs} s)",
                FRAMES[frame % FRAMES.len()],
                start.elapsed().as_secs_f64()
            );
            let _ = err.flush();
            *shown = true;
        }
        frame += 1;
        match wait.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
    write_stderr(|_| {});
}

/// A store whose every call is watched by [`run`] (for the keychain and
/// Vault, whose calls can be slow; the file backend is never wrapped).
pub struct Watched {
    inner: Box<dyn Store>,
    /// "the keychain", "Vault at https://…".
    what: String,
    limit: Duration,
}

impl Watched {
    pub fn new(inner: Box<dyn Store>, what: String, limit: Duration) -> Watched {
        Watched { inner, what, limit }
    }

    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        run(&self.what, self.limit, f)
    }
}

impl Store for Watched {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        self.run(|| self.inner.load(profile))
    }
    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        self.run(|| self.inner.save(profile, credential))
    }
    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        self.run(|| self.inner.delete(profile))
    }
    fn describe(&self, profile: &Profile) -> Location {
        self.inner.describe(profile)
    }
    fn revision(&self, profile: &Profile) -> Result<Revision> {
        self.run(|| self.inner.revision(profile))
    }
    fn save_if(
        &self,
        profile: &Profile,
        credential: &StoredCredential,
        expected: Revision,
    ) -> Result<Location> {
        self.run(|| self.inner.save_if(profile, credential, expected))
    }
    fn delete_if(&self, profile: &Profile, expected: Revision) -> Result<Vec<Location>> {
        self.run(|| self.inner.delete_if(profile, expected))
    }
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        self.run(|| self.inner.profiles())
    }
}
