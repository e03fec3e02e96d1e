//! [`AgentClient`]: asks a signing agent for what a process would
//! otherwise sign itself — with the same `assertion` / `request_headers`
//! calls as [`AgentIdentity`](crate::AgentIdentity) and
//! [`Credential`](crate::Credential) — without ever holding the key.

use super::protocol::{Answer, Request};
use crate::agent::{AgentAssertion, RequestHeaders};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, ErrorKind, Result};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a connect, a send and an answer may take (each), unless set
/// otherwise: a dead agent is reported at once, a stuck one within this
/// (signing takes well under a millisecond).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long a `register-task` answer may take: the agent's own HTTP
/// request to the auth API has a 30 s deadline by default.
pub const DEFAULT_REGISTER_TIMEOUT: Duration = Duration::from_secs(40);

/// The longest part of an agent's error message a client shows.
const MAX_MESSAGE_CHARS: usize = 500;

/// An agent's error message as it may be shown on a terminal: control
/// and other hidden characters escaped (a hostile agent could otherwise
/// write terminal escapes), at most [`MAX_MESSAGE_CHARS`] of it.
fn shown_message(message: &str) -> String {
    let mut text: String = crate::text::shown(message)
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if text.len() < message.len() && message.chars().count() > MAX_MESSAGE_CHARS {
        text.push_str("… (cut)");
    }
    text
}

/// A client of the signing agent at one socket. Each call is one short
/// connection; the client holds no secret between calls.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
    variable: Option<String>,
    timeout: Duration,
    register_timeout: Duration,
}

