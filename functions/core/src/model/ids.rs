//! Subscription ids: 24 lowercase hex characters, time-ordered like a MongoDB ObjectId
//! (4 bytes of Unix seconds, 5 bytes random per process, 3 bytes of a counter).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::model::clock::Clock;
use crate::model::random::random_bytes;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SubscriptionId(String);

#[derive(Debug, thiserror::Error)]
#[error("a subscription id is 24 lowercase hexadecimal characters")]
pub struct InvalidId;

impl SubscriptionId {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        if s.len() == 24
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Unix second the id was minted at.
    pub fn timestamp(&self) -> u32 {
        u32::from_str_radix(&self.0[..8], 16).unwrap_or_default()
    }
}

impl TryFrom<String> for SubscriptionId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        Self::parse(&s)
    }
}

impl From<SubscriptionId> for String {
    fn from(id: SubscriptionId) -> String {
        id.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Mints ObjectId-style ids. One per process; cheap to share.
pub struct IdGenerator {
    process: [u8; 5],
    counter: AtomicU32,
}

impl Default for IdGenerator {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        random_bytes(&mut seed);
        Self {
            process: [seed[0], seed[1], seed[2], seed[3], seed[4]],
            counter: AtomicU32::new(u32::from_be_bytes([0, seed[5], seed[6], seed[7]])),
        }
    }
}

impl IdGenerator {
    pub fn next(&self, clock: &dyn Clock) -> SubscriptionId {
        let secs = clock.now_secs().clamp(0, u32::MAX as i64) as u32;
        let count = self.counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(&self.process);
        bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
        SubscriptionId(hex::encode(bytes))
    }
}

/// `prefix` and the first 16 bytes of `digest` as 32 lowercase hex digits: the delivery,
/// question and keyed event ids, which must never change for a given digest.
pub fn digest_id(prefix: &str, digest: &[u8]) -> String {
    let first: [u8; 16] = digest[..16]
        .try_into()
        .expect("a digest of at least 16 bytes");
    format!("{prefix}{:032x}", u128::from_be_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::ManualClock;

    #[test]
    fn digest_ids_are_the_first_16_bytes_in_padded_lowercase_hex() {
        let bytes: Vec<u8> = (0u8..20).collect();
        assert_eq!(
            digest_id("msg_", &bytes),
            format!("msg_{}", hex::encode(&bytes[..16]))
        );
        assert_eq!(
            digest_id("key_", &[0; 32]),
            format!("key_{}", "0".repeat(32))
        );
        assert_eq!(
            digest_id("", &[0xab; 16]),
            "abababababababababababababababab"
        );
    }

    #[test]
    fn ids_are_24_hex_and_time_ordered() {
        let clock = ManualClock::at(1_700_000_000_000);
        let ids = IdGenerator::default();
        let a = ids.next(&clock);
        clock.advance(1000);
        let b = ids.next(&clock);
        assert_eq!(a.as_str().len(), 24);
        assert!(SubscriptionId::parse(a.as_str()).is_ok());
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(a.timestamp(), 1_700_000_000);
        assert_eq!(&a.as_str()[..8], "6553f100");
    }

    #[test]
    fn ids_within_one_second_are_distinct() {
        let clock = ManualClock::at(0);
        let ids = IdGenerator::default();
        let set: std::collections::HashSet<_> = (0..1000).map(|_| ids.next(&clock)).collect();
        assert_eq!(set.len(), 1000);
    }

    #[test]
    fn parse_rejects_non_ids() {
        for bad in [
            "",
            "583f4b8028dc59073860a6d",
            "583F4B8028DC59073860A6D1",
            "583f4b8028dc59073860a6dz",
        ] {
            assert!(SubscriptionId::parse(bad).is_err(), "{bad}");
        }
        assert!(SubscriptionId::parse("583f4b8028dc59073860a6d1").is_ok());
    }
}
