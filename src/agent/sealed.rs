//! Opening a task id sealed to the agent (SPEC §7): a libsodium sealed box
//! (`crypto_box_seal`) to the X25519 key derived from the identity's Ed25519
//! key by the standard conversion (libsodium's
//! `crypto_sign_ed25519_sk_to_curve25519`: the first half of SHA-512 of the
//! seed, clamped).

use crate::credential::AgentIdentity;
use crate::error::Result;
use crypto_box::SecretKey;
use zeroize::Zeroizing;

/// The X25519 secret key derived from the identity's Ed25519 key. The
/// returned key wipes itself on drop (`crypto_box` zeroizes `SecretKey`).
pub(crate) fn x25519_secret(identity: &AgentIdentity) -> SecretKey {
    // `to_scalar_bytes` is SHA-512(seed)[..32], unclamped; `SecretKey`
    // clamps it, which is exactly libsodium's conversion.
    let bytes = Zeroizing::new(identity.signing_key().to_scalar_bytes());
    SecretKey::from_bytes(*bytes)
}

/// Opens `ciphertext`, a libsodium sealed box to the identity's derived
/// X25519 key, and returns the task id inside. A box that does not open, or
/// whose content is not a valid task id, is an error that says so (the
/// content is never echoed).
pub fn open_sealed_task_id(identity: &AgentIdentity, ciphertext: &[u8]) -> Result<String> {
    open(identity, ciphertext).map_err(|message| crate::Error::Backend {
        backend: "auth API",
        message,
    })
}

/// The same, with the failure as a plain reason, for the caller to wrap.
pub(crate) fn open(identity: &AgentIdentity, ciphertext: &[u8]) -> Result<String, String> {
    crate::secret::with_stack_scrub(|| open_in_frame(identity, ciphertext))
}

fn open_in_frame(identity: &AgentIdentity, ciphertext: &[u8]) -> Result<String, String> {
    let key = x25519_secret(identity);
    let plain = Zeroizing::new(key.unseal(ciphertext).map_err(|_| {
        "the encrypted task id does not open with this agent's key (not a sealed box to it, or corrupted)"
            .to_string()
    })?);
    let task_id = std::str::from_utf8(&plain)
        .map_err(|_| "the decrypted task id is not UTF-8".to_string())?;
    super::assertion::check_task_id(task_id).map_err(|e| format!("the decrypted {e}"))?;
    Ok(task_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::tokens::TokenBuilder;

    fn identity(b: &TokenBuilder) -> AgentIdentity {
        AgentIdentity::parse(b.build().as_bytes(), "test").unwrap()
    }

    #[test]
    fn derived_public_key_is_the_birational_map_of_the_ed25519_key() {
        // Two independent routes to the X25519 public key must agree: the
        // secret scalar times the base point, and the Edwards→Montgomery
        // map of the Ed25519 public key (what libsodium's pk conversion does).
        let b = TokenBuilder::new();
        let id = identity(&b);
        let from_secret = x25519_secret(&id).public_key();
        let from_public = b.verifying_key().to_montgomery();
        assert_eq!(from_secret.as_bytes(), from_public.as_bytes());
    }

    #[test]
    fn sealed_box_round_trip() {
        let b = TokenBuilder::new();
        let id = identity(&b);
        let pk = crypto_box::PublicKey::from(b.verifying_key().to_montgomery());
        let sealed = pk.seal(&mut rand_core::OsRng, b"task-sealed-7").unwrap();
        assert_eq!(open_sealed_task_id(&id, &sealed).unwrap(), "task-sealed-7");

        // Another agent's key cannot open it.
        let other = identity(&TokenBuilder::new());
        let e = open_sealed_task_id(&other, &sealed).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("does not open"), "{e}");

        // Tampering is detected.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&id, &bad).is_err());
        assert!(open(&id, &sealed[..20]).is_err());
        assert!(open(&id, &[]).is_err());
    }

    #[test]
    fn sealed_content_must_be_a_task_id() {
        let b = TokenBuilder::new();
        let id = identity(&b);
        let pk = crypto_box::PublicKey::from(b.verifying_key().to_montgomery());
        let sealed = pk.seal(&mut rand_core::OsRng, b"").unwrap();
        assert!(open(&id, &sealed).unwrap_err().contains("empty"));
        let sealed = pk.seal(&mut rand_core::OsRng, &[0xff, 0xfe]).unwrap();
        assert!(open(&id, &sealed).unwrap_err().contains("UTF-8"));
    }
}
