//! The Vault / OpenBao backend (SPEC §4.4): one KV version 2 secret per
//! profile at `<mount>/data/<prefix>/<profile>`, whose data is the stored
//! form of SPEC §2.
//!
//! - [`config`]: where the server is and where credentials live, read like
//!   the Vault CLI reads its environment;
//! - `auth/`: how a token is obtained, one file per method;
//! - `client`: HTTP to one or more addresses, retried with backoff and
//!   failed over inside one deadline per operation, bounded zeroized
//!   answers, an error of its own for each failure;
//! - this file: KV v2 reads, check-and-set writes, deletes;
//! - `errors`: what Vault's answers mean, in credstore's words (a server's
//!   own text is never printed: it could echo a secret).
//!
//! Writes use check-and-set against the version a change first read, so
//! two writers cannot silently overwrite each other, and they work on a
//! mount with `cas_required`. A write whose answer is lost is never sent
//! twice blindly: the version it would have made is read back first. The Vault token, the AppRole ids and the
//! credential never appear in an error or in `Debug` output.
//!
//! A token needs this policy (for the default mount and prefix; README's
//! fleet section has the per-machine template):
//!
//! ```hcl
//! path "secret/data/credstore/*"     { capabilities = ["create", "read", "update"] }
//! path "secret/metadata/credstore/*" { capabilities = ["read", "delete"] }
//! ```

mod auth;
mod client;
mod config;
mod errors;

pub use config::VaultConfig;

pub(crate) use config::{parse_addrs, parse_vault_path};

use super::{Found, Location, Revision, SourceKind, Store};
use crate::credential::claim::describe_json_error;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::stored::StoredCredential;
use client::{Answer, Client, Deadline, Failure, Method, Retry};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub(crate) const BACKEND: &str = "vault";

/// A KV v2 store on a Vault or OpenBao server.
///
/// ```no_run
/// use credstore::env::{EnvNames, ProcessEnv};
/// use credstore::profile::Profile;
/// use credstore::store::{Store, VaultStore};
///
/// let store = VaultStore::from_env(&ProcessEnv, &EnvNames::default())?;
/// let found = store.load(&Profile::default_profile())?;
/// # Ok::<(), credstore::Error>(())
/// ```
pub struct VaultStore {
    config: VaultConfig,
    client: Client,
    /// The token in use and its lease; fetched (or copied) on first use.
    token: Mutex<Option<Held>>,
    /// Set once the mount was seen to be KV v2.
    mount_checked: Mutex<bool>,
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DataAnswer<'a> {
    #[serde(borrow)]
    data: Option<DataAnswerData<'a>>,
}

#[derive(Deserialize)]
struct DataAnswerData<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    metadata: Option<VersionInfo>,
}

#[derive(Deserialize)]
struct VersionInfo {
    version: Option<u64>,
}

#[derive(Deserialize)]
struct WriteAnswer {
    data: Option<VersionInfo>,
}

#[derive(Deserialize)]
struct MountAnswer {
    data: Option<MountInfo>,
}

#[derive(Deserialize)]
struct MountInfo {
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    options: Option<MountOptions>,
}

#[derive(Deserialize)]
struct MountOptions {
    version: Option<String>,
}

/// A read of the profile's secret: its document (if a live version holds
/// one) and its current version (`0` when never written).
struct Snapshot {
    document: Option<StoredCredential>,
    version: u64,
}

/// What a read-back says about a write whose outcome was unknown.
enum Landed {
    /// The version it would have made holds this credential.
    Yes(u64),
    /// That version does not exist: the write was not applied.
    No,
    /// That version holds something else, or was deleted: another writer.
    Other,
}

/// What Vault says about the token in use ([`VaultStore::token_info`]).
/// Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo {
    /// Where the token comes from (`VAULT_TOKEN`, a JWT login at …).
    pub source: String,
    /// The lease left; `None` for a token that never expires (root).
    pub ttl: Option<Duration>,
    /// Whether the token can be renewed.
    pub renewable: bool,
    /// Its policies.
    pub policies: Vec<String>,
}

