//! The delivery log on DynamoDB.
//!
//! One table, one item per attempt:
//!
//! | attribute | value |
//! |---|---|
//! | `pk` (partition key, S) | `{deployment}#{user_id}#{subscription_id}`: the subscription, owner first |
//! | `sk` (sort key, S) | `{at}#{delivery_id}#{attempt}`: `at` in milliseconds zero-padded to 13 digits, `attempt` to 4, so the key sorts by time |
//! | `expires_at` (N) | Unix **seconds** after which the record may go; the table's TTL attribute |
//!
//! and every other field of [`Attempt`] as an attribute of its own (`outcome` as its
//! snake_case name; fields that are `None` are left out). Recording one attempt is one
//! `PutItem` (a dispatch); recording a batch's attempts is one `BatchWriteItem` per 25;
//! reading a page is a `Query` on `pk`, newest first (`ScanIndexForward = false`), with
//! `Limit` = what the page still needs plus one and `ExclusiveStartKey` = the cursor's
//! sort key under this subscription's `pk`. Another owner's subscription with the same id
//! lives under another `pk`, so it never shows up, whatever the cursor says.
//!
//! `expires_at` is kept to the second (rounded down, like the idempotency table), so it
//! reads back as a whole number of seconds in milliseconds.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use crate::adapters::aws::dynamodb_idempotency::to_secs;
use crate::adapters::aws::dynamodb_table::{self, TableSpec, unavailable};
use crate::model::identity::{Deployment, Owner};
use crate::model::ids::SubscriptionId;
use crate::model::subscription::SubscriptionRef;
use crate::ports::delivery_log::{
    Attempt, AttemptOutcome, DeliveryLog, LogCursor, LogPage, page_of,
};
use crate::ports::store::StoreError;

/// The TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoDeliveryLog {
    client: Client,
    table: String,
}

/// The partition key of a subscription's attempts: `{deployment}#{user_id}#{subscription_id}`.
pub fn partition_key(subscription: &SubscriptionRef) -> String {
    format!(
        "{}#{}#{}",
        subscription.owner.deployment, subscription.owner.user_id, subscription.id
    )
}

/// The sort key of an attempt: [`Attempt::sort_key`].
pub fn sort_key(attempt: &Attempt) -> String {
    attempt.sort_key()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item(a: &Attempt) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), s(partition_key(&a.subscription))),
        ("sk".to_owned(), s(sort_key(a))),
        ("delivery_id".to_owned(), s(&a.delivery_id)),
        ("event_id".to_owned(), s(&a.event_id)),
        ("object_id".to_owned(), n(a.object_id)),
        ("attempt".to_owned(), n(a.attempt)),
        ("outcome".to_owned(), s(a.outcome.as_str())),
        ("duration_ms".to_owned(), n(a.duration_ms)),
        ("response_body".to_owned(), s(&a.response_body)),
        ("at".to_owned(), n(a.at)),
        (EXPIRES_AT.to_owned(), n(to_secs(a.expires_at))),
    ]);
    if let Some(status) = a.http_status {
        item.insert("http_status".into(), n(status));
    }
    if let Some(kind) = &a.error_kind {
        item.insert("error_kind".into(), s(kind));
    }
    if let Some(reason) = &a.reason {
        item.insert("reason".into(), s(reason));
    }
    if let Some(url) = &a.resource_url {
        item.insert("resource_url".into(), s(url));
    }
    if let Some(occurred) = &a.occurred_at {
        item.insert("occurred_at".into(), s(occurred));
    }
    if let Some(subject) = &a.subject {
        item.insert("subject".into(), s(subject));
    }
    if let Some(next) = a.next_attempt_at {
        item.insert("next_attempt_at".into(), n(next));
    }
    item
}

fn corrupt(name: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "delivery log attribute `{name}` missing or malformed"
    ))
}

fn text(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(corrupt(name)),
    }
}

fn opt_text(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => text(item, name).map(Some),
    }
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

fn opt_number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => number(item, name).map(Some),
    }
}

fn parse_outcome(v: &str) -> Option<AttemptOutcome> {
    use AttemptOutcome::*;
    [Delivered, Retrying, GaveUp, Unsubscribed, Failed]
        .into_iter()
        .find(|o| o.as_str() == v)
}

/// The subscription back from the partition key. The user id is all digits and the
/// subscription id holds no `#`, so splitting from the right is unambiguous.
fn parse_partition_key(pk: &str) -> Result<SubscriptionRef, StoreError> {
    let bad = || StoreError::Corrupt(format!("bad delivery log partition key `{pk}`"));
    let (rest, id) = pk.rsplit_once('#').ok_or_else(bad)?;
    let (dep, user) = rest.rsplit_once('#').ok_or_else(bad)?;
    Ok(SubscriptionRef {
        id: SubscriptionId::parse(id).map_err(|_| bad())?,
        owner: Owner {
            deployment: Deployment::parse(dep).map_err(|_| bad())?,
            user_id: user.parse().map_err(|_| bad())?,
        },
    })
}

