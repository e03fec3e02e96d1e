//! The status document (SPEC §6.2) and its human form. Only non-secret
//! fields ever reach these.

use credstore::credential::{rfc3339, unix_now, Claims, Credential};
use credstore::resolve::Resolved;
use credstore::store::SourceKind;
use serde_json::{json, Value};

pub struct Report {
    pub profile: String,
    /// The config.toml rule (`dir`) that chose the profile, if one did.
    pub profile_rule: Option<String>,
    /// The selected backend and what chose it (SPEC §6.2).
    pub backend: &'static str,
    pub backend_chosen_by: &'static str,
    pub resolved: Option<ReportedCredential>,
    /// The Vault token in use (source, lease left, policies; never the
    /// token), when the credential came from Vault. Human form only.
    pub vault_token: Option<String>,
    pub warnings: Vec<Warning>,
}

/// A warning as `status --json` carries it: a stable code and the message
/// (the library's words plus the CLI's advice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

impl Warning {
    pub fn new(code: &'static str, message: impl Into<String>) -> Warning {
        Warning {
            code,
            message: message.into(),
        }
    }

    /// A library finding with the CLI's advice appended.
    pub fn from_finding(f: &credstore::health::Finding, from_env: bool) -> Warning {
        Warning::new(
            f.code(),
            format!("{f}{}", super::advice::finding(f, from_env)),
        )
    }
}

/// The `status --json` schema number (SPEC §6.2): a change to the
/// document is a new number.
pub const STATUS_SCHEMA: u32 = 2;

pub struct ReportedCredential {
    /// `sk-…wxyz` for an API key long enough to hide the rest.
    pub key_hint: Option<String>,
    pub source_kind: SourceKind,
    pub source_detail: String,
    pub auth_mode: &'static str,
    pub identity: Option<Identity>,
    /// How a sealed credential is kept ("encrypted at rest (age, …)").
    pub at_rest: Option<String>,
}

pub struct Identity {
    pub claims: Claims,
    pub expired: bool,
}

impl ReportedCredential {
    pub fn new(resolved: &Resolved, now: i64) -> ReportedCredential {
        let location = resolved.source.location();
        ReportedCredential {
            key_hint: key_hint(&resolved.credential),
            source_kind: location.kind,
            source_detail: location.detail,
            auth_mode: resolved.credential.auth_mode().as_str(),
            identity: identity(&resolved.credential, now),
            at_rest: None,
        }
    }
}

/// The first 3 and last 4 characters of an API key of 20 characters or
/// more (`sk-…wxyz`): enough to tell two keys apart, never more than 7
/// characters of it. Shorter keys get no hint.
pub fn key_hint(credential: &Credential) -> Option<String> {
    if credential.agent_identity().is_some() {
        return None;
    }
    let key = credential.expose_token();
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 20 {
        return None;
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    Some(shown(&format!("{head}…{tail}")))
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
        let warnings: Vec<Value> = self
            .warnings
            .iter()
            .map(|w| json!({"code": w.code, "message": w.message}))
            .collect();
        let now = credstore::credential::unix_now();
        match &self.resolved {
            None => json!({
                "schema": STATUS_SCHEMA,
                "logged_in": false,
                "profile": self.profile,
                "source": null,
                "auth_mode": null,
                "identity": null,
                "backend": self.backend,
                "backend_chosen_by": self.backend_chosen_by,
                "warnings": warnings,
            }),
            Some(r) => json!({
                "schema": STATUS_SCHEMA,
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
                    "expires_in_seconds": i.claims.expires_at - now,
                    "expired": i.expired,
                })),
                "backend": self.backend,
                "backend_chosen_by": self.backend_chosen_by,
                "warnings": warnings,
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
        match &self.profile_rule {
            Some(dir) => line(
                "profile",
                &format!("{} (config.toml rule dir = {})", self.profile, shown(dir)),
            ),
            None => line("profile", &self.profile),
        }
        line(
            "source",
            &format!("{} {}", r.source_kind.as_str(), shown(&r.source_detail)),
        );
        let why = match self.backend_chosen_by {
            "flag" => "chosen by --backend",
            "env" => "chosen by the environment",
            "config" => "remembered in config.toml",
            _ => "the default",
        };
        line("backend", &format!("{} ({why})", self.backend));
        if let Some(at_rest) = &r.at_rest {
            line("storage", &shown(at_rest));
        }
        if let Some(t) = &self.vault_token {
            line("token", &shown(t));
        }
        match &r.identity {
            None => {
                line("kind", "API key");
                if let Some(hint) = &r.key_hint {
                    line("key", hint);
                }
            }
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
