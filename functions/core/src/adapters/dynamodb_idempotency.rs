//! Idempotency keys on DynamoDB.
//!
//! One table, one item per claimed key:
//!
//! | attribute | value |
//! |---|---|
//! | `pk` (partition key, S) | `{deployment}#{key}` (a deployment never holds `#`) |
//! | `event_uid` (S) | the event holding the key |
//! | `expires_at` (N) | Unix **seconds** at which the claim ends; the table's TTL attribute |
//!
//! A claim is one conditional `PutItem`:
//! `attribute_not_exists(pk) OR expires_at < :now OR event_uid = :uid`. TTL deletion is lazy
//! (up to days late), so the condition, not TTL, decides whether a claim has expired; TTL
//! only keeps the table small.
//!
//! The port speaks milliseconds; the item holds seconds, rounded down for both `now` and
//! the end of the claim, so a claim never ends early and ends at most a second late. A
//! claim by the event holding the key writes the item again, which extends its window.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::adapters::dynamodb_table::{self, TableSpec, unavailable};
use crate::clock::Millis;
use crate::idempotency::IdempotencyStore;
use crate::identity::Deployment;
use crate::store::StoreError;

/// The TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";

#[derive(Clone, Debug)]
pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

/// The partition key of `key` in `deployment`.
pub fn partition_key(deployment: &Deployment, key: &str) -> String {
    format!("{deployment}#{key}")
}

/// Milliseconds to the whole Unix seconds the table holds (rounded down).
pub fn to_secs(millis: Millis) -> i64 {
    millis.div_euclid(1000)
}

impl DynamoIdempotencyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// Creates the table (on-demand, key `pk`, TTL on `expires_at`) when it does not
    /// exist. The local runner and the tests use it; on AWS the SAM template owns it.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let spec = TableSpec {
            partition_key: "pk",
            sort_key: None,
            index: None,
            ttl_attribute: Some(EXPIRES_AT),
        };
        dynamodb_table::ensure(&self.client, &self.table, &spec).await
    }
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
        now: Millis,
        window: Millis,
    ) -> Result<bool, StoreError> {
        let expires_at = to_secs(now.saturating_add(window));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(partition_key(deployment, key)))
            .item("event_uid", AttributeValue::S(event_uid.to_owned()))
            .item(EXPIRES_AT, AttributeValue::N(expires_at.to_string()))
            .item("done", AttributeValue::Bool(false))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (event_uid = :uid AND done = :false)",
            )
            .expression_attribute_values(":now", AttributeValue::N(to_secs(now).to_string()))
            .expression_attribute_values(":uid", AttributeValue::S(event_uid.to_owned()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn complete(
        &self,
        deployment: &Deployment,
        key: &str,
        event_uid: &str,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(partition_key(deployment, key)))
            .update_expression("SET done = :true")
            .condition_expression("event_uid = :uid")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":uid", AttributeValue::S(event_uid.to_owned()))
            .send()
            .await;
        match update {
            // Another event took the key over after the window: nothing of ours to finish.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
            Ok(_) => Ok(()),
        }
    }
}
