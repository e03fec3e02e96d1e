//! `credstore doctor` (SPEC §6): checks every backend (available or not,
//! why, and how long the probe took), the file permissions and the
//! environment, says what to fix, and exits 0 when the selected backend
//! works and nothing needs fixing, 1 otherwise. A keychain that is not
//! there is found out in milliseconds; one that hangs is bounded by
//! `CREDSTORE_KEYCHAIN_TIMEOUT`.

use super::context::Context;
use credstore::credential::unix_now;
use credstore::env::Environment;
use credstore::resolve::Source;
use credstore::store::{
    is_not_there, AutoStore, BackendKind, KeychainStore, SourceKind, Store, VaultStore,
};
use credstore::{AuthMode, Result};
use std::time::{Duration, Instant};

/// Standard variables whose values are not secret and are shown.
const SHOWN_STANDARD: [&str; 3] = ["VAULT_ADDR", "BAO_ADDR", "DBUS_SESSION_BUS_ADDRESS"];

/// The variables whose values are not secret and are shown.
fn shown_variables(ctx: &Context) -> Vec<String> {
    let n = ctx.names();
    let mut v = vec![
        n.backend(),
        n.profile(),
        n.home(),
        n.keychain_timeout(),
        n.jwks(),
        n.http_timeout(),
        n.vault_mount(),
        n.vault_prefix(),
        n.authapi_base_url(),
    ];
    v.extend(SHOWN_STANDARD.iter().map(|s| s.to_string()));
    v
}

/// A variable's value for the report: escaped, and said when not Unicode.
fn shown_value(v: &std::ffi::OsStr) -> String {
    match v.to_str() {
        Some(s) => credstore::text::shown(s.trim()).into_owned(),
        None => format!(
            "{} (not Unicode)",
            credstore::text::shown(&v.to_string_lossy())
        ),
    }
}

