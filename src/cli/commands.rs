//! The commands of the core: login, logout, status, token.

use super::agent;
use super::context::Context;
use super::report::{shown, Report, ReportedCredential};
use super::{Command, LoginArgs};
use credstore::credential::{rfc3339, unix_now, AuthMode};
use credstore::health::{expiry, relative, status_findings, Finding};
use credstore::resolve::{Resolved, Source};
use credstore::store::BackendKind;
use credstore::stored::StoredCredential;
use credstore::{Error, Result};

pub fn run(ctx: &Context, command: &Command) -> Result<u8> {
    match command {
        Command::Login(args) => login(ctx, args),
        Command::Logout => logout(ctx),
        Command::Status { json } => status(ctx, *json),
        Command::Token => token(ctx),
        Command::Assertion(args) => agent::assertion(ctx, args),
        Command::Headers(args) => agent::headers(ctx, args),
        Command::RegisterTask(args) => agent::register(ctx, args),
        Command::Migrate(args) => super::migrate::migrate(ctx, args),
        Command::Doctor => super::doctor::doctor(ctx),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = super::Cli::command();
            // Rendered first, then written in one checked write: a full or
            // closed stdout is an error (exit 4), never a panic.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "credstore", &mut script);
            super::write_stdout_bytes(&script)?;
            Ok(0)
        }
    }
}

fn login(ctx: &Context, args: &LoginArgs) -> Result<u8> {
    let mode = if args.with_api_key {
        AuthMode::ApiKey
    } else {
        AuthMode::AgentIdentity
    };
    let credential = credstore::input::credential_from_stdin(mode)?;
    let now = unix_now();
    credential.ensure_not_expired(now, "stdin")?;
    agent::verify_login(ctx, &credential)?;

    let store = ctx.store()?;
    let stored = StoredCredential::from_credential(&credential);
    let location = {
        let _lock = ctx.lock_changes()?;
        store.save(&ctx.profile, &stored)?
    };

    let resolved = Resolved {
        credential,
        source: Source::Stored(location),
    };
    let mut warnings = Vec::new();
    if ctx.backend == BackendKind::Memory {
        warnings.push(
            "the memory backend keeps nothing after this process exits: the credential was validated but not kept".to_string(),
        );
    }
    let reported = ReportedCredential::new(&resolved, now);
    if let Some(e) = reported
        .identity
        .as_ref()
        .and_then(|i| expiry(&i.claims, now))
    {
        let f = Finding::Expiry(e);
        warnings.push(format!("{f}{}", super::advice::finding(&f, false)));
    }
    let resolver = ctx.resolver();
    for mode in [AuthMode::ApiKey, AuthMode::AgentIdentity] {
        if let Some(var) = resolver.set_variable(mode) {
            warnings.push(format!(
                "{var} is set: it will keep shadowing the stored credential until you unset it"
            ));
        }
    }
    // Plaintext file and loose directory, as `status` reports them. `auto`
    // already said where the plaintext file goes, before writing it.
    let place_warnings: Vec<String> = status_findings(
        &ctx.settings,
        store.as_ref(),
        &resolver.clone().without_env(),
        Some(&resolved),
        now,
    )
    .into_iter()
    .filter(|f| {
        matches!(
            f,
            Finding::PlaintextActive { .. } | Finding::LooseHome { .. }
        )
    })
    .map(|f| format!("{f}{}", super::advice::finding(&f, false)))
    .collect();
    let said_before_write = ctx.backend == BackendKind::Auto;
    let report = Report {
        profile: ctx.profile.to_string(),
        resolved: Some(reported),
        warnings: place_warnings.iter().cloned().chain(warnings).collect(),
    };
    if args.json {
        super::write_stdout(&format!("{}\n", report.to_json()))?;
    } else {
        eprint!("{}", login_summary(&report, ctx));
    }
    for w in &report.warnings {
        if !(said_before_write && place_warnings.first() == Some(w)) {
            eprintln!("warning: {w}");
        }
    }
    Ok(0)
}

