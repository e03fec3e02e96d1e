//! `credstore agent`: the signing agent in the foreground, and the
//! `status` of a running one.

use super::context::Context;
use super::report::shown;
use clap::Args;
use credstore::sockagent::AgentClient;
use credstore::{Error, Result};
use serde_json::Value;
use std::path::PathBuf;

/// `agent` options.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The socket to listen on [default: $XDG_RUNTIME_DIR/credstore/agent-PROFILE.sock,
    /// else agent-PROFILE.sock in the credential directory]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Append one JSON line per request (time, peer pid/uid/executable,
    /// operation, task id, result; never a secret) to FILE (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Also answer `token` (and an API key's headers): hands the raw
    /// credential to every program that can reach the socket
    #[arg(long)]
    pub allow_export: bool,
    /// Stop after SECS seconds without a request
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub max_idle: Option<u64>,
    /// The auth API the agent registers tasks with [env: CREDSTORE_AUTHAPI_BASE_URL]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
}

/// "not supported here", for the commands that need a unix socket.
#[cfg_attr(unix, allow(dead_code))]
pub fn unsupported(command: &str) -> Error {
    Error::Usage(format!(
        "`credstore {command}` needs unix sockets and is not supported on this platform"
    ))
}

/// `credstore agent`.
#[cfg(not(unix))]
pub fn agent(_ctx: &Context, _args: &AgentArgs) -> Result<u8> {
    Err(unsupported("agent"))
}

#[cfg(unix)]
pub use unix::{agent, exec_socket_path, start, StartOptions};

#[cfg(unix)]
mod unix {
    use super::*;
    use credstore::agent::RegistrationConfig;
    use credstore::resolve::Resolved;
    use credstore::sockagent::{default_socket_path, AgentConfig, AuditLog, SigningAgent};
    use serde_json::json;
    use std::path::Path;
    use std::time::Duration;

    /// What `start` needs besides the resolved credential.
    pub struct StartOptions {
        pub socket: PathBuf,
        pub log: Option<PathBuf>,
        pub allow_export: bool,
        pub max_idle: Option<u64>,
        pub base_url: Option<String>,
    }

    /// Binds an agent for `resolved` (the credential moves into it).
    pub fn start(ctx: &Context, resolved: Resolved, options: StartOptions) -> Result<SigningAgent> {
        if options.socket.to_str().is_none() {
            return Err(Error::Usage(format!(
                "the socket path {} is not valid Unicode; choose one that is (it is printed for a shell)",
                options.socket.display()
            )));
        }
        let registration = registration(ctx, options.base_url.as_deref())?;
        let audit = options.log.as_deref().map(AuditLog::open).transpose()?;
        let mut config = AgentConfig::new(options.socket);
        config.allow_export = options.allow_export;
        config.max_idle = options.max_idle.map(Duration::from_secs);
        config.audit = audit;
        config.registration = registration;
        config.credential_source = resolved.source.describe();
        config.status_fields = json!({
            "profile": ctx.profile.to_string(),
            "backend": ctx.backend.as_str(),
            "backend_chosen_by": ctx.settings.backend_chosen_by.as_str(),
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        SigningAgent::bind(resolved.credential, config)
    }

    /// The socket of `exec`'s own agent: `exec-<pid>.sock` beside the
    /// default socket.
    pub fn exec_socket_path(ctx: &Context) -> PathBuf {
        default_socket_path(&ctx.env, &ctx.settings.home, "credstore", &ctx.profile)
            .with_file_name(format!("exec-{}.sock", std::process::id()))
    }

    /// The auth API from `--base-url` or the variable; none is fine (the
    /// agent then cannot register tasks).
    fn registration(ctx: &Context, base_url: Option<&str>) -> Result<Option<RegistrationConfig>> {
        let var = ctx.names().authapi_base_url();
        // The variable, else the config's authapi-base-url.
        let env = ctx.settings.environment(&ctx.env);
        if base_url.is_none() && !credstore::env::Environment::is_set(&env, &var) {
            return Ok(None);
        }
        RegistrationConfig::from_env(&env, ctx.names(), base_url).map(Some)
    }

    /// `CREDSTORE_AGENT_SOCK=<path>; export CREDSTORE_AGENT_SOCK;`, the
    /// path quoted for a POSIX shell when it needs to be.
    pub fn ready_line(variable: &str, socket: &Path) -> String {
        let path = socket.to_string_lossy();
        let plain = !path.is_empty()
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,".contains(&b));
        let value = if plain {
            path.into_owned()
        } else {
            format!("'{}'", path.replace('\'', r"'\''"))
        };
        format!("{variable}={value}; export {variable};\n")
    }

    /// `credstore agent`: resolve once (env first), serve until a signal or
    /// the idle limit, wipe, exit 0.
    pub fn agent(ctx: &Context, args: &AgentArgs) -> Result<u8> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let resolved = super::super::commands::active(ctx)?;
        let is_api_key = resolved.credential.agent_identity().is_none();
        let socket = args.socket.clone().unwrap_or_else(|| {
            default_socket_path(&ctx.env, &ctx.settings.home, "credstore", &ctx.profile)
        });
        // Handlers first: a signal between bind and serve must still
        // remove the socket.
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map_err(|e| Error::io("installing the signal handlers for", &socket, e))?;
        let agent = start(
            ctx,
            resolved,
            StartOptions {
                socket,
                log: args.log.clone(),
                allow_export: args.allow_export,
                max_idle: args.max_idle,
                base_url: args.base_url.clone(),
            },
        )?;
        let handle = agent.handle();
        std::thread::Builder::new()
            .name("agent-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let name = match sig {
                        SIGTERM => "SIGTERM",
                        SIGINT => "SIGINT",
                        _ => "SIGHUP",
                    };
                    handle.stop(&format!("signal {name}"));
                }
            })
            .map_err(|e| Error::io("starting the signal thread for", agent.socket(), e))?;
        if let Some(why) = &agent.memory().lock_error {
            eprintln!(
                "warning: the key's memory could not be locked against swapping ({why}); \
                 raise the memlock limit (ulimit -l) to allow it"
            );
        }
        if is_api_key {
            eprintln!(
                "warning: the active credential is an API key: an agent cannot sign with it, and \
                 its request header is the key itself, so it is handed out only with --allow-export"
            );
        }
        if args.allow_export {
            eprintln!(
                "warning: --allow-export: every program of your user that can reach the socket \
                 can read the raw token"
            );
        }
        super::super::write_stdout(&ready_line(&ctx.names().agent_sock(), agent.socket()))?;
        eprintln!(
            "credstore agent: profile {} on {} (pid {}); stop it with Ctrl-C or `kill {}`",
            ctx.profile,
            agent.socket().display(),
            std::process::id(),
            std::process::id()
        );
        let reason = agent.serve()?;
        eprintln!("credstore agent: {reason}; the key is wiped and the socket removed");
        Ok(0)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ready_line_quotes_when_needed() {
            assert_eq!(
                ready_line("CREDSTORE_AGENT_SOCK", Path::new("/run/user/1/credstore/agent-default.sock")),
                "CREDSTORE_AGENT_SOCK=/run/user/1/credstore/agent-default.sock; export CREDSTORE_AGENT_SOCK;\n"
            );
            assert_eq!(
                ready_line("X", Path::new("/tmp/a b'c")),
                "X='/tmp/a b'\\''c'; export X;\n"
            );
        }
    }
}

