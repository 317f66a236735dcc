//! The product's access check (SPEC section 5) through the local runner, on both
//! backends: a real HTTP server on 127.0.0.1 stands in for the product's endpoint and
//! answers as each test scripts it; real receivers record what is delivered.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use webhooks_tests::client::{Client, claims, token};
use webhooks_tests::receiver::{Behaviour, Receiver, Recorded};
use webhooks_tests::runner::{self, Kind};

const SUBS: &str = "/api/v0/webhooks/subscriptions";
const EVENTS: &str = "/api/v0/webhooks/events";

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    )
}

fn answer(body: Value) -> Behaviour {
    Behaviour::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string(),
    }
}

struct Setup {
    _running: webhooks_local::Running,
    client: Client,
    check: Receiver,
    publisher: String,
}

async fn setup(kind: Kind) -> Setup {
    let check = Receiver::start().await;
    let secret = secret();
    let running = runner::start(
        kind,
        &[
            ("WEBHOOKS_ACCESS_CHECK_URL", &check.url),
            ("WEBHOOKS_ACCESS_CHECK_SECRET", &secret),
        ],
    )
    .await;
    let client = Client::new(running.base_url());
    let mut publisher = claims(1, "hq");
    publisher.scope = Some("webhooks:publish".into());
    Setup {
        _running: running,
        client,
        check,
        publisher: token(&publisher),
    }
}

