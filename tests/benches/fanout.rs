//! Fan-out throughput on the in-memory adapters, and the AWS requests it makes per event
//! and per job (each store page is one DynamoDB `Query`, each send one `SendMessageBatch`).
//!
//! `cargo bench -p webhooks-tests --bench fanout`

use std::time::Instant;

use serde_json::json;
use webhooks_core::event::example;
use webhooks_core::fanout::FanOutSettings;
use webhooks_core::queue::QueueReceiver;
use webhooks_tests::fanout_kit::{Kit, message};

#[tokio::main]
async fn main() {
    println!("fan-out on in-memory adapters (one event, all subscriptions match)");
    println!(
        "{:>13} {:>6} {:>14} {:>16} {:>14} {:>14}",
        "subscriptions", "runs", "jobs/s", "Query/event", "Send/event", "requests/job"
    );
    for (size, runs) in [(1usize, 2000usize), (100, 200), (10_000, 5)] {
        let kit = Kit::new(FanOutSettings::default());
        for user in 0..size as u64 {
            kit.subscribe("hq", user, "create_task").await;
        }
        let body = example("hq", "create_task", 1, json!("all")).to_string();
        let msg = message("bench", body);
        let mut elapsed = std::time::Duration::ZERO;
        kit.counts.reset();
        for _ in 0..runs {
            let started = Instant::now();
            kit.fanout.handle_message(&msg).await.expect("fan-out");
            elapsed += started.elapsed();
            empty(kit.deliveries.as_ref()).await;
        }
        let (queries, sends, sent, _) = kit.counts.get();
        assert_eq!(sent, size * runs);
        let per_event = |n: usize| n as f64 / runs as f64;
        println!(
            "{:>13} {:>6} {:>14.0} {:>16.2} {:>14.2} {:>14.3}",
            size,
            runs,
            sent as f64 / elapsed.as_secs_f64(),
            per_event(queries),
            per_event(sends),
            (queries + sends) as f64 / sent as f64,
        );
    }
}

/// Takes everything off a queue without waiting (not timed).
async fn empty(queue: &dyn QueueReceiver) {
    loop {
        let batch = queue.receive(10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return;
        }
        for r in batch {
            queue.ack(&r.receipt).await.unwrap();
        }
    }
}
