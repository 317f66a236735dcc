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
//! * A batch is handled as a whole, with the same jobs and delivery ids as its events one
//!   by one: events of one (deployment, event) read the subscriptions once per batch, and
//!   the jobs of every event share send requests (ten jobs each). An event is done only
//!   when all its jobs (and its continuation) went out; otherwise its message is retried
//!   and sends them again, with the same delivery ids.
//! * Reads follow the audience: events that few users may see (at most
//!   [`FanOutSettings::audience_limit`] distinct users across their group, enough for a
//!   full batch of events naming ten each) read only those users' subscriptions to the
//!   event, one lookup per user, at most [`AUDIENCE_CONCURRENCY`] in flight across the
//!   batch; `"all"`, longer lists and continuations page through every subscription to
//!   the type and filter.
//! * An event for `"check"` (SPEC section 5) reaches only the owners the product's access
//!   check names, asked about the owners of the subscriptions read, 100 a question
//!   (`stages::access`). Owners whose question failed are asked again alone, in a new
//!   message on the events queue ([`CheckRetry`]) delayed on the delivery schedule; after
//!   the schedule that message is parked on the dead-letter queue with the reason. Owners
//!   already answered for are not asked again, nobody is delivered to on a guess, and the
//!   delivery ids are those the first message would have made. Questions not started
//!   within the time budget go to such a message at once, not counted as an attempt.
//!   Without an access check configured, a `"check"` event is parked with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::model::catalogue::Catalogue;
use crate::model::clock::{Clock, Millis};
use crate::model::event::{CheckRetry, Event, Visibility};
use crate::model::identity::{Owner, UserId};
use crate::model::job::DeliveryJob;
use crate::model::random::random_unit;
use crate::model::subscription::SubscriptionRef;
use crate::policy::access::{AfterFailure, Subject, after_failure};
use crate::policy::retry::RetryPolicy;
use crate::ports::idempotency::{
    Claim, ClaimTimes, Claimant, IDEMPOTENCY_WINDOW_MILLIS, IdempotencyStore,
};
use crate::ports::queue::{
    IncomingMessage, MAX_BATCH, MAX_DELAY_SECS, OutgoingMessage, QueueError, QueueSender, send_all,
    send_each,
};
use crate::ports::store::{StoreError, SubscriptionStore};
use crate::stages::access::{AccessCheck, Answers};
use crate::stages::batch::BatchHandler;

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
    /// Events visible to at most this many distinct users (all events of a group in a
    /// batch together) read those users' subscriptions to them, one lookup each, instead
    /// of every subscription to the type. 0: always read every subscription.
    pub audience_limit: usize,
    /// When an access check's failed question is asked again (the delivery schedule).
    pub check_retry: RetryPolicy,
}

impl Default for FanOutSettings {
    fn default() -> Self {
        Self {
            page_size: i32::MAX as usize,
            time_budget: Duration::from_secs(30),
            max_pages_per_message: 0,
            send_concurrency: 16,
            claim_lease: Duration::from_secs(120),
            audience_limit: AUDIENCE_LIMIT,
            check_retry: RetryPolicy::default(),
        }
    }
}

/// The default [`FanOutSettings::audience_limit`]: a full batch (the template's
/// `BatchSize` of 100) of events that each name up to 10 users. A lookup is a `Query` of
/// one user's keys, half a read unit (eventually consistent, up to 4 KB: some 40 of
/// that user's subscriptions to the event), so the audience path costs half a unit per
/// user named, whatever the size of the type; reading the type costs half a unit per
/// ~75 of its subscriptions, and grows with the deployment. It is cheaper only for a
/// type of fewer than ~75 subscriptions per user named, where both are a few units
/// (100 users, 1,920 subscriptions: 50 units against 13, six millionths of a dollar
/// against two). The choice is by count, not by estimated units: a cold instance does
/// not know the size of a type without reading it.
pub const AUDIENCE_LIMIT: usize = 1000;

