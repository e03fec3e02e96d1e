//! A program that embeds credstore as a library only (no clap, no CLI
//! code): it resolves the active credential with its own variable prefix
//! through the store factory and prints a `status --json`-style document.
//!
//! ```sh
//! cargo run --example embed -- --prefix CODEX
//! ```
//!
//! reads `CODEX_API_KEY`, `CODEX_AGENT_IDENTITY` (and their `_FILE`
//! forms), `CODEX_BACKEND`, `CODEX_HOME`, `CODEX_PROFILE`,
//! `CODEX_KEYCHAIN_TIMEOUT`, `CODEX_VAULT_MOUNT`, … and no `CREDSTORE_*`.
//! Exit 0 with a credential, 1 without, else the error's exit code.
#![forbid(unsafe_code)]

use credstore::credential::{rfc3339, unix_now};
use credstore::env::{EnvNames, ProcessEnv};
use credstore::resolve::Resolver;
use credstore::store::{Selection, Settings};
use serde_json::json;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut prefix = credstore::env::DEFAULT_PREFIX.to_string();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--prefix", Some(p)) => prefix = p,
            _ => {
                eprintln!("usage: embed [--prefix NAME]");
                return ExitCode::from(2);
            }
        }
    }
    match run(&prefix) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(prefix: &str) -> credstore::Result<u8> {
    let env = ProcessEnv;
    let names = EnvNames::new(prefix);
    let settings = Settings::resolve(&env, &names, &Selection::default())?;
    let store = settings.open(&env, Box::new(|_notice| {}))?;
    let resolved = Resolver::new(&env)
        .with_names(names)
        .resolve(store.as_ref(), &settings.profile)?;
    let now = unix_now();
    let doc = match &resolved {
        None => json!({
            "logged_in": false,
            "profile": settings.profile.as_str(),
            "source": null,
            "auth_mode": null,
            "identity": null,
            "backend": settings.backend.as_str(),
            "backend_chosen_by": settings.backend_chosen_by.as_str(),
        }),
        Some(r) => {
            let source = r.source.location();
            json!({
                "logged_in": true,
                "profile": settings.profile.as_str(),
                "source": {"kind": source.kind.as_str(), "detail": source.detail},
                "auth_mode": r.credential.auth_mode().as_str(),
                "identity": r.credential.agent_identity().map(|id| {
                    let c = id.claims();
                    json!({
                        "agent_runtime_id": c.agent_runtime_id,
                        "account_id": c.account_id,
                        "chatgpt_user_id": c.chatgpt_user_id,
                        "email": c.email,
                        "plan_type": c.plan_type,
                        "fedramp": c.fedramp,
                        "issued_at": rfc3339(c.issued_at),
                        "expires_at": rfc3339(c.expires_at),
                        "expired": id.is_expired_at(now),
                    })
                }),
                "backend": settings.backend.as_str(),
                "backend_chosen_by": settings.backend_chosen_by.as_str(),
            })
        }
    };
    println!("{doc}");
    Ok(if resolved.is_some() { 0 } else { 1 })
}
