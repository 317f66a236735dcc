//! The idempotency port: an event's `idempotency_key` is claimed for 24 hours by the
//! first event that carries it.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::identity::Deployment;
use crate::store::StoreError;

/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW_MILLIS: Millis = 24 * 3600 * 1000;

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` of `deployment` for the event `event_uid` until `now + window`.
    /// `true` when this event holds the key (the first claim, a claim after the window
    /// passed, or the same event claiming again, as a retried fan-out does); `false` when
    /// another event claimed it within the window.
    async fn claim(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
        now: Millis,
        window: Millis,
    ) -> Result<bool, StoreError>;
}
