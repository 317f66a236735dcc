//! The delivery stage over in-memory adapters, a real HTTP client and a hand-moved clock,
//! with what it sends to the queue recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use webhooks_core::adapters::http::ReqwestSender;
use webhooks_core::adapters::memory::queue::MemoryQueue;
use webhooks_core::adapters::memory::rate_limit::MemoryRateLimiter;
use webhooks_core::adapters::memory::{MemoryDeliveryLog, MemorySubscriptionStore};
use webhooks_core::model::clock::{Clock, ManualClock};
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::IdGenerator;
use webhooks_core::model::job::{DeliveryJob, delivery_id};
use webhooks_core::model::network::{IpRange, NetworkPolicy};
use webhooks_core::model::receiver::{AskedHeaders, RateLimit, RetrySchedule};
use webhooks_core::model::subscription::{ContentType, Subscription, SubscriptionRef};
use webhooks_core::model::url::TriggerUrl;
use webhooks_core::policy::breaker::{Breaker, BreakerSettings};
use webhooks_core::policy::retry::RetryPolicy;
use webhooks_core::ports::delivery_log::{Attempt, DeliveryLog};
use webhooks_core::ports::operator::{OperatorChannel, OperatorError, OperatorNotice};
use webhooks_core::ports::queue::{IncomingMessage, OutgoingMessage, QueueError, QueueSender};
use webhooks_core::ports::rate_limit::RateLimiter;
use webhooks_core::ports::store::{StoreError, SubscriptionStore};
use webhooks_core::security::crypto::SecretSealer;
use webhooks_core::stages::delivery::{Deliverer, DeliverySettings};

use crate::counting::{CountingLog, CountingStore, Counts};

/// A queue that keeps what is sent to it, for looking at delays and jobs.
#[derive(Default)]
pub struct RecordingQueue {
    pub sent: Mutex<Vec<OutgoingMessage>>,
    /// Send requests answered.
    pub requests: std::sync::atomic::AtomicUsize,
    /// While set, every send request fails.
    pub refusing: std::sync::atomic::AtomicBool,
}

impl RecordingQueue {
    pub fn take(&self) -> Vec<OutgoingMessage> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }

    /// The jobs sent, with their delays.
    pub fn take_jobs(&self) -> Vec<(DeliveryJob, u32)> {
        self.take()
            .into_iter()
            .map(|m| (DeliveryJob::from_message(&m.body).unwrap(), m.delay_secs))
            .collect()
    }
}

#[async_trait]
impl QueueSender for RecordingQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.requests.fetch_add(1, SeqCst);
        if self.refusing.load(SeqCst) {
            return Err(QueueError::Unavailable("refusing on purpose".into()));
        }
        self.sent.lock().unwrap().extend_from_slice(messages);
        Ok(Vec::new())
    }
}

/// The process's rate-limit counters, with the calls made to them counted.
#[derive(Default)]
pub struct CountingLimiter {
    inner: MemoryRateLimiter,
    calls: std::sync::atomic::AtomicUsize,
}

impl CountingLimiter {
    /// Blocks of slots asked for so far.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl RateLimiter for CountingLimiter {
    async fn take(
        &self,
        subscription: &SubscriptionRef,
        second: i64,
        wanted: u32,
    ) -> Result<u64, StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.take(subscription, second, wanted).await
    }
}

/// An operator channel that keeps what it is told.
#[derive(Default)]
pub struct RecordingOperator {
    pub told: Mutex<Vec<OperatorNotice>>,
}

