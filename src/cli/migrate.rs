//! `credstore migrate --to BACKEND [--from BACKEND]` (SPEC §6): copies the
//! profile's *stored* credential (never an environment one) to another
//! backend, reads it back to verify it, and only then removes it from the
//! source. On any failure before that last step the source is untouched.

use super::backends;
use super::context::Context;
use credstore::store::{
    AutoStore, BackendKind, FileStore, Location, SourceKind, Store, VaultStore,
};
use credstore::{Error, Result};

/// `migrate` options.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Where to move the credential: file, keychain or vault
    #[arg(long, value_name = "BACKEND")]
    pub to: String,
    /// Where it is now: file, keychain, vault or auto [default: the --backend in
    /// effect; with auto, wherever auto reads it from]
    #[arg(long, value_name = "BACKEND")]
    pub from: Option<String>,
}

/// A plain backend, without `auto`'s fallback or cleanup: migrate does
/// its own steps in its own order.
fn plain_store(ctx: &Context, kind: BackendKind) -> Result<Box<dyn Store>> {
    match kind {
        BackendKind::File => Ok(Box::new(FileStore::new(ctx.home.clone()))),
        BackendKind::Keychain => Ok(Box::new(backends::keychain(ctx)?)),
        BackendKind::Memory => Err(Error::Usage(
            "the memory backend keeps nothing between runs, so nothing can be migrated to or \
             from it"
                .into(),
        )),
        BackendKind::Vault => Ok(Box::new(VaultStore::from_env(&ctx.env)?)),
        BackendKind::Auto => Err(Error::Usage(
            "--to auto is ambiguous: name the backend to move the credential to (file, \
             keychain or vault)"
                .into(),
        )),
    }
}

pub fn migrate(ctx: &Context, args: &MigrateArgs) -> Result<u8> {
    let to_kind = BackendKind::parse(&args.to)?;
    let from_kind = match &args.from {
        Some(f) => BackendKind::parse(f)?,
        None => ctx.backend,
    };
    let profile = &ctx.profile;
    let to = plain_store(ctx, to_kind)?;

    // The source: a named backend, or wherever `auto` reads it from.
    let (from, credential): (Box<dyn Store>, _) = if from_kind == BackendKind::Auto {
        let auto = AutoStore::new(
            Box::new(backends::keychain(ctx)?),
            FileStore::new(ctx.home.clone()),
            Box::new(|_| {}),
        );
        match auto.find(profile)? {
            Some((SourceKind::Keychain, c)) => (Box::new(backends::keychain(ctx)?), c),
            Some((_, c)) => (Box::new(FileStore::new(ctx.home.clone())), c),
            None => return Err(nothing_stored(ctx, &auto.locate(profile)?)),
        }
    } else {
        let from = plain_store(ctx, from_kind)?;
        match from.load(profile)? {
            Some(c) => (from, c),
            None => return Err(nothing_stored(ctx, &from.describe(profile))),
        }
    };
    if from.name() == to.name() {
        return Err(Error::Usage(format!(
            "the credential of profile {profile} is already in the {} backend; choose another \
             --to",
            to.name()
        )));
    }
    let source = from.describe(profile);
    let target = to.describe(profile);

    match to.load(profile) {
        Ok(Some(_)) => eprintln!("note: replacing the credential already stored in {target}."),
        Ok(None) => {}
        // A destination that cannot be read is not written blindly.
        Err(e) => return Err(e),
    }
    if target.kind == SourceKind::File {
        eprintln!(
            "warning: the credential goes to a plaintext file: {} (mode 0600, readable by you \
             and root).",
            target.detail
        );
    }
    to.save(profile, &credential)?;
    let verified = to.load(profile)?.is_some_and(|back| {
        back.auth_mode() == credential.auth_mode()
            && back.expose_token().as_bytes() == credential.expose_token().as_bytes()
    });
    if !verified {
        return Err(Error::Backend {
            backend: to.name(),
            message: format!(
                "the copy in {target} did not read back the same; the source {source} was \
                 left as it is"
            ),
        });
    }
    match from.delete(profile) {
        Ok(_) => {}
        Err(e) => {
            eprintln!(
                "error: the credential was copied to {target} and verified, but removing it \
                 from {source} failed; it is now in both places. Remove it from there with \
                 `credstore logout --backend {}`.",
                from.name()
            );
            return Err(e);
        }
    }
    eprintln!(
        "Moved the credential of profile {profile} from {source} to {target} (verified by \
         reading it back); removed it from {source}."
    );
    if ctx.backend != to_kind && !matches!(ctx.backend, BackendKind::Auto) {
        eprintln!(
            "note: your selected backend is still {}; pass --backend {} (or set \
             CREDSTORE_BACKEND) to use the moved credential.",
            ctx.backend.as_str(),
            to_kind.as_str()
        );
    }
    let resolver = ctx.resolver();
    for mode in [
        credstore::AuthMode::ApiKey,
        credstore::AuthMode::AgentIdentity,
    ] {
        if let Some(var) = resolver.set_variable(mode) {
            eprintln!(
                "note: {var} is set: environment credentials are never migrated, and it keeps \
                 shadowing the stored one until you unset it"
            );
        }
    }
    Ok(0)
}

fn nothing_stored(ctx: &Context, location: &Location) -> Error {
    Error::NoCredential(format!(
        "nothing to migrate: no credential is stored for profile {} in {location} \
         (environment credentials are never migrated)",
        ctx.profile
    ))
}
