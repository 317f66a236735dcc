//! Operational events: the platform tells a subscription's owner, through the owner's own
//! subscriptions to `webhook_subscription_removed` and `webhook_delivery_failed`, when a
//! subscription was deleted or disabled automatically (410 Gone, the timeout limit) or a
//! delivery gave up (its retries ran out).
//!
//! Guarantees:
//! * Never in a loop: a delivery *of* an operational event that fails, gives up or
//!   removes its subscription tells nobody ([`about_to_notify`] says no).
//! * The same cause gives the same delivery ids (they derive from the subscription
//!   removed, or the delivery that gave up), so a retried batch sends the same ones.
//! * Only the owner hears of it: the lookup is the owner's own subscriptions to the event
//!   (`SubscriptionStore::list_by_owner_event`), one read, and only when something failed;
//!   a delivery that succeeds costs nothing here.
//! * The body's `id` is the subscription the event is about, and `resource_url` its URL in
//!   this API (`{api_base_url}/api/v0/webhooks/subscriptions/{id}`).

use crate::model::clock::Millis;
use crate::model::event::format_millis;
use crate::model::job::{DeliveryJob, delivery_id};
use crate::model::subscription::SubscriptionRef;
use crate::ports::store::{StoreError, SubscriptionStore};

use crate::model::catalogue::{DELIVERY_FAILED, SUBSCRIPTION_REMOVED};

/// Whether an event is one of the platform's own.
pub fn is_operational(event_id: &str) -> bool {
    event_id == SUBSCRIPTION_REMOVED || event_id == DELIVERY_FAILED
}

/// Whether what happened to this job is told to its owner: not when the job itself
/// carries an operational event.
pub fn about_to_notify(job: &DeliveryJob) -> bool {
    !is_operational(&job.event_id)
}

/// What happened.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// The subscription was deleted or disabled automatically.
    Removed(&'a SubscriptionRef),
    /// This delivery gave up.
    GaveUp(&'a DeliveryJob),
}

impl Notice<'_> {
    pub fn event_id(&self) -> &'static str {
        match self {
            Self::Removed(_) => SUBSCRIPTION_REMOVED,
            Self::GaveUp(_) => DELIVERY_FAILED,
        }
    }

    /// The subscription the notice is about.
    pub fn about(&self) -> &SubscriptionRef {
        match self {
            Self::Removed(subscription) => subscription,
            Self::GaveUp(job) => &job.subscription,
        }
    }

    /// What the notice's delivery ids derive from: its cause.
    fn uid(&self) -> String {
        match self {
            Self::Removed(subscription) => format!("removed:{}", subscription.id),
            Self::GaveUp(job) => format!("gave_up:{}", job.delivery_id),
        }
    }
}

/// The jobs that tell the owner: one per subscription of the owner to the notice's event.
pub async fn jobs(
    store: &dyn SubscriptionStore,
    notice: Notice<'_>,
    api_base_url: &str,
    now: Millis,
) -> Result<Vec<DeliveryJob>, StoreError> {
    let about = notice.about();
    let listeners = store
        .list_by_owner_event(&about.owner, notice.event_id())
        .await?;
    let uid = notice.uid();
    Ok(listeners
        .into_iter()
        .map(|listener| DeliveryJob {
            delivery_id: delivery_id(&uid, &listener.id),
            subscription: listener,
            event_id: notice.event_id().to_owned(),
            object_id: 0,
            resource_url: Some(format!(
                "{}/api/v0/webhooks/subscriptions/{}",
                api_base_url.trim_end_matches('/'),
                about.id
            )),
            occurred_at: format_millis(now),
            attempt: 1,
            due_at: None,
            subject: Some(about.id.to_string()),
        })
        .collect())
}
