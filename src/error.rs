//! The one error type of credstore. Each variant knows its exit code
//! (SPEC §6.1) and its message says what happened, where, and what to do —
//! never a secret: no message is built from token or key bytes.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of an [`Error`], without its message: what an embedding
/// program matches on. Library messages never name command-line flags or
/// commands; a front end (the `credstore` CLI, an embedder) adds its own
/// advice from the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input from the caller or the environment (exit 2).
    Usage,
    /// No credential, or one of the wrong kind (exit 1).
    NoCredential,
    /// A malformed credential (exit 3).
    InvalidCredential,
    /// An agent identity that fails the configured JWKS (exit 3).
    Verification,
    /// An expired agent identity (exit 3): a new one must be stored.
    Expired,
    /// A stored document that breaks the stored-form rules (exit 4).
    CorruptStore,
    /// A credential file, directory or link that others could change or
    /// read (exit 4).
    InsecureStore,
    /// An I/O failure on a path (exit 4).
    Io,
    /// A backend that is not there (exit 4): another backend may work.
    BackendUnavailable,
    /// A backend that did not answer in time (exit 4): retrying may work.
    Timeout,
    /// Task registration failed (exit 4).
    Registration,
    /// An agent identity needs a task id and none was given (exit 2).
    MissingTaskId,
    /// Any other backend failure (exit 4).
    Backend,
    /// The signing agent cannot be reached, or broke off (exit 4).
    AgentUnavailable,
    /// The sealed backend's key cannot be had, or does not open the sealed
    /// file (exit 4): the message names the file and the fix.
    SealKey,
}

impl ErrorKind {
    /// The exit code of errors of this kind (SPEC §6.1).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::NoCredential => 1,
            ErrorKind::Usage | ErrorKind::MissingTaskId => 2,
            ErrorKind::InvalidCredential | ErrorKind::Verification | ErrorKind::Expired => 3,
            ErrorKind::CorruptStore
            | ErrorKind::InsecureStore
            | ErrorKind::Io
            | ErrorKind::BackendUnavailable
            | ErrorKind::Timeout
            | ErrorKind::Registration
            | ErrorKind::Backend
            | ErrorKind::AgentUnavailable
            | ErrorKind::SealKey => 4,
        }
    }

    /// A stable name (`missing_task_id`), as the signing agent's answers
    /// carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::NoCredential => "no_credential",
            ErrorKind::InvalidCredential => "invalid_credential",
            ErrorKind::Verification => "verification",
            ErrorKind::Expired => "expired",
            ErrorKind::CorruptStore => "corrupt_store",
            ErrorKind::InsecureStore => "insecure_store",
            ErrorKind::Io => "io",
            ErrorKind::BackendUnavailable => "backend_unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Registration => "registration",
            ErrorKind::MissingTaskId => "missing_task_id",
            ErrorKind::Backend => "backend",
            ErrorKind::AgentUnavailable => "agent_unavailable",
            ErrorKind::SealKey => "seal_key",
        }
    }

    /// The kind named `name` by [`ErrorKind::as_str`]; an unknown name
    /// (a newer agent) is [`ErrorKind::Backend`].
    pub fn from_name(name: &str) -> ErrorKind {
        const ALL: [ErrorKind; 15] = [
            ErrorKind::Usage,
            ErrorKind::NoCredential,
            ErrorKind::InvalidCredential,
            ErrorKind::Verification,
            ErrorKind::Expired,
            ErrorKind::CorruptStore,
            ErrorKind::InsecureStore,
            ErrorKind::Io,
            ErrorKind::BackendUnavailable,
            ErrorKind::Timeout,
            ErrorKind::Registration,
            ErrorKind::MissingTaskId,
            ErrorKind::Backend,
            ErrorKind::AgentUnavailable,
            ErrorKind::SealKey,
        ];
        ALL.into_iter()
            .find(|k| k.as_str() == name)
            .unwrap_or(ErrorKind::Backend)
    }
}

