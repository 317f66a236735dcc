//! The idempotency contract against the in-memory adapter and against DynamoDB on moto.

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_core::adapters::dynamodb_idempotency::DynamoIdempotencyStore;
use webhooks_core::adapters::memory::MemoryIdempotencyStore;
use webhooks_core::idempotency::IdempotencyStore;
use webhooks_core::identity::Deployment;
use webhooks_tests::{idempotency_suite, moto, unique};

#[tokio::test]
async fn memory_idempotency_keeps_the_contract() {
    idempotency_suite::run(&MemoryIdempotencyStore::default()).await;
}

#[tokio::test]
async fn dynamodb_idempotency_keeps_the_contract() {
    let sdk = moto::sdk_config().await;
    let store = DynamoIdempotencyStore::from_sdk(&sdk, unique("idempotency"));
    store.ensure_table().await.unwrap();
    store
        .ensure_table()
        .await
        .expect("ensure_table is idempotent, TTL already enabled included");
    idempotency_suite::run(&store).await;
}

#[tokio::test]
async fn dynamodb_idempotency_items_expire_by_ttl_in_seconds() {
    let sdk = moto::sdk_config().await;
    let table = unique("idempotency");
    let store = DynamoIdempotencyStore::from_sdk(&sdk, &table);
    store.ensure_table().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&sdk);

    moto::assert_ttl_on_expires_at(&sdk, &table).await;

    let hq = Deployment::parse("hq").unwrap();
    assert!(
        store
            .claim(&hq, "k#1", "e1", 1_700_000_000_999, 5_000)
            .await
            .unwrap()
    );
    let item = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("hq#k#1".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item
        .item()
        .expect("the claim is stored under `{deployment}#{key}`");
    assert_eq!(item.get("event_uid"), Some(&AttributeValue::S("e1".into())));
    assert_eq!(
        item.get("expires_at"),
        Some(&AttributeValue::N("1700000005".into())),
        "Unix seconds, rounded down"
    );
}
