//! The idempotency port: an event's `idempotency_key` is claimed for 24 hours by the
//! first event that carries it. A claim is pending while that event fans out, and done
//! once it has: the same event may claim a pending key again (a retried or redriven
//! fan-out), nobody may claim a done one.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::identity::Deployment;
use crate::store::StoreError;

/// How long a key is remembered.
pub const IDEMPOTENCY_WINDOW_MILLIS: Millis = 24 * 3600 * 1000;

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` of `deployment` for the event `event_uid` until `now + window`, as
    /// pending. `true` when this event may fan out: the first claim, a claim after the
    /// window passed, or the same event claiming a key that is still pending (a retried
    /// fan-out); `false` when another event holds the key, or this event already finished.
    async fn claim(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
        now: Millis,
        window: Millis,
    ) -> Result<bool, StoreError>;

    /// Marks the claim of `event_uid` done: from now on the key only answers "duplicate".
    async fn complete(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
    ) -> Result<(), StoreError>;
}