/// Everything that can go wrong in credstore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad flags, a bad profile name, `X` and `X_FILE` both set, an `X_FILE`
    /// that cannot be read. Exit code 2.
    #[error("{0}")]
    Usage(String),

    /// No credential: nothing stored and no environment variable set, or the
    /// active credential is of the wrong kind for the command. Exit code 1.
    #[error("{0}")]
    NoCredential(String),

    /// The credential is malformed, misses a claim, has a claim of the wrong
    /// type, carries a key that does not parse, or failed verification.
    /// `origin` names where it came from (an env variable, stdin, a path).
    /// Exit code 3.
    #[error("invalid {kind} from {origin}: {reason}")]
    InvalidCredential {
        /// "agent identity" or "API key".
        kind: &'static str,
        /// Where the credential came from.
        origin: String,
        /// What is wrong, naming the claim where one is at fault.
        reason: String,
    },

    /// An agent identity given where an API key was expected: sent as a
    /// Bearer token it would hand the private key to the server. Exit 3
    /// (kind [`ErrorKind::InvalidCredential`]).
    #[error("invalid API key from {origin}: it is an agent identity (a JWT that carries `agent_private_key`), not an API key; sent as a Bearer token it would hand the private key to the server — {instead}")]
    AgentIdentityAsApiKey {
        /// Where it came from.
        origin: String,
        /// Where it belongs instead.
        instead: String,
    },

    /// A JWKS is configured (SPEC §1.3) and the agent identity does not pass
    /// it: `alg: none` or an algorithm outside RS256/ES256/EdDSA, no `kid`
    /// or an unknown one, a signature that does not match the key, or an
    /// `iss`/`aud` other than the one required. Exit code 3.
    #[error(
        "the agent identity from {origin} failed verification against the JWKS {jwks}: {reason}"
    )]
    Verification {
        /// Where the credential came from.
        origin: String,
        /// The JWKS file (or other source) it was checked against.
        jwks: String,
        /// What failed.
        reason: String,
    },

    /// The agent identity's `exp` is more than 60 s in the past. Exit code 3.
    #[error("the agent identity from {origin} expired at {expired_at}; get a new agent identity to replace it")]
    Expired {
        /// Where the credential came from.
        origin: String,
        /// RFC 3339 time of expiry.
        expired_at: String,
    },

    /// A stored document breaks the stored-form rules (SPEC §2), or a file
    /// holds JSON that does not parse. The content is never echoed. Exit 4.
    #[error("corrupt credential store at {location}: {reason}; the store was left as it is — fix or remove it, then log in again")]
    CorruptStore {
        /// File path, keychain entry or Vault path.
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A credential file or its directory grants access to others, or is
    /// owned by another user. Exit code 4.
    #[error("{path} {problem} (mode {mode:04o}); refusing to use it. Fix: {fix}")]
    InsecurePermissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What is wrong.
        problem: String,
        /// The command that fixes it.
        fix: String,
    },

    /// A symbolic link where a credential file must be. Exit code 4.
    #[error("{path} is a symbolic link; credstore refuses to follow links at credential paths. Fix: {fix}")]
    Symlink {
        /// The path of the link.
        path: PathBuf,
        /// What to do about it.
        fix: String,
    },

    /// An I/O error on a path. Exit code 4.
    #[error("{action} {path}: {source}")]
    Io {
        /// What credstore was doing ("reading", "writing", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A backend that is not there or does not answer usefully. Exit code 4.
    #[error("{backend} backend unavailable: {reason}. {hint}")]
    BackendUnavailable {
        /// Backend name.
        backend: &'static str,
        /// What is missing or failed.
        reason: String,
        /// What to do instead.
        hint: String,
    },

    /// A backend call that did not finish within its deadline. Exit code 4.
    #[error("{backend} backend did not answer within {seconds} s ({what}); {hint}")]
    Timeout {
        /// Backend name.
        backend: &'static str,
        /// The configured deadline.
        seconds: u64,
        /// The operation that timed out.
        what: String,
        /// The likely cause and what to do.
        hint: String,
    },

    /// Task registration with the auth API failed: the server could not be
    /// reached, answered with an HTTP error (`status`, and at most 512
    /// characters of its body in `detail`), or gave an answer without a
    /// usable task id. Timeouts are [`Error::Timeout`]. Exit code 4.
    #[error("task registration at {url} failed: {detail}")]
    Registration {
        /// The registration URL (no secret in it).
        url: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        /// What happened and what to do.
        detail: String,
    },

    /// An agent identity needs a task id for what was asked (request
    /// headers), and none was given. Exit code 2.
    #[error("the agent identity from {origin} needs a task id for request headers; register a task with the auth API first and use the id it returns")]
    MissingTaskId {
        /// Where the credential came from.
        origin: String,
    },

    /// The signing agent at `socket` cannot be reached, did not answer in
    /// time, or broke off mid-answer. Exit code 4.
    #[error("the signing agent at {socket} {reason}")]
    AgentUnavailable {
        /// The agent's socket path.
        socket: PathBuf,
        /// What went wrong and what to do.
        reason: String,
    },

    /// The signing agent answered with an error of `kind` (its exit code
    /// is the kind's); `message` is the agent's own words.
    #[error("the signing agent at {socket}: {message}")]
    Agent {
        /// The agent's socket path.
        socket: PathBuf,
        /// What kind of failure the agent reported.
        kind: ErrorKind,
        /// The agent's message.
        message: String,
    },

    /// The sealed backend has no usable key: none configured, an identity
    /// file that is missing, empty or kept beside the sealed files,
    /// `systemd-creds` missing or refusing, or no identity that is a
    /// recipient of the sealed file (a wrong key). `path` is the file at
    /// fault (the identity file, the systemd credential or the sealed
    /// file); nothing was changed. Exit code 4.
    #[error("{path}: {problem}. Fix: {fix}")]
    SealKey {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong (never a key or any byte of one).
        problem: String,
        /// What to do.
        fix: String,
    },

    /// Any other backend failure (refused access, locked store, …). Exit 4.
    #[error("{backend} backend: {message}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// What happened and what to do.
        message: String,
    },
}

