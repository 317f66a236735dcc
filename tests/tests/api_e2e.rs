//! The whole subscription API against the running local runner, on both backends, read
//! back in all three formats; then every error row of the status table.

use reqwest::Method;
use serde_json::{Value, json};
use webhooks_tests::client::{Client, as_xml_carries, claims, now, stringly, token};
use webhooks_tests::runner::{self, Kind};

const SUBS: &str = "/api/v0/webhooks/subscriptions";

/// The same request in the three formats (suffix), parsed and compared.
async fn in_all_formats(client: &Client, path: &str, tok: &str) -> Value {
    let json = client.get(&format!("{path}.json"), tok).await;
    let xml = client.get(&format!("{path}.xml"), tok).await;
    let yml = client.get(&format!("{path}.yml"), tok).await;
    assert_eq!(
        json.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(xml.headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(yml.headers["content-type"], "text/x-yaml; charset=utf-8");
    assert_eq!(
        yml.tree, json.tree,
        "YAML is the same tree as JSON for {path}"
    );
    assert_eq!(
        stringly(&xml.tree),
        stringly(&as_xml_carries(&json.tree)),
        "XML is the same tree as JSON for {path}"
    );
    json.tree
}

async fn whole_api(kind: Kind) {
    let running = runner::start(kind, &[]).await;
    let client = Client::new(running.base_url());
    let alice = token(&claims(17, "hq"));

    // Event types, in every format.
    let types = in_all_formats(&client, &format!("{SUBS}/types"), &alice).await;
    assert_eq!(types["meta"]["status"], "ok");
    let list = types["response"]["types"].as_array().unwrap();
    assert_eq!(list.len(), 22, "Accelo's 20 and the platform's two");
    assert!(list.contains(&json!({"event_id": "assign_task", "event_title": "Task assigned", "trigger_table": "task", "trigger_type": "update"})));

    // Create with a JSON body.
    let created = client
        .post_json(
            SUBS,
            &alice,
            &json!({"trigger_url": "https://hooks.example.com/a", "event_id": "assign_task"}),
        )
        .await;
    assert_eq!((created.http, created.status()), (201, "ok_created"));
    let sub = &created.tree["response"]["subscription"];
    let id = sub["subscription_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 24);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        sub,
        &json!({
            "subscription_id": id, "event_id": "assign_task", "trigger_type": "update", "trigger_table": "task",
            "trigger_url": "https://hooks.example.com/a", "content_type": "application/x-www-form-urlencoded",
            "user_id": 17, "user_deployment": "hq", "active": true,
            "user": {"id": 17, "name": "User 17", "email": "user17@hq.example"},
        })
    );

    // Create with a form body, JSON deliveries and a secret that is never echoed; XML answer.
    let form = "trigger_url=https%3A%2F%2Fhooks.example.com%2Fb&event_id=create_invoice&content_type=application%2Fjson&secret=topsecret";
    let created_xml = client.post_form(&format!("{SUBS}.xml"), &alice, form).await;
    assert_eq!(
        (created_xml.http, created_xml.status()),
        (201, "ok_created")
    );
    let sub2 = &created_xml.tree["response"]["subscription"];
    assert_eq!(sub2["content_type"], "application/json");
    assert_eq!(sub2["trigger_table"], "invoice");
    let id2 = sub2["subscription_id"].as_str().unwrap().to_owned();
    assert!(!format!("{}", created_xml.tree).contains("topsecret"));
    assert!(id < id2, "ids are time-ordered");

    // List, in every format: both, with the owner once.
    let listed = in_all_formats(&client, SUBS, &alice).await;
    let subs = listed["response"]["subscriptions"].as_array().unwrap();
    assert_eq!(
        subs.iter()
            .map(|s| s["subscription_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![id.as_str(), id2.as_str()]
    );
    assert!(
        subs.iter()
            .all(|s| s.get("user").is_none() && s.get("secret").is_none())
    );
    assert_eq!(
        listed["response"]["subscriptions_users"],
        json!([{"id": 17, "name": "User 17", "email": "user17@hq.example"}])
    );
    assert!(!listed.to_string().contains("topsecret"));

    // Get one, in every format; the Accept header selects a format too.
    let one = in_all_formats(&client, &format!("{SUBS}/{id2}"), &alice).await;
    assert_eq!(
        one["response"]["subscription"]["trigger_url"],
        "https://hooks.example.com/b"
    );
    let by_accept = client
        .send(
            Method::GET,
            &format!("{SUBS}/{id2}"),
            Some(&alice),
            &[("Accept", "text/x-yaml")],
            None,
        )
        .await;
    assert_eq!(
        by_accept.headers["content-type"],
        "text/x-yaml; charset=utf-8"
    );
    assert_eq!(by_accept.tree, one);
    let by_accept = client
        .send(
            Method::GET,
            SUBS,
            Some(&alice),
            &[("Accept", "text/xml")],
            None,
        )
        .await;
    assert_eq!(by_accept.headers["content-type"], "text/xml; charset=utf-8");
    let by_q = client
        .send(
            Method::GET,
            SUBS,
            Some(&alice),
            &[("Accept", "application/xml;q=0.1, application/json")],
            None,
        )
        .await;
    assert_eq!(
        by_q.headers["content-type"], "application/json; charset=utf-8",
        "q-values rank the media types"
    );

    // Tenancy: another user, and the same user id of another deployment, see nothing, and
    // their answers for Alice's id are exactly those for an id that does not exist.
    let unknown = "0123456789abcdef01234567";
    for other in [token(&claims(18, "hq")), token(&claims(17, "acme"))] {
        let list = client.get(SUBS, &other).await;
        assert_eq!(list.tree["response"]["subscriptions"], json!([]));
        for method in [Method::GET, Method::DELETE] {
            let foreign = client
                .send(
                    method.clone(),
                    &format!("{SUBS}/{id}"),
                    Some(&other),
                    &[],
                    None,
                )
                .await;
            let missing = client
                .send(
                    method.clone(),
                    &format!("{SUBS}/{unknown}"),
                    Some(&other),
                    &[],
                    None,
                )
                .await;
            assert_eq!((foreign.http, foreign.status()), (400, "invalid_request"));
            assert_eq!(
                foreign.message().replace(&id, "ID"),
                missing.message().replace(unknown, "ID")
            );
        }
    }
    assert_eq!(
        client.get(&format!("{SUBS}/{id}"), &alice).await.status(),
        "ok",
        "foreign deletes changed nothing"
    );

    // Delete: ok with no resource, then gone.
    let deleted = client.delete(&format!("{SUBS}/{id}.json"), &alice).await;
    assert_eq!((deleted.http, deleted.status()), (200, "ok"));
    assert_eq!(
        deleted.tree.get("response"),
        Some(&Value::Null),
        "an answer without a resource carries \"response\": null"
    );
    assert_eq!(
        client.get(&format!("{SUBS}/{id}"), &alice).await.status(),
        "invalid_request"
    );
    assert_eq!(
        client
            .delete(&format!("{SUBS}/{id}"), &alice)
            .await
            .status(),
        "invalid_request"
    );
    let listed = client.get(SUBS, &alice).await;
    assert_eq!(
        listed.tree["response"]["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Accelo's suppress switches.
    let quiet = client
        .get(
            &format!("{SUBS}/{unknown}?_suppress_http_status=1&_suppress_message=yes"),
            &alice,
        )
        .await;
    assert_eq!((quiet.http, quiet.status()), (200, "invalid_request"));
    assert!(quiet.tree["meta"].get("message").is_none());
    assert_eq!(quiet.tree.get("response"), Some(&Value::Null));
    let bare = client
        .get(&format!("{SUBS}?_suppress_meta=true"), &alice)
        .await;
    assert!(bare.tree.get("meta").is_none());
    assert_eq!(
        bare.tree["response"]["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    running.stop().await;
}

#[tokio::test]
async fn whole_api_on_the_memory_backend() {
    whole_api(Kind::Memory).await;
}

#[tokio::test]
async fn whole_api_on_dynamodb() {
    whole_api(Kind::Aws).await;
}

/// Each bad create is refused with invalid_request and a message naming the problem,
/// and none of them stores anything.
async fn bad_input(kind: Kind) {
    let running = runner::start(kind, &[("WEBHOOKS_ALLOW_HTTP", "false")]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(5, "hq"));
    let ok_url = "https://hooks.example.com/x";
    let long_url = format!("https://hooks.example.com/{}", "a".repeat(2100));
    let big_secret = "s".repeat(600);
    let json_cases: Vec<(Value, &str)> = vec![
        (
            json!({"event_id": "assign_task"}),
            "trigger_url is required",
        ),
        (json!({"trigger_url": ok_url}), "event_id is required"),
        (
            json!({"trigger_url": "/relative", "event_id": "assign_task"}),
            "trigger_url must be an absolute https URL",
        ),
        (
            json!({"trigger_url": "ftp://hooks.example.com", "event_id": "assign_task"}),
            "trigger_url must be an absolute https URL",
        ),
        (
            json!({"trigger_url": "http://hooks.example.com", "event_id": "assign_task"}),
            "trigger_url must be an absolute https URL",
        ),
        (
            json!({"trigger_url": long_url, "event_id": "assign_task"}),
            "trigger_url must be at most 2048 characters",
        ),
        (
            json!({"trigger_url": "https://10.0.0.8/x", "event_id": "assign_task"}),
            "trigger_url must not point at a private address",
        ),
        (
            json!({"trigger_url": "https://169.254.169.254/x", "event_id": "assign_task"}),
            "trigger_url must not point at a cloud metadata address",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": "eat_cake"}),
            "event_id `eat_cake` is not a known event",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "content_type": "text/csv"}),
            "content_type must be application/x-www-form-urlencoded or application/json",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "secret": big_secret}),
            "secret must be at most 512 bytes",
        ),
        // Fields of the wrong JSON type are refused, not read as absent.
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "secret": ["s3cret"]}),
            "secret must be a string, not an array",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "secret": {"v": "s3cret"}}),
            "secret must be a string, not an object",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "secret": 12345}),
            "secret must be a string, not a number",
        ),
        (
            json!({"trigger_url": [ok_url], "event_id": "assign_task"}),
            "trigger_url must be a string, not an array",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": {"id": "assign_task"}}),
            "event_id must be a string, not an object",
        ),
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "content_type": ["application/json"]}),
            "content_type must be a string, not an array",
        ),
        (
            json!([{"trigger_url": ok_url, "event_id": "assign_task"}]),
            "send the subscription as a JSON object",
        ),
        // A field the endpoint does not know is refused by name: a typo must not
        // create an unsigned subscription (SPEC section 3).
        (
            json!({"trigger_url": ok_url, "event_id": "assign_task", "secert": "s3cret"}),
            "unknown field `secert`: this request takes trigger_url, event_id, content_type, secret, headers, retry_schedule, auth, rate_limit",
        ),
    ];
    for (body, expected) in json_cases {
        let a = client.post_json(SUBS, &tok, &body).await;
        assert_eq!((a.http, a.status()), (400, "invalid_request"), "{body}");
        assert_eq!(a.tree.get("response"), Some(&Value::Null), "{body}");
        assert!(
            a.message().starts_with(expected),
            "{body}: {:?} should start with {expected:?}",
            a.message()
        );
    }
    let raw_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "application/json",
            b"{\"trigger_url\": ".to_vec(),
            "the request body is not valid JSON",
        ),
        (
            "application/x-www-form-urlencoded",
            b"trigger_url".to_vec(),
            "the form-urlencoded request body is malformed",
        ),
        (
            "text/plain",
            b"hello".to_vec(),
            "send the request body as application/json or application/x-www-form-urlencoded",
        ),
        (
            "application/json",
            vec![b' '; 1_100_000],
            "the request body must be at most 1048576 bytes",
        ),
    ];
    for (ct, body, expected) in raw_cases {
        let a = client
            .send(Method::POST, SUBS, Some(&tok), &[], Some((ct, body)))
            .await;
        assert_eq!((a.http, a.status()), (400, "invalid_request"), "{ct}");
        assert!(a.message().starts_with(expected), "{ct}: {:?}", a.message());
    }
    let wrong_method = client.send(Method::PUT, SUBS, Some(&tok), &[], None).await;
    assert_eq!(
        (wrong_method.http, wrong_method.message()),
        (
            400,
            "PUT is not supported on /api/v0/webhooks/subscriptions; use GET or POST"
        )
    );
    let unknown_path = client.get("/api/v0/webhooks/monkeys", &tok).await;
    assert_eq!(unknown_path.http, 400);
    assert!(
        unknown_path
            .message()
            .starts_with("there is no endpoint at /api/v0/webhooks/monkeys")
    );
    let malformed_id = client.get(&format!("{SUBS}/not-an-id"), &tok).await;
    assert_eq!(
        (malformed_id.http, malformed_id.status()),
        (400, "invalid_request")
    );

    let form_typo = client
        .post_form(
            SUBS,
            &tok,
            "trigger_url=https%3A%2F%2Fhooks.example.com%2Fx&event_id=assign_task&secert=s",
        )
        .await;
    assert_eq!(
        (form_typo.http, form_typo.status()),
        (400, "invalid_request")
    );
    assert!(form_typo.message().starts_with("unknown field `secert`"));

    let listed = client.get(SUBS, &tok).await;
    assert_eq!(
        listed.tree["response"]["subscriptions"],
        json!([]),
        "bad input stored nothing"
    );

    // A PUT naming a field it does not know changes nothing, not even the fields it knows.
    let made = client
        .post_json(
            SUBS,
            &tok,
            &json!({"trigger_url": ok_url, "event_id": "assign_task"}),
        )
        .await;
    assert_eq!(made.http, 201);
    let id = made.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("{SUBS}/{id}");
    let typo = client
        .send(
            Method::PUT,
            &one,
            Some(&tok),
            &[],
            Some((
                "application/json",
                br#"{"trigger_url": "https://hooks.example.com/new", "actve": false}"#.to_vec(),
            )),
        )
        .await;
    assert_eq!((typo.http, typo.status()), (400, "invalid_request"));
    assert_eq!(
        typo.message(),
        "unknown field `actve`: this request takes trigger_url, content_type, active, headers, retry_schedule, auth, rate_limit"
    );
    let kept = client.get(&one, &tok).await;
    assert_eq!(kept.tree["response"]["subscription"]["trigger_url"], ok_url);
    assert_eq!(kept.tree["response"]["subscription"]["active"], true);
    running.stop().await;
}

