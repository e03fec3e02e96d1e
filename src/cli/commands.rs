//! The commands of the core: login, logout, status, token.

use super::agent;
use super::context::Context;
use super::report::{shown, Report, ReportedCredential, Warning};
use super::{Command, ConfigCommand, ConfigKey, LoginArgs, SealCommand};
use credstore::config::EnvPolicy;
use credstore::credential::{rfc3339, unix_now, AuthMode};
use credstore::env::Environment;
use credstore::health::{expiry, relative, status_findings, Finding};
use credstore::resolve::{Resolved, Source};
use credstore::store::{BackendKind, ChosenBy};
use credstore::stored::StoredCredential;
use credstore::{Error, Result};

pub fn run(ctx: &Context, command: &Command) -> Result<u8> {
    match command {
        Command::Login(args) => login(ctx, args),
        Command::Logout { all: false } => logout(ctx),
        Command::Logout { all: true } => super::profiles::logout_all(ctx),
        Command::Status {
            json, all: false, ..
        } => status(ctx, *json),
        Command::Status {
            json, all: true, ..
        } => super::profiles::status_all(ctx, *json),
        Command::Profiles { json } => super::profiles::profiles(ctx, *json),
        Command::Token { .. } => token(ctx),
        Command::Assertion(args) => agent::assertion(ctx, args),
        Command::Headers(args) => agent::headers(ctx, args),
        Command::RegisterTask(args) => agent::register(ctx, args),
        Command::Agent(args) => super::daemon::agent(ctx, args),
        Command::Exec(args) => super::exec::exec(ctx, args),
        Command::Migrate(args) => super::migrate::migrate(ctx, args),
        Command::Doctor { .. } => super::doctor::doctor(ctx),
        Command::Config(action) => config(ctx, action),
        Command::Seal(action) => seal(ctx, action),
        Command::Man { dir } => man(dir.as_deref()),
        Command::Completions { shell } => {
            // Rendered first, then written in one checked write: a full or
            // closed stdout is an error (exit 4), never a panic.
            super::write_stdout_bytes(&super::completion::registration(*shell)?)?;
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
    // A config.toml that login would have to update must be usable before
    // anything is stored: a login that fails changes nothing.
    if ctx.settings.backend_chosen_by == ChosenBy::Flag && ctx.backend != BackendKind::Memory {
        ctx.settings.config_file().load()?;
    }
    let (location, remembered) = {
        let _lock = ctx.lock_changes()?;
        // What this login replaces, said when it is another account or
        // kind (a failed read is not a reason to refuse the login).
        let before = store.load(&ctx.profile).ok().flatten();
        let location = store.save(&ctx.profile, &stored)?;
        if let Some(note) = before.and_then(|b| replaced(&b, &credential)) {
            eprintln!("note: {note}");
        }
        // Stored: from here on a problem is a warning, not a failure.
        let remembered = remember_backend(ctx, &stored).unwrap_or_else(|e| {
            eprintln!("warning: the credential is stored, but the backend was not remembered: {e}");
            None
        });
        (location, remembered)
    };
    if let Some(path) = remembered {
        eprintln!(
            "note: profile {} now uses the {} backend when none is chosen (remembered in {}; \
             --backend or {} override it)",
            ctx.profile,
            ctx.backend.as_str(),
            path.display(),
            ctx.names().backend()
        );
    }

    let resolved = Resolved {
        credential,
        source: Source::Stored(location),
    };
    let mut warnings = Vec::new();
    if ctx.backend == BackendKind::Memory {
        warnings.push(Warning::new(
            "memory_selected",
            "the memory backend keeps nothing after this process exits: the credential was validated but not kept",
        ));
    }
    let reported = ReportedCredential::new(&resolved, now);
    if let Some(e) = reported
        .identity
        .as_ref()
        .and_then(|i| expiry(&i.claims, now))
    {
        warnings.push(Warning::from_finding(&Finding::Expiry(e), false));
    }
    let resolver = ctx.resolver();
    for mode in [AuthMode::ApiKey, AuthMode::AgentIdentity] {
        if let Some(var) = resolver.set_variable(mode) {
            warnings.push(Warning::new(
                "env_shadows",
                format!(
                    "{var} is set: it will keep shadowing the stored credential until you unset it"
                ),
            ));
        }
    }
    // Plaintext file and loose directory, as `status` reports them. `auto`
    // already said where the plaintext file goes, before writing it.
    let place_warnings: Vec<Warning> = status_findings(
        &ctx.settings,
        store.as_ref(),
        &resolver.clone().without_env(),
        Some(&resolved),
        now,
    )
    .into_iter()
    .filter(|f| match f {
        Finding::PlaintextActive { .. } => !quiet_plaintext(ctx),
        Finding::LooseHome { .. } => true,
        _ => false,
    })
    .map(|f| Warning::from_finding(&f, false))
    .collect();
    let said_before_write = ctx.backend == BackendKind::Auto;
    let report = Report {
        profile: ctx.profile.to_string(),
        profile_rule: ctx.settings.profile_rule.clone(),
        backend: ctx.backend.as_str(),
        backend_chosen_by: ctx.settings.backend_chosen_by.as_str(),
        resolved: Some(reported),
        vault_token: None,
        warnings: place_warnings.iter().cloned().chain(warnings).collect(),
    };
    if args.json {
        super::write_stdout(&format!("{}\n", report.to_json()))?;
    } else {
        eprint!("{}", login_summary(&report, ctx));
    }
    for w in &report.warnings {
        if !(said_before_write && place_warnings.first() == Some(w)) {
            eprintln!("warning: {}", w.message);
        }
    }
    Ok(0)
}

/// `{PREFIX}_NO_PLAINTEXT_WARNING=1`: the file backend was chosen on
/// purpose (a server); `login` and `status` do not warn about it.
fn quiet_plaintext(ctx: &Context) -> bool {
    matches!(
        ctx.env.text(&ctx.names().no_plaintext_warning()),
        Ok(Some(v)) if v.trim() == "1"
    )
}

/// `seal keygen` and `seal init`: the public key on stdout (data), what was
/// done and what to set next on stderr.
fn seal(ctx: &Context, action: &SealCommand) -> Result<u8> {
    let names = ctx.names();
    match action {
        SealCommand::Keygen { out } => {
            let public = credstore::store::keygen(out, &ctx.settings.home)?;
            super::write_stdout(&format!("{public}\n"))?;
            eprintln!(
                "Wrote a new age identity to {} (mode 0600); its public key is above. Use it \
                 with {}={} and --backend sealed; keep a copy somewhere safe (without it the \
                 sealed files cannot be opened), or add a recovery key to {}.",
                out.display(),
                names.seal_identity_file(),
                out.display(),
                names.seal_recipients()
            );
        }
        SealCommand::Init { with_key } => {
            let store = ctx.settings.sealed_store(&ctx.env)?;
            let (path, public) = credstore::store::init_systemd_creds(
                &ctx.settings.file_store(),
                store.config(),
                with_key,
            )?;
            super::write_stdout(&format!("{public}\n"))?;
            eprintln!(
                "Made a new age identity, kept encrypted by systemd-creds (--with-key={with_key}) \
                 in {}; its public key is above. With {}=systemd-creds, --backend sealed uses \
                 it. It opens only on this machine: add a recovery key to {} to keep a way in.",
                path.display(),
                names.seal(),
                names.seal_recipients()
            );
        }
    }
    Ok(0)
}

fn env_policy_name(p: EnvPolicy) -> &'static str {
    match p {
        EnvPolicy::Allow => "allow",
        EnvPolicy::Warn => "warn",
        EnvPolicy::Deny => "deny",
    }
}

/// The manual pages, rendered from the clap definition (so they never
/// drift from `--help`).
fn man(dir: Option<&std::path::Path>) -> Result<u8> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    let render = |cmd: clap::Command| -> Result<Vec<u8>> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| Error::io("rendering", "the manual page", e))?;
        Ok(page)
    };
    let Some(dir) = dir else {
        super::write_stdout_bytes(&render(cmd)?)?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut written = Vec::new();
    let main = dir.join("credstore.1");
    std::fs::write(&main, render(cmd.clone())?).map_err(|e| Error::io("writing", &main, e))?;
    written.push(main);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("credstore-{}", sub.get_name());
        let path = dir.join(format!("{name}.1"));
        let page = render(sub.clone().name(name))?;
        std::fs::write(&path, page).map_err(|e| Error::io("writing", &path, e))?;
        written.push(path);
    }
    eprintln!(
        "Wrote {} manual pages into {} (read one with `man -l {}`).",
        written.len(),
        dir.display(),
        written[0].display()
    );
    Ok(0)
}

