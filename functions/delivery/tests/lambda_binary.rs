//! The `delivery` binary as Lambda runs it: SQS events of delivery jobs through the
//! Runtime API, on DynamoDB and SQS in moto, POSTing signed webhooks to real receivers,
//! configured only by the environment `template.yaml` gives the delivery function (its
//! one secret, the sealing key, read from Secrets Manager) and with every AWS call checked
//! against that function's own role. The test drives each path that touches AWS: a
//! delivery, a retry, a hop past 15 minutes, 410 Gone, a timeout and its reset, the
//! timeout limit, an unreadable job, and a rate-limited subscription's slots.

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::SubscriptionId;
use webhooks_core::model::job::DeliveryJob;
use webhooks_core::model::subscription::SubscriptionRef;
use webhooks_core::ports::queue::IncomingMessage;
use webhooks_tests::client::{Client, claims, token};
use webhooks_tests::deployed::{Deployed, Function};
use webhooks_tests::lambda_events::{message, sqs_event};
use webhooks_tests::receiver::{Behaviour, Receiver};

const DELIVERY: Function = Function {
    logical_id: "DeliveryFunction",
    binary: env!("CARGO_BIN_EXE_delivery"),
};

fn job(id: &SubscriptionId, user: u64, delivery_id: &str) -> DeliveryJob {
    DeliveryJob {
        delivery_id: delivery_id.into(),
        subscription: SubscriptionRef {
            id: id.clone(),
            owner: Owner {
                deployment: Deployment::parse("hq").unwrap(),
                user_id: user,
            },
        },
        event_id: "create_contact".into(),
        object_id: 12,
        resource_url: Some("https://hq.example.com/api/v0/contacts/12".into()),
        occurred_at: "2026-11-27T20:00:00Z".into(),
        attempt: 1,
        due_at: None,
        subject: None,
    }
}

