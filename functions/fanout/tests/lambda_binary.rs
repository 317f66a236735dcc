//! The `fanout` binary as Lambda runs it: an SQS event through the Runtime API, on
//! DynamoDB and SQS in moto, answering with partial batch failures.

use std::time::Duration;

use serde_json::json;
use webhooks_core::event::example;
use webhooks_core::job::DeliveryJob;
use webhooks_core::queue::IncomingMessage;
use webhooks_tests::client::{Client, claims, token};
use webhooks_tests::lambda_events::sqs_event;
use webhooks_tests::lambda_runtime::{Runtime, moto_env};
use webhooks_tests::{moto, runner, unique};

#[tokio::test]
async fn the_fanout_binary_turns_an_sqs_batch_into_jobs() {
    let (subs, idem, prefix) = (unique("subs"), unique("idem"), unique("q"));
    let vars = [
        ("WEBHOOKS_SUBSCRIPTIONS_TABLE", subs.as_str()),
        ("WEBHOOKS_IDEMPOTENCY_TABLE", idem.as_str()),
        ("WEBHOOKS_QUEUE_PREFIX", prefix.as_str()),
    ];
    let backend = webhooks_local::Backend::Aws(Box::new(moto::sdk_config().await));
    let platform = std::sync::Arc::new(
        webhooks_local::compose(&backend, runner::settings(&vars))
            .await
            .unwrap(),
    );
    let running = webhooks_local::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        platform.app.clone(),
    )
    .await
    .unwrap();
    let client = Client::new(running.base_url());
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &token(&claims(4, "hq")),
            &json!({"trigger_url": "https://hooks.example.com/h", "event_id": "create_issue"}),
        )
        .await;
    let id = created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut runtime = Runtime::start().await;
    let mut env = moto_env(moto::endpoint());
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.push(("WEBHOOKS_SECRET_KEY".into(), "ab".repeat(32)));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    runtime.spawn(env!("CARGO_BIN_EXE_fanout"), &env);

    let messages = vec![
        IncomingMessage {
            message_id: "m-1".into(),
            body: example("hq", "create_issue", 77, json!([4])).to_string(),
            receive_count: 1,
            attributes: Default::default(),
        },
        IncomingMessage {
            message_id: "m-2".into(),
            body: "not json".into(),
            receive_count: 1,
            attributes: Default::default(),
        },
    ];
    let answer = runtime
        .invoke(serde_json::to_value(sqs_event(&messages)).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");

    let jobs = platform
        .deliveries
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let job = DeliveryJob::from_message(&jobs[0].message.body).unwrap();
    assert_eq!(
        (job.subscription.id.as_str(), job.object_id),
        (id.as_str(), 77)
    );
    let parked = platform
        .events_dead_letters
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        parked
            .iter()
            .map(|r| r.message.body.as_str())
            .collect::<Vec<_>>(),
        vec!["not json"]
    );
    running.stop().await;
}
