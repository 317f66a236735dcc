//! The operator's channel: what the platform tells the installation's operator (an SNS
//! topic on AWS, when one is configured) beside the owners' operational events
//! (`crate::stages::notices`): a subscription removed automatically, a delivery that gave up.
//!
//! Guarantees:
//! * The same notices as the owners get, with the owner and the reason; never a secret,
//!   never a receiver's response body.
//! * Never in a loop: nothing is told about deliveries of operational events.
//! * Telling the operator is bookkeeping: a failure is logged and does not fail the
//!   delivery (retrying would send the webhook again).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One notice, as the operator receives it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNotice {
    /// `webhook_subscription_removed` or `webhook_delivery_failed`.
    pub event_id: String,
    pub deployment: String,
    pub user_id: u64,
    pub subscription_id: String,
    /// The delivery that gave up, or that removed the subscription.
    pub delivery_id: String,
    pub reason: Option<String>,
    /// RFC 3339.
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the operator could not be told: {0}")]
pub struct OperatorError(pub String);

#[async_trait]
pub trait OperatorChannel: Send + Sync {
    async fn tell(&self, notice: &OperatorNotice) -> Result<(), OperatorError>;
}

/// No operator channel configured: notices go to the log only.
pub struct LogOnly;

#[async_trait]
impl OperatorChannel for LogOnly {
    async fn tell(&self, notice: &OperatorNotice) -> Result<(), OperatorError> {
        tracing::info!(
            event_id = %notice.event_id,
            subscription_id = %notice.subscription_id,
            delivery_id = %notice.delivery_id,
            "operator notice (no operator channel configured)"
        );
        Ok(())
    }
}