impl std::fmt::Display for TokenInfo {
    /// `from VAULT_TOKEN, expires in 9m 58s (renewable), policies default, machine`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "from {}, ", self.source)?;
        match self.ttl {
            None => write!(f, "never expires")?,
            Some(t) => {
                let s = t.as_secs();
                let left = match s {
                    0..=119 => format!("{s}s"),
                    120..=7199 => format!("{}m {}s", s / 60, s % 60),
                    7200..=172_799 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
                    _ => format!("{} days", s / 86400),
                };
                write!(f, "expires in {left}")?;
                if self.renewable {
                    write!(f, " (renewable)")?;
                }
            }
        }
        if self.policies.is_empty() {
            write!(f, ", no policies")
        } else {
            write!(f, ", policies {}", self.policies.join(", "))
        }
    }
}

/// The token in use and its lease, as Vault handed it out.
struct Held {
    token: Arc<SecretString>,
    got: Instant,
    ttl: Option<Duration>,
    renewable: bool,
}

enum Freshness {
    Good,
    /// A renewable token in the last third of its lease.
    Renew,
    /// Expired, or about to (within a tenth of the lease, at most 5 s).
    Expired,
}

impl Held {
    fn new(token: Arc<SecretString>, ttl: Option<Duration>, renewable: bool) -> Held {
        Held {
            token,
            got: Instant::now(),
            ttl,
            renewable,
        }
    }

    fn freshness(&self) -> Freshness {
        let Some(ttl) = self.ttl else {
            return Freshness::Good;
        };
        let age = self.got.elapsed();
        // A margin for the request about to be made: a tenth of the lease,
        // at most 5 s.
        let margin = (ttl / 10).min(Duration::from_secs(5));
        if age + margin >= ttl {
            Freshness::Expired
        } else if self.renewable && age >= ttl / 3 * 2 {
            Freshness::Renew
        } else {
            Freshness::Good
        }
    }
}

impl VaultStore {
    /// A store for `config`. Reads the `VAULT_CACERT` file now, so a bad
    /// CA file is reported before any request.
    pub fn new(config: VaultConfig) -> Result<VaultStore> {
        let client = Client::new(&config)?;
        Ok(VaultStore {
            config,
            client,
            token: Mutex::new(None),
            mount_checked: Mutex::new(false),
        })
    }

    /// [`VaultConfig::from_env`] then [`VaultStore::new`].
    pub fn from_env(
        env: &dyn crate::env::Environment,
        names: &crate::env::EnvNames,
    ) -> Result<VaultStore> {
        VaultStore::new(VaultConfig::from_env(env, names)?)
    }

    /// The configuration in use.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The deadline of one operation: every request, retry, fail-over and
    /// login inside it ends within `{PREFIX}_HTTP_TIMEOUT`.
    fn deadline(&self) -> Deadline {
        Deadline::after(self.config.timeout)
    }

    /// The current version of the profile's secret: `0` when it has never
    /// been written (or its metadata was deleted). A soft-deleted latest
    /// version still counts. This is the value check-and-set compares.
    pub fn current_version(&self, profile: &Profile) -> Result<u64> {
        self.snapshot(&self.deadline(), profile).map(|s| s.version)
    }

    /// One read of the data path: the document and the version.
    fn snapshot(&self, dl: &Deadline, profile: &Profile) -> Result<Snapshot> {
        let path = self.data_path(profile);
        let answer = self.authed(dl, Retry::Idempotent, Method::Get, &path, None)?;
        self.parse_snapshot(profile, &path, &answer)
    }

