//! Verifying an agent identity's JWT signature against a JWKS (SPEC §1.3).
//!
//! By default credstore does not check the signature (the issuer's server
//! checks what is presented to it). With a JWKS configured — `--jwks FILE`
//! or `CREDSTORE_JWKS=FILE` — every agent identity used is verified: the
//! key is chosen by the header's `kid`; RS256, ES256 and EdDSA are accepted
//! and nothing else (`alg: none` above all); `iss` and `aud` must match when
//! an issuer or audience is required.
//!
//! EdDSA is checked with `ed25519-dalek`'s strict verification, and a weak
//! (small-order) Ed25519 key is refused when the JWKS is loaded. RS256
//! (PKCS#1 v1.5, 2048 bits or more) and ES256 (P-256, fixed-size `r‖s`) are
//! `ring`'s, already in the tree through rustls, so one generation of each
//! crypto crate is built. Only the signature is handed
//! to it: the payload was already decoded once, into wiped buffers, by
//! [`AgentIdentity::parse`], and the claims checked here are those.
//!
//! ```no_run
//! use credstore::jwks::Verifier;
//! use credstore::env::ProcessEnv;
//! use credstore::resolve::Resolver;
//! # fn main() -> credstore::Result<()> {
//! let verifier = Verifier::from_file("/etc/credstore/jwks.json".as_ref())?
//!     .with_issuer("https://auth.example.com")
//!     .with_audience("agents");
//! let env = ProcessEnv;
//! let resolver = Resolver::new(&env).with_verifier(&verifier);
//! # let _ = resolver; Ok(()) }
//! ```

use crate::credential::{AgentIdentity, Credential};
use crate::env::{EnvNames, Environment};
use crate::error::{Error, Result};
use crate::secret::{read_config_file, ReadError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::path::Path;

/// The JWS algorithms accepted with a JWKS.
pub const ACCEPTED_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The JWS algorithms credstore verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    RS256,
    ES256,
    EdDSA,
}

/// A JSON Web Key Set (RFC 7517), as far as verification needs it.
#[derive(Debug, Clone, Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// One JWK: the members credstore reads; others are ignored.
#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    public_key_use: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

impl Jwk {
    fn is_ed25519(&self) -> bool {
        self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519")
    }
}

