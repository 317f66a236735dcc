//! The `api` binary as Lambda runs it: API Gateway events through the Runtime API, on
//! DynamoDB and SQS in moto, configured only by the environment `template.yaml` gives the
//! API function (secrets read from Secrets Manager) and with every AWS call checked
//! against that function's own role. The test drives each endpoint that touches AWS:
//! create, list, get, delete, trigger, dispatch (delivered, timed out, 410; with an access
//! check, refused, failed and delivered), the delivery log, and keyed and unkeyed events.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use webhooks_tests::client::{claims, token};
use webhooks_tests::deployed::{Deployed, Function, LOOPBACK};
use webhooks_tests::lambda_events::{API_FIXTURE, api_request, list_subscriptions_request};
use webhooks_tests::receiver::{Behaviour, Receiver};

const API: Function = Function {
    logical_id: "ApiFunction",
    binary: env!("CARGO_BIN_EXE_api"),
};

fn event(method: &str, path: &str, bearer: &str, body: Option<Value>) -> Value {
    api_request(method, path, bearer, body.as_ref())
}

fn envelope(answer: &Value) -> (u64, Value) {
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    (answer["statusCode"].as_u64().unwrap(), body)
}

#[tokio::test]
async fn the_api_binary_serves_every_endpoint_within_its_role() {
    // With an operator topic: the 410 `dispatch` below tells it (sns:Publish). In a VPC
    // (fixed source addresses): the role then carries Lambda's VPC access policy, whose
    // network-interface grants Lambda uses, not the code, and its own grants stay exact.
    let (topic, inbox) =
        webhooks_tests::moto::sns_topic_into_queue(&webhooks_tests::unique("api-ops")).await;
    let stack = Deployed::start(
        &[
            ("DeliveryTimeoutSeconds", "1"),
            ("OperatorTopicArn", topic.as_str()),
            ("SubnetIds", "subnet-0123456789abcdef0"),
            ("SecurityGroupIds", "sg-0123456789abcdef0"),
        ],
        &[],
    )
    .await;
    let mut api = stack
        .spawn(API, &[("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")])
        .await;
    let mut call = async |method: &str, path: &str, bearer: &str, body: Option<Value>| {
        envelope(&api.runtime.invoke(event(method, path, bearer, body)).await)
    };
    let subs = "/api/v0/webhooks/subscriptions";
    let user = token(&claims(3, "hq"));

    let body = json!({"trigger_url": "https://hooks.example.com/a", "event_id": "create_quote", "secret": "x"});
    let (status, created) = call("POST", subs, &user, Some(body)).await;
    assert_eq!(
        (status, created["meta"]["status"].as_str()),
        (201, Some("ok_created")),
        "{created}"
    );
    let id = created["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, listed) = call("GET", subs, &user, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["response"]["subscriptions"][0]["subscription_id"],
        id
    );
    let (status, got) = call("GET", &format!("{subs}/{id}"), &user, None).await;
    assert_eq!(
        (status, &got["response"]["subscription"]["subscription_id"]),
        (200, &json!(id))
    );
    let (status, refused) = call("GET", subs, "nope", None).await;
    assert_eq!(
        (status, refused["meta"]["status"].as_str()),
        (401, Some("invalid_client"))
    );

    // An empty log, then trigger: the event goes to the events queue.
    let (status, log) = call("GET", &format!("{subs}/{id}/deliveries"), &user, None).await;
    assert_eq!(
        (status, log["response"]["deliveries"].clone()),
        (200, json!([]))
    );
    let (status, _) = call(
        "POST",
        &format!("{subs}/{id}/trigger"),
        &user,
        Some(json!({"object_id": 9})),
    )
    .await;
    assert_eq!(status, 200);

    let mut publisher = claims(9, "hq");
    publisher.scope = Some("webhooks:publish".into());
    let events = json!([
        {"event_id": "create_quote", "object_id": 5, "resource_url": "https://hq.example.com/q/5", "visible_to": "all"},
        {"event_id": "create_quote", "object_id": 6, "resource_url": "https://hq.example.com/q/6", "visible_to": [3], "idempotency_key": "quote-6"}
    ]);
    let (status, answer) = call(
        "POST",
        "/api/v0/webhooks/events",
        &token(&publisher),
        Some(events),
    )
    .await;
    assert_eq!(
        (status, answer["response"]["accepted"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let queued = stack
        .moto
        .platform
        .events
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        queued.len(),
        3,
        "the triggered event and the two published ones"
    );

    // Dispatch to a receiver: a timeout is counted, a success resets the count, and 410
    // deletes the subscription; each attempt is logged.
    let receiver = Receiver::start().await;
    let owner = token(&claims(4, "hq"));
    let hooked = stack
        .moto
        .client
        .post_json(
            subs,
            &owner,
            &json!({"trigger_url": receiver.url, "event_id": "create_quote"}),
        )
        .await;
    let hooked = hooked.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispatch = format!("{subs}/{hooked}/dispatch");
    receiver.script(vec![
        Behaviour::Hang,
        Behaviour::Status(200),
        Behaviour::Status(410),
    ]);
    call("POST", &dispatch, &owner, Some(json!({"object_id": 1}))).await;
    let (status, ok) = call("POST", &dispatch, &owner, Some(json!({"object_id": 2}))).await;
    assert_eq!(
        (status, ok["response"]["status"].as_u64()),
        (200, Some(200)),
        "{ok}"
    );
    // Operate: resend the timed-out dispatch, recover the last minute (it holds that one
    // failure), pause, rotate the secret. Resend and recover go to the deliveries queue.
    let (_, log) = call("GET", &format!("{subs}/{hooked}/deliveries"), &owner, None).await;
    let failed = log["response"]["deliveries"][1]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, resent) = call(
        "POST",
        &format!("{subs}/{hooked}/deliveries/{failed}/resend"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200, "{resent}");
    let since = webhooks_core::model::event::format_millis(
        webhooks_tests::delivery_kit::now_millis() - 60_000,
    );
    let (status, recovered) = call(
        "POST",
        &format!("{subs}/{hooked}/recover"),
        &owner,
        Some(json!({ "since": since })),
    )
    .await;
    assert_eq!(
        (status, recovered["response"]["queued"].as_u64()),
        (200, Some(1)),
        "{recovered}"
    );
    let requeued = stack
        .moto
        .platform
        .deliveries
        .receiver
        .receive(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(requeued.len(), 2, "the resent job and the recovery task");
    let (status, paused) = call(
        "PUT",
        &format!("{subs}/{hooked}"),
        &owner,
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(
        (status, &paused["response"]["subscription"]["active"]),
        (200, &json!(false)),
        "{paused}"
    );
    let (status, rotated) = call("POST", &format!("{subs}/{hooked}/secret"), &owner, None).await;
    assert_eq!(status, 200, "{rotated}");
    assert!(
        rotated["response"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    call(
        "PUT",
        &format!("{subs}/{hooked}"),
        &owner,
        Some(json!({"active": true})),
    )
    .await;

    let (_, gone) = call("POST", &dispatch, &owner, Some(json!({"object_id": 3}))).await;
    assert_eq!(gone["response"]["status"].as_u64(), Some(410), "{gone}");
    use webhooks_core::ports::queue::QueueReceiver;
    let heard = inbox.receive(10, Duration::from_secs(2)).await.unwrap();
    assert_eq!(heard.len(), 1, "the operator hears of the removal");
    let notice: Value = serde_json::from_str(&heard[0].message.body).unwrap();
    assert_eq!(notice["subscription_id"], json!(hooked));
    let (_, log) = call("GET", &format!("{subs}/{hooked}/deliveries"), &owner, None).await;
    assert_eq!(
        log["response"]["deliveries"].as_array().unwrap().len(),
        3,
        "{log}"
    );

    let (status, _) = call("DELETE", &format!("{subs}/{id}"), &user, None).await;
    assert_eq!(status, 200);

    api.assert_role_is_exact();
}

/// A subscription's own headers and retry schedule through the binary (SPEC section 9):
/// set on create and replaced by `PUT` (a masked value keeps the stored one), shown
/// masked, sealed in the table, sent by `dispatch` exactly; within the API's role.
#[tokio::test]
async fn the_api_binary_seals_masks_and_sends_own_headers() {
    let stack = Deployed::start(&[], &[]).await;
    let mut api = stack.spawn(API, LOOPBACK).await;
    let mut call = async |method: &str, path: &str, body: Option<Value>| {
        let user = token(&claims(5, "hq"));
        envelope(&api.runtime.invoke(event(method, path, &user, body)).await)
    };
    let receiver = Receiver::start().await;
    let subs = "/api/v0/webhooks/subscriptions";
    let (status, created) = call(
        "POST",
        subs,
        Some(json!({
            "trigger_url": receiver.url, "event_id": "create_quote",
            "headers": {"X-Api-Key": "key-bin-1", "X-Plain": "plain-1"},
            "retry_schedule": [1, 3]
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let sub = &created["response"]["subscription"];
    assert_eq!(
        (&sub["headers"], &sub["retry_schedule"]),
        (
            &json!({"X-Api-Key": "********", "X-Plain": "plain-1"}),
            &json!([1, 3])
        )
    );
    let one = format!("{subs}/{}", sub["subscription_id"].as_str().unwrap());
    // Refused, on create and on PUT, changing nothing.
    let (status, refused) = call(
        "POST",
        subs,
        Some(json!({"trigger_url": receiver.url, "event_id": "create_quote", "headers": {"Host": "x"}})),
    )
    .await;
    assert_eq!(
        (status, refused["meta"]["message"].as_str()),
        (
            400,
            Some("headers: `Host` cannot be set: HTTP itself manages it")
        )
    );
    let (status, refused) = call("PUT", &one, Some(json!({"retry_schedule": [0]}))).await;
    assert_eq!(
        (status, refused["meta"]["message"].as_str()),
        (
            400,
            Some("retry_schedule: delay 1 must be from 1 to 86400 seconds")
        )
    );
    let (_, listed) = call("GET", subs, None).await;
    assert_eq!(
        listed["response"]["subscriptions"],
        json!([sub
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .filter(|(k, _)| k != "user")
            .collect::<serde_json::Map<_, _>>()]),
        "one subscription, as created"
    );
    let (status, changed) = call(
        "PUT",
        &one,
        Some(json!({"headers": {"X-Api-Key": "********", "User-Agent": "gateway/1"}})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let (_, got) = call("GET", &one, None).await;
    assert_eq!(
        got["response"]["subscription"]["headers"],
        json!({"User-Agent": "gateway/1", "X-Api-Key": "********"})
    );
    let (status, sent) = call(
        "POST",
        &format!("{one}/dispatch"),
        Some(json!({"object_id": 1})),
    )
    .await;
    assert_eq!(
        (status, sent["response"]["status"].as_u64()),
        (200, Some(200)),
        "{sent}"
    );
    let r = &receiver.wait_for(1, Duration::from_secs(5)).await[0];
    assert_eq!(r.header("x-api-key"), Some("key-bin-1"), "the kept value");
    assert_eq!(r.all("user-agent"), ["gateway/1"]);
    assert_eq!(r.header("x-plain"), None, "PUT replaced the whole map");

    // No value in a scan of the table.
    let table = stack
        .moto
        .env()
        .iter()
        .find(|(k, _)| k == "WEBHOOKS_SUBSCRIPTIONS_TABLE")
        .map(|(_, v)| v.clone())
        .unwrap();
    let stored = webhooks_tests::moto::scan_text(&table).await;
    assert!(stored.contains("retry_schedule"), "{stored}");
    for value in ["key-bin-1", "plain-1", "gateway/1"] {
        assert!(!stored.contains(value), "{value} at rest: {stored}");
    }
    api.gate.assert_nothing_refused();
}

/// `auth` through the binary (SPEC section 9): set on create, shown without its client
/// secret, sealed in the table; `dispatch` fetches a token from a token server on
/// loopback (Basic credentials form-encoded first) and sends it as a Bearer; a `PUT`
/// without the client secret keeps it; a failed token request answers with its `token_`
/// kind and status null. Within the API's role: no AWS call beyond its grants.
#[tokio::test]
async fn the_api_binary_fetches_tokens_for_auth() {
    use base64::Engine;
    let stack = Deployed::start(&[], &[]).await;
    let mut api = stack.spawn(API, LOOPBACK).await;
    let mut call = async |method: &str, path: &str, body: Option<Value>| {
        let user = token(&claims(6, "hq"));
        envelope(&api.runtime.invoke(event(method, path, &user, body)).await)
    };
    let (idp, receiver) = (Receiver::start().await, Receiver::start().await);
    idp.always(webhooks_tests::receiver::Behaviour::Respond {
        status: 200,
        headers: vec![],
        body: r#"{"access_token":"bin-tok","token_type":"Bearer","expires_in":600}"#.into(),
    });
    let subs = "/api/v0/webhooks/subscriptions";
    let (status, created) = call(
        "POST",
        subs,
        Some(json!({
            "trigger_url": receiver.url, "event_id": "create_quote",
            "auth": {"type": "oauth2_client_credentials", "token_url": idp.url,
                     "client_id": "bin", "client_secret": "a:b% c-secret-bin"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let sub = &created["response"]["subscription"];
    assert_eq!(
        sub["auth"],
        json!({"type": "oauth2_client_credentials", "token_url": idp.url, "client_id": "bin"})
    );
    let one = format!("{subs}/{}", sub["subscription_id"].as_str().unwrap());
    let (status, changed) = call(
        "PUT",
        &one,
        Some(
            json!({"auth": {"type": "oauth2_client_credentials", "token_url": idp.url,
                             "client_id": "bin", "scope": "s1"}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let (status, sent) = call(
        "POST",
        &format!("{one}/dispatch"),
        Some(json!({"object_id": 1})),
    )
    .await;
    assert_eq!(
        (status, sent["response"]["status"].as_u64()),
        (200, Some(200)),
        "{sent}"
    );
    let r = &receiver.wait_for(1, Duration::from_secs(5)).await[0];
    assert_eq!(r.header("authorization"), Some("Bearer bin-tok"));
    let asked = &idp.requests()[0];
    let basic = asked
        .header("authorization")
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(basic)
            .unwrap(),
        b"bin:a%3Ab%25+c-secret-bin",
        "the secret kept by the PUT, form-encoded first"
    );
    assert_eq!(asked.body_text(), "grant_type=client_credentials&scope=s1");

    // A failed token request: status null, the kind given.
    idp.always(webhooks_tests::receiver::Behaviour::Status(503));
    let (_, changed) = call(
        "PUT",
        &one,
        Some(
            json!({"auth": {"type": "oauth2_client_credentials", "token_url": idp.url,
                             "client_id": "bin", "scope": "s2"}}),
        ),
    )
    .await;
    assert!(
        changed["response"]["subscription"]["auth"]["scope"] == "s2",
        "{changed}"
    );
    let (status, failed) = call(
        "POST",
        &format!("{one}/dispatch"),
        Some(json!({"object_id": 2})),
    )
    .await;
    assert_eq!(
        (
            status,
            &failed["response"]["status"],
            &failed["response"]["error"]
        ),
        (200, &Value::Null, &json!("token_http_503")),
        "{failed}"
    );
    assert_eq!(receiver.count(), 1);

    let table = stack
        .moto
        .env()
        .iter()
        .find(|(k, _)| k == "WEBHOOKS_SUBSCRIPTIONS_TABLE")
        .map(|(_, v)| v.clone())
        .unwrap();
    let stored = webhooks_tests::moto::scan_text(&table).await;
    assert!(stored.contains("token_url"), "{stored}");
    assert!(!stored.contains("secret-bin"), "sealed at rest: {stored}");
    api.gate.assert_nothing_refused();
}

#[test]
fn the_api_binary_refuses_to_start_when_it_can_verify_no_token() {
    let out = Command::new(API.binary)
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("WEBHOOKS_SECRET_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for what in [
        "WEBHOOKS_JWT_SECRET",
        "WEBHOOKS_JWT_PUBLIC_KEYS",
        "WEBHOOKS_JWT_AUTHORIZER",
    ] {
        assert!(stderr.contains(what), "the sentence names {what}: {stderr}");
    }
}

#[tokio::test]
async fn behind_the_jwt_authorizer_the_api_binary_reads_the_verified_claims() {
    // No HS256 secret and no RS256 keys: the template's JWT authorizer verifies tokens.
    let stack = Deployed::start(
        &[
            ("JwtSecret", ""),
            ("JwtIssuer", "https://issuer.example.com"),
            ("JwtAudience", "webhooks"),
        ],
        &[],
    )
    .await;
    let env = stack.environment(API);
    assert!(env.contains(&("WEBHOOKS_JWT_AUTHORIZER".into(), "true".into())));
    assert!(!env.iter().any(|(k, _)| k == "WEBHOOKS_JWT_SECRET_ARN"));
    let mut api = stack.spawn(API, &[]).await;

    // The claims as API Gateway's JWT authorizer hands them over (the sample event's).
    let mut authorized: Value = serde_json::from_str(API_FIXTURE).unwrap();
    authorized["rawPath"] = json!("/api/v0/webhooks/subscriptions");
    authorized["requestContext"]["http"]["method"] = json!("GET");
    authorized["requestContext"]["http"]["path"] = json!("/api/v0/webhooks/subscriptions");
    authorized.as_object_mut().unwrap().remove("body");
    let (status, listed) = envelope(&api.runtime.invoke(authorized).await);
    assert_eq!(
        (status, listed["meta"]["status"].as_str()),
        (200, Some("ok")),
        "{listed}"
    );

    // A request that reached the function without claims has no way in.
    let unverified = event(
        "GET",
        "/api/v0/webhooks/subscriptions",
        &token(&claims(1, "hq")),
        None,
    );
    let (status, _) = envelope(&api.runtime.invoke(unverified).await);
    assert_eq!(status, 401);
    api.gate.assert_nothing_refused();
}

#[tokio::test]
async fn the_api_binary_reads_its_secrets_at_its_first_request_once() {
    let stack = Deployed::start(&[], &[]).await;
    let mut api = stack.spawn(API, &[]).await;
    api.runtime.init_time().await;
    // Init ends at the first `/next`: by then the function has made no AWS call at all.
    assert_eq!(
        api.gate.calls(),
        vec![],
        "init reads nothing over the network"
    );

    let secret_reads = |api: &webhooks_tests::deployed::Running| {
        api.gate
            .calls()
            .iter()
            .filter(|c| c.action == "secretsmanager:GetSecretValue")
            .count()
    };
    for _ in 0..2 {
        let (status, listed) = envelope(&api.runtime.invoke(list_subscriptions_request()).await);
        assert_eq!(status, 200, "{listed}");
        assert_eq!(
            secret_reads(&api),
            2,
            "the sealing key and the HS256 secret, each read once for the instance"
        );
    }
    api.gate.assert_nothing_refused();
}

#[tokio::test]
async fn a_secret_the_api_cannot_read_is_a_server_error_and_read_again_next_time() {
    let stack = Deployed::start(&[], &[]).await;
    // A secret that does not exist yet (Secrets Manager takes a name where an ARN goes).
    let name = webhooks_tests::unique("sealing-key-later");
    let mut api = stack
        .spawn_ungated(API, &[("WEBHOOKS_SECRET_KEY_ARN", name.as_str())])
        .await;
    let (status, refused) = envelope(&api.invoke(list_subscriptions_request()).await);
    assert_eq!(status, 500, "{refused}");
    assert_eq!(refused["meta"]["status"], json!("server_error"));
    assert_eq!(refused["response"], Value::Null);
    let message = refused["meta"]["message"].as_str().unwrap();
    assert!(
        !message.contains("Secrets Manager") && !message.contains(&name),
        "nothing internal in the answer: {message}"
    );

    webhooks_tests::moto::create_secret(&name, webhooks_tests::deployed::SEALING_KEY).await;
    let (status, listed) = envelope(&api.invoke(list_subscriptions_request()).await);
    assert_eq!(
        (status, listed["meta"]["status"].as_str()),
        (200, Some("ok")),
        "the next request reads the secret again: {listed}"
    );
}

#[tokio::test]
async fn an_unusable_secret_is_a_server_error_and_not_read_again() {
    let stack = Deployed::start(&[], &[]).await;
    let env = stack.environment(API);
    let (_, arn) = env
        .iter()
        .find(|(k, _)| k == "WEBHOOKS_SECRET_KEY_ARN")
        .expect("the API is given the sealing key's ARN");
    // Read fine, but not 32 bytes in hex: a configuration error, not a failed read.
    webhooks_tests::moto::set_secret_value(arn, "not-a-sealing-key").await;
    let mut api = stack.spawn(API, &[]).await;
    for _ in 0..2 {
        let (status, refused) = envelope(&api.runtime.invoke(list_subscriptions_request()).await);
        assert_eq!(status, 500, "{refused}");
        assert_eq!(refused["meta"]["status"], json!("server_error"));
    }
    let reads = api
        .gate
        .calls()
        .iter()
        .filter(|c| c.action == "secretsmanager:GetSecretValue")
        .count();
    assert_eq!(
        reads, 2,
        "each secret read once: nothing it read can change"
    );
    api.gate.assert_nothing_refused();
}

/// `dispatch` with the access check of SPEC section 5 through the binary, deployed with
/// `AccessCheckUrl` and `AccessCheckSecret`: it asks about the caller alone, in a
/// question that verifies with the `standardwebhooks` crate under the installation
/// secret; not named is `invalid_permission` and a product that does not answer is
/// `server_error`, both sending nothing; named, it delivers. The secret is read from
/// Secrets Manager once, at the first question, within the API's role.
#[tokio::test]
async fn the_api_binary_dispatches_only_when_the_access_check_names_the_caller() {
    const CHECK_SECRET: &str = "whsec_4vM6xHkqw2MxYqeMxh31GOH3etPeiwFGltpYhfSBerc=";
    let names = |ids: &str| Behaviour::Respond {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!(r#"{{"visible_to": [{ids}]}}"#),
    };
    let (check, receiver) = (Receiver::start().await, Receiver::start().await);
    check.always(names(r#""13", 14"#));
    // The access check is on 127.0.0.1 over http: let through as for the receivers of the
    // other tests (the template's pattern for AccessCheckUrl, https, is not applied here).
    let stack = Deployed::start(
        &[
            ("AccessCheckUrl", check.url.as_str()),
            ("AccessCheckSecret", CHECK_SECRET),
        ],
        &[],
    )
    .await;
    let secret_arn = stack
        .variable(API, "WEBHOOKS_ACCESS_CHECK_SECRET_ARN")
        .expect("the template gives the API the secret's ARN");
    let mut api = stack.spawn(API, LOOPBACK).await;
    let owner = token(&claims(12, "hq"));
    let created = stack
        .moto
        .client
        .post_json(
            "/api/v0/webhooks/subscriptions",
            &owner,
            &json!({"trigger_url": receiver.url, "event_id": "create_quote"}),
        )
        .await;
    let id = created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispatch = format!("/api/v0/webhooks/subscriptions/{id}/dispatch");
    let mut call = async |object_id: u64| {
        envelope(
            &api.runtime
                .invoke(event(
                    "POST",
                    &dispatch,
                    &owner,
                    Some(json!({ "object_id": object_id })),
                ))
                .await,
        )
    };

    // Not named: refused, nothing sent.
    let (status, refused) = call(41).await;
    assert_eq!(
        (status, refused["meta"]["status"].as_str()),
        (403, Some("invalid_permission")),
        "{refused}"
    );
    assert_eq!(receiver.count(), 0);
    let asked = &check.requests()[0];
    standardwebhooks::Webhook::new(CHECK_SECRET)
        .unwrap()
        .verify(&asked.body, &asked.header_map())
        .expect("the question verifies under the installation secret");
    let question: Value = serde_json::from_slice(&asked.body).unwrap();
    assert_eq!(
        (&question["object_id"], &question["users"]),
        (&json!(41), &json!([12])),
        "about the caller alone: {question}"
    );

    // No usable answer: a server error that says so, nothing sent.
    check.script(vec![Behaviour::Status(500)]);
    let (status, failed) = call(42).await;
    assert_eq!(
        (status, failed["meta"]["status"].as_str()),
        (500, Some("server_error")),
        "{failed}"
    );
    assert!(
        failed["meta"]["message"]
            .as_str()
            .unwrap()
            .contains("access check did not answer"),
        "{failed}"
    );
    assert_eq!(receiver.count(), 0);

    // Named (as a numeric string): delivered.
    check.always(names(r#""12""#));
    let (status, sent) = call(43).await;
    assert_eq!(
        (status, sent["response"]["status"].as_u64()),
        (200, Some(200)),
        "{sent}"
    );
    assert_eq!(receiver.count(), 1);
    assert_eq!(check.count(), 3);

    let reads: Vec<bool> = api
        .gate
        .calls()
        .into_iter()
        .filter(|c| c.action == "secretsmanager:GetSecretValue" && c.resource == secret_arn)
        .map(|c| c.allowed)
        .collect();
    assert_eq!(reads, [true], "the access check's secret, read once");
    api.gate.assert_nothing_refused();
}