fn config(ctx: &Context, action: &ConfigCommand) -> Result<u8> {
    let file = ctx.settings.config_file();
    match action {
        ConfigCommand::Path => super::write_stdout(&format!("{}\n", file.path().display()))?,
        ConfigCommand::Get {
            key: ConfigKey::Backend,
        } => {
            if let Some(b) = file.backend(&ctx.profile)? {
                super::write_stdout(&format!("{}\n", b.as_str()))?;
            }
        }
        ConfigCommand::Set {
            key: ConfigKey::Backend,
            value,
        } => {
            let kind = BackendKind::parse(value)?;
            if kind == BackendKind::Memory {
                return Err(Error::Usage(
                    "the memory backend keeps nothing between runs, so it is not remembered; \
                     use --backend memory for one command"
                        .into(),
                ));
            }
            let path =
                file.set_backend(&ctx.profile, (kind != BackendKind::Auto).then_some(kind))?;
            eprintln!(
                "Profile {} now uses the {} backend when none is chosen ({}).",
                ctx.profile,
                kind.as_str(),
                path.display()
            );
        }
        ConfigCommand::Get {
            key: ConfigKey::Env,
        } => {
            let config = file.load()?;
            if let Some(p) = config
                .profiles
                .get(ctx.profile.as_str())
                .and_then(|p| p.env)
            {
                super::write_stdout(&format!("{}\n", env_policy_name(p)))?;
            }
        }
        ConfigCommand::Set {
            key: ConfigKey::Env,
            value,
        } => {
            let policy = match value.trim() {
                "allow" => EnvPolicy::Allow,
                "warn" => EnvPolicy::Warn,
                "deny" => EnvPolicy::Deny,
                _ => return Err(Error::Usage("env takes allow, warn or deny".into())),
            };
            let path = file.set_env_policy(&ctx.profile, Some(policy))?;
            eprintln!(
                "Profile {}: env = {} ({}).",
                ctx.profile,
                env_policy_name(policy),
                path.display()
            );
        }
        ConfigCommand::Unset {
            key: ConfigKey::Env,
        } => {
            let path = file.set_env_policy(&ctx.profile, None)?;
            eprintln!(
                "Profile {}: env = warn, the default ({}).",
                ctx.profile,
                path.display()
            );
        }
        ConfigCommand::Unset {
            key: ConfigKey::Backend,
        } => {
            let path = file.set_backend(&ctx.profile, None)?;
            eprintln!(
                "Profile {} uses the default backend (auto) again ({}).",
                ctx.profile,
                path.display()
            );
        }
        ConfigCommand::Get { key } => {
            let setting = key.setting()?;
            if let Some(v) = setting.get(&file.profile(&ctx.profile)?) {
                super::write_stdout(&format!("{}\n", shown(v)))?;
            }
        }
        ConfigCommand::Set { key, value } => {
            let setting = key.setting()?;
            let path = file.set(&ctx.profile, setting, Some(value))?;
            eprintln!(
                "Profile {}: {} remembered ({}); {} still wins when set.",
                ctx.profile,
                setting.key(),
                path.display(),
                setting.variable(ctx.names())
            );
        }
        ConfigCommand::Unset { key } => {
            let setting = key.setting()?;
            let path = file.set(&ctx.profile, setting, None)?;
            eprintln!(
                "Profile {}: {} forgotten ({}).",
                ctx.profile,
                setting.key(),
                path.display()
            );
        }
    }
    Ok(0)
}

