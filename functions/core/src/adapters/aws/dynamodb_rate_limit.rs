//! Rate-limit counters on DynamoDB: one table of its own, one item per subscription and
//! second:
//!
//! | attribute | value |
//! |---|---|
//! | `pk` (partition key, S) | `{deployment}#{subscription_id}#{second}` (Unix seconds) |
//! | `taken` (N) | slots asked for in that second, those past the limit included |
//! | `expires_at` (N) | Unix seconds, a minute after the second; the table's TTL attribute |
//!
//! A block of slots is one `UpdateItem` with `ADD taken :n` and `ReturnValues =
//! UPDATED_NEW`: DynamoDB applies additions to an item one at a time, so every caller
//! sees its own count. One item takes about 1,000 writes a second, hence blocks (one per
//! subscription per batch) rather than one write per delivery. TTL deletion is lazy; an
//! old second's item is never read again, it only waits to be deleted.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::adapters::aws::dynamodb_table::{self, TableSpec, unavailable};
use crate::model::subscription::SubscriptionRef;
use crate::ports::rate_limit::RateLimiter;
use crate::ports::store::StoreError;

/// The TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";
/// How long after its second an item may be deleted.
const KEEP_SECS: i64 = 60;

#[derive(Clone, Debug)]
pub struct DynamoRateLimiter {
    client: Client,
    table: String,
}

impl DynamoRateLimiter {
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
            indexes: &[],
            ttl_attribute: Some(EXPIRES_AT),
        };
        dynamodb_table::ensure(&self.client, &self.table, &spec).await
    }
}

#[async_trait]
impl RateLimiter for DynamoRateLimiter {
    async fn take(
        &self,
        subscription: &SubscriptionRef,
        second: i64,
        wanted: u32,
    ) -> Result<u64, StoreError> {
        let key = format!(
            "{}#{}#{second}",
            subscription.owner.deployment, subscription.id
        );
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key))
            .update_expression("ADD taken :n SET expires_at = :expires")
            .expression_attribute_values(":n", AttributeValue::N(wanted.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((second + KEEP_SECS).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(unavailable)?;
        match updated.attributes().and_then(|a| a.get("taken")) {
            Some(AttributeValue::N(n)) => {
                n.parse().map_err(|_| StoreError::Corrupt("taken".into()))
            }
            _ => Err(StoreError::Corrupt("taken".into())),
        }
    }
}
