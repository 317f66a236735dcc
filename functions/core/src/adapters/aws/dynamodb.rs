//! The subscription store on DynamoDB.
//!
//! One table, keyed so that every access pattern is a single `GetItem`, `Query` or
//! `DeleteItem` (never a `Scan`):
//!
//! | attribute | value |
//! |---|---|
//! | `pk` (partition key) | `{deployment}#{user_id}`: the owner |
//! | `sk` (sort key) | `{subscription_id}`: time-ordered, so a query lists oldest first |
//! | `gsi1pk` | `{deployment}#{event_id}`: partition key of the `by_event` index (sort key `sk`, keys only) |
//! | `gsi2pk` | `{deployment}#{user_id}#{event_id}`: partition key of the `by_owner_event` index (sort key `sk`, keys only) |
//! | `active` | `false` when paused or disabled (absent: active); such an item has no `gsi1pk`/`gsi2pk`, so no index holds it |
//! | `disabled_reason`, `previous_secret`, `previous_secret_until` | when set |
//! | `headers` | when set: the subscription's own headers, sealed as one value like `secret` |
//! | `retry_schedule` | when set: its own delays in seconds, a list of numbers |
//! | `auth` | when set: a map of `token_url`, `client_id`, `scope` and `audience` (when set) and `client_secret`, sealed like `secret` |
//! | `rate_limit` | when set: its own deliveries per second, a number |
//!
//! * get one: `GetItem(pk, sk)`; another owner's id is simply absent.
//! * list by owner: `Query(pk)`, following `LastEvaluatedKey`.
//! * delete: `DeleteItem(pk, sk)` returning the old item, so existence costs nothing extra.
//! * replace (update, pause, rotate, disable): `PutItem` of the whole item, on condition
//!   that it exists, so a subscription deleted meanwhile stays deleted.
//! * fan-out "subscriptions of deployment D to event E": `Query` on `by_event`
//!   (`gsi1pk = D#E`), paginated; keys only, so a 1 MB page holds thousands.
//! * fan-out "subscriptions of user U of D to event E" (an event few users may see):
//!   `Query` on `by_owner_event` (`gsi2pk = D#U#E`); half a read unit for up to ~40.
//! * delivery "these subscriptions still exist?": `BatchGetItem` of up to 100 keys.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::adapters::aws::dynamodb_table::{self, TableSpec, unavailable};
use crate::model::identity::{Deployment, Owner};
use crate::model::ids::SubscriptionId;
use crate::model::receiver::{Auth, OAuthClient, RateLimit, RetrySchedule};
use crate::model::subscription::{ContentType, PreviousSecret, Subscription, SubscriptionRef};
use crate::model::url::TriggerUrl;
use crate::ports::store::{Page, StoreError, SubscriptionStore};

pub const BY_EVENT_INDEX: &str = "by_event";
pub const BY_OWNER_EVENT_INDEX: &str = "by_owner_event";

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoSubscriptionStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn owner_pk(owner: &Owner) -> String {
    format!("{}#{}", owner.deployment, owner.user_id)
}

fn owner_event_pk(owner: &Owner, event_id: &str) -> String {
    format!("{}#{}#{}", owner.deployment, owner.user_id, event_id)
}

fn key(owner: &Owner, id: &SubscriptionId) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(owner_pk(owner))),
        ("sk".to_owned(), s(id.as_str())),
    ])
}

fn parse_owner_pk(pk: &str) -> Result<Owner, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("bad partition key `{pk}`"));
    let (dep, user) = pk.rsplit_once('#').ok_or_else(corrupt)?;
    Ok(Owner {
        deployment: Deployment::parse(dep).map_err(|_| corrupt())?,
        user_id: user.parse().map_err(|_| corrupt())?,
    })
}

