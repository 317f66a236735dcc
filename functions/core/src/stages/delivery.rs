//! The delivery stage: each job becomes a signed POST to its subscription's URL, and the
//! outcome decides what happens next. Each attempt is three steps: prepare (sign, with
//! the subscription's secrets as the batch opened them, once for all its jobs, and add its
//! own headers, opened the same way), call (one request, within the time limit), handle
//! (the policy's pure decision, [`crate::policy::after_attempt`], on the subscription's own
//! retry schedule when it has one, carried out: remove the subscription, queue the retry,
//! log the attempt).
//!
//! Retries further away than SQS's 15-minute delay are re-enqueued in steps: the job
//! carries `due_at`, and a job received before it is due goes back on the queue with the
//! remaining delay (at most 15 minutes a hop) without touching the store or the receiver.
//! Every attempt lands in the delivery log, automatic deletions with their reason.
//!
//! A subscription's `rate_limit` holds across every delivery instance: before its jobs
//! of a batch start, they take a block of slots of the current second from the shared
//! [`RateLimiter`] (one call per limited subscription per batch, none for the others), and
//! each job starts only within the second its slot is in. A job past the limit, or whose
//! second passed before it started, goes back on the queue untried, like a deferred job
//! (its attempt number unchanged, nothing logged), to come back in the second its place
//! in the line falls in ([`crate::policy::rate_limit`]). `dispatch` is not limited.
//!
//! A batch is handled as a whole: its subscriptions are read at once, its attempts run
//! together, and what they leave behind goes out together at the end: every message put
//! back on the queue (retries, hops, deferred jobs) in shared send requests, every log
//! line in shared writes. A message is done only when what it put back went out;
//! otherwise it is received again (and sends the same `webhook-id` again).

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use crate::model::clock::{Clock, Millis};
use crate::model::ids::SubscriptionId;
use crate::model::job::DeliveryJob;
use crate::model::random::random_unit;
use crate::model::receiver::{OAuthClient, RateLimit};
use crate::model::subscription::{Subscription, SubscriptionRef};
pub use crate::policy::after_attempt::Retries;
use crate::policy::after_attempt::{
    Context, Decision, Next, OnRepeatedFailure, RowMark, Verdict, decide, timeout_rounds_of,
};
use crate::policy::breaker::{Breaker, Ended, Permit};
use crate::policy::rate_limit::Block;
use crate::policy::retry::RetryPolicy;
use crate::policy::token::TokenError;
use crate::ports::delivery_log::{Attempt, DeliveryLog};
use crate::ports::http::{HeaderName, HttpResponse, HttpSender, OutgoingRequest, SendError};
use crate::ports::operator::{OperatorChannel, OperatorNotice};
use crate::ports::queue::{
    IncomingMessage, MAX_DELAY_SECS, OutgoingMessage, QueueError, QueueSender, send_all, send_each,
};
use crate::ports::rate_limit::RateLimiter;
use crate::ports::store::{StoreError, SubscriptionStore};
use crate::security::crypto::{SealError, SecretSealer};
use crate::security::signing::{self, SigningKey};
use crate::stages::batch::BatchHandler;
use crate::stages::notices::{self, Notice};
use crate::stages::recovery::{RecoverTask, again};
use crate::stages::token::Tokens;

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The limit on one request.
    pub timeout: Duration,
    /// Timeouts in a row that delete a subscription.
    pub timeout_limit: u32,
    pub retry: RetryPolicy,
    /// How long attempts stay in the delivery log.
    pub log_retention: Duration,
    /// Delete or disable a subscription that answers 410 or reaches the timeout limit.
    pub on_repeated_failure: OnRepeatedFailure,
    /// This API's address, for the `resource_url` of operational events (empty: the
    /// path alone).
    pub api_base_url: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            timeout_limit: 5,
            retry: RetryPolicy::default(),
            log_retention: Duration::from_secs(30 * 86400),
            on_repeated_failure: OnRepeatedFailure::Delete,
            api_base_url: String::new(),
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
    /// This instance's share limits per subscription (see [`crate::policy::breaker`]).
    pub breaker: Breaker,
    /// Where the operator hears of removals and give-ups (see [`crate::ports::operator`]).
    pub operator: Arc<dyn OperatorChannel>,
    /// Access tokens of subscriptions with `auth`, kept across batches and warm
    /// invocations (see [`crate::stages::token`]).
    pub tokens: Tokens,
    /// The slots of rate-limited subscriptions, shared by every delivery instance.
    pub limiter: Arc<dyn RateLimiter>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "the subscription's secret, headers or client secret cannot be opened with this installation's key for this subscription"
    )]
    Secret {
        #[source]
        source: crate::security::crypto::SealError,
    },
}

