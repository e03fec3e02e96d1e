//! The status document (SPEC §6.2) and its human form. Only non-secret
//! fields ever reach these.

use credstore::credential::{rfc3339, unix_now, Claims, Credential};
use credstore::resolve::Resolved;
use credstore::store::SourceKind;
use serde_json::{json, Value};

pub struct Report {
    pub profile: String,
    pub resolved: Option<ReportedCredential>,
    pub warnings: Vec<String>,
}

pub struct ReportedCredential {
    pub source_kind: SourceKind,
    pub source_detail: String,
    pub auth_mode: &'static str,
    pub identity: Option<Identity>,
}

pub struct Identity {
    pub claims: Claims,
    pub expired: bool,
}

impl ReportedCredential {
    pub fn new(resolved: &Resolved, now: i64) -> ReportedCredential {
        let location = resolved.source.location();
        ReportedCredential {
            source_kind: location.kind,
            source_detail: location.detail,
            auth_mode: resolved.credential.auth_mode().as_str(),
            identity: identity(&resolved.credential, now),
        }
    }
}

fn identity(credential: &Credential, now: i64) -> Option<Identity> {
    let id = credential.agent_identity()?;
    Some(Identity {
        claims: id.claims().clone(),
        expired: id.is_expired_at(now),
    })
}

/// A claim or path as it may be shown on a terminal: control characters
/// (escape sequences, newlines) and invisible or direction-changing
/// characters are written as `\u{…}`, so a token's text cannot restyle the
/// terminal or forge lines. (The JSON output escapes them by itself.)
pub fn shown(text: &str) -> String {
    credstore::text::shown(text).into_owned()
}

use credstore::health::relative;

impl Report {
    pub fn to_json(&self) -> Value {
        match &self.resolved {
            None => json!({
                "logged_in": false,
                "profile": self.profile,
                "source": null,
                "auth_mode": null,
                "identity": null,
                "warnings": self.warnings,
            }),
            Some(r) => json!({
                "logged_in": true,
                "profile": self.profile,
                "source": {"kind": r.source_kind.as_str(), "detail": r.source_detail},
                "auth_mode": r.auth_mode,
                "identity": r.identity.as_ref().map(|i| json!({
                    "agent_runtime_id": i.claims.agent_runtime_id,
                    "account_id": i.claims.account_id,
                    "chatgpt_user_id": i.claims.chatgpt_user_id,
                    "email": i.claims.email,
                    "plan_type": i.claims.plan_type,
                    "fedramp": i.claims.fedramp,
                    "issued_at": rfc3339(i.claims.issued_at),
                    "expires_at": rfc3339(i.claims.expires_at),
                    "expired": i.expired,
                })),
                "warnings": self.warnings,
            }),
        }
    }

    /// The human form: facts as aligned lines (stdout); warnings go to
    /// stderr separately.
    pub fn to_human(&self) -> String {
        let Some(r) = &self.resolved else {
            return format!(
                "Not logged in (profile {}).\nRun `credstore login --with-agent-identity` or `credstore login --with-api-key` and paste the credential on stdin.\n",
                self.profile
            );
        };
        let mut out = String::new();
        let mut line = |k: &str, v: &str| out.push_str(&format!("  {k:<10}{v}\n"));
        line("profile", &self.profile);
        line(
            "source",
            &format!("{} {}", r.source_kind.as_str(), shown(&r.source_detail)),
        );
        match &r.identity {
            None => line("kind", "API key"),
            Some(i) => {
                line("kind", "agent identity");
                line("agent", &shown(&i.claims.agent_runtime_id));
                line("account", &shown(&i.claims.account_id));
                line("user", &shown(&i.claims.chatgpt_user_id));
                line("email", &shown(&i.claims.email));
                line("plan", &shown(&i.claims.plan_type));
                line("fedramp", if i.claims.fedramp { "yes" } else { "no" });
                line("issued", &rfc3339(i.claims.issued_at));
                let now = unix_now();
                let state = if i.expired {
                    "EXPIRED".to_string()
                } else {
                    relative(i.claims.expires_at - now)
                };
                line(
                    "expires",
                    &format!("{} ({state})", rfc3339(i.claims.expires_at)),
                );
            }
        }
        let head = if r.identity.as_ref().is_some_and(|i| i.expired) {
            "Logged in, but the credential has expired:\n"
        } else {
            "Logged in:\n"
        };
        format!("{head}{out}")
    }
}
