//! The sealed backend (SPEC §9, issue "The sealed backend"): the token-only
//! document of SPEC §2, encrypted with [age](https://age-encryption.org/v1)
//! (X25519 recipients, the binary format, no armor), so `age -d -i KEY FILE`
//! opens it. One file per profile in the file backend's directory:
//! `auth.json.age` (profile `default`) or `auth.<profile>.json.age`.
//!
//! The files are read, written and removed by the file backend's own code
//! ([`FileStore`]): directory 0700, file 0600, temp file + fsync + rename +
//! directory fsync, the change lock, symlink and permission refusal. What
//! this module adds is the encryption and the key.
//!
//! The key (an age identity) never comes from a prompt and never lives
//! beside the sealed files:
//! - `{PREFIX}_SEAL_IDENTITY_FILE`: an age identity file (a root-only file,
//!   `$CREDENTIALS_DIRECTORY/…` of a systemd unit, a Kubernetes secret
//!   mount). Refused when group or others may read it, when another user
//!   (other than root) owns it, or when it lies in the credential directory.
//! - `{PREFIX}_SEAL=systemd-creds`: the identity is kept encrypted by
//!   `systemd-creds` (host key, and TPM2 where present) in
//!   `{PREFIX}_SEAL_CREDENTIAL` (default `$HOME/seal-identity.cred`) and
//!   decrypted at each use by running `systemd-creds decrypt`, whose output
//!   goes into memory only.
//!
//! `{PREFIX}_SEAL_RECIPIENTS` adds public keys every file is also sealed to
//! (a fleet key, a recovery key). Decrypted bytes live in zeroizing buffers
//! only; the identities are `x25519-dalek` secrets, wiped on drop.
//!
//! ```no_run
//! use credstore::env::{EnvNames, MapEnv};
//! use credstore::profile::Profile;
//! use credstore::store::{FileStore, SealConfig, SealedStore, Store};
//!
//! # fn main() -> credstore::Result<()> {
//! let home = std::path::Path::new("/var/lib/agent/credstore");
//! let env = MapEnv::new().with(
//!     "CREDSTORE_SEAL_IDENTITY_FILE",
//!     "/run/credentials/agent.service/seal.key",
//! );
//! let config = SealConfig::from_env(&env, &EnvNames::default(), home)?;
//! let store = SealedStore::new(FileStore::new(home), config);
//! let found = store.load(&Profile::default_profile())?;
//! # let _ = found; Ok(()) }
//! ```

use super::file::{file_name, Secrecy};
use super::{FileStore, Found, Location, SourceKind, Store};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::secret::{read_bounded, ReadError};
use crate::stored::StoredCredential;
use age::x25519;
use credstore_platform as platform;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The name bound into the systemd credential (`systemd-creds --name=`):
/// a credential made for something else is refused by `systemd-creds`.
pub const SYSTEMD_CREDENTIAL_NAME: &str = "credstore-seal";

/// The systemd credential's file name in the home when
/// `{PREFIX}_SEAL_CREDENTIAL` is not set. It is encrypted to the machine
/// (host key, TPM2), so it may live there; the identity in clear never does.
pub const DEFAULT_SYSTEMD_CREDENTIAL: &str = "seal-identity.cred";

/// How long `systemd-creds` may take (a TPM2 can be slow, never this slow).
const SYSTEMD_CREDS_TIMEOUT: Duration = Duration::from_secs(30);

/// The sealed file of `profile`: the file backend's name plus `.age`.
pub(crate) fn sealed_name(profile: &Profile) -> String {
    format!("{}.age", file_name(profile))
}

/// Where the age identity that opens the sealed files comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An age identity file, named by a variable.
    IdentityFile {
        /// The variable (`CREDSTORE_SEAL_IDENTITY_FILE`).
        variable: String,
        /// The file.
        path: PathBuf,
    },
    /// An age identity kept encrypted by `systemd-creds`.
    SystemdCreds {
        /// The encrypted credential.
        credential: PathBuf,
    },
}