    fn parse_snapshot(&self, profile: &Profile, path: &str, answer: &Answer) -> Result<Snapshot> {
        let parsed: DataAnswer<'_> = match answer.status {
            200 => {
                serde_json::from_slice(&answer.body).map_err(|e| self.bad_answer(profile, &e))?
            }
            404 if !answer.is_missing_mount() => {
                // A 404 for a deleted latest version still carries metadata.
                match serde_json::from_slice(&answer.body) {
                    Ok(p) => p,
                    Err(_) => {
                        return Ok(Snapshot {
                            document: None,
                            version: 0,
                        })
                    }
                }
            }
            _ => {
                return Err(self.client.failure(
                    answer,
                    "read",
                    path,
                    Some(&self.config.auth_source()),
                ))
            }
        };
        let data = parsed.data;
        let version = data
            .as_ref()
            .and_then(|d| d.metadata.as_ref())
            .and_then(|m| m.version)
            .unwrap_or(0);
        let document = match data.and_then(|d| d.data) {
            // A version that was deleted or destroyed.
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(raw) if answer.status == 200 => Some(StoredCredential::from_document(
                raw.get().as_bytes(),
                &self.location_text(profile),
            )?),
            Some(_) => None,
        };
        Ok(Snapshot { document, version })
    }

    /// Writes the credential only if the secret's current version is still
    /// `expected` (`0`: only if nothing was ever stored). Returns the new
    /// version. When another writer got there first this is an error
    /// (exit 4) and nothing was overwritten.
    ///
    /// When a write fails so that Vault may or may not have applied it (a
    /// connection that broke, a 500/502/504, no answer in time), credstore
    /// reads version `expected + 1` back: holding this credential, the
    /// write happened (success); holding another, another writer won (a
    /// conflict); not there, the write is sent again. A write is never
    /// reported done unless Vault has it, never applied twice, and when
    /// the deadline ends before the outcome is known the error says so.
    pub fn save_with_cas(
        &self,
        profile: &Profile,
        credential: &StoredCredential,
        expected: u64,
    ) -> Result<u64> {
        self.cas_write(&self.deadline(), profile, credential, expected)
    }

    fn cas_write(
        &self,
        dl: &Deadline,
        profile: &Profile,
        credential: &StoredCredential,
        expected: u64,
    ) -> Result<u64> {
        self.check_mount(dl, profile)?;
        let path = self.data_path(profile);
        let body = write_body(&credential.to_document(), expected);
        // Set once an attempt may have been applied.
        let mut uncertain: Option<Error> = None;
        for round in 0..=client::ROUNDS {
            if round > 0 && !dl.pause(client::backoff(round)) {
                break;
            }
            let why = match self.authed(dl, Retry::UntilSent, Method::Post, &path, Some(&body)) {
                Ok(answer) => match answer.status {
                    200 => {
                        let parsed: WriteAnswer = serde_json::from_slice(&answer.body)
                            .map_err(|e| self.bad_answer(profile, &e))?;
                        return parsed.data.and_then(|d| d.version).ok_or_else(|| Error::Backend {
                            backend: BACKEND,
                            message: format!(
                                "Vault at {} accepted the write to {} but did not answer with a KV v2 version; check that {}/ is a KV version 2 mount",
                                self.client.addr_of(&answer), path, self.config.mount
                            ),
                        });
                    }
                    204 => return Err(Error::Backend {
                        backend: BACKEND,
                        message: format!(
                            "{}/ at {} answered like a KV version 1 mount, so the write went to the wrong path; enable versioning (`bao kv enable-versioning {}`) or point the mount variable at a KV v2 mount",
                            self.config.mount, self.client.addr_of(&answer), self.config.mount
                        ),
                    }),
                    400 if errors::mentions(&answer, "check-and-set") => {
                        let Some(why) = uncertain else {
                            return Err(self.conflict(profile, expected));
                        };
                        // An earlier attempt may be the write that is there:
                        // a standby can answer the read-back from a state a
                        // few milliseconds old, so "not there" is asked
                        // again before anything is concluded.
                        for tries in 0..3 {
                            if tries > 0 && !dl.pause(client::backoff(tries)) {
                                break;
                            }
                            match self.landed(dl, profile, credential, expected) {
                                Ok(Landed::Yes(v)) => return Ok(v),
                                Ok(Landed::Other) => return Err(self.conflict(profile, expected)),
                                Ok(Landed::No) => {}
                                Err(e) => return Err(self.unknown_outcome(profile, &e)),
                            }
                        }
                        return Err(self.unknown_outcome(profile, &why));
                    }
                    500 | 502 | 504 => self.client.failure(&answer, "write", &path, None),
                    _ => {
                        return Err(self.client.failure(
                            &answer,
                            "write",
                            &path,
                            Some(&self.config.auth_source()),
                        ))
                    }
                },
                Err(Failure {
                    error,
                    maybe_applied: true,
                }) => error,
                Err(f) => return Err(f.error),
            };
            // The write may have been applied: learn whether it was.
            uncertain = Some(why);
            match self.landed(dl, profile, credential, expected) {
                Ok(Landed::Yes(v)) => return Ok(v),
                Ok(Landed::Other) => return Err(self.conflict(profile, expected)),
                Ok(Landed::No) => {}
                Err(e) => return Err(self.unknown_outcome(profile, &e)),
            }
        }
        Err(match uncertain {
            Some(e) => self.unknown_outcome(profile, &e),
            None => self.client.timeout_error_for(&format!("POST {path}")),
        })
    }

    /// Whether version `expected + 1` of the secret is `credential`.
    fn landed(
        &self,
        dl: &Deadline,
        profile: &Profile,
        credential: &StoredCredential,
        expected: u64,
    ) -> Result<Landed> {
        let target = expected + 1;
        let path = format!("{}?version={target}", self.data_path(profile));
        let answer = self.authed(dl, Retry::Idempotent, Method::Get, &path, None)?;
        if answer.status == 404 && !answer.is_missing_mount() {
            // Never written, or written and deleted since (its metadata
            // then says so): only the first means "not applied".
            let shown = serde_json::from_slice::<DataAnswer<'_>>(&answer.body)
                .ok()
                .and_then(|a| a.data)
                .and_then(|d| d.metadata)
                .and_then(|m| m.version);
            return Ok(if shown == Some(target) {
                Landed::Other
            } else {
                Landed::No
            });
        }
        let snapshot = self.parse_snapshot(profile, &path, &answer)?;
        Ok(match snapshot.document {
            Some(doc) if snapshot.version == target && doc.same_as(credential) => {
                Landed::Yes(target)
            }
            _ => Landed::Other,
        })
    }

    fn unknown_outcome(&self, profile: &Profile, why: &Error) -> Error {
        Error::Backend {
            backend: BACKEND,
            message: format!(
                "the write to {} may or may not have been applied, and credstore could not read it back within {} s to find out ({why}); check what is stored now (`credstore status`) before writing again",
                self.describe(profile).detail,
                self.config.timeout.as_secs()
            ),
        }
    }

    fn conflict(&self, profile: &Profile, expected: u64) -> Error {
        Error::Backend {
            backend: BACKEND,
            message: format!(
                "check-and-set conflict at {}: another writer changed it after credstore read version {expected}, so nothing was overwritten; check what is stored now and run the command again if you still want to replace it",
                self.describe(profile).detail
            ),
        }
    }

    fn data_path(&self, profile: &Profile) -> String {
        format!(
            "{}/data/{}",
            self.config.mount,
            self.config.secret_path(profile)
        )
    }

    fn metadata_path(&self, profile: &Profile) -> String {
        format!(
            "{}/metadata/{}",
            self.config.mount,
            self.config.secret_path(profile)
        )
    }

    /// Checks once per store that the mount is KV version 2 and really is
    /// the mount holding the path, so a write never lands at the wrong
    /// path of a KV v1 mount. Inconclusive answers (a token that may not
    /// ask) leave the check to the write itself.
    fn check_mount(&self, dl: &Deadline, profile: &Profile) -> Result<()> {
        let mut checked = self.lock(&self.mount_checked)?;
        if *checked {
            return Ok(());
        }
        let path = format!(
            "sys/internal/ui/mounts/{}/{}",
            self.config.mount,
            self.config.secret_path(profile)
        );
        let answer = self.authed(dl, Retry::Idempotent, Method::Get, &path, None)?;
        if answer.status == 503 {
            return Err(self
                .client
                .failure(&answer, "inspect the mount of", &path, None));
        }
        if answer.status != 200 {
            return Ok(());
        }
        let Ok(MountAnswer { data: Some(info) }) = serde_json::from_slice(&answer.body) else {
            return Ok(());
        };
        let mount = &self.config.mount;
        if let Some(actual) = info.path.as_deref().map(|p| p.trim_end_matches('/')) {
            if actual != mount {
                return Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "{mount}/{} is inside the mount {actual}/, not {mount}/; set {}={actual} (and the rest of the path in {})",
                        self.config.secret_path(profile),
                        self.config.names.vault_mount(),
                        self.config.names.vault_prefix(),
                    ),
                });
            }
        }
        let kind = info.kind.as_deref().unwrap_or("unknown");
        let version = info.options.and_then(|o| o.version);
        if kind != "kv" {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{mount}/ at {} is a {:?} secrets engine, not KV version 2; set {} to a KV v2 mount or enable one (`bao secrets enable -path=NAME kv-v2`)",
                    self.client.addr_of(&answer),
                    crate::text::shown(kind),
                    self.config.names.vault_mount(),
                ),
            });
        }
        if version.as_deref() != Some("2") {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{mount}/ at {} is a KV version 1 mount; credstore needs KV version 2 (check-and-set, versions): upgrade it with `bao kv enable-versioning {mount}` or set {} to a KV v2 mount",
                    self.client.addr_of(&answer),
                    self.config.names.vault_mount(),
                ),
            });
        }
        *checked = true;
        Ok(())
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> Result<std::sync::MutexGuard<'a, T>> {
        m.lock().map_err(|_| Error::Backend {
            backend: BACKEND,
            message: "the store's lock was poisoned by a panic in another thread".into(),
        })
    }

    /// The token to send, logging in on first use, renewing a renewable
    /// login token in the last third of its lease and logging in again
    /// once it expired. The flag tells whether the token was fetched by
    /// this call.
    fn token(&self, dl: &Deadline) -> Result<(Arc<SecretString>, bool)> {
        let mut slot = self.lock(&self.token)?;
        if let Some(held) = slot.as_ref() {
            match held.freshness() {
                Freshness::Good => return Ok((Arc::clone(&held.token), false)),
                Freshness::Renew => {
                    if let Ok(renewed) = self.renew(dl, &held.token) {
                        let token = Arc::clone(&held.token);
                        *slot = Some(Held::new(token, renewed.0, renewed.1));
                        if let Some(h) = slot.as_ref() {
                            return Ok((Arc::clone(&h.token), false));
                        }
                    }
                    // Renewal refused or failed: log in again below.
                }
                Freshness::Expired => {}
            }
            if !self.config.auth.can_relogin() {
                if let Some(h) = slot.as_ref() {
                    return Ok((Arc::clone(&h.token), false));
                }
            }
        }
        let issued = self.config.auth.login(&self.client, dl)?;
        let token = Arc::new(issued.token);
        *slot = Some(Held::new(Arc::clone(&token), issued.ttl, issued.renewable));
        Ok((token, true))
    }

    /// `auth/token/renew-self`: the new lease and whether it stays renewable.
    fn renew(&self, dl: &Deadline, token: &SecretString) -> Result<(Option<Duration>, bool)> {
        let answer = self.client.request(
            dl,
            Retry::Idempotent,
            Method::Post,
            "auth/token/renew-self",
            None,
            Some(token),
        )?;
        if answer.status != 200 {
            return Err(self.client.failure(
                &answer,
                "renew the token at",
                "auth/token/renew-self",
                None,
            ));
        }
        match auth::issued(&answer.body, "the renewal answer") {
            Some(Ok(i)) => Ok((i.ttl, i.renewable)),
            _ => Err(Error::Backend {
                backend: BACKEND,
                message: "the token renewal answered without a lease".into(),
            }),
        }
    }

    /// A request with the token; a login token refused as expired is
    /// renewed by logging in again, once.
    fn authed(
        &self,
        dl: &Deadline,
        retry: Retry,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::result::Result<Answer, Failure> {
        let plain = |error| Failure {
            error,
            maybe_applied: false,
        };
        let (token, fresh) = self.token(dl).map_err(plain)?;
        let answer = self
            .client
            .request(dl, retry, method, path, body, Some(&token))?;
        if answer.status == 403 && !fresh && self.config.auth.can_relogin() {
            *self.lock(&self.token).map_err(plain)? = None;
            let (token, _) = self.token(dl).map_err(plain)?;
            return self
                .client
                .request(dl, retry, method, path, body, Some(&token));
        }
        Ok(answer)
    }

    /// What Vault says about the token in use (`auth/token/lookup-self`):
    /// its remaining lease and policies, for `status` and `doctor`. Never
    /// the token itself. Logs in first when the method is a login.
    pub fn token_info(&self) -> Result<TokenInfo> {
        #[derive(Deserialize)]
        struct Lookup {
            data: Option<LookupData>,
        }
        #[derive(Deserialize)]
        struct LookupData {
            #[serde(default)]
            ttl: u64,
            #[serde(default)]
            renewable: bool,
            #[serde(default)]
            policies: Vec<String>,
        }
        let dl = self.deadline();
        let path = "auth/token/lookup-self";
        let answer = self.authed(&dl, Retry::Idempotent, Method::Get, path, None)?;
        if answer.status != 200 {
            return Err(self.client.failure(
                &answer,
                "look up",
                path,
                Some(&self.config.auth_source()),
            ));
        }
        let data = serde_json::from_slice::<Lookup>(&answer.body)
            .ok()
            .and_then(|l| l.data)
            .ok_or_else(|| Error::Backend {
                backend: BACKEND,
                message: format!(
                    "Vault at {} answered the token lookup with something else; check that VAULT_ADDR points at Vault",
                    self.client.addr_of(&answer)
                ),
            })?;
        Ok(TokenInfo {
            source: self.config.auth_source(),
            ttl: (data.ttl > 0).then(|| Duration::from_secs(data.ttl)),
            renewable: data.renewable,
            policies: data
                .policies
                .into_iter()
                .map(|p| crate::text::shown(&p).to_string())
                .collect(),
        })
    }

    fn bad_answer(&self, profile: &Profile, e: &serde_json::Error) -> Error {
        Error::CorruptStore {
            location: self.location_text(profile),
            reason: format!(
                "Vault's answer {}, not a KV v2 secret (is VAULT_ADDR pointing at Vault?)",
                describe_json_error(e)
            ),
        }
    }

    fn location_text(&self, profile: &Profile) -> String {
        format!(
            "{} on {}",
            self.describe(profile).detail,
            self.client.addrs_text()
        )
    }
}