/// The queue message of `job`, delayed (at most SQS's 15 minutes; `due_at` carries the rest).
fn delayed(job: &DeliveryJob, delay: Duration) -> OutgoingMessage {
    let mut message = OutgoingMessage::new(job.to_message());
    message.delay_secs = delay.as_secs().min(MAX_DELAY_SECS as u64) as u32;
    message
}

/// How an attempt ended, for the breaker.
fn ended(attempt: &Attempt) -> Ended {
    if attempt.outcome == crate::ports::delivery_log::AttemptOutcome::Delivered {
        Ended::Delivered
    } else if crate::policy::after_attempt::timed_out(attempt) {
        Ended::TimedOut
    } else {
        Ended::Failed
    }
}

/// How many of a subscription's latest attempts the timeout count reads, after a
/// timeout: enough for `timeout_limit` rounds of many concurrent jobs each. Fewer rounds
/// found than there were only delays a removal, never causes one.
const TIMEOUT_HISTORY: usize = 100;

impl Deliverer {
    /// One attempt of `job` to `subscription`, and everything that follows from it, on
    /// its own: the retry queued and the log line written before it returns (a
    /// `dispatch`). A batch settles its attempts first and sends and writes them together.
    pub async fn attempt(
        &self,
        job: &DeliveryJob,
        subscription: &Subscription,
        retries: Retries,
    ) -> Result<Attempt, DeliveryError> {
        let alone = BatchMarks::default();
        let keys = self
            .keys(subscription, self.clock.now_millis())
            .map_err(|source| DeliveryError::Secret { source })?;
        let at = self.clock.now_millis();
        let Settled { record, requeue } = self
            .try_once(job, subscription, &keys, retries, &alone, at)
            .await?;
        crate::observe::metrics::delivery_attempts([(record.outcome, record.duration())]);
        if !requeue.is_empty() {
            send_all(self.deliveries.as_ref(), requeue, 1).await?;
        }
        if let Err(e) = self.log.record(&record).await {
            // The delivery itself is done; redoing it to save its log line would send it twice.
            tracing::error!(error = %e, delivery_id = %record.delivery_id, "could not write the delivery log");
        }
        Ok(record)
    }

    /// Prepare, call, and decide: the attempt made and what it leaves to send and write.
    /// `batch` holds what the batch's earlier attempts did, whose log lines are not
    /// written yet. `at` is when it starts.
    async fn try_once(
        &self,
        job: &DeliveryJob,
        subscription: &Subscription,
        keys: &Keys,
        retries: Retries,
        batch: &BatchMarks,
        at: Millis,
    ) -> Result<Settled, DeliveryError> {
        let started = Instant::now();
        let mut request = self.prepare(job, subscription, keys, at);
        // With `auth`, a token first; a failed token request is the attempt's failure.
        let token = match &keys.auth {
            None => None,
            Some((client, secret)) => {
                match self
                    .tokens
                    .get(self.sender.as_ref(), self.clock.as_ref(), client, secret)
                    .await
                {
                    Ok(token) => Some(token),
                    Err(e) => {
                        let call = Call {
                            at,
                            duration_ms: started.elapsed().as_millis() as u64,
                            result: Err(Failure::Token(e)),
                        };
                        return self.handle(job, subscription, call, retries, batch).await;
                    }
                }
            }
        };
        if let Some(token) = &token {
            request
                .headers
                .push((http::header::AUTHORIZATION, token.bearer()));
        }
        let result = self.sender.post(&request).await;
        // A 401 says the token is no good any more: the next attempt fetches another.
        if let (Some(token), Some((client, secret)), Ok(answer)) = (&token, &keys.auth, &result)
            && answer.status == 401
        {
            self.tokens.discard(client, secret, token).await;
        }
        let call = Call {
            at,
            duration_ms: started.elapsed().as_millis() as u64,
            result: result.map_err(Failure::Send),
        };
        self.handle(job, subscription, call, retries, batch).await
    }