/// A JWKS and the claims it requires; checks agent identities against it.
#[derive(Clone)]
pub struct Verifier {
    keys: JwkSet,
    source: String,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("source", &self.source)
            .field("keys", &self.keys.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Shows an untrusted string in a message: quoted, escaped, and cut short.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(100).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

impl Verifier {
    /// Parses a JWK set (`{"keys": [...]}`); `source` names it in messages.
    /// Not a JWK set, or one without keys: a usage error (exit 2).
    pub fn from_jwks_json(json: &[u8], source: &str) -> Result<Verifier> {
        let keys: JwkSet = serde_json::from_slice(json).map_err(|e| {
            Error::Usage(format!(
                "the JWKS {source} is not a JSON Web Key Set ({{\"keys\": [...]}}): line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        if keys.keys.is_empty() {
            return Err(Error::Usage(format!("the JWKS {source} has no keys")));
        }
        for jwk in keys.keys.iter().filter(|k| k.is_ed25519()) {
            ed25519_key(jwk.x.as_deref().unwrap_or_default()).map_err(|why| {
                Error::Usage(format!(
                    "the JWKS {source}: key {}: {why}; remove it",
                    shown(jwk.kid.as_deref().unwrap_or("(no kid)"))
                ))
            })?;
        }
        Ok(Verifier {
            keys,
            source: source.to_string(),
            issuer: None,
            audience: None,
        })
    }

    /// Reads a JWK set from `path` (at most 64 KiB). A file that cannot be
    /// read or parsed is a usage error (exit 2) naming the path.
    pub fn from_file(path: &Path) -> Result<Verifier> {
        let unreadable = |why: String| {
            Error::Usage(format!(
                "the JWKS file {} cannot be read: {why}",
                path.display()
            ))
        };
        let bytes = read_config_file(path).map_err(|e| match e {
            ReadError::TooLarge => unreadable("it is larger than 64 KiB".into()),
            ReadError::Io(e) => unreadable(e.to_string()),
        })?;
        Verifier::from_jwks_json(&bytes, &path.display().to_string())
    }

    /// The verifier configured by `{PREFIX}_JWKS` (a path), if set.
    pub fn from_env(env: &dyn Environment, names: &EnvNames) -> Result<Option<Verifier>> {
        let var = names.jwks();
        // A raw OS path: a name that is not Unicode is still a path, never
        // "unset" (which would turn verification off).
        match env.path(&var) {
            None => Ok(None),
            Some(path) => Verifier::from_file(&path).map(Some).map_err(|e| match e {
                Error::Usage(m) => Error::Usage(format!("{var}: {m}")),
                e => e,
            }),
        }
    }

    /// Requires `iss` to equal `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Verifier {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to equal `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Verifier {
        self.audience = Some(audience.into());
        self
    }

    /// Where the JWKS came from (its path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Verifies an agent identity; an API key passes (it has no signature).
    pub fn verify_credential(&self, credential: &Credential) -> Result<()> {
        match credential.agent_identity() {
            Some(id) => self.verify(id),
            None => Ok(()),
        }
    }

    /// Verifies `identity`'s signature and the required claims. Each failure
    /// is an [`Error::Verification`] (exit 3) that says what failed.
    pub fn verify(&self, identity: &AgentIdentity) -> Result<()> {
        self.check(identity).map_err(|reason| Error::Verification {
            origin: identity.origin().to_string(),
            jwks: self.source.clone(),
            reason,
        })
    }

    fn check(&self, identity: &AgentIdentity) -> std::result::Result<(), String> {
        let header = identity.header();
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            a if a.eq_ignore_ascii_case("none") => {
                return Err(format!(
                    "its header says alg {} (an unsigned token), which is refused; accepted: RS256, ES256, EdDSA",
                    shown(a)
                ))
            }
            a => {
                return Err(format!(
                    "its header's alg {} is not accepted; accepted: RS256, ES256, EdDSA",
                    shown(a)
                ))
            }
        };
        let kid = header
            .kid
            .as_deref()
            .ok_or("its header has no `kid`; with a JWKS the key is chosen by kid")?;
        let mut matching = self
            .keys
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid));
        let jwk = matching
            .next()
            .ok_or_else(|| format!("no key in the JWKS has kid {}", shown(kid)))?;
        if matching.next().is_some() {
            return Err(format!(
                "more than one key in the JWKS has kid {}; kids must be unique",
                shown(kid)
            ));
        }
        check_key_fits(jwk, alg, &header.alg)
            .map_err(|why| format!("key {}: {why}", shown(kid)))?;

        let token = identity.expose_token();
        let (signing_input, signature) = token.rsplit_once('.').ok_or("it is not a compact JWS")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "its signature is not base64url".to_string())?;
        let mismatch = || {
            format!(
                "the signature does not match key {} ({}); the token was not issued by this JWKS's owner or was altered",
                shown(kid),
                header.alg
            )
        };
        let message = signing_input.as_bytes();
        match alg {
            Algorithm::EdDSA => {
                // Strict RFC 8032 verification (canonical S, no small-order
                // parts) with a key checked not to be weak.
                let key = ed25519_key(jwk.x.as_deref().unwrap_or_default())
                    .map_err(|why| format!("key {}: {why}", shown(kid)))?;
                let signature =
                    ed25519_dalek::Signature::from_slice(&signature).map_err(|_| mismatch())?;
                key.verify_strict(message, &signature)
                    .map_err(|_| mismatch())?;
            }
            Algorithm::ES256 => {
                let x = coordinate(jwk.x.as_deref(), "x")
                    .map_err(|why| format!("key {}: {why}", shown(kid)))?;
                let y = coordinate(jwk.y.as_deref(), "y")
                    .map_err(|why| format!("key {}: {why}", shown(kid)))?;
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    &point,
                )
                .verify(message, &signature)
                .map_err(|_| mismatch())?;
            }
            Algorithm::RS256 => {
                let n = unsigned(jwk.n.as_deref(), "n")
                    .map_err(|why| format!("key {}: {why}", shown(kid)))?;
                let e = unsigned(jwk.e.as_deref(), "e")
                    .map_err(|why| format!("key {}: {why}", shown(kid)))?;
                ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(
                        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                        message,
                        &signature,
                    )
                    .map_err(|_| mismatch())?;
            }
        }
        self.check_claims(identity)
    }

    fn check_claims(&self, identity: &AgentIdentity) -> std::result::Result<(), String> {
        let claims = identity.claims();
        check_claim("iss", self.issuer.as_deref(), claims.issuer.as_deref())?;
        check_claim("aud", self.audience.as_deref(), claims.audience.as_deref())?;
        Ok(())
    }
}

