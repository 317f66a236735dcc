//! Fairness of the delivery stage: the deliveries per second of a receiver that answers at
//! once, in the local runner, alone and beside a receiver that answers 503 after 9 s and
//! is subscribed to the same events. The per-subscription breaker
//! (`webhooks_core::breaker`) should keep the first within 20 % of its rate alone.
//!
//! `cargo bench -p webhooks-tests --bench fairness`

use std::time::{Duration, Instant};

use serde_json::json;
use webhooks_tests::client::{claims, token};
use webhooks_tests::receiver::{Behaviour, Receiver};
use webhooks_tests::runner::{self, Kind};

const EVENTS: usize = 20_000;
const PER_REQUEST: usize = 100;

/// Publishes `EVENTS` events and returns the fast receiver's deliveries per second, from
/// the first publish to its last delivery.
async fn run(with_slow: bool) -> (f64, usize) {
    let running = runner::start(Kind::Memory, &[("WEBHOOKS_RATE_LIMIT_PER_MINUTE", "0")]).await;
    let client = webhooks_tests::client::Client::new(running.base_url());
    let fast = Receiver::start().await;
    let slow = Receiver::start().await;
    slow.always(Behaviour::Delay(Duration::from_secs(9), 503));
    let subscribe = async |user: u64, url: &str| {
        let answer = client
            .post_json(
                "/api/v0/webhooks/subscriptions",
                &token(&claims(user, "hq")),
                &json!({"trigger_url": url, "event_id": "create_task"}),
            )
            .await;
        assert_eq!(answer.http, 201, "{:?}", answer.tree);
    };
    subscribe(1, &fast.url).await;
    if with_slow {
        subscribe(2, &slow.url).await;
    }
    let mut publisher = claims(9, "hq");
    publisher.scope = Some("webhooks:publish".into());
    let publisher = token(&publisher);

    let started = Instant::now();
    for chunk in 0..EVENTS / PER_REQUEST {
        let events: Vec<_> = (0..PER_REQUEST)
            .map(|i| {
                let id = chunk * PER_REQUEST + i + 1; // object ids start at 1
                json!({"event_id": "create_task", "object_id": id,
                       "resource_url": format!("https://hq.example.com/tasks/{id}"),
                       "visible_to": "all"})
            })
            .collect();
        let answer = client
            .post_json("/api/v0/webhooks/events", &publisher, &json!(events))
            .await;
        assert_eq!(answer.http, 200);
        assert_eq!(answer.tree["response"]["accepted"], PER_REQUEST, "{:?}", answer.tree);
    }
    fast.wait_for(EVENTS, Duration::from_secs(300)).await;
    let elapsed = started.elapsed();
    let slow_requests = slow.count();
    running.stop().await;
    (EVENTS as f64 / elapsed.as_secs_f64(), slow_requests)
}

#[tokio::main]
async fn main() {
    println!(
        "fairness: {EVENTS} events to a receiver that answers at once, local runner, memory backend"
    );
    // A first run warms up the process (allocator, connection pools); it is not counted.
    run(false).await;
    let (alone, _) = run(false).await;
    println!("  alone:                                   {alone:>8.0} deliveries/s");
    let (beside, slow_requests) = run(true).await;
    println!(
        "  beside a receiver answering 503 after 9 s: {beside:>6.0} deliveries/s ({:.0} % of alone; the slow receiver got {slow_requests} requests)",
        100.0 * beside / alone
    );
}
