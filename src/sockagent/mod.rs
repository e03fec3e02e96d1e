//! The signing agent: the ssh-agent model for agent identities.
//!
//! One process (`credstore agent`, or [`SigningAgent`] in an embedder)
//! resolves the credential once and holds it; the processes that use it —
//! tools an AI agent runs, scripts — ask over a unix socket (mode 0600,
//! same uid only) for signed `AgentAssertion`s and request headers, and
//! never hold the private key. The key is locked in memory (best effort),
//! the agent is not dumpable, and stop wipes the key and removes the socket.
//!
//! - [`AgentClient`]: the client, with the `assertion` /
//!   `request_headers` calls an embedder already makes on a credential;
//!   [`AgentClient::from_env`] finds the agent through `{PREFIX}_AGENT_SOCK`.
//! - [`SigningAgent`] (Unix): the server; [`AuditLog`]: its JSON-lines log.
//! - [`protocol`]: the JSON lines on the socket.
//!
//! ```no_run
//! use credstore::env::{EnvNames, ProcessEnv};
//! use credstore::sockagent::AgentClient;
//!
//! # fn main() -> credstore::Result<()> {
//! if let Some(agent) = AgentClient::from_env(&ProcessEnv, &EnvNames::default()) {
//!     let headers = agent.request_headers(Some("task-1"))?;
//!     for (name, value) in headers.iter() {
//!         println!("{name}: <{} bytes>", value.len());
//!     }
//! }
//! # Ok(()) }
//! ```

mod audit;
mod client;
pub mod protocol;
#[cfg(unix)]
mod server;

pub use audit::{AuditLog, Peer};
pub use client::{AgentClient, DEFAULT_REGISTER_TIMEOUT, DEFAULT_TIMEOUT};
#[cfg(unix)]
pub use server::{
    AgentConfig, AgentHandle, MemoryProtection, SigningAgent, CONNECTION_IDLE_TIMEOUT,
    DEFAULT_WORKERS,
};

use crate::env::Environment;
use crate::profile::Profile;
use std::path::{Path, PathBuf};

/// Whether this platform can run the signing agent (Unix only).
pub const SUPPORTED: bool = cfg!(unix);

/// The default socket of the agent for `profile`:
/// `$XDG_RUNTIME_DIR/<app>/agent-<profile>.sock` when `XDG_RUNTIME_DIR` is
/// set (a per-user tmpfs, gone at logout), else `<home>/agent-<profile>.sock`
/// in the credential directory. `app` is the program's name (`credstore`).
pub fn default_socket_path(
    env: &dyn Environment,
    home: &Path,
    app: &str,
    profile: &Profile,
) -> PathBuf {
    let name = format!("agent-{}.sock", profile.as_str());
    match env.path("XDG_RUNTIME_DIR") {
        Some(runtime) => runtime.join(app).join(name),
        None => home.join(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn default_socket_prefers_the_runtime_dir() {
        let p = Profile::new("work").unwrap();
        let home = Path::new("/h/.config/credstore");
        let env = MapEnv::new().with("XDG_RUNTIME_DIR", "/run/user/1000");
        assert_eq!(
            default_socket_path(&env, home, "credstore", &p),
            PathBuf::from("/run/user/1000/credstore/agent-work.sock")
        );
        assert_eq!(
            default_socket_path(&MapEnv::new(), home, "credstore", &p),
            home.join("agent-work.sock")
        );
    }
}
