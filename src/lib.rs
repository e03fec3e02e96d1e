//! # credstore
//!
//! Keeps an agent's credential — an **agent identity** (a JWT whose claims
//! carry an Ed25519 private key and account facts) or an **API key** — in a
//! secure backend, and resolves the one a process should use: environment
//! first, then stored.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod config;
pub mod credential;
pub mod env;
pub mod error;
pub mod health;
pub mod http;
pub mod input;
pub mod jwks;
pub mod profile;
pub mod resolve;
pub mod secret;
pub mod sockagent;
pub mod store;
pub mod stored;
pub mod text;

pub use credential::{AgentIdentity, ApiKey, AuthMode, Claims, Credential};
pub use error::{Error, ErrorKind, Result};
pub use jwks::Verifier;

/// The README's examples compile as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