/// `credstore status` answered by the signing agent.
pub fn status_via_agent(agent: &AgentClient, json: bool) -> Result<u8> {
    let doc = agent.status()?;
    let logged_in = doc["logged_in"].as_bool().unwrap_or(false);
    let expired = doc["identity"]["expired"].as_bool().unwrap_or(false);
    if json {
        super::write_stdout(&format!("{doc}\n"))?;
    } else {
        super::write_stdout(&human(&doc))?;
    }
    Ok(if logged_in && !expired { 0 } else { 1 })
}

fn human(doc: &Value) -> String {
    let text = |v: &Value| shown(v.as_str().unwrap_or("?"));
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<10}{v}\n"));
    line("profile", text(&doc["profile"]));
    line(
        "source",
        format!(
            "agent {} (pid {}; its credential: {})",
            text(&doc["source"]["detail"]),
            doc["agent"]["pid"],
            text(&doc["agent"]["credential_source"])
        ),
    );
    let id = &doc["identity"];
    if id.is_null() {
        line("kind", "API key".into());
    } else {
        line("kind", "agent identity".into());
        line("agent", text(&id["agent_runtime_id"]));
        line("account", text(&id["account_id"]));
        line("user", text(&id["chatgpt_user_id"]));
        line("email", text(&id["email"]));
        line("plan", text(&id["plan_type"]));
        line(
            "fedramp",
            if id["fedramp"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            }
            .into(),
        );
        line("issued", text(&id["issued_at"]));
        let state = if id["expired"].as_bool() == Some(true) {
            "EXPIRED".to_string()
        } else {
            credstore::health::relative(id["expires_in_seconds"].as_i64().unwrap_or(0))
        };
        line("expires", format!("{} ({state})", text(&id["expires_at"])));
    }
    let locked = match doc["agent"]["memory_locked"].as_bool() {
        Some(true) => "key locked in memory".to_string(),
        _ => format!(
            "key NOT locked in memory ({})",
            text(&doc["agent"]["memory_lock_error"])
        ),
    };
    let dumpable = match doc["agent"]["dumpable"].as_bool() {
        Some(false) => ", not dumpable",
        Some(true) => ", DUMPABLE",
        None => "",
    };
    line("memory", format!("{locked}{dumpable}"));
    format!("Logged in (through the signing agent):\n{out}")
}