/// A subscription of `user` to `assign_task` at a receiver of its own; its id.
async fn subscribe(client: &Client, user: u64, receiver: &Receiver) -> String {
    let created = client
        .post_json(
            SUBS,
            &token(&claims(user, "hq")),
            &json!({"trigger_url": receiver.url, "event_id": "assign_task", "content_type": "application/json"}),
        )
        .await;
    assert_eq!(created.status(), "ok_created", "{:?}", created.tree);
    created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn publish(s: &Setup, object_id: u64) {
    let event = json!({"event_id": "assign_task", "object_id": object_id,
        "resource_url": format!("https://hq.example.com/api/v0/tasks/{object_id}"), "visible_to": "check"});
    let published = s.client.post_json(EVENTS, &s.publisher, &event).await;
    assert_eq!(
        published.tree["response"]["events"][0]["status"], "accepted",
        "{:?}",
        published.tree
    );
}

/// The question, verified with the Standard Webhooks library under the secret.
fn verified(question: &Recorded) -> Value {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &question.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    standardwebhooks::Webhook::new(&secret())
        .unwrap()
        .verify(&question.body, &headers)
        .expect("the question is signed under the installation secret");
    serde_json::from_slice(&question.body).unwrap()
}

async fn only_the_owners_named_receive(kind: Kind) {
    let s = setup(kind).await;
    s.check
        .always(answer(json!({"visible_to": ["31", "32", "99"]})));
    let receivers = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    for (user, receiver) in [31, 32, 33].into_iter().zip(&receivers) {
        subscribe(&s.client, user, receiver).await;
    }
    publish(&s, 123).await;
    receivers[0].wait_for(1, Duration::from_secs(30)).await;
    receivers[1].wait_for(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receivers[2].count(), 0, "33 was not named");
    assert_eq!((receivers[0].count(), receivers[1].count()), (1, 1));

    let questions = s.check.requests();
    assert_eq!(questions.len(), 1);
    assert_eq!(
        verified(&questions[0]),
        json!({"deployment": "hq", "event_id": "assign_task", "object_id": 123,
               "resource_url": "https://hq.example.com/api/v0/tasks/123", "users": [31, 32, 33]})
    );
}

#[tokio::test]
async fn only_the_owners_named_receive_in_memory() {
    only_the_owners_named_receive(Kind::Memory).await;
}

#[tokio::test]
async fn only_the_owners_named_receive_on_dynamodb() {
    only_the_owners_named_receive(Kind::Aws).await;
}

async fn a_failed_question_is_asked_again(kind: Kind) {
    let s = setup(kind).await;
    let receiver = Receiver::start().await;
    subscribe(&s.client, 31, &receiver).await;
    for (object_id, failure) in [
        (1, Behaviour::Status(500)),
        (2, answer(json!({"users": [31]}))),
    ] {
        let asked_before = s.check.count();
        let delivered_before = receiver.count();
        s.check
            .script(vec![failure, answer(json!({"visible_to": [31]}))]);
        let started = Instant::now();
        publish(&s, object_id).await;
        let questions = s
            .check
            .wait_for(asked_before + 2, Duration::from_secs(30))
            .await;
        let again = started.elapsed();
        assert!(
            again >= Duration::from_secs(4),
            "asked again after {again:?}"
        );
        // The same question, with the same id.
        let (first, second) = (&questions[asked_before], &questions[asked_before + 1]);
        assert_eq!(first.body, second.body);
        assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
        let got = receiver
            .wait_for(delivered_before + 1, Duration::from_secs(30))
            .await;
        assert_eq!(
            serde_json::from_slice::<Value>(&got[delivered_before].body).unwrap()["id"],
            object_id
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(receiver.count(), delivered_before + 1, "delivered once");
    }
}

#[tokio::test]
async fn a_failed_question_is_asked_again_in_memory() {
    a_failed_question_is_asked_again(Kind::Memory).await;
}

#[tokio::test]
async fn a_failed_question_is_asked_again_on_dynamodb() {
    a_failed_question_is_asked_again(Kind::Aws).await;
}

async fn trigger_reaches_the_other_owners_named(kind: Kind) {
    let s = setup(kind).await;
    s.check.always(answer(json!({"visible_to": [31, 32]})));
    let receivers = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    let triggering = subscribe(&s.client, 31, &receivers[0]).await;
    subscribe(&s.client, 31, &receivers[1]).await;
    subscribe(&s.client, 32, &receivers[2]).await;
    subscribe(&s.client, 33, &receivers[3]).await;
    let triggered = s
        .client
        .post_form(
            &format!("{SUBS}/{triggering}/trigger"),
            &token(&claims(31, "hq")),
            "object_id=9",
        )
        .await;
    assert_eq!(triggered.status(), "ok", "{:?}", triggered.tree);
    receivers[1].wait_for(1, Duration::from_secs(30)).await;
    receivers[2].wait_for(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receivers[0].count(), 0, "not the triggering subscription");
    assert_eq!(receivers[3].count(), 0, "33 was not named");
    let question = verified(&s.check.requests()[0]);
    assert_eq!(question["users"], json!([31, 32, 33]));
    assert_eq!(question["object_id"], 9);
}

#[tokio::test]
async fn trigger_reaches_the_other_owners_named_in_memory() {
    trigger_reaches_the_other_owners_named(Kind::Memory).await;
}

#[tokio::test]
async fn trigger_reaches_the_other_owners_named_on_dynamodb() {
    trigger_reaches_the_other_owners_named(Kind::Aws).await;
}

async fn dispatch_asks_about_the_caller(kind: Kind) {
    let s = setup(kind).await;
    let receiver = Receiver::start().await;
    let id = subscribe(&s.client, 31, &receiver).await;
    let owner = token(&claims(31, "hq"));
    let path = format!("{SUBS}/{id}/dispatch");

    s.check.always(answer(json!({"visible_to": [32]})));
    let refused = s.client.post_form(&path, &owner, "object_id=5").await;
    assert_eq!(refused.status(), "invalid_permission", "{:?}", refused.tree);
    let question = verified(&s.check.requests()[0]);
    assert_eq!(question["users"], json!([31]));

    s.check.always(Behaviour::Status(500));
    let failed = s.client.post_form(&path, &owner, "object_id=5").await;
    assert_eq!(failed.status(), "server_error", "{:?}", failed.tree);
    assert!(
        failed.message().contains("access check did not answer"),
        "{}",
        failed.message()
    );
    assert_eq!(receiver.count(), 0, "nothing sent");

    s.check.always(answer(json!({"visible_to": [31]})));
    let sent = s.client.post_form(&path, &owner, "object_id=5").await;
    assert_eq!(sent.status(), "ok", "{:?}", sent.tree);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn dispatch_asks_about_the_caller_in_memory() {
    dispatch_asks_about_the_caller(Kind::Memory).await;
}

#[tokio::test]
async fn dispatch_asks_about_the_caller_on_dynamodb() {
    dispatch_asks_about_the_caller(Kind::Aws).await;
}

async fn many_owners_make_several_questions(kind: Kind) {
    let s = setup(kind).await;
    let receiver = Receiver::start().await;
    for user in 1..=120 {
        subscribe(&s.client, user, &receiver).await;
    }
    s.check.always(answer(json!({"visible_to": [7, 107]})));
    publish(&s, 77).await;
    receiver.wait_for(2, Duration::from_secs(30)).await;
    let mut asked: Vec<Vec<u64>> = s
        .check
        .requests()
        .iter()
        .map(|q| {
            verified(q)["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u.as_u64().unwrap())
                .collect()
        })
        .collect();
    asked.sort();
    assert_eq!(asked.len(), 2, "120 owners, at most 100 a question");
    assert_eq!(asked[0], (1..=100).collect::<Vec<_>>());
    assert_eq!(asked[1], (101..=120).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn many_owners_make_several_questions_in_memory() {
    many_owners_make_several_questions(Kind::Memory).await;
}

#[tokio::test]
async fn many_owners_make_several_questions_on_dynamodb() {
    many_owners_make_several_questions(Kind::Aws).await;
}

async fn check_without_an_access_check_is_refused(kind: Kind) {
    let running = runner::start(kind, &[]).await;
    let client = Client::new(running.base_url());
    let mut publisher = claims(1, "hq");
    publisher.scope = Some("webhooks:publish".into());
    let event = json!({"event_id": "assign_task", "object_id": 1,
        "resource_url": "https://hq.example.com/api/v0/tasks/1", "visible_to": "check"});
    let answered = client.post_json(EVENTS, &token(&publisher), &event).await;
    let result = &answered.tree["response"]["events"][0];
    assert_eq!(result["status"], "invalid", "{:?}", answered.tree);
    assert!(
        result["message"]
            .as_str()
            .unwrap_or_default()
            .contains("WEBHOOKS_ACCESS_CHECK_URL"),
        "{result}"
    );
}

#[tokio::test]
async fn check_without_an_access_check_is_refused_in_memory() {
    check_without_an_access_check_is_refused(Kind::Memory).await;
}

#[tokio::test]
async fn check_without_an_access_check_is_refused_on_dynamodb() {
    check_without_an_access_check_is_refused(Kind::Aws).await;
}
