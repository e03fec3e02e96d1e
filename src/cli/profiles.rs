//! `credstore profiles` (alias `list`), `status --all` and `logout --all`:
//! every profile stored in every reachable backend, from the library's
//! [`inventory`].

use super::context::Context;
use super::report::{key_hint, shown};
use credstore::credential::{rfc3339, unix_now, AuthMode, Credential};
use credstore::health::relative;
use credstore::store::{inventory, BackendKind, ChosenBy, Held, Inventory, Store};
use credstore::Result;
use serde_json::{json, Value};

/// The `profiles --json` schema number: a change to the document is a new
/// number.
pub const PROFILES_SCHEMA: u32 = 1;

/// What one listed credential is, without its secret.
struct Row {
    profile: String,
    backend: &'static str,
    location: String,
    in_use: bool,
    kind: Option<AuthMode>,
    account: Option<String>,
    key_hint: Option<String>,
    expires_at: Option<i64>,
    error: Option<String>,
}

fn row(held: &Held) -> Row {
    let mut r = Row {
        profile: held.profile.to_string(),
        backend: held.backend.as_str(),
        location: String::new(),
        in_use: held.in_use,
        kind: None,
        account: None,
        key_hint: None,
        expires_at: None,
        error: None,
    };
    let found = match &held.found {
        Ok(found) => found,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.location = found.location.detail.clone();
    match found.credential.to_credential(&found.location.to_string()) {
        Ok(credential) => describe(&credential, &mut r),
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

fn describe(credential: &Credential, r: &mut Row) {
    r.kind = Some(credential.auth_mode());
    r.key_hint = key_hint(credential);
    if let Some(id) = credential.agent_identity() {
        r.account = Some(id.claims().account_id.clone());
        r.expires_at = Some(id.claims().expires_at);
    }
}

/// The backend a flag or the environment chose for every profile, if one
/// did (`logout --all` then stays inside it).
fn chosen_for_all(ctx: &Context) -> Option<BackendKind> {
    matches!(
        ctx.settings.backend_chosen_by,
        ChosenBy::Flag | ChosenBy::Env
    )
    .then_some(ctx.backend)
}

fn note_variables(ctx: &Context) {
    let resolver = ctx.resolver();
    for mode in [AuthMode::ApiKey, AuthMode::AgentIdentity] {
        if let Some(var) = resolver.set_variable(mode) {
            eprintln!("note: {var} is set: commands use it before any stored credential");
        }
    }
}

/// Says which backends failed; `true` when any did.
fn report_unreachable(inv: &Inventory) -> bool {
    for u in &inv.unreachable {
        eprintln!("error: {}: {}", u.backend.as_str(), u.error);
    }
    !inv.unreachable.is_empty()
}

/// `credstore profiles [--json]`: exit 0 when something is listed and
/// every backend answered, 1 when nothing is stored anywhere, 4 when a
/// backend or an entry could not be read (after listing the rest).
pub fn profiles(ctx: &Context, json: bool) -> Result<u8> {
    let inv = inventory(&ctx.settings, &ctx.env, chosen_for_all(ctx));
    let rows: Vec<Row> = inv.held.iter().map(row).collect();
    let now = unix_now();
    if json {
        let listed: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "profile": r.profile,
                    "backend": r.backend,
                    "location": r.location,
                    "in_use": r.in_use,
                    "auth_mode": r.kind.map(AuthMode::as_str),
                    "account_id": r.account,
                    "key_hint": r.key_hint,
                    "expires_at": r.expires_at.map(rfc3339),
                    "expires_in_seconds": r.expires_at.map(|e| e - now),
                    "error": r.error,
                })
            })
            .collect();
        let unreachable: Vec<Value> = inv
            .unreachable
            .iter()
            .map(|u| json!({"backend": u.backend.as_str(), "message": u.error.to_string()}))
            .collect();
        let doc = json!({
            "schema": PROFILES_SCHEMA,
            "current_profile": ctx.profile.to_string(),
            "profiles": listed,
            "unreachable": unreachable,
        });
        super::write_stdout(&format!("{doc}\n"))?;
    } else if rows.is_empty() {
        eprintln!(
            "No credential is stored: nothing in {}.",
            inv.searched_text()
        );
    } else {
        super::write_stdout(&table(&rows, ctx, now))?;
    }
    note_variables(ctx);
    let failed = report_unreachable(&inv);
    if !json {
        for r in rows.iter().filter(|r| r.error.is_some()) {
            eprintln!(
                "error: profile {} in {}: {}",
                r.profile,
                r.backend,
                r.error.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(if failed || rows.iter().any(|r| r.error.is_some()) {
        4
    } else if rows.is_empty() {
        1
    } else {
        0
    })
}

fn table(rows: &[Row], ctx: &Context, now: i64) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let current = if r.profile == ctx.profile.as_str() {
                "*"
            } else {
                " "
            };
            let kind = match (&r.error, r.kind) {
                (Some(_), _) => "unreadable".to_string(),
                (None, Some(k)) => k.describe().to_string(),
                (None, None) => "-".to_string(),
            };
            let who = r
                .account
                .as_deref()
                .map(shown)
                .or_else(|| r.key_hint.clone())
                .unwrap_or_else(|| "-".into());
            let expires = match r.expires_at {
                Some(e) if e <= now => format!("{} (EXPIRED)", rfc3339(e)),
                Some(e) => format!("{} ({})", rfc3339(e), relative(e - now)),
                None => "-".into(),
            };
            let used = if r.in_use { "in use" } else { "not used" };
            [
                format!("{current} {}", r.profile),
                r.backend.to_string(),
                kind,
                who,
                expires,
                used.to_string(),
            ]
        })
        .collect();
    let head = [
        "  PROFILE",
        "BACKEND",
        "KIND",
        "ACCOUNT/KEY",
        "EXPIRES",
        "USE",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head);
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]);
    }
    out
}

