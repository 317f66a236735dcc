//! The delivery log contract against the in-memory adapter and against DynamoDB on moto,
//! and the log over the API with its reads counted, on both.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_api::App;
use webhooks_api::app::Ports;
use webhooks_core::adapters::aws::dynamodb_delivery_log::DynamoDeliveryLog;
use webhooks_core::adapters::memory::MemoryDeliveryLog;
use webhooks_core::model::identity::{Deployment, Owner};
use webhooks_core::model::ids::SubscriptionId;
use webhooks_core::model::subscription::SubscriptionRef;
use webhooks_core::ports::delivery_log::{Attempt, AttemptOutcome, DeliveryLog};
use webhooks_core::stages::delivery::Deliverer;
use webhooks_local::Backend;
use webhooks_tests::client::{claims, token};
use webhooks_tests::counting::CountingLog;
use webhooks_tests::{delivery_log_suite, moto, runner, unique};

#[tokio::test]
async fn memory_delivery_log_keeps_the_contract() {
    delivery_log_suite::run(&MemoryDeliveryLog::default()).await;
}

#[tokio::test]
async fn dynamodb_delivery_log_keeps_the_contract() {
    let sdk = moto::sdk_config().await;
    let log = DynamoDeliveryLog::from_sdk(&sdk, unique("delivery-log"));
    log.ensure_table().await.unwrap();
    log.ensure_table()
        .await
        .expect("ensure_table is idempotent, TTL already enabled included");
    delivery_log_suite::run(&log).await;
}

#[tokio::test]
async fn dynamodb_delivery_log_items_are_keyed_by_time_and_expire_by_ttl_in_seconds() {
    let sdk = moto::sdk_config().await;
    let table = unique("delivery-log");
    let log = DynamoDeliveryLog::from_sdk(&sdk, &table);
    log.ensure_table().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&sdk);

    moto::assert_ttl_on_expires_at(&sdk, &table).await;

    let sub = SubscriptionRef {
        id: SubscriptionId::parse("65f0c1a2b3c4d5e6f7a8b9c0").unwrap(),
        owner: Owner {
            deployment: Deployment::parse("hq").unwrap(),
            user_id: 7,
        },
    };
    let attempt = Attempt {
        subscription: sub.clone(),
        delivery_id: "msg_abc".to_owned(),
        event_id: "assign_task".to_owned(),
        object_id: 42,
        attempt: 3,
        outcome: AttemptOutcome::GaveUp,
        http_status: None,
        duration_ms: 10_000,
        error_kind: Some("timeout".to_owned()),
        reason: None,
        response_body: String::new(),
        resource_url: None,
        occurred_at: None,
        subject: None,
        next_attempt_at: None,
        at: 1_700_000_000_123,
        expires_at: 1_702_592_000_999,
    };
    log.record(&attempt).await.unwrap();

    let pk = "hq#7#65f0c1a2b3c4d5e6f7a8b9c0";
    let sk = "1700000000123#msg_abc#0003";
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item
        .item()
        .expect("stored under `{deployment}#{user_id}#{subscription_id}` and a time-ordered key");
    let n = |v: &str| Some(AttributeValue::N(v.into()));
    let s = |v: &str| Some(AttributeValue::S(v.into()));
    assert_eq!(
        item.get("expires_at").cloned(),
        n("1702592000"),
        "Unix seconds, rounded down"
    );
    assert_eq!(item.get("outcome").cloned(), s("gave_up"));
    assert_eq!(item.get("at").cloned(), n("1700000000123"));
    assert_eq!(item.get("attempt").cloned(), n("3"));
    assert_eq!(item.get("error_kind").cloned(), s("timeout"));
    assert_eq!(item.get("response_body").cloned(), s(""));
    for absent in ["http_status", "reason", "next_attempt_at"] {
        assert!(
            !item.contains_key(absent),
            "`{absent}` is left out when None"
        );
    }

    // An early time pads to 13 digits, so it still sorts before a later one.
    let early = Attempt {
        at: 999,
        expires_at: 5_000,
        ..attempt.clone()
    };
    log.record(&early).await.unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S("0000000000999#msg_abc#0003".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(item.item().is_some());
    assert_eq!(
        log.page(&sub, None, 10).await.unwrap().attempts,
        vec![
            Attempt {
                expires_at: 1_702_592_000_000,
                ..attempt
            },
            early
        ],
        "newest first, `expires_at` to the second"
    );
}

