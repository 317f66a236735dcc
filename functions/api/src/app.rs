//! Everything the API needs, built once per process (per Lambda instance) and shared by
//! every request.

use std::sync::Arc;

use webhooks_core::config::ApiSettings;
use webhooks_core::model::clock::Clock;
use webhooks_core::model::ids::IdGenerator;
use webhooks_core::ports::queue::QueueSender;
use webhooks_core::ports::store::SubscriptionStore;
use webhooks_core::stages::access::AccessCheck;
use webhooks_core::stages::delivery::Deliverer;
use webhooks_core::stages::service::{ServiceSettings, Subscriptions};

use crate::guard::RateLimiter;

/// The adapters the API talks to.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn SubscriptionStore>,
    /// The events queue: published and triggered events go there for the fan-out.
    pub events: Arc<dyn QueueSender>,
    /// The deliveries queue: resent and recovered deliveries go there.
    pub deliveries: Arc<dyn QueueSender>,
    pub clock: Arc<dyn Clock>,
    /// The delivery stage, for `dispatch`, and its log.
    pub deliverer: Arc<Deliverer>,
    /// The product's access check, when the settings name one.
    pub access: Option<Arc<AccessCheck>>,
}

impl Ports {
    /// The ports on AWS, as the API function composes them (`lambda::Instance`, and the
    /// cost bench that stands in for it).
    pub async fn on_aws(aws: &webhooks_core::adapters::aws::Aws, settings: &ApiSettings) -> Self {
        use webhooks_core::config::Queue;
        let deliveries = aws
            .queue_or_missing(&settings.queues, Queue::Deliveries)
            .await;
        Self {
            store: Arc::new(aws.store(&settings.subscriptions_table)),
            events: aws.queue_or_missing(&settings.queues, Queue::Events).await,
            deliveries: deliveries.clone(),
            clock: Arc::new(webhooks_core::model::clock::SystemClock),
            deliverer: Arc::new(aws.dispatcher(settings, deliveries)),
            access: settings
                .access_check
                .as_ref()
                .map(|check| aws.access_check(check, &settings.url_policy.network)),
        }
    }
}

pub struct App {
    pub settings: ApiSettings,
    /// The owner's use cases; handlers call these.
    pub service: Subscriptions,
    pub store: Arc<dyn SubscriptionStore>,
    pub events: Arc<dyn QueueSender>,
    pub clock: Arc<dyn Clock>,
    pub deliverer: Arc<Deliverer>,
    pub limiter: RateLimiter,
    /// A token the panel page offers to whoever loads it. Only the local runner sets one
    /// (its development token, on 127.0.0.1); the Lambda never does.
    pub development_token: std::sync::OnceLock<String>,
}

impl App {
    pub fn new(settings: ApiSettings, ports: Ports) -> Self {
        let limiter = RateLimiter::new(settings.rate_limit_per_minute);
        let service = Subscriptions {
            store: ports.store.clone(),
            events: ports.events.clone(),
            deliveries: ports.deliveries,
            deliverer: ports.deliverer.clone(),
            sealer: settings.sealer.clone(),
            clock: ports.clock.clone(),
            ids: IdGenerator::default(),
            settings: ServiceSettings {
                catalogue: settings.catalogue.clone(),
                resource_url_template: settings.resource_url_template.clone(),
                log_retention: settings.delivery.log_retention,
            },
            access: ports.access,
        };
        Self {
            settings,
            service,
            store: ports.store,
            events: ports.events,
            clock: ports.clock,
            deliverer: ports.deliverer,
            limiter,
            development_token: std::sync::OnceLock::new(),
        }
    }

    /// A fresh event uid: `evt_` and 32 hex characters.
    pub fn new_event_uid(&self) -> String {
        webhooks_core::model::random::random_id("evt_")
    }
}
