//! Fairness of the delivery stage: the deliveries per second of a receiver that answers at
//! once, in the local runner (memory backend), alone and beside a receiver that answers
//! 503 after 9 s and is subscribed to the same events. The per-subscription breaker
//! (`webhooks_core::policy::breaker`) should keep the first within 20 % of its rate alone.
//!
//! Two loads, each run alone and beside the slow receiver:
//! * steady: events published at a fixed rate for longer than the slow receiver's 9 s,
//!   below what the machine can do, so the figure shows whether the slow receiver takes
//!   delivery capacity (batches, workers) from the fast one;
//! * flood: events published as fast as possible; here the slow receiver's jobs also cost
//!   CPU to fan out and put back on the queue, in the same process on the same cores.
//!
//! `cargo bench -p webhooks-tests --bench fairness`

use std::time::{Duration, Instant};

use serde_json::json;
use webhooks_tests::client::{Client, claims, token};
use webhooks_tests::receiver::{Behaviour, Receiver};
use webhooks_tests::runner::{self, Kind};

const PER_REQUEST: usize = 100;

#[derive(Clone, Copy)]
enum Load {
    /// Events per second, for this long.
    Steady(usize, Duration),
    /// This many events, as fast as they are accepted.
    Flood(usize),
}

/// Publishes the load; returns the fast receiver's deliveries per second, from the first
/// publish to its last delivery, and the requests the slow receiver got.
async fn run(with_slow: bool, load: Load) -> (f64, usize) {
    let running = runner::start(Kind::Memory, &[("WEBHOOKS_RATE_LIMIT_PER_MINUTE", "0")]).await;
    let client = Client::new(running.base_url());
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

    let (total, pause) = match load {
        Load::Steady(rate, length) => (
            rate * length.as_secs() as usize,
            Duration::from_secs_f64(PER_REQUEST as f64 / rate as f64),
        ),
        Load::Flood(n) => (n, Duration::ZERO),
    };
    let started = Instant::now();
    for chunk in 0..total / PER_REQUEST {
        let due = started + pause * chunk as u32;
        tokio::time::sleep_until(due.into()).await;
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
        assert_eq!(
            answer.tree["response"]["accepted"], PER_REQUEST,
            "{:?}",
            answer.tree
        );
    }
    fast.wait_for(total, Duration::from_secs(300)).await;
    let elapsed = started.elapsed();
    let slow_requests = slow.count();
    running.stop().await;
    (total as f64 / elapsed.as_secs_f64(), slow_requests)
}

async fn compare(name: &str, load: Load) {
    let (alone, _) = run(false, load).await;
    let (beside, slow_requests) = run(true, load).await;
    println!(
        "  {name:<34} alone {alone:>7.0}/s   beside the slow one {beside:>7.0}/s   {:>4.0} %   (slow receiver: {slow_requests} requests)",
        100.0 * beside / alone
    );
}

#[tokio::main]
async fn main() {
    println!(
        "fairness: deliveries/s to a receiver that answers at once, alone and beside one answering 503 after 9 s"
    );
    // Warms up the process (allocator, connection pools); not counted.
    run(false, Load::Flood(20_000)).await;
    compare(
        "steady 5,000 events/s for 15 s",
        Load::Steady(5_000, Duration::from_secs(15)),
    )
    .await;
    compare("flood of 200,000 events", Load::Flood(200_000)).await;
}
