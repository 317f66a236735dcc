//! Deliveries per second from the delivery stage to a receiver on 127.0.0.1, beside a
//! bare reqwest client POSTing the same bodies to the same receiver at the same
//! concurrency, and the AWS requests the stage makes per delivered job.
//!
//! `cargo bench -p webhooks-tests --bench delivery`

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use webhooks_core::adapters::http::ReqwestSender;
use webhooks_core::adapters::memory::queue::MemoryQueue;
use webhooks_core::adapters::memory::{MemoryDeliveryLog, MemorySubscriptionStore};
use webhooks_core::model::clock::SystemClock;
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::IdGenerator;
use webhooks_core::model::job::{DeliveryJob, delivery_id};
use webhooks_core::model::network::{IpRange, NetworkPolicy};
use webhooks_core::model::subscription::{ContentType, Subscription, SubscriptionRef};
use webhooks_core::model::url::TriggerUrl;
use webhooks_core::ports::queue::IncomingMessage;
use webhooks_core::ports::store::SubscriptionStore;
use webhooks_core::security::crypto::SecretSealer;
use webhooks_core::security::signing;
use webhooks_core::stages::batch::BatchHandler;
use webhooks_core::stages::delivery::{Deliverer, DeliverySettings};
use webhooks_tests::counting::{CountingLog, CountingStore, Counts};
use webhooks_tests::receiver::Receiver;

const JOBS: usize = 4000;

type Headers = Vec<(webhooks_core::ports::http::HeaderName, String)>;
/// Batches of 10 in flight at once: the requests in flight are ten times this.
const BATCHES_IN_FLIGHT: usize = 8;

#[tokio::main]
async fn main() {
    let receiver = Receiver::start().await;
    let store = Arc::new(MemorySubscriptionStore::default());
    let sealer = SecretSealer::ephemeral();
    let ids = IdGenerator::default();
    let mut jobs = Vec::new();
    for i in 0..JOBS as u64 {
        let key = SubscriptionRef {
            id: ids.next(&SystemClock),
            owner: Owner {
                deployment: Deployment::parse("hq").unwrap(),
                user_id: i % 100,
            },
        };
        let sealed_secret = Some(sealer.seal_for("bench-secret", &key));
        let sub = Subscription {
            id: key.id,
            owner: key.owner,
            owner_name: String::new(),
            owner_email: String::new(),
            event_id: "create_invoice".into(),
            trigger_url: TriggerUrl::from_stored(receiver.url.clone()),
            content_type: ContentType::Json,
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
        store.put(&sub).await.unwrap();
        jobs.push(DeliveryJob {
            delivery_id: delivery_id("bench", &sub.id),
            subscription: SubscriptionRef {
                id: sub.id.clone(),
                owner: sub.owner.clone(),
            },
            event_id: sub.event_id.clone(),
            object_id: i + 1,
            resource_url: Some(format!("https://hq.example.com/api/v0/invoices/{}", i + 1)),
            occurred_at: "2026-11-27T20:00:00Z".into(),
            attempt: 1,
            due_at: None,
            subject: None,
        });
    }
    let counts = Arc::new(Counts::default());
    let log = Arc::new(CountingLog::new(Arc::new(MemoryDeliveryLog::default())));
    let queue = Arc::new(MemoryQueue::simple("deliveries"));
    let deliverer = Deliverer {
        store: Arc::new(CountingStore {
            inner: store.clone(),
            counts: counts.clone(),
        }),
        log: log.clone(),
        deliveries: queue.clone(),
        dead_letters: queue.clone(),
        sender: Arc::new(ReqwestSender::new(NetworkPolicy::allowing(
            IpRange::loopback(),
        ))),
        sealer,
        clock: Arc::new(SystemClock),
        settings: DeliverySettings::default(),
        breaker: Default::default(),
        operator: std::sync::Arc::new(webhooks_core::ports::operator::LogOnly),
        tokens: Default::default(),
        limiter: Arc::new(
            webhooks_core::adapters::memory::rate_limit::MemoryRateLimiter::default(),
        ),
    };

    // Warm up connections on both paths.
    let warm: Vec<IncomingMessage> = jobs[..10].iter().map(message).collect();
    deliverer.handle_batch(&warm).await;
    let bare = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    counts.reset();
    log.writes.store(0, Ordering::SeqCst);
    let before = receiver.requests().len();

    let started = Instant::now();
    let batches: Vec<Vec<IncomingMessage>> = jobs
        .chunks(10)
        .map(|c| c.iter().map(message).collect())
        .collect();
    stream::iter(batches.iter())
        .map(|batch| deliverer.handle_batch(batch))
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .for_each(|failed| async move { assert!(failed.is_empty()) })
        .await;
    let stage = started.elapsed();
    assert_eq!(receiver.requests().len() - before, JOBS);

    // The same bodies and headers, POSTed by a bare client with the same concurrency.
    let requests: Vec<(Vec<u8>, Headers)> = jobs
        .iter()
        .map(|j| {
            let body = signing::body(
                ContentType::Json,
                signing::BodyId::Object(j.object_id),
                j.resource_url.as_deref(),
            );
            let headers = signing::headers(
                ContentType::Json,
                &j.event_id,
                &j.delivery_id,
                0,
                &body,
                Some(&signing::SigningKey::new("bench-secret")),
                None,
            );
            (body, headers)
        })
        .collect();
    let post = |(body, headers): &(Vec<u8>, Headers)| {
        let mut req = bare
            .post(&receiver.url)
            .timeout(Duration::from_secs(10))
            .body(body.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { req.send().await.unwrap().bytes().await.unwrap() }
    };
    let started = Instant::now();
    stream::iter(requests.iter())
        .map(post)
        .buffer_unordered(BATCHES_IN_FLIGHT * 10)
        .for_each(|_| async {})
        .await;
    let baseline = started.elapsed();

    // The same, but in batches of 10 that finish together, as Lambda hands jobs over: this
    // separates the cost of batching from the stage's own work.
    let started = Instant::now();
    stream::iter(requests.chunks(10))
        .map(|batch| futures::future::join_all(batch.iter().map(post)))
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .for_each(|_| async {})
        .await;
    let batched = started.elapsed();

    let rate = |d: Duration| JOBS as f64 / d.as_secs_f64();
    println!(
        "delivery stage vs bare reqwest: {JOBS} JSON deliveries to 127.0.0.1, {} requests in flight",
        BATCHES_IN_FLIGHT * 10
    );
    println!("  delivery stage : {:>8.0} deliveries/s", rate(stage));
    println!("  bare reqwest   : {:>8.0} requests/s", rate(baseline));
    println!("  ratio          : {:>8.2}", rate(stage) / rate(baseline));
    println!(
        "  bare reqwest in batches of 10, {BATCHES_IN_FLIGHT} batches in flight: {:>8.0} requests/s (stage / this: {:.2})",
        rate(batched),
        rate(stage) / rate(batched)
    );
    let batch_gets = counts.batch_gets.load(Ordering::SeqCst);
    let writes = log.writes.load(Ordering::SeqCst);
    println!(
        "  AWS requests per delivered job: {:.2} (BatchGetItem {:.2}, delivery log PutItem {:.2}; SQS receive/delete are Lambda's)",
        (batch_gets + writes) as f64 / JOBS as f64,
        batch_gets as f64 / JOBS as f64,
        writes as f64 / JOBS as f64
    );
}

fn message(job: &DeliveryJob) -> IncomingMessage {
    IncomingMessage {
        message_id: job.delivery_id.clone(),
        body: job.to_message(),
        receive_count: 1,
        attributes: Default::default(),
    }
}
