//! The delivery log contract against the in-memory adapter and against DynamoDB on moto.

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_core::adapters::dynamodb_delivery_log::DynamoDeliveryLog;
use webhooks_core::adapters::memory::MemoryDeliveryLog;
use webhooks_core::delivery_log::{Attempt, AttemptOutcome, DeliveryLog};
use webhooks_core::identity::{Deployment, Owner};
use webhooks_core::ids::SubscriptionId;
use webhooks_core::subscription::SubscriptionRef;
use webhooks_tests::{delivery_log_suite, moto, unique};

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
        log.list(&sub, 0, 10).await.unwrap(),
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
