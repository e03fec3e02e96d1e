//! Health as data: what `status` warns about and what `doctor` finds, for
//! any front end to show. Every finding is a value with a kind, a severity
//! and a message in the library's words; a front end (the CLI) prints them
//! and adds its own advice (which flag or command fixes it).
//!
//! ```no_run
//! use credstore::env::{EnvNames, ProcessEnv};
//! use credstore::health::checkup;
//! use credstore::resolve::Resolver;
//! use credstore::store::{Selection, Settings};
//!
//! # fn main() -> credstore::Result<()> {
//! let names = EnvNames::new("CODEX");
//! let settings = Settings::resolve(&ProcessEnv, &names, &Selection::default())?;
//! let resolver = Resolver::new(&ProcessEnv).with_names(names);
//! let report = checkup(&settings, &ProcessEnv, &resolver);
//! for finding in report.problems() {
//!     eprintln!("problem: {finding}");
//! }
//! # Ok(()) }
//! ```

use crate::credential::{rfc3339, unix_now, Claims, EXPIRY_LEEWAY_SECS};
use crate::env::Environment;
use crate::resolve::{Resolved, Resolver, Source};
use crate::store::{
    is_not_there, AutoStore, BackendKind, KeychainStore, SealedStore, Settings, SourceKind, Store,
    VaultStore,
};
use crate::AuthMode;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seven days: the "expires soon" horizon.
pub const SOON_SECS: i64 = 7 * 24 * 3600;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Worth knowing; nothing is broken.
    Warning,
    /// Something to fix: the selected backend or the active credential
    /// does not work.
    Problem,
}

/// Where an agent identity stands against its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Past `exp` and the 60 s leeway: unusable.
    Expired {
        /// `exp`, seconds since the epoch.
        at: i64,
    },
    /// Past `exp` but within the leeway: usable a few seconds more.
    InLeeway {
        /// `exp`.
        at: i64,
        /// Seconds since `exp`.
        ago: i64,
    },
    /// Within [`SOON_SECS`] of `exp`.
    Soon {
        /// `exp`.
        at: i64,
        /// Seconds left.
        left: i64,
    },
}

/// Where `claims` stand against their expiry at `now`; `None` when more
/// than [`SOON_SECS`] are left.
pub fn expiry(claims: &Claims, now: i64) -> Option<Expiry> {
    let at = claims.expires_at;
    if now > at.saturating_add(EXPIRY_LEEWAY_SECS) {
        Some(Expiry::Expired { at })
    } else if at < now {
        Some(Expiry::InLeeway { at, ago: now - at })
    } else if at - now <= SOON_SECS {
        Some(Expiry::Soon { at, left: at - now })
    } else {
        None
    }
}

/// "in 3 days", "in 5 hours", "in 12 minutes"; for the past, "expired 30
/// seconds ago (within the 60 s leeway)" and the like.
pub fn relative(secs: i64) -> String {
    if secs < 0 {
        let ago = secs.unsigned_abs();
        let within = if ago <= EXPIRY_LEEWAY_SECS.unsigned_abs() {
            " (within the 60 s leeway)"
        } else {
            ""
        };
        return format!("expired {ago} seconds ago{within}");
    }
    if secs >= 2 * 86400 {
        format!("in {} days", secs / 86400)
    } else if secs >= 2 * 3600 {
        format!("in {} hours", secs / 3600)
    } else {
        format!("in {} minutes", secs / 60)
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Expiry::Expired { at } => write!(
                f,
                "the agent identity expired at {}; get a new one to replace it",
                rfc3339(at)
            ),
            Expiry::InLeeway { at, ago } => write!(
                f,
                "the agent identity {} (at {}); get a new one now",
                relative(-ago),
                rfc3339(at)
            ),
            Expiry::Soon { at, left } => write!(
                f,
                "the agent identity expires {} (at {}); get a new one soon",
                relative(left),
                rfc3339(at)
            ),
        }
    }
}

