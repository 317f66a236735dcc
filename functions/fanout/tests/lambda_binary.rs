//! The `fanout` binary as Lambda runs it: SQS events through the Runtime API, on DynamoDB
//! and SQS in moto, configured only by the environment `template.yaml` gives the fan-out
//! function (no secret at all, or with an access check its secret, read from Secrets
//! Manager at the first question), and with every AWS call checked against that function's
//! own role. The tests drive each path that touches AWS: unkeyed and keyed events, a
//! continuation of a large fan-out, a poison message, `"check"` without an access check;
//! and with one, questions answered, failed and asked again.

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_core::model::event::example;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::ports::queue::IncomingMessage;
use webhooks_core::stages::fanout::{NO_ACCESS_CHECK, PARKED_REASON_ATTRIBUTE};
use webhooks_tests::client::{claims, token};
use webhooks_tests::deployed::{Deployed, Function, LOOPBACK};
use webhooks_tests::lambda_events::{message, sqs_event};
use webhooks_tests::receiver::{Behaviour, Receiver};

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
    // Without an access check, `"check"` is parked with the reason (and no secret read).
    let check = example("hq", "create_issue", 76, json!("check")).to_string();
    let batch = vec![
        message(
            "m-1",
            example("hq", "create_issue", 77, json!([4])).to_string(),
        ),
        message("m-2", "not json".into()),
        message("m-3", keyed.to_string()),
        message("m-6", check.clone()),
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
    let mut parked: Vec<(&str, Option<&str>)> = parked
        .iter()
        .map(|r| {
            (
                r.message.body.as_str(),
                r.message
                    .attributes
                    .get(PARKED_REASON_ATTRIBUTE)
                    .map(String::as_str),
            )
        })
        .collect();
    parked.sort();
    assert_eq!(parked.len(), 2, "{parked:?}");
    assert_eq!(parked[0].0, "not json");
    assert_eq!(parked[1], (check.as_str(), Some(NO_ACCESS_CHECK)));

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

    assert!(
        fanout
            .gate
            .calls()
            .iter()
            .all(|c| !c.action.starts_with("secretsmanager:")),
        "without an access check the fan-out reads no secret"
    );
    fanout.assert_role_is_exact();
}

/// The installation secret of the access check below: `whsec_` and the base64 of 32 bytes.
const CHECK_SECRET: &str = "whsec_KwIgfqDRl/CiX03Vyedql617AWqi/rkaPIaZeUGYpOA=";

/// The jobs on the deliveries queue within `wait`, as (object, owner) pairs, sorted.
async fn jobs_queued(stack: &Deployed, wait: Duration) -> Vec<(u64, u64)> {
    let mut got: Vec<(u64, u64)> = stack
        .moto
        .platform
        .deliveries
        .receiver
        .receive(10, wait)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let job = DeliveryJob::from_message(&r.message.body).unwrap();
            (job.object_id, job.subscription.owner.user_id)
        })
        .collect();
    got.sort();
    got
}

