//! `credstore migrate --to BACKEND [--from BACKEND]` (SPEC §6): copies the
//! profile's *stored* credential (never an environment one) to another
//! backend, reads it back to verify it, and only then removes it from the
//! source. On any failure before that last step the source is untouched.

use super::context::Context;
use credstore::store::{self, BackendKind, Store};
use credstore::{Error, Result};

/// `migrate` options.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Where to move the credential: file, keychain, vault or sealed
    #[arg(long, value_name = "BACKEND", add = super::completion::backends())]
    pub to: String,
    /// Where it is now: file, keychain, vault, sealed or auto [default: the --backend in
    /// effect; with auto, wherever auto reads it from]
    #[arg(long, value_name = "BACKEND", add = super::completion::backends())]
    pub from: Option<String>,
}

pub fn migrate(ctx: &Context, args: &MigrateArgs) -> Result<u8> {
    let to_kind = BackendKind::parse(&args.to)?;
    let from_kind = match &args.from {
        Some(f) => BackendKind::parse(f)?,
        None => ctx.backend,
    };
    let profile = &ctx.profile;
    if to_kind == BackendKind::Auto {
        return Err(Error::Usage(
            "--to auto is ambiguous: name the backend to move the credential to (file, \
             keychain, vault or sealed)"
                .into(),
        ));
    }
    if to_kind == BackendKind::Sealed && from_kind == BackendKind::Sealed {
        return Err(Error::Usage(
            "the credential is already sealed; to seal it to other keys, change the key \
             settings and log in again"
                .into(),
        ));
    }
    if to_kind == BackendKind::Vault || from_kind == BackendKind::Vault {
        ctx.warn_if_insecure_vault();
    }
    let to = ctx.settings.open_plain(to_kind, &ctx.env)?;
    // The remembered backend may have to follow the credential: the config
    // must be usable before anything moves.
    let config = ctx.settings.config_file();
    let remembered = config.backend(profile)?;
    // One change from here to the end: no login, logout or other migrate
    // of this home runs between the copy and the delete.
    let lock = ctx.settings.lock_changes()?;

    // The source: a named backend, or wherever `auto` reads it from now.
    let mut source_kind = from_kind;
    let from: Box<dyn Store> = if from_kind == BackendKind::Auto {
        match ctx.settings.locate_auto()? {
            Some((kind, _)) => {
                source_kind = kind;
                ctx.settings.open_plain(kind, &ctx.env)?
            }
            None => {
                return Err(Error::NoCredential(format!(
                    "nothing to migrate: no credential is stored for profile {profile} in the \
                     keychain or {} (environment credentials are never migrated)",
                    ctx.settings.file_store().describe(profile)
                )))
            }
        }
    } else {
        ctx.settings.open_plain(from_kind, &ctx.env)?
    };
    let moved = store::migrate(from.as_ref(), to.as_ref(), profile, &lock, &|target| {
        if store::is_plaintext(target) {
            eprintln!(
                "warning: the credential goes to a plaintext file: {} (mode 0600, readable by \
                 you and root).",
                target.detail
            );
        }
    })?;
    // The remembered backend follows the credential, in the same change,
    // when plain commands read it where it was: the profile remembered the
    // source, or nothing was remembered (auto: keychain or file) and it
    // went to Vault or the sealed backend, which auto never reads. A copy moved out of another
    // place leaves the remembered one alone. Moved: a failure here is a
    // warning.
    let plain_read_the_source = match remembered {
        Some(kind) => kind == source_kind,
        None => matches!(source_kind, BackendKind::File | BackendKind::Keychain),
    };
    let wanted = match remembered {
        Some(_) => Some(to_kind),
        None if matches!(to_kind, BackendKind::Vault | BackendKind::Sealed) => Some(to_kind),
        None => None,
    };
    let followed = if plain_read_the_source && wanted.is_some() && wanted != remembered {
        config
            .set_backend(profile, wanted)
            .map_err(|e| {
                eprintln!("warning: the credential moved, but the remembered backend was not updated: {e}");
            })
            .ok()
    } else {
        None
    };
    drop(lock);
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
    if let Some(path) = &followed {
        eprintln!(
            "note: profile {profile} now uses the {} backend when none is chosen (remembered in \
             {}).",
            to_kind.as_str(),
            path.display()
        );
    }
    // `auto` reads the keychain and the file; anything else must be named.
    let plain_backend = match ctx.settings.backend_chosen_by {
        store::ChosenBy::Config | store::ChosenBy::Default if followed.is_some() => to_kind,
        _ => ctx.backend,
    };
    let still_found = plain_backend == to_kind
        || (plain_backend == BackendKind::Auto
            && matches!(to_kind, BackendKind::File | BackendKind::Keychain));
    if !still_found {
        eprintln!(
            "note: your selected backend is still {}; pass --backend {} (or set \
             {}) to use the moved credential.",
            plain_backend.as_str(),
            to_kind.as_str(),
            ctx.names().backend()
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
