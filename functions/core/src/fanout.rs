//! The fan-out stage: one product event in, one delivery job out per subscription of that
//! deployment and event whose owner may view the object.
//!
//! Guarantees:
//! * An invalid event is parked on the dead-letter queue with its reason and never fails
//!   its neighbours.
//! * An `idempotency_key` is claimed for 24 hours by the first event carrying it, and
//!   marked done when its fan-out finishes; a later event with the same key is dropped.
//! * Each handling of a keyed message is an attempt with a random id that holds the claim
//!   under a lease ([`FanOutSettings::claim_lease`]). Two copies of one keyed event
//!   handled at the same moment send their jobs once: the second copy finds the first's
//!   live lease, answers [`Outcome::InProgress`] and is left on the queue (a batch item
//!   failure); it comes back after the visibility timeout, longer than the lease, and is
//!   then dropped as a duplicate, or carries on if the first attempt died.
//! * The same event goes on once the lease has ended while its claim is pending (a retry
//!   after a crash, or a redrive from the dead-letter queue), with the same delivery ids.
//! * A fan-out that crashes half way is retried from the start of its message, and sends
//!   the jobs it already sent again **with the same delivery ids** (they derive from the
//!   event's uid and the subscription id), so receivers drop the duplicates by `webhook-id`.
//! * A fan-out larger than one invocation's budget enqueues a continuation message that
//!   resumes at the next page: nothing is lost, nothing waits for the Lambda timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::catalogue::Catalogue;
use crate::clock::Clock;
use crate::event::Event;
use crate::idempotency::{
    Claim, ClaimTimes, Claimant, IDEMPOTENCY_WINDOW_MILLIS, IdempotencyStore,
};
use crate::job::DeliveryJob;
use crate::queue::{IncomingMessage, OutgoingMessage, QueueError, QueueSender, send_all};
use crate::stage::BatchHandler;
use crate::store::{StoreError, SubscriptionStore};

#[derive(Debug, Clone)]
pub struct FanOutSettings {
    /// Subscriptions asked of the store per page; the DynamoDB adapter also stops a page
    /// at 1 MB, so the default lets DynamoDB decide.
    pub page_size: usize,
    /// After this long, the remaining pages go to a continuation message.
    pub time_budget: Duration,
    /// At most this many pages per message (0: no limit but the time budget).
    pub max_pages_per_message: usize,
    /// Send requests in flight at once.
    pub send_concurrency: usize,
    /// How long an attempt holds a keyed event's claim against other copies of the event.
    /// Longer than one message can take (the function's timeout, 60 s), so a live
    /// fan-out keeps it; shorter than the events queue's visibility timeout (360 s), so a
    /// copy left on the queue comes back after it has ended.
    pub claim_lease: Duration,
}

impl Default for FanOutSettings {
    fn default() -> Self {
        Self {
            page_size: i32::MAX as usize,
            time_budget: Duration::from_secs(30),
            max_pages_per_message: 0,
            send_concurrency: 16,
            claim_lease: Duration::from_secs(120),
        }
    }
}

pub struct FanOut {
    pub store: Arc<dyn SubscriptionStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub deliveries: Arc<dyn QueueSender>,
    /// Where continuation messages go: the events queue itself.
    pub events: Arc<dyn QueueSender>,
    /// The events dead-letter queue, where invalid events are parked.
    pub dead_letters: Arc<dyn QueueSender>,
    pub catalogue: Catalogue,
    pub clock: Arc<dyn Clock>,
    pub settings: FanOutSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum FanOutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Jobs were enqueued; `continued` when a continuation message carries the rest.
    FannedOut {
        jobs: usize,
        pages: usize,
        continued: bool,
    },
    /// The idempotency key was already used by another event within 24 hours, or this
    /// event finished fanning out.
    Duplicate,
    /// Another copy of this keyed event is fanning out now; nothing was sent. The message
    /// must stay on the queue, to be tried again after the visibility timeout.
    InProgress,
    /// Invalid; parked on the dead-letter queue with this reason.
    Parked(String),
}

/// The message attribute that says why a message was parked.
pub const PARKED_REASON_ATTRIBUTE: &str = "webhooks_reason";

impl FanOut {
    pub async fn handle_message(&self, message: &IncomingMessage) -> Result<Outcome, FanOutError> {
        let now = self.clock.now_millis();
        match Event::from_message(&message.body, &self.catalogue, &message.message_id, now) {
            Ok(event) => match self.fan_out(&event).await {
                // A continuation whose cursor the store does not know will never work.
                Err(FanOutError::Store(StoreError::BadCursor)) => {
                    self.park(
                        message,
                        "resume_after is not a cursor this store issued".into(),
                    )
                    .await
                }
                other => other,
            },
            Err(reason) => self.park(message, reason.0).await,
        }
    }

