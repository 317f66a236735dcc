//! The whole platform in the local runner, on both backends: a subscription, an event
//! published through the API, the webhook arriving once and signed at a real receiver,
//! the delivery log, `dispatch`, and an automatic unsubscribe that the log explains.

use std::time::Duration;

use base64::Engine;
use serde_json::json;
use webhooks_tests::client::{Client, claims, stringly, token};
use webhooks_tests::receiver::{Behaviour, Receiver};
use webhooks_tests::runner::{self, Kind};

const SUBS: &str = "/api/v0/webhooks/subscriptions";

async fn whole_flow(kind: Kind) {
    let running = runner::start(kind, &[]).await;
    let client = Client::new(running.base_url());
    let receiver = Receiver::start().await;
    let owner = token(&claims(31, "hq"));
    let mut publisher_claims = claims(1, "hq");
    publisher_claims.scope = Some("webhooks:publish".into());
    let publisher = token(&publisher_claims);

    let created = client
        .post_json(SUBS, &owner, &json!({"trigger_url": receiver.url, "event_id": "assign_task", "content_type": "application/json", "secret": "s3cret"}))
        .await;
    assert_eq!(created.status(), "ok_created", "{:?}", created.tree);
    let id = created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let event = json!({"event_id": "assign_task", "object_id": 123, "resource_url": "https://hq.example.com/api/v0/tasks/123", "visible_to": [31], "idempotency_key": "task-123-assign"});
    let published = client
        .post_json("/api/v0/webhooks/events", &publisher, &event)
        .await;
    assert_eq!(
        published.tree["response"]["events"][0]["status"],
        "accepted"
    );
    // The same key again is accepted, and not delivered twice.
    client
        .post_json("/api/v0/webhooks/events", &publisher, &event)
        .await;

    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    let r = &got[0];
    assert_eq!(
        r.body,
        br#"{"id":123,"resource_url":"https://hq.example.com/api/v0/tasks/123"}"#
    );
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode("s3cret")
    );
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    standardwebhooks::Webhook::new(&whsec)
        .unwrap()
        .verify(&r.body, &headers)
        .expect("signed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.requests().len(), 1, "delivered once");

    // The delivery log, in every format.
    let path = format!("{SUBS}/{id}/deliveries");
    let mut log = client.get(&format!("{path}.json"), &owner).await;
    for _ in 0..20 {
        if !log.tree["response"]["deliveries"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        log = client.get(&format!("{path}.json"), &owner).await;
    }
    let entry = &log.tree["response"]["deliveries"][0];
    assert_eq!(
        (entry["outcome"].as_str(), entry["http_status"].as_u64()),
        (Some("delivered"), Some(200))
    );
    assert_eq!(entry["delivery_id"].as_str(), r.header("webhook-id"));
    assert_eq!(entry["object_id"], 123);
    for suffix in ["xml", "yml"] {
        let other = client.get(&format!("{path}.{suffix}"), &owner).await;
        assert_eq!(stringly(&other.tree), stringly(&log.tree), "{suffix}");
    }
    let foreign = client.get(&path, &token(&claims(32, "hq"))).await;
    assert_eq!(
        foreign.status(),
        "invalid_request",
        "another user cannot read the log"
    );

    // dispatch: synchronous, the receiver's status in the answer, logged.
    receiver.script(vec![Behaviour::Status(202)]);
    let dispatched = client
        .post_form(&format!("{SUBS}/{id}/dispatch"), &owner, "object_id=5")
        .await;
    assert_eq!(dispatched.status(), "ok");
    assert_eq!(dispatched.tree["response"]["status"], 202);
    assert_eq!(receiver.requests().len(), 2);
    let page = client
        .get(&format!("{path}?_limit=1&_page=0"), &owner)
        .await;
    assert_eq!(
        page.tree["response"]["deliveries"][0]["object_id"], 5,
        "newest first"
    );
    let cursor = page.tree["response"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = client
        .get(&format!("{path}?_limit=1&_page=1"), &owner)
        .await;
    assert_eq!(page.tree["response"]["deliveries"][0]["object_id"], 123);
    let next = client
        .get(&format!("{path}?_limit=1&_cursor={cursor}"), &owner)
        .await;
    assert_eq!(
        next.tree["response"]["deliveries"], page.tree["response"]["deliveries"],
        "the cursor of page 0 reads page 1"
    );
    assert_eq!(
        next.tree["response"]["next_cursor"],
        serde_json::Value::Null
    );
    let bad = client.get(&format!("{path}?_limit=1000"), &owner).await;
    assert_eq!(bad.message(), "_limit must be a whole number from 0 to 100");

    // 410: the subscription goes, and its log says why.
    receiver.always(Behaviour::Status(410));
    let gone = client
        .post_form(&format!("{SUBS}/{id}/dispatch"), &owner, "object_id=6")
        .await;
    assert_eq!(
        (
            gone.tree["response"]["status"].as_u64(),
            gone.tree["response"]["outcome"].as_str()
        ),
        (Some(410), Some("unsubscribed"))
    );
    assert_eq!(
        client.get(&format!("{SUBS}/{id}"), &owner).await.status(),
        "invalid_request"
    );
    let log = client.get(&path, &owner).await;
    assert!(
        log.tree["response"]["deliveries"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("410 Gone")
    );
    running.stop().await;
}

#[tokio::test]
async fn whole_flow_in_memory() {
    whole_flow(Kind::Memory).await;
}

#[tokio::test]
async fn whole_flow_on_dynamodb_and_sqs() {
    whole_flow(Kind::Aws).await;
}
