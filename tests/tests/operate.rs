//! SPEC section 7 through the local runner, on both backends: update and its refusals,
//! pause and resume, secret rotation (both signatures, verified with the Standard
//! Webhooks library), resend, recover a window (and its refusals), and the `disable`
//! rule for failing subscriptions.

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_tests::client::{Answer, Client, claims, token};
use webhooks_tests::receiver::{Behaviour, Receiver, Recorded as Request};
use webhooks_tests::runner::{self, Kind};

const SUBS: &str = "/api/v0/webhooks/subscriptions";
const EVENTS: &str = "/api/v0/webhooks/events";
const WAIT: Duration = Duration::from_secs(30);

struct World {
    client: Client,
    owner: String,
    publisher: String,
}

impl World {
    async fn put(&self, path: &str, body: &Value) -> Answer {
        self.client
            .send(
                reqwest::Method::PUT,
                path,
                Some(&self.owner),
                &[],
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.client.post_json(path, &self.owner, body).await
    }

    async fn publish(&self, object_id: u64) {
        let event = json!({"event_id": "assign_task", "object_id": object_id, "resource_url": format!("https://hq.example.com/api/v0/tasks/{object_id}"), "visible_to": [41]});
        let answer = self.client.post_json(EVENTS, &self.publisher, &event).await;
        assert_eq!(answer.tree["response"]["accepted"], 1, "{:?}", answer.tree);
    }

    /// The subscription's log, once `done` says it holds what the test waits for.
    async fn log_until(&self, id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut entries = Vec::new();
        for _ in 0..120 {
            let log = self
                .client
                .get(&format!("{SUBS}/{id}/deliveries?_limit=100"), &self.owner)
                .await;
            entries = log.tree["response"]["deliveries"]
                .as_array()
                .unwrap()
                .clone();
            if done(&entries) {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the log of {id} never got there: {entries:?}");
    }
}

fn headers_of(request: &Request) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &request.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    headers
}

fn verifies(secret: &str, request: &Request) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&request.body, &headers_of(request))
        .is_ok()
}