impl KeySource {
    /// The file the key is read from.
    pub fn path(&self) -> &Path {
        match self {
            KeySource::IdentityFile { path, .. } => path,
            KeySource::SystemdCreds { credential } => credential,
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::IdentityFile { variable, path } => {
                write!(f, "{variable} ({})", path.display())
            }
            KeySource::SystemdCreds { credential } => {
                write!(f, "systemd-creds ({})", credential.display())
            }
        }
    }
}

/// The sealed backend's settings: the key source and the extra recipients.
#[derive(Debug, Clone)]
pub struct SealConfig {
    key: Option<KeySource>,
    recipients: Vec<x25519::Recipient>,
    names: EnvNames,
    home: PathBuf,
}

impl SealConfig {
    /// Reads `{PREFIX}_SEAL_IDENTITY_FILE`, `{PREFIX}_SEAL`,
    /// `{PREFIX}_SEAL_CREDENTIAL` and `{PREFIX}_SEAL_RECIPIENTS`; `home` is
    /// the credential directory. A bad value is a usage error naming the
    /// variable (never quoting it: it may be a pasted secret key). No key
    /// source is not an error here: using the store without one is.
    pub fn from_env(env: &dyn Environment, names: &EnvNames, home: &Path) -> Result<SealConfig> {
        let file_var = names.seal_identity_file();
        let seal_var = names.seal();
        let identity_file = env.path(&file_var);
        let seal = env.text(&seal_var)?;
        let systemd = match seal.as_ref().map(|s| s.trim()) {
            None => false,
            Some("systemd-creds") => true,
            Some(_) => {
                return Err(Error::Usage(format!(
                    "{seal_var} takes systemd-creds (the key kept by systemd-creds); for an \
                     identity file, set {file_var} instead"
                )))
            }
        };
        let key = match (identity_file, systemd) {
            (Some(_), true) => {
                return Err(Error::Usage(format!(
                    "{file_var} and {seal_var} are both set: the sealed backend takes its key \
                     from one of them; unset the other"
                )))
            }
            (Some(path), false) => Some(KeySource::IdentityFile {
                variable: file_var,
                path,
            }),
            (None, true) => Some(KeySource::SystemdCreds {
                credential: env
                    .path(&names.seal_credential())
                    .unwrap_or_else(|| home.join(DEFAULT_SYSTEMD_CREDENTIAL)),
            }),
            (None, false) => None,
        };
        let recipients_var = names.seal_recipients();
        let mut recipients = Vec::new();
        if let Some(list) = env.text(&recipients_var)? {
            for (i, entry) in list
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .enumerate()
            {
                let recipient = entry.parse::<x25519::Recipient>().map_err(|_| {
                    Error::Usage(format!(
                        "{recipients_var}: entry {} is not an age X25519 public key (age1…); \
                         list public keys only, separated by commas or spaces",
                        i + 1
                    ))
                })?;
                if !recipients.contains(&recipient) {
                    recipients.push(recipient);
                }
            }
        }
        Ok(SealConfig {
            key,
            recipients,
            names: names.clone(),
            home: home.to_path_buf(),
        })
    }

    /// Where the key comes from; `None` when no source is configured.
    pub fn key_source(&self) -> Option<&KeySource> {
        self.key.as_ref()
    }

    /// The extra recipients (`{PREFIX}_SEAL_RECIPIENTS`), as `age1…` keys.
    pub fn extra_recipients(&self) -> Vec<String> {
        self.recipients.iter().map(|r| r.to_string()).collect()
    }

    /// The identities of the key source, read now (a file read, or a run
    /// of `systemd-creds decrypt`). `sealed` names the file they are for,
    /// in the error when no key source is configured.
    fn identities(&self, sealed: &Path) -> Result<Identities> {
        let Some(key) = &self.key else {
            return Err(Error::SealKey {
                path: sealed.to_path_buf(),
                problem: "the sealed backend has no key: no identity file and no systemd \
                          credential is configured"
                    .into(),
                fix: format!(
                    "set {} to an age identity file kept outside {} (a root-only file, a \
                     systemd credential in $CREDENTIALS_DIRECTORY, a secret mount), or set {}=systemd-creds",
                    self.names.seal_identity_file(),
                    self.home.display(),
                    self.names.seal()
                ),
            });
        };
        let (bytes, path) = match key {
            KeySource::IdentityFile { variable, path } => {
                (read_identity_file(path, variable, &self.home)?, path)
            }
            KeySource::SystemdCreds { credential } => (
                systemd_creds_decrypt(credential, &self.names.seal_credential())?,
                credential,
            ),
        };
        parse_identities(&bytes, path, key)
    }
}

