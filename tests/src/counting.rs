//! Wrappers around the ports that count requests (each call of an AWS adapter is one AWS
//! request) or fail on purpose, to measure and to break the stages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::SubscriptionId;
use webhooks_core::model::subscription::{Subscription, SubscriptionRef};
use webhooks_core::ports::idempotency::{Claim, ClaimTimes, Claimant, IdempotencyStore};
use webhooks_core::ports::queue::{OutgoingMessage, QueueError, QueueSender};
use webhooks_core::ports::store::{Page, StoreError, SubscriptionStore};

/// Requests made through the wrappers sharing it.
#[derive(Debug, Default)]
pub struct Counts {
    /// Index pages read (`page_by_event`).
    pub queries: AtomicUsize,
    /// Per-user lookups of the audience path (`list_by_owner_event`).
    pub audience_queries: AtomicUsize,
    /// Those lookups in flight now, and the most that were at once.
    pub audience_in_flight: AtomicUsize,
    pub audience_peak: AtomicUsize,
    pub batch_gets: AtomicUsize,
    pub sends: AtomicUsize,
    pub messages: AtomicUsize,
    pub claims: AtomicUsize,
}

impl Counts {
    pub fn get(&self) -> (usize, usize, usize, usize) {
        (
            self.queries.load(Ordering::SeqCst),
            self.sends.load(Ordering::SeqCst),
            self.messages.load(Ordering::SeqCst),
            self.claims.load(Ordering::SeqCst),
        )
    }

    pub fn reset(&self) {
        for c in [
            &self.queries,
            &self.audience_queries,
            &self.audience_in_flight,
            &self.audience_peak,
            &self.batch_gets,
            &self.sends,
            &self.messages,
            &self.claims,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }
}

pub struct CountingStore {
    pub inner: Arc<dyn SubscriptionStore>,
    pub counts: Arc<Counts>,
}

#[async_trait]
impl SubscriptionStore for CountingStore {
    async fn put(&self, s: &Subscription) -> Result<(), StoreError> {
        self.inner.put(s).await
    }
    async fn replace(&self, s: &Subscription) -> Result<bool, StoreError> {
        self.inner.replace(s).await
    }
    async fn get(
        &self,
        o: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.inner.get(o, id).await
    }
    async fn get_many(&self, keys: &[SubscriptionRef]) -> Result<Vec<Subscription>, StoreError> {
        self.counts
            .batch_gets
            .fetch_add(keys.len().div_ceil(100), Ordering::SeqCst);
        self.inner.get_many(keys).await
    }
    async fn list_by_owner(&self, o: &Owner) -> Result<Vec<Subscription>, StoreError> {
        self.inner.list_by_owner(o).await
    }
    async fn delete(
        &self,
        o: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        self.inner.delete(o, id).await
    }
    async fn list_by_owner_event(
        &self,
        o: &Owner,
        e: &str,
    ) -> Result<Vec<SubscriptionRef>, StoreError> {
        let counts = &self.counts;
        counts.audience_queries.fetch_add(1, Ordering::SeqCst);
        let now = counts.audience_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counts.audience_peak.fetch_max(now, Ordering::SeqCst);
        // A request takes a while: the lookups started beside this one get to start too.
        tokio::task::yield_now().await;
        let found = self.inner.list_by_owner_event(o, e).await;
        counts.audience_in_flight.fetch_sub(1, Ordering::SeqCst);
        found
    }
    async fn page_by_event(
        &self,
        d: &Deployment,
        e: &str,
        c: Option<&str>,
        l: usize,
    ) -> Result<Page<SubscriptionRef>, StoreError> {
        self.counts.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.page_by_event(d, e, c, l).await
    }
}

pub struct CountingQueue {
    pub inner: Arc<dyn QueueSender>,
    pub counts: Arc<Counts>,
}

#[async_trait]
impl QueueSender for CountingQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        self.counts.sends.fetch_add(1, Ordering::SeqCst);
        self.counts
            .messages
            .fetch_add(messages.len(), Ordering::SeqCst);
        self.inner.send_batch(messages).await
    }
}

pub struct CountingIdempotency {
    pub inner: Arc<dyn IdempotencyStore>,
    pub counts: Arc<Counts>,
    /// Claims answered so far (to wait for, with `subscribe`).
    pub answered: tokio::sync::watch::Sender<usize>,
}

impl CountingIdempotency {
    pub fn new(inner: Arc<dyn IdempotencyStore>, counts: Arc<Counts>) -> Self {
        Self {
            inner,
            counts,
            answered: tokio::sync::watch::Sender::new(0),
        }
    }
}