    /// The subscription's secrets, opened for this subscription alone (a value copied
    /// from another row fails here) and set up for signing, and its own headers, opened
    /// the same way: once per batch, shared by the subscription's jobs in it. After a
    /// rotation the previous secret signs beside the new one while its window, as of
    /// `at`, lasts.
    fn keys(&self, subscription: &Subscription, at: Millis) -> Result<Keys, SealError> {
        let reference = subscription.key();
        let open = |sealed: &str| -> Result<SigningKey, SealError> {
            Ok(SigningKey::new(&self.sealer.open_for(sealed, &reference)?))
        };
        let headers = self
            .sealer
            .open_headers(subscription.sealed_headers.as_deref(), &reference)?
            .iter()
            .map(|(name, value)| {
                // Checked when set: a name that is no header name was not written by us.
                HeaderName::from_bytes(name.as_bytes())
                    .map(|name| (name, value.to_owned()))
                    .map_err(|_| SealError::Corrupt)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let auth = subscription
            .auth
            .as_ref()
            .map(|auth| {
                let secret = self
                    .sealer
                    .open_client_secret(&auth.sealed_client_secret, &reference)?;
                Ok::<_, SealError>((auth.client.clone(), secret))
            })
            .transpose()?;
        Ok(Keys {
            auth,
            current: subscription
                .sealed_secret
                .as_deref()
                .map(open)
                .transpose()?,
            previous: subscription.previous_secret_at(at).map(open).transpose()?,
            headers,
        })
    }

    /// The signed request, with the subscription's own headers.
    fn prepare(
        &self,
        job: &DeliveryJob,
        subscription: &Subscription,
        keys: &Keys,
        at: Millis,
    ) -> OutgoingRequest {
        let body = signing::body(
            subscription.content_type,
            signing::BodyId::of(job.object_id, job.subject.as_deref()),
            job.resource_url.as_deref(),
        );
        let mut headers = signing::headers(
            subscription.content_type,
            &job.event_id,
            &job.delivery_id,
            at.div_euclid(1000),
            &body,
            keys.current.as_ref(),
            keys.previous.as_ref(),
        );
        signing::add_own(&mut headers, &keys.headers);
        OutgoingRequest {
            url: subscription.trigger_url.as_str().to_owned(),
            headers,
            body,
            timeout: self.settings.timeout,
            body_cap: crate::ports::http::MAX_RESPONSE_BODY,
        }
    }

    /// Decides what the answer means and carries out what cannot wait (removing the
    /// subscription); the retry and the log line are left to the caller.
    async fn handle(
        &self,
        job: &DeliveryJob,
        subscription: &Subscription,
        call: Call,
        retries: Retries,
        batch: &BatchMarks,
    ) -> Result<Settled, DeliveryError> {
        let key = &subscription.key();
        let Call {
            at,
            duration_ms,
            result,
        } = call;
        let verdict = match &result {
            Ok(answer) => Verdict::answered(answer, at.div_euclid(1000)),
            Err(Failure::Send(e)) => Verdict::unanswered(e),
            // Not a timeout of the receiver's: it does not count toward removing it.
            Err(Failure::Token(_)) => Verdict::Failed { retry_after: None },
        };
        let timeout_rounds = match verdict {
            Verdict::TimedOut => self.timeout_rounds(job, key, at, batch).await,
            _ => 0,
        };
        let Decision { outcome, next } = decide(
            verdict,
            &Context {
                attempt: job.attempt,
                retries,
                timeout_rounds,
                timeout_limit: self.settings.timeout_limit,
                request_limit: self.settings.timeout,
                retry: &self.settings.retry,
                own_schedule: subscription.retry_schedule.as_ref(),
                random: random_unit(),
            },
        );
        let mut record = Attempt {
            subscription: key.clone(),
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.clone(),
            object_id: job.object_id,
            attempt: job.attempt,
            outcome,
            http_status: None,
            duration_ms,
            error_kind: None,
            reason: None,
            response_body: String::new(),
            resource_url: job.resource_url.clone(),
            occurred_at: Some(job.occurred_at.clone()),
            subject: job.subject.clone(),
            next_attempt_at: None,
            at,
            expires_at: at + self.settings.log_retention.as_millis() as i64,
        };
        match &result {
            Ok(response) => {
                record.http_status = Some(response.status);
                // The body helps with failures; a success's log line stays small (one
                // write unit).
                if verdict != Verdict::Delivered {
                    record.response_body = response.body.clone();
                    record.error_kind = Some(format!("http_{}", response.status));
                    record.reason = Some(format!("the receiver answered HTTP {}", response.status));
                }
            }
            Err(Failure::Send(e)) => {
                record.error_kind = Some(e.kind().to_owned());
                record.reason = Some(e.to_string());
            }
            // The kind and why, never the token endpoint's answer.
            Err(Failure::Token(e)) => {
                record.error_kind = Some(e.kind());
                record.reason = Some(e.to_string());
            }
        }
        if let Some(mark) = RowMark::of(&record) {
            batch.add(&key.id, mark);
        }
        let mut retry = None;
        let mut notice = None;
        match next {
            Next::Done => {}
            Next::Remove(removal) => {
                notice = Some(Notice::Removed(key));
                let policy = self.settings.on_repeated_failure;
                let reason = removal.reason_for(policy);
                match policy {
                    OnRepeatedFailure::Delete => {
                        self.store.delete(&key.owner, &key.id).await?;
                    }
                    OnRepeatedFailure::Disable => {
                        let disabled = Subscription {
                            active: false,
                            disabled_reason: Some(reason.clone()),
                            ..subscription.clone()
                        };
                        // Gone already (deleted meanwhile): nothing to disable.
                        self.store.replace(&disabled).await?;
                    }
                }
                tracing::info!(delivery_id = %job.delivery_id, subscription_id = %key.id, reason = %reason, "subscription removed automatically");
                record.reason = Some(reason);
            }
            Next::Retry(delay) => {
                let due = at + delay.as_millis() as i64;
                let next = DeliveryJob {
                    attempt: job.attempt + 1,
                    due_at: Some(due),
                    ..job.clone()
                };
                retry = Some(delayed(&next, delay));
                record.next_attempt_at = Some(due);
            }
        }
        if outcome == crate::ports::delivery_log::AttemptOutcome::GaveUp {
            notice = Some(Notice::GaveUp(job));
        }
        let mut requeue: Vec<OutgoingMessage> = retry.into_iter().collect();
        if let Some(notice) = notice.filter(|_| notices::about_to_notify(job)) {
            requeue.extend(self.notice(notice, job, at).await);
            self.tell_operator(notice, job, &record).await;
        }
        // A delivered attempt is in the log and the metrics already: its line is for
        // debugging (at info, one line a delivery was a sixth of the local runner's CPU
        // and most of the CloudWatch Logs bill). Anything else is worth a line.
        if outcome == crate::ports::delivery_log::AttemptOutcome::Delivered {
            tracing::debug!(
                delivery_id = %job.delivery_id,
                subscription_id = %key.id,
                attempt = record.attempt,
                status = record.http_status,
                duration_ms,
                "delivered"
            );
        } else {
            tracing::info!(
                delivery_id = %job.delivery_id,
                subscription_id = %key.id,
                attempt = record.attempt,
                outcome = outcome.as_str(),
                status = record.http_status,
                duration_ms,
                "delivery attempt"
            );
        }
        Ok(Settled { record, requeue })
    }

    /// Tells the operator; a failure is logged (see [`crate::ports::operator`]).
    async fn tell_operator(&self, notice: Notice<'_>, job: &DeliveryJob, record: &Attempt) {
        let about = notice.about();
        let told = OperatorNotice {
            event_id: notice.event_id().to_owned(),
            deployment: about.owner.deployment.to_string(),
            user_id: about.owner.user_id,
            subscription_id: about.id.to_string(),
            delivery_id: job.delivery_id.clone(),
            reason: record.reason.clone(),
            at: crate::model::event::format_millis(record.at),
        };
        if let Err(e) = self.operator.tell(&told).await {
            tracing::error!(error = %e, delivery_id = %job.delivery_id, event_id = %told.event_id, "could not tell the operator");
        }
    }

    /// The jobs that tell the owner what happened. A lookup that fails is logged, not
    /// retried: retrying the message would send its webhook again.
    async fn notice(
        &self,
        notice: Notice<'_>,
        job: &DeliveryJob,
        at: Millis,
    ) -> Vec<OutgoingMessage> {
        match notices::jobs(self.store.as_ref(), notice, &self.settings.api_base_url, at).await {
            Ok(jobs) => jobs
                .iter()
                .map(|j| OutgoingMessage::new(j.to_message()))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, delivery_id = %job.delivery_id, event_id = notice.event_id(), "could not look up who to tell");
                Vec::new()
            }
        }
    }