/// Age identities read from the key source. `Debug` redacts; each is wiped
/// on drop (`x25519-dalek`'s `StaticSecret`).
struct Identities(Vec<x25519::Identity>);

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identities({} × [REDACTED])", self.0.len())
    }
}

/// Refuses a key at or under the credential directory (the link as given,
/// and the file it resolves to): a key beside the sealed files protects
/// nothing.
fn refuse_beside(path: &Path, variable: &str, home: &Path) -> Result<()> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let homes = [
        absolute(home),
        std::fs::canonicalize(home).unwrap_or_else(|_| absolute(home)),
    ];
    let mut places = vec![absolute(path)];
    if let Ok(real) = std::fs::canonicalize(path) {
        places.push(real);
    }
    if places
        .iter()
        .any(|p| homes.iter().any(|h| p.starts_with(h)))
    {
        return Err(Error::SealKey {
            path: path.to_path_buf(),
            problem: format!(
                "the identity named by {variable} lies in the credential directory {}, beside \
                 the sealed files it opens: whoever copies the directory gets both",
                home.display()
            ),
            fix: format!(
                "move it out of {} (e.g. a root-only file, $CREDENTIALS_DIRECTORY of a systemd \
                 unit, a secret mount) and point {variable} at it",
                home.display()
            ),
        });
    }
    Ok(())
}

/// Reads an identity file: a regular file (links followed: secret mounts
/// use them), owned by this user or root, no group or other permission,
/// not in the credential directory, at most 64 KiB.
fn read_identity_file(path: &Path, variable: &str, home: &Path) -> Result<Zeroizing<Vec<u8>>> {
    refuse_beside(path, variable, home)?;
    let mut file = match platform::open_regular_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::SealKey {
                path: path.to_path_buf(),
                problem: format!("the identity file named by {variable} does not exist"),
                fix: format!(
                    "point {variable} at the age identity the files were sealed to, or make a \
                     new one there (`age-keygen -o {}`, mode 0600) before the first save",
                    path.display()
                ),
            })
        }
        Err(e) => return Err(Error::io("opening the identity file", path, e)),
    };
    let own = platform::file_ownership(&file).map_err(|e| Error::io("inspecting", path, e))?;
    if !(own.owned_by_current_user || own.owner == Some(0)) {
        let uid = own.owner.map(|u| format!(" (uid {u})")).unwrap_or_default();
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: format!(
                "is the sealed backend's identity file and is owned by another user{uid}"
            ),
            fix: format!(
                "if you trust it, {}; otherwise use your own identity file",
                platform::advice::take_ownership(path)
            ),
        });
    }
    if own.grants_group_or_other() {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: own.mode,
            problem: "is the sealed backend's identity file and grants access to group or others"
                .into(),
            fix: platform::advice::make_private(path),
        });
    }
    match read_bounded(&mut file) {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge) => Err(Error::SealKey {
            path: path.to_path_buf(),
            problem: "it is larger than 64 KiB: not an age identity file".into(),
            fix: format!("point {variable} at an age identity file"),
        }),
        Err(ReadError::Io(e)) => Err(Error::io("reading", path, e)),
    }
}

