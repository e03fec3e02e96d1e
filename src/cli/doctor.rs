//! `credstore doctor` (SPEC §6): prints the library's [`checkup`] — every
//! backend (available or not, why, and how long the probe took), the
//! environment, the active credential, warnings and problems — with the
//! command-line advice added, and exits 0 when the selected backend works
//! and nothing needs fixing, 1 otherwise.

use super::context::Context;
use credstore::health::{checkup, Active, BackendState, Checkup, Variable};
use credstore::store::KeychainStore;
use credstore::{AuthMode, Result};
use std::fmt::Write as _;
use std::time::Duration;

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

pub fn doctor(ctx: &Context) -> Result<u8> {
    let report = checkup(&ctx.settings, &ctx.env, &ctx.resolver());
    let (agent, agent_ok) = agent_lines(ctx);
    // Written to stdout in one go, so a closed stdout is an error, not a
    // panic.
    super::write_stdout(&format!("{}{agent}", render(&report, ctx.names())))?;
    Ok(if report.healthy() && agent_ok { 0 } else { 1 })
}

/// The signing agent CREDSTORE_AGENT_SOCK names, if any: reachable? Is
/// its key locked in memory, is it non-dumpable? An agent that cannot be
/// reached is a problem (every client would fail); a key it could not
/// lock is a warning.
fn agent_lines(ctx: &Context) -> (String, bool) {
    let Some(agent) = ctx.agent_client() else {
        return (String::new(), true);
    };
    let socket = agent.socket().display().to_string();
    match agent.status() {
        Err(e) => (
            format!(
                "signing agent:\n  FAILED   {e} (clients fail until it runs again, or pass --no-agent)\n"
            ),
            false,
        ),
        Ok(doc) => {
            let a = &doc["agent"];
            let locked = match a["memory_locked"].as_bool() {
                Some(true) => "  ok       key pages locked in memory (mlock)".to_string(),
                _ => format!(
                    "  warning  key pages NOT locked in memory ({}); raise `ulimit -l` for the agent",
                    a["memory_lock_error"].as_str().unwrap_or("unknown")
                ),
            };
            let dumpable = match a["dumpable"].as_bool() {
                Some(false) => "  ok       not dumpable: no core dump, no ptrace by your other processes",
                Some(true) => "  warning  the agent is dumpable",
                None => "  --       dumpable or not: this platform cannot say",
            };
            let export = if a["export_allowed"].as_bool() == Some(true) {
                "\n  warning  started with --allow-export: it hands out the raw token"
            } else {
                ""
            };
            (
                format!(
                    "signing agent:\n  ok       {socket} answers (pid {}, credential from {})\n{locked}\n{dumpable}{export}\n",
                    a["pid"],
                    super::report::shown(a["credential_source"].as_str().unwrap_or("?"))
                ),
                true,
            )
        }
    }
}

fn render(report: &Checkup, names: &credstore::env::EnvNames) -> String {
    let mut out = String::new();
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
    };
    say(format!(
        "credstore doctor: profile {}, selected backend {}",
        report.profile,
        report.backend.as_str()
    ));
    say("backends:".into());
    for check in &report.backends {
        let name = check.backend;
        let took = ms(check.took);
        say(match &check.state {
            BackendState::Answers { .. } if name == "keychain" => format!(
                "  ok       keychain  {} answers ({took})",
                KeychainStore::platform_name()
            ),
            BackendState::Answers { detail } => {
                format!("  ok       {name:<9} {detail} answers ({took})")
            }
            BackendState::Ready { detail } => format!("  ok       {name:<9} {detail} ({took})"),
            BackendState::HoldsCredential { path } => format!(
                "  ok       {name:<9} {} holds a credential ({took}, plaintext)",
                path.display()
            ),
            BackendState::Empty { home } => format!(
                "  ok       {name:<9} {} (no credential file for this profile; {took})",
                home.display()
            ),
            BackendState::Missing { reason } => format!("  missing  {name:<9} {reason} ({took})"),
            BackendState::Failed { error } => format!("  FAILED   {name:<9} {error} ({took})"),
            BackendState::NotConfigured if name == "sealed" => format!(
                "  --       {name:<9} not configured (no key: neither {} nor {}=systemd-creds is set)",
                names.seal_identity_file(),
                names.seal()
            ),
            BackendState::NotConfigured => {
                format!("  --       {name:<9} not configured (VAULT_ADDR is not set)")
            }
            BackendState::AlwaysThere => {
                format!("  ok       {name:<9} always there; keeps nothing after the process exits")
            }
        });
    }

    say("environment:".into());
    if report.variables.is_empty() {
        say("  (no credstore variables set)".into());
    }
    for v in &report.variables {
        say(match v {
            Variable::Setting { name, value } => format!("  {name}={value}"),
            Variable::Credential { name, empty: true } => {
                format!("  {name} set but empty (ignored)")
            }
            Variable::Credential { name, empty: false } => format!("  {name} set"),
        });
    }

    say("active credential:".into());
    match &report.active {
        Active::Unknown { error: Some(e) } => say(format!("  error: {e}")),
        Active::Unknown { error: None } => {
            say("  unknown: the selected backend cannot be read (see above)".into())
        }
        Active::None => say(format!(
            "  none: nothing is stored for profile {} and no credential variable is set \
             (`credstore login` stores one)",
            report.profile
        )),
        Active::Found { auth_mode, source } => {
            let kind = match auth_mode {
                AuthMode::ApiKey => "API key",
                AuthMode::AgentIdentity => "agent identity",
            };
            say(format!("  {kind} from {source}"));
        }
    }
    let from_env = matches!(&report.active, Active::Found { source, .. } if source.starts_with("environment:"));
    for w in report.warnings() {
        say(format!(
            "warning: {w}{}",
            super::advice::finding(w, from_env)
        ));
    }
    let mut problems = 0;
    for p in report.problems() {
        problems += 1;
        say(format!(
            "problem: {p}{}",
            super::advice::finding(p, from_env)
        ));
    }
    if problems == 0 {
        say("result: healthy".into());
    } else {
        say(format!("result: {problems} problem(s) to fix"));
    }
    out
}