    /// Timeout rounds in a row, this attempt's included, from the subscription's latest
    /// attempts in the log. A log that cannot be read counts this round alone: the job is
    /// retried, and the next timeout counts again.
    async fn timeout_rounds(
        &self,
        job: &DeliveryJob,
        key: &SubscriptionRef,
        at: Millis,
        batch: &BatchMarks,
    ) -> u32 {
        match self.log.page(key, None, TIMEOUT_HISTORY).await {
            Ok(recent) => {
                let mut marks: Vec<RowMark> =
                    recent.attempts.iter().filter_map(RowMark::of).collect();
                marks.extend(batch.of(&key.id));
                timeout_rounds_of(at, marks, self.settings.timeout)
            }
            Err(e) => {
                tracing::error!(error = %e, delivery_id = %job.delivery_id, subscription_id = %key.id, "could not read the delivery log to count timeouts");
                1
            }
        }
    }

    async fn park(&self, message: &IncomingMessage, reason: String) -> Result<(), QueueError> {
        tracing::warn!(message_id = %message.message_id, reason = %reason, "unreadable delivery job parked");
        let mut parked = OutgoingMessage::new(message.body.clone());
        parked.attributes.insert(
            crate::stages::fanout::PARKED_REASON_ATTRIBUTE.into(),
            reason,
        );
        send_all(self.dead_letters.as_ref(), vec![parked], 1).await
    }

