//! Every stored credential this machine can reach, for `credstore
//! profiles` (and `status --all`, `logout --all`): each profile in each
//! backend — the file backend of the home, the keychain when there is one,
//! Vault when it is configured, the sealed files when there is a key or a
//! file — with which of the copies plain commands
//! read. Reads stored documents, never an environment credential.

use super::{BackendKind, Found, Settings, Store};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::store::{is_not_there, KeychainStore, VaultConfig, VaultStore};

/// One profile's credential in one backend.
#[derive(Debug)]
pub struct Held {
    /// The profile.
    pub profile: Profile,
    /// The plain backend that holds it (`file`, `keychain`, `vault`).
    pub backend: BackendKind,
    /// What was read, or why it could not be (a corrupt document, a
    /// refused file: the entry is listed, with the error).
    pub found: Result<Found>,
    /// Whether plain commands for this profile (no `--backend`) read this
    /// copy: the profile's configured backend, or `auto`'s first hit.
    pub in_use: bool,
}

/// A backend that could not be listed or read.
#[derive(Debug)]
pub struct Unreachable {
    /// The backend.
    pub backend: BackendKind,
    /// Why.
    pub error: Error,
}

/// What [`inventory`] found.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Every credential found, by profile name, then in the order file,
    /// keychain, vault, sealed.
    pub held: Vec<Held>,
    /// Backends that failed (a keychain that is not there at all, or Vault
    /// when it is not configured, is not a failure and is not listed).
    pub unreachable: Vec<Unreachable>,
    /// The backends that answered, and where (for "nothing in …").
    pub searched: Vec<(BackendKind, String)>,
}

impl Inventory {
    /// The backends searched, for a message: `file /home/…/credstore and
    /// keychain credstore/…`.
    pub fn searched_text(&self) -> String {
        let parts: Vec<String> = self
            .searched
            .iter()
            .map(|(k, place)| match k {
                BackendKind::File => format!("file {place}"),
                k => k.as_str().to_string(),
            })
            .collect();
        parts.join(", ")
    }

    /// The distinct profiles that hold something, sorted.
    pub fn profiles(&self) -> Vec<Profile> {
        super::profile_list(self.held.iter().map(|h| h.profile.as_str()))
    }
}

