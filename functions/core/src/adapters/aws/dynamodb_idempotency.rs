//! Idempotency keys on DynamoDB.
//!
//! One table, one item per claimed key:
//!
//! | attribute | value |
//! |---|---|
//! | `pk` (partition key, S) | `{deployment}#{key}` (a deployment never holds `#`) |
//! | `event_uid` (S) | the event holding the key |
//! | `done` (BOOL) | whether its fan-out finished |
//! | `attempt_id` (S) | the attempt holding the lease |
//! | `lease_until` (N) | Unix **milliseconds** at which the lease ends |
//! | `expires_at` (N) | Unix **seconds** at which the claim ends; the table's TTL attribute |
//!
//! A claim is one conditional `PutItem`:
//!
//! ```text
//! attribute_not_exists(pk) OR expires_at < :now
//!   OR (event_uid = :uid AND done = false
//!       AND (attempt_id = :attempt OR lease_until <= :now_ms OR attribute_not_exists(lease_until)))
//! ```
//!
//! with `ReturnValuesOnConditionCheckFailure = ALL_OLD`, so a refused claim tells, from
//! the item it did not overwrite and without another request, "in progress" (the same
//! event, pending, another attempt's live lease) from "duplicate". DynamoDB applies the
//! condition and the write atomically, so of two racing attempts one is granted. An item
//! written before leases existed has no `lease_until` and counts as an ended lease.
//! TTL deletion is lazy (up to days late), so the condition, not TTL, decides whether a
//! claim has expired; TTL only keeps the table small.
//!
//! The port speaks milliseconds; `expires_at` holds seconds, rounded down for both `now`
//! and the end of the claim, so a claim never ends early and ends at most a second late.
//! A granted claim writes the whole item again, which renews the window and the lease.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use crate::adapters::aws::dynamodb_table::{self, TableSpec, unavailable};
use crate::model::clock::Millis;
use crate::model::identity::Deployment;
use crate::ports::idempotency::{Claim, ClaimTimes, Claimant, IdempotencyStore};
use crate::ports::store::StoreError;

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
            indexes: &[],
            ttl_attribute: Some(EXPIRES_AT),
        };
        dynamodb_table::ensure(&self.client, &self.table, &spec).await
    }
}

/// What a refused claim means, from the item that refused it: the same event, pending,
/// is another attempt's live lease; anything else is a duplicate. Without the item
/// (DynamoDB always returns it here) the answer is "in progress": the message is tried
/// again later rather than dropped.
fn refused_claim(
    item: Option<&std::collections::HashMap<String, AttributeValue>>,
    event_uid: &str,
) -> Claim {
    let Some(item) = item else {
        return Claim::InProgress;
    };
    let same_event = matches!(item.get("event_uid"), Some(AttributeValue::S(u)) if u == event_uid);
    let pending = matches!(item.get("done"), Some(AttributeValue::Bool(false)));
    if same_event && pending {
        Claim::InProgress
    } else {
        Claim::Duplicate
    }
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(
        &self,
        deployment: &Deployment,
        key: &str,
        claimant: &Claimant,
        times: ClaimTimes,
    ) -> Result<Claim, StoreError> {
        let expires_at = to_secs(times.now.saturating_add(times.window));
        let lease_until = times.now.saturating_add(times.lease);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(partition_key(deployment, key)))
            .item("event_uid", AttributeValue::S(claimant.event_uid.clone()))
            .item(EXPIRES_AT, AttributeValue::N(expires_at.to_string()))
            .item("done", AttributeValue::Bool(false))
            .item("attempt_id", AttributeValue::S(claimant.attempt.clone()))
            .item("lease_until", AttributeValue::N(lease_until.to_string()))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (event_uid = :uid AND done = :false \
                 AND (attempt_id = :attempt OR lease_until <= :now_ms OR attribute_not_exists(lease_until)))",
            )
            .expression_attribute_values(":now", AttributeValue::N(to_secs(times.now).to_string()))
            .expression_attribute_values(":now_ms", AttributeValue::N(times.now.to_string()))
            .expression_attribute_values(":uid", AttributeValue::S(claimant.event_uid.clone()))
            .expression_attribute_values(":attempt", AttributeValue::S(claimant.attempt.clone()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .return_values_on_condition_check_failure(
                ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Granted),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    Ok(refused_claim(refused.item(), &claimant.event_uid))
                }
                _ => Err(unavailable(e)),
            },
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
