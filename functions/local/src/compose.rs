//! Builds the platform's parts for a backend: the same stages the Lambda functions run,
//! with in-memory adapters or with DynamoDB and SQS (tables and queues created if missing).

use std::sync::Arc;
use std::time::Duration;

use webhooks_api::App;
use webhooks_api::app::Ports;
use webhooks_core::adapters::aws::Aws;
use webhooks_core::adapters::aws::sqs::SqsQueue;
use webhooks_core::adapters::http::ReqwestSender;
use webhooks_core::adapters::memory::queue::MemoryQueue;
use webhooks_core::adapters::memory::rate_limit::MemoryRateLimiter;
use webhooks_core::adapters::memory::{
    MemoryDeliveryLog, MemoryIdempotencyStore, MemorySubscriptionStore,
};
use webhooks_core::config::{CheckSecretSource, Settings};
use webhooks_core::model::clock::{Clock, SystemClock};
use webhooks_core::ports::delivery_log::DeliveryLog;
use webhooks_core::ports::idempotency::IdempotencyStore;
use webhooks_core::ports::queue::{QueueReceiver, QueueSender};
use webhooks_core::ports::rate_limit::RateLimiter;
use webhooks_core::ports::secret::GivenSecret;
use webhooks_core::ports::store::SubscriptionStore;
use webhooks_core::stages::access::AccessCheck;
use webhooks_core::stages::delivery::Deliverer;
use webhooks_core::stages::fanout::{FanOut, FanOutSettings};

use crate::{Backend, LocalError};

/// Receives after which a message moves to its dead-letter queue (as in the SAM template).
pub const MAX_RECEIVES: u32 = 5;
/// Visibility timeouts, as in the SAM template (six times the function timeouts).
pub const EVENTS_VISIBILITY: Duration = Duration::from_secs(360);
pub const DELIVERIES_VISIBILITY: Duration = Duration::from_secs(180);

/// The variable that sets both queues' visibility timeout, in seconds.
pub const VISIBILITY_VARIABLE: &str = "WEBHOOKS_LOCAL_VISIBILITY_SECS";
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: u64 = 43_200;

/// How long a received message stays invisible before it is handed out again, per queue.
///
/// A message received by a process that dies before settling it (a crash, `kill -9`) is
/// received again only after this timeout. The defaults are the template's; a shorter one
/// (`WEBHOOKS_LOCAL_VISIBILITY_SECS`) makes the runner pick up a killed predecessor's
/// messages sooner, at the price of handing a message out twice when handling it takes
/// longer than the timeout (at least once either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    pub events: Duration,
    pub deliveries: Duration,
}

impl Default for Visibility {
    fn default() -> Self {
        Self {
            events: EVENTS_VISIBILITY,
            deliveries: DELIVERIES_VISIBILITY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{VISIBILITY_VARIABLE} must be a whole number of seconds from 1 to {MAX_VISIBILITY_SECS}, not `{given}`"
)]
pub struct InvalidVisibility {
    given: String,
    #[source]
    source: Option<std::num::ParseIntError>,
}

impl Visibility {
    /// Both queues at `secs`, given as [`VISIBILITY_VARIABLE`] is; `None` or an empty value
    /// keeps the defaults.
    pub fn from_setting(value: Option<&str>) -> Result<Self, InvalidVisibility> {
        let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Self::default());
        };
        let invalid = |source| InvalidVisibility {
            given: text.to_owned(),
            source,
        };
        let secs: u64 = text.parse().map_err(|e| invalid(Some(e)))?;
        if !(1..=MAX_VISIBILITY_SECS).contains(&secs) {
            return Err(invalid(None));
        }
        let both = Duration::from_secs(secs);
        Ok(Self {
            events: both,
            deliveries: both,
        })
    }
}

/// A queue seen from both ends.
#[derive(Clone)]
pub struct QueuePair {
    pub sender: Arc<dyn QueueSender>,
    pub receiver: Arc<dyn QueueReceiver>,
}

impl QueuePair {
    fn of<Q: QueueSender + QueueReceiver + 'static>(queue: Q) -> Self {
        let queue = Arc::new(queue);
        Self {
            sender: queue.clone(),
            receiver: queue,
        }
    }
}

