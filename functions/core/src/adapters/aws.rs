//! The stages composed on AWS: DynamoDB tables and SQS queues named by the settings (the
//! SAM template passes their names and URLs to every function). Each Lambda's `main`
//! builds what it needs from here, once per instance.

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoSubscriptionStore;
use crate::adapters::dynamodb_delivery_log::DynamoDeliveryLog;
use crate::adapters::dynamodb_idempotency::DynamoIdempotencyStore;
use crate::adapters::http::ReqwestSender;
use crate::adapters::sqs::{Client as SqsClient, SqsQueue};
use crate::clock::SystemClock;
use crate::config::{ConfigError, Settings};
use crate::delivery::Deliverer;
use crate::fanout::{FanOut, FanOutSettings};

pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    sqs: SqsClient,
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

    /// The queue at a URL the settings must hold.
    pub fn queue(
        &self,
        url: &Option<String>,
        name: &'static str,
    ) -> Result<Arc<SqsQueue>, ConfigError> {
        Ok(Arc::new(SqsQueue::from_url(
            self.sqs.clone(),
            Settings::required(url, name)?,
        )))
    }

    pub fn fanout(&self, settings: &Settings) -> Result<FanOut, ConfigError> {
        Ok(FanOut {
            store: Arc::new(self.store(settings)),
            idempotency: Arc::new(self.idempotency(settings)),
            deliveries: self.queue(
                &settings.deliveries_queue_url,
                "WEBHOOKS_DELIVERIES_QUEUE_URL",
            )?,
            events: self.queue(&settings.events_queue_url, "WEBHOOKS_EVENTS_QUEUE_URL")?,
            dead_letters: self.queue(&settings.events_dlq_url, "WEBHOOKS_EVENTS_DLQ_URL")?,
            catalogue: settings.catalogue.clone(),
            clock: Arc::new(SystemClock),
            settings: FanOutSettings::default(),
        })
    }

    /// The delivery stage, with an HTTP client that honours the installation's network
    /// policy and is reused by every invocation of the instance.
    pub fn deliverer(&self, settings: &Settings) -> Result<Deliverer, ConfigError> {
        Ok(Deliverer {
            store: Arc::new(self.store(settings)),
            log: Arc::new(self.delivery_log(settings)),
            deliveries: self.queue(
                &settings.deliveries_queue_url,
                "WEBHOOKS_DELIVERIES_QUEUE_URL",
            )?,
            dead_letters: self
                .queue(&settings.deliveries_dlq_url, "WEBHOOKS_DELIVERIES_DLQ_URL")?,
            sender: Arc::new(ReqwestSender::new(settings.url_policy.network.clone())),
            sealer: settings.sealer.clone(),
            clock: Arc::new(SystemClock),
            settings: settings.delivery.clone(),
        })
    }
}
