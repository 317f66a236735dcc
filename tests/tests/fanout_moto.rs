//! Events in through the API and SQS, fanned out on DynamoDB and SQS (moto), the way
//! Lambda runs it: the test receives from the events queue and calls the handler.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use webhooks_core::adapters::aws::dynamodb::DynamoSubscriptionStore;
use webhooks_core::adapters::aws::sqs::SqsQueue;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::ports::queue::{IncomingMessage, OutgoingMessage, QueueReceiver, send_all};
use webhooks_core::stages::fanout::{FanOut, FanOutSettings, PARKED_REASON_ATTRIBUTE};
use webhooks_local::{Backend, Platform, Running};
use webhooks_tests::client::{Client, claims, token};
use webhooks_tests::counting::{CountingQueue, CountingStore, Counts};
use webhooks_tests::lambda_events::sqs_event;
use webhooks_tests::{moto, runner, unique};

const SUBS: &str = "/api/v0/webhooks/subscriptions";
const EVENTS: &str = "/api/v0/webhooks/events";

struct Env {
    platform: Arc<Platform>,
    running: Running,
    client: Client,
}

async fn env() -> Env {
    let (subs, idem, prefix) = (unique("subs"), unique("idem"), unique("q"));
    let settings = runner::settings(&[
        ("WEBHOOKS_SUBSCRIPTIONS_TABLE", &subs),
        ("WEBHOOKS_IDEMPOTENCY_TABLE", &idem),
        ("WEBHOOKS_QUEUE_PREFIX", &prefix),
    ]);
    let backend = Backend::Aws(Box::new(moto::sdk_config().await));
    let platform = Arc::new(webhooks_local::compose(&backend, settings).await.unwrap());
    // Only the API is served: the test plays Lambda's event source for the fan-out.
    let running =
        webhooks_local::serve(SocketAddr::from(([127, 0, 0, 1], 0)), platform.app.clone())
            .await
            .unwrap();
    let client = Client::new(running.base_url());
    Env {
        platform,
        running,
        client,
    }
}

/// Everything on a queue now (long enough for moto), acknowledged.
async fn drain(queue: &dyn QueueReceiver) -> Vec<IncomingMessage> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::from_millis(200)).await.unwrap();
        if batch.is_empty() {
            return all;
        }
        for r in batch {
            queue.ack(&r.receipt).await.unwrap();
            all.push(r.message);
        }
    }
}

/// Receives from the events queue and runs the fan-out on each batch, as Lambda would.
async fn run_fanout(env: &Env) -> usize {
    let mut handled = 0;
    loop {
        let batch = env
            .platform
            .events
            .receiver
            .receive(10, Duration::from_millis(200))
            .await
            .unwrap();
        if batch.is_empty() {
            return handled;
        }
        let messages: Vec<IncomingMessage> = batch.iter().map(|r| r.message.clone()).collect();
        let response =
            webhooks_sqs_lambda::handle(env.platform.fanout.as_ref(), sqs_event(&messages)).await;
        let failed: HashSet<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert!(failed.is_empty(), "fan-out failures: {failed:?}");
        for r in batch {
            env.platform.events.receiver.ack(&r.receipt).await.unwrap();
        }
        handled += messages.len();
    }
}

async fn jobs(env: &Env) -> Vec<DeliveryJob> {
    drain(env.platform.deliveries.receiver.as_ref())
        .await
        .iter()
        .map(|m| DeliveryJob::from_message(&m.body).unwrap())
        .collect()
}

