//! The signing agent's wire format: one JSON object per line each way.
//!
//! Requests (`op` names the operation):
//!
//! ```text
//! {"op":"assertion","task_id":"T"}
//! {"op":"headers","task_id":"T"}          task_id optional
//! {"op":"register-task"}                  or with "base_url":"https://…"
//! {"op":"status"}
//! {"op":"token"}                          answered only with export allowed
//! ```
//!
//! Answers: `{"ok":true, …}` with `assertion` + `timestamp`, `headers`
//! (a list of `[name, value]` pairs, in order), `task_id`, `status` (the
//! non-secret status document) or `token`; or
//! `{"ok":false,"error":{"kind":"usage","message":"…"}}`, whose `kind` is
//! an [`ErrorKind`](crate::ErrorKind) name and whose exit code is the kind's.
//!
//! A request line is at most [`MAX_REQUEST_BYTES`]; a longer one is
//! answered with an error and the connection is closed. An answer is at
//! most [`MAX_ANSWER_BYTES`].

use crate::error::ErrorKind;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The longest request line accepted, newline included.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The longest answer line a client reads.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// One request to the signing agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// An `AgentAssertion …` value for a task.
    Assertion {
        /// The task to sign for.
        task_id: String,
    },
    /// The request headers; an agent identity needs a task id (or a task
    /// the agent registered before).
    Headers {
        /// The task to sign for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_id: Option<String>,
    },
    /// Registers a task (once; later requests get the cached id).
    RegisterTask {
        /// The auth API; must be the agent's own (an agent without one
        /// refuses every registration).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
    },
    /// The non-secret status document. (A variant without fields is
    /// written `{}` so that unknown fields are refused for it too.)
    Status {},
    /// The raw token (only when the agent allows export).
    Token {},
}

impl Request {
    /// The operation's name, as in the request and the audit log.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Assertion { .. } => "assertion",
            Request::Headers { .. } => "headers",
            Request::RegisterTask { .. } => "register-task",
            Request::Status {} => "status",
            Request::Token {} => "token",
        }
    }

    /// The task id the request names, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            Request::Assertion { task_id } => Some(task_id),
            Request::Headers { task_id } => task_id.as_deref(),
            _ => None,
        }
    }

    /// The request as one line (newline included).
    pub fn to_line(&self) -> Vec<u8> {
        // Serializing this enum of strings cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// A string that held a secret on the wire: wiped on drop.
#[derive(Deserialize)]
#[serde(from = "String")]
pub(crate) struct WireSecret(pub(crate) Zeroizing<String>);

impl From<String> for WireSecret {
    fn from(s: String) -> Self {
        WireSecret(Zeroizing::new(s))
    }
}

/// An error answer's body.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct WireError {
    pub(crate) kind: String,
    pub(crate) message: String,
}

/// An answer as a client reads it.
#[derive(Deserialize)]
pub(crate) struct Answer {
    pub(crate) ok: bool,
    #[serde(default)]
    pub(crate) error: Option<WireError>,
    #[serde(default)]
    pub(crate) assertion: Option<WireSecret>,
    #[serde(default)]
    pub(crate) timestamp: Option<String>,
    #[serde(default)]
    pub(crate) headers: Option<Vec<(String, WireSecret)>>,
    #[serde(default)]
    pub(crate) task_id: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) token: Option<WireSecret>,
}

/// An answer as the agent writes it (borrowed, so secrets are not copied
/// into more `String`s than the one wiped output buffer).
#[cfg_attr(not(unix), allow(dead_code))]
#[derive(Serialize, Default)]
pub(crate) struct AnswerOut<'a> {
    pub(crate) ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<WireError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) assertion: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) headers: Option<Vec<(&'a str, &'a str)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<&'a str>,
}

#[cfg_attr(not(unix), allow(dead_code))]
impl AnswerOut<'_> {
    /// An error answer.
    pub(crate) fn error(kind: ErrorKind, message: impl Into<String>) -> AnswerOut<'static> {
        AnswerOut {
            ok: false,
            error: Some(WireError {
                kind: kind.as_str().to_string(),
                message: message.into(),
            }),
            ..AnswerOut::default()
        }
    }

    /// The answer as one line in a buffer wiped on drop, sized once for the
    /// worst case (JSON escaping at most sextuples a byte) so it never
    /// grows and leaves a stale copy behind.
    pub(crate) fn to_line(&self) -> Zeroizing<Vec<u8>> {
        let strings: usize = [self.assertion, self.timestamp, self.task_id, self.token]
            .iter()
            .flatten()
            .map(|s| s.len())
            .sum::<usize>()
            + self
                .headers
                .iter()
                .flatten()
                .map(|(n, v)| n.len() + v.len() + 8)
                .sum::<usize>()
            + self
                .error
                .as_ref()
                .map_or(0, |e| e.kind.len() + e.message.len());
        let status = self.status.as_ref().map_or(0, |s| s.to_string().len() + 16);
        let mut buf = Zeroizing::new(Vec::with_capacity(6 * strings + status + 256));
        if serde_json::to_writer(&mut *buf, self).is_err() {
            buf.clear();
            buf.extend_from_slice(
                br#"{"ok":false,"error":{"kind":"backend","message":"the answer could not be encoded"}}"#,
            );
        }
        buf.push(b'\n');
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let r: Request = serde_json::from_str(r#"{"op":"assertion","task_id":"t-1"}"#).unwrap();
        assert_eq!(
            r,
            Request::Assertion {
                task_id: "t-1".into()
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"headers"}"#).unwrap();
        assert_eq!(r, Request::Headers { task_id: None });
        let r: Request = serde_json::from_str(r#"{"op":"status"}"#).unwrap();
        assert_eq!(r.op(), "status");
        for bad in [
            r#"{"op":"assertion"}"#,
            r#"{"op":"sign","task_id":"t"}"#,
            r#"{"op":"status","extra":1}"#,
            r#"{"task_id":"t"}"#,
            r#"[]"#,
            r#"{"op":"assertion","task_id":5}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_round_trip() {
        let r = Request::Headers {
            task_id: Some("t".into()),
        };
        let line = r.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(serde_json::from_slice::<Request>(&line).unwrap(), r);
        let a = AnswerOut {
            ok: true,
            headers: Some(vec![("Authorization", "AgentAssertion x\"y")]),
            ..AnswerOut::default()
        };
        let line = a.to_line();
        let back: Answer = serde_json::from_slice(&line).unwrap();
        assert!(back.ok);
        let h = back.headers.unwrap();
        assert_eq!(h[0].0, "Authorization");
        assert_eq!(h[0].1 .0.as_str(), "AgentAssertion x\"y");
        let e: Answer =
            serde_json::from_slice(&AnswerOut::error(ErrorKind::Usage, "bad").to_line()).unwrap();
        assert!(!e.ok);
        assert_eq!(e.error.unwrap().kind, "usage");
    }
}