/// "replaced account X by Y" when a login overwrites a credential of
/// another account or kind (claims only, never the secrets).
fn replaced(before: &StoredCredential, now: &credstore::Credential) -> Option<String> {
    let old = before.to_credential("the stored credential").ok()?;
    if old.expose_token() == now.expose_token() {
        return None;
    }
    let describe = |c: &credstore::Credential| match c.agent_identity() {
        Some(id) => format!(
            "the agent identity of account {}",
            shown(&id.claims().account_id)
        ),
        None => "an API key".to_string(),
    };
    let same_account = match (old.agent_identity(), now.agent_identity()) {
        (Some(a), Some(b)) => a.claims().account_id == b.claims().account_id,
        _ => false,
    };
    if same_account {
        return None; // a renewed identity of the same account: nothing to say
    }
    Some(format!(
        "this login replaced {} by {}",
        describe(&old),
        describe(now)
    ))
}

/// After a login with an explicit `--backend`, makes sure later plain
/// commands of the profile (no flag, no variable) read the credential just
/// stored: when the backend they would use (the remembered one, else auto)
/// does not give it back — another backend holds a different one, or it
/// went to Vault, which auto never reads — the choice is recorded in
/// `config.toml` (`auto` as "nothing recorded"). `memory` keeps nothing,
/// so there is nothing to remember. The path when the file changed.
fn remember_backend(
    ctx: &Context,
    stored: &StoredCredential,
) -> Result<Option<std::path::PathBuf>> {
    if ctx.settings.backend_chosen_by != ChosenBy::Flag || ctx.backend == BackendKind::Memory {
        return Ok(None);
    }
    let config = ctx.settings.config_file();
    let remembered = config.backend(&ctx.profile)?;
    let plain = remembered.unwrap_or(BackendKind::Auto);
    if plain == ctx.backend {
        return Ok(None);
    }
    let reads_it_back = ctx
        .settings
        .open_kind(plain, &ctx.env, Box::new(|_| {}))
        .and_then(|store| store.load(&ctx.profile))
        .is_ok_and(|found| found.is_some_and(|f| f.expose_token() == stored.expose_token()));
    if reads_it_back {
        return Ok(None);
    }
    let wanted = (ctx.backend != BackendKind::Auto).then_some(ctx.backend);
    let path = config.set_backend(&ctx.profile, wanted)?;
    if ctx.backend == BackendKind::Vault {
        // Where in Vault it went, too: plain commands later find it with
        // only a token in the environment.
        use credstore::config::Setting;
        let names = ctx.names();
        for (setting, vars) in [
            (
                Setting::VaultAddr,
                vec![
                    names.vault_addrs(),
                    "VAULT_ADDR".to_string(),
                    "BAO_ADDR".into(),
                ],
            ),
            (Setting::VaultMount, vec![names.vault_mount()]),
            (Setting::VaultPrefix, vec![names.vault_prefix()]),
        ] {
            for var in vars {
                if let Some(v) = ctx.env.text(&var)? {
                    config.set(&ctx.profile, setting, Some(&v))?;
                    break;
                }
            }
        }
    }
    Ok(Some(path))
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
            searched(ctx, store.as_ref())
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

/// Where `logout` looked: for `auto`, the file and — only on a host that
/// has one — the keychain.
fn searched(ctx: &Context, store: &dyn credstore::store::Store) -> String {
    use credstore::store::{is_not_there, KeychainStore, Store};
    if ctx.backend != BackendKind::Auto {
        return store.describe(&ctx.profile).to_string();
    }
    let file = ctx.settings.file_store().describe(&ctx.profile).to_string();
    match KeychainStore::new(ctx.settings.keychain.clone()).probe() {
        Err(e) if is_not_there(&e) => file,
        _ => format!("{} or {file}", store.describe(&ctx.profile)),
    }
}

fn status(ctx: &Context, json: bool) -> Result<u8> {
    if let Some(agent) = ctx.agent_client() {
        return super::daemon::status_via_agent(&agent, json);
    }
    let (report, code) = status_report(ctx)?;
    if json {
        super::write_stdout(&format!("{}\n", report.to_json()))?;
    } else {
        super::write_stdout(&report.to_human())?;
        for w in &report.warnings {
            eprintln!("warning: {}", w.message);
        }
    }
    Ok(code)
}

/// The status of `ctx`'s profile and its exit code (0 logged in and not
/// expired, else 1).
pub(super) fn status_report(ctx: &Context) -> Result<(Report, u8)> {
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
    let mut warnings: Vec<Warning> = findings
        .iter()
        .filter(|f| !(quiet_plaintext(ctx) && matches!(f, Finding::PlaintextActive { .. })))
        .map(|f| Warning::from_finding(f, from_env))
        .collect();
    if let Some(r) = &resolved {
        warnings.extend(
            credstore::health::shadowed_copies(&ctx.settings, &ctx.env, r)
                .iter()
                .map(|f| Warning::from_finding(f, from_env)),
        );
    }
    let mut reported = resolved.as_ref().map(|r| ReportedCredential::new(r, now));
    if let (Some(rep), Some(r)) = (reported.as_mut(), resolved.as_ref()) {
        rep.at_rest = credstore::health::at_rest(&ctx.settings, &ctx.env, r);
    }
    let expired = reported
        .as_ref()
        .and_then(|r| r.identity.as_ref())
        .is_some_and(|i| i.expired);
    let logged_in = reported.is_some();
    // Where the credential came from Vault: what the token in use is
    // (its lease and policies; never the token itself).
    let vault_token = reported
        .as_ref()
        .filter(|r| r.source_kind == credstore::store::SourceKind::Vault)
        .map(|_| {
            match credstore::store::VaultStore::from_env(
                &ctx.settings.environment(&ctx.env),
                ctx.names(),
            )
            .and_then(|v| v.token_info())
            {
                Ok(info) => info.to_string(),
                Err(e) => format!("cannot look it up ({e})"),
            }
        });
    let report = Report {
        profile: ctx.profile.to_string(),
        profile_rule: ctx.settings.profile_rule.clone(),
        backend: ctx.backend.as_str(),
        backend_chosen_by: ctx.settings.backend_chosen_by.as_str(),
        resolved: reported,
        vault_token,
        warnings,
    };
    Ok((report, if logged_in && !expired { 0 } else { 1 }))
}

fn token(ctx: &Context) -> Result<u8> {
    if let Some(agent) = ctx.agent_client() {
        let token = agent.token().map_err(|e| match e {
            Error::Agent {
                socket,
                kind: credstore::ErrorKind::NoCredential,
                ..
            } => Error::NoCredential(format!(
                "the signing agent at {} does not export tokens: it signs for you instead \
                 (`credstore headers`, `credstore assertion`). Start it with \
                 `credstore agent --allow-export` to allow this, or pass --no-agent to read the \
                 credential here",
                socket.display()
            )),
            e => e,
        })?;
        use secrecy::ExposeSecret;
        let token = token.expose_secret().as_bytes();
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(token.len() + 1));
        line.extend_from_slice(token);
        line.push(b'\n');
        super::write_stdout_bytes(&line)?;
        return Ok(0);
    }
    let resolved = active(ctx)?;
    let token = resolved.credential.expose_token().as_bytes();
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(token.len() + 1));
    line.extend_from_slice(token);
    line.push(b'\n');
    super::write_stdout_bytes(&line)?;
    Ok(0)
}

