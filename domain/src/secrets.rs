//! Tokens: random or derived from the server's secret, shown once, stored only as a hash.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::InvalidInput;

/// The server's secret key. Tokens that must be recreated later (the link in a queued sign-in
/// mail) are derived from it, so the database never holds them.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads a key written by `encode`: at least 32 bytes, base64url.
    pub fn decode(text: &str) -> Result<Self, InvalidInput> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| InvalidInput::new("must be base64url"))?;
        if bytes.len() < 32 {
            return Err(InvalidInput::new("must hold at least 32 bytes"));
        }
        Ok(Self(bytes))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// A token for `purpose` and `id` that only this key can produce.
    pub fn derive(&self, purpose: &str, id: Uuid) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            // HMAC takes keys of any length.
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A stable stand-in for `id` under this key: a random-looking (version 4) UUID, the same
    /// each time, that says nothing of when `id` was made (ids are UUIDv7, which carry their
    /// creation time).
    pub fn alias(&self, purpose: &str, id: Uuid) -> Uuid {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Whether `token` is the one `derive(purpose, id)` makes, compared in constant time.
    pub fn verify(&self, purpose: &str, id: Uuid, token: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return false;
        };
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

impl SecretKey {
    /// A signature of `message` for `purpose` that only this key can produce: for values that
    /// are not ids, such as a visitor's cookie (to bind a form's CSRF token to it).
    pub fn sign(&self, purpose: &str, message: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is `sign(purpose, message)`, compared in constant time.
    pub fn verify_signature(&self, purpose: &str, message: &str, signature: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return false;
        };
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(message.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

/// A fresh random token with a readable prefix saying what it is for.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored in place of a token: its SHA-256, hex. Tokens carry 256 random bits, so a
/// fast hash is enough; a slow password hash would add nothing.
pub fn hash_token(token: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    // Every signed-in request hashes its token: written digit by digit, not a `format!` per
    // byte (callgrind: 14k of a signed-in gathering page's 600k instructions).
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored hashes must not change: SHA-256's own test vector, in lower-case hex.
    #[test]
    fn a_token_hashes_to_its_sha256_in_lower_case_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn derived_tokens_depend_on_key_purpose_and_id() {
        let key = SecretKey::generate();
        let id = Uuid::now_v7();
        assert_eq!(key.derive("sign-in", id), key.derive("sign-in", id));
        assert_ne!(key.derive("sign-in", id), key.derive("unsubscribe", id));
        assert_ne!(
            key.derive("sign-in", id),
            SecretKey::generate().derive("sign-in", id)
        );
    }

    #[test]
    fn derived_tokens_verify_only_for_their_purpose_and_id() {
        let key = SecretKey::generate();
        let id = Uuid::now_v7();
        let token = key.derive("unsubscribe", id);
        assert!(key.verify("unsubscribe", id, &token));
        assert!(!key.verify("sign-in", id, &token));
        assert!(!key.verify("unsubscribe", Uuid::now_v7(), &token));
        assert!(!key.verify("unsubscribe", id, "not-a-token"));
    }

    #[test]
    fn signatures_verify_only_for_their_key_purpose_and_message() {
        let key = SecretKey::generate();
        let signature = key.sign("csrf", "gsv_abc");
        assert!(key.verify_signature("csrf", "gsv_abc", &signature));
        assert!(!key.verify_signature("csrf", "gsv_abd", &signature));
        assert!(!key.verify_signature("other", "gsv_abc", &signature));
        assert!(!SecretKey::generate().verify_signature("csrf", "gsv_abc", &signature));
        assert!(!key.verify_signature("csrf", "gsv_abc", ""));
    }

    #[test]
    fn keys_round_trip_and_short_keys_are_refused() {
        let key = SecretKey::generate();
        let again = SecretKey::decode(&key.encode()).map(|k| k.0);
        assert_eq!(again.ok(), Some(key.0.clone()));
        assert!(SecretKey::decode("c2hvcnQ").is_err());
    }

    #[test]
    fn random_tokens_differ_and_hash_to_hex() {
        let (a, b) = (random_token("x_"), random_token("x_"));
        assert_ne!(a, b);
        assert!(a.starts_with("x_"));
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }
}
