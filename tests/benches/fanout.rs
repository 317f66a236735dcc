//! Fan-out throughput on the in-memory adapters, and the AWS requests it makes per event
//! and per job (each store page is one DynamoDB `Query`, each send one `SendMessageBatch`).
//! Then the audience case: an event visible to 3 users, in a deployment where
//! 100,000 subscriptions over 10,000 users hold its type: the time of one fan-out on the
//! memory adapters, and the read units its index reads would cost on DynamoDB, computed
//! from the index entries it read (DynamoDB's rule: an entry's size is its attribute
//! names and values; a `Query` costs half a unit per 4 KB of entries, rounded up),
//! beside the same event read from the whole type.
//!
//! `cargo bench -p webhooks-tests --bench fanout`

use std::time::Instant;

use serde_json::json;
use webhooks_core::model::event::example;
use webhooks_core::ports::queue::QueueReceiver;
use webhooks_core::stages::fanout::FanOutSettings;
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
            drained(kit.deliveries.as_ref()).await;
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
    audience().await;
}

/// The audience case, on both read paths.
async fn audience() {
    const USERS: u64 = 10_000;
    const SUBSCRIPTIONS: u64 = 100_000;
    let audience = Kit::new(FanOutSettings::default());
    let catalogue = Kit::new(FanOutSettings {
        audience_limit: 0,
        ..Default::default()
    });
    for n in 0..SUBSCRIPTIONS {
        let sub = webhooks_tests::fanout_kit::subscription(
            &audience.ids,
            &audience.clock,
            "hq",
            n % USERS,
            "assign_task",
        );
        audience.store.put(&sub).await.unwrap();
        catalogue.store.put(&sub).await.unwrap();
    }
    println!();
    println!(
        "an event visible to 3 users; {SUBSCRIPTIONS} subscriptions to its type over {USERS} users"
    );
    println!(
        "{:>10} {:>6} {:>12} {:>12} {:>8} {:>15} {:>12}",
        "path", "runs", "median ms", "max ms", "jobs", "index entries", "read units"
    );
    for (name, kit, runs) in [("audience", &audience, 201), ("catalogue", &catalogue, 11)] {
        let mut times = Vec::new();
        let mut jobs = 0;
        for run in 0..runs {
            let body = example("hq", "assign_task", 1 + run as u64, json!([17, 4242, 9999]));
            let msg = message(&format!("bench-{run}"), body.to_string());
            let started = Instant::now();
            kit.fanout.handle_message(&msg).await.expect("fan-out");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            jobs = drained(kit.deliveries.as_ref()).await;
        }
        times.sort_by(f64::total_cmp);
        let (entries, units) = read_cost(kit, name == "audience").await;
        println!(
            "{:>10} {:>6} {:>12.3} {:>12.3} {:>8} {:>15} {:>12.1}",
            name,
            runs,
            times[times.len() / 2],
            times[times.len() - 1],
            jobs,
            entries,
            units
        );
    }
}

/// The index entries one fan-out of the bench event reads, and their read units on
/// DynamoDB (eventually consistent): per `Query`, half a unit per started 4 KB.
async fn read_cost(kit: &Kit, audience: bool) -> (usize, f64) {
    use webhooks_core::model::subscription::SubscriptionRef;
    let deployment = webhooks_core::model::identity::Deployment::parse("hq").unwrap();
    let entry_bytes = |r: &SubscriptionRef, index_key: &str, index_value: String| {
        let pk = format!("{}#{}", r.owner.deployment, r.owner.user_id);
        "pk".len()
            + pk.len()
            + "sk".len()
            + r.id.as_str().len()
            + index_key.len()
            + index_value.len()
    };
    let units = |bytes: usize| bytes.div_ceil(4096).max(1) as f64 * 0.5;
    if audience {
        let (mut entries, mut total) = (0, 0.0);
        for user in [17, 4242, 9999] {
            let owner = webhooks_tests::fanout_kit::owner("hq", user);
            let found = kit
                .store
                .list_by_owner_event(&owner, "assign_task")
                .await
                .unwrap();
            let bytes: usize = found
                .iter()
                .map(|r| entry_bytes(r, "gsi2pk", format!("hq#{user}#assign_task")))
                .sum();
            entries += found.len();
            total += units(bytes);
        }
        (entries, total)
    } else {
        // 1 MB pages, as DynamoDB cuts them.
        let page = kit
            .store
            .page_by_event(&deployment, "assign_task", None, usize::MAX)
            .await
            .unwrap();
        let sizes: Vec<usize> = page
            .items
            .iter()
            .map(|r| entry_bytes(r, "gsi1pk", "hq#assign_task".into()))
            .collect();
        let (mut total, mut in_page) = (0.0, 0usize);
        for size in &sizes {
            if in_page + size > 1 << 20 {
                total += units(in_page);
                in_page = 0;
            }
            in_page += size;
        }
        total += units(in_page);
        (sizes.len(), total)
    }
}

/// Takes everything off a queue without waiting (not timed); how many there were.
async fn drained(queue: &dyn QueueReceiver) -> usize {
    let mut n = 0;
    loop {
        let batch = queue.receive(10, std::time::Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return n;
        }
        for r in batch {
            n += 1;
            queue.ack(&r.receipt).await.unwrap();
        }
    }
}