/// The item a subscription is stored as (benches write many at once, with
/// `BatchWriteItem`).
pub fn to_item(sub: &Subscription) -> Item {
    let mut item = key(&sub.owner, &sub.id);
    // Only an active subscription is in the fan-out's indexes: a paused one costs nothing
    // per event.
    if sub.active {
        item.insert(
            "gsi1pk".into(),
            s(format!("{}#{}", sub.owner.deployment, sub.event_id)),
        );
        item.insert(
            "gsi2pk".into(),
            s(owner_event_pk(&sub.owner, &sub.event_id)),
        );
    } else {
        item.insert("active".into(), AttributeValue::Bool(false));
    }
    if let Some(reason) = &sub.disabled_reason {
        item.insert("disabled_reason".into(), s(reason));
    }
    if let Some(previous) = &sub.previous_secret {
        item.insert("previous_secret".into(), s(&previous.sealed));
        item.insert(
            "previous_secret_until".into(),
            AttributeValue::N(previous.until.to_string()),
        );
    }
    item.insert("user_name".into(), s(&sub.owner_name));
    item.insert("user_email".into(), s(&sub.owner_email));
    item.insert("event_id".into(), s(&sub.event_id));
    item.insert("trigger_url".into(), s(sub.trigger_url.as_str()));
    item.insert("content_type".into(), s(sub.content_type.as_str()));
    item.insert(
        "created_at".into(),
        AttributeValue::N(sub.created_at.to_string()),
    );
    if let Some(sealed) = &sub.sealed_secret {
        item.insert("secret".into(), s(sealed));
    }
    if let Some(sealed) = &sub.sealed_headers {
        item.insert("headers".into(), s(sealed));
    }
    if let Some(schedule) = &sub.retry_schedule {
        item.insert(
            "retry_schedule".into(),
            AttributeValue::L(
                schedule
                    .delays()
                    .iter()
                    .map(|d| AttributeValue::N(d.to_string()))
                    .collect(),
            ),
        );
    }
    if let Some(auth) = &sub.auth {
        let mut map = HashMap::from([
            ("token_url".to_owned(), s(auth.client.token_url.as_str())),
            ("client_id".to_owned(), s(&auth.client.client_id)),
            ("client_secret".to_owned(), s(&auth.sealed_client_secret)),
        ]);
        if let Some(scope) = &auth.client.scope {
            map.insert("scope".into(), s(scope));
        }
        if let Some(audience) = &auth.client.audience {
            map.insert("audience".into(), s(audience));
        }
        item.insert("auth".into(), AttributeValue::M(map));
    }
    if let Some(limit) = sub.rate_limit {
        item.insert(
            "rate_limit".into(),
            AttributeValue::N(limit.per_second().to_string()),
        );
    }
    item
}

/// The `auth` attribute, when there is one.
fn auth(item: &Item) -> Result<Option<Auth>, StoreError> {
    match item.get("auth") {
        None => Ok(None),
        Some(AttributeValue::M(map)) => {
            let field = |name: &str| text(map, name).ok().map(str::to_owned);
            let required =
                |name: &str| field(name).ok_or_else(|| StoreError::Corrupt(format!("auth.{name}")));
            Ok(Some(Auth {
                client: OAuthClient {
                    token_url: TriggerUrl::from_stored(required("token_url")?),
                    client_id: required("client_id")?,
                    scope: field("scope"),
                    audience: field("audience"),
                },
                sealed_client_secret: required("client_secret")?,
            }))
        }
        Some(_) => Err(StoreError::Corrupt("auth".into())),
    }
}

/// The `rate_limit` attribute, when there is one.
fn rate_limit(item: &Item) -> Result<Option<RateLimit>, StoreError> {
    match item.get("rate_limit") {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(|n| Some(RateLimit::from_stored(n)))
            .map_err(|_| StoreError::Corrupt("rate_limit".into())),
        Some(_) => Err(StoreError::Corrupt("rate_limit".into())),
    }
}

/// The `retry_schedule` attribute, when there is one.
fn retry_schedule(item: &Item) -> Result<Option<RetrySchedule>, StoreError> {
    let corrupt = || StoreError::Corrupt("retry_schedule".into());
    match item.get("retry_schedule") {
        None => Ok(None),
        Some(AttributeValue::L(delays)) => delays
            .iter()
            .map(|d| match d {
                AttributeValue::N(n) => n.parse().map_err(|_| corrupt()),
                _ => Err(corrupt()),
            })
            .collect::<Result<Vec<u32>, _>>()
            .map(|d| Some(RetrySchedule::from_stored(d))),
        Some(_) => Err(corrupt()),
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::Corrupt(format!(
            "attribute `{name}` missing or not a string"
        ))),
    }
}

fn from_item(item: &Item) -> Result<Subscription, StoreError> {
    let owner = parse_owner_pk(text(item, "pk")?)?;
    let id =
        SubscriptionId::parse(text(item, "sk")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let created_at = match item.get("created_at") {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| StoreError::Corrupt("created_at".into()))?,
        _ => 0,
    };
    Ok(Subscription {
        id,
        owner,
        owner_name: text(item, "user_name").unwrap_or_default().to_owned(),
        owner_email: text(item, "user_email").unwrap_or_default().to_owned(),
        event_id: text(item, "event_id")?.to_owned(),
        trigger_url: TriggerUrl::from_stored(text(item, "trigger_url")?.to_owned()),
        content_type: ContentType::parse(text(item, "content_type")?)
            .ok_or_else(|| StoreError::Corrupt("content_type".into()))?,
        sealed_secret: text(item, "secret").ok().map(str::to_owned),
        created_at,
        active: !matches!(item.get("active"), Some(AttributeValue::Bool(false))),
        disabled_reason: text(item, "disabled_reason").ok().map(str::to_owned),
        previous_secret: match (
            text(item, "previous_secret"),
            item.get("previous_secret_until"),
        ) {
            (Ok(sealed), Some(AttributeValue::N(until))) => Some(PreviousSecret {
                sealed: sealed.to_owned(),
                until: until
                    .parse()
                    .map_err(|_| StoreError::Corrupt("previous_secret_until".into()))?,
            }),
            _ => None,
        },
        sealed_headers: text(item, "headers").ok().map(str::to_owned),
        retry_schedule: retry_schedule(item)?,
        auth: auth(item)?,
        rate_limit: rate_limit(item)?,
    })
}