#[async_trait]
impl OperatorChannel for RecordingOperator {
    async fn tell(&self, notice: &OperatorNotice) -> Result<(), OperatorError> {
        self.told.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

pub struct DeliveryKit {
    pub deliverer: Deliverer,
    pub store: Arc<dyn SubscriptionStore>,
    pub log: Arc<dyn DeliveryLog>,
    pub queue: Arc<RecordingQueue>,
    pub dead_letters: Arc<MemoryQueue>,
    pub clock: ManualClock,
    pub sealer: SecretSealer,
    pub counts: Arc<Counts>,
    /// Counts the stage's log writes and reads.
    pub log_counts: Arc<CountingLog>,
    /// What the operator was told.
    pub operator: Arc<RecordingOperator>,
    /// The rate-limit counters, their calls counted.
    pub limiter: Arc<CountingLimiter>,
    ids: IdGenerator,
}

pub fn now_millis() -> i64 {
    webhooks_core::model::clock::SystemClock.now_millis()
}

impl DeliveryKit {
    /// Loopback allowed, a 1 s request limit, 3 timeouts in a row, no jitter.
    pub fn new() -> Self {
        Self::with(NetworkPolicy::allowing(IpRange::loopback()), |_| {})
    }

    pub fn with(policy: NetworkPolicy, tune: impl FnOnce(&mut DeliverySettings)) -> Self {
        Self::on(
            Arc::new(MemorySubscriptionStore::default()),
            Arc::new(MemoryDeliveryLog::default()),
            policy,
            tune,
        )
    }

    /// The kit over these store and log adapters (e.g. DynamoDB on moto).
    pub fn on(
        store: Arc<dyn SubscriptionStore>,
        log: Arc<dyn DeliveryLog>,
        policy: NetworkPolicy,
        tune: impl FnOnce(&mut DeliverySettings),
    ) -> Self {
        let queue = Arc::new(RecordingQueue::default());
        let dead_letters = Arc::new(MemoryQueue::simple("deliveries-dlq"));
        // Real time, so Standard Webhooks verifiers accept the timestamps; moved by hand.
        let clock = ManualClock::at(now_millis());
        let sealer = SecretSealer::ephemeral();
        let counts = Arc::new(Counts::default());
        let mut settings = DeliverySettings {
            timeout: Duration::from_secs(1),
            timeout_limit: 3,
            retry: RetryPolicy {
                jitter: 0.0,
                ..RetryPolicy::default()
            },
            ..DeliverySettings::default()
        };
        tune(&mut settings);
        let log_counts = Arc::new(CountingLog::new(log.clone()));
        let operator = Arc::new(RecordingOperator::default());
        let limiter = Arc::new(CountingLimiter::default());
        let deliverer = Deliverer {
            store: Arc::new(CountingStore {
                inner: store.clone(),
                counts: counts.clone(),
            }),
            log: log_counts.clone(),
            deliveries: queue.clone(),
            dead_letters: dead_letters.clone(),
            sender: Arc::new(ReqwestSender::new(policy)),
            sealer: sealer.clone(),
            clock: Arc::new(clock.clone()),
            settings,
            // The kit tests the other rules; `with_breaker` turns the breaker on.
            breaker: Breaker::new(BreakerSettings::off()),
            operator: operator.clone(),
            tokens: Default::default(),
            limiter: limiter.clone(),
        };
        Self {
            deliverer,
            store,
            log,
            queue,
            dead_letters,
            clock,
            sealer,
            counts,
            log_counts,
            operator,
            limiter,
            ids: IdGenerator::default(),
        }
    }

    pub async fn subscribe(
        &self,
        url: &str,
        content_type: ContentType,
        secret: Option<&str>,
    ) -> Subscription {
        let key = SubscriptionRef {
            id: self.ids.next(&self.clock),
            owner: Owner {
                deployment: Deployment::parse("hq").unwrap(),
                user_id: 7,
            },
        };
        let sealed_secret = secret.map(|s| self.sealer.seal_for(s, &key));
        let sub = Subscription {
            id: key.id,
            owner: key.owner,
            owner_name: "Seven".into(),
            owner_email: "seven@hq.example".into(),
            event_id: "assign_task".into(),
            trigger_url: TriggerUrl::from_stored(url.to_owned()),
            content_type,
            sealed_secret,
            created_at: 0,
            active: true,
            disabled_reason: None,
            previous_secret: None,
            sealed_headers: None,
            retry_schedule: None,
            auth: None,
            rate_limit: None,
        };
        self.store.put(&sub).await.unwrap();
        sub
    }

    /// Gives `sub` its own headers (a JSON object, checked as the API checks it) and
    /// retry schedule, sealed and stored as the API stores them; returns it as stored.
    pub async fn set_own(
        &self,
        sub: &Subscription,
        headers: serde_json::Value,
        retry_schedule: Option<serde_json::Value>,
    ) -> Subscription {
        let headers = AskedHeaders::parse(&headers)
            .and_then(|asked| asked.resolve(None))
            .expect("valid headers");
        let changed = Subscription {
            sealed_headers: self.sealer.seal_headers(&headers, &sub.key()),
            retry_schedule: retry_schedule
                .map(|s| RetrySchedule::parse(&s).expect("a valid retry schedule")),
            ..sub.clone()
        };
        assert!(self.store.replace(&changed).await.unwrap());
        changed
    }

    /// Gives `sub` an `auth` (a JSON object with its client secret, checked as the API
    /// checks it, loopback token URLs allowed), sealed and stored as the API stores it.
    pub async fn set_auth(&self, sub: &Subscription, auth: serde_json::Value) -> Subscription {
        let policy = webhooks_core::model::url::UrlPolicy {
            allow_http: true,
            network: NetworkPolicy::allowing(webhooks_core::model::network::IpRange::loopback()),
        };
        let asked =
            webhooks_core::model::receiver::AskedAuth::parse(&auth, &policy).expect("a valid auth");
        let secret = asked.client_secret.expect("a client secret");
        let changed = Subscription {
            auth: Some(webhooks_core::model::receiver::Auth {
                client: asked.client,
                sealed_client_secret: self.sealer.seal_client_secret(secret.expose(), &sub.key()),
            }),
            ..sub.clone()
        };
        assert!(self.store.replace(&changed).await.unwrap());
        changed
    }

    /// Gives `sub` a rate limit of `per_second`, stored; returns it as stored.
    pub async fn set_rate_limit(&self, sub: &Subscription, per_second: u32) -> Subscription {
        let changed = Subscription {
            rate_limit: Some(RateLimit::from_stored(per_second)),
            ..sub.clone()
        };
        assert!(self.store.replace(&changed).await.unwrap());
        changed
    }

    pub fn job(&self, sub: &Subscription, object_id: u64) -> DeliveryJob {
        DeliveryJob {
            delivery_id: delivery_id(&format!("evt-{object_id}"), &sub.id),
            subscription: SubscriptionRef {
                id: sub.id.clone(),
                owner: sub.owner.clone(),
            },
            event_id: sub.event_id.clone(),
            object_id,
            resource_url: Some(format!("https://hq.example.com/api/v0/tasks/{object_id}")),
            occurred_at: "2026-11-27T20:00:00Z".into(),
            attempt: 1,
            due_at: None,
            subject: None,
        }
    }

    /// Runs one batch through the stage, as the queue would hand it over, a millisecond
    /// after the previous one (so the log orders them); returns the ids of failed messages.
    pub async fn run(&self, jobs: &[DeliveryJob]) -> Vec<String> {
        self.clock.advance(1);
        let messages: Vec<IncomingMessage> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| IncomingMessage {
                message_id: format!("m{i}"),
                body: j.to_message(),
                receive_count: 1,
                attributes: Default::default(),
            })
            .collect();
        webhooks_core::stages::batch::BatchHandler::handle_batch(&self.deliverer, &messages).await
    }

    /// The same kit with the stage's breaker on, with these settings.
    pub fn with_breaker(mut self, settings: BreakerSettings) -> Self {
        self.deliverer.breaker = Breaker::new(settings);
        self
    }

    pub async fn log_of(&self, sub: &Subscription) -> Vec<Attempt> {
        let key = SubscriptionRef {
            id: sub.id.clone(),
            owner: sub.owner.clone(),
        };
        self.log.page(&key, None, 100).await.unwrap().attempts
    }

    pub fn clock_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    pub fn clock_secs(&self) -> i64 {
        self.clock.now_secs()
    }

    pub async fn current(&self, sub: &Subscription) -> Option<Subscription> {
        self.store.get(&sub.owner, &sub.id).await.unwrap()
    }
}

impl Default for DeliveryKit {
    fn default() -> Self {
        Self::new()
    }
}
