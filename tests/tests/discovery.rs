//! The public pages through the local runner: the OpenAPI document and the panel answer
//! without a token, the panel offers a development token only when the process set one,
//! and the API's other routes still want a token.

use serde_json::{Value, json};
use webhooks_tests::client::{Client, claims, token};
use webhooks_tests::runner::{self, Kind};

async fn get(base: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("the runner answers")
}

#[tokio::test]
async fn the_document_and_the_panel_need_no_token() {
    let running = runner::start(Kind::Memory, &[]).await;
    let base = running.base_url();

    let doc = get(&base, "/api/v0/webhooks/openapi.json").await;
    assert_eq!(doc.status(), 200);
    assert_eq!(
        doc.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let doc: Value = serde_json::from_str(&doc.text().await.unwrap()).unwrap();
    let file: Value = serde_json::from_str(webhooks_api::discovery::OPENAPI).unwrap();
    assert_eq!(doc, file, "the served document is the file");

    let page = get(&base, "/webhooks/panel").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("connect-src 'self'") && policy.contains("default-src 'none'"),
        "{policy}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<meta name="development-token" content="">"#));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained: nothing fetched from elsewhere"
    );

    // Every other route still wants a token.
    let client = Client::new(base.clone());
    let anonymous = client
        .send(
            reqwest::Method::GET,
            "/api/v0/webhooks/subscriptions",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(
        (anonymous.http, anonymous.status()),
        (401, "invalid_client")
    );
    running.stop().await;
}

#[tokio::test]
async fn the_panel_offers_the_development_token_only_when_set() {
    let running = runner::start(Kind::Memory, &[]).await;
    let dev = token(&claims(1, "hq"));
    running.app.development_token.set(dev.clone()).unwrap();
    let html = get(&running.base_url(), "/webhooks/panel")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!(
        r#"<meta name="development-token" content="{dev}">"#
    )));
    running.stop().await;
}

#[tokio::test]
async fn a_secret_rotation_takes_an_object_or_no_body() {
    let running = runner::start(Kind::Memory, &[]).await;
    let client = Client::new(running.base_url());
    let alice = token(&claims(17, "hq"));
    let created = client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &alice,
            &json!({"trigger_url": "https://example.com/h", "event_id": "assign_task"}),
        )
        .await;
    let id = created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v0/webhooks/subscriptions/{id}/secret");
    let refused = client.post_json(&path, &alice, &json!(["s3cret"])).await;
    assert_eq!(refused.status(), "invalid_request", "{:?}", refused.tree);
    assert!(refused.tree["response"].is_null());
    let generated = client.post_json(&path, &alice, &Value::Null).await;
    assert_eq!(generated.status(), "ok");
    assert!(
        generated.tree["response"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    running.stop().await;
}

/// With the JWT authorizer on, API Gateway would refuse a request without a token before
/// the function saw it; the template gives exactly the public endpoints of the router's
/// table routes of their own with `AuthorizationType: NONE`, and every other route the
/// authorizer when it is on.
#[test]
fn the_template_opens_exactly_the_public_endpoints() {
    use webhooks_api::routes::{Access, ENDPOINTS};
    let text = include_str!("../../template.yaml");
    let template: serde_norway::Value = serde_norway::from_str(text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let mut open = Vec::new();
    let mut guarded = Vec::new();
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let props = &resource["Properties"];
        let key = props["RouteKey"].as_str().unwrap().to_owned();
        match props["AuthorizationType"].as_str() {
            Some("NONE") => open.push(key),
            // `!If [HasJwtAuthorizer, JWT, NONE]`: guarded whenever an authorizer exists.
            _ => {
                let tagged = format!("{:?}", props["AuthorizationType"]);
                assert!(tagged.contains("JWT"), "{name:?}: {tagged}");
                guarded.push(key);
            }
        }
    }
    let mut public: Vec<String> = ENDPOINTS
        .iter()
        .filter(|e| e.access == Access::Public)
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    open.sort();
    public.sort();
    assert_eq!(open, public);
    guarded.sort();
    assert_eq!(guarded, ["ANY /", "ANY /{proxy+}"]);
}