/// Every item a query finds, read by `read`, following `LastEvaluatedKey` (one request
/// per 1 MB).
async fn query_all<T>(
    query: QueryFluentBuilder,
    read: fn(&Item) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut found = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = query
            .clone()
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(unavailable)?;
        for item in out.items() {
            found.push(read(item)?);
        }
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(found),
        }
    }
}

/// The subscription an index item (keys only) points to.
fn key_ref(item: &Item) -> Result<SubscriptionRef, StoreError> {
    Ok(SubscriptionRef {
        owner: parse_owner_pk(text(item, "pk")?)?,
        id: SubscriptionId::parse(text(item, "sk")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

/// `LastEvaluatedKey` as an opaque cursor: its string attributes, JSON, base64url.
fn encode_cursor(key: &Item) -> Result<String, StoreError> {
    let mut plain = std::collections::BTreeMap::new();
    for (k, v) in key {
        match v {
            AttributeValue::S(v) => {
                plain.insert(k.clone(), v.clone());
            }
            _ => return Err(StoreError::Corrupt("non-string key attribute".into())),
        }
    }
    let json = serde_json::to_vec(&plain).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(B64URL.encode(json))
}

fn decode_cursor(cursor: &str, expected_gsi1pk: &str) -> Result<Item, StoreError> {
    let json = B64URL.decode(cursor).map_err(|_| StoreError::BadCursor)?;
    let plain: HashMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| StoreError::BadCursor)?;
    if plain.get("gsi1pk").map(String::as_str) != Some(expected_gsi1pk) || plain.len() != 3 {
        return Err(StoreError::BadCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

impl DynamoSubscriptionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_sdk(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    /// Creates the table (on-demand, with the `by_event` and `by_owner_event` indexes) when it does not exist.
    /// The local runner and the tests use it; on AWS the SAM template owns the table.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let spec = TableSpec {
            partition_key: "pk",
            sort_key: Some("sk"),
            indexes: &[
                (BY_EVENT_INDEX, "gsi1pk", "sk"),
                (BY_OWNER_EVENT_INDEX, "gsi2pk", "sk"),
            ],
            ttl_attribute: None,
        };
        dynamodb_table::ensure(&self.client, &self.table, &spec).await
    }
}

#[async_trait]
impl SubscriptionStore for DynamoSubscriptionStore {
    async fn put(&self, sub: &Subscription) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(sub)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn replace(&self, sub: &Subscription) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(sub)))
            .condition_expression("attribute_exists(pk)")
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

    async fn get(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(from_item).transpose()
    }

    async fn get_many(&self, keys: &[SubscriptionRef]) -> Result<Vec<Subscription>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        // BatchGetItem takes 100 keys, and refuses duplicates.
        let mut unique: Vec<Item> = Vec::new();
        for k in keys {
            let item = key(&k.owner, &k.id);
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        for chunk in unique.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            );
            let mut attempt = 0u32;
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    found.push(from_item(item)?);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if pending.is_some() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Unavailable(
                            "BatchGetItem kept leaving keys unprocessed".into(),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6)))
                        .await;
                }
            }
        }
        Ok(found)
    }

    async fn list_by_owner(&self, owner: &Owner) -> Result<Vec<Subscription>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(owner_pk(owner)))
            .consistent_read(true);
        query_all(query, from_item).await
    }

    async fn delete(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        match out.attributes() {
            Some(item) if !item.is_empty() => from_item(item).map(Some),
            _ => Ok(None),
        }
    }

    async fn list_by_owner_event(
        &self,
        owner: &Owner,
        event_id: &str,
    ) -> Result<Vec<SubscriptionRef>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_OWNER_EVENT_INDEX)
            .key_condition_expression("gsi2pk = :p")
            .expression_attribute_values(":p", s(owner_event_pk(owner, event_id)));
        query_all(query, key_ref).await
    }

    async fn page_by_event(
        &self,
        deployment: &Deployment,
        event_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<SubscriptionRef>, StoreError> {
        let partition = format!("{deployment}#{event_id}");
        let start = cursor.map(|c| decode_cursor(c, &partition)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_EVENT_INDEX)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", s(&partition))
            .limit(limit.clamp(1, i32::MAX as usize) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let items = out
            .items()
            .iter()
            .map(key_ref)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = match out.last_evaluated_key() {
            Some(k) if !k.is_empty() => Some(encode_cursor(k)?),
            _ => None,
        };
        Ok(Page { items, next })
    }
}