    /// Puts an unusable message on the dead-letter queue with its reason.
    async fn park(
        &self,
        message: &IncomingMessage,
        reason: String,
    ) -> Result<Outcome, FanOutError> {
        tracing::warn!(message_id = %message.message_id, reason = %reason, "invalid event parked on the dead-letter queue");
        crate::metrics::events("queue", 0, 1);
        let mut parked = OutgoingMessage::new(message.body.clone());
        parked
            .attributes
            .insert(PARKED_REASON_ATTRIBUTE.into(), reason.clone());
        parked
            .attributes
            .insert("webhooks_message_id".into(), message.message_id.clone());
        send_all(self.dead_letters.as_ref(), vec![parked], 1).await?;
        Ok(Outcome::Parked(reason))
    }

    pub async fn fan_out(&self, event: &Event) -> Result<Outcome, FanOutError> {
        if event.resume_after.is_none()
            && let Some(key) = &event.idempotency_key
        {
            let claimant = Claimant {
                event_uid: event.event_uid.clone(),
                attempt: attempt_id(),
            };
            let times = ClaimTimes {
                now: self.clock.now_millis(),
                window: IDEMPOTENCY_WINDOW_MILLIS,
                lease: self.settings.claim_lease.as_millis() as i64,
            };
            match self
                .idempotency
                .claim(&event.deployment, key, &claimant, times)
                .await?
            {
                Claim::Granted => {}
                Claim::Duplicate => {
                    tracing::info!(event_uid = %event.event_uid, "idempotency key seen within 24 hours; not fanned out again");
                    return Ok(Outcome::Duplicate);
                }
                Claim::InProgress => {
                    tracing::info!(event_uid = %event.event_uid, "another copy of this event is fanning out; left on the queue for later");
                    return Ok(Outcome::InProgress);
                }
            }
        }
        let started = Instant::now();
        let mut cursor = event.resume_after.clone();
        let (mut jobs, mut pages) = (0usize, 0usize);
        loop {
            let page = self
                .store
                .page_by_event(
                    &event.deployment,
                    &event.event_id,
                    cursor.as_deref(),
                    self.settings.page_size,
                )
                .await?;
            pages += 1;
            let messages: Vec<OutgoingMessage> = page
                .items
                .into_iter()
                .filter(|s| event.visible_to.allows(s.owner.user_id))
                .filter(|s| event.exclude_subscription.as_ref() != Some(&s.id))
                .map(|s| OutgoingMessage::new(DeliveryJob::for_event(event, s).to_message()))
                .collect();
            jobs += messages.len();
            send_all(
                self.deliveries.as_ref(),
                messages,
                self.settings.send_concurrency,
            )
            .await?;
            let Some(next) = page.next else {
                if let Some(key) = &event.idempotency_key {
                    self.idempotency
                        .complete(&event.deployment, key, &event.event_uid)
                        .await?;
                }
                tracing::info!(event_uid = %event.event_uid, event_id = %event.event_id, jobs, pages, "fanned out");
                crate::metrics::fanned_out(jobs);
                return Ok(Outcome::FannedOut {
                    jobs,
                    pages,
                    continued: false,
                });
            };
            let out_of_pages = self.settings.max_pages_per_message > 0
                && pages >= self.settings.max_pages_per_message;
            if out_of_pages || started.elapsed() >= self.settings.time_budget {
                let mut rest = event.clone();
                rest.resume_after = Some(next);
                send_all(
                    self.events.as_ref(),
                    vec![OutgoingMessage::new(rest.to_message())],
                    1,
                )
                .await?;
                tracing::info!(event_uid = %event.event_uid, jobs, pages, "fan-out continues in a new message");
                crate::metrics::fanned_out(jobs);
                return Ok(Outcome::FannedOut {
                    jobs,
                    pages,
                    continued: true,
                });
            }
            cursor = Some(next);
        }
    }
}

/// A fresh attempt id: `att_` and 32 hex characters, different for every handling of a
/// message (also of one message handed over twice).
fn attempt_id() -> String {
    let mut bytes = [0u8; 16];
    crate::crypto::random_bytes(&mut bytes);
    format!("att_{}", hex::encode(bytes))
}

#[async_trait]
impl BatchHandler for FanOut {
    async fn handle_batch(&self, messages: &[IncomingMessage]) -> Vec<String> {
        let results =
            futures::future::join_all(messages.iter().map(|m| self.handle_message(m))).await;
        messages
            .iter()
            .zip(results)
            .filter_map(|(m, r)| match r {
                // Back after the visibility timeout: dropped then, or carried on.
                Ok(Outcome::InProgress) => Some(m.message_id.clone()),
                Ok(_) => None,
                Err(e) => {
                    tracing::error!(message_id = %m.message_id, error = %e, "fan-out failed; the message will be retried");
                    Some(m.message_id.clone())
                }
            })
            .collect()
    }
}
