//! The delivery log port: every attempt, kept for a configurable time, read back by the
//! subscription's owner newest first.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::store::StoreError;
use crate::subscription::SubscriptionRef;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// Failed; another attempt is scheduled at `next_attempt_at`.
    Retrying,
    /// Failed, and no attempts are left.
    GaveUp,
    /// The subscription was deleted automatically because of this attempt (410 Gone, or
    /// too many timeouts in a row); `reason` says which.
    Unsubscribed,
    /// Not retried (a synchronous `dispatch` that failed).
    Failed,
}

impl AttemptOutcome {
    /// The outcome as the metrics count it.
    pub fn metric(self) -> crate::metrics::DeliveryOutcome {
        use crate::metrics::DeliveryOutcome as M;
        match self {
            Self::Delivered => M::Delivered,
            Self::Retrying => M::Retrying,
            Self::GaveUp => M::GaveUp,
            Self::Unsubscribed => M::Unsubscribed,
            Self::Failed => M::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::GaveUp => "gave_up",
            Self::Unsubscribed => "unsubscribed",
            Self::Failed => "failed",
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub subscription: SubscriptionRef,
    pub delivery_id: String,
    pub event_id: String,
    pub object_id: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    pub duration_ms: u64,
    /// `SendError::kind`, or `http_status` for an HTTP failure.
    pub error_kind: Option<String>,
    /// A sentence on what happened, for failures and automatic deletions.
    pub reason: Option<String>,
    /// The first 4 KB of the response body.
    pub response_body: String,
    pub next_attempt_at: Option<Millis>,
    /// When the attempt started.
    pub at: Millis,
    /// When the record may be forgotten (the table's TTL).
    pub expires_at: Millis,
}

#[async_trait]
pub trait DeliveryLog: Send + Sync {
    async fn record(&self, attempt: &Attempt) -> Result<(), StoreError>;

    /// Attempts for one subscription of its owner, newest first: page `page` (from 0) of
    /// `limit` records. Records past their `expires_at` may still appear until swept.
    async fn list(
        &self,
        subscription: &SubscriptionRef,
        page: usize,
        limit: usize,
    ) -> Result<Vec<Attempt>, StoreError>;
}