impl Store for VaultStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn load(&self, profile: &Profile) -> Result<Option<Found>> {
        Ok(self
            .snapshot(&self.deadline(), profile)?
            .document
            .map(|credential| Found {
                credential,
                location: self.describe(profile),
            }))
    }

    fn save(&self, profile: &Profile, credential: &StoredCredential) -> Result<Location> {
        let dl = self.deadline();
        self.check_mount(&dl, profile)?;
        let version = self.snapshot(&dl, profile)?.version;
        self.cas_write(&dl, profile, credential, version)?;
        Ok(self.describe(profile))
    }

    fn revision(&self, profile: &Profile) -> Result<Revision> {
        self.current_version(profile).map(Revision::Version)
    }

    fn save_if(
        &self,
        profile: &Profile,
        credential: &StoredCredential,
        expected: Revision,
    ) -> Result<Location> {
        match expected {
            Revision::Version(v) => {
                self.save_with_cas(profile, credential, v)?;
                Ok(self.describe(profile))
            }
            Revision::Untracked => self.save(profile, credential),
        }
    }

    /// The profiles under the prefix (a KV v2 LIST of its metadata); `None`
    /// when the token may not list there (the documented policy does not
    /// grant `list`), so each name is asked for instead.
    fn profiles(&self) -> Result<Option<Vec<Profile>>> {
        #[derive(Deserialize)]
        struct ListAnswer {
            data: ListData,
        }
        #[derive(Deserialize)]
        struct ListData {
            #[serde(default)]
            keys: Vec<String>,
        }
        let path = format!("{}/metadata/{}", self.config.mount, self.config.prefix());
        let answer = self.authed(
            &self.deadline(),
            Retry::Idempotent,
            Method::Get,
            &format!("{path}?list=true"),
            None,
        )?;
        match answer.status {
            200 => {
                let parsed: ListAnswer =
                    serde_json::from_slice(&answer.body).map_err(|e| Error::CorruptStore {
                        location: format!("vault {}/{path}", self.client.addr_of(&answer)),
                        reason: format!(
                            "the list answer is not what KV v2 sends ({})",
                            describe_json_error(&e)
                        ),
                    })?;
                // Folders (`name/`) are not profiles; profile_list drops them.
                Ok(Some(super::profile_list(parsed.data.keys)))
            }
            404 if !answer.is_missing_mount() => Ok(Some(Vec::new())),
            403 => Ok(None),
            _ => Err(self
                .client
                .failure(&answer, "list", &path, Some(&self.config.auth_source()))),
        }
    }

    fn delete(&self, profile: &Profile) -> Result<Vec<Location>> {
        let dl = self.deadline();
        let path = self.metadata_path(profile);
        let answer = self.authed(&dl, Retry::Idempotent, Method::Get, &path, None)?;
        match answer.status {
            200 => {}
            404 if !answer.is_missing_mount() => return Ok(Vec::new()),
            _ => {
                return Err(self.client.failure(
                    &answer,
                    "read",
                    &path,
                    Some(&self.config.auth_source()),
                ))
            }
        }
        let answer = self.authed(&dl, Retry::Idempotent, Method::Delete, &path, None)?;
        match answer.status {
            200 | 204 => Ok(vec![self.describe(profile)]),
            404 if !answer.is_missing_mount() => Ok(Vec::new()),
            _ => {
                Err(self
                    .client
                    .failure(&answer, "delete", &path, Some(&self.config.auth_source())))
            }
        }
    }

    /// Deletes only if the version is still `expected`: a credential
    /// another writer stored since is kept (a conflict, exit 4). Vault has
    /// no check-and-set for deletes, so this narrows the window to one
    /// round trip rather than closing it.
    fn delete_if(&self, profile: &Profile, expected: Revision) -> Result<Vec<Location>> {
        if let Revision::Version(v) = expected {
            if self.current_version(profile)? != v {
                return Err(self.conflict(profile, v));
            }
        }
        self.delete(profile)
    }

    fn describe(&self, profile: &Profile) -> Location {
        Location {
            kind: SourceKind::Vault,
            detail: format!("{}/{}", self.config.mount, self.config.secret_path(profile)),
        }
    }
}

