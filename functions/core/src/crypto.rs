//! Cryptographic helpers: randomness, the HMACs that sign deliveries, and the sealing of
//! subscription secrets at rest (AES-256-GCM), all on aws-lc-rs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

pub fn random_bytes(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the system random source failed");
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_le_bytes(b)
}

pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

/// Encrypts subscription secrets before they reach the store, so that a read of the
/// table alone does not reveal them. The key lives outside the table (an environment
/// variable filled from a secret store at deploy time).
#[derive(Clone)]
pub struct SecretSealer {
    key: std::sync::Arc<LessSafeKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealing key must be 32 bytes, given as 64 hex characters or base64")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong key or corrupted value)")]
    Corrupt,
}

const SEALED_PREFIX: &str = "v1:";

impl SecretSealer {
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES key");
        Self {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        }
    }

    /// Parses a 32-byte key written as 64 hex characters or as base64.
    pub fn from_encoded(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .or_else(|_| B64.decode(text))
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(Self::new(&key))
    }

    /// A key derived from another installation secret (HMAC-SHA256 with a fixed label).
    pub fn derived_from(secret: &[u8]) -> Self {
        let bytes = hmac_sha256(secret, b"webhooks subscription secret sealing key v1");
        let key: [u8; 32] = bytes.try_into().expect("HMAC-SHA256 is 32 bytes");
        Self::new(&key)
    }

    /// A fresh random key, for a process that keeps its data in memory only.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        random_bytes(&mut key);
        Self::new(&key)
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(SEALED_PREFIX),
                &mut buf,
            )
            .expect("AES-GCM sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{SEALED_PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Corrupt)?;
        let mut bytes = B64.decode(raw).map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SealError::Corrupt)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(SEALED_PREFIX), &mut body)
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Corrupt)
    }
}

impl std::fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSealer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_round_trip_and_hide_the_plaintext() {
        let sealer = SecretSealer::ephemeral();
        let sealed = sealer.seal("s3cr3t-value");
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(
            sealed,
            sealer.seal("s3cr3t-value"),
            "each seal uses a fresh nonce"
        );
        assert_eq!(sealer.open(&sealed).unwrap(), "s3cr3t-value");
    }

    #[test]
    fn another_key_cannot_open() {
        let sealed = SecretSealer::ephemeral().seal("x");
        assert!(SecretSealer::ephemeral().open(&sealed).is_err());
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let hex_key = "00".repeat(32);
        assert!(SecretSealer::from_encoded(&hex_key).is_ok());
        assert!(SecretSealer::from_encoded(&B64.encode([7u8; 32])).is_ok());
        assert!(SecretSealer::from_encoded("short").is_err());
    }

    #[test]
    fn hmacs_match_known_vectors() {
        // RFC 2202 / RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
