//! A fan-out over in-memory adapters, with its queues and request counts in reach.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use webhooks_core::adapters::memory::queue::MemoryQueue;
use webhooks_core::adapters::memory::{MemoryIdempotencyStore, MemorySubscriptionStore};
use webhooks_core::model::catalogue::Catalogue;
use webhooks_core::model::clock::ManualClock;
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::IdGenerator;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::model::subscription::{ContentType, Subscription};
use webhooks_core::model::url::TriggerUrl;
use webhooks_core::ports::idempotency::IdempotencyStore;
use webhooks_core::ports::queue::{IncomingMessage, QueueReceiver, QueueSender};
use webhooks_core::ports::store::SubscriptionStore;
use webhooks_core::stages::fanout::{FanOut, FanOutSettings};

use crate::counting::{CountingIdempotency, CountingQueue, CountingStore, Counts};

pub struct Kit {
    pub fanout: FanOut,
    pub store: Arc<dyn SubscriptionStore>,
    pub events: Arc<MemoryQueue>,
    pub deliveries: Arc<MemoryQueue>,
    pub dead_letters: Arc<MemoryQueue>,
    pub counts: Arc<Counts>,
    pub clock: ManualClock,
    pub ids: IdGenerator,
}

impl Kit {
    pub fn new(settings: FanOutSettings) -> Self {
        Self::with_deliveries(settings, |q| q)
    }

    /// A kit whose deliveries queue is wrapped (to inject failures).
    pub fn with_deliveries(
        settings: FanOutSettings,
        wrap: impl FnOnce(Arc<dyn QueueSender>) -> Arc<dyn QueueSender>,
    ) -> Self {
        Self::build(
            settings,
            Arc::new(MemoryIdempotencyStore::default()),
            |q, _| wrap(q),
        )
    }

    /// A kit on this idempotency store, whose deliveries queue is wrapped; the wrapper
    /// may watch how many claims have been answered.
    pub fn build(
        settings: FanOutSettings,
        idempotency: Arc<dyn IdempotencyStore>,
        wrap: impl FnOnce(Arc<dyn QueueSender>, watch::Receiver<usize>) -> Arc<dyn QueueSender>,
    ) -> Self {
        let counts = Arc::new(Counts::default());
        let store: Arc<dyn SubscriptionStore> = Arc::new(MemorySubscriptionStore::default());
        let events = Arc::new(MemoryQueue::simple("events"));
        let deliveries = Arc::new(MemoryQueue::simple("deliveries"));
        let dead_letters = Arc::new(MemoryQueue::simple("events-dlq"));
        let clock = ManualClock::at(1_800_000_000_000);
        let counted_deliveries: Arc<dyn QueueSender> = Arc::new(CountingQueue {
            inner: deliveries.clone(),
            counts: counts.clone(),
        });
        let idempotency = CountingIdempotency::new(idempotency, counts.clone());
        let answered = idempotency.answered.subscribe();
        let fanout = FanOut {
            store: Arc::new(CountingStore {
                inner: store.clone(),
                counts: counts.clone(),
            }),
            idempotency: Arc::new(idempotency),
            deliveries: wrap(counted_deliveries, answered),
            events: events.clone(),
            dead_letters: dead_letters.clone(),
            catalogue: Catalogue::default(),
            clock: Arc::new(clock.clone()),
            settings,
            access: None,
        };
        Self {
            fanout,
            store,
            events,
            deliveries,
            dead_letters,
            counts,
            clock,
            ids: IdGenerator::default(),
        }
    }

    pub async fn subscribe(&self, deployment: &str, user_id: u64, event_id: &str) -> Subscription {
        let sub = subscription(&self.ids, &self.clock, deployment, user_id, event_id);
        self.store.put(&sub).await.unwrap();
        sub
    }

    /// `count` subscriptions of `deployment` to `event_id` spread over users 0 to
    /// `users - 1` in turn (not stored).
    pub fn spread(
        &self,
        deployment: &str,
        event_id: &str,
        count: u64,
        users: u64,
    ) -> Vec<Subscription> {
        (0..count)
            .map(|n| subscription(&self.ids, &self.clock, deployment, n % users, event_id))
            .collect()
    }
}

pub fn owner(deployment: &str, user_id: u64) -> Owner {
    Owner {
        deployment: Deployment::parse(deployment).unwrap(),
        user_id,
    }
}

pub fn subscription(
    ids: &IdGenerator,
    clock: &ManualClock,
    deployment: &str,
    user_id: u64,
    event_id: &str,
) -> Subscription {
    Subscription {
        id: ids.next(clock),
        owner: owner(deployment, user_id),
        owner_name: String::new(),
        owner_email: String::new(),
        event_id: event_id.to_owned(),
        trigger_url: TriggerUrl::from_stored("https://hooks.example.com/x".into()),
        content_type: ContentType::Form,
        sealed_secret: Some("v1:SEALED-SECRET".into()),
        created_at: 0,
        active: true,
        disabled_reason: None,
        previous_secret: None,
        sealed_headers: None,
        retry_schedule: None,
        auth: None,
        rate_limit: None,
    }
}

/// Every message a queue holds now, acknowledged (the queue is empty afterwards).
pub async fn drain(queue: &dyn QueueReceiver) -> Vec<IncomingMessage> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::from_millis(50)).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        for r in batch {
            queue.ack(&r.receipt).await.unwrap();
            all.push(r.message);
        }
    }
}

/// The delivery jobs a queue holds now.
pub async fn drain_jobs(queue: &dyn QueueReceiver) -> Vec<DeliveryJob> {
    drain(queue)
        .await
        .iter()
        .map(|m| DeliveryJob::from_message(&m.body).expect("a delivery job"))
        .collect()
}

/// A message as a queue would hand it over.
pub fn message(id: &str, body: impl Into<String>) -> IncomingMessage {
    IncomingMessage {
        message_id: id.to_owned(),
        body: body.into(),
        receive_count: 1,
        attributes: Default::default(),
    }
}