/// Every part of the platform, composed.
pub struct Platform {
    pub app: Arc<App>,
    pub fanout: Arc<FanOut>,
    pub deliverer: Arc<Deliverer>,
    pub events: QueuePair,
    pub events_dead_letters: QueuePair,
    pub deliveries: QueuePair,
    pub deliveries_dead_letters: QueuePair,
}

struct Parts {
    store: Arc<dyn SubscriptionStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    log: Arc<dyn DeliveryLog>,
    limiter: Arc<dyn RateLimiter>,
    events: QueuePair,
    events_dead_letters: QueuePair,
    deliveries: QueuePair,
    deliveries_dead_letters: QueuePair,
    /// Where the operator hears of removals and give-ups: the log, or on the `aws`
    /// backend the SNS topic of `WEBHOOKS_OPERATOR_TOPIC_ARN` when it is set.
    operator: Arc<dyn webhooks_core::ports::operator::OperatorChannel>,
}

async fn memory_parts(visibility: Visibility) -> Parts {
    let queue = |name: &str, visibility| {
        let dead = Arc::new(MemoryQueue::simple(format!("{name}-dlq")));
        let main = MemoryQueue::new(name, visibility, MAX_RECEIVES, Some(dead.clone()));
        (
            QueuePair::of(main),
            QueuePair {
                sender: dead.clone(),
                receiver: dead,
            },
        )
    };
    let (events, events_dead_letters) = queue("events", visibility.events);
    let (deliveries, deliveries_dead_letters) = queue("deliveries", visibility.deliveries);
    Parts {
        store: Arc::new(MemorySubscriptionStore::default()),
        idempotency: Arc::new(MemoryIdempotencyStore::default()),
        log: Arc::new(MemoryDeliveryLog::default()),
        limiter: Arc::new(MemoryRateLimiter::default()),
        events,
        events_dead_letters,
        deliveries,
        deliveries_dead_letters,
        operator: Arc::new(webhooks_core::ports::operator::LogOnly),
    }
}

async fn aws_parts(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
    visibility: Visibility,
) -> Result<Parts, LocalError> {
    // The adapters the Lambda functions build, sharing one DynamoDB client.
    let aws = Aws::new(sdk.clone());
    let store = aws.store(&settings.api.subscriptions_table);
    store.ensure_table().await?;
    let idempotency = aws.idempotency(&settings.fanout.idempotency_table);
    idempotency.ensure_table().await?;
    let log = aws.delivery_log(&settings.api.delivery_log_table);
    log.ensure_table().await?;
    let limiter = aws.rate_limiter(&settings.delivery.rate_limit_table);
    limiter.ensure_table().await?;
    let client = SqsQueue::client(sdk);
    let prefix = settings.queue_prefix();
    let queue = |stage: &'static str, visibility: Duration| {
        let client = client.clone();
        async move {
            let dlq_name = format!("{prefix}-{stage}-dlq");
            let main = SqsQueue::ensure(
                client.clone(),
                &format!("{prefix}-{stage}"),
                visibility.as_secs() as u32,
                Some((&dlq_name, MAX_RECEIVES)),
            )
            .await?;
            let dead = SqsQueue::by_name(client, &dlq_name).await?;
            Ok::<_, LocalError>((QueuePair::of(main), QueuePair::of(dead)))
        }
    };
    let (events, events_dead_letters) = queue("events", visibility.events).await?;
    let (deliveries, deliveries_dead_letters) = queue("deliveries", visibility.deliveries).await?;
    Ok(Parts {
        store: Arc::new(store),
        idempotency: Arc::new(idempotency),
        log: Arc::new(log),
        limiter: Arc::new(limiter),
        events,
        events_dead_letters,
        deliveries,
        deliveries_dead_letters,
        operator: aws.operator(settings.delivery.operator_topic_arn.as_deref()),
    })
}

/// A keyed event's claim lease that ends before its message shows again: a third of the
/// events queue's visibility timeout at most (the template's 120 s of 360 s). A copy left
/// "in progress" comes back after the visibility timeout; with a lease still live then,
/// a crashed fan-out's own message would be refused until it reached the dead-letter
/// queue.
fn lease_within(events_visibility: Duration, lease: Duration) -> Duration {
    lease.min(events_visibility / 3)
}

