//! The rate-limit port: slots of a subscription's seconds, shared by every delivery
//! instance (SPEC section 9, `rate_limit`).
//!
//! A second of the platform's clock (whole Unix seconds) has a counter per subscription.
//! [`RateLimiter::take`] adds a block of slots to it in one atomic step and answers the
//! count after the addition; which of the block's slots fall within the limit is
//! `policy::rate_limit`'s pure arithmetic. Guarantees of every adapter:
//! * Adding is atomic: of instances adding at the same moment, each sees a different
//!   count, so no slot is handed out twice.
//! * A counter lives at least until its second has passed (then it may be forgotten).

use async_trait::async_trait;

use crate::model::subscription::SubscriptionRef;
use crate::ports::store::StoreError;

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Adds `wanted` to the counter of `subscription`'s second `second` (Unix seconds);
    /// answers the counter after the addition.
    async fn take(
        &self,
        subscription: &SubscriptionRef,
        second: i64,
        wanted: u32,
    ) -> Result<u64, StoreError>;
}
