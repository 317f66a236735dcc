//! Composes the fan-out stage on AWS: DynamoDB for subscriptions and idempotency keys,
//! SQS for the deliveries queue, the events queue (continuations) and its dead-letter queue.

use std::sync::Arc;

use webhooks_core::adapters::dynamodb::DynamoSubscriptionStore;
use webhooks_core::adapters::dynamodb_idempotency::DynamoIdempotencyStore;
use webhooks_core::adapters::sqs::SqsQueue;
use webhooks_core::clock::SystemClock;
use webhooks_core::config::{ConfigError, Settings};
use webhooks_core::fanout::{FanOut, FanOutSettings};

pub fn build(settings: &Settings, sdk: &aws_config::SdkConfig) -> Result<FanOut, ConfigError> {
    let sqs = SqsQueue::client(sdk);
    let queue = |url: &Option<String>, name| {
        Settings::required(url, name)
            .map(|u| Arc::new(SqsQueue::from_url(sqs.clone(), u.to_owned())))
    };
    Ok(FanOut {
        store: Arc::new(DynamoSubscriptionStore::from_sdk(
            sdk,
            &settings.subscriptions_table,
        )),
        idempotency: Arc::new(DynamoIdempotencyStore::from_sdk(
            sdk,
            &settings.idempotency_table,
        )),
        deliveries: queue(
            &settings.deliveries_queue_url,
            "WEBHOOKS_DELIVERIES_QUEUE_URL",
        )?,
        events: queue(&settings.events_queue_url, "WEBHOOKS_EVENTS_QUEUE_URL")?,
        dead_letters: queue(&settings.events_dlq_url, "WEBHOOKS_EVENTS_DLQ_URL")?,
        catalogue: settings.catalogue.clone(),
        clock: Arc::new(SystemClock),
        settings: FanOutSettings::default(),
    })
}