/// The key must be meant for signatures, for this algorithm, and of the
/// matching type and size — so a key is never used for what it is not.
fn check_key_fits(jwk: &Jwk, alg: Algorithm, alg_name: &str) -> std::result::Result<(), String> {
    if let Some(u) = &jwk.public_key_use {
        if u != "sig" {
            return Err("its `use` is not `sig`".into());
        }
    }
    if let Some(ops) = &jwk.key_ops {
        if !ops.iter().any(|o| o == "verify") {
            return Err("its `key_ops` do not include `verify`".into());
        }
    }
    if let Some(key_alg) = &jwk.alg {
        if key_alg != alg_name {
            return Err(format!(
                "it is for alg {}, but the token's header says {alg_name}",
                crate::text::shown(key_alg)
            ));
        }
    }
    match (jwk.kty.as_str(), jwk.crv.as_deref(), alg) {
        ("RSA", _, Algorithm::RS256) => {
            let n = unsigned(jwk.n.as_deref(), "n")?;
            let bits = modulus_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "its RSA modulus has {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            Ok(())
        }
        ("EC", Some("P-256"), Algorithm::ES256) => Ok(()),
        ("OKP", Some("Ed25519"), Algorithm::EdDSA) => Ok(()),
        _ => Err(format!(
            "it is {}, but {alg_name} needs {}",
            describe_key(jwk),
            match alg {
                Algorithm::RS256 => "an RSA key",
                Algorithm::ES256 => "an EC key on curve P-256",
                Algorithm::EdDSA => "an OKP key on curve Ed25519",
            }
        )),
    }
}

/// A base64url member decoded to a big-endian unsigned integer without
/// leading zero bytes (as ring takes RSA `n` and `e`).
fn unsigned(value: Option<&str>, name: &str) -> std::result::Result<Vec<u8>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.unwrap_or_default().trim_end_matches('='))
        .map_err(|_| format!("its `{name}` is not base64url"))?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    if start == bytes.len() {
        return Err(format!("its `{name}` is missing or zero"));
    }
    Ok(bytes[start..].to_vec())
}

/// A P-256 coordinate: exactly 32 bytes (RFC 7518 §6.2.1.2).
fn coordinate(value: Option<&str>, name: &str) -> std::result::Result<[u8; 32], String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.unwrap_or_default().trim_end_matches('='))
        .map_err(|_| format!("its `{name}` is not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| format!("its `{name}` is not a 32-byte P-256 coordinate"))
}

/// An Ed25519 public key from a JWK's `x`, refusing one of small order
/// (a "weak" key, for which forged signatures verify).
fn ed25519_key(x: &str) -> std::result::Result<ed25519_dalek::VerifyingKey, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(x.trim_end_matches('='))
        .map_err(|_| "its `x` is not base64url".to_string())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "its `x` is not a 32-byte Ed25519 public key".to_string())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "its `x` is not a valid Ed25519 point".to_string())?;
    if key.is_weak() {
        return Err(
            "it is a weak Ed25519 key (a point of small order), with which \
                    anyone can forge a signature"
                .into(),
        );
    }
    Ok(key)
}

fn describe_key(jwk: &Jwk) -> String {
    let curve = || crate::text::shown(jwk.crv.as_deref().unwrap_or("(none)")).into_owned();
    match jwk.kty.as_str() {
        "RSA" => "an RSA key".into(),
        "EC" => format!("an EC key on curve {}", curve()),
        "OKP" => format!("an OKP key on curve {}", curve()),
        "oct" => "a symmetric (oct) key".into(),
        _ => "a key of an unsupported or malformed type".into(),
    }
}

fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
    }
}

fn check_claim(
    name: &str,
    required: Option<&str>,
    actual: Option<&str>,
) -> std::result::Result<(), String> {
    match (required, actual) {
        (None, _) => Ok(()),
        (Some(want), Some(got)) if want == got => Ok(()),
        (Some(want), Some(got)) => Err(format!(
            "claim `{name}` is {}, but {} is required",
            shown(got),
            shown(want)
        )),
        (Some(want), None) => Err(format!(
            "claim `{name}` is missing or not a string, but {} is required",
            shown(want)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_counts_from_the_top_bit() {
        assert_eq!(modulus_bits(&[]), 0);
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        let mut n = vec![0u8; 256];
        n[0] = 0x80;
        assert_eq!(modulus_bits(&n), 2048);
        n[0] = 0x7f;
        assert_eq!(modulus_bits(&n), 2047);
    }

    #[test]
    fn malformed_jwks_is_a_usage_error() {
        for bad in [&b"not json"[..], b"{}", b"{\"keys\": []}", b"[]"] {
            let e = Verifier::from_jwks_json(bad, "test.json").unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains("test.json"), "{e}");
        }
        let e = Verifier::from_file(Path::new("/nonexistent/credstore-jwks.json")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("/nonexistent/credstore-jwks.json"));
    }

    #[test]
    fn untrusted_strings_are_escaped_and_cut() {
        assert_eq!(shown("a\u{1b}b"), "\"a\\u{1b}b\"");
        let long = "k".repeat(500);
        assert!(shown(&long).len() < 110);
    }
}