async fn subscribe(client: &Client, user: u64, url: &str) -> SubscriptionId {
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &token(&claims(user, "hq")),
            &json!({"trigger_url": url, "event_id": "create_contact", "secret": "shh"}),
        )
        .await;
    SubscriptionId::parse(
        created.tree["response"]["subscription"]["subscription_id"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// Creates a subscription of `user` from `body` through the API; its id.
async fn create(client: &Client, user: u64, body: Value) -> SubscriptionId {
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &token(&claims(user, "hq")),
            &body,
        )
        .await;
    SubscriptionId::parse(
        created.tree["response"]["subscription"]["subscription_id"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

async fn outcomes(client: &Client, user: u64, id: &SubscriptionId) -> Vec<String> {
    let log = client
        .get(
            &format!("/api/v0/webhooks/subscriptions/{id}/deliveries"),
            &token(&claims(user, "hq")),
        )
        .await;
    log.tree["response"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// The delivery function reaching receivers on loopback, with its breaker off: these
/// tests drive failures and timeouts in a row, which it would hold back.
async fn without_breaker(stack: &Deployed) -> webhooks_tests::deployed::Running {
    stack
        .spawn(
            DELIVERY,
            &[
                ("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8"),
                ("WEBHOOKS_BREAKER_COOLDOWN_SECS", "0"),
            ],
        )
        .await
}

#[tokio::test]
async fn the_delivery_binary_posts_signed_webhooks_within_its_role() {
    let stack = Deployed::start(
        &[
            ("ConsecutiveTimeoutLimit", "2"),
            ("DeliveryTimeoutSeconds", "1"),
        ],
        &[],
    )
    .await;
    let (platform, client) = (&stack.moto.platform, &stack.moto.client);
    let receiver = Receiver::start().await;
    let id = subscribe(client, 6, &receiver.url).await;

    let mut delivery = without_breaker(&stack).await;
    let mut invoke = async |messages: &[IncomingMessage]| -> Value {
        delivery
            .runtime
            .invoke(serde_json::to_value(sqs_event(messages)).unwrap())
            .await
    };

    // Delivered, signed with the secret the sealing key from Secrets Manager opens; an
    // unreadable neighbour is parked on the dead-letter queue.
    let first = job(&id, 6, "msg_binarytest");
    let answer = invoke(&[
        message("j-1", first.to_message()),
        message("j-bad", "not a job".into()),
    ])
    .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].body,
        b"id=12&resource_url=https%3A%2F%2Fhq.example.com%2Fapi%2Fv0%2Fcontacts%2F12"
    );
    assert_eq!(got[0].header("webhook-id"), Some("msg_binarytest"));
    let expected = webhooks_core::security::crypto::hmac_sha256(b"shh", &got[0].body);
    assert_eq!(
        got[0].header("x-hub-signature-256"),
        Some(format!("sha256={}", hex::encode(expected)).as_str())
    );
    let parked = platform
        .deliveries_dead_letters
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);

    // A 500 schedules a retry on the deliveries queue.
    receiver.always(Behaviour::Status(500));
    let answer = invoke(&[message("j-2", first.to_message())]).await;
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

    // A job due in an hour takes another hop on the queue, without a request.
    let later = DeliveryJob {
        due_at: Some(webhooks_tests::client::now() * 1000 + 3_600_000),
        ..job(&id, 6, "msg_later")
    };
    let before = receiver.requests().len();
    let answer = invoke(&[message("j-3", later.to_message())]).await;
    assert_eq!(answer["batchItemFailures"], json!([]));
    assert_eq!(
        receiver.requests().len(),
        before,
        "nothing is sent before it is due"
    );

    // A timeout is counted; a success resets the count.
    receiver.script(vec![Behaviour::Hang, Behaviour::Status(200)]);
    invoke(&[message("j-4", job(&id, 6, "msg_slow").to_message())]).await;
    invoke(&[message("j-5", job(&id, 6, "msg_fast").to_message())]).await;
    assert_eq!(
        outcomes(client, 6, &id).await[..2],
        ["delivered".to_owned(), "retrying".to_owned()]
    );

    // Two timeouts in a row reach the limit: the subscription is deleted.
    receiver.always(Behaviour::Hang);
    invoke(&[message("j-6", job(&id, 6, "msg_t1").to_message())]).await;
    invoke(&[message("j-7", job(&id, 6, "msg_t2").to_message())]).await;
    assert_eq!(outcomes(client, 6, &id).await[0], "unsubscribed");

    // 410 Gone deletes another subscription at once.
    let gone = Receiver::start().await;
    gone.always(Behaviour::Status(410));
    let other = subscribe(client, 7, &gone.url).await;
    invoke(&[message("j-8", job(&other, 7, "msg_gone").to_message())]).await;
    assert_eq!(outcomes(client, 7, &other).await, ["unsubscribed"]);
    let after = client
        .get(
            &format!("/api/v0/webhooks/subscriptions/{other}"),
            &token(&claims(7, "hq")),
        )
        .await;
    assert_eq!(after.tree["meta"]["status"], "invalid_request");

    // Subscriptions without a rate limit take no slot: no request for them.
    let updates = |gate: &webhooks_tests::iam_gate::IamGate| {
        gate.calls()
            .iter()
            .filter(|c| c.action == "dynamodb:UpdateItem")
            .count()
    };
    assert_eq!(updates(&delivery.gate), 0, "no limit, no slot taken");
    // A subscription limited to 2 a second: one UpdateItem takes the batch's block of 3;
    // the jobs past the limit (or whose second passed) go back on the queue untried, as
    // new delayed messages, none a failed message.
    let limited_receiver = Receiver::start().await;
    let limited = create(
        client,
        8,
        json!({"trigger_url": limited_receiver.url, "event_id": "create_contact", "rate_limit": 2}),
    )
    .await;
    let burst: Vec<IncomingMessage> = (1..=3)
        .map(|n| {
            message(
                &format!("r-{n}"),
                job(&limited, 8, &format!("msg_r{n}")).to_message(),
            )
        })
        .collect();
    let answer = delivery
        .runtime
        .invoke(serde_json::to_value(sqs_event(&burst)).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(updates(&delivery.gate), 1, "one block for the batch");
    let put_back = platform
        .deliveries
        .receiver
        .receive(10, Duration::from_secs(4))
        .await
        .unwrap();
    let sent = limited_receiver.requests().len();
    assert!(sent <= 2, "at most 2 started in the second");
    assert_eq!(sent + put_back.len(), 3, "each job sent or put back");
    for m in &put_back {
        assert_eq!(
            DeliveryJob::from_message(&m.message.body).unwrap().attempt,
            1,
            "put back untried"
        );
    }

    delivery.assert_role_is_exact();
}

/// A subscription's own headers and retry schedule through the binary (SPEC section 9):
/// every attempt carries the headers (its `User-Agent` instead of the platform's), and a
/// schedule of `[1, 3]` gives three attempts about 1 s and 3 s apart (the installation's
/// jitter, rounded up to whole seconds), then `gave_up`; within the delivery role.
#[tokio::test]
async fn the_delivery_binary_sends_own_headers_and_follows_an_own_schedule() {
    let stack = Deployed::start(&[], &[]).await;
    let (platform, client) = (&stack.moto.platform, &stack.moto.client);
    let receiver = Receiver::start().await;
    receiver.always(Behaviour::Status(500));
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &token(&claims(9, "hq")),
            &json!({
                "trigger_url": receiver.url, "event_id": "create_contact",
                "headers": {"X-Api-Key": "key-d-1", "User-Agent": "gateway/2"},
                "retry_schedule": [1, 3]
            }),
        )
        .await;
    let id = SubscriptionId::parse(
        created.tree["response"]["subscription"]["subscription_id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut delivery = without_breaker(&stack).await;
    let mut next = message("own-1", job(&id, 9, "msg_own").to_message());
    let mut arrivals = Vec::new();
    for (attempt, delays) in [(1, 1000..=2000), (2, 3000..=4000)] {
        let answer = delivery
            .runtime
            .invoke(serde_json::to_value(sqs_event(&[next])).unwrap())
            .await;
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
        receiver.wait_for(attempt, Duration::from_secs(10)).await;
        arrivals.push(webhooks_tests::delivery_kit::now_millis());
        let retry = platform
            .deliveries
            .receiver
            .receive(10, Duration::from_secs(8))
            .await
            .unwrap();
        assert_eq!(retry.len(), 1, "attempt {attempt} schedules one retry");
        platform
            .deliveries
            .receiver
            .ack(&retry[0].receipt)
            .await
            .unwrap();
        let queued = DeliveryJob::from_message(&retry[0].message.body).unwrap();
        assert_eq!(queued.attempt as usize, attempt + 1);
        let due = queued.due_at.unwrap();
        let wait = due - arrivals.last().unwrap();
        assert!(
            (delays.start() - 500..=*delays.end()).contains(&wait),
            "retry {attempt} due {wait} ms after its attempt"
        );
        // Handed over when due, as the queue's delay would.
        let until_due = due - webhooks_tests::delivery_kit::now_millis();
        tokio::time::sleep(Duration::from_millis(until_due.max(0) as u64)).await;
        next = message(
            &format!("own-{}", attempt + 1),
            retry[0].message.body.clone(),
        );
    }
    let answer = delivery
        .runtime
        .invoke(serde_json::to_value(sqs_event(&[next])).unwrap())
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let got = receiver.wait_for(3, Duration::from_secs(10)).await;
    arrivals.push(webhooks_tests::delivery_kit::now_millis());
    // Each retry was due its own delay after its attempt (checked above, from the job the
    // binary queued); at the receiver, no attempt came before its delay. No upper bound
    // here: on a busy machine the binary's own invocations add seconds.
    let gaps: Vec<i64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= 900 && gaps[1] >= 2900,
        "not before 1 s and 3 s: {gaps:?}"
    );
    for r in &got {
        assert_eq!(r.header("x-api-key"), Some("key-d-1"));
        assert_eq!(r.all("user-agent"), ["gateway/2"]);
    }
    assert_eq!(
        outcomes(client, 9, &id).await,
        ["gave_up", "retrying", "retrying"]
    );
    let more = platform
        .deliveries
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(more.is_empty(), "nothing after the last delay's attempt");
    delivery.gate.assert_nothing_refused();
}

/// With `OnRepeatedFailure = disable`, 410 writes the subscription back inactive (a
/// conditional `PutItem` the role then allows) and the operator's SNS topic hears of it;
/// a recovery task and a job of the now-inactive subscription are handled within the
/// same role. In a VPC (fixed source addresses): the role then carries Lambda's VPC
/// access policy, whose network-interface grants Lambda uses, not the code, and its own
/// grants stay exact.
/// `auth` through the binary (SPEC section 9): one token request for a batch of jobs and
/// for the next (warm) invocation, sent as a Bearer on each; a 401 from the receiver
/// discards it and the next delivery fetches another; a failed token request is a retried
/// attempt with its `token_` kind and the answer in no log. Within the delivery role.
#[tokio::test]
async fn the_delivery_binary_shares_one_token_across_batches() {
    let stack = Deployed::start(&[], &[]).await;
    let (platform, client) = (&stack.moto.platform, &stack.moto.client);
    let (idp, receiver) = (Receiver::start().await, Receiver::start().await);
    let granted = |t: &str| Behaviour::Respond {
        status: 200,
        headers: vec![],
        body: format!(r#"{{"access_token":"{t}","token_type":"Bearer","expires_in":3600}}"#),
    };
    idp.always(granted("d-tok-1"));
    let user = token(&claims(11, "hq"));
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &user,
            &json!({
                "trigger_url": receiver.url, "event_id": "create_contact",
                "auth": {"type": "oauth2_client_credentials", "token_url": idp.url,
                         "client_id": "d", "client_secret": "d: s%1"}
            }),
        )
        .await;
    let id = SubscriptionId::parse(
        created.tree["response"]["subscription"]["subscription_id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut delivery = without_breaker(&stack).await;
    let mut invoke = async |ids: &[&str]| {
        let messages: Vec<IncomingMessage> = ids
            .iter()
            .map(|d| message(d, job(&id, 11, d).to_message()))
            .collect();
        let answer = delivery
            .runtime
            .invoke(serde_json::to_value(sqs_event(&messages)).unwrap())
            .await;
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    };
    invoke(&["msg_a1", "msg_a2", "msg_a3"]).await;
    invoke(&["msg_a4", "msg_a5"]).await;
    let got = receiver.wait_for(5, Duration::from_secs(10)).await;
    assert!(
        got.iter()
            .all(|r| r.header("authorization") == Some("Bearer d-tok-1"))
    );
    assert_eq!(
        idp.count(),
        1,
        "one token for two batches of a warm instance"
    );

    // A 401 discards it; the next delivery fetches another.
    receiver.script(vec![Behaviour::Status(401)]);
    idp.always(granted("d-tok-2"));
    invoke(&["msg_b1"]).await;
    assert_eq!(idp.count(), 1);
    invoke(&["msg_b2"]).await;
    assert_eq!(idp.count(), 2);
    assert_eq!(
        receiver.wait_for(7, Duration::from_secs(10)).await[6].header("authorization"),
        Some("Bearer d-tok-2")
    );

    // A failed token request (after another 401): a retried attempt, its kind logged.
    receiver.script(vec![Behaviour::Status(401)]);
    invoke(&["msg_c1"]).await;
    idp.always(Behaviour::Respond {
        status: 500,
        headers: vec![],
        body: "IDP-ANSWER".into(),
    });
    invoke(&["msg_c2"]).await;
    assert_eq!(receiver.count(), 8, "nothing sent without a token");
    let log = client
        .get(
            &format!("/api/v0/webhooks/subscriptions/{id}/deliveries"),
            &user,
        )
        .await;
    let newest = &log.tree["response"]["deliveries"][0];
    assert_eq!(
        (
            &newest["delivery_id"],
            &newest["outcome"],
            &newest["error_kind"]
        ),
        (
            &json!("msg_c2"),
            &json!("retrying"),
            &json!("token_http_500")
        ),
        "{newest}"
    );
    assert!(!log.tree.to_string().contains("IDP-ANSWER"));
    // The retries queued (after the 401s and the token failure) went out.
    let retries = platform
        .deliveries
        .receiver
        .receive(10, Duration::from_secs(8))
        .await
        .unwrap();
    assert!(!retries.is_empty());
    delivery.gate.assert_nothing_refused();
}

#[tokio::test]
async fn the_delivery_binary_disables_and_recovers_within_its_role() {
    let (topic, inbox) =
        webhooks_tests::moto::sns_topic_into_queue(&webhooks_tests::unique("ops")).await;
    let stack = Deployed::start(
        &[
            ("OnRepeatedFailure", "disable"),
            ("OperatorTopicArn", topic.as_str()),
            ("SubnetIds", "subnet-0123456789abcdef0"),
            ("SecurityGroupIds", "sg-0123456789abcdef0"),
        ],
        &[],
    )
    .await;
    let (platform, client) = (&stack.moto.platform, &stack.moto.client);
    let gone = Receiver::start().await;
    gone.always(Behaviour::Status(410));
    // Rate limited too: its slot is taken within the same role.
    let id = create(
        client,
        8,
        json!({"trigger_url": gone.url, "event_id": "create_contact", "rate_limit": 100}),
    )
    .await;
    let mut delivery = stack
        .spawn(DELIVERY, &[("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")])
        .await;
    let mut invoke = async |messages: &[IncomingMessage]| -> Value {
        delivery
            .runtime
            .invoke(serde_json::to_value(sqs_event(messages)).unwrap())
            .await
    };
    invoke(&[
        message("d-1", job(&id, 8, "msg_disabled").to_message()),
        message("d-0", "not a job".into()),
    ])
    .await;
    let owner = token(&claims(8, "hq"));
    let state = client
        .get(&format!("/api/v0/webhooks/subscriptions/{id}"), &owner)
        .await;
    assert_eq!(
        (
            &state.tree["response"]["subscription"]["active"],
            &state.tree["response"]["subscription"]["disabled_reason"]
        ),
        (
            &json!(false),
            &json!("the receiver answered 410 Gone; the subscription was disabled")
        ),
        "{:?}",
        state.tree
    );
    // The operator's topic heard of it.
    use webhooks_core::ports::queue::QueueReceiver;
    let heard = inbox
        .receive(10, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(heard.len(), 1);
    let notice: Value = serde_json::from_str(&heard[0].message.body).unwrap();
    assert_eq!(
        (
            &notice["event_id"],
            &notice["subscription_id"],
            &notice["delivery_id"]
        ),
        (
            &json!("webhook_subscription_removed"),
            &json!(id.to_string()),
            &json!("msg_disabled")
        )
    );
    // Inactive: the next job is logged, not sent.
    invoke(&[message("d-2", job(&id, 8, "msg_while_off").to_message())]).await;
    assert_eq!(gone.requests().len(), 1);
    assert_eq!(outcomes(client, 8, &id).await, ["failed", "unsubscribed"]);
    // A recovery of the last minute, as the API queues it: it sends both again.
    let task = webhooks_core::stages::recovery::RecoverTask {
        subscription: job(&id, 8, "x").subscription,
        since: webhooks_tests::delivery_kit::now_millis() - 60_000,
        until: webhooks_tests::delivery_kit::now_millis(),
        after: None,
    };
    let answer = invoke(&[message("d-3", task.to_message())]).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let requeued = platform
        .deliveries
        .receiver
        .receive(10, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let mut ids: Vec<String> = requeued
        .iter()
        .map(|r| {
            DeliveryJob::from_message(&r.message.body)
                .unwrap()
                .delivery_id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["msg_disabled", "msg_while_off"]);
    delivery.assert_role_is_exact();
}
