//! Cryptographic helpers: the HMACs that sign deliveries, and the sealing of
//! subscription secrets at rest (AES-256-GCM). The HMACs and the sealing are aws-lc-rs.
//!
//! Keys and nonces come from [`crate::model::random`], the operating system's CSPRNG.
//!
//! Sealed secrets are bound to their subscription: the format `v2:` authenticates the
//! owner (deployment and user) and the subscription id as associated data, so a sealed
//! value copied onto another row (another subscription, another owner) does not open
//! there. Values sealed before the binding existed (`v1:`, no associated data beyond the
//! prefix) still open, for any subscription; new values are always `v2:`.
//!
//! A subscription's own headers (SPEC section 9) are sealed the same way, as one value
//! for the whole map, bound to the subscription and to their purpose: a sealed secret
//! moved into the headers' place, or sealed headers into the secret's, does not open. So
//! is the client secret of a subscription's `auth`, with a purpose of its own.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::model::random::random_bytes;
use crate::model::receiver::Headers;
use crate::model::subscription::SubscriptionRef;

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    HmacKey::new(key).sha256(&[data]).to_vec()
}

/// One HMAC key, set up once for SHA-1 and SHA-256 (each setup hashes the padded key
/// twice), for signing many messages with it: the deliveries of one subscription in a
/// batch share it.
pub struct HmacKey {
    sha1: hmac::Key,
    sha256: hmac::Key,
}

impl HmacKey {
    pub fn new(key: &[u8]) -> Self {
        Self {
            sha1: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key),
            sha256: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// HMAC-SHA1 of `data`.
    pub fn sha1(&self, data: &[u8]) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(hmac::sign(&self.sha1, data).as_ref());
        out
    }

    /// HMAC-SHA256 of the concatenation of `parts`, without copying them together.
    pub fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.sha256);
        for part in parts {
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

/// Encrypts subscription secrets before they reach the store, so that a read of the
/// table alone does not reveal them. The key lives outside the table (an environment
/// variable filled from a secret store at deploy time).
#[derive(Clone)]
pub struct SecretSealer {
    key: std::sync::Arc<LessSafeKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the sealing key must be 32 bytes, given as 64 hex characters or base64")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong key or corrupted value)")]
    Corrupt,
}

/// The first format: associated data is the prefix alone, so the value is not bound to
/// any row. Still opened; never written any more.
const SEALED_V1: &str = "v1:";
/// The bound format: associated data names the subscription (see [`binding`]).
const SEALED_V2: &str = "v2:";

/// The associated data of a `v2:` value: the prefix, the owner and the subscription id,
/// separated by NUL (none of them can hold one).
fn binding(subscription: &SubscriptionRef) -> Vec<u8> {
    format!(
        "{SEALED_V2}\0{}\0{}\0{}",
        subscription.owner.deployment.as_str(),
        subscription.owner.user_id,
        subscription.id.as_str()
    )
    .into_bytes()
}

/// The associated data of sealed headers: the subscription's binding and their purpose.
fn headers_binding(subscription: &SubscriptionRef) -> Vec<u8> {
    purpose_binding(subscription, b"headers")
}