/// One thing `status` or `doctor` found. The message ([`fmt::Display`])
/// names no command-line flag; errors are carried as their messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The active credential is in a plaintext file.
    PlaintextActive {
        /// The file.
        path: String,
    },
    /// A plaintext credential file exists (whether or not it is active).
    PlaintextFileExists {
        /// The file.
        path: PathBuf,
    },
    /// The credential directory can be listed by others.
    LooseHome {
        /// The directory.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// An environment credential is used while the store holds one of
    /// another account or kind (the shadow guard of `token`, `headers`,
    /// `assertion`, `register-task`).
    EnvShadowsOther {
        /// The variable in use.
        variable: String,
        /// What it holds ("an API key", "the agent identity of account X").
        used: String,
        /// What is stored.
        stored: String,
        /// Where.
        location: String,
    },
    /// An environment credential hides one that is stored.
    EnvShadowsStored {
        /// The variable in use.
        variable: String,
        /// Where the stored one is.
        stored_in: String,
    },
    /// The stored credential could not be checked for shadowing.
    StoredUnchecked {
        /// Why.
        error: String,
    },
    /// A credential variable is set but another wins over it.
    VariableShadowed {
        /// The variable that is ignored.
        variable: String,
        /// The one that wins.
        by: String,
    },
    /// The agent identity has expired or expires soon.
    Expiry(Expiry),
    /// Another backend also holds a credential for the profile: a copy
    /// that is not used (and may be another account).
    ShadowedCopy {
        /// The backend that holds it.
        backend: &'static str,
        /// Where.
        location: String,
    },
    /// `auto` found no keychain and uses the plaintext file.
    AutoWithoutKeychain {
        /// The file backend's directory.
        home: PathBuf,
    },
    /// The memory backend is selected: nothing outlives the process.
    MemorySelected,
    /// Vault is configured, not selected, and fails.
    VaultFailsUnselected {
        /// Why.
        error: String,
    },
    /// The sealed backend's key is configured, the backend is not
    /// selected, and it fails (the key cannot be read, or does not open
    /// the profile's sealed file).
    SealedFailsUnselected {
        /// Why.
        error: String,
    },
    /// The selected backend fails.
    SelectedFails {
        /// The backend's name.
        backend: &'static str,
        /// Why.
        error: String,
    },
    /// `auto` falls back to the file backend, which fails.
    AutoFallbackFails {
        /// Why.
        error: String,
    },
    /// `auto` uses the keychain, which is there but fails.
    AutoKeychainFails {
        /// Why.
        error: String,
    },
    /// The vault backend is selected but no address is configured.
    VaultNotConfigured,
    /// The environment credential does not parse or verify.
    EnvCredentialUnusable {
        /// Why.
        error: String,
    },
    /// The stored credential does not parse or verify.
    StoredCredentialUnusable {
        /// Why.
        error: String,
    },
    /// The active credential has expired.
    ActiveExpired {
        /// The expiry error's message.
        error: String,
    },
}