/// Audience lookups in flight at once, across a batch's groups. Each holds a connection
/// of the SDK's pool (and a file descriptor, of Lambda's 1,024) beside the send requests;
/// each reads its own key of the index, so DynamoDB spreads them. At ~5 ms a `Query`, 32
/// at once read a full batch's 1,000 users in about 0.2 s, well inside
/// [`FanOutSettings::time_budget`]; more would add connections for little time saved.
pub const AUDIENCE_CONCURRENCY: usize = 32;

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
    /// The product's access check, when the installation has one.
    pub access: Option<Arc<AccessCheck>>,
}

#[derive(Debug, Clone, thiserror::Error)]
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
    /// Invalid, or its access check gave up; parked on the dead-letter queue with this
    /// reason.
    Parked(String),
    /// An access check's retry received before it is due: sent back with the rest of its
    /// delay (SQS delays at most 15 minutes).
    NotDue,
}

/// Why a `"check"` event is refused without an access check.
pub const NO_ACCESS_CHECK: &str = "visible_to \"check\" needs the product's access check, and this installation has none (WEBHOOKS_ACCESS_CHECK_URL)";

/// The message attribute that says why a message was parked.
pub const PARKED_REASON_ATTRIBUTE: &str = "webhooks_reason";

/// Events of a batch that read the same subscriptions: same deployment, same event type,
/// same place in the index (a continuation's cursor).
type GroupKey<'a> = (&'a str, &'a str, Option<&'a str>);

/// What one group's lookups and jobs came to.
struct GroupEnd {
    /// Jobs per member, in the group's member order.
    jobs: Vec<usize>,
    /// Store reads: index pages, or one per user on the audience path.
    reads: usize,
    /// Where the rest of the index starts, when a continuation carries it.
    next: Option<String>,
    /// Per member: the access check's answers, for `"check"` members.
    checks: Vec<Option<Answers>>,
}

impl FanOut {
    pub async fn handle_message(&self, message: &IncomingMessage) -> Result<Outcome, FanOutError> {
        let mut results = self.handle_messages(std::slice::from_ref(message)).await;
        results.pop().expect("one result per message")
    }

