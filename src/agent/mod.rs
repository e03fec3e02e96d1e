//! The agent runtime (SPEC §7): what makes a stored agent identity useful to
//! the program that embeds credstore.
//!
//! - [`AgentIdentity::assertion`](crate::AgentIdentity::assertion): the
//!   `AgentAssertion …` header value for a task, signed with the identity's
//!   cached Ed25519 key.
//! - [`Credential::request_headers`](crate::Credential::request_headers): the
//!   request headers for the active credential, in one call.
//! - [`register_task`] and [`TaskSession`]: registering a task with the auth
//!   API (the answer may be a libsodium sealed box to the identity's derived
//!   X25519 key), once per process.
//!
//! ```no_run
//! use credstore::agent::{RegistrationConfig, TaskSession};
//! use credstore::env::ProcessEnv;
//! use credstore::resolve::Resolver;
//! use credstore::{profile::Profile, store::MemoryStore, Credential};
//! use std::sync::Arc;
//!
//! # fn main() -> credstore::Result<()> {
//! let env = ProcessEnv;
//! let resolved = Resolver::new(&env)
//!     .resolve(&MemoryStore::new(), &Profile::default_profile())?
//!     .expect("a credential");
//! if let Credential::AgentIdentity(identity) = resolved.credential {
//!     let config = RegistrationConfig::from_env(&env, &Default::default(), None)?;
//!     let session = TaskSession::new(Arc::from(identity), config);
//!     // Registers on first use (once, even when threads race), then reuses the task id.
//!     for (name, value) in session.request_headers()?.iter() {
//!         println!("{name}: <{} bytes>", value.len());
//!     }
//! }
//! # Ok(()) }
//! ```

mod assertion;
mod headers;
mod register;
mod sealed;

pub use assertion::{format_timestamp, AgentAssertion, ASSERTION_SCHEME};
pub use headers::{RequestHeaders, ACCOUNT_ID_HEADER, AUTHORIZATION_HEADER, FEDRAMP_HEADER};
pub use register::{
    register_task, register_task_at, RegistrationConfig, TaskSession, DEFAULT_HTTP_TIMEOUT,
    MAX_ERROR_BODY_CHARS,
};
pub use sealed::open_sealed_task_id;