/// Parses the X25519 identities of an identity file (`#` comments and blank
/// lines skipped, as `age` does). Errors name the line, never its text.
fn parse_identities(bytes: &[u8], path: &Path, key: &KeySource) -> Result<Identities> {
    let mut identities = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = crate::secret::trim_input(line);
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let parsed = std::str::from_utf8(line)
            .ok()
            .and_then(|text| text.parse::<x25519::Identity>().ok());
        match parsed {
            Some(identity) => identities.push(identity),
            None => {
                return Err(Error::SealKey {
                    path: path.to_path_buf(),
                    problem: format!(
                        "line {} of the key from {key} is not an age X25519 identity \
                         (AGE-SECRET-KEY-1…; plugin identities are not supported)",
                        i + 1
                    ),
                    fix: "use an identity made by age-keygen (or credstore's keygen)".into(),
                })
            }
        }
    }
    if identities.is_empty() {
        return Err(Error::SealKey {
            path: path.to_path_buf(),
            problem: format!("the key from {key} holds no age identity"),
            fix: "put an age X25519 identity (AGE-SECRET-KEY-1…) there".into(),
        });
    }
    Ok(Identities(identities))
}

/// Runs `systemd-creds` with `args`, `input` on its stdin, and returns its
/// stdout (in a zeroizing buffer: it may be the identity), or why it failed.
/// Bounded by [`SYSTEMD_CREDS_TIMEOUT`].
fn run_systemd_creds(
    args: &[&std::ffi::OsStr],
    input: Option<&[u8]>,
    about: &Path,
) -> Result<std::result::Result<Zeroizing<Vec<u8>>, String>> {
    let mut child = match Command::new("systemd-creds")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::SealKey {
                path: about.to_path_buf(),
                problem: "systemd-creds is not installed here (it comes with systemd 250 or later)"
                    .into(),
                fix: "install systemd, or keep the identity in a file instead (the identity \
                      file variable)"
                    .into(),
            })
        }
        Err(e) => return Err(Error::io("running systemd-creds for", about, e)),
    };
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::io(
            "running systemd-creds for",
            about,
            io::Error::other("its output could not be captured"),
        ));
    };
    let out_reader = std::thread::spawn(move || read_bounded(&mut stdout));
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(4096).read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // A broken pipe shows as the exit status below.
        let _ = stdin.write_all(bytes);
    }
    let deadline = Instant::now() + SYSTEMD_CREDS_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    backend: "sealed",
                    seconds: SYSTEMD_CREDS_TIMEOUT.as_secs(),
                    what: format!("systemd-creds for {}", about.display()),
                    hint: "a TPM2 that does not answer, or a stuck service; check \
                           `systemd-creds has-tpm2`, or use an identity file"
                        .into(),
                });
            }
            Err(e) => return Err(Error::io("waiting for systemd-creds for", about, e)),
        }
    };
    let out = out_reader.join();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        // systemd-creds' own last words (never secret), made safe to show.
        let why = err
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .map(|l| crate::text::shown(l).into_owned())
            .unwrap_or_else(|| format!("exit status {status}"));
        return Ok(Err(why));
    }
    match out {
        Ok(Ok(bytes)) => Ok(Ok(bytes)),
        Ok(Err(ReadError::TooLarge)) => Ok(Err("its output is larger than 64 KiB".into())),
        Ok(Err(ReadError::Io(e))) => Err(Error::io(
            "reading the output of systemd-creds for",
            about,
            e,
        )),
        Err(_) => Err(Error::io(
            "reading the output of systemd-creds for",
            about,
            io::Error::other("the reader failed"),
        )),
    }
}

/// Decrypts the systemd credential that holds the identity (into memory).
fn systemd_creds_decrypt(credential: &Path, variable: &str) -> Result<Zeroizing<Vec<u8>>> {
    let exists = std::fs::metadata(credential).is_ok();
    if !exists {
        return Err(Error::SealKey {
            path: credential.to_path_buf(),
            problem: "the systemd credential holding the sealed backend's identity does not exist"
                .into(),
            fix: format!(
                "create it there (an age identity encrypted by systemd-creds under the name \
                 {SYSTEMD_CREDENTIAL_NAME}, with the host key and TPM2 where present), or point \
                 {variable} at it"
            ),
        });
    }
    let name = format!("--name={SYSTEMD_CREDENTIAL_NAME}");
    let args = [
        "decrypt".as_ref(),
        name.as_ref(),
        credential.as_os_str(),
        "-".as_ref(),
    ];
    match run_systemd_creds(&args, None, credential)? {
        Ok(bytes) => Ok(bytes),
        Err(why) => Err(Error::SealKey {
            path: credential.to_path_buf(),
            problem: format!("systemd-creds could not decrypt it: {why}"),
            fix: "it opens only on the machine that made it (host key, TPM2) and for a user \
                  allowed to use that key (root); make a new one there"
                .into(),
        }),
    }
}

