//! The idempotency contract against the in-memory adapter and against DynamoDB on moto.

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_core::adapters::aws::dynamodb_idempotency::DynamoIdempotencyStore;
use webhooks_core::adapters::memory::MemoryIdempotencyStore;
use webhooks_core::model::identity::Deployment;
use webhooks_core::ports::idempotency::{Claim, ClaimTimes, IdempotencyStore};
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
    let times = ClaimTimes {
        now: 1_700_000_000_999,
        window: 5_000,
        lease: 2_500,
    };
    assert_eq!(
        store
            .claim(
                &hq,
                "k#1",
                &idempotency_suite::claimant("e1", "att_1"),
                times
            )
            .await
            .unwrap(),
        Claim::Granted
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
    assert_eq!(item.get("done"), Some(&AttributeValue::Bool(false)));
    assert_eq!(
        item.get("attempt_id"),
        Some(&AttributeValue::S("att_1".into()))
    );
    assert_eq!(
        item.get("lease_until"),
        Some(&AttributeValue::N("1700000003499".into())),
        "Unix milliseconds"
    );
}

/// A claim written before leases existed (no `attempt_id`, no `lease_until`) is pending
/// with its lease ended: the same event takes it over, another one is a duplicate.
#[tokio::test]
async fn dynamodb_idempotency_claims_from_before_leases_can_be_taken_over() {
    let sdk = moto::sdk_config().await;
    let table = unique("idempotency");
    let store = DynamoIdempotencyStore::from_sdk(&sdk, &table);
    store.ensure_table().await.unwrap();
    aws_sdk_dynamodb::Client::new(&sdk)
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("hq#old".into()))
        .item("event_uid", AttributeValue::S("e1".into()))
        .item("done", AttributeValue::Bool(false))
        .item("expires_at", AttributeValue::N("1700086400".into()))
        .send()
        .await
        .unwrap();
    let hq = Deployment::parse("hq").unwrap();
    let times = idempotency_suite::times(1_700_000_000_000);
    let claim = |uid: &str| {
        let who = idempotency_suite::claimant(uid, "att_new");
        let (store, hq) = (&store, &hq);
        async move { store.claim(hq, "old", &who, times).await.unwrap() }
    };
    assert_eq!(claim("e2").await, Claim::Duplicate);
    assert_eq!(claim("e1").await, Claim::Granted);
}
