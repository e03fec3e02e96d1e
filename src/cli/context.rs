//! What every command needs: the environment, the settings (profile,
//! backend, home — chosen by the library's factory), the JWKS.

use super::Cli;
use credstore::env::{EnvNames, ProcessEnv};
use credstore::profile::Profile;
use credstore::resolve::Resolver;
use credstore::store::{BackendKind, ChangeLock, Selection, Settings, Store, VaultConfig};
use credstore::{Result, Verifier};

pub struct Context {
    pub env: ProcessEnv,
    pub settings: Settings,
    pub profile: Profile,
    pub backend: BackendKind,
    pub no_env: bool,
    /// `--no-agent`: never ask a signing agent.
    pub no_agent: bool,
    /// The JWKS every agent identity is verified against, when configured.
    pub verifier: Option<Verifier>,
    /// What the command line chose (for [`Context::for_profile`]).
    pub selection: Selection,
}

impl Context {
    pub fn from_cli(cli: &Cli) -> Result<Context> {
        let env = ProcessEnv;
        let selection = Selection {
            backend: cli.backend.clone(),
            profile: cli.profile.clone(),
            cwd: std::env::current_dir().ok(),
        };
        let settings = Settings::resolve(&env, &EnvNames::default(), &selection)?;
        // Commands without the options still honour CREDSTORE_JWKS.
        let verifier = match cli.command.jwks() {
            Some(args) => args.verifier(&env, &settings.names)?,
            None => super::agent::JwksArgs::default().verifier(&env, &settings.names)?,
        };
        Ok(Context {
            env,
            profile: settings.profile.clone(),
            backend: settings.backend,
            settings,
            no_env: cli.no_env,
            no_agent: cli.no_agent,
            verifier,
            selection,
        })
    }

    /// The same command line for another profile (as if `--profile` named
    /// it): its own remembered backend, unless a flag or the environment
    /// chose one for every profile.
    pub fn for_profile(&self, profile: &Profile) -> Result<Context> {
        let selection = Selection {
            profile: Some(profile.to_string()),
            ..self.selection.clone()
        };
        let settings = Settings::resolve(&self.env, self.names(), &selection)?;
        Ok(Context {
            env: ProcessEnv,
            profile: settings.profile.clone(),
            backend: settings.backend,
            settings,
            no_env: self.no_env,
            no_agent: self.no_agent,
            verifier: self.verifier.clone(),
            selection,
        })
    }

    pub fn names(&self) -> &EnvNames {
        &self.settings.names
    }

    pub fn resolver(&self) -> Resolver<'_> {
        let mut r = Resolver::new(&self.env).with_names(self.settings.names.clone());
        if let Some(v) = &self.verifier {
            r = r.with_verifier(v);
        }
        if self.no_env {
            r.without_env()
        } else {
            r
        }
    }

    /// The signing agent `{PREFIX}_AGENT_SOCK` names, unless `--no-agent`.
    pub fn agent_client(&self) -> Option<credstore::sockagent::AgentClient> {
        if self.no_agent {
            return None;
        }
        credstore::sockagent::AgentClient::from_env(&self.env, self.names())
    }

    /// Opens the selected backend.
    pub fn store(&self) -> Result<Box<dyn Store>> {
        if self.backend == BackendKind::Vault {
            self.warn_if_insecure_vault();
        }
        let store = self
            .settings
            .open(&self.env, Box::new(super::backends::print_notice))?;
        // The calls that can be slow say so on a terminal after 0.5 s.
        Ok(match self.backend {
            BackendKind::Keychain | BackendKind::Auto => Box::new(super::progress::Watched::new(
                store,
                "the keychain".into(),
                self.settings.keychain.timeout(),
            )),
            BackendKind::Vault => {
                let (what, limit) = match VaultConfig::from_env(
                    &self.settings.environment(&self.env),
                    self.names(),
                ) {
                    Ok(c) => (format!("Vault at {}", c.addrs().join(", ")), c.timeout()),
                    Err(_) => ("Vault".to_string(), credstore::http::DEFAULT_TIMEOUT),
                };
                Box::new(super::progress::Watched::new(store, what, limit))
            }
            _ => store,
        })
    }

    /// Says so when plain http to a remote Vault was allowed explicitly
    /// (`{PREFIX}_VAULT_ALLOW_HTTP=1`): the token and the credential cross
    /// the network in clear.
    pub fn warn_if_insecure_vault(&self) {
        if let Ok(config) =
            VaultConfig::from_env(&self.settings.environment(&self.env), self.names())
        {
            if config.insecure_http() {
                eprintln!(
                    "warning: {} is plain http to a host that is not loopback ({} is set): the \
                     Vault token and the credential cross the network unencrypted",
                    config
                        .addrs()
                        .iter()
                        .filter(|a| a.starts_with("http://") && !credstore::http::is_loopback_url(a))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.names().vault_allow_http()
                );
            }
        }
    }

    /// The profile's change lock, held across every step of a change
    /// (`login`, `logout`, `migrate`). The memory backend keeps nothing
    /// another process could see, so it needs none.
    pub fn lock_changes(&self) -> Result<ChangeLock> {
        if self.backend == BackendKind::Memory {
            return Ok(ChangeLock::none());
        }
        self.settings.lock_changes()
    }
}