/// The active credential for the commands that hand it out (`token`,
/// `headers`, `assertion`, `register-task`): an expired one is refused,
/// and the shadow guard runs — a variable used while the profile's stored
/// credential is of another account or kind gets one stderr line naming
/// both, or a refusal with `env = "deny"` in config.toml.
pub(super) fn active(ctx: &Context) -> Result<Resolved> {
    let store = ctx.store()?;
    let resolved = ctx
        .resolver()
        .resolve(store.as_ref(), &ctx.profile)?
        .ok_or_else(|| not_logged_in(ctx))?;
    resolved
        .credential
        .ensure_not_expired(unix_now(), &resolved.source.describe())?;
    if matches!(resolved.source, Source::Env { .. }) {
        let policy = ctx.settings.config_file().env_policy(&ctx.profile)?;
        if policy != EnvPolicy::Allow {
            match credstore::health::env_shadow(store.as_ref(), &ctx.profile, &resolved) {
                Ok(None) => {}
                Ok(Some(f)) if policy == EnvPolicy::Deny => {
                    return Err(Error::Usage(format!(
                        "{f}, and profile {} has env = \"deny\" in {}: unset the variable, or \
                         set env = \"allow\" (or \"warn\") there",
                        ctx.profile,
                        ctx.settings.config_file().path().display()
                    )));
                }
                Ok(Some(f)) => eprintln!("note: {f}"),
                // Could not check: deny must not take that for "nothing hidden".
                Err(why) if policy == EnvPolicy::Deny => {
                    return Err(Error::Usage(format!(
                        "profile {} has env = \"deny\" in {}, and whether the variable hides \
                         its stored credential cannot be checked: {why}",
                        ctx.profile,
                        ctx.settings.config_file().path().display()
                    )));
                }
                Err(why) => eprintln!(
                    "warning: could not check whether the variable hides the stored credential: {why}"
                ),
            }
        }
    }
    Ok(resolved)
}

pub fn not_logged_in(ctx: &Context) -> Error {
    Error::NoCredential(format!(
        "no credential for profile {}: nothing is stored and no {} / {} is set. Run `credstore login --with-agent-identity` (token on stdin).",
        ctx.profile,
        ctx.names().api_key(),
        ctx.names().agent_identity()
    ))
}