impl Finding {
    /// A stable name for programs (`status --json` warnings' `code`).
    pub fn code(&self) -> &'static str {
        match self {
            Finding::PlaintextActive { .. } | Finding::PlaintextFileExists { .. } => {
                "plaintext_file"
            }
            Finding::LooseHome { .. } => "loose_permissions",
            Finding::EnvShadowsStored { .. } | Finding::EnvShadowsOther { .. } => "env_shadows",
            Finding::StoredUnchecked { .. } => "stored_unchecked",
            Finding::VariableShadowed { .. } => "variable_shadowed",
            Finding::Expiry(Expiry::Expired { .. }) | Finding::ActiveExpired { .. } => "expired",
            Finding::Expiry(_) => "expiring",
            Finding::ShadowedCopy { .. } => "shadowed_copy",
            Finding::AutoWithoutKeychain { .. } => "auto_without_keychain",
            Finding::MemorySelected => "memory_selected",
            Finding::VaultFailsUnselected { .. } => "vault_fails",
            Finding::SealedFailsUnselected { .. } => "sealed_fails",
            Finding::SelectedFails { .. } => "backend_fails",
            Finding::AutoFallbackFails { .. } => "auto_fallback_fails",
            Finding::AutoKeychainFails { .. } => "auto_keychain_fails",
            Finding::VaultNotConfigured => "vault_not_configured",
            Finding::EnvCredentialUnusable { .. } => "env_credential_unusable",
            Finding::StoredCredentialUnusable { .. } => "stored_credential_unusable",
        }
    }

    /// Whether it needs fixing.
    pub fn severity(&self) -> Severity {
        match self {
            Finding::SelectedFails { .. }
            | Finding::AutoFallbackFails { .. }
            | Finding::AutoKeychainFails { .. }
            | Finding::VaultNotConfigured
            | Finding::EnvCredentialUnusable { .. }
            | Finding::StoredCredentialUnusable { .. }
            | Finding::ActiveExpired { .. } => Severity::Problem,
            Finding::Expiry(Expiry::Expired { .. }) => Severity::Problem,
            _ => Severity::Warning,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::PlaintextActive { path } => write!(
                f,
                "the credential is in a plaintext file ({path}); anyone who can read it as you can use it"
            ),
            Finding::PlaintextFileExists { path } => {
                write!(f, "a plaintext credential file exists: {}", path.display())
            }
            Finding::LooseHome { path, mode } => write!(
                f,
                "{} has mode {mode:04o}: others can list it; fix: chmod 700 {}",
                path.display(),
                path.display()
            ),
            Finding::EnvShadowsStored {
                variable,
                stored_in,
            } => write!(f, "{variable} shadows the credential stored in {stored_in}"),
            Finding::EnvShadowsOther {
                variable,
                used,
                stored,
                location,
            } => write!(
                f,
                "{variable} ({used}) is used, not the {stored} stored in {location}"
            ),
            Finding::StoredUnchecked { error } => {
                write!(f, "could not check the stored credential: {error}")
            }
            Finding::VariableShadowed { variable, by } => {
                write!(f, "{variable} is set but {by} takes precedence over it")
            }
            Finding::Expiry(e) => e.fmt(f),
            Finding::ShadowedCopy { backend, location } => write!(
                f,
                "the {backend} backend also holds a credential for this profile ({location}); it \
                 is not the one in use"
            ),
            Finding::AutoWithoutKeychain { home } => write!(
                f,
                "auto has no keychain here, so it stores credentials in a plaintext file under {}",
                home.display()
            ),
            Finding::MemorySelected => {
                f.write_str("the memory backend is selected: nothing is kept between runs")
            }
            Finding::VaultFailsUnselected { error } => {
                write!(f, "vault is configured but fails (it is not selected): {error}")
            }
            Finding::SealedFailsUnselected { error } => write!(
                f,
                "the sealed backend's key is configured but fails (it is not selected): {error}"
            ),
            Finding::SelectedFails { backend, error } => {
                write!(f, "the {backend} backend is selected but fails: {error}")
            }
            Finding::AutoFallbackFails { error } => {
                write!(f, "auto falls back to the file backend, which fails: {error}")
            }
            Finding::AutoKeychainFails { error } => write!(
                f,
                "auto uses the keychain, which is there but fails (auto never falls back to the \
                 file for that): {error}"
            ),
            Finding::VaultNotConfigured => f.write_str(
                "the vault backend is selected but not configured: set VAULT_ADDR (and \
                 VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID)",
            ),
            Finding::EnvCredentialUnusable { error } => {
                write!(f, "the environment credential is unusable: {error}")
            }
            Finding::StoredCredentialUnusable { error } => {
                write!(f, "the stored credential is unusable: {error}")
            }
            Finding::ActiveExpired { error } => f.write_str(error),
        }
    }
}

/// What `status` warns about for the active credential `resolved` (found
/// through `resolver` over `store`), at `now`.
pub fn status_findings(
    settings: &Settings,
    store: &dyn Store,
    resolver: &Resolver<'_>,
    resolved: Option<&Resolved>,
    now: i64,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(r) = resolved {
        match &r.source {
            Source::Stored(location) if location.kind == SourceKind::File => {
                findings.push(Finding::PlaintextActive {
                    path: location.detail.clone(),
                });
                findings.extend(loose_home(&settings.home));
            }
            // Encrypted: no plaintext warning, but the directory still counts.
            Source::Stored(location) if location.kind == SourceKind::Sealed => {
                findings.extend(loose_home(&settings.home));
            }
            Source::Env { variable, .. } => match store.load(&settings.profile) {
                Ok(Some(_)) => findings.push(Finding::EnvShadowsStored {
                    variable: variable.clone(),
                    stored_in: store.describe(&settings.profile).to_string(),
                }),
                Ok(None) => {}
                Err(e) => findings.push(Finding::StoredUnchecked {
                    error: e.to_string(),
                }),
            },
            Source::Stored(_) => {}
        }
    }
    findings.extend(shadowed_variables(resolver));
    if let Some(id) = resolved.and_then(|r| r.credential.agent_identity()) {
        findings.extend(expiry(id.claims(), now).map(Finding::Expiry));
    }
    findings
}