impl Error {
    /// The process exit code for this error (SPEC §6.1).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NoCredential(_) => 1,
            Error::Usage(_) | Error::MissingTaskId { .. } => 2,
            Error::InvalidCredential { .. }
            | Error::AgentIdentityAsApiKey { .. }
            | Error::Verification { .. }
            | Error::Expired { .. } => 3,
            Error::CorruptStore { .. }
            | Error::InsecurePermissions { .. }
            | Error::Symlink { .. }
            | Error::Io { .. }
            | Error::BackendUnavailable { .. }
            | Error::Timeout { .. }
            | Error::Registration { .. }
            | Error::Backend { .. }
            | Error::SealKey { .. }
            | Error::AgentUnavailable { .. } => 4,
            Error::Agent { kind, .. } => kind.exit_code(),
        }
    }

    /// What kind of failure this is, for programs that act on it (retry,
    /// ask the user to log in, fall back to another backend) without
    /// reading the message. The message is for people; the kind is the
    /// contract.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::NoCredential(_) => ErrorKind::NoCredential,
            Error::InvalidCredential { .. } | Error::AgentIdentityAsApiKey { .. } => {
                ErrorKind::InvalidCredential
            }
            Error::Verification { .. } => ErrorKind::Verification,
            Error::Expired { .. } => ErrorKind::Expired,
            Error::CorruptStore { .. } => ErrorKind::CorruptStore,
            Error::InsecurePermissions { .. } | Error::Symlink { .. } => ErrorKind::InsecureStore,
            Error::Io { .. } => ErrorKind::Io,
            Error::BackendUnavailable { .. } => ErrorKind::BackendUnavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Registration { .. } => ErrorKind::Registration,
            Error::MissingTaskId { .. } => ErrorKind::MissingTaskId,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::AgentUnavailable { .. } => ErrorKind::AgentUnavailable,
            Error::Agent { kind, .. } => *kind,
            Error::SealKey { .. } => ErrorKind::SealKey,
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
