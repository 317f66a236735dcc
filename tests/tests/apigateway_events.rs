//! The API handler fed with API Gateway HTTP API (payload 2.0) events of the shape
//! `sam local generate-event apigateway http-api-proxy` produces (kept in infra/events),
//! exactly as the Lambda runtime would pass them.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use webhooks_api::App;
use webhooks_core::config::{Defaults, FromEnv, Settings};
use webhooks_core::security::auth::{TokenClaims, mint_hs256};

const GENERATED: &str = include_str!("../../infra/events/apigw-http-api-proxy.json");
const LIST_TYPES: &str = include_str!("../../infra/events/api-list-types.json");
const LIST: &str = include_str!("../../infra/events/api-list-subscriptions.json");
const CREATE: &str = include_str!("../../infra/events/api-create-subscription.json");
const JWT_SECRET: &str = "lambda-test-secret";

async fn app() -> Arc<App> {
    let vars = HashMap::from([
        ("WEBHOOKS_SECRET_KEY", "11".repeat(32)),
        ("WEBHOOKS_JWT_SECRET", JWT_SECRET.to_owned()),
    ]);
    let settings = Settings::from_lookup(&Defaults::lambda(), |k| vars.get(k).cloned()).unwrap();
    // The Lambda's configuration, composed on in-memory adapters.
    let platform = webhooks_local::compose(&webhooks_local::Backend::Memory, settings)
        .await
        .unwrap();
    platform.app.clone()
}

async fn invoke(app: &App, event: &Value) -> (u16, String, Value) {
    let req =
        lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
    let resp = webhooks_api::lambda::handle(app, req).await;
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let body = match resp.body() {
        lambda_http::Body::Text(t) => t.clone(),
        other => panic!("unexpected body {other:?}"),
    };
    let tree = if ct.starts_with("application/json") {
        serde_json::from_str(&body).unwrap()
    } else {
        Value::String(body)
    };
    (status, ct, tree)
}

fn event(fixture: &str) -> Value {
    serde_json::from_str(fixture).unwrap()
}

fn bearer_event(fixture: &str, token: &str) -> Value {
    let mut e = event(fixture);
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    e["headers"]["authorization"] = json!(format!("Bearer {token}"));
    e
}

fn token(sub: &str, exp: i64) -> String {
    let claims = TokenClaims {
        sub: sub.into(),
        deployment: "hq".into(),
        name: "N".into(),
        email: "n@hq.example".into(),
        pro: None,
        scope: None,
        exp,
    };
    mint_hs256(JWT_SECRET.as_bytes(), &claims)
}

fn future() -> i64 {
    4_102_444_800
}

#[tokio::test]
async fn the_generated_event_reaches_the_handler_and_gets_an_envelope() {
    // sam's sample: POST /path/to/resource with authorizer claims that name no user.
    let (status, _, tree) = invoke(&*app().await, &event(GENERATED)).await;
    assert_eq!(status, 400);
    assert_eq!(tree["meta"]["status"], "invalid_request");
    assert!(
        tree["meta"]["message"]
            .as_str()
            .unwrap()
            .starts_with("there is no endpoint at /path/to/resource")
    );
}

#[tokio::test]
async fn jwt_authorizer_claims_identify_the_caller() {
    let app = app().await;
    let (status, _, tree) = invoke(&app, &event(LIST_TYPES)).await;
    assert_eq!((status, tree["meta"]["status"].as_str()), (200, Some("ok")));
    assert_eq!(tree["response"]["types"].as_array().unwrap().len(), 22);

    let (status, _, created) = invoke(&app, &event(CREATE)).await;
    assert_eq!(status, 201);
    let sub = &created["response"]["subscription"];
    assert_eq!(
        (sub["user_id"].as_u64(), sub["user_deployment"].as_str()),
        (Some(1), Some("hq"))
    );
    assert_eq!(sub["user"]["email"], "sample@hq.example");

    let (_, _, listed) = invoke(&app, &event(LIST)).await;
    assert_eq!(
        listed["response"]["subscriptions"][0]["subscription_id"],
        sub["subscription_id"]
    );

    // Another user named by the authorizer sees none of it.
    let mut other = event(LIST);
    other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("2");
    let (_, _, listed) = invoke(&app, &other).await;
    assert_eq!(listed["response"]["subscriptions"], json!([]));
}

#[tokio::test]
async fn bearer_tokens_are_verified_without_an_authorizer() {
    let app = app().await;
    let (status, _, _) = invoke(&app, &bearer_event(LIST, &token("4", future()))).await;
    assert_eq!(status, 200);
    let (status, _, tree) = invoke(&app, &bearer_event(LIST, &token("4", 1000))).await;
    assert_eq!(
        (status, tree["meta"]["status"].as_str()),
        (401, Some("invalid_client"))
    );
    let mut anonymous = event(LIST);
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, _, _) = invoke(&app, &anonymous).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn suffixes_and_form_bodies_work_through_api_gateway() {
    let app = app().await;
    let mut e = event(CREATE);
    e["rawPath"] = json!("/api/v0/webhooks/subscriptions.xml");
    e["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
    let form = "trigger_url=https%3A%2F%2Fhooks.example.com%2Fx&event_id=create_quote";
    e["body"] = json!(base64::engine::general_purpose::STANDARD.encode(form));
    let (status, ct, body) = invoke(&app, &e).await;
    assert_eq!((status, ct.as_str()), (201, "text/xml; charset=utf-8"));
    let xml = body.as_str().unwrap();
    let doc = roxmltree::Document::parse(xml).unwrap();
    let event_id = doc
        .descendants()
        .find(|n| n.has_tag_name("event_id"))
        .unwrap();
    assert_eq!(event_id.text(), Some("create_quote"));
}

/// Behind a JWT authorizer the template routes the document and the panel with
/// `AuthorizationType: NONE`, so they arrive without claims; they are served all the same,
/// and any other route without claims is refused.
#[tokio::test]
async fn behind_an_authorizer_the_public_pages_need_no_claims() {
    let vars = HashMap::from([
        ("WEBHOOKS_SECRET_KEY", "11".repeat(32)),
        ("WEBHOOKS_JWT_AUTHORIZER", "true".to_owned()),
    ]);
    let settings = Settings::from_lookup(&Defaults::lambda(), |k| vars.get(k).cloned()).unwrap();
    let platform = webhooks_local::compose(&webhooks_local::Backend::Memory, settings)
        .await
        .unwrap();
    let app = platform.app.clone();
    let unauthorized = |path: &str| {
        let mut e = event(LIST_TYPES);
        e["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        e["rawPath"] = json!(path);
        e["requestContext"]["http"]["path"] = json!(path);
        e
    };
    let (status, ct, doc) = invoke(&app, &unauthorized("/api/v0/webhooks/openapi.json")).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/json; charset=utf-8")
    );
    assert_eq!(doc["openapi"], "3.1.0");
    let (status, ct, page) = invoke(&app, &unauthorized("/webhooks/panel")).await;
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(
        page.as_str()
            .unwrap()
            .contains(r#"<meta name="development-token" content="">"#),
        "the Lambda offers no token"
    );
    let (status, _, tree) = invoke(&app, &unauthorized("/api/v0/webhooks/subscriptions")).await;
    assert_eq!(
        (status, tree["meta"]["status"].as_str()),
        (401, Some("invalid_client"))
    );
}