fn login_summary(report: &Report, ctx: &Context) -> String {
    let Some(r) = &report.resolved else {
        return String::new();
    };
    let mut out = String::new();
    let stored_in = if ctx.backend == BackendKind::Memory {
        "nothing kept (memory backend)".to_string()
    } else {
        format!("{} {}", r.source_kind.as_str(), r.source_detail)
    };
    match &r.identity {
        Some(i) => {
            out.push_str(&format!(
                "Logged in with an agent identity (profile {}).\n",
                report.profile
            ));
            out.push_str(&format!(
                "  agent     {}\n",
                shown(&i.claims.agent_runtime_id)
            ));
            out.push_str(&format!("  account   {}\n", shown(&i.claims.account_id)));
            out.push_str(&format!("  email     {}\n", shown(&i.claims.email)));
            out.push_str(&format!("  plan      {}\n", shown(&i.claims.plan_type)));
            out.push_str(&format!(
                "  expires   {} ({})\n",
                rfc3339(i.claims.expires_at),
                relative(i.claims.expires_at - unix_now())
            ));
        }
        None => out.push_str(&format!(
            "Logged in with an API key (profile {}).\n",
            report.profile
        )),
    }
    out.push_str(&format!(
        "  backend   {}\n  stored    {stored_in}\n",
        ctx.backend.as_str()
    ));
    out
}

fn logout(ctx: &Context) -> Result<u8> {
    let store = ctx.store()?;
    // One change (every backend's delete runs under the change lock, or
    // creates nothing when there is nothing to remove).
    let removed = store.delete(&ctx.profile)?;
    let resolver = ctx.resolver();
    let code = if removed.is_empty() {
        eprintln!(
            "Nothing to remove: no credential is stored for profile {} ({}).",
            ctx.profile,
            store.describe(&ctx.profile)
        );
        1
    } else {
        let places: Vec<String> = removed.iter().map(|l| l.to_string()).collect();
        eprintln!(
            "Removed the credential of profile {} from {}.",
            ctx.profile,
            places.join(" and ")
        );
        0
    };
    for mode in [AuthMode::ApiKey, AuthMode::AgentIdentity] {
        if let Some(var) = resolver.set_variable(mode) {
            eprintln!("note: {var} is still set in the environment; logout does not change it");
        }
    }
    Ok(code)
}

fn status(ctx: &Context, json: bool) -> Result<u8> {
    let store = ctx.store()?;
    let resolver = ctx.resolver();
    let now = unix_now();
    let resolved = resolver.resolve(store.as_ref(), &ctx.profile)?;
    let findings = status_findings(
        &ctx.settings,
        store.as_ref(),
        &resolver,
        resolved.as_ref(),
        now,
    );
    let from_env = resolved
        .as_ref()
        .is_some_and(|r| matches!(r.source, Source::Env { .. }));
    let warnings: Vec<String> = findings
        .iter()
        .map(|f| format!("{f}{}", super::advice::finding(f, from_env)))
        .collect();
    let reported = resolved.as_ref().map(|r| ReportedCredential::new(r, now));
    let expired = reported
        .as_ref()
        .and_then(|r| r.identity.as_ref())
        .is_some_and(|i| i.expired);
    let logged_in = reported.is_some();
    let report = Report {
        profile: ctx.profile.to_string(),
        resolved: reported,
        warnings,
    };
    if json {
        super::write_stdout(&format!("{}\n", report.to_json()))?;
    } else {
        super::write_stdout(&report.to_human())?;
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(if logged_in && !expired { 0 } else { 1 })
}

fn token(ctx: &Context) -> Result<u8> {
    let store = ctx.store()?;
    let Some(resolved) = ctx.resolver().resolve(store.as_ref(), &ctx.profile)? else {
        return Err(not_logged_in(ctx));
    };
    resolved
        .credential
        .ensure_not_expired(unix_now(), &resolved.source.describe())?;
    let token = resolved.credential.expose_token().as_bytes();
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(token.len() + 1));
    line.extend_from_slice(token);
    line.push(b'\n');
    super::write_stdout_bytes(&line)?;
    Ok(0)
}

pub fn not_logged_in(ctx: &Context) -> Error {
    Error::NoCredential(format!(
        "no credential for profile {}: nothing is stored and no {} / {} is set. Run `credstore login --with-agent-identity` (token on stdin).",
        ctx.profile,
        ctx.names().api_key(),
        ctx.names().agent_identity()
    ))
}
