//! Delivery jobs: one per subscription and event, carried by the deliveries queue. A job
//! holds ids and the small payload, never the subscription's secret or URL: the delivery
//! stage reads those from the store, so a deleted subscription receives nothing more.

use serde::{Deserialize, Serialize};

use crate::model::event::Event;
use crate::model::ids::SubscriptionId;
use crate::model::subscription::SubscriptionRef;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    /// The Standard Webhooks `webhook-id`: the same for every attempt of this delivery,
    /// and the same if the fan-out runs twice for one event (see [`delivery_id`]).
    pub delivery_id: String,
    pub subscription: SubscriptionRef,
    pub event_id: String,
    pub object_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_url: Option<String>,
    pub occurred_at: String,
    /// 1 for the first attempt.
    #[serde(default = "first")]
    pub attempt: u32,
    /// When the next attempt is due (Unix millis), for retries further away than a queue
    /// delay can reach; `None` means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    /// The body's `id` when the delivery is not about a product object: the subscription
    /// id an operational event is about (see [`crate::stages::notices`]). `object_id` is 0 then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

fn first() -> u32 {
    1
}

/// The delivery id of an event for a subscription: a hash of both, so the same event fanned
/// out twice (a retried or crashed fan-out) yields the same ids and receivers drop the
/// duplicates.
pub fn delivery_id(event_uid: &str, subscription: &SubscriptionId) -> String {
    use aws_lc_rs::digest;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(event_uid.as_bytes());
    ctx.update(b"\0");
    ctx.update(subscription.as_str().as_bytes());
    crate::model::ids::digest_id("msg_", ctx.finish().as_ref())
}

impl DeliveryJob {
    pub fn for_event(event: &Event, subscription: SubscriptionRef) -> Self {
        Self {
            delivery_id: delivery_id(&event.event_uid, &subscription.id),
            subscription,
            event_id: event.event_id.clone(),
            object_id: event.object_id,
            resource_url: event.resource_url.clone(),
            occurred_at: event.occurred_at.clone(),
            attempt: 1,
            due_at: None,
            subject: None,
        }
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("jobs serialize")
    }

    pub fn from_message(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_stable_and_distinct() {
        let a = SubscriptionId::parse("6553f10134bb64841fe84d38").unwrap();
        let b = SubscriptionId::parse("6553f10134bb64841fe84d39").unwrap();
        assert_eq!(delivery_id("e1", &a), delivery_id("e1", &a));
        assert_ne!(delivery_id("e1", &a), delivery_id("e1", &b));
        assert_ne!(delivery_id("e1", &a), delivery_id("e2", &a));
        assert!(delivery_id("e1", &a).starts_with("msg_") && delivery_id("e1", &a).len() == 36);
        // The same ids from one release to the next (a retry after an upgrade sends the
        // same `webhook-id`): computed independently with Python's hashlib.
        assert_eq!(
            delivery_id("e1", &a),
            "msg_13281be6173ed3c04b267cb70b2ef155"
        );
    }
}