#[async_trait]
impl IdempotencyStore for CountingIdempotency {
    async fn claim(
        &self,
        d: &Deployment,
        k: &str,
        who: &Claimant,
        times: ClaimTimes,
    ) -> Result<Claim, StoreError> {
        self.counts.claims.fetch_add(1, Ordering::SeqCst);
        let claim = self.inner.claim(d, k, who, times).await;
        self.answered.send_modify(|n| *n += 1);
        claim
    }
    async fn complete(&self, d: &Deployment, k: &str, u: &str) -> Result<(), StoreError> {
        self.counts.claims.fetch_add(1, Ordering::SeqCst);
        self.inner.complete(d, k, u).await
    }
}

/// A queue that accepts `ok_batches` send requests, then fails every one: a crash half way.
pub struct FailingAfter {
    pub inner: Arc<dyn QueueSender>,
    pub ok_batches: AtomicUsize,
}

impl FailingAfter {
    pub fn new(inner: Arc<dyn QueueSender>, ok_batches: usize) -> Self {
        Self {
            inner,
            ok_batches: AtomicUsize::new(ok_batches),
        }
    }
}

#[async_trait]
impl QueueSender for FailingAfter {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        let left = self.ok_batches.load(Ordering::SeqCst);
        if left == 0 {
            return Err(QueueError::Unavailable("injected failure".into()));
        }
        self.ok_batches.store(left - 1, Ordering::SeqCst);
        self.inner.send_batch(messages).await
    }
}

/// Counts delivery log writes and write requests, and reads: the records a
/// page read touched by the port's contract (its attempts, and one more when it has a
/// next page), and the largest such read of one call.
pub struct CountingLog {
    pub inner: Arc<dyn webhooks_core::ports::delivery_log::DeliveryLog>,
    /// Log lines written.
    pub writes: AtomicUsize,
    /// Write requests on DynamoDB: one `PutItem` per line recorded alone, one
    /// `BatchWriteItem` per 25 lines recorded together.
    pub write_requests: AtomicUsize,
    pub reads: AtomicUsize,
    pub largest_read: AtomicUsize,
}

impl CountingLog {
    pub fn new(inner: Arc<dyn webhooks_core::ports::delivery_log::DeliveryLog>) -> Self {
        Self {
            inner,
            writes: AtomicUsize::new(0),
            write_requests: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            largest_read: AtomicUsize::new(0),
        }
    }

    /// Records read since the last call, and the largest single read among them.
    pub fn take_reads(&self) -> (usize, usize) {
        (
            self.reads.swap(0, Ordering::SeqCst),
            self.largest_read.swap(0, Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl webhooks_core::ports::delivery_log::DeliveryLog for CountingLog {
    async fn record(
        &self,
        attempt: &webhooks_core::ports::delivery_log::Attempt,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.write_requests.fetch_add(1, Ordering::SeqCst);
        self.inner.record(attempt).await
    }
    async fn record_all(
        &self,
        attempts: Vec<webhooks_core::ports::delivery_log::Attempt>,
    ) -> Result<(), StoreError> {
        self.writes.fetch_add(attempts.len(), Ordering::SeqCst);
        self.write_requests
            .fetch_add(attempts.len().div_ceil(25), Ordering::SeqCst);
        self.inner.record_all(attempts).await
    }
    async fn page(
        &self,
        subscription: &SubscriptionRef,
        after: Option<&webhooks_core::ports::delivery_log::LogCursor>,
        limit: usize,
    ) -> Result<webhooks_core::ports::delivery_log::LogPage, StoreError> {
        let page = self.inner.page(subscription, after, limit).await?;
        let read = page.attempts.len() + usize::from(page.next.is_some());
        self.reads.fetch_add(read, Ordering::SeqCst);
        self.largest_read.fetch_max(read, Ordering::SeqCst);
        Ok(page)
    }
}

/// A queue whose sends wait until `claims` claims have been answered: two copies of one
/// event then both reach their claim before either sends a job, however they are scheduled.
pub struct AfterClaims {
    pub inner: Arc<dyn QueueSender>,
    pub answered: tokio::sync::watch::Receiver<usize>,
    pub claims: usize,
}

#[async_trait]
impl QueueSender for AfterClaims {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        let mut answered = self.answered.clone();
        answered
            .wait_for(|n| *n >= self.claims)
            .await
            .expect("the idempotency store outlives the queue");
        self.inner.send_batch(messages).await
    }
}