impl AgentClient {
    /// A client of the agent at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> AgentClient {
        AgentClient {
            socket: socket.into(),
            variable: None,
            timeout: DEFAULT_TIMEOUT,
            register_timeout: DEFAULT_REGISTER_TIMEOUT,
        }
    }

    /// The client `{PREFIX}_AGENT_SOCK` names, if it is set.
    pub fn from_env(env: &dyn Environment, names: &EnvNames) -> Option<AgentClient> {
        let variable = names.agent_sock();
        env.path(&variable).map(|socket| AgentClient {
            variable: Some(variable),
            ..AgentClient::new(socket)
        })
    }

    /// Sets the deadline of the connect, the send and the answer.
    pub fn with_timeout(mut self, timeout: Duration) -> AgentClient {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Sets how long a task registration's answer may take.
    pub fn with_register_timeout(mut self, timeout: Duration) -> AgentClient {
        self.register_timeout = timeout.max(self.timeout);
        self
    }

    /// The agent's socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `AgentAssertion …` header value for `task_id`, signed by the
    /// agent now.
    pub fn assertion(&self, task_id: &str) -> Result<AgentAssertion> {
        let answer = self.call(
            &Request::Assertion {
                task_id: task_id.to_string(),
            },
            self.timeout,
        )?;
        let (Some(value), Some(ts)) = (&answer.assertion, &answer.timestamp) else {
            return Err(self.bad_answer("an assertion answer without its value"));
        };
        AgentAssertion::received(&value.0, ts)
            .ok_or_else(|| self.bad_answer("an assertion that is not an AgentAssertion value"))
    }

    /// The request headers for the agent's credential (an agent identity
    /// needs `task_id`, unless the agent registered a task before).
    pub fn request_headers(&self, task_id: Option<&str>) -> Result<RequestHeaders> {
        let answer = self.call(
            &Request::Headers {
                task_id: task_id.map(str::to_string),
            },
            self.timeout,
        )?;
        let Some(headers) = &answer.headers else {
            return Err(self.bad_answer("a headers answer without headers"));
        };
        RequestHeaders::received(
            headers.iter().map(|(n, v)| (n.as_str(), v.0.as_str())),
            &self.origin(),
        )
    }

    /// Has the agent register a task (once; later calls get the same id).
    /// `base_url`, when given, must be the agent's own auth API (an agent
    /// started without one refuses to register).
    pub fn register_task(&self, base_url: Option<&str>) -> Result<String> {
        let answer = self.call(
            &Request::RegisterTask {
                base_url: base_url.map(str::to_string),
            },
            self.register_timeout,
        )?;
        answer
            .task_id
            .ok_or_else(|| self.bad_answer("a registration answer without a task id"))
    }

    /// The agent's status document: the non-secret fields of `status
    /// --json`, with `source.kind` `agent`, and an `agent` object (its
    /// pid, where its credential came from, whether its memory is locked).
    pub fn status(&self) -> Result<serde_json::Value> {
        self.call(&Request::Status {}, self.timeout)?
            .status
            .ok_or_else(|| self.bad_answer("a status answer without a document"))
    }

    /// The raw token, from an agent that allows export (others refuse
    /// with [`ErrorKind::NoCredential`]).
    pub fn token(&self) -> Result<SecretString> {
        let answer = self.call(&Request::Token {}, self.timeout)?;
        answer
            .token
            .as_ref()
            .map(|t| crate::secret::secret_string(&t.0))
            .ok_or_else(|| self.bad_answer("a token answer without a token"))
    }

    fn origin(&self) -> String {
        format!("the signing agent at {}", self.socket.display())
    }

    fn bad_answer(&self, what: &str) -> Error {
        Error::AgentUnavailable {
            socket: self.socket.clone(),
            reason: format!("sent {what}; is it a credstore agent of the same version?"),
        }
    }

    fn unavailable(&self, what: String) -> Error {
        let fix = match &self.variable {
            Some(v) => {
                format!("start the agent again, or unset {v} to resolve the credential here")
            }
            None => "start the agent again".to_string(),
        };
        Error::AgentUnavailable {
            socket: self.socket.clone(),
            reason: format!("{what}; {fix}"),
        }
    }

    #[cfg(unix)]
    fn not_ours(&self, what: &str, uid: u32, me: u32) -> Error {
        let fix = match &self.variable {
            Some(v) => format!("; unset {v}, or point it at your own agent's socket"),
            None => String::new(),
        };
        Error::AgentUnavailable {
            socket: self.socket.clone(),
            reason: format!(
                "is not your agent: {what} uid {uid}, not your uid {me}; refusing to use it{fix}"
            ),
        }
    }

    fn call(&self, request: &Request, answer_timeout: Duration) -> Result<Answer> {
        let line = self.exchange(&request.to_line(), answer_timeout)?;
        let answer: Answer = serde_json::from_slice(&line)
            .map_err(|_| self.bad_answer("an answer that is not JSON"))?;
        if answer.ok {
            return Ok(answer);
        }
        let (kind, message) = match &answer.error {
            Some(e) => (ErrorKind::from_name(&e.kind), shown_message(&e.message)),
            None => (ErrorKind::Backend, "an error without a message".to_string()),
        };
        Err(Error::Agent {
            socket: self.socket.clone(),
            kind,
            message,
        })
    }

    #[cfg(unix)]
    fn exchange(&self, request: &[u8], answer_timeout: Duration) -> Result<Zeroizing<Vec<u8>>> {
        use super::protocol::MAX_ANSWER_BYTES;
        use std::io::{ErrorKind as Io, Read, Write};
        use std::os::unix::fs::MetadataExt;
        let me = credstore_platform::effective_uid();
        // Only an agent of our own uid is asked: a socket of another user
        // (a fake agent in a shared directory) could hand out anything and
        // read what we send.
        if let Ok(meta) = std::fs::metadata(&self.socket) {
            if meta.uid() != me {
                return Err(self.not_ours("the socket file belongs to", meta.uid(), me));
            }
        }
        let mut stream = credstore_platform::connect_unix(&self.socket, self.timeout)
            .map_err(|e| self.unavailable(format!("cannot be reached ({e})")))?;
        let peer = credstore_platform::peer_credentials(&stream).map_err(|e| {
            self.unavailable(format!("cannot be checked: who listens is unknown ({e})"))
        })?;
        if peer.uid != me {
            return Err(self.not_ours("it is served by", peer.uid, me));
        }
        let timed_out = |e: &std::io::Error| matches!(e.kind(), Io::WouldBlock | Io::TimedOut);
        stream
            .set_write_timeout(Some(self.timeout))
            .and_then(|()| stream.set_read_timeout(Some(answer_timeout)))
            .map_err(|e| self.unavailable(format!("cannot be used ({e})")))?;
        stream.write_all(request).map_err(|e| {
            if timed_out(&e) {
                self.unavailable(format!(
                    "did not take the request within {} ms",
                    self.timeout.as_millis()
                ))
            } else {
                self.unavailable(format!("closed the connection ({e})"))
            }
        })?;
        // One buffer, never grown, wiped on drop: the answer may hold an
        // assertion or headers.
        let mut buf = Zeroizing::new(vec![0u8; MAX_ANSWER_BYTES + 1]);
        let mut len = 0;
        // One deadline for the whole answer: an agent trickling bytes
        // cannot stretch it.
        let deadline = std::time::Instant::now() + answer_timeout;
        let late = || {
            self.unavailable(format!(
                "did not answer within {} ms",
                answer_timeout.as_millis()
            ))
        };
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(late());
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| self.unavailable(format!("cannot be used ({e})")))?;
            let n = match stream.read(&mut buf[len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == Io::Interrupted => continue,
                Err(e) if timed_out(&e) => return Err(late()),
                Err(e) => return Err(self.unavailable(format!("broke off the answer ({e})"))),
            };
            if n == 0 {
                return Err(self.unavailable(
                    "closed the connection before answering (did it stop?)".to_string(),
                ));
            }
            let newline = buf[len..len + n].iter().position(|&b| b == b'\n');
            len += n;
            if let Some(i) = newline {
                let end = len - n + i;
                buf[end..].iter_mut().for_each(|b| *b = 0);
                buf.truncate(end);
                return Ok(buf);
            }
            if len > MAX_ANSWER_BYTES {
                return Err(self.bad_answer("an answer larger than the limit"));
            }
        }
    }

    #[cfg(not(unix))]
    fn exchange(&self, _request: &[u8], _timeout: Duration) -> Result<Zeroizing<Vec<u8>>> {
        Err(self.unavailable(
            "cannot be used: the signing agent is not supported on this platform".to_string(),
        ))
    }
}