/// How a sealed file is protected, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// How many recipients (keys) can open the file, from its header.
    pub recipients: usize,
    /// Where this process takes its key from.
    pub key: Option<KeySource>,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.recipients == 1 { "" } else { "s" };
        match &self.key {
            Some(key) => write!(
                f,
                "encrypted at rest (age, {} recipient{plural}, key from {key})",
                self.recipients
            ),
            None => write!(
                f,
                "encrypted at rest (age, {} recipient{plural}, no key configured)",
                self.recipients
            ),
        }
    }
}

/// The number of recipient stanzas in an age file's header (`-> TAG …`
/// lines before the `---` MAC line), not counting the random `…-grease`
/// stanza age adds to keep parsers honest; `None` without such a header.
fn count_recipients(sealed: &[u8]) -> Option<usize> {
    let mut lines = sealed.split(|b| *b == b'\n');
    if lines.next() != Some(b"age-encryption.org/v1") {
        return None;
    }
    let mut n = 0;
    for line in lines {
        if line.starts_with(b"---") {
            return Some(n);
        }
        if let Some(stanza) = line.strip_prefix(b"-> ") {
            let tag = stanza.split(|b| *b == b' ').next().unwrap_or_default();
            if !tag.ends_with(b"-grease") {
                n += 1;
            }
        }
    }
    None
}

/// Credentials sealed with age in one directory.
#[derive(Debug, Clone)]
pub struct SealedStore {
    files: FileStore,
    config: SealConfig,
}

impl SealedStore {
    /// A store whose files live in `files`' directory, keyed by `config`.
    pub fn new(files: FileStore, config: SealConfig) -> SealedStore {
        SealedStore { files, config }
    }

    /// The settings in use.
    pub fn config(&self) -> &SealConfig {
        &self.config
    }

    /// The sealed file of `profile`.
    pub fn path(&self, profile: &Profile) -> PathBuf {
        self.files.home().join(sealed_name(profile))
    }

    /// Reads the key now and says how many identities it holds (`doctor`).
    pub fn check_key(&self) -> Result<usize> {
        let probe = self.files.home().join("auth.json.age");
        self.config.identities(&probe).map(|ids| ids.0.len())
    }

    /// How the profile's sealed file is protected; `None` when there is none.
    /// Reads the file's header only (no key needed).
    pub fn protection(&self, profile: &Profile) -> Result<Option<Protection>> {
        let path = self.path(profile);
        let Some(sealed) = self.files.read_private(&path, Secrecy::Secret)? else {
            return Ok(None);
        };
        Ok(Some(Protection {
            recipients: count_recipients(&sealed).unwrap_or(0),
            key: self.config.key.clone(),
        }))
    }