/// `credstore status --all [--json]`: the status of every profile that
/// holds a credential somewhere (and of the current one). Exit 0 when all
/// are logged in and unexpired, 1 otherwise, 4 when one could not be read.
pub fn status_all(ctx: &Context, json: bool) -> Result<u8> {
    let inv = inventory(&ctx.settings, &ctx.env, chosen_for_all(ctx));
    let mut names = inv.profiles();
    if !names.contains(&ctx.profile) {
        names.push(ctx.profile.clone());
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    }
    let mut code = 0u8;
    let mut docs = Vec::new();
    let mut human = String::new();
    for name in &names {
        let result = ctx
            .for_profile(name)
            .and_then(|c| super::commands::status_report(&c));
        match result {
            Ok((report, c)) => {
                code = code.max(c);
                if json {
                    docs.push(report.to_json());
                } else {
                    if !human.is_empty() {
                        human.push('\n');
                    }
                    human.push_str(&report.to_human());
                    for w in &report.warnings {
                        human.push_str(&format!("  warning: {}\n", w.message));
                    }
                }
            }
            Err(e) => {
                code = 4;
                eprintln!("error: profile {name}: {e}");
                if json {
                    docs.push(json!({"profile": name.to_string(), "error": e.to_string()}));
                }
            }
        }
    }
    if json {
        let doc = json!({
            "schema": super::report::STATUS_SCHEMA,
            "profiles": docs,
        });
        super::write_stdout(&format!("{doc}\n"))?;
    } else {
        super::write_stdout(&human)?;
    }
    if report_unreachable(&inv) {
        code = 4;
    }
    Ok(code)
}

/// `credstore logout --all`: removes every stored credential `profiles`
/// lists (only those of the backend `--backend` or the environment names,
/// when one does), as one change, naming every place. Exit 0 when
/// something was removed and nothing failed, 1 when nothing was stored, 4
/// on a failure (the rest is still removed).
pub fn logout_all(ctx: &Context) -> Result<u8> {
    let _lock = ctx.settings.lock_changes()?;
    let inv = inventory(&ctx.settings, &ctx.env, chosen_for_all(ctx));
    let mut stores: Vec<(BackendKind, Box<dyn Store>)> = Vec::new();
    let mut removed = 0usize;
    let mut failed = report_unreachable(&inv);
    for held in &inv.held {
        if !stores.iter().any(|(k, _)| *k == held.backend) {
            match ctx.settings.open_plain(held.backend, &ctx.env) {
                Ok(s) => stores.push((held.backend, s)),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {}: {e}", held.backend.as_str());
                    continue;
                }
            }
        }
        let Some((_, store)) = stores.iter().find(|(k, _)| *k == held.backend) else {
            continue;
        };
        match store.delete(&held.profile) {
            Ok(places) => {
                for place in places {
                    removed += 1;
                    eprintln!(
                        "Removed the credential of profile {} from {place}.",
                        held.profile
                    );
                }
            }
            Err(e) => {
                failed = true;
                eprintln!(
                    "error: profile {} in {}: {e}",
                    held.profile,
                    held.backend.as_str()
                );
            }
        }
    }
    if removed == 0 && !failed {
        eprintln!(
            "Nothing to remove: no credential is stored in {}.",
            inv.searched_text()
        );
    }
    for mode in [AuthMode::ApiKey, AuthMode::AgentIdentity] {
        if let Some(var) = ctx.resolver().set_variable(mode) {
            eprintln!("note: {var} is still set in the environment; logout does not change it");
        }
    }
    Ok(if failed {
        4
    } else if removed == 0 {
        1
    } else {
        0
    })
}
