//! The agent runtime commands (SPEC §7): `assertion`, `headers`,
//! `register-task`; and the JWKS options (SPEC §1.3) that apply to every
//! agent identity a command uses.

use super::context::Context;
use clap::Args;
use credstore::agent::{register_task, RegistrationConfig};
use credstore::env::{EnvNames, Environment};
use credstore::jwks::Verifier;
use credstore::resolve::Resolved;
use credstore::{AgentIdentity, Credential, Error, Result};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Signature verification options, on every command that uses an agent
/// identity.
#[derive(Debug, Default, Args)]
pub struct JwksArgs {
    /// Verify every agent identity against this JSON Web Key Set (key chosen
    /// by `kid`; RS256, ES256, EdDSA) [env: CREDSTORE_JWKS]
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub jwks: Option<PathBuf>,

    /// With a JWKS: require this `iss` claim
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,

    /// With a JWKS: require this `aud` claim
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,
}

impl JwksArgs {
    /// The verifier the options (or `CREDSTORE_JWKS`) configure, if any.
    /// `--issuer`/`--audience` without a JWKS is a usage error: they would
    /// silently check nothing.
    pub fn verifier(&self, env: &dyn Environment, names: &EnvNames) -> Result<Option<Verifier>> {
        let verifier = match &self.jwks {
            Some(path) => Some(Verifier::from_file(path).map_err(|e| prefix_usage(e, "--jwks"))?),
            None => Verifier::from_env(env, names)?,
        };
        let Some(mut verifier) = verifier else {
            if self.issuer.is_some() || self.audience.is_some() {
                return Err(Error::Usage(format!(
                    "--issuer and --audience need a JWKS to verify against: pass --jwks FILE or set {}",
                    names.jwks()
                )));
            }
            return Ok(None);
        };
        if let Some(iss) = &self.issuer {
            verifier = verifier.with_issuer(iss.clone());
        }
        if let Some(aud) = &self.audience {
            verifier = verifier.with_audience(aud.clone());
        }
        Ok(Some(verifier))
    }
}

fn prefix_usage(e: Error, what: &str) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(format!("{what}: {m}")),
        e => e,
    }
}

/// `assertion` options.
#[derive(Debug, Args)]
pub struct AssertionArgs {
    /// The task to sign for (from `credstore register-task`)
    #[arg(long, value_name = "ID")]
    pub task_id: String,
    #[command(flatten)]
    pub jwks: JwksArgs,
}

/// `headers` options.
#[derive(Debug, Args)]
pub struct HeadersArgs {
    /// The task to sign for; needed for an agent identity only
    #[arg(long, value_name = "ID")]
    pub task_id: Option<String>,
    /// Print one JSON object of header name to value
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub jwks: JwksArgs,
}

/// `register-task` options.
#[derive(Debug, Args)]
pub struct RegisterTaskArgs {
    /// The auth API's base URL [env: CREDSTORE_AUTHAPI_BASE_URL]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    #[command(flatten)]
    pub jwks: JwksArgs,
}

use super::commands::active;

/// The active credential's agent identity; an API key is "no credential"
/// for these commands (exit 1, SPEC §6.1).
fn agent_identity<'r>(resolved: &'r Resolved, command: &str) -> Result<&'r AgentIdentity> {
    resolved.credential.agent_identity().ok_or_else(|| {
        Error::NoCredential(format!(
            "`credstore {command}` needs an agent identity, but the active credential ({}) is an API key; \
             log in with `credstore login --with-agent-identity`, or use `credstore headers` for an API key",
            resolved.source.describe()
        ))
    })
}

use super::write_stdout;

/// An agent holding an API key answers "no credential" for what needs an
/// agent identity; the CLI says so in its own words (exit 1).
fn agent_no_credential(e: Error, command: &str) -> Error {
    match e {
        Error::Agent {
            socket,
            kind: credstore::ErrorKind::NoCredential,
            ..
        } => Error::NoCredential(format!(
            "`credstore {command}` needs an agent identity, but the signing agent at {} holds an \
             API key; use `credstore headers`, or pass --no-agent to use the credential here",
            socket.display()
        )),
        e => e,
    }
}

/// `credstore assertion --task-id ID`: the `AgentAssertion …` value
/// (from the signing agent when `CREDSTORE_AGENT_SOCK` names one).
pub fn assertion(ctx: &Context, args: &AssertionArgs) -> Result<u8> {
    let assertion = match ctx.agent_client() {
        Some(agent) => agent
            .assertion(&args.task_id)
            .map_err(|e| agent_no_credential(e, "assertion"))?,
        None => {
            let resolved = active(ctx)?;
            agent_identity(&resolved, "assertion")?.assertion(&args.task_id)?
        }
    };
    let mut out = Zeroizing::new(String::with_capacity(assertion.expose().len() + 1));
    out.push_str(assertion.expose());
    out.push('\n');
    write_stdout(&out)?;
    Ok(0)
}

/// `credstore headers [--task-id ID] [--json]`.
pub fn headers(ctx: &Context, args: &HeadersArgs) -> Result<u8> {
    let headers = match ctx.agent_client() {
        Some(agent) => agent.request_headers(args.task_id.as_deref())?,
        None => active(ctx)?
            .credential
            .request_headers(args.task_id.as_deref())?,
    };
    // Sized once for the worst case (every character escaped), so the
    // buffer never grows and leaves a stale copy of a secret behind.
    let size: usize = headers
        .iter()
        .map(|(n, v)| 6 * (n.len() + v.len()) + 8)
        .sum::<usize>()
        + 4;
    let mut out = Zeroizing::new(String::with_capacity(size));
    if args.json {
        out.push('{');
        for (i, (name, value)) in headers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, name)?;
            out.push(':');
            push_json_string(&mut out, value)?;
        }
        out.push_str("}\n");
    } else {
        for (name, value) in headers.iter() {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        }
    }
    write_stdout(&out)?;
    Ok(0)
}

/// Appends `s` as a JSON string literal, escaped by serde_json, into `out`
/// (sized by the caller for the worst case, so it never grows).
fn push_json_string(out: &mut String, s: &str) -> Result<()> {
    let mut buf = Zeroizing::new(Vec::with_capacity(6 * s.len() + 2));
    serde_json::to_writer(&mut *buf, s).map_err(|e| Error::Backend {
        backend: "json",
        message: format!("cannot encode a header as JSON: {e}"),
    })?;
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    Ok(())
}

/// `credstore register-task [--base-url URL]`: prints the task id.
pub fn register(ctx: &Context, args: &RegisterTaskArgs) -> Result<u8> {
    if let Some(agent) = ctx.agent_client() {
        let task_id = agent
            .register_task(args.base_url.as_deref())
            .map_err(|e| agent_no_credential(e, "register-task"))?;
        write_stdout(&format!("{task_id}\n"))?;
        return Ok(0);
    }
    let resolved = active(ctx)?;
    let identity = agent_identity(&resolved, "register-task")?;
    let config = RegistrationConfig::from_env(
        &ctx.settings.environment(&ctx.env),
        ctx.names(),
        args.base_url.as_deref(),
    )?;
    let what = format!("the auth API at {}", config.base_url());
    let task_id =
        super::progress::run(&what, config.timeout(), || register_task(identity, &config))?;
    write_stdout(&format!("{task_id}\n"))?;
    Ok(0)
}

/// Verifies a credential read by `login` when a JWKS is configured.
pub fn verify_login(ctx: &Context, credential: &Credential) -> Result<()> {
    match &ctx.verifier {
        Some(v) => v.verify_credential(credential),
        None => Ok(()),
    }
}