fn from_item(item: &Item) -> Result<Attempt, StoreError> {
    let outcome = text(item, "outcome")?;
    Ok(Attempt {
        subscription: parse_partition_key(&text(item, "pk")?)?,
        delivery_id: text(item, "delivery_id")?,
        event_id: text(item, "event_id")?,
        object_id: number(item, "object_id")?,
        attempt: number(item, "attempt")?,
        outcome: parse_outcome(&outcome).ok_or_else(|| corrupt("outcome"))?,
        http_status: opt_number(item, "http_status")?,
        duration_ms: number(item, "duration_ms")?,
        error_kind: opt_text(item, "error_kind")?,
        reason: opt_text(item, "reason")?,
        response_body: opt_text(item, "response_body")?.unwrap_or_default(),
        resource_url: opt_text(item, "resource_url")?,
        occurred_at: opt_text(item, "occurred_at")?,
        subject: opt_text(item, "subject")?,
        next_attempt_at: opt_number(item, "next_attempt_at")?,
        at: number(item, "at")?,
        expires_at: number::<i64>(item, EXPIRES_AT)?.saturating_mul(1000),
    })
}

impl DynamoDeliveryLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// Creates the table (on-demand, keys `pk` and `sk`) when it does not exist, waits
    /// until it is active, and enables TTL on `expires_at`. The local runner and the tests
    /// use it; on AWS the SAM template owns the table.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let spec = TableSpec {
            partition_key: "pk",
            sort_key: Some("sk"),
            indexes: &[],
            ttl_attribute: Some(EXPIRES_AT),
        };
        dynamodb_table::ensure(&self.client, &self.table, &spec).await
    }
}

/// The items of `attempts` as `BatchWriteItem` requests: at most 25 each, each attempt
/// once (a request may not name a key twice).
fn write_chunks(attempts: &[Attempt]) -> Result<Vec<Vec<WriteRequest>>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let requests: Vec<WriteRequest> = attempts
        .iter()
        .filter(|a| seen.insert((partition_key(&a.subscription), sort_key(a))))
        .map(|a| {
            let put = PutRequest::builder()
                .set_item(Some(to_item(a)))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(requests.chunks(25).map(<[_]>::to_vec).collect())
}

impl DynamoDeliveryLog {
    /// One `BatchWriteItem` of at most 25 items, and again for what it left unprocessed.
    async fn write_chunk(&self, chunk: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut pending = chunk;
        for attempt in 0u32.. {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(unavailable)?;
            pending = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            if attempt >= 8 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6))).await;
        }
        Err(StoreError::Unavailable(format!(
            "BatchWriteItem kept {} delivery log items unprocessed",
            pending.len()
        )))
    }
}

#[async_trait]
impl DeliveryLog for DynamoDeliveryLog {
    async fn record(&self, attempt: &Attempt) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(attempt)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// `BatchWriteItem`, 25 items a request, up to four requests at once; items left
    /// unprocessed are sent again with a growing pause. A request may not name one key
    /// twice, so the same attempt twice is written once.
    async fn record_all(&self, attempts: Vec<Attempt>) -> Result<(), StoreError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let chunks = write_chunks(&attempts)?;
        stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// At most `limit` attempts after `after`, newest first.
    ///
    /// Cost: `limit + 1` items at most, whatever the position (the cursor is a key, not an
    /// offset): one `Query` with `Limit = limit + 1`, and another only when a 1 MB
    /// response stopped short, each asking for what is still missing. The extra item
    /// says whether a next page exists, so `next` is `None` on the last page.
    /// Reads are eventually consistent (half the price): an attempt recorded a moment ago
    /// may be missing for up to a second.
    async fn page(
        &self,
        subscription: &SubscriptionRef,
        after: Option<&LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        if after.is_some_and(|c| c.subscription() != &subscription.id) {
            return Err(StoreError::BadCursor);
        }
        if limit == 0 {
            return Ok(page_of(Vec::new(), 0));
        }
        let pk = partition_key(subscription);
        let wanted = limit.saturating_add(1);
        let mut start: Option<Item> = after.map(|c| {
            Item::from([
                ("pk".to_owned(), s(&pk)),
                ("sk".to_owned(), s(c.position())),
            ])
        });
        let mut read: Vec<Attempt> = Vec::with_capacity(wanted.min(1001));
        while read.len() < wanted {
            let still = (wanted - read.len()).min(i32::MAX as usize) as i32;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(&pk))
                .scan_index_forward(false)
                .limit(still)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                read.push(from_item(item)?);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(page_of(read, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_requests_hold_25_items_and_never_one_attempt_twice() {
        let mut attempts: Vec<Attempt> = (0..60).map(|n| Attempt::example(1, n)).collect();
        // The same job handed over twice, attempted in the same millisecond.
        attempts.insert(3, attempts[2].clone());
        let chunks = write_chunks(&attempts).unwrap();
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![25, 25, 10]
        );
        let mut keys = std::collections::HashSet::new();
        for request in chunks.iter().flatten() {
            let item = request.put_request().unwrap().item();
            let key = (item["pk"].as_s().unwrap(), item["sk"].as_s().unwrap());
            assert!(keys.insert(key), "{key:?} twice");
        }
        assert!(write_chunks(&[]).unwrap().is_empty());
    }
}
