//! Test tokens made at test time with throwaway keys. Shared by the unit
//! tests (included with `#[path]`), the integration tests and the example
//! that mints the demo token. Never used for a real credential.
#![allow(dead_code)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A fixed instant for tests that need one (2027-01-15).
pub const NOW: i64 = 1_800_000_000;

/// Seconds since the epoch, from the real clock.
pub fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signs a JWS signing input (`header.payload`) with an issuer's key and
/// returns the raw signature bytes (RS256: PKCS#1 v1.5; ES256: fixed r||s;
/// EdDSA: 64 bytes).
pub type SignFn = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// Builds agent identity JWTs with a fresh random Ed25519 key. By default
/// the token is signed (EdDSA) with the agent's own key; [`Self::signed_by`]
/// signs it with an issuer's key instead, for JWKS tests.
#[derive(Clone)]
pub struct TokenBuilder {
    key: SigningKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    issuer_signer: Option<SignFn>,
}

impl Default for TokenBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenBuilder {
    /// A valid identity, issued now and valid for a year.
    pub fn new() -> Self {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        Self::with_key(key)
    }

    /// A valid identity for a given key.
    pub fn with_key(key: SigningKey) -> Self {
        let now = real_now();
        let der = key.to_pkcs8_der().expect("pkcs8 encoding");
        let claims = json!({
            "agent_runtime_id": "rt-test-1",
            "agent_private_key": STANDARD.encode(der.as_bytes()),
            "account_id": "acct-test-1",
            "chatgpt_user_id": "user-test-1",
            "email": "agent@example.com",
            "plan_type": "pro",
            "iat": now - 10,
            "exp": now + 365 * 24 * 3600,
        });
        let header = json!({"alg": "EdDSA", "typ": "JWT"});
        TokenBuilder {
            key,
            header: header.as_object().cloned().unwrap_or_default(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            issuer_signer: None,
        }
    }

    /// Signs with an issuer's key: sets the header's `alg` and `kid` (no
    /// `kid` when `None`) and uses `sign` for the signature.
    pub fn signed_by(mut self, alg: &str, kid: Option<&str>, sign: SignFn) -> Self {
        self.header.insert("alg".into(), json!(alg));
        match kid {
            Some(k) => self.header.insert("kid".into(), json!(k)),
            None => self.header.remove("kid"),
        };
        self.issuer_signer = Some(sign);
        self
    }

    /// Sets (or replaces) a claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_string(), value);
        self
    }

    /// Sets (or replaces) a header field.
    pub fn header_field(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.to_string(), value);
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// The claims as they will be encoded.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The agent's private key, base64 PKCS#8 as in the claim.
    pub fn private_key_b64(&self) -> String {
        STANDARD.encode(self.key.to_pkcs8_der().expect("pkcs8").as_bytes())
    }

    /// The agent's raw 32-byte private key.
    pub fn private_key_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The agent's signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The agent's public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The compact JWS.
    pub fn build(&self) -> String {
        let header = serde_json::to_vec(&self.header).expect("header json");
        let payload = serde_json::to_vec(&self.claims).expect("claims json");
        self.assemble(&header, &payload)
    }

    /// A token whose payload is exactly `payload` (for malformed cases).
    pub fn with_raw_payload(&self, payload: &[u8]) -> String {
        let header = serde_json::to_vec(&self.header).expect("header json");
        self.assemble(&header, payload)
    }

    /// A token whose header is exactly `header`.
    pub fn with_raw_header(&self, header: &[u8]) -> String {
        let payload = serde_json::to_vec(&self.claims).expect("claims json");
        self.assemble(header, &payload)
    }

    fn assemble(&self, header: &[u8], payload: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = match &self.issuer_signer {
            Some(sign) => sign(signing_input.as_bytes()),
            None => self.key.sign(signing_input.as_bytes()).to_bytes().to_vec(),
        };
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}