/// Lists every stored credential `settings`' home, keychain and Vault
/// hold. With `only` set, just that backend (`auto` meaning keychain and
/// file). Backends that cannot list (see [`Store::profiles`]) are asked
/// for the names the others hold, the config file names and the
/// selected profile.
pub fn inventory(
    settings: &Settings,
    env: &dyn Environment,
    only: Option<BackendKind>,
) -> Inventory {
    let wanted = |k: BackendKind| match only {
        None => true,
        Some(BackendKind::Auto) => matches!(k, BackendKind::File | BackendKind::Keychain),
        Some(o) => o == k,
    };
    let mut inv = Inventory::default();
    let mut stores: Vec<(BackendKind, Box<dyn Store>)> = Vec::new();
    if wanted(BackendKind::File) {
        stores.push((BackendKind::File, Box::new(settings.file_store())));
    }
    if wanted(BackendKind::Keychain) {
        stores.push((
            BackendKind::Keychain,
            Box::new(KeychainStore::new(settings.keychain.clone())),
        ));
    }
    if wanted(BackendKind::Vault) {
        // Vault only when it is configured at all; a configuration that
        // is there but wrong is a failure to report.
        let configured = only == Some(BackendKind::Vault)
            || settings.remembered.vault_addr.is_some()
            || ["VAULT_ADDR", "BAO_ADDR"]
                .iter()
                .any(|v| env.text(v).ok().flatten().is_some());
        if configured {
            let env = settings.environment(env);
            match VaultConfig::from_env(&env, &settings.names).and_then(VaultStore::new) {
                Ok(store) => stores.push((BackendKind::Vault, Box::new(store))),
                Err(error) => inv.unreachable.push(Unreachable {
                    backend: BackendKind::Vault,
                    error,
                }),
            }
        }
    }

    // The sealed backend when it has a key, or files (which are then
    // listed with the error that says how to open them).
    if wanted(BackendKind::Sealed) {
        match settings.sealed_store(env) {
            Ok(store) => {
                let has_files = store
                    .profiles()
                    .is_ok_and(|p| p.is_some_and(|p| !p.is_empty()));
                if store.config().key_source().is_some() || has_files {
                    stores.push((BackendKind::Sealed, Box::new(store)));
                }
            }
            Err(error) => inv.unreachable.push(Unreachable {
                backend: BackendKind::Sealed,
                error,
            }),
        }
    }

    // First the names each backend lists; then the ones that cannot list
    // are asked for every name seen anywhere.
    let mut listed: Vec<(BackendKind, &dyn Store, Option<Vec<Profile>>)> = Vec::new();
    for (kind, store) in &stores {
        match store.profiles() {
            Ok(names) => {
                let place = match kind {
                    BackendKind::File => settings.home.display().to_string(),
                    _ => store.describe(&settings.profile).detail,
                };
                inv.searched.push((*kind, place));
                listed.push((*kind, store.as_ref(), names));
            }
            Err(e) if *kind == BackendKind::Keychain && is_not_there(&e) => {}
            Err(error) => inv.unreachable.push(Unreachable {
                backend: *kind,
                error,
            }),
        }
    }
    let mut candidates: Vec<String> = listed
        .iter()
        .filter_map(|(_, _, n)| n.as_ref())
        .flatten()
        .map(|p| p.to_string())
        .collect();
    candidates.push(settings.profile.to_string());
    candidates.push(Profile::DEFAULT.to_string());
    if let Ok(config) = settings.config_file().load() {
        candidates.extend(config.profiles.keys().cloned());
        candidates.extend(config.rules.iter().map(|r| r.profile.clone()));
    }
    let candidates = super::profile_list(candidates);

    for (kind, store, names) in listed {
        let (names, asked) = match names {
            Some(n) => (n, false),
            None => (candidates.clone(), true),
        };
        for profile in names {
            match store.load(&profile) {
                Ok(Some(found)) => inv.held.push(Held {
                    profile,
                    backend: kind,
                    found: Ok(found),
                    in_use: false,
                }),
                // Listed, then gone (or asked and not there).
                Ok(None) => {}
                Err(e) if asked && kind == BackendKind::Keychain && is_not_there(&e) => break,
                Err(e) => inv.held.push(Held {
                    profile,
                    backend: kind,
                    found: Err(e),
                    in_use: false,
                }),
            }
        }
    }
    inv.held.sort_by(|a, b| {
        (a.profile.as_str(), order(a.backend)).cmp(&(b.profile.as_str(), order(b.backend)))
    });
    mark_in_use(settings, &mut inv.held);
    inv
}

fn order(kind: BackendKind) -> u8 {
    match kind {
        BackendKind::File => 0,
        BackendKind::Keychain => 1,
        BackendKind::Vault => 2,
        _ => 3,
    }
}

/// Which copy each profile's plain commands read: the backend a flag or
/// the environment chose for everyone, else the profile's own in the
/// config file, else `auto` (the keychain's copy, then the file's).
fn mark_in_use(settings: &Settings, held: &mut [Held]) {
    use super::ChosenBy;
    let config = settings.config_file();
    let mut i = 0;
    while i < held.len() {
        let profile = held[i].profile.clone();
        let end = i + held[i..]
            .iter()
            .take_while(|h| h.profile == profile)
            .count();
        let backend = match settings.backend_chosen_by {
            ChosenBy::Flag | ChosenBy::Env => settings.backend,
            _ => config
                .backend(&profile)
                .ok()
                .flatten()
                .unwrap_or(BackendKind::Auto),
        };
        let group = &mut held[i..end];
        let pick = match backend {
            BackendKind::Auto => group
                .iter()
                .position(|h| h.backend == BackendKind::Keychain)
                .or_else(|| group.iter().position(|h| h.backend == BackendKind::File)),
            kind => group.iter().position(|h| h.backend == kind),
        };
        if let Some(p) = pick {
            group[p].in_use = true;
        }
        i = end;
    }
}