/// Everything the API's answers and storage could hold of a subscription, as text: its
/// DynamoDB item as a scan reads it, or the memory store's struct, debug-printed and as
/// JSON.
async fn at_rest(kind: Kind, running: &webhooks_local::Running, table: &str) -> String {
    match kind {
        Kind::Aws => webhooks_tests::moto::scan_text(table).await,
        Kind::Memory => {
            let owner = webhooks_core::model::identity::Owner {
                deployment: webhooks_core::model::identity::Deployment::parse("hq").unwrap(),
                user_id: 31,
            };
            let stored = running.app.store.list_by_owner(&owner).await.unwrap();
            format!("{stored:?} {}", serde_json::to_string(&stored).unwrap())
        }
    }
}

/// A subscription's own headers and retry schedule (SPEC section 9): set on create in a
/// JSON body, shown in every answer and format with sensitive values masked, sealed at
/// rest, sent by `dispatch` exactly as set (a `User-Agent` replacing the platform's),
/// replaced whole by `PUT` with masked values kept, and removed by `null`.
async fn own_headers_and_schedule(kind: Kind) {
    use webhooks_tests::receiver::Receiver;
    let table = webhooks_tests::unique("subs");
    let running = runner::start(kind, &[("WEBHOOKS_SUBSCRIPTIONS_TABLE", &table)]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(31, "hq"));
    let receiver = Receiver::start().await;
    let created = client
        .post_json(
            SUBS,
            &tok,
            &json!({
                "trigger_url": receiver.url, "event_id": "assign_task",
                "headers": {
                    "X-Api-Key": "key-4fj3", "Authorization": "Basic dXNlcjpwdw==",
                    "X-Tenant": "tenant-77", "User-Agent": "acme-gateway/2"
                },
                "retry_schedule": [1, 2.5, 3600], "rate_limit": 1,
            }),
        )
        .await;
    assert_eq!(
        (created.http, created.status()),
        (201, "ok_created"),
        "{:?}",
        created.tree
    );
    let sub = &created.tree["response"]["subscription"];
    assert_eq!(
        sub["headers"],
        json!({
            "Authorization": "********", "User-Agent": "acme-gateway/2",
            "X-Api-Key": "********", "X-Tenant": "tenant-77"
        }),
        "every name; sensitive values masked"
    );
    assert_eq!(
        sub["retry_schedule"],
        json!([1, 3, 3600]),
        "2.5 s rounds up"
    );
    assert_eq!(sub["rate_limit"], 1);
    let id = sub["subscription_id"].as_str().unwrap().to_owned();
    let one = format!("{SUBS}/{id}");

    // Every answer and format shows them, and none the masked values.
    let got = in_all_formats(&client, &one, &tok).await;
    assert_eq!(got["response"]["subscription"]["headers"], sub["headers"]);
    let listed = in_all_formats(&client, SUBS, &tok).await;
    assert_eq!(
        listed["response"]["subscriptions"][0]["retry_schedule"],
        json!([1, 3, 3600])
    );
    let xml = client.get(&format!("{one}.xml"), &tok).await;
    assert_eq!(
        xml.tree["response"]["subscription"]["headers"][3],
        json!({"name": "X-Tenant", "value": "tenant-77"}),
        "XML: <header> items with <name> and <value>"
    );
    for answer in [&created.tree, &got, &listed, &xml.tree] {
        let text = answer.to_string();
        assert!(
            !text.contains("key-4fj3") && !text.contains("dXNlcjpwdw"),
            "{text}"
        );
    }

    // Sealed at rest: no value in a table scan (or the memory store's struct).
    let stored = at_rest(kind, &running, &table).await;
    assert!(
        stored.contains(&id),
        "the scan reads the subscription: {stored}"
    );
    for value in ["key-4fj3", "dXNlcjpwdw", "tenant-77", "acme-gateway"] {
        assert!(!stored.contains(value), "{value} at rest: {stored}");
    }

    // Dispatch sends them exactly, the owner's User-Agent instead of the platform's.
    let dispatch = format!("{one}/dispatch");
    let sent = client
        .post_json(&dispatch, &tok, &json!({"object_id": 5}))
        .await;
    assert_eq!(sent.tree["response"]["status"], 200, "{:?}", sent.tree);
    let r = &receiver.requests()[0];
    assert_eq!(r.header("x-api-key"), Some("key-4fj3"));
    assert_eq!(r.header("authorization"), Some("Basic dXNlcjpwdw=="));
    assert_eq!(r.header("x-tenant"), Some("tenant-77"));
    assert_eq!(r.all("user-agent"), ["acme-gateway/2"]);

    // A PUT of other fields keeps them.
    let paused = client
        .send(
            Method::PUT,
            &one,
            Some(&tok),
            &[],
            Some(("application/json", br#"{"active": true}"#.to_vec())),
        )
        .await;
    assert_eq!(
        paused.tree["response"]["subscription"]["headers"],
        sub["headers"]
    );
    assert_eq!(
        paused.tree["response"]["subscription"]["retry_schedule"],
        json!([1, 3, 3600])
    );

    // PUT replaces the whole map; a masked value keeps the stored one of that name.
    let put = |body: Value| {
        let (client, one, tok) = (&client, &one, &tok);
        async move {
            client
                .send(
                    Method::PUT,
                    one,
                    Some(tok),
                    &[],
                    Some(("application/json", body.to_string().into_bytes())),
                )
                .await
        }
    };
    let replaced = put(json!({
        "headers": {"x-api-key": "********", "X-New": "new-1"},
        "retry_schedule": [5],
        "rate_limit": 1000
    }))
    .await;
    assert_eq!(replaced.status(), "ok", "{:?}", replaced.tree);
    let now = &replaced.tree["response"]["subscription"];
    assert_eq!(
        now["headers"],
        json!({"X-New": "new-1", "x-api-key": "********"})
    );
    assert_eq!(now["retry_schedule"], json!([5]));
    assert_eq!(now["rate_limit"], json!(1000));
    client
        .post_json(&dispatch, &tok, &json!({"object_id": 6}))
        .await;
    let r = &receiver.requests()[1];
    assert_eq!(r.header("x-api-key"), Some("key-4fj3"), "kept");
    assert_eq!(r.header("x-new"), Some("new-1"));
    assert_eq!(
        (r.header("x-tenant"), r.header("authorization")),
        (None, None)
    );
    assert!(r.header("user-agent").unwrap().starts_with("webhooks/"));

    // A masked value with nothing stored under its name is refused and changes nothing.
    let refused =
        put(json!({"headers": {"Authorization": "********"}, "retry_schedule": [9]})).await;
    assert_eq!((refused.http, refused.status()), (400, "invalid_request"));
    assert_eq!(
        refused.message(),
        "headers: `Authorization` is \"********\", which keeps a stored value, and it has none; send its value"
    );
    let after = client.get(&one, &tok).await;
    assert_eq!(&after.tree["response"]["subscription"], now);

    // null removes them.
    let removed = put(json!({"headers": null, "retry_schedule": null, "rate_limit": null})).await;
    let sub = &removed.tree["response"]["subscription"];
    assert_eq!(
        (
            sub.get("headers"),
            sub.get("retry_schedule"),
            sub.get("rate_limit")
        ),
        (None, None, None),
        "{sub}"
    );
    let stored = at_rest(kind, &running, &table).await;
    assert!(!stored.contains("new-1") && !stored.contains("key-4fj3"));
    if kind == Kind::Aws {
        assert!(
            !stored.contains("\"headers\"")
                && !stored.contains("\"retry_schedule\"")
                && !stored.contains("\"rate_limit\""),
            "{stored}"
        );
    }
    running.stop().await;
}

/// `auth` (SPEC section 9): set on create in a JSON body, shown in every answer and format
/// without its client secret, which is sealed at rest; `dispatch` fetches a token (the
/// client authenticated as RFC 6749 section 2.3.1 says) and sends it as a Bearer; a `PUT`
/// without the client secret keeps the stored one; `Authorization` in `headers` is refused
/// beside it on create and on `PUT`, whichever field the request changes; `null` removes
/// it; a failed token request answers like an unreachable receiver, with its `token_`
/// kind.
async fn auth_on_create_put_and_dispatch(kind: Kind) {
    use base64::Engine;
    use webhooks_tests::receiver::{Behaviour, Receiver, refused_url};
    let table = webhooks_tests::unique("subs");
    let running = runner::start(kind, &[("WEBHOOKS_SUBSCRIPTIONS_TABLE", &table)]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(31, "hq"));
    let (idp, receiver) = (Receiver::start().await, Receiver::start().await);
    let token_answer = |token: &str| Behaviour::Respond {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#),
    };
    idp.always(token_answer("tok-1"));
    let auth = json!({
        "type": "oauth2_client_credentials", "token_url": idp.url,
        "client_id": "client 7", "client_secret": "cs: 100% secret-x9", "scope": "hooks"
    });
    let create = |body: Value| {
        let (client, tok) = (&client, &tok);
        async move { client.post_json(SUBS, tok, &body).await }
    };
    let created = create(json!({
        "trigger_url": receiver.url, "event_id": "assign_task", "auth": auth,
        "headers": {"X-Tenant": "t-1"}
    }))
    .await;
    assert_eq!(
        (created.http, created.status()),
        (201, "ok_created"),
        "{:?}",
        created.tree
    );
    let sub = &created.tree["response"]["subscription"];
    assert_eq!(
        sub["auth"],
        json!({
            "type": "oauth2_client_credentials", "token_url": idp.url,
            "client_id": "client 7", "scope": "hooks"
        }),
        "every field but the client secret"
    );
    let id = sub["subscription_id"].as_str().unwrap().to_owned();
    let one = format!("{SUBS}/{id}");
    let got = in_all_formats(&client, &one, &tok).await;
    assert_eq!(got["response"]["subscription"]["auth"], sub["auth"]);
    let listed = in_all_formats(&client, SUBS, &tok).await;
    for answer in [&created.tree, &got, &listed] {
        assert!(!answer.to_string().contains("secret-x9"), "{answer}");
    }
    let stored = at_rest(kind, &running, &table).await;
    assert!(
        stored.contains(&id) && stored.contains("client 7"),
        "{stored}"
    );
    assert!(!stored.contains("secret-x9"), "sealed at rest: {stored}");

    // Dispatch: one token request, the token sent as a Bearer beside the own headers.
    let dispatch = format!("{one}/dispatch");
    let sent = client
        .post_json(&dispatch, &tok, &json!({"object_id": 5}))
        .await;
    assert_eq!(sent.tree["response"]["status"], 200, "{:?}", sent.tree);
    let r = &receiver.requests()[0];
    assert_eq!(r.all("authorization"), ["Bearer tok-1"]);
    assert_eq!(r.header("x-tenant"), Some("t-1"));
    let basic_of = |n: usize| {
        let asked = &idp.requests()[n];
        let b64 = asked
            .header("authorization")
            .unwrap()
            .strip_prefix("Basic ")
            .unwrap()
            .to_owned();
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        (text, asked.body_text())
    };
    assert_eq!(
        basic_of(0),
        (
            "client+7:cs%3A+100%25+secret-x9".into(),
            "grant_type=client_credentials&scope=hooks".into()
        )
    );
    client
        .post_json(&dispatch, &tok, &json!({"object_id": 6}))
        .await;
    assert_eq!(idp.count(), 1, "the token is reused");

    let put = |body: Value| {
        let (client, one, tok) = (&client, &one, &tok);
        async move {
            client
                .send(
                    Method::PUT,
                    one,
                    Some(tok),
                    &[],
                    Some(("application/json", body.to_string().into_bytes())),
                )
                .await
        }
    };
    // A PUT without the client secret keeps the stored one.
    let kept = put(json!({"auth": {
        "type": "oauth2_client_credentials", "token_url": idp.url, "client_id": "client 7",
        "scope": "hooks more", "audience": "https://api.example/"
    }}))
    .await;
    assert_eq!(kept.status(), "ok", "{:?}", kept.tree);
    assert_eq!(
        kept.tree["response"]["subscription"]["auth"]["audience"],
        "https://api.example/"
    );
    idp.always(token_answer("tok-2"));
    client
        .post_json(&dispatch, &tok, &json!({"object_id": 7}))
        .await;
    assert_eq!(idp.count(), 2, "another scope, another token");
    assert_eq!(
        basic_of(1),
        (
            "client+7:cs%3A+100%25+secret-x9".into(),
            "grant_type=client_credentials&scope=hooks+more&audience=https%3A%2F%2Fapi.example%2F"
                .into()
        ),
        "the stored secret was kept"
    );
    assert_eq!(
        receiver.requests()[2].header("authorization"),
        Some("Bearer tok-2")
    );

    // Authorization in headers beside auth: refused on PUT, whichever field changes.
    let before = client.get(&one, &tok).await.tree["response"]["subscription"].clone();
    for body in [
        json!({"headers": {"Authorization": "Basic eA=="}}),
        json!({"auth": auth, "headers": {"authorization": "Basic eA=="}}),
    ] {
        let refused = put(body.clone()).await;
        assert_eq!(
            (refused.http, refused.status()),
            (400, "invalid_request"),
            "{body}"
        );
        assert_eq!(
            refused.message(),
            "headers: `Authorization` cannot be set with auth: the platform sends the access token in it"
        );
    }
    assert_eq!(
        client.get(&one, &tok).await.tree["response"]["subscription"],
        before,
        "nothing changed"
    );

    // Refused on create, storing nothing.
    let mut no_secret = auth.clone();
    no_secret.as_object_mut().unwrap().remove("client_secret");
    for (body, expected) in [
        (
            json!({"trigger_url": receiver.url, "event_id": "assign_task", "auth": auth, "headers": {"AUTHORIZATION": "x"}}),
            "headers: `Authorization` cannot be set with auth",
        ),
        (
            json!({"trigger_url": receiver.url, "event_id": "assign_task", "auth": no_secret}),
            "auth: client_secret is required",
        ),
        (
            json!({"trigger_url": receiver.url, "event_id": "assign_task", "auth": {"type": "basic"}}),
            "auth: type must be \"oauth2_client_credentials\"",
        ),
    ] {
        let refused = create(body.clone()).await;
        assert_eq!(
            (refused.http, refused.status()),
            (400, "invalid_request"),
            "{body}"
        );
        assert!(
            refused.message().starts_with(expected),
            "{}",
            refused.message()
        );
    }
    let form = client
        .post_form(
            SUBS,
            &tok,
            &format!("trigger_url={}&event_id=assign_task&auth=x", receiver.url),
        )
        .await;
    assert_eq!(
        form.message(),
        "auth can only be given in a JSON body (Content-Type: application/json)"
    );
    assert_eq!(
        client.get(SUBS, &tok).await.tree["response"]["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A failed token request: ok, status null, the token_ kind and why.
    let failing = create(json!({
        "trigger_url": receiver.url, "event_id": "assign_task",
        "auth": {"type": "oauth2_client_credentials", "token_url": idp.url, "client_id": "other", "client_secret": "s"}
    }))
    .await;
    let failing = format!(
        "{SUBS}/{}",
        failing.tree["response"]["subscription"]["subscription_id"]
            .as_str()
            .unwrap()
    );
    // Without a stored auth, a PUT without the client secret is refused.
    let plain = create(json!({"trigger_url": receiver.url, "event_id": "assign_task"})).await;
    let plain = format!(
        "{SUBS}/{}",
        plain.tree["response"]["subscription"]["subscription_id"]
            .as_str()
            .unwrap()
    );
    let refused = client
        .send(
            Method::PUT,
            &plain,
            Some(&tok),
            &[],
            Some((
                "application/json",
                json!({"auth": no_secret}).to_string().into_bytes(),
            )),
        )
        .await;
    assert_eq!(
        refused.message(),
        "auth: client_secret is required: this subscription has none stored to keep"
    );
    idp.always(Behaviour::Respond {
        status: 500,
        headers: vec![],
        body: "IDP-SECRET-ANSWER".into(),
    });
    let answered = client
        .post_json(
            &format!("{failing}/dispatch"),
            &tok,
            &json!({"object_id": 8}),
        )
        .await;
    assert_eq!(answered.status(), "ok");
    let response = &answered.tree["response"];
    assert_eq!(
        (
            &response["status"],
            &response["error"],
            &response["reason"],
            &response["outcome"]
        ),
        (
            &Value::Null,
            &json!("token_http_500"),
            &json!("the token endpoint answered HTTP 500"),
            &json!("failed")
        )
    );
    let log = client.get(&format!("{failing}/deliveries"), &tok).await;
    let line = &log.tree["response"]["deliveries"][0];
    assert_eq!(
        (&line["error_kind"], &line["response_body"]),
        (&json!("token_http_500"), &Value::Null)
    );
    assert!(!log.tree.to_string().contains("IDP-SECRET"));
    let unreachable = put(json!({"auth": {
        "type": "oauth2_client_credentials", "token_url": refused_url(), "client_id": "c", "client_secret": "s"
    }}))
    .await;
    assert_eq!(unreachable.status(), "ok", "{:?}", unreachable.tree);
    let answered = client
        .post_json(&dispatch, &tok, &json!({"object_id": 9}))
        .await;
    assert_eq!(
        (
            &answered.tree["response"]["status"],
            &answered.tree["response"]["error"]
        ),
        (&Value::Null, &json!("token_connection"))
    );
    assert_eq!(receiver.count(), 3, "nothing sent without a token");

    // null removes auth: deliveries go without a token.
    let removed = put(json!({"auth": null})).await;
    assert_eq!(removed.tree["response"]["subscription"].get("auth"), None);
    client
        .post_json(&dispatch, &tok, &json!({"object_id": 10}))
        .await;
    assert_eq!(receiver.requests()[3].header("authorization"), None);
    if kind == Kind::Aws {
        let stored = at_rest(kind, &running, &table).await;
        assert!(!stored.contains("secret-x9"), "{stored}");
    }
    running.stop().await;
}

#[tokio::test]
async fn auth_on_create_put_and_dispatch_on_memory() {
    auth_on_create_put_and_dispatch(Kind::Memory).await;
}

#[tokio::test]
async fn auth_on_create_put_and_dispatch_on_dynamodb() {
    auth_on_create_put_and_dispatch(Kind::Aws).await;
}

#[tokio::test]
async fn own_headers_and_schedule_on_memory() {
    own_headers_and_schedule(Kind::Memory).await;
}

#[tokio::test]
async fn own_headers_and_schedule_on_dynamodb() {
    own_headers_and_schedule(Kind::Aws).await;
}

/// Each rule of `headers` and `retry_schedule` refuses a create and a `PUT` with a
/// sentence naming the field and the rule, and neither stores or changes anything.
async fn bad_headers_and_schedules(kind: Kind) {
    let running = runner::start(kind, &[]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(32, "hq"));
    let made = client
        .post_json(
            SUBS,
            &tok,
            &json!({
                "trigger_url": "https://hooks.example.com/x", "event_id": "assign_task",
                "headers": {"X-Api-Key": "k"}, "retry_schedule": [2]
            }),
        )
        .await;
    assert_eq!(made.http, 201, "{:?}", made.tree);
    let id = made.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("{SUBS}/{id}");
    let before = client.get(&one, &tok).await.tree;
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let mut cases: Vec<(Value, String)> = vec![
        (
            json!(["X-A", "1"]),
            "headers must be an object of header names and string values".into(),
        ),
        (
            Value::Object(many),
            "headers may hold at most 20 headers".into(),
        ),
        (
            json!({"X A": "1"}),
            "headers: `X A` is not a header name".into(),
        ),
        (
            json!({"X-A": "1", "x-a": "2"}),
            "headers: `X-A` and `x-a` are the same header (names are compared without case)".into(),
        ),
        (
            json!({"X-A": 1}),
            "headers: the value of `X-A` must be a string".into(),
        ),
        (
            json!({"X-A": "a".repeat(1025)}),
            "headers: the value of `X-A` must be at most 1024 bytes".into(),
        ),
        (
            json!({"X-A": "a\r\nX-B: b"}),
            "headers: the value of `X-A` must be printable ASCII".into(),
        ),
        (
            json!({"X-Other": "********"}),
            "headers: `X-Other` is \"********\", which keeps a stored value, and it has none"
                .into(),
        ),
    ];
    for name in [
        "Host",
        "Content-Length",
        "content-type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Expect",
        "Proxy-Authorization",
        "X-Accelo-Event",
        "X-Hub-Signature-256",
        "webhook-id",
    ] {
        cases.push((
            json!({ name: "v" }),
            format!("headers: `{name}` cannot be set: "),
        ));
    }
    let schedules: Vec<(Value, &str)> = vec![
        (json!([]), "retry_schedule must hold 1 to 20 delays"),
        (
            Value::Array(vec![json!(5); 21]),
            "retry_schedule must hold 1 to 20 delays",
        ),
        (
            json!(5),
            "retry_schedule must be a list of delays in seconds",
        ),
        (
            json!([5, "10"]),
            "retry_schedule: delay 2 must be a number of seconds",
        ),
        (
            json!([0.9]),
            "retry_schedule: delay 1 must be from 1 to 86400 seconds",
        ),
        (
            json!([86401]),
            "retry_schedule: delay 1 must be from 1 to 86400 seconds",
        ),
    ];
    let mut all: Vec<(&str, Value, String)> =
        cases.into_iter().map(|(v, m)| ("headers", v, m)).collect();
    all.extend(
        schedules
            .into_iter()
            .map(|(v, m)| ("retry_schedule", v, m.to_owned())),
    );
    let limit_rule = "rate_limit must be a whole number of deliveries per second from 1 to 1000";
    for bad in [json!(0), json!(1001), json!(2.5), json!("5"), json!(true)] {
        all.push(("rate_limit", bad, limit_rule.to_owned()));
    }
    for (field, value, expected) in all {
        let mut create =
            json!({"trigger_url": "https://hooks.example.com/y", "event_id": "assign_task"});
        create[field] = value.clone();
        let a = client.post_json(SUBS, &tok, &create).await;
        assert_eq!((a.http, a.status()), (400, "invalid_request"), "{create}");
        assert!(
            a.message().starts_with(&expected),
            "{create}: {:?}",
            a.message()
        );
        let change = json!({ field: value, "trigger_url": "https://hooks.example.com/changed" });
        let a = client
            .send(
                Method::PUT,
                &one,
                Some(&tok),
                &[],
                Some(("application/json", change.to_string().into_bytes())),
            )
            .await;
        assert_eq!((a.http, a.status()), (400, "invalid_request"), "{change}");
        assert!(
            a.message().starts_with(&expected),
            "{change}: {:?}",
            a.message()
        );
    }
    // JSON bodies only: a form body (or the query string) naming either is refused.
    for field in ["headers", "retry_schedule", "rate_limit"] {
        let a = client
            .post_form(
                SUBS,
                &tok,
                &format!("trigger_url=https%3A%2F%2Fh.example.com&event_id=assign_task&{field}=5"),
            )
            .await;
        assert_eq!((a.http, a.status()), (400, "invalid_request"));
        assert_eq!(
            a.message(),
            format!("{field} can only be given in a JSON body (Content-Type: application/json)")
        );
        let a = client
            .send(
                Method::PUT,
                &one,
                Some(&tok),
                &[],
                Some((
                    "application/x-www-form-urlencoded",
                    format!("active=false&{field}=5").into_bytes(),
                )),
            )
            .await;
        assert_eq!((a.http, a.status()), (400, "invalid_request"), "{field}");
    }
    let listed = client.get(SUBS, &tok).await;
    assert_eq!(
        listed.tree["response"]["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "no refused create stored anything"
    );
    assert_eq!(
        client.get(&one, &tok).await.tree,
        before,
        "no refused PUT changed anything"
    );
    running.stop().await;
}

#[tokio::test]
async fn bad_headers_and_schedules_are_refused_on_memory() {
    bad_headers_and_schedules(Kind::Memory).await;
}

#[tokio::test]
async fn bad_headers_and_schedules_are_refused_on_dynamodb() {
    bad_headers_and_schedules(Kind::Aws).await;
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing_on_memory() {
    bad_input(Kind::Memory).await;
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing_on_dynamodb() {
    bad_input(Kind::Aws).await;
}

async fn bad_tokens(kind: Kind) {
    let running = runner::start(kind, &[("WEBHOOKS_DEPLOYMENTS", "hq,acme")]).await;
    let client = Client::new(running.base_url());
    let mut expired = claims(1, "hq");
    expired.exp = now() - 3600;
    let wrong_key = webhooks_core::security::auth::mint_hs256(b"not-the-secret", &claims(1, "hq"));
    let good = token(&claims(1, "hq"));
    let tampered = {
        // One character of the signature changed: still well-formed, no longer signed.
        let mut chars: Vec<char> = good.chars().collect();
        let i = chars.len() - 10;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        chars.into_iter().collect::<String>()
    };
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "an Authorization: Bearer token is required"),
        (
            Some("not.a.jwt".into()),
            "the bearer token is not a well-formed JWT",
        ),
        (
            Some(token(&expired)),
            "the bearer token has expired; request a new one",
        ),
        (
            Some(wrong_key),
            "the bearer token's signature does not verify",
        ),
        (
            Some(tampered),
            "the bearer token's signature does not verify",
        ),
        (
            Some(token(&claims(1, "globex"))),
            "the bearer token is for a deployment this installation does not serve",
        ),
        (
            Some(token_with_nbf(1, "hq", now() + 3600)),
            "the bearer token is not valid yet",
        ),
    ];
    for (tok, expected) in cases {
        let a = client
            .send(Method::GET, SUBS, tok.as_deref(), &[], None)
            .await;
        assert_eq!((a.http, a.status()), (401, "invalid_client"), "{expected}");
        assert_eq!(a.tree.get("response"), Some(&Value::Null), "{expected}");
        assert!(
            a.message().starts_with(expected),
            "{:?} should start with {expected:?}",
            a.message()
        );
    }
    let basic = client
        .send(
            Method::GET,
            SUBS,
            None,
            &[("Authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    assert_eq!(basic.status(), "invalid_client");
    assert_eq!(client.get(SUBS, &good).await.status(), "ok");
    assert_eq!(
        client
            .get(SUBS, &token_with_nbf(1, "hq", now() - 60))
            .await
            .status(),
        "ok",
        "a token whose nbf has passed is fine"
    );
    running.stop().await;
}

/// An HS256 token with the runner's secret whose `nbf` is `nbf` (minted by hand: the
/// claims type of the runner has no `nbf`).
fn token_with_nbf(sub: u64, deployment: &str, nbf: i64) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload = serde_json::to_value(claims(sub, deployment)).unwrap();
    payload["nbf"] = nbf.into();
    let signing_input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(payload.to_string())
    );
    let signature = webhooks_core::security::crypto::hmac_sha256(
        webhooks_core::config::DEV_JWT_SECRET.as_bytes(),
        signing_input.as_bytes(),
    );
    format!("{signing_input}.{}", b64.encode(signature))
}

async fn pro_gate(kind: Kind) {
    let running = runner::start(kind, &[("WEBHOOKS_PRO_GATE", "true")]).await;
    let client = Client::new(running.base_url());
    let plain = client.get(SUBS, &token(&claims(1, "hq"))).await;
    assert_eq!((plain.http, plain.status()), (403, "invalid_permission"));
    assert!(plain.message().contains("pro users"));
    let mut pro = claims(2, "hq");
    pro.pro = Some(true);
    assert_eq!(client.get(SUBS, &token(&pro)).await.status(), "ok");
    running.stop().await;

    // Off by default.
    let running = runner::start(kind, &[]).await;
    let client = Client::new(running.base_url());
    assert_eq!(
        client.get(SUBS, &token(&claims(1, "hq"))).await.status(),
        "ok"
    );
    running.stop().await;
}

async fn rate_limit(kind: Kind) {
    let running = runner::start(kind, &[("WEBHOOKS_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(1, "hq"));
    // The fourth request in a minute is refused; if the minute turns over mid-test the
    // count restarts, so allow a few more requests before calling it a failure.
    let mut limited = None;
    for _ in 0..8 {
        let a = client.get(SUBS, &tok).await;
        if a.http == 429 {
            limited = Some(a);
            break;
        }
    }
    let a = limited.expect("the limit answered 429 within 8 requests");
    assert_eq!(a.status(), "too_many_requests");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        client.get(SUBS, &token(&claims(2, "hq"))).await.status(),
        "ok",
        "other users are not limited"
    );
    running.stop().await;
}

#[tokio::test]
async fn store_failures_are_server_errors_that_say_nothing_internal() {
    let table = webhooks_tests::unique("doomed");
    let running = runner::start(Kind::Aws, &[("WEBHOOKS_SUBSCRIPTIONS_TABLE", &table)]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(1, "hq"));
    assert_eq!(client.get(SUBS, &tok).await.status(), "ok");
    let sdk = webhooks_tests::moto::sdk_config().await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let a = client.get(SUBS, &tok).await;
    assert_eq!((a.http, a.status()), (500, "server_error"));
    let text = a.tree.to_string();
    assert!(
        !text.contains(&table) && !text.contains("Resource") && !text.contains("dynamo"),
        "{text}"
    );
    running.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_invalid_client_on_memory() {
    bad_tokens(Kind::Memory).await;
}

#[tokio::test]
async fn bad_tokens_are_invalid_client_on_dynamodb() {
    bad_tokens(Kind::Aws).await;
}

#[tokio::test]
async fn the_pro_gate_refuses_non_pro_users_when_on_memory() {
    pro_gate(Kind::Memory).await;
}

#[tokio::test]
async fn the_pro_gate_refuses_non_pro_users_when_on_dynamodb() {
    pro_gate(Kind::Aws).await;
}

#[tokio::test]
async fn too_many_requests_are_limited_per_user_on_memory() {
    rate_limit(Kind::Memory).await;
}

#[tokio::test]
async fn too_many_requests_are_limited_per_user_on_dynamodb() {
    rate_limit(Kind::Aws).await;
}

/// The memory backend has no store to break from outside; a store that fails does the same.
#[tokio::test]
async fn store_failures_are_server_errors_on_memory_too() {
    use std::sync::Arc;
    use webhooks_core::ports::store::{Page, StoreError, SubscriptionStore};

    struct Broken;
    #[async_trait::async_trait]
    impl SubscriptionStore for Broken {
        async fn put(
            &self,
            _: &webhooks_core::model::subscription::Subscription,
        ) -> Result<(), StoreError> {
            Err(StoreError::Unavailable(
                "table webhooks-secret-name is on fire".into(),
            ))
        }
        async fn replace(
            &self,
            _: &webhooks_core::model::subscription::Subscription,
        ) -> Result<bool, StoreError> {
            Err(StoreError::Unavailable("on fire".into()))
        }
        async fn get(
            &self,
            _: &webhooks_core::model::identity::Owner,
            _: &webhooks_core::model::ids::SubscriptionId,
        ) -> Result<Option<webhooks_core::model::subscription::Subscription>, StoreError> {
            Err(StoreError::Unavailable(
                "table webhooks-secret-name is on fire".into(),
            ))
        }
        async fn get_many(
            &self,
            _: &[webhooks_core::model::subscription::SubscriptionRef],
        ) -> Result<Vec<webhooks_core::model::subscription::Subscription>, StoreError> {
            Err(StoreError::Unavailable("on fire".into()))
        }
        async fn list_by_owner(
            &self,
            _: &webhooks_core::model::identity::Owner,
        ) -> Result<Vec<webhooks_core::model::subscription::Subscription>, StoreError> {
            Err(StoreError::Unavailable(
                "table webhooks-secret-name is on fire".into(),
            ))
        }
        async fn delete(
            &self,
            _: &webhooks_core::model::identity::Owner,
            _: &webhooks_core::model::ids::SubscriptionId,
        ) -> Result<Option<webhooks_core::model::subscription::Subscription>, StoreError> {
            Err(StoreError::Unavailable("on fire".into()))
        }
        async fn list_by_owner_event(
            &self,
            _: &webhooks_core::model::identity::Owner,
            _: &str,
        ) -> Result<Vec<webhooks_core::model::subscription::SubscriptionRef>, StoreError> {
            Err(StoreError::Unavailable("on fire".into()))
        }
        async fn page_by_event(
            &self,
            _: &webhooks_core::model::identity::Deployment,
            _: &str,
            _: Option<&str>,
            _: usize,
        ) -> Result<Page<webhooks_core::model::subscription::SubscriptionRef>, StoreError> {
            Err(StoreError::Unavailable("on fire".into()))
        }
    }

    let platform = webhooks_local::compose(&webhooks_local::Backend::Memory, runner::settings(&[]))
        .await
        .unwrap();
    let broken = webhooks_api::App::new(
        runner::settings(&[]).api,
        webhooks_api::app::Ports {
            store: Arc::new(Broken),
            events: platform.events.sender.clone(),
            deliveries: platform.deliveries.sender.clone(),
            clock: Arc::new(webhooks_core::model::clock::SystemClock),
            deliverer: platform.deliverer.clone(),
            access: None,
        },
    );
    let running = webhooks_local::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::new(broken),
    )
    .await
    .unwrap();
    let client = Client::new(running.base_url());
    let tok = token(&claims(1, "hq"));
    let a = client.get(SUBS, &tok).await;
    assert_eq!((a.http, a.status()), (500, "server_error"));
    assert!(!a.tree.to_string().contains("fire") && !a.tree.to_string().contains("secret-name"));
    let created = client
        .post_json(
            SUBS,
            &tok,
            &json!({"trigger_url": "https://a.example/h", "event_id": "assign_task"}),
        )
        .await;
    assert_eq!(created.status(), "server_error");
    running.stop().await;
}

/// XML answers parse whatever the strings in them hold: a token's `name` and an echoed
/// `event_id` with control characters (the client's parser panics on malformed XML).
#[tokio::test]
async fn xml_answers_stay_well_formed_with_control_characters_in_input() {
    let running = runner::start(Kind::Memory, &[]).await;
    let client = Client::new(running.base_url());
    let mut odd = claims(41, "hq");
    odd.name = "Ada\u{1}\u{1b}[31m Lovelace\u{ffff}".into();
    let mut publisher = odd.clone();
    publisher.scope = Some("webhooks:publish".into());
    let tok = token(&odd);
    let created = client
        .post_json(
            &format!("{SUBS}.xml"),
            &tok,
            &json!({"trigger_url": "https://hooks.example.com/x", "event_id": "assign_task"}),
        )
        .await;
    assert_eq!(created.status(), "ok_created");
    assert_eq!(
        created.tree["response"]["subscription"]["user"]["name"],
        "Ada\u{fffd}\u{fffd}[31m Lovelace\u{fffd}"
    );
    let listed = client.get(&format!("{SUBS}.xml"), &tok).await;
    assert_eq!(
        listed.tree["response"]["subscriptions_users"][0]["name"],
        "Ada\u{fffd}\u{fffd}[31m Lovelace\u{fffd}"
    );
    let refused = client
        .post_json(
            &format!("{SUBS}.xml"),
            &tok,
            &json!({"trigger_url": "https://hooks.example.com/x", "event_id": "bad\u{0}\u{8}id"}),
        )
        .await;
    assert_eq!(refused.status(), "invalid_request");
    assert!(
        refused.message().contains("bad\u{fffd}\u{fffd}id"),
        "{}",
        refused.message()
    );
    let published = client
        .post_json(
            "/api/v0/webhooks/events.xml",
            &token(&publisher),
            &json!([{"event_id": "no\u{2}such", "object_id": 1, "visible_to": "all"}]),
        )
        .await;
    assert_eq!(published.status(), "invalid_request");
    assert!(
        published.tree["response"]["events"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no\u{fffd}such")
    );
    running.stop().await;
}

/// `object_id` of the wrong JSON type is refused by `trigger` and `dispatch`, saying so.
#[tokio::test]
async fn object_ids_of_the_wrong_json_type_are_refused() {
    let running = runner::start(Kind::Memory, &[]).await;
    let client = Client::new(running.base_url());
    let tok = token(&claims(42, "hq"));
    let created = client
        .post_json(
            SUBS,
            &tok,
            &json!({"trigger_url": "https://hooks.example.com/x", "event_id": "assign_task"}),
        )
        .await;
    let id = created.tree["response"]["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for action in ["trigger", "dispatch"] {
        for (object_id, expected) in [
            (json!([1]), "object_id must be a number, not an array"),
            (
                json!({"id": 1}),
                "object_id must be a number, not an object",
            ),
            (json!(true), "object_id must be a number, not true or false"),
            (json!(1.5), "object_id must be a positive whole number"),
        ] {
            let a = client
                .post_json(
                    &format!("{SUBS}/{id}/{action}"),
                    &tok,
                    &json!({ "object_id": object_id }),
                )
                .await;
            assert_eq!(
                (a.http, a.message()),
                (400, expected),
                "{action} {object_id}"
            );
        }
    }
    running.stop().await;
}

/// `dispatch` without an HTTP answer is `ok` (the dispatch happened and is logged) with
/// `response.status` null and a coarse `error` kind; neither the answer nor the delivery
/// log tells a refused port from anything else, or names the address.
#[tokio::test]
async fn dispatch_without_an_http_answer_says_which_coarse_kind() {
    use std::sync::Arc;
    use webhooks_core::model::identity::Deployment;
    use webhooks_core::model::subscription::{ContentType, Subscription};
    use webhooks_core::model::url::TriggerUrl;
    use webhooks_tests::receiver::{Behaviour, Receiver, refused_url};

    let platform = webhooks_local::compose(
        &webhooks_local::Backend::Memory,
        runner::settings(&[("WEBHOOKS_DELIVERY_TIMEOUT_SECS", "1")]),
    )
    .await
    .unwrap();
    let running = webhooks_local::serve(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        platform.app.clone(),
    )
    .await
    .unwrap();
    let client = Client::new(running.base_url());
    let tok = token(&claims(43, "hq"));
    let subscribe = |url: String| {
        let client = &client;
        let tok = &tok;
        async move {
            let a = client
                .post_json(
                    SUBS,
                    tok,
                    &json!({"trigger_url": url, "event_id": "assign_task"}),
                )
                .await;
            a.tree["response"]["subscription"]["subscription_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let hanging = Receiver::start().await;
    hanging.always(Behaviour::Hang);
    let refused = subscribe(refused_url()).await;
    let slow = subscribe(hanging.url.clone()).await;
    // A private address cannot be subscribed through the API; a row written otherwise (or
    // a name that resolves there) is refused when sending.
    let private = Subscription {
        id: webhooks_core::model::ids::IdGenerator::default()
            .next(&webhooks_core::model::clock::SystemClock),
        owner: webhooks_core::model::identity::Owner {
            deployment: Deployment::parse("hq").unwrap(),
            user_id: 43,
        },
        owner_name: String::new(),
        owner_email: String::new(),
        event_id: "assign_task".into(),
        trigger_url: TriggerUrl::from_stored("http://10.1.2.3:8443/hook".into()),
        content_type: ContentType::Form,
        sealed_secret: None,
        created_at: 0,
        active: true,
        disabled_reason: None,
        previous_secret: None,
        sealed_headers: None,
        retry_schedule: None,
        auth: None,
        rate_limit: None,
    };
    Arc::clone(&platform.app.store).put(&private).await.unwrap();
    let private = private.id.to_string();

    for (id, kind, sentence) in [
        (&refused, "connection", "the receiver could not be reached"),
        (
            &slow,
            "timeout",
            "the receiver did not answer within the time limit",
        ),
        (
            &private,
            "blocked",
            "the receiver's address is not one this installation delivers to",
        ),
    ] {
        for format in ["json", "xml", "yml"] {
            let a = client
                .post_form(
                    &format!("{SUBS}/{id}/dispatch.{format}"),
                    &tok,
                    "object_id=9",
                )
                .await;
            assert_eq!((a.http, a.status()), (200, "ok"), "{kind} {format}");
            let r = &a.tree["response"];
            assert_eq!(r["status"], Value::Null, "{kind} {format}: no HTTP status");
            assert_eq!(r["outcome"], "failed", "{kind} {format}");
            assert_eq!(r["error"], kind, "{kind} {format}");
            assert_eq!(r["reason"], sentence, "{kind} {format}");
            assert!(r["delivery_id"].as_str().unwrap().starts_with("msg_"));
        }
        let log = client.get(&format!("{SUBS}/{id}/deliveries"), &tok).await;
        let entry = &log.tree["response"]["deliveries"][0];
        assert_eq!(
            (entry["error_kind"].as_str(), entry["reason"].as_str()),
            (Some(kind), Some(sentence)),
            "the log says no more than the answer"
        );
        let text = log.tree.to_string();
        for detail in ["refused", "10.1.2.3", "private", "resolve"] {
            assert!(!text.contains(detail), "{detail} in {text}");
        }
    }
    running.stop().await;
}