/// `{"options":{"cas":N},"data":<document>}` in one exact-size buffer.
fn write_body(document: &[u8], cas: u64) -> Zeroizing<Vec<u8>> {
    let head = format!("{{\"options\":{{\"cas\":{cas}}},\"data\":");
    let mut out = Zeroizing::new(Vec::with_capacity(head.len() + document.len() + 1));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(document);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{EnvNames, MapEnv};

    fn base() -> MapEnv {
        MapEnv::new()
            .with("VAULT_ADDR", "http://127.0.0.1:8200")
            .with("VAULT_TOKEN", "s.tok-SECRET-1234")
    }

    #[test]
    fn paths_and_describe() {
        let s = VaultStore::from_env(&base(), &EnvNames::default()).unwrap();
        let p = Profile::new("work").unwrap();
        assert_eq!(s.describe(&p).detail, "secret/credstore/work");
        assert_eq!(s.describe(&p).kind, SourceKind::Vault);
        assert_eq!(s.data_path(&p), "secret/data/credstore/work");
        assert_eq!(s.metadata_path(&p), "secret/metadata/credstore/work");
        let env = base()
            .with("CREDSTORE_VAULT_MOUNT", "kv/team")
            .with("CREDSTORE_VAULT_PREFIX", "agents/prod");
        let s = VaultStore::from_env(&env, &EnvNames::default()).unwrap();
        assert_eq!(
            s.data_path(&Profile::default_profile()),
            "kv/team/data/agents/prod/default"
        );
    }

    #[test]
    fn approle_and_token_file_precedence() {
        let names = EnvNames::default();
        let approle = MapEnv::new()
            .with("VAULT_ADDR", "http://127.0.0.1:1")
            .with("VAULT_ROLE_ID", "role-HIDDEN-1")
            .with("VAULT_SECRET_ID", "sid-HIDDEN-2");
        let c = VaultConfig::from_env(&approle, &names).unwrap();
        assert!(c.auth_source().contains("AppRole"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("HIDDEN"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        let c =
            VaultConfig::from_env(&approle.clone().with("VAULT_TOKEN", "t-abcd"), &names).unwrap();
        assert_eq!(c.auth_source(), "VAULT_TOKEN");
        assert_eq!(
            VaultConfig::from_env(
                &MapEnv::new()
                    .with("VAULT_ADDR", "http://127.0.0.1:1")
                    .with("VAULT_ROLE_ID", "r"),
                &names
            )
            .unwrap_err()
            .exit_code(),
            2
        );

        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".vault-token"), "s.file-SECRET-9\n").unwrap();
        let env = MapEnv::new()
            .with("VAULT_ADDR", "http://127.0.0.1:1")
            .with("HOME", home.path());
        let c = VaultConfig::from_env(&env, &names).unwrap();
        assert_eq!(c.auth_source(), "~/.vault-token");
        assert!(!format!("{c:?}").contains("SECRET"));
        let c = VaultConfig::from_env(
            &env.with("VAULT_ROLE_ID", "r-abcd")
                .with("VAULT_SECRET_ID", "s-abcd"),
            &names,
        )
        .unwrap();
        assert!(c.auth_source().contains("AppRole"));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_token_file_is_refused_not_waited_on() {
        let home = tempfile::tempdir().unwrap();
        let fifo = home.path().join(".vault-token");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let env = MapEnv::new()
            .with("VAULT_ADDR", "http://127.0.0.1:1")
            .with("HOME", home.path());
        let start = std::time::Instant::now();
        let e = VaultConfig::from_env(&env, &EnvNames::default()).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn bad_ca_file_is_reported_before_any_request() {
        let names = EnvNames::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let env = base().with("VAULT_CACERT", &path);
        let e = VaultStore::from_env(&env, &names).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("ca.pem"), "{e}");
        let env = base().with("VAULT_CACERT", "/nonexistent/ca.pem");
        assert!(VaultStore::from_env(&env, &names)
            .unwrap_err()
            .to_string()
            .contains("cannot be opened"));
    }

    #[test]
    fn write_body_is_the_kv2_shape() {
        let body = write_body(b"{\"api_key\":\"k\"}\n", 7);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["options"]["cas"], 7);
        assert_eq!(v["data"]["api_key"], "k");
        assert_eq!(body.len(), body.capacity());
    }
}