/// The delivery log over the API with the log port counted: `_cursor` walks any depth a
/// page at a time, `_page` works within its reach and is refused beyond it without
/// reading anything, and no request reads more than the bound.
async fn api_reads_are_bounded(backend: Backend) {
    let vars = [
        ("WEBHOOKS_SUBSCRIPTIONS_TABLE", unique("subs")),
        ("WEBHOOKS_IDEMPOTENCY_TABLE", unique("idem")),
        ("WEBHOOKS_DELIVERY_LOG_TABLE", unique("log")),
        ("WEBHOOKS_QUEUE_PREFIX", unique("q")),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings = runner::settings(&vars);
    let platform = webhooks_local::compose(&backend, settings.clone())
        .await
        .unwrap();
    let log = Arc::new(CountingLog::new(platform.deliverer.log.clone()));
    let d = &platform.deliverer;
    let deliverer = Arc::new(Deliverer {
        store: d.store.clone(),
        log: log.clone(),
        deliveries: d.deliveries.clone(),
        dead_letters: d.dead_letters.clone(),
        sender: d.sender.clone(),
        sealer: d.sealer.clone(),
        clock: d.clock.clone(),
        settings: d.settings.clone(),
        breaker: Default::default(),
        operator: std::sync::Arc::new(webhooks_core::ports::operator::LogOnly),
        tokens: Default::default(),
        limiter: d.limiter.clone(),
    });
    let app = App::new(
        settings.api,
        Ports {
            store: platform.app.store.clone(),
            events: platform.app.events.clone(),
            deliveries: platform.deliveries.sender.clone(),
            clock: platform.app.clock.clone(),
            deliverer,
            access: None,
        },
    );
    let alice = token(&claims(5, "hq"));
    let get = |path: String, tok: String| {
        let app = &app;
        async move {
            let req = http::Request::get(format!("/api/v0/webhooks/subscriptions{path}"))
                .header("authorization", format!("Bearer {tok}"))
                .body(bytes::Bytes::new())
                .unwrap();
            let resp = webhooks_api::handle(app, req).await;
            serde_json::from_slice::<serde_json::Value>(resp.body()).unwrap()
        }
    };
    let create = |tok: String| {
        let app = &app;
        async move {
            let req = http::Request::post("/api/v0/webhooks/subscriptions")
                .header("authorization", format!("Bearer {tok}"))
                .header("content-type", "application/json")
                .body(bytes::Bytes::from(
                    r#"{"trigger_url": "https://hooks.example.com/a", "event_id": "assign_task"}"#,
                ))
                .unwrap();
            let resp = webhooks_api::handle(app, req).await;
            let tree: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            let id = tree["response"]["subscription"]["subscription_id"]
                .as_str()
                .unwrap()
                .to_owned();
            SubscriptionRef {
                id: SubscriptionId::parse(&id).unwrap(),
                owner: Owner {
                    deployment: Deployment::parse("hq").unwrap(),
                    user_id: 5,
                },
            }
        }
    };
    let sub = create(alice.clone()).await;
    let other = create(alice.clone()).await;

    // 1,010 attempts, one a second: more than `_page` may reach.
    const N: usize = 1010;
    let t0 = 1_700_000_000_000;
    for i in 0..N {
        platform
            .deliverer
            .log
            .record(&Attempt {
                subscription: sub.clone(),
                delivery_id: format!("msg_{i:04}"),
                event_id: "assign_task".to_owned(),
                object_id: i as u64,
                attempt: 1,
                outcome: AttemptOutcome::Delivered,
                http_status: Some(200),
                duration_ms: 5,
                error_kind: None,
                reason: None,
                response_body: String::new(),
                resource_url: None,
                occurred_at: None,
                subject: None,
                next_attempt_at: None,
                at: t0 + i as i64 * 1000,
                expires_at: t0 + 30 * 86_400_000,
            })
            .await
            .unwrap();
    }
    let objects = |tree: &serde_json::Value| -> Vec<u64> {
        tree["response"]["deliveries"]
            .as_array()
            .unwrap_or_else(|| panic!("{tree}"))
            .iter()
            .map(|d| d["object_id"].as_u64().unwrap())
            .collect()
    };
    let newest_first = |from: usize, to: usize| -> Vec<u64> {
        (N - to..N - from).rev().map(|i| i as u64).collect()
    };
    let base = format!("/{}/deliveries", sub.id);

    // The issue's example: `_page=600&_limit=100` no longer reads 60,000 records; it is
    // refused, pointing to `_cursor`, and reads nothing.
    log.take_reads();
    for query in [
        "_page=600&_limit=100",
        "_page=10&_limit=100",
        "_page=100",
        "_page=99999999999999999999999&_limit=1",
    ] {
        let refused = get(format!("{base}?{query}"), alice.clone()).await;
        assert_eq!(refused["meta"]["status"], "invalid_request", "{query}");
        assert_eq!(
            refused["meta"]["message"],
            "_page reaches only the newest 1000 deliveries ((_page + 1) × _limit at most 1000); to read further back, pass response.next_cursor as _cursor",
            "{query}"
        );
    }
    assert_eq!(log.take_reads(), (0, 0), "refused before reading");

    // Within its reach `_page` keeps working, and reads no more than the reach (plus the
    // one record that says whether more follow).
    let last_paged = get(format!("{base}?_page=9&_limit=100"), alice.clone()).await;
    assert_eq!(objects(&last_paged), newest_first(900, 1000));
    assert_eq!(last_paged["response"]["page"], 9);
    assert_eq!(log.take_reads(), (1001, 1001));
    let default_limit = get(format!("{base}?_page=99"), alice.clone()).await;
    assert_eq!(objects(&default_limit), newest_first(990, 1000));
    assert!(log.take_reads().0 <= 1001);
    // Its `next_cursor` goes on past the reach.
    let cursor = last_paged["response"]["next_cursor"].as_str().unwrap();
    let beyond = get(format!("{base}?_limit=100&_cursor={cursor}"), alice.clone()).await;
    assert_eq!(objects(&beyond), newest_first(1000, N));
    assert_eq!(beyond["response"]["next_cursor"], serde_json::Value::Null);

    // `_cursor` walks the whole log, every attempt once, a bounded read per request.
    let mut walked = Vec::new();
    let mut query = format!("{base}?_limit=100");
    let mut requests = 0;
    loop {
        let page = get(query.clone(), alice.clone()).await;
        requests += 1;
        assert_eq!(page["meta"]["status"], "ok", "{page}");
        assert!(page["response"].get("page").is_none());
        walked.extend(objects(&page));
        let (_, largest) = log.take_reads();
        assert!(largest <= 101, "one page and one more record: {largest}");
        match page["response"]["next_cursor"].as_str() {
            Some(next) => query = format!("{base}?_limit=100&_cursor={next}"),
            None => break,
        }
    }
    assert_eq!((requests, walked), (11, newest_first(0, N)));

    // A cursor of another subscription, a forged one, and a cursor with `_page`: refused,
    // each with its sentence.
    let first = get(format!("{base}?_limit=1"), alice.clone()).await;
    let cursor = first["response"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = get(
        format!("/{}/deliveries?_cursor={cursor}", other.id),
        alice.clone(),
    )
    .await;
    assert_eq!(
        (&foreign["meta"]["status"], &foreign["meta"]["message"]),
        (
            &serde_json::json!("invalid_request"),
            &serde_json::json!(
                "_cursor belongs to another subscription's delivery log; pass the next_cursor of this subscription's previous page"
            )
        )
    );
    let mut forged = cursor.clone();
    forged.insert(3, 'A');
    let forged = get(format!("{base}?_cursor={forged}"), alice.clone()).await;
    assert_eq!(
        forged["meta"]["message"],
        "_cursor is not a cursor this API issued; pass response.next_cursor of the previous page unchanged"
    );
    let both = get(format!("{base}?_cursor={cursor}&_page=1"), alice.clone()).await;
    assert_eq!(both["meta"]["status"], "invalid_request");

    // Another user with Alice's cursor and subscription id learns nothing: the answer of
    // an unknown id.
    let bob = get(format!("{base}?_cursor={cursor}"), token(&claims(6, "hq"))).await;
    let unknown = get(
        "/65f0c1a2b3c4d5e6f7a8b9c0/deliveries".to_owned(),
        alice.clone(),
    )
    .await;
    assert_eq!(bob["meta"]["status"], "invalid_request");
    assert_eq!(
        bob["meta"]["message"].as_str().unwrap(),
        unknown["meta"]["message"]
            .as_str()
            .unwrap()
            .replace("65f0c1a2b3c4d5e6f7a8b9c0", sub.id.as_str())
    );
}

#[tokio::test]
async fn api_log_reads_are_bounded_in_memory() {
    api_reads_are_bounded(Backend::Memory).await;
}

#[tokio::test]
async fn api_log_reads_are_bounded_on_dynamodb() {
    api_reads_are_bounded(Backend::Aws(Box::new(moto::sdk_config().await))).await;
}