#[derive(Default)]
struct Findings {
    warnings: Vec<String>,
    problems: Vec<String>,
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Appends a line to the report (written to stdout in one go at the end,
/// so a closed stdout is an error, not a panic).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

pub fn doctor(ctx: &Context) -> Result<u8> {
    let mut out = String::new();
    let result = check(ctx, &mut out);
    super::write_stdout(&out)?;
    result
}

fn check(ctx: &Context, out: &mut String) -> Result<u8> {
    let mut f = Findings::default();
    say!(
        out,
        "credstore doctor: profile {}, selected backend {}",
        ctx.profile,
        ctx.backend.as_str()
    );
    say!(out, "backends:");

    // keychain
    let start = Instant::now();
    let keychain = KeychainStore::new(ctx.settings.keychain.clone());
    let probe = keychain.probe();
    let took = start.elapsed();
    let platform = credstore::store::KeychainStore::platform_name();
    let keychain_ok = probe.is_ok();
    let keychain_missing = probe.as_ref().err().is_some_and(is_not_there);
    match &probe {
        Ok(()) => say!(
            out,
            "  ok       keychain  {platform} answers ({})",
            ms(took)
        ),
        Err(e) if is_not_there(e) => {
            say!(out, "  missing  keychain  {e} ({})", ms(took))
        }
        Err(e) => say!(out, "  FAILED   keychain  {e} ({})", ms(took)),
    }

    // file
    let file = ctx.settings.file_store();
    let start = Instant::now();
    let file_state = file.load(&ctx.profile);
    let took = start.elapsed();
    let file_path = file.path(&ctx.profile);
    let file_ok = file_state.is_ok();
    match &file_state {
        Ok(Some(_)) => say!(
            out,
            "  ok       file      {} holds a credential ({}, plaintext)",
            file_path.display(),
            ms(took)
        ),
        Ok(None) => say!(
            out,
            "  ok       file      {} (no credential file for this profile; {})",
            ctx.home.display(),
            ms(took)
        ),
        Err(e) => say!(out, "  FAILED   file      {e} ({})", ms(took)),
    }
    if let Some(w) = loose_dir(&ctx.home) {
        f.warnings.push(w);
    }

    // vault: probed only when configured.
    let vault_configured = ctx.env.is_set("VAULT_ADDR") || ctx.env.is_set("BAO_ADDR");
    let vault_state = if vault_configured {
        let start = Instant::now();
        let state = VaultStore::from_env(&ctx.env, ctx.names())
            .and_then(|v| v.load(&ctx.profile).map(|_| v));
        let took = start.elapsed();
        match &state {
            Ok(v) => say!(
                out,
                "  ok       vault     {} answers ({})",
                v.describe(&ctx.profile).detail,
                ms(took)
            ),
            Err(e) => say!(out, "  FAILED   vault     {e} ({})", ms(took)),
        }
        Some(state.map(|_| ()))
    } else {
        say!(
            out,
            "  --       vault     not configured (VAULT_ADDR is not set)"
        );
        None
    };
    say!(
        out,
        "  ok       memory    always there; keeps nothing after the process exits"
    );

    // Is the selected backend usable?
    match ctx.backend {
        BackendKind::File => {
            if let Err(e) = &file_state {
                f.problems
                    .push(format!("the file backend is selected but fails: {e}"));
            }
        }
        BackendKind::Keychain => {
            if let Err(e) = &probe {
                f.problems
                    .push(format!("the keychain backend is selected but fails: {e}"));
            }
        }
        BackendKind::Auto => {
            if keychain_missing {
                f.warnings.push(format!(
                    "auto has no keychain here, so it stores credentials in a plaintext file \
                     under {}; choose explicitly with --backend file or run a keychain service",
                    ctx.home.display()
                ));
                if let Err(e) = &file_state {
                    f.problems.push(format!(
                        "auto falls back to the file backend, which fails: {e}"
                    ));
                }
            } else if let Err(e) = &probe {
                f.problems.push(format!(
                    "auto uses the keychain, which is there but fails (auto never falls back to \
                     the file for that): {e}"
                ));
            }
        }
        BackendKind::Vault => match &vault_state {
            None => f.problems.push(
                "the vault backend is selected but not configured: set VAULT_ADDR (and \
                 VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID)"
                    .into(),
            ),
            Some(Err(e)) => f
                .problems
                .push(format!("the vault backend is selected but fails: {e}")),
            Some(Ok(())) => {}
        },
        BackendKind::Memory => f
            .warnings
            .push("the memory backend is selected: nothing is kept between runs".into()),
    }
    if let (Some(Err(e)), false) = (&vault_state, ctx.backend == BackendKind::Vault) {
        f.warnings.push(format!(
            "vault is configured but fails (it is not selected): {e}"
        ));
    }
    if file_ok && matches!(file_state, Ok(Some(_))) {
        f.warnings.push(format!(
            "a plaintext credential file exists: {}; `credstore migrate --to keychain --from \
             file` moves it into the keychain where there is one",
            file_path.display()
        ));
    }

    // environment
    say!(out, "environment:");
    let mut any = false;
    for name in shown_variables(ctx) {
        if let Some(v) = ctx.env.var_os(&name) {
            any = true;
            say!(out, "  {name}={}", shown_value(&v));
        }
    }
    for name in ctx.names().credential_variables() {
        if let Some(v) = ctx.env.var_os(&name) {
            any = true;
            let state = if credstore_platform::trim_os_str(&v).is_empty() {
                "set but empty (ignored)"
            } else {
                "set"
            };
            say!(out, "  {name} {state}");
        }
    }
    if !any {
        say!(out, "  (no credstore variables set)");
    }

    // The active credential: which source wins, and is it usable?
    say!(out, "active credential:");
    let resolver = ctx.resolver();
    let env_result = if ctx.no_env {
        Ok(None)
    } else {
        resolver.from_env()
    };
    let mut unknown = false;
    let active = match env_result {
        Err(e) => {
            f.problems
                .push(format!("the environment credential is unusable: {e}"));
            say!(out, "  error: {e}");
            unknown = true;
            None
        }
        Ok(Some(r)) => Some(r),
        Ok(None)
            if !selected_readable(
                ctx,
                keychain_ok || keychain_missing,
                keychain_ok,
                file_ok,
                matches!(vault_state, Some(Ok(()))),
            ) =>
        {
            say!(
                out,
                "  unknown: the selected backend cannot be read (see above)"
            );
            unknown = true;
            None
        }
        Ok(None) => {
            let stored = stored_credential(ctx, keychain_ok);
            match stored {
                Ok(r) => r,
                Err(e) => {
                    f.problems
                        .push(format!("the stored credential is unusable: {e}"));
                    say!(out, "  error: {e}");
                    unknown = true;
                    None
                }
            }
        }
    };
    match &active {
        None if unknown => {}
        None => say!(
            out,
            "  none: nothing is stored for profile {} and no credential variable is set \
             (`credstore login` stores one)",
            ctx.profile
        ),
        Some(r) => {
            let kind = match r.credential.auth_mode() {
                AuthMode::ApiKey => "API key",
                AuthMode::AgentIdentity => "agent identity",
            };
            let winner = match &r.source {
                Source::Env { .. } => format!("environment: {} wins", r.source.describe()),
                Source::Stored(l) => format!("{} {}", l.kind.as_str(), l.detail),
            };
            say!(out, "  {kind} from {winner}");
            if let Err(e) = r
                .credential
                .ensure_not_expired(unix_now(), &r.source.describe())
            {
                f.problems.push(e.to_string());
            }
            if let Some(id) = r.credential.agent_identity() {
                let left = id.claims().expires_at - unix_now();
                if (0..7 * 24 * 3600).contains(&left) {
                    f.warnings.push(format!(
                        "the agent identity expires in {} hours; get a new one soon",
                        left / 3600
                    ));
                }
            }
            if let Source::Stored(l) = &r.source {
                if l.kind == SourceKind::File {
                    f.warnings.push(format!(
                        "the active credential is in a plaintext file ({})",
                        l.detail
                    ));
                }
            }
        }
    }
    for s in resolver.shadowed() {
        f.warnings.push(format!(
            "{} is set but {} takes precedence over it",
            s.variable, s.by
        ));
    }

    for w in &f.warnings {
        say!(out, "warning: {w}");
    }
    for p in &f.problems {
        say!(out, "problem: {p}");
    }
    if f.problems.is_empty() {
        say!(out, "result: healthy");
        Ok(0)
    } else {
        say!(out, "result: {} problem(s) to fix", f.problems.len());
        Ok(1)
    }
}

/// Whether the selected backend can be read. Backends already found
/// failing are not asked again (no second timeout).
fn selected_readable(
    ctx: &Context,
    auto_keychain_ok: bool,
    keychain_ok: bool,
    file_ok: bool,
    vault_ok: bool,
) -> bool {
    match ctx.backend {
        BackendKind::File => file_ok,
        BackendKind::Keychain => keychain_ok,
        // auto skips a keychain that is not there, not a failing one.
        BackendKind::Auto => auto_keychain_ok && file_ok,
        BackendKind::Memory => true,
        BackendKind::Vault => vault_ok,
    }
}

/// The stored credential in the selected backend, validated.
fn stored_credential(
    ctx: &Context,
    keychain_ok: bool,
) -> Result<Option<credstore::resolve::Resolved>> {
    let store: Box<dyn Store> = match ctx.backend {
        BackendKind::Auto if !keychain_ok => Box::new(ctx.settings.file_store()),
        BackendKind::Auto => Box::new(AutoStore::new(
            Box::new(KeychainStore::new(ctx.settings.keychain.clone())),
            ctx.settings.file_store(),
            Box::new(|_| {}),
        )),
        _ => ctx.store()?,
    };
    ctx.resolver()
        .without_env()
        .resolve(store.as_ref(), &ctx.profile)
}

/// A credential directory that others can list is worth a warning.
fn loose_dir(home: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(home).ok()?;
    let own = credstore_platform::ownership(&meta);
    own.grants_group_or_other().then(|| {
        format!(
            "{} has mode {:04o}: others can list it; fix: chmod 700 {}",
            home.display(),
            own.mode,
            home.display()
        )
    })
}