    /// Every message of a batch, one result each, in order. Lookups and sends are shared
    /// across the batch: events of one (deployment, event) read the subscriptions once,
    /// and the jobs of all events go out together, ten to a send request.
    pub async fn handle_messages(
        &self,
        messages: &[IncomingMessage],
    ) -> Vec<Result<Outcome, FanOutError>> {
        let now = self.clock.now_millis();
        let mut results: Vec<Option<Result<Outcome, FanOutError>>> =
            messages.iter().map(|_| None).collect();
        let mut readable = Vec::new();
        let mut events = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            match Event::from_message(&message.body, &self.catalogue, &message.message_id, now) {
                Ok(event) if event.visible_to == Visibility::check() && self.access.is_none() => {
                    results[i] = Some(self.park(message, NO_ACCESS_CHECK.into()).await);
                }
                Ok(event)
                    if event
                        .check_retry
                        .as_ref()
                        .is_some_and(|r| r.due_at - now > 1000) =>
                {
                    results[i] = Some(self.not_due(&event, now).await);
                }
                Ok(event) => {
                    readable.push(i);
                    events.push(event);
                }
                Err(reason) => results[i] = Some(self.park(message, reason.0).await),
            }
        }
        let outcomes = self.fan_out_all(&events).await;
        for (i, outcome) in readable.into_iter().zip(outcomes) {
            results[i] = Some(match outcome {
                // A continuation whose cursor the store does not know will never work.
                Err(FanOutError::Store(StoreError::BadCursor)) => {
                    self.park(
                        &messages[i],
                        "resume_after is not a cursor this store issued".into(),
                    )
                    .await
                }
                other => other,
            });
        }
        results
            .into_iter()
            .map(|r| r.expect("every message answered"))
            .collect()
    }

    /// Puts an unusable message on the dead-letter queue with its reason.
    async fn park(
        &self,
        message: &IncomingMessage,
        reason: String,
    ) -> Result<Outcome, FanOutError> {
        tracing::warn!(message_id = %message.message_id, reason = %reason, "invalid event parked on the dead-letter queue");
        crate::observe::metrics::events("queue", 0, 1);
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

    /// An access check's retry that is not due yet, back on the events queue for the rest
    /// of its delay.
    async fn not_due(&self, event: &Event, now: Millis) -> Result<Outcome, FanOutError> {
        let due_at = event.check_retry.as_ref().map_or(now, |r| r.due_at);
        send_all(self.events.as_ref(), vec![delayed(event, due_at - now)], 1).await?;
        Ok(Outcome::NotDue)
    }

    /// One event on its own (a batch of one).
    pub async fn fan_out(&self, event: &Event) -> Result<Outcome, FanOutError> {
        let mut results = self.fan_out_all(std::slice::from_ref(event)).await;
        results.pop().expect("one result per event")
    }

    /// The events of a batch: claims, shared lookups, shared sends, continuations, and
    /// the claims marked done. An event's result is an error when any of its jobs or its
    /// continuation did not go out: its message is retried, and sends the same delivery
    /// ids again.
    pub async fn fan_out_all(&self, events: &[Event]) -> Vec<Result<Outcome, FanOutError>> {
        let mut results: Vec<Option<Result<Outcome, FanOutError>>> =
            events.iter().map(|_| None).collect();
        let claims = futures::future::join_all(events.iter().map(|e| self.claim(e))).await;
        let mut groups: BTreeMap<GroupKey<'_>, Vec<usize>> = BTreeMap::new();
        for (i, claim) in claims.into_iter().enumerate() {
            match claim {
                Ok(None) => {
                    let e = &events[i];
                    groups
                        .entry((
                            e.deployment.as_str(),
                            e.event_id.as_str(),
                            e.resume_after.as_deref(),
                        ))
                        .or_default()
                        .push(i);
                }
                Ok(Some(stopped)) => results[i] = Some(Ok(stopped)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let outbox = Outbox::new(self.deliveries.as_ref(), self.settings.send_concurrency);
        let lookups = tokio::sync::Semaphore::new(AUDIENCE_CONCURRENCY);
        let ends =
            futures::future::join_all(groups.iter().map(|(key, members)| {
                self.fan_out_group(*key, members, events, &outbox, &lookups)
            }))
            .await;
        outbox.flush().await;
        let unsent = outbox.unsent();

        let mut jobs = vec![0usize; events.len()];
        let mut reads = vec![0usize; events.len()];
        let mut next: Vec<Option<&str>> = vec![None; events.len()];
        let mut checks: Vec<Option<&Answers>> = vec![None; events.len()];
        for ((_, members), end) in groups.iter().zip(&ends) {
            for (k, &i) in members.iter().enumerate() {
                results[i] = match end {
                    Ok(end) => {
                        jobs[i] = end.jobs[k];
                        reads[i] = end.reads;
                        next[i] = end.next.as_deref();
                        checks[i] = end.checks[k].as_ref();
                        unsent
                            .get(&i)
                            .map(|&n| Err(QueueError::Partial(n, end.jobs[k]).into()))
                    }
                    Err(e) => Some(Err(e.clone())),
                };
            }
        }

        // The rest of large fan-outs, as continuation messages on the events queue.
        let going_on: Vec<usize> = (0..events.len())
            .filter(|&i| results[i].is_none() && next[i].is_some())
            .collect();
        let continuations: Vec<OutgoingMessage> = going_on
            .iter()
            .map(|&i| {
                let mut rest = events[i].clone();
                rest.resume_after = next[i].map(str::to_owned);
                OutgoingMessage::new(rest.to_message())
            })
            .collect();
        let sent = send_each(self.events.as_ref(), &continuations, 4).await;
        for (&i, ok) in going_on.iter().zip(sent) {
            if !ok {
                results[i] = Some(Err(QueueError::Partial(1, 1).into()));
            }
        }

        // Owners of `"check"` events still without an answer, in messages of their own.
        let now = self.clock.now_millis();
        let (mut again, mut parked) = (Vec::new(), Vec::new());
        for (i, answers) in checks.iter().enumerate() {
            if let (None, Some(answers)) = (&results[i], answers) {
                let (a, p) = self.check_leftovers(&events[i], answers, now);
                again.extend(a.into_iter().map(|m| (i, m)));
                parked.extend(p.into_iter().map(|m| (i, m)));
            }
        }
        for (queue, leftovers) in [(&self.events, again), (&self.dead_letters, parked)] {
            let (owners, messages): (Vec<usize>, Vec<OutgoingMessage>) =
                leftovers.into_iter().unzip();
            let sent = send_each(queue.as_ref(), &messages, 4).await;
            for (i, ok) in owners.into_iter().zip(sent) {
                if !ok {
                    results[i] = Some(Err(QueueError::Partial(1, 1).into()));
                }
            }
        }

        // Keyed events that finished: their claims are done.
        let finished: Vec<usize> = (0..events.len())
            .filter(|&i| results[i].is_none() && next[i].is_none())
            .collect();
        let completions = futures::future::join_all(finished.iter().map(|&i| async move {
            match &events[i].idempotency_key {
                Some(key) => {
                    self.idempotency
                        .complete(&events[i].deployment, key, &events[i].event_uid)
                        .await
                }
                None => Ok(()),
            }
        }))
        .await;
        for (&i, done) in finished.iter().zip(completions) {
            if let Err(e) = done {
                results[i] = Some(Err(e.into()));
            }
        }

        // One line a batch at info, a line an event at debug: a line for every event cost
        // CPU per delivery and CloudWatch Logs bytes per delivery.
        let mut jobs_made: Vec<usize> = Vec::new();
        let (mut done, mut made) = (0usize, 0usize);
        for (i, event) in events.iter().enumerate() {
            if results[i].is_none() {
                let continued = next[i].is_some();
                if continued {
                    tracing::info!(event_uid = %event.event_uid, jobs = jobs[i], reads = reads[i], "fan-out continues in a new message");
                } else {
                    tracing::debug!(event_uid = %event.event_uid, event_id = %event.event_id, jobs = jobs[i], reads = reads[i], "fanned out");
                }
                jobs_made.push(jobs[i]);
                done += 1;
                made += jobs[i];
                results[i] = Some(Ok(Outcome::FannedOut {
                    jobs: jobs[i],
                    pages: reads[i],
                    continued,
                }));
            }
        }
        if done > 0 {
            tracing::info!(events = done, jobs = made, "fanned out");
        }
        crate::observe::metrics::fanned_out(&jobs_made);
        results
            .into_iter()
            .map(|r| r.expect("every event answered"))
            .collect()
    }

    /// Claims a keyed event's idempotency key; `Some` when the event stops here.
    async fn claim(&self, event: &Event) -> Result<Option<Outcome>, FanOutError> {
        let Some(key) = &event.idempotency_key else {
            return Ok(None);
        };
        // A continuation or an access check's retry carries on a claimed event.
        if event.resume_after.is_some() || event.check_retry.is_some() {
            return Ok(None);
        }
        let claimant = Claimant {
            event_uid: event.event_uid.clone(),
            // A fresh id for every handling of a message (also of one handed over twice).
            attempt: crate::model::random::random_id("att_"),
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
            Claim::Granted => Ok(None),
            Claim::Duplicate => {
                tracing::info!(event_uid = %event.event_uid, "idempotency key seen within 24 hours; not fanned out again");
                Ok(Some(Outcome::Duplicate))
            }
            Claim::InProgress => {
                tracing::info!(event_uid = %event.event_uid, "another copy of this event is fanning out; left on the queue for later");
                Ok(Some(Outcome::InProgress))
            }
        }
    }

    /// The users whose subscriptions a group reads on the audience path: every member is
    /// visible to a short list of users, and together they name at most
    /// [`FanOutSettings::audience_limit`]. `None`: read every subscription to the event.
    fn audience(&self, members: &[usize], events: &[Event]) -> Option<BTreeSet<UserId>> {
        let mut users = BTreeSet::new();
        for &i in members {
            match (&events[i].visible_to, &events[i].check_retry) {
                (Visibility::Users(list), _) => users.extend(list.iter().copied()),
                // A retry asks about its owners alone: only theirs are read.
                (Visibility::Check(_), Some(retry)) => users.extend(retry.users.iter().copied()),
                (Visibility::Check(_), None) | (Visibility::All(_), _) => return None,
            }
            if users.len() > self.settings.audience_limit {
                return None;
            }
        }
        Some(users)
    }

    /// For each `"check"` member, the access check's answers about the owners of
    /// `subscriptions` (those a retry is for, on a retry; a trigger's own subscription
    /// left out); `None` for the other members.
    async fn check(
        &self,
        members: &[usize],
        events: &[Event],
        subscriptions: &[SubscriptionRef],
        deadline: Instant,
    ) -> Vec<Option<Answers>> {
        let Some(access) = &self.access else {
            return vec![None; members.len()];
        };
        futures::future::join_all(members.iter().map(|&i| async move {
            let event = &events[i];
            if event.visible_to != Visibility::check() {
                return None;
            }
            let candidates: BTreeSet<UserId> = subscriptions
                .iter()
                .filter(|s| event.exclude_subscription.as_ref() != Some(&s.id))
                .map(|s| s.owner.user_id)
                .filter(|user| {
                    event
                        .check_retry
                        .as_ref()
                        .is_none_or(|retry| retry.users.contains(user))
                })
                .collect();
            let subject = Subject {
                deployment: event.deployment.as_str(),
                event_id: &event.event_id,
                object_id: event.object_id,
                resource_url: event.resource_url.as_deref(),
                event_uid: &event.event_uid,
            };
            Some(access.ask_all(&subject, &candidates, Some(deadline)).await)
        }))
        .await
    }

    /// The messages that carry on a `"check"` event's owners without an answer: those not
    /// asked in time at once, those whose question failed after the delivery schedule's
    /// next delay (or, after the schedule, parked with the reason). `(to the events queue,
    /// to the dead-letter queue)`.
    fn check_leftovers(
        &self,
        event: &Event,
        answers: &Answers,
        now: Millis,
    ) -> (Vec<OutgoingMessage>, Vec<OutgoingMessage>) {
        let (mut again, mut parked) = (Vec::new(), Vec::new());
        let asked_before = event.check_retry.as_ref().map_or(0, |r| r.attempt);
        let carry = |users: BTreeSet<UserId>, attempt: u32, due_at: Millis, reason: String| {
            let mut rest = event.clone();
            rest.resume_after = None;
            rest.check_retry = Some(CheckRetry {
                users,
                attempt,
                due_at,
                reason,
            });
            rest
        };
        if !answers.unasked.is_empty() {
            let rest = carry(
                answers.unasked.clone(),
                asked_before,
                now,
                "not asked yet: the fan-out's time budget ran out".into(),
            );
            again.push(OutgoingMessage::new(rest.to_message()));
        }
        let Some((_, first)) = answers.failed.first() else {
            return (again, parked);
        };
        let attempt = asked_before + 1;
        let users = answers.failed_users();
        for (group, e) in &answers.failed {
            tracing::warn!(
                event_uid = %event.event_uid,
                event_id = %event.event_id,
                object_id = event.object_id,
                owners = group.len(),
                attempt,
                error_kind = %e.kind(),
                reason = %e,
                "an access check question failed; its owners are asked again later"
            );
        }
        crate::observe::metrics::access_check_failures(answers.failed.len());
        match after_failure(&self.settings.check_retry, attempt, random_unit()) {
            AfterFailure::AskAgain { delay } => {
                let wait = delay.as_millis() as Millis;
                let rest = carry(users, attempt, now + wait, first.to_string());
                again.push(delayed(&rest, wait));
            }
            AfterFailure::GiveUp => {
                let reason =
                    format!("the access check did not answer after {attempt} questions: {first}");
                tracing::error!(event_uid = %event.event_uid, event_id = %event.event_id, object_id = event.object_id, owners = users.len(), reason = %reason, "event parked on the dead-letter queue");
                let rest = carry(users, attempt, now, first.to_string());
                let mut message = OutgoingMessage::new(rest.to_message());
                message
                    .attributes
                    .insert(PARKED_REASON_ATTRIBUTE.into(), reason);
                parked.push(message);
            }
        }
        (again, parked)
    }

    /// Reads the subscriptions of one group and queues its members' jobs; its audience
    /// lookups each hold one of `lookups`' permits.
    async fn fan_out_group(
        &self,
        (_, event_id, cursor): GroupKey<'_>,
        members: &[usize],
        events: &[Event],
        outbox: &Outbox<'_>,
        lookups: &tokio::sync::Semaphore,
    ) -> Result<GroupEnd, FanOutError> {
        let mut jobs = vec![0usize; members.len()];
        // The group's key was taken from its members: they share this deployment.
        let deployment = &events[members[0]].deployment;
        let started = Instant::now();
        let deadline = started + self.settings.time_budget;
        if cursor.is_none()
            && let Some(users) = self.audience(members, events)
        {
            let found = futures::future::try_join_all(users.iter().map(|&user_id| {
                let owner = Owner {
                    deployment: deployment.clone(),
                    user_id,
                };
                async move {
                    let _permit = lookups.acquire().await.expect("never closed");
                    self.store.list_by_owner_event(&owner, event_id).await
                }
            }))
            .await?;
            let subscriptions: Vec<SubscriptionRef> = found.into_iter().flatten().collect();
            let checks = self.check(members, events, &subscriptions, deadline).await;
            outbox
                .push(jobs_for(members, events, subscriptions, &checks, &mut jobs))
                .await;
            return Ok(GroupEnd {
                jobs,
                reads: users.len(),
                next: None,
                checks,
            });
        }
        let mut cursor = cursor.map(str::to_owned);
        let mut reads = 0usize;
        let mut checks: Vec<Option<Answers>> = vec![None; members.len()];
        loop {
            let page = self
                .store
                .page_by_event(
                    deployment,
                    event_id,
                    cursor.as_deref(),
                    self.settings.page_size,
                )
                .await?;
            reads += 1;
            let answers = self.check(members, events, &page.items, deadline).await;
            outbox
                .push(jobs_for(members, events, page.items, &answers, &mut jobs))
                .await;
            for (all, page) in checks.iter_mut().zip(answers) {
                if let Some(page) = page {
                    let all = all.get_or_insert_with(Answers::default);
                    all.named.extend(page.named);
                    all.failed.extend(page.failed);
                    all.unasked.extend(page.unasked);
                }
            }
            let Some(next) = page.next else {
                return Ok(GroupEnd {
                    jobs,
                    reads,
                    next: None,
                    checks,
                });
            };
            let out_of_pages = self.settings.max_pages_per_message > 0
                && reads >= self.settings.max_pages_per_message;
            if out_of_pages || started.elapsed() >= self.settings.time_budget {
                return Ok(GroupEnd {
                    jobs,
                    reads,
                    next: Some(next),
                    checks,
                });
            }
            cursor = Some(next);
        }
    }
}

/// The jobs of a group's members for these subscriptions: one per subscription whose
/// owner may view the member's object (for a `"check"` member, whom its access check
/// named; a trigger's own subscription excepted), counted per member.
fn jobs_for(
    members: &[usize],
    events: &[Event],
    subscriptions: Vec<SubscriptionRef>,
    checks: &[Option<Answers>],
    jobs: &mut [usize],
) -> Vec<(usize, OutgoingMessage)> {
    let mut out = Vec::new();
    for subscription in subscriptions {
        for (k, &i) in members.iter().enumerate() {
            let event = &events[i];
            let user = subscription.owner.user_id;
            let allowed = match &checks[k] {
                Some(answers) => answers.named.contains(&user),
                None => event.visible_to.allows(user),
            };
            if allowed && event.exclude_subscription.as_ref() != Some(&subscription.id) {
                jobs[k] += 1;
                let job = DeliveryJob::for_event(event, subscription.clone());
                out.push((i, OutgoingMessage::new(job.to_message())));
            }
        }
    }
    out
}

/// `event` as a message on the events queue, visible in `wait_ms` (SQS delays whole
/// seconds, at most 15 minutes: a later retry is sent back until it is due).
fn delayed(event: &Event, wait_ms: Millis) -> OutgoingMessage {
    let mut message = OutgoingMessage::new(event.to_message());
    let secs = (wait_ms.max(0) as u64).div_ceil(1000);
    message.delay_secs = secs.min(MAX_DELAY_SECS as u64) as u32;
    message
}

/// Jobs of a whole batch on their way to the deliveries queue: held until there are
/// enough to fill send requests (ten jobs each, of any events), then sent. Remembers the
/// events some of whose jobs did not go out.
struct Outbox<'a> {
    queue: &'a dyn QueueSender,
    concurrency: usize,
    pending: Mutex<Vec<(usize, OutgoingMessage)>>,
    /// Jobs that did not go out, by event.
    unsent: Mutex<BTreeMap<usize, usize>>,
}

/// Held jobs are sent once there are this many (a large page sends as it is read).
const OUTBOX_FLUSH_AT: usize = 1000;

impl<'a> Outbox<'a> {
    fn new(queue: &'a dyn QueueSender, concurrency: usize) -> Self {
        Self {
            queue,
            concurrency,
            pending: Mutex::new(Vec::new()),
            unsent: Mutex::new(BTreeMap::new()),
        }
    }

    async fn push(&self, jobs: Vec<(usize, OutgoingMessage)>) {
        let full = {
            let mut pending = lock(&self.pending);
            pending.extend(jobs);
            if pending.len() < OUTBOX_FLUSH_AT {
                return;
            }
            // Whole send requests now; the rest waits for more jobs or the end.
            let keep = pending.len() % MAX_BATCH;
            let split = pending.len() - keep;
            let rest = pending.split_off(split);
            std::mem::replace(&mut *pending, rest)
        };
        self.send(full).await;
    }

    async fn flush(&self) {
        let all = std::mem::take(&mut *lock(&self.pending));
        self.send(all).await;
    }

    async fn send(&self, jobs: Vec<(usize, OutgoingMessage)>) {
        if jobs.is_empty() {
            return;
        }
        let (owners, messages): (Vec<usize>, Vec<OutgoingMessage>) = jobs.into_iter().unzip();
        let sent = send_each(self.queue, &messages, self.concurrency).await;
        let mut unsent = lock(&self.unsent);
        for (owner, ok) in owners.into_iter().zip(sent) {
            if !ok {
                *unsent.entry(owner).or_default() += 1;
            }
        }
    }

    /// The events (by index) with jobs that did not go out, and how many.
    fn unsent(&self) -> BTreeMap<usize, usize> {
        lock(&self.unsent).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl BatchHandler for FanOut {
    async fn handle_batch(&self, messages: &[IncomingMessage]) -> Vec<String> {
        let results = self.handle_messages(messages).await;
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
