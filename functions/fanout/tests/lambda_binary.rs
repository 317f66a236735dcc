//! The `fanout` binary as Lambda runs it: an SQS event through the Runtime API, on
//! DynamoDB and SQS in moto, answering with partial batch failures.

use std::time::Duration;

use serde_json::json;
use webhooks_core::event::example;
use webhooks_core::job::DeliveryJob;
use webhooks_core::queue::IncomingMessage;
use webhooks_tests::client::{claims, token};
use webhooks_tests::lambda_events::sqs_event;
use webhooks_tests::lambda_runtime::{MotoPlatform, Runtime};

#[tokio::test]
async fn the_fanout_binary_turns_an_sqs_batch_into_jobs() {
    let env = MotoPlatform::start(&[("WEBHOOKS_SECRET_KEY", &"ab".repeat(32))]).await;
    let (platform, client) = (&env.platform, &env.client);
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
    env.spawn(&mut runtime, env!("CARGO_BIN_EXE_fanout"), &[]);

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
}
