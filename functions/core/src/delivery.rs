//! The delivery stage: each job becomes a signed POST to its subscription's URL, and the
//! outcome decides what happens next. This is the one place for the retry and
//! auto-unsubscribe policy:
//!
//! * 2xx: delivered; a count of timeouts in a row goes back to 0.
//! * 410 Gone: the subscription is deleted at once.
//! * Timeout (the request took longer than the limit and was cancelled): the count of
//!   timeouts in a row grows; at the limit the subscription is deleted. Below it, the
//!   delivery is retried like any failure, so nothing is lost to a slow moment.
//! * Any other failure (connection refused or reset, DNS, TLS, 3xx, 4xx, 5xx, a refused
//!   address): retried on the schedule, with jitter and a clamped `Retry-After`, then given
//!   up.
//!
//! Retries further away than SQS's 15-minute delay are re-enqueued in steps: the job
//! carries `due_at`, and a job received before it is due goes back on the queue with the
//! remaining delay (at most 15 minutes a hop) without touching the store or the receiver.
//! Every attempt lands in the delivery log, automatic deletions with their reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use crate::clock::Clock;
use crate::crypto::{SecretSealer, random_u64};
use crate::delivery_log::{Attempt, AttemptOutcome, DeliveryLog};
use crate::http::{HttpSender, OutgoingRequest, SendError};
use crate::job::DeliveryJob;
use crate::queue::{
    IncomingMessage, MAX_DELAY_SECS, OutgoingMessage, QueueError, QueueSender, send_all,
};
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::signing;
use crate::stage::BatchHandler;
use crate::store::{StoreError, SubscriptionStore};
use crate::subscription::{Subscription, SubscriptionRef};

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The limit on one request.
    pub timeout: Duration,
    /// Timeouts in a row that delete a subscription.
    pub timeout_limit: u32,
    pub retry: RetryPolicy,
    /// How long attempts stay in the delivery log.
    pub log_retention: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            timeout_limit: 5,
            retry: RetryPolicy::default(),
            log_retention: Duration::from_secs(30 * 86400),
        }
    }
}

pub struct Deliverer {
    pub store: Arc<dyn SubscriptionStore>,
    pub log: Arc<dyn DeliveryLog>,
    /// The deliveries queue, where retries go.
    pub deliveries: Arc<dyn QueueSender>,
    /// Its dead-letter queue, where unreadable jobs are parked.
    pub dead_letters: Arc<dyn QueueSender>,
    pub sender: Arc<dyn HttpSender>,
    pub sealer: SecretSealer,
    pub clock: Arc<dyn Clock>,
    pub settings: DeliverySettings,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "the subscription's secret cannot be opened with this installation's key for this subscription"
    )]
    Secret {
        #[source]
        source: crate::crypto::SealError,
    },
}

/// Whether a failed attempt schedules another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Failures go back on the queue (the delivery stage).
    Scheduled,
    /// The attempt is the only one (`dispatch`).
    None,
}

fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Deliverer {
    /// One attempt of `job` to `subscription`, and everything that follows from it.
    pub async fn attempt(
        &self,
        job: &DeliveryJob,
        subscription: &Subscription,
        retries: Retries,
    ) -> Result<Attempt, DeliveryError> {
        let key = SubscriptionRef {
            id: subscription.id.clone(),
            owner: subscription.owner.clone(),
        };
        let secret = match &subscription.sealed_secret {
            // Sealed for this subscription only: a value copied from another row fails here.
            Some(sealed) => Some(
                self.sealer
                    .open_for(sealed, &key)
                    .map_err(|source| DeliveryError::Secret { source })?,
            ),
            None => None,
        };
        let at = self.clock.now_millis();
        let body = signing::body(
            subscription.content_type,
            job.object_id,
            job.resource_url.as_deref(),
        );
        let headers = signing::headers(
            subscription.content_type,
            &job.event_id,
            &job.delivery_id,
            at.div_euclid(1000),
            &body,
            secret.as_deref(),
        );
        let request = OutgoingRequest {
            url: subscription.trigger_url.as_str().to_owned(),
            headers,
            body,
            timeout: self.settings.timeout,
        };
        let started = Instant::now();
        let result = self.sender.post(&request).await;
        let duration_ms = started.elapsed().as_millis() as u64;

        let mut record = Attempt {
            subscription: key.clone(),
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.clone(),
            object_id: job.object_id,
            attempt: job.attempt,
            outcome: AttemptOutcome::Delivered,
            http_status: None,
            duration_ms,
            error_kind: None,
            reason: None,
            response_body: String::new(),
            next_attempt_at: None,
            at,
            expires_at: at + self.settings.log_retention.as_millis() as i64,
        };
        let mut retry_after = None;
        match &result {
            Ok(response) => {
                record.http_status = Some(response.status);
                record.response_body = response.body.clone();
                retry_after = response
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, at.div_euclid(1000)));
            }
            Err(e) => {
                record.error_kind = Some(e.kind().to_owned());
                record.reason = Some(e.to_string());
            }
        }

        match &result {
            Ok(r) if (200..300).contains(&r.status) => {
                // The delivery is done: a failed reset is logged, not a reason to send again.
                if subscription.consecutive_timeouts > 0
                    && let Err(e) = self.store.reset_timeouts(&key).await
                {
                    tracing::error!(error = %e, subscription_id = %key.id, "could not reset the timeout count");
                }
            }
            Ok(r) if r.status == 410 => {
                self.store.delete(&key.owner, &key.id).await?;
                record.outcome = AttemptOutcome::Unsubscribed;
                record.reason =
                    Some("the receiver answered 410 Gone; the subscription was deleted".into());
                tracing::info!(subscription_id = %key.id, "subscription deleted: the receiver answered 410 Gone");
            }
            _ => {
                if let Ok(r) = &result {
                    record.error_kind = Some(format!("http_{}", r.status));
                    record.reason = Some(format!("the receiver answered HTTP {}", r.status));
                }
                let timed_out = matches!(result, Err(SendError::Timeout));
                let count = if timed_out {
                    // Not counted when the store fails: the retry below still happens.
                    self.store.record_timeout(&key).await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, subscription_id = %key.id, "could not count a timeout");
                        None
                    })
                } else {
                    None
                };
                if let Some(n) = count.filter(|n| *n >= self.settings.timeout_limit) {
                    self.store.delete(&key.owner, &key.id).await?;
                    record.outcome = AttemptOutcome::Unsubscribed;
                    record.reason = Some(format!(
                        "{n} deliveries in a row took longer than {} s; the subscription was deleted",
                        self.settings.timeout.as_secs()
                    ));
                    tracing::info!(subscription_id = %key.id, timeouts = n, "subscription deleted: too many timeouts in a row");
                } else {
                    record.outcome = match retries {
                        Retries::None => AttemptOutcome::Failed,
                        Retries::Scheduled => match self.settings.retry.next_delay(
                            job.attempt,
                            retry_after,
                            random_unit(),
                        ) {
                            None => AttemptOutcome::GaveUp,
                            Some(delay) => {
                                let due = at + delay.as_millis() as i64;
                                let next = DeliveryJob {
                                    attempt: job.attempt + 1,
                                    due_at: Some(due),
                                    ..job.clone()
                                };
                                self.enqueue(&next, delay).await?;
                                record.next_attempt_at = Some(due);
                                AttemptOutcome::Retrying
                            }
                        },
                    };
                }
            }
        }
        if let Err(e) = self.log.record(&record).await {
            // The delivery itself is done; redoing it to save its log line would send it twice.
            tracing::error!(error = %e, delivery_id = %record.delivery_id, "could not write the delivery log");
        }
        crate::metrics::delivery_attempt(
            record.outcome.metric(),
            Duration::from_millis(duration_ms),
        );
        tracing::info!(
            subscription_id = %key.id,
            attempt = record.attempt,
            outcome = record.outcome.as_str(),
            status = record.http_status,
            duration_ms,
            "delivery attempt"
        );
        Ok(record)
    }

    async fn enqueue(&self, job: &DeliveryJob, delay: Duration) -> Result<(), QueueError> {
        let mut message = OutgoingMessage::new(job.to_message());
        message.delay_secs = delay.as_secs().min(MAX_DELAY_SECS as u64) as u32;
        send_all(self.deliveries.as_ref(), vec![message], 1).await
    }

    async fn park(&self, message: &IncomingMessage, reason: String) -> Result<(), QueueError> {
        tracing::warn!(message_id = %message.message_id, reason = %reason, "unreadable delivery job parked");
        let mut parked = OutgoingMessage::new(message.body.clone());
        parked
            .attributes
            .insert(crate::fanout::PARKED_REASON_ATTRIBUTE.into(), reason);
        send_all(self.dead_letters.as_ref(), vec![parked], 1).await
    }

    /// Handles a batch; returns the ids of the messages to receive again.
    async fn deliver_batch(&self, messages: &[IncomingMessage]) -> Vec<String> {
        let now = self.clock.now_millis();
        let mut failed = Vec::new();
        let mut due: Vec<(&IncomingMessage, DeliveryJob)> = Vec::new();
        for message in messages {
            let job = match DeliveryJob::from_message(&message.body) {
                Ok(job) => job,
                Err(e) => {
                    if self
                        .park(message, format!("not a delivery job: {e}"))
                        .await
                        .is_err()
                    {
                        failed.push(message.message_id.clone());
                    }
                    continue;
                }
            };
            match job.due_at.map(|d| d - now).filter(|wait| *wait > 1000) {
                // Not due yet: another hop on the queue, no store read, no request.
                Some(wait) => {
                    if self
                        .enqueue(&job, Duration::from_millis(wait as u64))
                        .await
                        .is_err()
                    {
                        failed.push(message.message_id.clone());
                    }
                }
                None => due.push((message, job)),
            }
        }
        if due.is_empty() {
            return failed;
        }
        let keys: Vec<SubscriptionRef> = due.iter().map(|(_, j)| j.subscription.clone()).collect();
        let subscriptions = match self.store.get_many(&keys).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "could not read the batch's subscriptions; the batch will be retried");
                failed.extend(due.iter().map(|(m, _)| m.message_id.clone()));
                return failed;
            }
        };
        let attempts = due.iter().map(|(message, job)| {
            let subscription = subscriptions.iter().find(|s| s.id == job.subscription.id && s.owner == job.subscription.owner);
            let span = tracing::info_span!("delivery", delivery_id = %job.delivery_id);
            async move {
                let Some(subscription) = subscription else {
                    tracing::info!(delivery_id = %job.delivery_id, "the subscription is gone; nothing is sent");
                    return None;
                };
                match self.attempt(job, subscription, Retries::Scheduled).await {
                    Ok(_) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "delivery failed; the job will be retried");
                        Some(message.message_id.clone())
                    }
                }
            }
            .instrument(span)
        });
        failed.extend(
            futures::future::join_all(attempts)
                .await
                .into_iter()
                .flatten(),
        );
        failed
    }
}

#[async_trait]
impl BatchHandler for Deliverer {
    async fn handle_batch(&self, messages: &[IncomingMessage]) -> Vec<String> {
        self.deliver_batch(messages).await
    }
}