/// What a credential is, in words that name no secret.
fn what(c: &crate::Credential) -> String {
    match c.agent_identity() {
        Some(id) => format!(
            "agent identity of account {}",
            crate::text::shown(&id.claims().account_id)
        ),
        None => "API key".to_string(),
    }
}

/// The shadow guard: when `resolved` came from a variable and `store`
/// holds a credential of another kind or account for the profile (or
/// another API key), the finding that names both (never the secrets).
/// `Err` (with the reason) when the stored credential cannot be read or
/// parsed: the guard could not check, which a caller that denies must not
/// take for "nothing hidden".
pub fn env_shadow(
    store: &dyn Store,
    profile: &crate::profile::Profile,
    resolved: &Resolved,
) -> std::result::Result<Option<Finding>, String> {
    let Source::Env { variable, .. } = &resolved.source else {
        return Ok(None);
    };
    let found = match store.load(profile) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) if is_not_there(&e) => return Ok(None), // no such backend here: nothing hidden
        Err(e) => return Err(e.to_string()),
    };
    let stored = found
        .to_credential("the stored credential")
        .map_err(|e| e.to_string())?;
    let used = &resolved.credential;
    let other = match (used.agent_identity(), stored.agent_identity()) {
        (Some(a), Some(b)) => a.claims().account_id != b.claims().account_id,
        (None, None) => used.expose_token() != stored.expose_token(),
        _ => true,
    };
    Ok(other.then(|| Finding::EnvShadowsOther {
        variable: variable.clone(),
        used: match used.agent_identity() {
            Some(_) => format!("the {}", what(used)),
            None => format!("an {}", what(used)),
        },
        stored: what(&stored),
        location: found.location.detail.clone(),
    }))
}

/// The other places that hold a credential for the profile than the one
/// `resolved` came from (file and keychain; Vault when it is configured).
/// Places that cannot be read are left out: this is a warning, not a
/// check of each backend (that is [`checkup`]).
pub fn shadowed_copies(
    settings: &Settings,
    env: &dyn Environment,
    resolved: &Resolved,
) -> Vec<Finding> {
    let Source::Stored(active) = &resolved.source else {
        return Vec::new(); // env credentials: EnvShadowsStored says it
    };
    let mut places = vec![
        BackendKind::File,
        BackendKind::Keychain,
        BackendKind::Sealed,
    ];
    if env.is_set("VAULT_ADDR") || env.is_set("BAO_ADDR") {
        places.push(BackendKind::Vault);
    }
    let mut findings = Vec::new();
    for kind in places {
        let same = matches!(
            (kind, active.kind),
            (BackendKind::File, SourceKind::File)
                | (BackendKind::Keychain, SourceKind::Keychain)
                | (BackendKind::Vault, SourceKind::Vault)
                | (BackendKind::Sealed, SourceKind::Sealed)
        );
        if same {
            continue;
        }
        let Ok(store) = settings.open_plain(kind, env) else {
            continue;
        };
        if let Ok(Some(found)) = store.load(&settings.profile) {
            findings.push(Finding::ShadowedCopy {
                backend: kind.as_str(),
                location: found.location.detail,
            });
        }
    }
    findings
}

/// How the active credential is kept at rest, when it is sealed:
/// "encrypted at rest (age, N recipients, key from …)" (the recipients
/// counted in the file's header). `None` for other sources, or when the
/// sealed file cannot be read.
pub fn at_rest(settings: &Settings, env: &dyn Environment, resolved: &Resolved) -> Option<String> {
    let Source::Stored(location) = &resolved.source else {
        return None;
    };
    if location.kind != SourceKind::Sealed {
        return None;
    }
    let store = settings.sealed_store(env).ok()?;
    let protection = store.protection(&settings.profile).ok()??;
    Some(protection.to_string())
}

