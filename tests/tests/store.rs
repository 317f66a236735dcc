//! The store contract against the in-memory adapter and against DynamoDB on moto.

use webhooks_core::adapters::aws::dynamodb::DynamoSubscriptionStore;
use webhooks_core::adapters::memory::MemorySubscriptionStore;
use webhooks_tests::{moto, store_suite, unique};

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    store_suite::run(&MemorySubscriptionStore::default()).await;
}

#[tokio::test]
async fn dynamodb_store_keeps_the_contract() {
    let sdk = moto::sdk_config().await;
    let store = DynamoSubscriptionStore::from_sdk(&sdk, unique("subs"));
    store.ensure_table().await.unwrap();
    store
        .ensure_table()
        .await
        .expect("ensure_table is idempotent");
    store_suite::run(&store).await;
}