async fn operate(kind: Kind) {
    // Retries 1 s apart, twice: a failing delivery gives up within seconds.
    let running = runner::start(
        kind,
        &[
            ("WEBHOOKS_RETRY_SCHEDULE", "1s,1s"),
            ("WEBHOOKS_ON_REPEATED_FAILURE", "disable"),
        ],
    )
    .await;
    let mut publisher = claims(1, "hq");
    publisher.scope = Some("webhooks:publish".into());
    let world = World {
        client: Client::new(running.base_url()),
        owner: token(&claims(41, "hq")),
        publisher: token(&publisher),
    };
    let receiver = Receiver::start().await;
    let created = world
        .post(
            SUBS,
            &json!({"trigger_url": receiver.url, "event_id": "assign_task", "content_type": "application/json", "secret": "s3cret"}),
        )
        .await;
    let id = created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("{SUBS}/{id}");
    // The owner listens to the platform's operational events at another receiver.
    let operator = Receiver::start().await;
    for event_id in ["webhook_subscription_removed", "webhook_delivery_failed"] {
        let listening = world
            .post(
                SUBS,
                &json!({"trigger_url": operator.url, "event_id": event_id, "content_type": "application/json"}),
            )
            .await;
        assert_eq!(listening.status(), "ok_created", "{:?}", listening.tree);
    }
    let before = world.client.get(&path, &world.owner).await.tree;

    // Refusals change nothing; another owner's id answers like an unknown one.
    for (body, sentence) in [
        (
            json!({}),
            "nothing to change: send trigger_url, content_type, active, headers, retry_schedule, auth or rate_limit",
        ),
        (json!({"active": "maybe"}), "active must be true or false"),
        (
            json!({"trigger_url": "http://10.0.0.1/x"}),
            "trigger_url must not point at a private address",
        ),
        (
            json!({"content_type": "text/plain"}),
            "content_type must be application/x-www-form-urlencoded or application/json",
        ),
    ] {
        let refused = world.put(&path, &body).await;
        assert_eq!(
            (refused.status(), refused.message()),
            ("invalid_request", sentence),
            "{body}"
        );
    }
    let foreign = world
        .client
        .send(
            reqwest::Method::PUT,
            &path,
            Some(&token(&claims(42, "hq"))),
            &[],
            Some(("application/json", br#"{"active":false}"#.to_vec())),
        )
        .await;
    let unknown = world
        .put(
            &format!("{SUBS}/0123456789abcdef01234567"),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(foreign.status(), "invalid_request");
    assert_eq!(
        foreign.message().replace(&id, "ID"),
        unknown.message().replace("0123456789abcdef01234567", "ID")
    );
    assert_eq!(world.client.get(&path, &world.owner).await.tree, before);

    // Paused: events meanwhile are not delivered. Resumed: the next one is.
    let paused = world.put(&path, &json!({"active": false})).await;
    assert_eq!(paused.tree["response"]["subscription"]["active"], false);
    world.publish(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        receiver.requests().is_empty(),
        "a paused subscription gets nothing"
    );
    let resumed = world.put(&path, &json!({"active": true})).await;
    assert_eq!(resumed.tree["response"]["subscription"]["active"], true);
    world.publish(2).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].body,
        br#"{"id":2,"resource_url":"https://hq.example.com/api/v0/tasks/2"}"#
    );
    let old_whsec = "whsec_czNjcmV0"; // "s3cret"
    assert!(verifies(old_whsec, &got[0]));

    // Rotation: a generated secret, shown once; both secrets sign for 24 hours.
    let rotated = world.post(&format!("{path}/secret"), &json!({})).await;
    let new_whsec = rotated.tree["response"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(new_whsec.starts_with("whsec_"), "{:?}", rotated.tree);
    let shown = world.client.get(&path, &world.owner).await;
    assert!(
        !shown.tree.to_string().contains(&new_whsec[6..]),
        "never shown again"
    );
    world.publish(3).await;
    let got = receiver.wait_for(2, WAIT).await;
    let signed = &got[1];
    let signatures = signed.header("webhook-signature").unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert!(verifies(&new_whsec, signed), "the new secret verifies");
    assert!(
        verifies(old_whsec, signed),
        "the previous secret still verifies"
    );
    let given = world
        .post(&format!("{path}/secret"), &json!({"secret": "another"}))
        .await;
    assert_eq!(
        given.tree["response"]["secret"],
        Value::Null,
        "a given secret is not echoed"
    );

    // Resend: the same webhook-id again.
    let first_id = got[0].header("webhook-id").unwrap().to_owned();
    let resent = world
        .post(&format!("{path}/deliveries/{first_id}/resend"), &json!({}))
        .await;
    assert_eq!(resent.status(), "ok", "{:?}", resent.tree);
    let got = receiver.wait_for(3, WAIT).await;
    assert_eq!(got[2].header("webhook-id"), Some(first_id.as_str()));
    let missing = world
        .post(&format!("{path}/deliveries/msg_nope/resend"), &json!({}))
        .await;
    assert_eq!(
        (missing.status(), missing.message()),
        (
            "invalid_request",
            "delivery `msg_nope` is not in this subscription's delivery log"
        )
    );

    // Recover: three deliveries give up while the receiver fails; once it is back, the
    // window sends each of them once more, with the same ids.
    let since = webhooks_core::model::event::format_millis(
        webhooks_tests::delivery_kit::now_millis() - 1000,
    );
    receiver.always(Behaviour::Status(500));
    for object_id in [10, 11, 12] {
        world.publish(object_id).await;
    }
    let gave_up_lines = |log: &[Value]| log.iter().filter(|e| e["outcome"] == "gave_up").count();
    let log = world.log_until(&id, |log| gave_up_lines(log) == 3).await;
    let gave_up: Vec<String> = log
        .iter()
        .filter(|e| e["outcome"] == "gave_up")
        .map(|e| e["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(gave_up.len(), 3, "{log:?}");
    receiver.always(Behaviour::ok());
    let before_recover = receiver.requests().len();
    for (body, sentence) in [
        (
            json!({}),
            "since is required: the start of the window, an RFC 3339 time",
        ),
        (
            json!({"since": "yesterday"}),
            "since must be an RFC 3339 time, such as 2026-11-28T09:00:00Z",
        ),
        (
            json!({"since": "2999-01-01T00:00:00Z"}),
            "since must not be in the future",
        ),
        (
            json!({"since": since, "until": "2001-01-01T00:00:00Z"}),
            "until must not be before since",
        ),
        (
            json!({"since": "2001-01-01T00:00:00Z"}),
            "since is before the delivery log's reach (30 days); nothing older is kept",
        ),
    ] {
        let refused = world.post(&format!("{path}/recover"), &body).await;
        assert_eq!(
            (refused.status(), refused.message()),
            ("invalid_request", sentence)
        );
    }
    let recovered = world
        .post(&format!("{path}/recover"), &json!({ "since": since }))
        .await;
    assert_eq!(
        recovered.tree["response"]["queued"], 3,
        "{:?}",
        recovered.tree
    );
    let got = receiver.wait_for(before_recover + 3, WAIT).await;
    let mut again: Vec<String> = got[before_recover..]
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    again.sort();
    let mut expected = gave_up.clone();
    expected.sort();
    assert_eq!(again, expected, "each gave-up delivery once, same ids");
    // Each give-up was told to the owner: the subscription is the object.
    let told = operator.wait_for(3, WAIT).await;
    for request in &told {
        assert_eq!(
            request.header("x-accelo-event"),
            Some("webhook_delivery_failed")
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["id"], json!(id));
        assert!(
            body["resource_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/api/v0/webhooks/subscriptions/{id}"))
        );
    }

    // The disable rule: 410 makes the subscription inactive, with the reason; resuming
    // clears it.
    receiver.always(Behaviour::Status(410));
    world.publish(20).await;
    let mut state = Value::Null;
    for _ in 0..120 {
        state = world.client.get(&path, &world.owner).await.tree;
        if state["response"]["subscription"]["active"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        state["response"]["subscription"]["active"], false,
        "{state}"
    );
    assert_eq!(
        state["response"]["subscription"]["disabled_reason"],
        "the receiver answered 410 Gone; the subscription was disabled"
    );
    let told = operator.wait_for(4, WAIT).await;
    assert_eq!(
        told[3].header("x-accelo-event"),
        Some("webhook_subscription_removed")
    );
    let resumed = world.put(&path, &json!({"active": true})).await;
    assert_eq!(resumed.tree["response"]["subscription"]["active"], true);
    assert_eq!(
        resumed.tree["response"]["subscription"].get("disabled_reason"),
        None
    );
    running.stop().await;
}

#[tokio::test]
async fn operating_subscriptions_on_the_memory_backend() {
    operate(Kind::Memory).await;
}

#[tokio::test]
async fn operating_subscriptions_on_dynamodb_and_sqs() {
    operate(Kind::Aws).await;
}

/// A large window (5,000 deliveries that gave up; with the 5,000 lines their recovery
/// writes, the most the in-memory log keeps for one subscription): the API counts it a
/// page at a time, and the delivery stage sends each delivery once, a page per task,
/// with the same ids.
#[tokio::test]
async fn a_large_window_is_recovered_a_page_at_a_time_once_each() {
    use webhooks_core::model::subscription::NewSubscription;
    use webhooks_core::ports::delivery_log::{Attempt, AttemptOutcome};
    use webhooks_core::stages::batch::BatchHandler;
    use webhooks_core::stages::service::Window;

    // The breaker off: it would hold most of a new receiver's jobs back on the queue.
    let platform = webhooks_local::compose(
        &webhooks_local::Backend::Memory,
        runner::settings(&[("WEBHOOKS_BREAKER_COOLDOWN_SECS", "0")]),
    )
    .await
    .unwrap();
    let receiver = Receiver::start().await;
    let caller = webhooks_core::model::identity::Caller {
        user_id: 51,
        deployment: webhooks_core::model::identity::Deployment::parse("hq").unwrap(),
        name: "Fifty-one".into(),
        email: "51@hq.example".into(),
        pro: false,
        scopes: vec![],
    };
    let new = NewSubscription::parse(
        webhooks_core::model::subscription::RawSubscription {
            trigger_url: Some(&receiver.url),
            event_id: Some("assign_task"),
            ..Default::default()
        },
        &platform.app.settings.catalogue,
        &platform.app.settings.url_policy,
    )
    .unwrap();
    let service = &platform.app.service;
    let subscription = service.create(&caller, new).await.unwrap();
    let now = webhooks_tests::delivery_kit::now_millis();
    const N: usize = 5_000;
    let lines: Vec<Attempt> = (0..N)
        .map(|n| Attempt {
            subscription: subscription.key(),
            delivery_id: format!("msg_{n:06}"),
            event_id: "assign_task".into(),
            object_id: n as u64 + 1,
            attempt: 8,
            outcome: AttemptOutcome::GaveUp,
            http_status: Some(500),
            duration_ms: 3,
            error_kind: Some("http_500".into()),
            reason: None,
            response_body: String::new(),
            resource_url: None,
            occurred_at: None,
            subject: None,
            next_attempt_at: None,
            at: now - 50_000 + n as i64,
            expires_at: now + 86_400_000,
        })
        .collect();
    platform.deliverer.log.record_all(lines).await.unwrap();

    let queued = service
        .recover(
            &caller.owner(),
            &subscription.id,
            Window {
                since: now - 60_000,
                until: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(queued, N);

    // The delivery stage, fed as Lambda would: tasks turn into jobs and further tasks.
    let queue = platform.deliveries.receiver.clone();
    let mut tasks = 0;
    loop {
        let batch = queue.receive(10, Duration::from_millis(500)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        tasks += batch
            .iter()
            .filter(|r| r.message.body.starts_with("{\"recover\""))
            .count();
        let messages: Vec<_> = batch.iter().map(|r| r.message.clone()).collect();
        assert!(platform.deliverer.handle_batch(&messages).await.is_empty());
        for r in &batch {
            queue.ack(&r.receipt).await.unwrap();
        }
    }
    assert_eq!(tasks, N / 1000, "a task per page of 1,000 lines");
    let got = receiver.wait_for(N, WAIT).await;
    let mut ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N, "each delivery once");
}