/// The access check of SPEC section 5 through the binary, deployed with `AccessCheckUrl`
/// and `AccessCheckSecret`: the product names two of three owners (as numeric strings)
/// and only those two get jobs; the question carries the object and the candidate owners
/// and verifies with the `standardwebhooks` crate under the installation secret, which is
/// read from Secrets Manager once, at the first question, for all the batches of the
/// instance. A question answered 500 is asked again (same `webhook-id`) from a delayed
/// message on the events queue, and its named owners then get their jobs. Within the
/// fan-out's role with the secret's read: every grant used, nothing refused.
#[tokio::test]
async fn the_fanout_binary_asks_the_access_check_within_its_role() {
    let check = Receiver::start().await;
    check.always(Behaviour::Respond {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"visible_to": ["31", "32"]}"#.into(),
    });
    // The Lambda defaults call only public https addresses; the access check here is a
    // receiver on 127.0.0.1 over http, let through by the settings the other binary tests
    // use for loopback receivers. (The template's pattern for AccessCheckUrl asks for
    // https; the test stack does not apply parameter patterns.)
    let stack = Deployed::start(
        &[
            ("AccessCheckUrl", check.url.as_str()),
            ("AccessCheckSecret", CHECK_SECRET),
        ],
        &[],
    )
    .await;
    let (platform, client) = (&stack.moto.platform, &stack.moto.client);
    for user in [31, 32, 33] {
        client
            .post_json(
                "/api/v0/webhooks/subscriptions",
                &token(&claims(user, "hq")),
                &json!({"trigger_url": format!("https://hooks.example.com/{user}"), "event_id": "create_issue"}),
            )
            .await;
    }
    let secret_arn = stack
        .variable(FANOUT, "WEBHOOKS_ACCESS_CHECK_SECRET_ARN")
        .expect("the template gives the fan-out the secret's ARN");
    let mut fanout = stack.spawn(FANOUT, LOOPBACK).await;
    let mut invoke = async |messages: &[IncomingMessage]| {
        let answer = fanout
            .runtime
            .invoke(serde_json::to_value(sqs_event(messages)).unwrap())
            .await;
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    };
    let verifier = standardwebhooks::Webhook::new(CHECK_SECRET).unwrap();
    let question = |n: usize| {
        let asked = &check.requests()[n];
        verifier
            .verify(&asked.body, &asked.header_map())
            .expect("the question verifies under the installation secret");
        let body: Value = serde_json::from_slice(&asked.body).unwrap();
        (asked.header("webhook-id").unwrap().to_owned(), body)
    };

    // A keyed "check" event, beside an unreadable message.
    let mut keyed = example("hq", "create_issue", 80, json!("check"));
    keyed["idempotency_key"] = json!("issue-80-checked");
    invoke(&[
        message("a-1", keyed.to_string()),
        message("a-2", "not json".into()),
    ])
    .await;
    assert_eq!(check.count(), 1, "one question for three owners");
    let (_, body) = question(0);
    assert_eq!(
        body,
        json!({
            "deployment": "hq", "event_id": "create_issue", "object_id": 80,
            "resource_url": "https://hq.example.com/api/v0/objects/80",
            "users": [31, 32, 33]
        })
    );
    assert_eq!(
        jobs_queued(&stack, Duration::from_secs(2)).await,
        [(80, 31), (80, 32)],
        "only the owners the product names"
    );
    let parked = platform
        .events_dead_letters
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);

    // A second batch: the product answers 500, so nobody gets a job yet; the question
    // waits on the events queue. An event naming its audience asks nothing.
    check.script(vec![Behaviour::Status(500)]);
    invoke(&[message(
        "b-1",
        example("hq", "create_issue", 81, json!("check")).to_string(),
    )])
    .await;
    invoke(&[message(
        "c-1",
        example("hq", "create_issue", 82, json!([33])).to_string(),
    )])
    .await;
    assert_eq!(check.count(), 2);
    assert_eq!(
        jobs_queued(&stack, Duration::from_secs(2)).await,
        [(82, 33)]
    );

    // Follow the events queue as Lambda would, until the question is asked again.
    let mut jobs = Vec::new();
    for round in 0..10 {
        let retries = platform
            .events
            .receiver
            .receive(10, Duration::from_secs(2))
            .await
            .unwrap();
        let messages: Vec<IncomingMessage> = retries
            .iter()
            .enumerate()
            .map(|(i, r)| message(&format!("r-{round}-{i}"), r.message.body.clone()))
            .collect();
        if !messages.is_empty() {
            invoke(&messages).await;
        }
        jobs.extend(jobs_queued(&stack, Duration::from_millis(500)).await);
        if check.count() == 3 {
            break;
        }
    }
    jobs.extend(jobs_queued(&stack, Duration::from_secs(1)).await);
    assert_eq!(jobs, [(81, 31), (81, 32)]);
    let (failed_id, failed) = question(1);
    let (again_id, again) = question(2);
    assert_eq!(
        (again_id, &again),
        (failed_id, &failed),
        "the same question"
    );
    assert_eq!(
        (again["object_id"].clone(), again["users"].clone()),
        (json!(81), json!([31, 32, 33]))
    );

    // The secret: one read, of exactly that secret, for every batch of the instance.
    let reads: Vec<_> = fanout
        .gate
        .calls()
        .into_iter()
        .filter(|c| c.action.starts_with("secretsmanager:"))
        .map(|c| (c.action, c.resource, c.allowed))
        .collect();
    assert_eq!(
        reads,
        [("secretsmanager:GetSecretValue".to_owned(), secret_arn, true)]
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
