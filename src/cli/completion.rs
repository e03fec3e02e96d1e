//! Shell completion (clap_complete's dynamic engine): the shell code that
//! `credstore completions SHELL` prints calls `credstore` back with
//! `CREDSTORE_COMPLETE` set, and the answer lists commands and options,
//! the backend names, and the profiles stored in the file backend or named
//! in config.toml — never file names where a name is expected, and never
//! anything read from the keychain or Vault (a completion must not wait
//! on a daemon, prompt, or reach the network).

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use clap_complete::{CompleteEnv, Shell};
use credstore::env::{EnvNames, ProcessEnv};
use credstore::store::{BackendKind, Selection, Settings, Store};
use credstore::{Error, Result};

/// The variable that asks for completions.
const VAR: &str = "CREDSTORE_COMPLETE";

/// Answers a completion request and exits, when this run is one.
pub fn answer_if_asked() {
    if std::env::var_os(VAR).is_some() {
        CompleteEnv::with_factory(super::Cli::command)
            .var(VAR)
            .complete();
    }
}

/// The shell code that registers the completion for `shell`.
pub fn registration(shell: Shell) -> Result<Vec<u8>> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::PowerShell => &Powershell,
        _ => {
            return Err(Error::Usage(
                "no completion for that shell: use bash, zsh, fish, elvish or powershell".into(),
            ))
        }
    };
    let mut out = Vec::new();
    completer
        .write_registration(VAR, "credstore", "credstore", "credstore", &mut out)
        .map_err(|e| Error::Backend {
            backend: "completions",
            message: format!("cannot write the completion code: {e}"),
        })?;
    Ok(out)
}

/// `--backend`, `migrate --to/--from`: the backend names.
pub fn backends() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        BackendKind::NAMES
            .iter()
            .map(|b| CompletionCandidate::new(*b))
            .collect::<Vec<_>>()
    })
}

/// `config set KEY VALUE`: the values of both keys.
pub fn config_values() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        BackendKind::NAMES
            .iter()
            .filter(|b| **b != "memory")
            .chain(["allow", "warn", "deny"].iter())
            .map(|v| CompletionCandidate::new(*v))
            .collect::<Vec<_>>()
    })
}

/// `--profile`: the profiles of the file backend and of config.toml.
pub fn profiles() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        let mut names: Vec<String> = vec!["default".into()];
        if let Ok(settings) =
            Settings::resolve(&ProcessEnv, &EnvNames::default(), &Selection::default())
        {
            if let Ok(Some(listed)) = settings.file_store().profiles() {
                names.extend(listed.iter().map(|p| p.to_string()));
            }
            if let Ok(config) = settings.config_file().load() {
                names.extend(config.profiles.keys().cloned());
                names.extend(config.rules.iter().map(|r| r.profile.clone()));
            }
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|n| credstore::profile::Profile::new(n).is_ok())
            .map(CompletionCandidate::new)
            .collect::<Vec<_>>()
    })
}