    /// Encrypts `document` to the identities' public keys and the extra
    /// recipients.
    fn seal(&self, document: &[u8], identities: &Identities, path: &Path) -> Result<Vec<u8>> {
        let mut recipients: Vec<x25519::Recipient> =
            identities.0.iter().map(|i| i.to_public()).collect();
        for extra in &self.config.recipients {
            if !recipients.contains(extra) {
                recipients.push(extra.clone());
            }
        }
        let failed = |what: &str| Error::Backend {
            backend: "sealed",
            message: format!(
                "sealing the credential for {} failed ({what})",
                path.display()
            ),
        };
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|_| failed("the recipients were refused"))?;
        let mut sealed = Vec::with_capacity(document.len() + 128 + 128 * recipients.len());
        let mut writer = encryptor
            .wrap_output(&mut sealed)
            .map_err(|_| failed("writing the header"))?;
        writer
            .write_all(document)
            .map_err(|_| failed("encrypting"))?;
        writer.finish().map_err(|_| failed("encrypting"))?;
        Ok(sealed)
    }

    /// Decrypts a sealed file's bytes with the identities.
    fn open(
        &self,
        sealed: &[u8],
        identities: &Identities,
        path: &Path,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let corrupt = |reason: &str| Error::CorruptStore {
            location: path.display().to_string(),
            reason: reason.to_string(),
        };
        let classify = |e: age::DecryptError| match e {
            age::DecryptError::NoMatchingKeys => Error::SealKey {
                path: path.to_path_buf(),
                problem: format!(
                    "none of the {} identit{} from {} opens it: the file was sealed to other \
                     keys (a wrong key), or its recipient lines were changed",
                    identities.0.len(),
                    if identities.0.len() == 1 { "y" } else { "ies" },
                    self.config
                        .key
                        .as_ref()
                        .map(|k| k.to_string())
                        .unwrap_or_default()
                ),
                fix: "use the identity it was sealed to (or one of its extra recipients' keys); \
                      if that is lost, remove the file and store the credential again"
                    .into(),
            },
            age::DecryptError::InvalidMac => {
                corrupt("its age header does not match its MAC: the file was changed")
            }
            age::DecryptError::UnknownFormat => corrupt("it is not an age v1 file"),
            age::DecryptError::InvalidHeader => corrupt("its age header is damaged or cut short"),
            age::DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                corrupt("it is cut short (truncated)")
            }
            _ => corrupt("it does not decrypt: the file was changed or cut short"),
        };
        let decryptor = age::Decryptor::new_buffered(sealed).map_err(classify)?;
        let mut reader = decryptor
            .decrypt(identities.0.iter().map(|i| i as &dyn age::Identity))
            .map_err(classify)?;
        match read_bounded(&mut reader) {
            Ok(document) => Ok(document),
            Err(ReadError::TooLarge) => Err(corrupt("it decrypts to more than 64 KiB")),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(corrupt("it is cut short (truncated)"))
            }
            Err(ReadError::Io(_)) => Err(corrupt(
                "its encrypted payload does not decrypt: the file was changed or cut short",
            )),
        }
    }
}

impl Store for SealedStore {
    fn name(&self) -> &'static str {
        "sealed"
    }

    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        let path = self.path(profile);
        let Some(sealed) = self.files.read_private(&path, Secrecy::Secret)? else {
            return Ok(None);
        };
        let identities = self.config.identities(&path)?;
        let document = self.open(&sealed, &identities, &path)?;
        drop(identities);
        let credential = StoredCredential::from_document(&document, &path.display().to_string())?;
        Ok(Some(Found {
            credential,
            location: self.describe(profile),
        }))
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let path = self.path(profile);
        // The key first: without one nothing is written.
        let identities = self.config.identities(&path)?;
        let document = credential.to_document();
        let sealed = self.seal(&document, &identities, &path)?;
        // Never write a file this key cannot open again. (This read also
        // reuses, and wipes, the heap block in which age's stream writer
        // kept the plaintext chunk: age does not wipe that buffer itself.)
        let back = self.open(&sealed, &identities, &path)?;
        if back[..] != document[..] {
            return Err(Error::Backend {
                backend: "sealed",
                message: format!(
                    "the sealed credential for {} did not decrypt to what was sealed; nothing \
                     was written",
                    path.display()
                ),
            });
        }
        drop((back, document, identities));
        self.files.write_private(&sealed_name(profile), &sealed)?;
        Ok(self.describe(profile))
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        Ok(if self.files.remove_private(&sealed_name(profile))? {
            vec![self.describe(profile)]
        } else {
            Vec::new()
        })
    }

    /// The profiles with a sealed file (listed without the key).
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        self.files.profiles_with_suffix(".age").map(Some)
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::Sealed,
            detail: self.path(profile).display().to_string(),
        }
    }
}