async fn subscribe(env: &Env, user: u64, deployment: &str, event_id: &str) -> String {
    let a = env
        .client
        .post_json(
            SUBS,
            &token(&claims(user, deployment)),
            &json!({"trigger_url": "https://hooks.example.com/h", "event_id": event_id}),
        )
        .await;
    assert_eq!(a.status(), "ok_created");
    a.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn publisher(deployment: &str) -> String {
    let mut c = claims(900, deployment);
    c.scope = Some("webhooks:publish".into());
    token(&c)
}

#[tokio::test]
async fn published_events_reach_exactly_the_right_subscriptions() {
    let env = env().await;
    let u1 = subscribe(&env, 1, "hq", "assign_task").await;
    let _u2 = subscribe(&env, 2, "hq", "assign_task").await;
    let u3 = subscribe(&env, 3, "hq", "assign_task").await;
    let _u1_other_event = subscribe(&env, 1, "hq", "create_task").await;
    let _acme_u1 = subscribe(&env, 1, "acme", "assign_task").await;

    let events = json!([
        {"event_id": "assign_task", "object_id": 123, "resource_url": "https://hq.example.com/api/v0/tasks/123",
         "visible_to": [1, 3], "occurred_at": "2026-11-27T20:00:00Z"},
        {"event_id": "assign_task", "object_id": 124, "visible_to": [1]},
        {"deployment": "acme", "event_id": "assign_task", "object_id": 125, "resource_url": "https://x.example/1", "visible_to": "all"},
    ]);
    let answer = env
        .client
        .post_json(EVENTS, &publisher("hq"), &events)
        .await;
    assert_eq!((answer.http, answer.status()), (200, "ok"));
    let verdicts = answer.tree["response"]["events"].as_array().unwrap();
    assert_eq!(verdicts[0]["status"], "accepted");
    assert!(
        verdicts[0]["event_uid"]
            .as_str()
            .unwrap()
            .starts_with("evt_")
    );
    assert_eq!(verdicts[1]["status"], "invalid");
    assert!(
        verdicts[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("resource_url is required")
    );
    assert_eq!(
        verdicts[2]["message"],
        "deployment must be the deployment of your token"
    );
    assert_eq!(answer.tree["response"]["accepted"], 1);

    assert_eq!(run_fanout(&env).await, 1);
    let jobs = jobs(&env).await;
    let got: HashSet<String> = jobs.iter().map(|j| j.subscription.id.to_string()).collect();
    assert_eq!(
        got,
        HashSet::from([u1, u3]),
        "owners outside visible_to, other events and deployments get nothing"
    );
    assert!(
        jobs.iter()
            .all(|j| j.object_id == 123 && j.occurred_at == "2026-11-27T20:00:00Z")
    );
    env.running.stop().await;
}

#[tokio::test]
async fn publishing_needs_the_scope_and_refuses_all_invalid_requests_whole() {
    let env = env().await;
    let plain = env
        .client
        .post_json(
            EVENTS,
            &token(&claims(1, "hq")),
            &json!({"event_id": "assign_task"}),
        )
        .await;
    assert_eq!((plain.http, plain.status()), (403, "invalid_permission"));
    let bad = env
        .client
        .post_json(
            EVENTS,
            &publisher("hq"),
            &json!([{"event_id": "nope", "object_id": 1, "visible_to": "all"}, {"object_id": 2}]),
        )
        .await;
    assert_eq!((bad.http, bad.status()), (400, "invalid_request"));
    assert!(bad.message().starts_with(
        "no event was valid; the first problem: event_id `nope` is not a known event"
    ));
    assert_eq!(
        bad.tree["response"]["events"][1]["message"],
        "event_id is required"
    );
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"event_id": "delete_activity", "object_id": i + 1, "visible_to": "all"}))
        .collect();
    let a = env
        .client
        .post_json(EVENTS, &publisher("hq"), &Value::Array(too_many))
        .await;
    assert_eq!(a.message(), "send at most 100 events per request");
    assert_eq!(
        run_fanout(&env).await,
        0,
        "nothing reached the events queue"
    );
    env.running.stop().await;
}

#[tokio::test]
async fn poison_on_the_queue_is_parked_and_its_neighbours_delivered() {
    let env = env().await;
    let sub = subscribe(&env, 4, "hq", "delete_invoice").await;
    let good = json!({"deployment": "hq", "event_id": "delete_invoice", "object_id": 77, "visible_to": [4]});
    let bodies = [
        good.to_string(),
        "{\"deployment\": \"hq\"".to_owned(),
        good.to_string().replace("77", "78"),
    ];
    let messages: Vec<OutgoingMessage> = bodies
        .iter()
        .map(|b| OutgoingMessage::new(b.clone()))
        .collect();
    send_all(env.platform.events.sender.as_ref(), messages, 1)
        .await
        .unwrap();

    assert_eq!(run_fanout(&env).await, 3);
    let jobs = jobs(&env).await;
    let objects: HashSet<u64> = jobs.iter().map(|j| j.object_id).collect();
    assert_eq!(objects, HashSet::from([77, 78]));
    assert!(
        jobs.iter()
            .all(|j| j.subscription.id.as_str() == sub && j.resource_url.is_none())
    );
    let parked = drain(env.platform.events_dead_letters.receiver.as_ref()).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body, "{\"deployment\": \"hq\"");
    assert!(parked[0].attributes[PARKED_REASON_ATTRIBUTE].starts_with("the message is not JSON"));
    env.running.stop().await;
}