/// The sealed backend's probe for `doctor`: the key is read (file checks,
/// or a run of `systemd-creds decrypt`) and opens the profile's sealed file
/// if there is one.
fn sealed_probe(store: &SealedStore, profile: &crate::profile::Profile) -> Result<String, String> {
    let n = store.check_key().map_err(|e| e.to_string())?;
    let key = store
        .config()
        .key_source()
        .map(|k| k.to_string())
        .unwrap_or_default();
    let identities = if n == 1 {
        "1 identity".to_string()
    } else {
        format!("{n} identities")
    };
    match store.load(profile) {
        Ok(Some(_)) => {
            let how = store
                .protection(profile)
                .ok()
                .flatten()
                .map(|p| p.to_string())
                .unwrap_or_default();
            Ok(format!("{} opens: {how}", store.path(profile).display()))
        }
        Ok(None) => Ok(format!(
            "key from {key} ({identities}) is readable; no sealed file for this profile ({})",
            store.path(profile).display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Credential variables that are set but lose to another one.
fn shadowed_variables(resolver: &Resolver<'_>) -> impl Iterator<Item = Finding> {
    resolver
        .shadowed()
        .into_iter()
        .map(|s| Finding::VariableShadowed {
            variable: s.variable,
            by: s.by,
        })
}

/// A credential directory others can list (one others can write is
/// refused by the file backend itself).
fn loose_home(home: &Path) -> Option<Finding> {
    let meta = std::fs::metadata(home).ok()?;
    let own = credstore_platform::ownership(&meta);
    own.grants_group_or_other().then(|| Finding::LooseHome {
        path: home.to_path_buf(),
        mode: own.mode,
    })
}

/// How a backend answered `doctor`'s probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendState {
    /// It answers; `detail` says what (the platform's keychain, Vault's
    /// address and path).
    Answers {
        /// What answered.
        detail: String,
    },
    /// It works; `detail` says what was checked (the sealed backend: the
    /// key source, and the sealed file it opened).
    Ready {
        /// What was checked.
        detail: String,
    },
    /// The file backend holds a credential for the profile at `path`.
    HoldsCredential {
        /// The file.
        path: PathBuf,
    },
    /// The file backend works and holds nothing for the profile.
    Empty {
        /// Its directory.
        home: PathBuf,
    },
    /// It is not there (no keychain service, say).
    Missing {
        /// Why.
        reason: String,
    },
    /// It is there and fails.
    Failed {
        /// Why.
        error: String,
    },
    /// Not configured (Vault without an address).
    NotConfigured,
    /// Always there (memory).
    AlwaysThere,
}

impl BackendState {
    /// Whether it works.
    pub fn ok(&self) -> bool {
        matches!(
            self,
            BackendState::Answers { .. }
                | BackendState::Ready { .. }
                | BackendState::HoldsCredential { .. }
                | BackendState::Empty { .. }
                | BackendState::AlwaysThere
        )
    }
}

/// One backend's probe.
#[derive(Debug, Clone)]
pub struct BackendCheck {
    /// `keychain`, `file`, `vault`, `sealed`, `memory`.
    pub backend: &'static str,
    /// What it answered.
    pub state: BackendState,
    /// How long the probe took.
    pub took: Duration,
}

/// A configuration variable as `doctor` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// A setting whose value is not secret: shown, escaped, and said when
    /// it is not Unicode.
    Setting {
        /// Its name.
        name: String,
        /// Its value as shown.
        value: String,
    },
    /// A credential variable: only whether it is set.
    Credential {
        /// Its name.
        name: String,
        /// Set but empty (ignored).
        empty: bool,
    },
}

/// The active credential as `doctor` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    /// No credential anywhere.
    None,
    /// Could not be told: the source failed (the error is among the
    /// findings) or the selected backend cannot be read.
    Unknown {
        /// The error, when one was met.
        error: Option<String>,
    },
    /// Found.
    Found {
        /// Its kind.
        auth_mode: AuthMode,
        /// Where it came from ("environment: X wins", or the location).
        source: String,
    },
}

/// Everything `doctor` checks, as data.
#[derive(Debug, Clone)]
pub struct Checkup {
    /// The profile checked.
    pub profile: String,
    /// The selected backend.
    pub backend: BackendKind,
    /// Each backend's probe.
    pub backends: Vec<BackendCheck>,
    /// The configuration variables that are set.
    pub variables: Vec<Variable>,
    /// The active credential.
    pub active: Active,
    /// Warnings and problems, in the order found.
    pub findings: Vec<Finding>,
}

impl Checkup {
    /// The findings that are warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity() == Severity::Warning)
    }

    /// The findings that need fixing.
    pub fn problems(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity() == Severity::Problem)
    }

    /// No problem: the selected backend works and the active credential
    /// (if any) is usable.
    pub fn healthy(&self) -> bool {
        self.problems().next().is_none()
    }
}

