//! The `fanout` binary as Lambda runs it: SQS events through the Runtime API, on DynamoDB
//! and SQS in moto, configured only by the environment `template.yaml` gives the fan-out
//! function (no secret at all), and with every AWS call checked against that function's
//! own role. The test drives each path that touches AWS: unkeyed and keyed events, a
//! continuation of a large fan-out, and a poison message.

use std::time::Duration;

use serde_json::json;
use webhooks_core::model::event::example;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::ports::queue::IncomingMessage;
use webhooks_tests::client::{claims, token};
use webhooks_tests::deployed::{Deployed, Function};
use webhooks_tests::lambda_events::{message, sqs_event};

const FANOUT: Function = Function {
    logical_id: "FanoutFunction",
    binary: env!("CARGO_BIN_EXE_fanout"),
};

#[tokio::test]
async fn the_fanout_binary_turns_sqs_batches_into_jobs_within_its_role() {
    let stack = Deployed::start(&[], &[]).await;
    let (platform, client) = (&stack.moto.platform, &stack.moto.client);
    let mut ids = Vec::new();
    for user in [4, 5, 6] {
        let created = client
            .post_json(
                "/api/v0/webhooks/subscriptions",
                &token(&claims(user, "hq")),
                &json!({"trigger_url": format!("https://hooks.example.com/{user}"), "event_id": "create_issue"}),
            )
            .await;
        ids.push(
            created.tree["response"]["subscription"]["subscription_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // One subscription per page and one page per message: an event for everyone with
    // more than one subscriber continues in a new message on the events queue. Events
    // for a few users read those users' subscriptions (by_owner_event) at once.
    let mut fanout = stack
        .spawn(
            FANOUT,
            &[
                ("WEBHOOKS_FANOUT_PAGE_SIZE", "1"),
                ("WEBHOOKS_FANOUT_PAGES_PER_MESSAGE", "1"),
            ],
        )
        .await;

    let mut keyed = example("hq", "create_issue", 78, json!([4, 5, 6]));
    keyed["idempotency_key"] = json!("issue-78-created");
    let batch = vec![
        message(
            "m-1",
            example("hq", "create_issue", 77, json!([4])).to_string(),
        ),
        message("m-2", "not json".into()),
        message("m-3", keyed.to_string()),
    ];
    let answer = fanout
        .runtime
        .invoke(serde_json::to_value(sqs_event(&batch)).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    // For everyone: read from the by_event index, a page at a time.
    let everyone = message(
        "m-5",
        example("hq", "create_issue", 79, json!("all")).to_string(),
    );
    let answer = fanout
        .runtime
        .invoke(serde_json::to_value(sqs_event(&[everyone])).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");

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

    // Follow the continuations as Lambda would: each goes back to the binary.
    let mut jobs = Vec::new();
    for round in 0..10 {
        jobs.extend(
            platform
                .deliveries
                .receiver
                .receive(10, Duration::from_millis(500))
                .await
                .unwrap()
                .into_iter()
                .map(|r| DeliveryJob::from_message(&r.message.body).unwrap()),
        );
        let continuations = platform
            .events
            .receiver
            .receive(10, Duration::from_millis(500))
            .await
            .unwrap();
        if continuations.is_empty() {
            break;
        }
        let messages: Vec<IncomingMessage> = continuations
            .iter()
            .enumerate()
            .map(|(i, r)| message(&format!("c-{round}-{i}"), r.message.body.clone()))
            .collect();
        let answer = fanout
            .runtime
            .invoke(serde_json::to_value(sqs_event(&messages)).unwrap())
            .await;
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    }
    let mut got: Vec<(u64, String)> = jobs
        .iter()
        .map(|j| (j.object_id, j.subscription.id.as_str().to_owned()))
        .collect();
    got.sort();
    let mut want = vec![(77, ids[0].clone())];
    want.extend(ids.iter().map(|id| (78, id.clone())));
    want.extend(ids.iter().map(|id| (79, id.clone())));
    want.sort();
    assert_eq!(
        got, want,
        "one job per visible subscriber, continuations included"
    );

    // The keyed event is done: sending it again fans out nothing.
    let answer = fanout
        .runtime
        .invoke(serde_json::to_value(sqs_event(&[message("m-4", keyed.to_string())])).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]));
    let again = platform
        .deliveries
        .receiver
        .receive(10, Duration::from_millis(800))
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "a finished idempotency key is not fanned out twice"
    );

    fanout.assert_role_is_exact();
}

#[test]
fn the_claim_lease_ends_before_the_events_queue_shows_a_message_again() {
    // A copy of a keyed event left "in progress" comes back after the visibility timeout:
    // by then the lease must have ended, or a crashed fan-out's own message is refused
    // until it lands in the dead-letter queue.
    let template = webhooks_tests::stack::transformed();
    let visibility = template["Resources"]["EventsQueue"]["Properties"]["VisibilityTimeout"]
        .as_u64()
        .expect("the events queue sets its visibility timeout");
    let lease = webhooks_core::stages::fanout::FanOutSettings::default().claim_lease;
    assert!(
        lease.as_secs() * 2 <= visibility,
        "lease {lease:?}, visibility {visibility} s"
    );
}
