//! The stages composed on AWS: DynamoDB tables and SQS queues named by the settings (the
//! SAM template passes their names and URLs to every function). Each Lambda's `main`
//! builds what it needs from here, once per instance.
//!
//! A queue whose URL setting is unset is looked up by the name the local runner gives it
//! (`{WEBHOOKS_QUEUE_PREFIX}-events`, `-events-dlq`, `-deliveries`, `-deliveries-dlq`), so
//! the binaries also run against queues the runner created in an emulator.

use std::sync::Arc;

use async_trait::async_trait;

use crate::adapters::dynamodb::DynamoSubscriptionStore;
use crate::adapters::dynamodb_delivery_log::DynamoDeliveryLog;
use crate::adapters::dynamodb_idempotency::DynamoIdempotencyStore;
use crate::adapters::http::ReqwestSender;
use crate::adapters::sqs::{Client as SqsClient, SqsQueue};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::delivery::Deliverer;
use crate::fanout::{FanOut, FanOutSettings};
use crate::queue::{OutgoingMessage, QueueError, QueueSender};

pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    sqs: SqsClient,
}

/// The queues, as the functions see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Events,
    EventsDeadLetters,
    Deliveries,
    DeliveriesDeadLetters,
}

impl Queue {
    fn url(self, settings: &Settings) -> &Option<String> {
        match self {
            Self::Events => &settings.events_queue_url,
            Self::EventsDeadLetters => &settings.events_dlq_url,
            Self::Deliveries => &settings.deliveries_queue_url,
            Self::DeliveriesDeadLetters => &settings.deliveries_dlq_url,
        }
    }

    /// The queue's name when no URL is set.
    pub fn default_name(self, settings: &Settings) -> String {
        let stage = match self {
            Self::Events => "events",
            Self::EventsDeadLetters => "events-dlq",
            Self::Deliveries => "deliveries",
            Self::DeliveriesDeadLetters => "deliveries-dlq",
        };
        format!("{}-{stage}", settings.queue_prefix)
    }
}

/// A queue that could not be found at start: every send fails, so callers answer with
/// an error instead of pretending (the API's subscription endpoints keep working).
struct MissingQueue(String);

#[async_trait]
impl QueueSender for MissingQueue {
    async fn send_batch(&self, _: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        Err(QueueError::Unavailable(self.0.clone()))
    }
}

impl Aws {
    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        let sqs = SqsQueue::client(&sdk);
        Self { sdk, sqs }
    }

    pub fn store(&self, settings: &Settings) -> DynamoSubscriptionStore {
        DynamoSubscriptionStore::from_sdk(&self.sdk, &settings.subscriptions_table)
    }

    pub fn idempotency(&self, settings: &Settings) -> DynamoIdempotencyStore {
        DynamoIdempotencyStore::from_sdk(&self.sdk, &settings.idempotency_table)
    }

    pub fn delivery_log(&self, settings: &Settings) -> DynamoDeliveryLog {
        DynamoDeliveryLog::from_sdk(&self.sdk, &settings.delivery_log_table)
    }

    /// The queue at its URL setting or, without one, by its default name.
    pub async fn queue(
        &self,
        settings: &Settings,
        queue: Queue,
    ) -> Result<Arc<SqsQueue>, QueueError> {
        let found = match queue.url(settings) {
            Some(url) => SqsQueue::from_url(self.sqs.clone(), url.clone()),
            None => SqsQueue::by_name(self.sqs.clone(), &queue.default_name(settings)).await?,
        };
        Ok(Arc::new(found))
    }

    /// Like [`Aws::queue`], but a queue that cannot be found is logged and every send to
    /// it fails; for the API, whose subscription endpoints need no queue.
    pub async fn queue_or_missing(
        &self,
        settings: &Settings,
        queue: Queue,
    ) -> Arc<dyn QueueSender> {
        match self.queue(settings, queue).await {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(queue = ?queue, error = %e, "queue not found; sends to it will fail");
                Arc::new(MissingQueue(format!(
                    "the {queue:?} queue is not configured"
                )))
            }
        }
    }

    pub async fn fanout(&self, settings: &Settings) -> Result<FanOut, QueueError> {
        Ok(FanOut {
            store: Arc::new(self.store(settings)),
            idempotency: Arc::new(self.idempotency(settings)),
            deliveries: self.queue(settings, Queue::Deliveries).await?,
            events: self.queue(settings, Queue::Events).await?,
            dead_letters: self.queue(settings, Queue::EventsDeadLetters).await?,
            catalogue: settings.catalogue.clone(),
            clock: Arc::new(SystemClock),
            settings: FanOutSettings::default(),
        })
    }

    /// The delivery stage, with an HTTP client that honours the installation's network
    /// policy and is reused by every invocation of the instance.
    pub fn deliverer(
        &self,
        settings: &Settings,
        deliveries: Arc<dyn QueueSender>,
        dead_letters: Arc<dyn QueueSender>,
    ) -> Deliverer {
        Deliverer {
            store: Arc::new(self.store(settings)),
            log: Arc::new(self.delivery_log(settings)),
            deliveries,
            dead_letters,
            sender: Arc::new(ReqwestSender::new(settings.url_policy.network.clone())),
            sealer: settings.sealer.clone(),
            clock: Arc::new(SystemClock),
            settings: settings.delivery.clone(),
        }
    }
}