/// A URL as it may be shown: a password or user in it (`https://u:p@h`)
/// and its query and fragment (`?token=…`) replaced by `…`. Other text
/// is returned as it is.
fn without_url_secrets(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let (scheme, rest) = value.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rfind('@') {
        Some(at) => format!("…@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after) = tail.split_at(path_end);
    let after = if after.is_empty() { "" } else { "?…" };
    format!("{scheme}{host}{path}{after}")
}

/// Standard variables whose values are not secret and are shown.
const SHOWN_STANDARD: [&str; 3] = ["VAULT_ADDR", "BAO_ADDR", "DBUS_SESSION_BUS_ADDRESS"];

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// Checks every backend (a missing keychain is found out in milliseconds,
/// a hanging one is bounded by its timeout), the configuration variables
/// and the active credential through `resolver` (which carries the
/// variable names, the JWKS, and whether the environment is used).
pub fn checkup(settings: &Settings, env: &dyn Environment, resolver: &Resolver<'_>) -> Checkup {
    let profile = &settings.profile;
    let mut findings = Vec::new();
    let mut backends = Vec::new();

    // keychain
    let keychain = KeychainStore::new(settings.keychain.clone());
    let (probe, took) = timed(|| keychain.probe());
    let keychain_ok = probe.is_ok();
    let keychain_missing = probe.as_ref().err().is_some_and(is_not_there);
    backends.push(BackendCheck {
        backend: "keychain",
        state: match &probe {
            Ok(()) => BackendState::Answers {
                detail: KeychainStore::platform_name().to_string(),
            },
            Err(e) if is_not_there(e) => BackendState::Missing {
                reason: e.to_string(),
            },
            Err(e) => BackendState::Failed {
                error: e.to_string(),
            },
        },
        took,
    });

    // file
    let file = settings.file_store();
    let (file_state, took) = timed(|| file.load(profile));
    let file_ok = file_state.is_ok();
    let file_holds = matches!(file_state, Ok(Some(_)));
    let file_path = file.path(profile);
    backends.push(BackendCheck {
        backend: "file",
        state: match &file_state {
            Ok(Some(_)) => BackendState::HoldsCredential {
                path: file_path.clone(),
            },
            Ok(None) => BackendState::Empty {
                home: settings.home.clone(),
            },
            Err(e) => BackendState::Failed {
                error: e.to_string(),
            },
        },
        took,
    });
    findings.extend(loose_home(&settings.home));

    // vault: probed only when configured.
    let vault_env = settings.environment(env);
    let vault_configured = vault_env.is_set("VAULT_ADDR") || vault_env.is_set("BAO_ADDR");
    let vault_state = if vault_configured {
        let (state, took) = timed(|| {
            VaultStore::from_env(&vault_env, &settings.names).and_then(|v| {
                v.load(profile)?;
                // The token's lease and policies (never the token).
                let token = match v.token_info() {
                    Ok(info) => format!("token {info}"),
                    Err(_) => "the token may not look itself up".into(),
                };
                Ok(format!("{}; {token}", v.describe(profile).detail))
            })
        });
        backends.push(BackendCheck {
            backend: "vault",
            state: match &state {
                Ok(detail) => BackendState::Answers {
                    detail: detail.clone(),
                },
                Err(e) => BackendState::Failed {
                    error: e.to_string(),
                },
            },
            took,
        });
        Some(state.map(|_| ()).map_err(|e| e.to_string()))
    } else {
        backends.push(BackendCheck {
            backend: "vault",
            state: BackendState::NotConfigured,
            took: Duration::ZERO,
        });
        None
    };
    // sealed: probed when its key is configured or it is selected (a
    // bad setting, such as a malformed recipient, is a failure either way).
    let sealed = settings.sealed_store(env);
    let (sealed_state, took) = timed(|| match &sealed {
        Err(e) => Some(Err(e.to_string())),
        Ok(store)
            if store.config().key_source().is_none() && settings.backend != BackendKind::Sealed =>
        {
            None
        }
        Ok(store) => Some(sealed_probe(store, profile)),
    });
    backends.push(BackendCheck {
        backend: "sealed",
        state: match &sealed_state {
            None => BackendState::NotConfigured,
            Some(Ok(detail)) => BackendState::Ready {
                detail: detail.clone(),
            },
            Some(Err(error)) => BackendState::Failed {
                error: error.clone(),
            },
        },
        took,
    });
    backends.push(BackendCheck {
        backend: "memory",
        state: BackendState::AlwaysThere,
        took: Duration::ZERO,
    });

    // Is the selected backend usable?
    match settings.backend {
        BackendKind::File => {
            if let Err(e) = &file_state {
                findings.push(Finding::SelectedFails {
                    backend: "file",
                    error: e.to_string(),
                });
            }
        }
        BackendKind::Keychain => {
            if let Err(e) = &probe {
                findings.push(Finding::SelectedFails {
                    backend: "keychain",
                    error: e.to_string(),
                });
            }
        }
        BackendKind::Auto => {
            if keychain_missing {
                findings.push(Finding::AutoWithoutKeychain {
                    home: settings.home.clone(),
                });
                if let Err(e) = &file_state {
                    findings.push(Finding::AutoFallbackFails {
                        error: e.to_string(),
                    });
                }
            } else if let Err(e) = &probe {
                findings.push(Finding::AutoKeychainFails {
                    error: e.to_string(),
                });
            }
        }
        BackendKind::Vault => match &vault_state {
            None => findings.push(Finding::VaultNotConfigured),
            Some(Err(e)) => findings.push(Finding::SelectedFails {
                backend: "vault",
                error: e.clone(),
            }),
            Some(Ok(())) => {}
        },
        BackendKind::Memory => findings.push(Finding::MemorySelected),
        BackendKind::Sealed => {
            if let Some(Err(e)) = &sealed_state {
                findings.push(Finding::SelectedFails {
                    backend: "sealed",
                    error: e.clone(),
                });
            }
        }
    }
    if let (Some(Err(e)), false) = (&sealed_state, settings.backend == BackendKind::Sealed) {
        findings.push(Finding::SealedFailsUnselected { error: e.clone() });
    }
    if let (Some(Err(e)), false) = (&vault_state, settings.backend == BackendKind::Vault) {
        findings.push(Finding::VaultFailsUnselected { error: e.clone() });
    }
    if file_holds {
        findings.push(Finding::PlaintextFileExists {
            path: file_path.clone(),
        });
    }

    // environment
    let n = &settings.names;
    let mut shown = vec![
        n.backend(),
        n.profile(),
        n.home(),
        n.keychain_timeout(),
        n.jwks(),
        n.http_timeout(),
        n.vault_mount(),
        n.vault_prefix(),
        n.authapi_base_url(),
        n.seal(),
        n.seal_identity_file(),
        n.seal_credential(),
        n.seal_recipients(),
    ];
    shown.extend(SHOWN_STANDARD.iter().map(|s| s.to_string()));
    let mut variables = Vec::new();
    for name in shown {
        if let Some(v) = env.var_os(&name) {
            let value = match v.to_str() {
                Some(s) => crate::text::shown(&without_url_secrets(s.trim())).into_owned(),
                None => format!("{} (not Unicode)", crate::text::shown(&v.to_string_lossy())),
            };
            variables.push(Variable::Setting { name, value });
        }
    }
    for name in n.credential_variables() {
        if let Some(v) = env.var_os(&name) {
            let empty = credstore_platform::trim_os_str(&v).is_empty();
            variables.push(Variable::Credential { name, empty });
        }
    }

    // The active credential: which source wins, and is it usable?
    let selected_readable = match settings.backend {
        BackendKind::File => file_ok,
        BackendKind::Keychain => keychain_ok,
        // auto skips a keychain that is not there, not a failing one.
        BackendKind::Auto => (keychain_ok || keychain_missing) && file_ok,
        BackendKind::Memory => true,
        BackendKind::Vault => matches!(vault_state, Some(Ok(()))),
        BackendKind::Sealed => matches!(sealed_state, Some(Ok(_))),
    };
    let active = match resolver.from_env() {
        Err(e) => {
            findings.push(Finding::EnvCredentialUnusable {
                error: e.to_string(),
            });
            Active::Unknown {
                error: Some(e.to_string()),
            }
        }
        Ok(Some(r)) => found(&r, &mut findings),
        Ok(None) if !selected_readable => Active::Unknown { error: None },
        Ok(None) => match stored_credential(settings, env, resolver, keychain_ok) {
            Ok(Some(r)) => found(&r, &mut findings),
            Ok(None) => Active::None,
            Err(e) => {
                findings.push(Finding::StoredCredentialUnusable {
                    error: e.to_string(),
                });
                Active::Unknown {
                    error: Some(e.to_string()),
                }
            }
        },
    };
    findings.extend(shadowed_variables(resolver));

    Checkup {
        profile: profile.to_string(),
        backend: settings.backend,
        backends,
        variables,
        active,
        findings,
    }
}

/// The active credential found: its findings (expiry, plaintext file).
fn found(r: &Resolved, findings: &mut Vec<Finding>) -> Active {
    let now = unix_now();
    if let Err(e) = r.credential.ensure_not_expired(now, &r.source.describe()) {
        findings.push(Finding::ActiveExpired {
            error: e.to_string(),
        });
    } else if let Some(e @ (Expiry::Soon { .. } | Expiry::InLeeway { .. })) = r
        .credential
        .agent_identity()
        .and_then(|id| expiry(id.claims(), now))
    {
        findings.push(Finding::Expiry(e));
    }
    if let Source::Stored(l) = &r.source {
        if l.kind == SourceKind::File {
            findings.push(Finding::PlaintextActive {
                path: l.detail.clone(),
            });
        }
    }
    let source = match &r.source {
        Source::Env { .. } => format!("environment: {} wins", r.source.describe()),
        Source::Stored(l) => format!("{} {}", l.kind.as_str(), l.detail),
    };
    Active::Found {
        auth_mode: r.credential.auth_mode(),
        source,
    }
}

/// The stored credential in the selected backend, validated. Backends
/// already found failing are not asked again (no second timeout).
fn stored_credential(
    settings: &Settings,
    env: &dyn Environment,
    resolver: &Resolver<'_>,
    keychain_ok: bool,
) -> crate::Result<Option<Resolved>> {
    let store: Box<dyn Store> = match settings.backend {
        BackendKind::Auto if !keychain_ok => Box::new(settings.file_store()),
        BackendKind::Auto => Box::new(AutoStore::new(
            Box::new(KeychainStore::new(settings.keychain.clone())),
            settings.file_store(),
            Box::new(|_| {}),
        )),
        _ => settings.open(env, Box::new(|_| {}))?,
    };
    resolver
        .clone()
        .without_env()
        .resolve(store.as_ref(), &settings.profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            agent_runtime_id: "rt".into(),
            account_id: "acct".into(),
            chatgpt_user_id: "user".into(),
            email: "a@example.com".into(),
            plan_type: "plus".into(),
            fedramp: false,
            issued_at: exp - 86400,
            expires_at: exp,
            issuer: None,
            audience: None,
        }
    }

    #[test]
    fn expiry_bands() {
        let now = 1_000_000;
        assert_eq!(expiry(&claims(now + SOON_SECS + 1), now), None);
        assert_eq!(
            expiry(&claims(now + 3600), now),
            Some(Expiry::Soon {
                at: now + 3600,
                left: 3600
            })
        );
        assert_eq!(
            expiry(&claims(now - 30), now),
            Some(Expiry::InLeeway {
                at: now - 30,
                ago: 30
            })
        );
        assert_eq!(
            expiry(&claims(now - 61), now),
            Some(Expiry::Expired { at: now - 61 })
        );
        let e = Finding::Expiry(Expiry::Expired { at: now - 61 });
        assert_eq!(e.severity(), Severity::Problem);
        assert!(!e.to_string().contains("--"), "{e}");
    }

    #[test]
    fn urls_are_shown_without_their_secrets() {
        for (url, shown) in [
            ("https://vault:8200", "https://vault:8200"),
            (
                "https://u:hunter2secret@vault:8200/x",
                "https://…@vault:8200/x",
            ),
            (
                "http://127.0.0.1:8200?token=s.abcdef",
                "http://127.0.0.1:8200?…",
            ),
            ("https://h/p#frag", "https://h/p?…"),
            ("unix:path=/run/user/0/bus", "unix:path=/run/user/0/bus"),
            ("secret", "secret"),
        ] {
            assert_eq!(without_url_secrets(url), shown);
        }
    }

    #[test]
    fn no_finding_names_a_flag_or_command() {
        let all = [
            Finding::PlaintextActive { path: "p".into() },
            Finding::PlaintextFileExists { path: "p".into() },
            Finding::AutoWithoutKeychain { home: "h".into() },
            Finding::MemorySelected,
            Finding::VaultNotConfigured,
            Finding::SelectedFails {
                backend: "file",
                error: "e".into(),
            },
        ];
        for f in all {
            let text = f.to_string();
            assert!(
                !text.contains("--") && !text.contains("credstore "),
                "{text}"
            );
        }
    }
}