    /// Handles a batch; returns the ids of the messages to receive again.
    ///
    /// Requests per batch: one `BatchGetItem` per 100 jobs that are due, one send request
    /// per ten messages put back on the queue (retries, hops, deferred jobs, all
    /// together, at the end), one `BatchWriteItem` per 25 log lines. A message is done
    /// only when what it leaves on the queue went out; its log line is written then.
    async fn deliver_batch(&self, messages: &[IncomingMessage]) -> Vec<String> {
        let now = self.clock.now_millis();
        let mut failed = Vec::new();
        // Messages that go back on the queue, with the message each one settles.
        let mut requeue: Vec<(&IncomingMessage, OutgoingMessage)> = Vec::new();
        let mut due: Vec<(&IncomingMessage, DeliveryJob)> = Vec::new();
        for message in messages {
            // A recovery under way: one page of its window queued again, and the rest
            // carried on by a continuation.
            if let Some(task) = RecoverTask::from_message(&message.body) {
                match self.recover_page(&task).await {
                    Ok(sent_again) => requeue.extend(sent_again.into_iter().map(|m| (message, m))),
                    Err(e) => {
                        tracing::error!(error = %e, "could not read a recovery's window; it will be retried");
                        failed.push(message.message_id.clone());
                    }
                }
                continue;
            }
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
                    requeue.push((message, delayed(&job, Duration::from_millis(wait as u64))))
                }
                None => due.push((message, job)),
            }
        }
        let mut settled: Vec<(&IncomingMessage, Attempt)> = Vec::new();
        if !due.is_empty() {
            match self.attempt_due(&due, now, &mut requeue).await {
                Ok(attempts) => {
                    for (message, result) in attempts {
                        match result {
                            Ok(Settled {
                                record,
                                requeue: more,
                            }) => {
                                requeue.extend(more.into_iter().map(|m| (message, m)));
                                settled.push((message, record));
                            }
                            Err(e) => {
                                tracing::error!(error = %e, message_id = %message.message_id, "delivery failed; the job will be retried");
                                failed.push(message.message_id.clone());
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not read the batch's subscriptions; the batch will be retried");
                    failed.extend(due.iter().map(|(m, _)| m.message_id.clone()));
                }
            }
        }
        let outgoing: Vec<OutgoingMessage> = requeue.iter().map(|(_, m)| m.clone()).collect();
        let sent = send_each(self.deliveries.as_ref(), &outgoing, 4).await;
        let mut unsent = std::collections::HashSet::new();
        for ((message, _), ok) in requeue.iter().zip(sent) {
            if !ok {
                unsent.insert(message.message_id.as_str());
            }
        }
        failed.extend(unsent.iter().map(|id| (*id).to_owned()));
        // Attempts whose retry did not go out are tried again from the queue; their log
        // line is written then.
        let lines: Vec<Attempt> = settled
            .into_iter()
            .filter(|(m, _)| !unsent.contains(m.message_id.as_str()))
            .map(|(_, record)| record)
            .collect();
        let count = lines.len();
        if let Err(e) = self.log.record_all(lines).await {
            // The deliveries are done; redoing them to save their log lines would send
            // them twice.
            tracing::error!(error = %e, lines = count, "could not write the delivery log");
        }
        failed
    }

    /// The due jobs of a batch: their subscriptions read at once, jobs of slow or
    /// failing receivers deferred (added to `requeue`), the others attempted together.
    async fn attempt_due<'m>(
        &self,
        due: &[(&'m IncomingMessage, DeliveryJob)],
        now: Millis,
        requeue: &mut Vec<(&'m IncomingMessage, OutgoingMessage)>,
    ) -> Result<Vec<(&'m IncomingMessage, Result<Settled, DeliveryError>)>, StoreError> {
        let keys: Vec<SubscriptionRef> = due.iter().map(|(_, j)| j.subscription.clone()).collect();
        let subscriptions = self.store.get_many(&keys).await?;
        let mut admitted = Vec::new();
        let mut settled = Vec::new();
        let mut deferred = 0;
        let marks = &BatchMarks::default();
        // Each subscription's secrets and headers, opened once for all its jobs in the batch.
        let mut keys: HashMap<&SubscriptionId, Result<Keys, SealError>> = HashMap::new();
        for (message, job) in due {
            let found = subscriptions
                .iter()
                .find(|s| s.id == job.subscription.id && s.owner == job.subscription.owner);
            let Some(subscription) = found else {
                tracing::info!(delivery_id = %job.delivery_id, "the subscription is gone; nothing is sent");
                continue;
            };
            if !subscription.active {
                // Paused or disabled: nothing is sent; the line lets a recovery find it.
                tracing::info!(delivery_id = %job.delivery_id, "the subscription is inactive; nothing is sent");
                settled.push((
                    *message,
                    Ok(Settled {
                        record: self.not_sent(job, subscription, now),
                        requeue: Vec::new(),
                    }),
                ));
                continue;
            }
            match self.breaker.admit(&subscription.id, Instant::now()) {
                Ok(permit) => {
                    keys.entry(&subscription.id)
                        .or_insert_with(|| self.keys(subscription, now));
                    admitted.push((*message, job, subscription, permit))
                }
                // A slow or failing receiver's job waits on the queue, untried.
                Err(wait) => {
                    deferred += 1;
                    let later = DeliveryJob {
                        due_at: Some(now + wait.as_millis() as i64),
                        ..job.clone()
                    };
                    requeue.push((*message, delayed(&later, wait)));
                }
            }
        }
        let (admitted, mut limited) = self.within_limits(admitted, requeue, &mut settled).await;
        let attempts = admitted
            .into_iter()
            .map(|((message, job, subscription, permit), slot)| {
                // At debug: a span's fields are formatted when it opens, for every
                // delivery, though a success writes no line. The attempt's lines at info
                // and above carry `delivery_id` themselves.
                let span = tracing::debug_span!("delivery", delivery_id = %job.delivery_id);
                let keys = &keys[&subscription.id];
                async move {
                    let at = self.clock.now_millis();
                    if slot.is_some_and(|second| second != at.div_euclid(1000)) {
                        // Its slot's second passed before it started: it waits for another.
                        self.breaker.withdraw(permit);
                        return (message, Ran::PutBack(put_back(job, at.div_euclid(1000), 1)));
                    }
                    let result = match keys {
                        Ok(keys) => {
                            self.try_once(job, subscription, keys, Retries::Scheduled, marks, at)
                                .await
                        }
                        Err(source) => Err(DeliveryError::Secret { source: *source }),
                    };
                    if let Ok(settled) = &result {
                        self.breaker
                            .finish(permit, ended(&settled.record), Instant::now());
                    }
                    (message, Ran::Attempted(result))
                }
                .instrument(span)
            });
        // Polled only when woken (`join_all` of a few futures polls them all on every
        // wake-up), and each attempt drives its own connection.
        let ran: Vec<_> = attempts
            .collect::<futures::stream::FuturesOrdered<_>>()
            .collect()
            .await;
        let mut attempted = Vec::with_capacity(ran.len());
        for (message, ran) in ran {
            match ran {
                Ran::Attempted(result) => attempted.push((message, result)),
                Ran::PutBack(out) => {
                    limited += 1;
                    requeue.push((message, out));
                }
            }
        }
        crate::observe::metrics::deferred(deferred);
        crate::observe::metrics::rate_limited(limited);
        crate::observe::metrics::delivery_attempts(
            attempted
                .iter()
                .filter_map(|(_, result)| result.as_ref().ok())
                .map(|settled| (settled.record.outcome, settled.record.duration())),
        );
        settled.extend(attempted);
        Ok(settled)
    }

    /// The admitted jobs of rate-limited subscriptions take their slots of the current
    /// second: one block per subscription, all at once. Each job within its block's grant
    /// comes back with the second its slot is in; the others go back on the queue
    /// untried (added to `requeue`) for the second their place falls in. A block that
    /// could not be taken fails its jobs (they are received again). Jobs of subscriptions
    /// without a limit pass with no slot, at no cost. Answers the jobs that may start,
    /// and how many went back.
    async fn within_limits<'m, 'j>(
        &self,
        admitted: Vec<Admitted<'m, 'j>>,
        requeue: &mut Vec<(&'m IncomingMessage, OutgoingMessage)>,
        settled: &mut Vec<(&'m IncomingMessage, Result<Settled, DeliveryError>)>,
    ) -> (Vec<(Admitted<'m, 'j>, Option<i64>)>, usize) {
        let mut wanted: HashMap<&SubscriptionId, (&Subscription, RateLimit, u32)> = HashMap::new();
        for (_, _, subscription, _) in &admitted {
            if let Some(limit) = subscription.rate_limit {
                wanted
                    .entry(&subscription.id)
                    .or_insert((subscription, limit, 0))
                    .2 += 1;
            }
        }
        if wanted.is_empty() {
            return (admitted.into_iter().map(|a| (a, None)).collect(), 0);
        }
        let second = self.clock.now_secs();
        let takes = wanted
            .into_values()
            .map(|(subscription, limit, n)| async move {
                let taken = self.limiter.take(&subscription.key(), second, n).await;
                let block = taken.map(|after| Block::of(n, after, limit.per_second()));
                (&subscription.id, block)
            });
        let blocks: HashMap<&SubscriptionId, Result<Block, StoreError>> =
            futures::future::join_all(takes).await.into_iter().collect();
        let mut seen: HashMap<&SubscriptionId, u32> = HashMap::new();
        let mut go = Vec::with_capacity(admitted.len());
        let mut limited = 0;
        for (message, job, subscription, permit) in admitted {
            let Some(block) = blocks.get(&subscription.id) else {
                go.push(((message, job, subscription, permit), None));
                continue;
            };
            let i = seen.entry(&subscription.id).or_default();
            let n = *i;
            *i += 1;
            match block {
                Ok(block) if n < block.granted => {
                    go.push(((message, job, subscription, permit), Some(second)));
                }
                Ok(block) => {
                    self.breaker.withdraw(permit);
                    limited += 1;
                    requeue.push((message, put_back(job, second, block.wait(n).as_secs())));
                }
                Err(e) => {
                    self.breaker.withdraw(permit);
                    tracing::error!(error = %e, delivery_id = %job.delivery_id, "could not take a rate-limit slot; the job will be retried");
                    settled.push((message, Err(DeliveryError::Store(e.clone()))));
                }
            }
        }
        (go, limited)
    }

    /// The log line of a job not sent because its subscription is inactive: `failed`,
    /// kind `inactive`, so a recovery of the window sends it once the owner resumes.
    fn not_sent(&self, job: &DeliveryJob, subscription: &Subscription, at: Millis) -> Attempt {
        Attempt {
            subscription: subscription.key(),
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.clone(),
            object_id: job.object_id,
            attempt: job.attempt,
            outcome: crate::ports::delivery_log::AttemptOutcome::Failed,
            http_status: None,
            duration_ms: 0,
            error_kind: Some("inactive".into()),
            reason: Some(
                "the subscription was inactive (paused or disabled); nothing was sent".into(),
            ),
            response_body: String::new(),
            resource_url: job.resource_url.clone(),
            occurred_at: Some(job.occurred_at.clone()),
            subject: job.subject.clone(),
            next_attempt_at: None,
            at,
            expires_at: at + self.settings.log_retention.as_millis() as i64,
        }
    }

    /// One page of a recovery's window: the jobs that send its deliveries again, and the
    /// task that carries on from the next page.
    async fn recover_page(&self, task: &RecoverTask) -> Result<Vec<OutgoingMessage>, StoreError> {
        let page = task.page(self.log.as_ref(), task.cursor().as_ref()).await?;
        let mut out: Vec<OutgoingMessage> = page
            .lines
            .iter()
            .map(|line| OutgoingMessage::new(again(line).to_message()))
            .collect();
        if let Some(next) = page.next {
            let rest = RecoverTask {
                after: Some(next.encode()),
                ..task.clone()
            };
            out.push(OutgoingMessage::new(rest.to_message()));
        }
        tracing::info!(subscription_id = %task.subscription.id, queued = page.lines.len(), "recovery page queued");
        Ok(out)
    }
}

/// What the attempts of a batch did, by subscription, before their log lines are
/// written: a success in the batch ends a row of timeouts that another attempt of the
/// same batch counts.
#[derive(Default)]
struct BatchMarks(std::sync::Mutex<Vec<(SubscriptionId, RowMark)>>);

impl BatchMarks {
    fn add(&self, subscription: &SubscriptionId, mark: RowMark) {
        self.lock().push((subscription.clone(), mark));
    }

    fn of(&self, subscription: &SubscriptionId) -> Vec<RowMark> {
        self.lock()
            .iter()
            .filter(|(s, _)| s == subscription)
            .map(|(_, m)| *m)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SubscriptionId, RowMark)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A subscription's secrets set up for signing, and its own headers (see
/// [`Deliverer::keys`]).
struct Keys {
    /// The `auth` client and its opened secret.
    auth: Option<(OAuthClient, String)>,
    current: Option<SigningKey>,
    previous: Option<SigningKey>,
    headers: Vec<(HeaderName, String)>,
}

/// A job admitted by the breaker, with its message, subscription and permit.
type Admitted<'m, 'j> = (
    &'m IncomingMessage,
    &'j DeliveryJob,
    &'j Subscription,
    Permit,
);

/// What became of an admitted job: attempted, or put back untried because the second of
/// its rate-limit slot passed before it started. (Unboxed: a box would be an allocation
/// per attempt for a value that lives until the batch settles.)
#[allow(clippy::large_enum_variant)]
enum Ran {
    Attempted(Result<Settled, DeliveryError>),
    PutBack(OutgoingMessage),
}

/// The queue message of a job that waits for a rate-limit slot: untried, its attempt
/// number unchanged, due `wait` seconds after the start of `second` and delayed as long.
fn put_back(job: &DeliveryJob, second: i64, wait: u64) -> OutgoingMessage {
    let later = DeliveryJob {
        due_at: Some((second + wait as i64) * 1000),
        ..job.clone()
    };
    delayed(&later, Duration::from_secs(wait))
}

/// One request made: when it started, how long it took, and what came back.
struct Call {
    at: Millis,
    duration_ms: u64,
    result: Result<HttpResponse, Failure>,
}

/// Why an attempt got no answer from the receiver: the request failed, or no token was
/// obtained to make it with.
enum Failure {
    Send(SendError),
    Token(TokenError),
}

/// An attempt made and decided: its log line, and what it puts back on the queue (its
/// retry, and the jobs that tell the owner when it gave up or removed the subscription).
struct Settled {
    record: Attempt,
    requeue: Vec<OutgoingMessage>,
}

#[async_trait]
impl BatchHandler for Deliverer {
    async fn handle_batch(&self, messages: &[IncomingMessage]) -> Vec<String> {
        self.deliver_batch(messages).await
    }
}
