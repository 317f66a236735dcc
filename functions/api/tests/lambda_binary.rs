//! The `api` binary as Lambda runs it: API Gateway events through the Runtime API, on
//! DynamoDB and SQS in moto, configured only as the SAM template configures it (here
//! without queue URLs, found by name, and without a sealing key, derived from the JWT
//! secret).

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_tests::client::{claims, token};
use webhooks_tests::lambda_runtime::{MotoPlatform, Runtime};

const CREATE: &str = include_str!("../../../infra/events/api-create-subscription.json");

fn event(method: &str, path: &str, bearer: &str, body: Option<Value>) -> Value {
    let mut e: Value = serde_json::from_str(CREATE).unwrap();
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    e["headers"]["authorization"] = json!(format!("Bearer {bearer}"));
    match body {
        Some(b) => {
            e["body"] = json!(b.to_string());
            e["isBase64Encoded"] = json!(false);
        }
        None => {
            e.as_object_mut().unwrap().remove("body");
        }
    }
    e
}

fn envelope(answer: &Value) -> (u64, Value) {
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    (answer["statusCode"].as_u64().unwrap(), body)
}

#[tokio::test]
async fn the_api_binary_serves_api_gateway_events() {
    let env = MotoPlatform::start(&[]).await;
    let mut runtime = Runtime::start().await;
    // No sealing key: it derives from the JWT secret.
    env.spawn(
        &mut runtime,
        env!("CARGO_BIN_EXE_api"),
        &[("WEBHOOKS_JWT_SECRET", webhooks_core::config::DEV_JWT_SECRET)],
    );

    let user = token(&claims(3, "hq"));
    let body = json!({"trigger_url": "https://hooks.example.com/a", "event_id": "create_quote", "secret": "x"});
    let (status, created) = envelope(
        &runtime
            .invoke(event(
                "POST",
                "/api/v0/webhooks/subscriptions",
                &user,
                Some(body),
            ))
            .await,
    );
    assert_eq!(
        (status, created["meta"]["status"].as_str()),
        (201, Some("ok_created")),
        "{created}"
    );
    let id = created["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, listed) = envelope(
        &runtime
            .invoke(event("GET", "/api/v0/webhooks/subscriptions", &user, None))
            .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        listed["response"]["subscriptions"][0]["subscription_id"],
        id.as_str()
    );

    let (status, refused) = envelope(
        &runtime
            .invoke(event("GET", "/api/v0/webhooks/subscriptions", "nope", None))
            .await,
    );
    assert_eq!(
        (status, refused["meta"]["status"].as_str()),
        (401, Some("invalid_client"))
    );

    let mut publisher = claims(9, "hq");
    publisher.scope = Some("webhooks:publish".into());
    let published = json!({"event_id": "create_quote", "object_id": 5, "resource_url": "https://hq.example.com/q/5", "visible_to": "all"});
    let (status, answer) = envelope(
        &runtime
            .invoke(event(
                "POST",
                "/api/v0/webhooks/events",
                &token(&publisher),
                Some(published),
            ))
            .await,
    );
    assert_eq!(
        (status, answer["response"]["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let queued = env
        .platform
        .events
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        queued.len(),
        1,
        "the event is on the events queue, found by name"
    );
}
