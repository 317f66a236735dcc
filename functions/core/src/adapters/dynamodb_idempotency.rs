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
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

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

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
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

    /// Creates the table (on-demand, key `pk`) when it does not exist, waits until it is
    /// active, and enables TTL on `expires_at`. The local runner and the tests use it; on
    /// AWS the SAM template owns the table.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(unavailable(e)),
        };
        if !exists {
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("pk")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("name and type set"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("pk")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("name and type set"),
                )
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Another process created it in the meantime.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_resource_in_use_exception()) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(unavailable)?;
            match out.table().and_then(|t| t.table_status()) {
                Some(TableStatus::Active) | None => return Ok(()),
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        }
        Err(StoreError::Unavailable(format!(
            "table `{}` did not become active within a minute",
            self.table
        )))
    }

    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let described = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(unavailable)?;
        if let Some(d) = described.time_to_live_description()
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
            && d.attribute_name() == Some(EXPIRES_AT)
        {
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .expect("enabled and attribute name set");
        match self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Enabled in the meantime (DynamoDB refuses to enable it twice).
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.message()
                        .is_some_and(|m| m.to_ascii_lowercase().contains("already enabled"))
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
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
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR event_uid = :uid",
            )
            .expression_attribute_values(":now", AttributeValue::N(to_secs(now).to_string()))
            .expression_attribute_values(":uid", AttributeValue::S(event_uid.to_owned()))
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
}