#[tokio::test]
async fn trigger_queues_the_event_for_the_callers_other_subscriptions() {
    let env = env().await;
    let me = token(&claims(5, "hq"));
    let mine = subscribe(&env, 5, "hq", "create_quote").await;
    let my_other = subscribe(&env, 5, "hq", "create_quote").await;
    let _someone_else = subscribe(&env, 6, "hq", "create_quote").await;
    let a = env
        .client
        .post_form(&format!("{SUBS}/{mine}/trigger"), &me, "object_id=42")
        .await;
    assert_eq!((a.http, a.status()), (200, "ok"));
    assert_eq!(
        a.tree.get("response"),
        Some(&serde_json::Value::Null),
        "trigger has no resource: \"response\": null"
    );
    let bad = env
        .client
        .post_form(&format!("{SUBS}/{mine}/trigger"), &me, "object_id=abc")
        .await;
    assert_eq!(bad.message(), "object_id must be a positive whole number");
    let foreign = env
        .client
        .post_form(
            &format!("{SUBS}/{mine}/trigger"),
            &token(&claims(6, "hq")),
            "object_id=1",
        )
        .await;
    assert_eq!(foreign.status(), "invalid_request");

    assert_eq!(run_fanout(&env).await, 1);
    let jobs = jobs(&env).await;
    assert_eq!(
        jobs.iter()
            .map(|j| j.subscription.id.to_string())
            .collect::<Vec<_>>(),
        vec![my_other]
    );
    assert_eq!(
        jobs[0].resource_url.as_deref(),
        Some("https://hq.api.accelo.com/api/v0/quotes/42")
    );
    env.running.stop().await;
}

/// AWS requests per event for 1 and 100 matching subscriptions (10,000 is measured on
/// the in-memory adapters by the fan-out test and benchmark).
#[tokio::test]
async fn aws_requests_per_event_stay_at_one_query_and_one_send_per_ten_jobs() {
    let sdk = moto::sdk_config().await;
    let table = unique("subs");
    let store = DynamoSubscriptionStore::from_sdk(&sdk, &table);
    store.ensure_table().await.unwrap();
    let client = SqsQueue::client(&sdk);
    let deliveries = Arc::new(
        SqsQueue::ensure(client.clone(), &unique("deliveries"), 30, None)
            .await
            .unwrap(),
    );
    let events = Arc::new(
        SqsQueue::ensure(client.clone(), &unique("events"), 30, None)
            .await
            .unwrap(),
    );
    let counts = Arc::new(Counts::default());
    let ids = webhooks_core::model::ids::IdGenerator::default();
    let clock = webhooks_core::model::clock::ManualClock::at(1_800_000_000_000);
    let fanout = FanOut {
        store: Arc::new(CountingStore {
            inner: Arc::new(store.clone()),
            counts: counts.clone(),
        }),
        idempotency: Arc::new(webhooks_core::adapters::memory::MemoryIdempotencyStore::default()),
        deliveries: Arc::new(CountingQueue {
            inner: deliveries.clone(),
            counts: counts.clone(),
        }),
        events: events.clone(),
        dead_letters: events,
        catalogue: Default::default(),
        clock: Arc::new(clock.clone()),
        settings: FanOutSettings::default(),
        access: None,
    };
    let mut report = HashMap::new();
    for (n, event_id) in [(1usize, "create_contact"), (100, "update_contact")] {
        for user in 0..n as u64 {
            let sub = webhooks_tests::fanout_kit::subscription(&ids, &clock, "hq", user, event_id);
            webhooks_core::ports::store::SubscriptionStore::put(&store, &sub)
                .await
                .unwrap();
        }
        counts.reset();
        let body =
            webhooks_core::model::event::example("hq", event_id, 1, json!("all")).to_string();
        fanout
            .handle_message(&webhooks_tests::fanout_kit::message("m", body))
            .await
            .unwrap();
        let (queries, sends, sent, _) = counts.get();
        assert_eq!(sent, n);
        report.insert(n, (queries, sends));
        drain(deliveries.as_ref()).await;
    }
    assert_eq!(
        report[&1],
        (1, 1),
        "1 subscription: one Query, one SendMessageBatch"
    );
    assert_eq!(
        report[&100],
        (1, 10),
        "100 subscriptions: one Query, ten SendMessageBatch"
    );
}
