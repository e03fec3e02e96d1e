//! What every command needs: the environment, the profile, the backend.

use super::Cli;
use credstore::profile::Profile;
use credstore::resolve::{non_blank, ProcessEnv, Resolver};
use credstore::store::{
    AutoStore, BackendKind, FileStore, KeychainFirst, MemoryStore, Store, VaultStore,
};
use credstore::{Error, Result, Verifier};
use std::path::PathBuf;

pub struct Context {
    pub env: ProcessEnv,
    pub profile: Profile,
    pub backend: BackendKind,
    pub no_env: bool,
    pub home: PathBuf,
    /// The JWKS every agent identity is verified against, when configured.
    pub verifier: Option<Verifier>,
}

/// Names the variable a bad setting came from.
fn from_variable(name: &str, e: Error) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(format!("{name}: {m}")),
        other => other,
    }
}

impl Context {
    pub fn from_cli(cli: &Cli) -> Result<Context> {
        let env = ProcessEnv;
        let profile = match &cli.profile {
            Some(p) => Profile::new(p)?,
            None => match non_blank(&env, "CREDSTORE_PROFILE") {
                Some(p) => {
                    Profile::new(p.trim()).map_err(|e| from_variable("CREDSTORE_PROFILE", e))?
                }
                None => Profile::default_profile(),
            },
        };
        let backend = match &cli.backend {
            Some(b) => BackendKind::parse(b)?,
            None => match non_blank(&env, "CREDSTORE_BACKEND") {
                Some(b) => {
                    BackendKind::parse(&b).map_err(|e| from_variable("CREDSTORE_BACKEND", e))?
                }
                None => BackendKind::Auto,
            },
        };
        let home = match non_blank(&env, "CREDSTORE_HOME") {
            Some(h) => PathBuf::from(h.trim()),
            None => directories::ProjectDirs::from("", "", "credstore")
                .map(|d| d.config_dir().to_path_buf())
                .ok_or_else(|| {
                    Error::Usage(
                        "cannot find a home directory for the credential file; set CREDSTORE_HOME"
                            .into(),
                    )
                })?,
        };
        let verifier = cli.jwks.verifier(&env)?;
        Ok(Context {
            env,
            profile,
            backend,
            no_env: cli.no_env,
            home,
            verifier,
        })
    }

    pub fn resolver(&self) -> Resolver<'_> {
        let mut r = Resolver::new(&self.env);
        if let Some(v) = &self.verifier {
            r = r.with_verifier(v);
        }
        if self.no_env {
            r.without_env()
        } else {
            r
        }
    }

    /// Opens the selected backend.
    pub fn store(&self) -> Result<Box<dyn Store>> {
        let file = FileStore::new(self.home.clone());
        Ok(match self.backend {
            BackendKind::File => Box::new(file),
            BackendKind::Memory => Box::new(MemoryStore::new()),
            BackendKind::Auto => Box::new(AutoStore::new(
                Box::new(super::backends::keychain(self)?),
                file,
                Box::new(super::backends::print_notice),
            )),
            BackendKind::Keychain => Box::new(KeychainFirst::new(
                Box::new(super::backends::keychain(self)?),
                file,
                Box::new(super::backends::print_notice),
            )),
            BackendKind::Vault => Box::new(VaultStore::from_env(&self.env)?),
        })
    }
}
