//! `credstore migrate --to BACKEND [--from BACKEND]` (SPEC §6): copies the
//! profile's *stored* credential (never an environment one) to another
//! backend, reads it back to verify it, and only then removes it from the
//! source. On any failure before that last step the source is untouched.

use super::backends;
use super::context::Context;
use credstore::store::{
    self, AutoStore, BackendKind, FileStore, Location, SourceKind, Store, VaultStore,
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
    let from: Box<dyn Store> = if from_kind == BackendKind::Auto {
        let auto = AutoStore::new(
            Box::new(backends::keychain(ctx)?),
            FileStore::new(ctx.home.clone()),
            Box::new(|_| {}),
        );
        match auto.find(profile)? {
            Some((SourceKind::Keychain, _)) => Box::new(backends::keychain(ctx)?),
            Some(_) => Box::new(FileStore::new(ctx.home.clone())),
            None => return Err(nothing_stored(ctx, &auto.locate(profile)?)),
        }
    } else {
        plain_store(ctx, from_kind)?
    };
    let moved = store::migrate(from.as_ref(), to.as_ref(), profile, &|target| {
        if store::is_plaintext(target) {
            eprintln!(
                "warning: the credential goes to a plaintext file: {} (mode 0600, readable by \
                 you and root).",
                target.detail
            );
        }
    })?;
    if moved.replaced {
        eprintln!(
            "note: replaced the credential that was stored in {}.",
            moved.target
        );
    }
    eprintln!(
        "Moved the credential of profile {profile} from {} to {} (verified by reading it \
         back); removed it from {}.",
        moved.source, moved.target, moved.source
    );
    // `auto` reads the keychain and the file; anything else must be named.
    let still_found = ctx.backend == to_kind
        || (ctx.backend == BackendKind::Auto
            && matches!(to_kind, BackendKind::File | BackendKind::Keychain));
    if !still_found {
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
