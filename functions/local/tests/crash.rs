//! Crash safety of the local runner on the `aws` backend: the real `webhooks-local` binary,
//! against moto, is killed with SIGKILL while events are being published, fanned out and
//! delivered, and started again on the same tables and queues. Every event the API
//! answered `accepted` must reach the receiver at least once; none may be lost.
//!
//! What makes this possible (and what the test proves): the API answers `accepted` only
//! after the event is on the events queue; each stage deletes a message only after its work
//! is done, so a message the killed process had received comes back when its visibility
//! timeout ends. The runner is started with `WEBHOOKS_LOCAL_VISIBILITY_SECS` short, so
//! that this happens within seconds instead of the template's minutes.
//!
//! The kill is placed where it matters: the receiver stops answering just before it, so
//! the runner dies with a batch of deliveries received from the queue and not done (and
//! the fan-out with whatever events it holds). Only answered requests count as delivered,
//! so those jobs must come back from the queue after the restart: with the template's
//! visibility timeout (minutes), this test fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::spawn;
use serde_json::{Value, json};
use webhooks_tests::receiver::{Behaviour, Receiver};

/// Events published in all, in batches of [`BATCH`].
const EVENTS: u64 = 200;
const BATCH: u64 = 20;
/// Distinct events delivered before the runner is killed.
const KILL_AFTER: usize = 30;
/// Visibility timeout of the runner's queues, in seconds.
const VISIBILITY_SECS: &str = "4";

fn event(object_id: u64) -> Value {
    let mut e = json!({
        "event_id": "assign_task",
        "object_id": object_id,
        "resource_url": format!("https://hq.example.com/api/v0/tasks/{object_id}"),
        "visible_to": "all",
    });
    if object_id.is_multiple_of(2) {
        e["idempotency_key"] = json!(format!("crash-{object_id}"));
    }
    e
}

/// Publishes the batch starting at `first`; returns the object ids the API accepted, or
/// `None` when no answer came (the runner died under the request: those events are
/// neither accepted nor refused, and the test expects nothing of them).
async fn publish(http: &reqwest::Client, r: &(String, String), first: u64) -> Option<Vec<u64>> {
    let (base, token) = r;
    let ids: Vec<u64> = (first..first + BATCH).collect();
    let body = Value::Array(ids.iter().map(|i| event(*i)).collect());
    let answer = http
        .post(format!("{base}/api/v0/webhooks/events"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .ok()?;
    let answer: Value = answer.json().await.ok()?;
    let verdicts = answer["response"]["events"].as_array()?;
    Some(
        verdicts
            .iter()
            .filter(|v| v["status"] == "accepted")
            .map(|v| ids[v["index"].as_u64().expect("an index") as usize])
            .collect(),
    )
}

/// The object ids of the deliveries the receiver answered (each delivery's `id`), with
/// how often: `answered(i)` says whether the `i`th request got an answer.
fn delivered(receiver: &Receiver, answered: impl Fn(usize) -> bool) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for (i, r) in receiver.requests().iter().enumerate() {
        if !answered(i) {
            continue;
        }
        let body = r.body_text();
        let id = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("id="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a delivery body with an id: {body:?}"));
        *seen.entry(id).or_default() += 1;
    }
    seen
}

/// Waits (bounded) until `done` holds.
async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_accepted_event() {
    let endpoint = webhooks_tests::moto::endpoint();
    let names = [
        (
            "WEBHOOKS_SUBSCRIPTIONS_TABLE",
            webhooks_tests::unique("crash-subs"),
        ),
        (
            "WEBHOOKS_IDEMPOTENCY_TABLE",
            webhooks_tests::unique("crash-idem"),
        ),
        (
            "WEBHOOKS_DELIVERY_LOG_TABLE",
            webhooks_tests::unique("crash-log"),
        ),
        ("WEBHOOKS_QUEUE_PREFIX", webhooks_tests::unique("crash")),
    ];
    let mut envs: Vec<(&str, &str)> = vec![
        ("WEBHOOKS_BACKEND", "aws"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("WEBHOOKS_LOCAL_VISIBILITY_SECS", VISIBILITY_SECS),
        // Every request of this test is one user's; the limit is not under test.
        ("WEBHOOKS_RATE_LIMIT_PER_MINUTE", "0"),
        // Nor is fairness: on a loaded machine an answer can take seconds, and the
        // breaker would hold the jobs back for longer than this test waits.
        ("WEBHOOKS_BREAKER_COOLDOWN_SECS", "0"),
    ];
    envs.extend(names.iter().map(|(k, v)| (*k, v.as_str())));

    let receiver = Receiver::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let first = spawn(&envs);
    let created = http
        .post(format!("{}/api/v0/webhooks/subscriptions", first.base))
        .bearer_auth(&first.token)
        .form(&[
            ("trigger_url", receiver.url.as_str()),
            ("event_id", "assign_task"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    // The first half is published before the crash and must all be accepted.
    let mut accepted = BTreeSet::new();
    let target = (first.base.clone(), first.token.clone());
    for batch in 0..EVENTS / BATCH / 2 {
        let ids = publish(&http, &target, 1 + batch * BATCH).await;
        let ids = ids.expect("the runner answers before it is killed");
        assert_eq!(ids.len() as u64, BATCH, "every valid event is accepted");
        accepted.extend(ids);
    }
    // The second half goes out while the runner is killed: a batch whose request dies
    // with it has no verdict and is expected nowhere.
    let publisher = {
        let http = http.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut next = 1 + EVENTS / 2;
            while next <= EVENTS {
                match publish(&http, &target, next).await {
                    Some(ids) => accepted.extend(ids),
                    None => break,
                }
                next += BATCH;
            }
            (accepted, next)
        })
    };

    // Once deliveries flow, the receiver stops answering: the runner's next batch of
    // deliveries hangs, received from the queue and not done. Killed then, those jobs
    // come back only when their visibility timeout ends.
    wait_until("the first deliveries", 30, || {
        delivered(&receiver, |_| true).len() >= KILL_AFTER
    })
    .await;
    let hang_from = receiver.switch(Behaviour::Hang);
    wait_until("a delivery in flight", 30, || {
        receiver.requests().len() > hang_from
    })
    .await;
    let mut first = first;
    first.child.kill().expect("SIGKILL the runner");
    first.child.wait().unwrap();
    let hang_until = receiver.switch(Behaviour::Status(200));
    let answered = move |i: usize| i < hang_from || i >= hang_until;
    let hung: BTreeSet<u64> = receiver.requests()[hang_from..hang_until]
        .iter()
        .filter_map(|r| {
            r.body_text()
                .split('&')
                .find_map(|kv| kv.strip_prefix("id=").and_then(|v| v.parse().ok()))
        })
        .collect();
    let (more, resume_at) = publisher.await.unwrap();
    accepted.extend(more);
    let at_kill = delivered(&receiver, answered).len();

    // Started again on the same tables and queues; the rest of the load follows.
    let second = spawn(&envs);
    let target = (second.base.clone(), second.token.clone());
    let mut next = resume_at;
    while next <= EVENTS {
        let ids = publish(&http, &target, next).await;
        accepted.extend(ids.expect("the restarted runner answers"));
        next += BATCH;
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let seen = delivered(&receiver, answered);
        let missing: Vec<u64> = accepted
            .iter()
            .filter(|id| !seen.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            let twice = seen.values().filter(|n| **n > 1).count();
            eprintln!(
                "{} accepted events, all delivered: {at_kill} before the kill, {} in flight at \
                 the kill, {twice} more than once",
                accepted.len(),
                hung.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted event(s) never reached the receiver: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(second);
}