/// The subscription's binding and a purpose.
fn purpose_binding(subscription: &SubscriptionRef, purpose: &[u8]) -> Vec<u8> {
    let mut aad = binding(subscription);
    aad.push(0);
    aad.extend_from_slice(purpose);
    aad
}

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

    /// A fresh random key, for a process that keeps its data in memory only.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        random_bytes(&mut key);
        Self::new(&key)
    }

    /// Seals a subscription's secret for that subscription alone (format `v2:`).
    pub fn seal_for(&self, plaintext: &str, subscription: &SubscriptionRef) -> String {
        self.seal_with(SEALED_V2, &binding(subscription), plaintext)
    }

    /// Opens a subscription's sealed secret: a `v2:` value only for the subscription it was
    /// sealed for, a `v1:` value (sealed before the binding) for any.
    pub fn open_for(
        &self,
        sealed: &str,
        subscription: &SubscriptionRef,
    ) -> Result<String, SealError> {
        if let Some(raw) = sealed.strip_prefix(SEALED_V2) {
            self.open_with(raw, &binding(subscription))
        } else if let Some(raw) = sealed.strip_prefix(SEALED_V1) {
            self.open_with(raw, SEALED_V1.as_bytes())
        } else {
            Err(SealError::Corrupt)
        }
    }

    /// A subscription's headers sealed for it alone, or `None` when it has none.
    pub fn seal_headers(
        &self,
        headers: &Headers,
        subscription: &SubscriptionRef,
    ) -> Option<String> {
        (!headers.is_empty()).then(|| {
            self.seal_with(
                SEALED_V2,
                &headers_binding(subscription),
                &headers.to_sealable(),
            )
        })
    }

    /// The client secret of a subscription's `auth`, sealed for it alone and that purpose.
    pub fn seal_client_secret(&self, secret: &str, subscription: &SubscriptionRef) -> String {
        self.seal_with(
            SEALED_V2,
            &purpose_binding(subscription, b"auth_client_secret"),
            secret,
        )
    }

    /// Opens the client secret of a subscription's `auth`.
    pub fn open_client_secret(
        &self,
        sealed: &str,
        subscription: &SubscriptionRef,
    ) -> Result<String, SealError> {
        let raw = sealed.strip_prefix(SEALED_V2).ok_or(SealError::Corrupt)?;
        self.open_with(raw, &purpose_binding(subscription, b"auth_client_secret"))
    }

    /// Opens a subscription's sealed headers (none when nothing is stored).
    pub fn open_headers(
        &self,
        sealed: Option<&str>,
        subscription: &SubscriptionRef,
    ) -> Result<Headers, SealError> {
        let Some(sealed) = sealed else {
            return Ok(Headers::default());
        };
        let raw = sealed.strip_prefix(SEALED_V2).ok_or(SealError::Corrupt)?;
        let text = self.open_with(raw, &headers_binding(subscription))?;
        Headers::from_opened(&text).map_err(|_| SealError::Corrupt)
    }

    /// The unbound `v1:` format, as values were sealed before the binding; for tests of
    /// rows written then.
    #[cfg(test)]
    pub(crate) fn seal(&self, plaintext: &str) -> String {
        self.seal_with(SEALED_V1, SEALED_V1.as_bytes(), plaintext)
    }

    fn seal_with(&self, prefix: &str, aad: &[u8], plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce);
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .expect("AES-GCM sealing cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{prefix}{}", B64.encode(out))
    }

    fn open_with(&self, raw: &str, aad: &[u8]) -> Result<String, SealError> {
        let mut bytes = B64.decode(raw).map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SealError::Corrupt)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
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

    use crate::model::identity::{Deployment, Owner};
    use crate::model::ids::SubscriptionId;

    fn subscription(deployment: &str, user_id: u64, id: &str) -> SubscriptionRef {
        SubscriptionRef {
            id: SubscriptionId::parse(id).unwrap(),
            owner: Owner {
                deployment: Deployment::parse(deployment).unwrap(),
                user_id,
            },
        }
    }

    const A: &str = "6553f10134bb64841fe84d38";
    const B: &str = "6553f10134bb64841fe84d39";

    #[test]
    fn sealed_secrets_round_trip_and_hide_the_plaintext() {
        let sealer = SecretSealer::ephemeral();
        let sub = subscription("hq", 7, A);
        let sealed = sealer.seal_for("s3cr3t-value", &sub);
        assert!(sealed.starts_with("v2:"), "new values are bound");
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(
            sealed,
            sealer.seal_for("s3cr3t-value", &sub),
            "each seal uses a fresh nonce"
        );
        assert_eq!(sealer.open_for(&sealed, &sub).unwrap(), "s3cr3t-value");
    }

    #[test]
    fn a_sealed_secret_copied_onto_another_row_does_not_open() {
        let sealer = SecretSealer::ephemeral();
        let sealed = sealer.seal_for("x", &subscription("hq", 7, A));
        for other in [
            subscription("hq", 7, B),
            subscription("hq", 8, A),
            subscription("acme", 7, A),
        ] {
            assert!(
                sealer.open_for(&sealed, &other).is_err(),
                "{other:?} must not open another row's secret"
            );
        }
        // Relabelled as the unbound format, it does not open either.
        let relabelled = sealed.replacen("v2:", "v1:", 1);
        assert!(
            sealer
                .open_for(&relabelled, &subscription("hq", 7, A))
                .is_err()
        );
    }

    #[test]
    fn headers_seal_for_their_subscription_and_purpose_alone() {
        let sealer = SecretSealer::ephemeral();
        let sub = subscription("hq", 7, A);
        let asked = crate::model::receiver::AskedHeaders::parse(&serde_json::json!({
            "X-Api-Key": "key-value-1"
        }))
        .unwrap();
        let headers = asked.resolve(None).unwrap();
        let sealed = sealer.seal_headers(&headers, &sub).unwrap();
        assert!(!sealed.contains("key-value-1") && !sealed.contains("X-Api-Key"));
        assert_eq!(sealer.open_headers(Some(&sealed), &sub).unwrap(), headers);
        assert!(
            sealer
                .open_headers(Some(&sealed), &subscription("hq", 7, B))
                .is_err()
        );
        assert!(sealer.open_for(&sealed, &sub).is_err(), "not a secret");
        let secret = sealer.seal_for(r#"[["X-A","1"]]"#, &sub);
        assert!(
            sealer.open_headers(Some(&secret), &sub).is_err(),
            "a secret is not headers"
        );
        assert_eq!(sealer.seal_headers(&Headers::default(), &sub), None);
        assert!(sealer.open_headers(None, &sub).unwrap().is_empty());
    }

    #[test]
    fn client_secrets_seal_for_their_subscription_and_purpose_alone() {
        let sealer = SecretSealer::ephemeral();
        let sub = subscription("hq", 7, A);
        let sealed = sealer.seal_client_secret("cs: 100% secret", &sub);
        assert!(!sealed.contains("secret"));
        assert_eq!(
            sealer.open_client_secret(&sealed, &sub).unwrap(),
            "cs: 100% secret"
        );
        assert!(
            sealer
                .open_client_secret(&sealed, &subscription("hq", 7, B))
                .is_err()
        );
        assert!(sealer.open_for(&sealed, &sub).is_err(), "not a secret");
        let secret = sealer.seal_for("cs", &sub);
        assert!(
            sealer.open_client_secret(&secret, &sub).is_err(),
            "a signing secret is not a client secret"
        );
    }

    #[test]
    fn values_sealed_before_the_binding_still_open() {
        let sealer = SecretSealer::ephemeral();
        let old = sealer.seal("legacy");
        assert!(old.starts_with("v1:"));
        assert_eq!(
            sealer.open_for(&old, &subscription("hq", 7, A)).unwrap(),
            "legacy"
        );
        assert!(
            sealer
                .open_for("v3:AAAA", &subscription("hq", 7, A))
                .is_err()
        );
        assert!(
            sealer
                .open_for("garbage", &subscription("hq", 7, A))
                .is_err()
        );
    }

    /// A value as the code before the binding wrote it (key of 32 zero bytes; checked
    /// against an independent AES-GCM implementation when it was made).
    #[test]
    fn a_row_written_before_the_binding_still_opens() {
        let sealer = SecretSealer::new(&[0u8; 32]);
        let stored = "v1:LyUcvz/JqjZ94a5oLX9P0m9OgQW3OrLGI7b/fADs9j6gtYIsRfDvPAfQsxbK";
        assert_eq!(
            sealer.open_for(stored, &subscription("hq", 7, A)).unwrap(),
            "written-before-v2"
        );
    }

    #[test]
    fn another_key_cannot_open() {
        let sub = subscription("hq", 7, A);
        let sealed = SecretSealer::ephemeral().seal_for("x", &sub);
        assert!(SecretSealer::ephemeral().open_for(&sealed, &sub).is_err());
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
            hex::encode(HmacKey::new(b"Jefe").sha1(b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
