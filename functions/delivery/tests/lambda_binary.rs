//! The `delivery` binary as Lambda runs it: an SQS event of delivery jobs through the
//! Runtime API, on DynamoDB and SQS in moto, POSTing signed webhooks to a real receiver.

use std::time::Duration;

use serde_json::json;
use webhooks_core::job::DeliveryJob;
use webhooks_core::queue::IncomingMessage;
use webhooks_core::subscription::SubscriptionRef;
use webhooks_tests::client::{claims, token};
use webhooks_tests::lambda_events::sqs_event;
use webhooks_tests::lambda_runtime::{MotoPlatform, Runtime};
use webhooks_tests::receiver::{Behaviour, Receiver};

#[tokio::test]
async fn the_delivery_binary_posts_signed_webhooks_and_reports_failures_per_job() {
    let env = MotoPlatform::start(&[("WEBHOOKS_SECRET_KEY", &"cd".repeat(32))]).await;
    let (platform, client) = (&env.platform, &env.client);
    let receiver = Receiver::start().await;
    let owner = claims(6, "hq");
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &token(&owner),
            &json!({"trigger_url": receiver.url, "event_id": "create_contact", "secret": "shh"}),
        )
        .await;
    let sub = &created.tree["response"]["subscription"];
    let id = webhooks_core::ids::SubscriptionId::parse(sub["subscription_id"].as_str().unwrap())
        .unwrap();

    let mut runtime = Runtime::start().await;
    env.spawn(
        &mut runtime,
        env!("CARGO_BIN_EXE_delivery"),
        &[("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")],
    );

    let job = DeliveryJob {
        delivery_id: "msg_binarytest".into(),
        subscription: SubscriptionRef {
            id: id.clone(),
            owner: webhooks_core::identity::Owner {
                deployment: webhooks_core::identity::Deployment::parse("hq").unwrap(),
                user_id: 6,
            },
        },
        event_id: "create_contact".into(),
        object_id: 12,
        resource_url: Some("https://hq.example.com/api/v0/contacts/12".into()),
        occurred_at: "2026-11-27T20:00:00Z".into(),
        attempt: 1,
        due_at: None,
    };
    let message = |id: &str, body: String| IncomingMessage {
        message_id: id.into(),
        body,
        receive_count: 1,
        attributes: Default::default(),
    };
    let answer = runtime
        .invoke(serde_json::to_value(sqs_event(&[message("j-1", job.to_message())])).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].body,
        b"id=12&resource_url=https%3A%2F%2Fhq.example.com%2Fapi%2Fv0%2Fcontacts%2F12"
    );
    assert_eq!(got[0].header("webhook-id"), Some("msg_binarytest"));
    assert!(
        got[0]
            .header("x-hub-signature-256")
            .unwrap()
            .starts_with("sha256=")
    );

    // A 500 schedules a retry on the deliveries queue (found by name) and the log says so.
    receiver.always(Behaviour::Status(500));
    let answer = runtime
        .invoke(serde_json::to_value(sqs_event(&[message("j-2", job.to_message())])).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]));
    let retry = platform
        .deliveries
        .receiver
        .receive(10, Duration::from_secs(8))
        .await
        .unwrap();
    assert_eq!(retry.len(), 1, "the retry waits 5 s on the queue");
    assert_eq!(
        DeliveryJob::from_message(&retry[0].message.body)
            .unwrap()
            .attempt,
        2
    );
    let log = client
        .get(
            &format!("/api/v0/webhooks/subscriptions/{id}/deliveries"),
            &token(&owner),
        )
        .await;
    let outcomes: Vec<&str> = log.tree["response"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["retrying", "delivered"]);
}