/// Composes the platform on a backend, with the template's visibility timeouts.
pub async fn compose(backend: &Backend, settings: Settings) -> Result<Platform, LocalError> {
    compose_with(backend, settings, Visibility::default()).await
}

/// Composes the platform on a backend, with these visibility timeouts (on the `aws`
/// backend they are set on the queues, existing ones included).
pub async fn compose_with(
    backend: &Backend,
    settings: Settings,
    visibility: Visibility,
) -> Result<Platform, LocalError> {
    let parts = match backend {
        Backend::Memory => memory_parts(visibility).await,
        Backend::Aws(sdk) => aws_parts(sdk, &settings, visibility).await?,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // One access check for the fan-out and the API, as the two functions each build one.
    let access = match &settings.fanout.access_check {
        None => None,
        Some(check) => {
            let network = &settings.fanout.network;
            Some(match (backend, &check.secret) {
                (_, CheckSecretSource::Given(secret)) => Arc::new(AccessCheck::new(
                    check.url.as_str().to_owned(),
                    Arc::new(GivenSecret::new(secret.expose())),
                    Arc::new(ReqwestSender::new(network.clone())),
                    clock.clone(),
                )),
                (Backend::Aws(sdk), _) => Aws::new((**sdk).clone()).access_check(check, network),
                // A secret in Secrets Manager is read from there on either backend.
                (Backend::Memory, CheckSecretSource::Arn(_)) => {
                    Aws::new(webhooks_core::adapters::aws::sdk_config().await)
                        .access_check(check, network)
                }
            })
        }
    };
    let fanout = FanOut {
        store: parts.store.clone(),
        idempotency: parts.idempotency,
        deliveries: parts.deliveries.sender.clone(),
        events: parts.events.sender.clone(),
        dead_letters: parts.events_dead_letters.sender.clone(),
        catalogue: settings.fanout.catalogue.clone(),
        clock: clock.clone(),
        settings: FanOutSettings {
            claim_lease: lease_within(visibility.events, settings.fanout.stage.claim_lease),
            ..settings.fanout.stage.clone()
        },
        access: access.clone(),
    };
    let deliverer = Arc::new(Deliverer {
        store: parts.store.clone(),
        log: parts.log,
        deliveries: parts.deliveries.sender.clone(),
        dead_letters: parts.deliveries_dead_letters.sender.clone(),
        sender: Arc::new(ReqwestSender::new(settings.delivery.network.clone())),
        sealer: settings.delivery.sealer.clone(),
        clock: clock.clone(),
        settings: settings.delivery.delivery.clone(),
        breaker: webhooks_core::policy::breaker::Breaker::new(settings.delivery.breaker),
        operator: parts.operator,
        tokens: Default::default(),
        limiter: parts.limiter,
    });
    let ports = Ports {
        store: parts.store,
        events: parts.events.sender.clone(),
        deliveries: parts.deliveries.sender.clone(),
        clock,
        deliverer: deliverer.clone(),
        access,
    };
    Ok(Platform {
        app: Arc::new(App::new(settings.api, ports)),
        fanout: Arc::new(fanout),
        deliverer,
        events: parts.events,
        events_dead_letters: parts.events_dead_letters,
        deliveries: parts.deliveries,
        deliveries_dead_letters: parts.deliveries_dead_letters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_lease_ends_before_an_events_message_shows_again() {
        let default = FanOutSettings::default().claim_lease;
        assert_eq!(lease_within(EVENTS_VISIBILITY, default), default);
        let short = lease_within(Duration::from_secs(4), default);
        assert!(short < Duration::from_secs(4));
    }

    #[test]
    fn visibility_defaults_to_the_template_and_takes_one_number_for_both() {
        assert_eq!(
            Visibility::from_setting(None).unwrap(),
            Visibility::default()
        );
        assert_eq!(
            Visibility::from_setting(Some(" ")).unwrap(),
            Visibility::default()
        );
        let v = Visibility::from_setting(Some("7")).unwrap();
        assert_eq!(
            (v.events, v.deliveries),
            (Duration::from_secs(7), Duration::from_secs(7))
        );
        for bad in ["0", "-1", "5s", "43201", "1.5"] {
            let e = Visibility::from_setting(Some(bad)).unwrap_err();
            assert!(e.to_string().contains(VISIBILITY_VARIABLE), "{e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