/// A new age identity, written to `out` (mode 0600, created new: an
/// existing file is never replaced), in `age-keygen`'s format. `home` is
/// the credential directory, where it may not go. Returns the public key.
pub fn keygen(out: &Path, home: &Path) -> Result<String> {
    refuse_beside(out, "the output path", home)?;
    let identity = x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let secret = identity.to_string();
    drop(identity);
    let mut file = platform::create_new_private(out).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "{} already exists; it is never replaced (it may be the key to sealed files): \
                 choose another path, or remove it yourself",
                out.display()
            ))
        } else {
            Error::io("creating", out, e)
        }
    })?;
    let header = format!(
        "# created: {}\n# public key: {public}\n",
        crate::credential::rfc3339(crate::credential::unix_now())
    );
    {
        use secrecy::ExposeSecret;
        let key = secret.expose_secret().as_bytes();
        let mut text = Zeroizing::new(Vec::with_capacity(header.len() + key.len() + 1));
        text.extend_from_slice(header.as_bytes());
        text.extend_from_slice(key);
        text.push(b'\n');
        let written = file
            .write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("writing", out, e));
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    }
    drop(file);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        platform::sync_dir(dir).map_err(|e| Error::io("syncing directory", dir, e))?;
    }
    Ok(public)
}

/// Makes the systemd credential of `config` (`{PREFIX}_SEAL=systemd-creds`):
/// a new age identity, encrypted by `systemd-creds encrypt --with-key=WITH_KEY`
/// (`auto`: host key and TPM2 where present), written new (never replacing
/// one) with mode 0600. The identity goes to `systemd-creds` on a pipe, never
/// to disk in clear. Returns the credential's path and the public key.
pub fn init_systemd_creds(
    files: &FileStore,
    config: &SealConfig,
    with_key: &str,
) -> Result<(PathBuf, String)> {
    let credential = match &config.key {
        Some(KeySource::SystemdCreds { credential }) => credential.clone(),
        _ => {
            return Err(Error::Usage(format!(
                "the systemd credential is made when {}=systemd-creds is set (and {} is not)",
                config.names.seal(),
                config.names.seal_identity_file()
            )))
        }
    };
    if !with_key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-')
        || with_key.is_empty()
    {
        return Err(Error::Usage(
            "the key for systemd-creds is one of auto, host, tpm2, host+tpm2".into(),
        ));
    }
    // The home is created (0700) and locked when the credential goes there.
    let parent = credential
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let _lock = if std::path::absolute(&parent).ok() == std::path::absolute(files.home()).ok() {
        Some(files.lock_changes()?)
    } else {
        None
    };
    if std::fs::symlink_metadata(&credential).is_ok() {
        return Err(Error::Usage(format!(
            "{} already exists; it is never replaced (it is the key to the sealed files): \
             remove it yourself if nothing is sealed to it",
            credential.display()
        )));
    }
    let identity = x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let secret = identity.to_string();
    drop(identity);
    let name = format!("--name={SYSTEMD_CREDENTIAL_NAME}");
    let key = format!("--with-key={with_key}");
    let args = [
        "encrypt".as_ref(),
        name.as_ref(),
        key.as_ref(),
        "-".as_ref(),
        "-".as_ref(),
    ];
    let blob = {
        use secrecy::ExposeSecret;
        let mut line = Zeroizing::new(Vec::with_capacity(secret.expose_secret().len() + 1));
        line.extend_from_slice(secret.expose_secret().as_bytes());
        line.push(b'\n');
        run_systemd_creds(&args, Some(&line), &credential)?
    };
    let blob = blob.map_err(|why| Error::SealKey {
        path: credential.clone(),
        problem: format!("systemd-creds could not encrypt the new identity: {why}"),
        fix: "run as root (the host key is root's), or have systemd-creds encrypt with another \
              key (host, tpm2, host+tpm2)"
            .into(),
    })?;
    let mut file = platform::create_new_private(&credential)
        .map_err(|e| Error::io("creating", &credential, e))?;
    if let Err(e) = file.write_all(&blob).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(&credential);
        return Err(Error::io("writing", &credential, e));
    }
    drop(file);
    platform::sync_dir(&parent).map_err(|e| Error::io("syncing directory", &parent, e))?;
    // It must open again, or it is no key at all.
    if let Err(e) = config.identities(&credential) {
        let _ = std::fs::remove_file(&credential);
        return Err(e);
    }
    Ok((credential, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_counted_from_the_header() {
        let head = b"age-encryption.org/v1\n-> X25519 abc\nbody\n-> X25519 def\nbody\n-> a&b-grease x\n\n--- mac\n\x00\x01";
        assert_eq!(count_recipients(head), Some(2));
        assert_eq!(count_recipients(b"{\"auth_mode\":1}"), None);
        assert_eq!(
            count_recipients(b"age-encryption.org/v1\n-> X25519 a\n"),
            None
        );
    }

    #[test]
    fn identities_debug_redacts_and_bad_lines_are_named_not_quoted() {
        let id = x25519::Identity::generate();
        let text = {
            use secrecy::ExposeSecret;
            id.to_string().expose_secret().to_string()
        };
        let key = KeySource::IdentityFile {
            variable: "X".into(),
            path: "/k".into(),
        };
        let parsed = parse_identities(
            format!("# c\n\n{text}\r\n").as_bytes(),
            Path::new("/k"),
            &key,
        )
        .unwrap();
        assert_eq!(parsed.0.len(), 1);
        assert!(!format!("{parsed:?}").contains(&text[20..40]));
        let bad = format!("{text}\n{}x\n", &text[..text.len() - 1]);
        let e = parse_identities(bad.as_bytes(), Path::new("/k"), &key).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(!e.to_string().contains(&text[15..30]), "{e}");
        assert_eq!(e.exit_code(), 4);
        let e = parse_identities(b"# nothing\n", Path::new("/k"), &key).unwrap_err();
        assert!(e.to_string().contains("no age identity"), "{e}");
    }

    #[test]
    fn bad_settings_are_usage_errors_naming_the_variable() {
        use crate::env::MapEnv;
        let names = EnvNames::new("CODEX");
        let home = Path::new("/h");
        let e = SealConfig::from_env(&MapEnv::new().with("CODEX_SEAL", "tpm"), &names, home)
            .unwrap_err();
        assert!(e.to_string().contains("CODEX_SEAL"), "{e}");
        let both = MapEnv::new()
            .with("CODEX_SEAL", "systemd-creds")
            .with("CODEX_SEAL_IDENTITY_FILE", "/k");
        assert_eq!(
            SealConfig::from_env(&both, &names, home)
                .unwrap_err()
                .exit_code(),
            2
        );
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let env = MapEnv::new().with("CODEX_SEAL_RECIPIENTS", secret);
        let e = SealConfig::from_env(&env, &names, home).unwrap_err();
        assert!(
            e.to_string().contains("CODEX_SEAL_RECIPIENTS: entry 1"),
            "{e}"
        );
        assert!(!e.to_string().contains("QQQQ"), "{e}");
        let r1 = x25519::Identity::generate().to_public().to_string();
        let r2 = x25519::Identity::generate().to_public().to_string();
        let env = MapEnv::new()
            .with("CODEX_SEAL_RECIPIENTS", format!(" {r1}, {r2} {r1}\n"))
            .with("CODEX_SEAL", "systemd-creds");
        let c = SealConfig::from_env(&env, &names, home).unwrap();
        assert_eq!(c.extra_recipients(), vec![r1, r2]);
        assert_eq!(
            c.key_source(),
            Some(&KeySource::SystemdCreds {
                credential: home.join(DEFAULT_SYSTEMD_CREDENTIAL)
            })
        );
        // Not configured: fine until a key is needed.
        let c = SealConfig::from_env(&MapEnv::new(), &names, home).unwrap();
        let e = c.identities(Path::new("/h/auth.json.age")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::SealKey);
        assert!(e.to_string().contains("CODEX_SEAL_IDENTITY_FILE"), "{e}");
    }
}
