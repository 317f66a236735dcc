//! A meter for the AWS requests that pass through an [`crate::iam_gate::IamGate`]: each
//! request is counted by the function that made it, its operation and its resource, with
//! the bytes it sent and received, and what AWS bills for it, computed from what went over
//! the wire rather than taken from the emulator:
//!
//! * SQS: one billed request per 64 KB chunk of payload (message bodies and attributes).
//! * DynamoDB writes: write units from item sizes as DynamoDB computes them
//!   ([`item_size`]), 1 per started KB of each item, the larger of the item before and
//!   after the write (the meter reads the old item, and the new one after an
//!   `UpdateItem`, straight from the emulator, unmetered); global secondary index writes
//!   for the projected item; a failed conditional write still costs the existing item's
//!   units (at least 1).
//! * DynamoDB reads: `GetItem` 1 unit per started 4 KB (half when eventually consistent,
//!   at least one); `BatchGetItem` the same per key asked for, each item rounded on its
//!   own; `Query` and `Scan` the sum of the bytes read, rounded once per request.
//!
//! Reads billed on more than what comes back (a projection, a filter) are estimated and
//! counted as such in [`Tally::approximate`]; `Transact*` requests are counted but their
//! units are not computed (also flagged). Nothing here asserts timing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// Bytes in one billed SQS request chunk.
pub const SQS_CHUNK_BYTES: u64 = 64 * 1024;
/// Bytes per DynamoDB write unit.
pub const WRITE_UNIT_BYTES: u64 = 1024;
/// Bytes per DynamoDB read unit (strongly consistent; eventually consistent reads cost half).
pub const READ_UNIT_BYTES: u64 = 4 * 1024;

/// What a line of the bill is about: who called, what, on what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Line {
    /// The function whose gate saw the request (a label given to the gate).
    pub function: String,
    /// `DynamoDB`, `SQS` or `SecretsManager`.
    pub service: String,
    /// The API operation, e.g. `SendMessageBatch`, `BatchWriteItem`.
    pub operation: String,
    /// Table (with `/index/NAME` for an index), queue name or secret id.
    pub resource: String,
}

/// What the requests of one line added up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    /// Requests as billed: SQS counts each 64 KB chunk; other services, each request.
    pub billed_requests: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Requests answered with an error (a failed condition included).
    pub errors: u64,
    pub read_units: f64,
    /// Write units, those of global secondary indexes included.
    pub write_units: f64,
    /// The part of `write_units` spent on global secondary indexes.
    pub index_write_units: f64,
    /// Requests whose units are estimated (projection, filter) or not computed (`Transact*`).
    pub approximate: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.billed_requests += other.billed_requests;
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.errors += other.errors;
        self.read_units += other.read_units;
        self.write_units += other.write_units;
        self.index_write_units += other.index_write_units;
        self.approximate += other.approximate;
    }
}

/// The size DynamoDB gives an item (wire format, `{"name": {"S": "..."}}`): the UTF-8
/// bytes of each attribute name plus its value's size.
pub fn item_size(item: &Map<String, Value>) -> u64 {
    item.iter()
        .map(|(name, v)| name.len() as u64 + value_size(v))
        .sum()
}

/// The size of one attribute value, as DynamoDB documents it: strings their UTF-8 bytes,
/// binaries their raw bytes, numbers 1 byte per two significant digits plus 1, booleans
/// and nulls 1, lists and maps 3 bytes plus 1 per element plus the elements (and a map's
/// names), sets the sum of their elements.
pub fn value_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let strings = |f: fn(&str) -> u64| -> u64 {
        inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(f)
            .sum()
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, |s| s.len() as u64),
        "N" => inner.as_str().map_or(0, number_size),
        "B" => inner.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings(|s| s.len() as u64),
        "NS" => strings(number_size),
        "BS" => strings(base64_len),
        "L" => {
            3 + inner
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| value_size(e) + 1)
                .sum::<u64>()
        }
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, e)| k.len() as u64 + value_size(e) + 1)
                .sum::<u64>()
        }
        _ => 0,
    }
}

/// A number's size: 1 byte per two significant digits (leading and trailing zeros
/// trimmed), plus 1.
fn number_size(text: &str) -> u64 {
    let mantissa = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len() as u64;
    significant.max(1).div_ceil(2) + 1
}

/// The raw length of a base64 text.
fn base64_len(text: &str) -> u64 {
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count() as u64;
    (text.len() as u64 * 3 / 4).saturating_sub(padding)
}

/// Write units for one item of `bytes`: 1 per started KB, at least 1.
pub fn write_units(bytes: u64) -> f64 {
    bytes.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// Read units for `bytes` read in one go: 1 per started 4 KB (at least one), half of that
/// when eventually consistent.
pub fn read_units(bytes: u64, consistent: bool) -> f64 {
    let units = bytes.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

/// Billed SQS requests for a request carrying `payload` bytes: one per 64 KB chunk.
pub fn sqs_billed_requests(payload: u64) -> u64 {
    payload.div_ceil(SQS_CHUNK_BYTES).max(1)
}

/// A table's keys and indexes, as the emulator describes it.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub keys: Vec<String>,
    pub indexes: Vec<Index>,
}

/// A global secondary index: its key attributes and what it projects.
#[derive(Debug, Clone)]
pub struct Index {
    pub keys: Vec<String>,
    /// `None`: every attribute (`ALL`); otherwise the non-key attributes projected
    /// (empty for `KEYS_ONLY`).
    pub projected: Option<Vec<String>>,
}

impl Schema {
    fn key_of(&self, item: &Map<String, Value>) -> Map<String, Value> {
        self.keys
            .iter()
            .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
            .collect()
    }
}

impl Index {
    /// The item as this index holds it, if it holds it at all (a sparse index skips items
    /// without its keys).
    fn project(
        &self,
        table_keys: &[String],
        item: &Map<String, Value>,
    ) -> Option<Map<String, Value>> {
        if !self.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        Some(match &self.projected {
            None => item.clone(),
            Some(extra) => item
                .iter()
                .filter(|(name, _)| {
                    self.keys.contains(name) || table_keys.contains(name) || extra.contains(name)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    fn key_values(&self, item: &Map<String, Value>) -> Vec<Value> {
        self.keys.iter().map(|k| item[k].clone()).collect()
    }
}

/// Write units of changing `old` into `new` (either absent), table and indexes: the table
/// pays the larger of the two; an index pays for what it holds before and after (one write
/// when its key stays, a delete and a put when it moves).
pub fn change_units(
    schema: &Schema,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> (f64, f64) {
    let size = |i: Option<&Map<String, Value>>| i.map_or(0, item_size);
    let table = write_units(size(old).max(size(new)));
    let mut index = 0.0;
    for ix in &schema.indexes {
        let before = old.and_then(|o| ix.project(&schema.keys, o));
        let after = new.and_then(|n| ix.project(&schema.keys, n));
        index += match (&before, &after) {
            (None, None) => 0.0,
            (Some(b), None) => write_units(item_size(b)),
            (None, Some(a)) => write_units(item_size(a)),
            (Some(b), Some(a)) if ix.key_values(b) == ix.key_values(a) => {
                if b == a {
                    0.0
                } else {
                    write_units(item_size(b).max(item_size(a)))
                }
            }
            (Some(b), Some(a)) => write_units(item_size(b)) + write_units(item_size(a)),
        };
    }
    (table + index, index)
}

/// One item a write request touches, with what it was before.
#[derive(Debug, Clone)]
struct Touch {
    table: String,
    key: Map<String, Value>,
    old: Option<Map<String, Value>>,
    /// The item written (`PutItem`, a batch put), if the request says it.
    put: Option<Map<String, Value>>,
    update: bool,
}

/// What [`Meter::before`] learnt for [`Meter::after`].
#[derive(Debug, Default)]
pub struct Prepared {
    touches: Vec<Touch>,
}

/// One request and its answer, as the gate saw them.
pub struct Exchange<'a> {
    /// `X-Amz-Target`, e.g. `DynamoDB_20120810.PutItem`.
    pub target: &'a str,
    pub body: &'a Value,
    pub request_bytes: usize,
    pub status: u16,
    pub answer: &'a [u8],
}

/// Counts what passes through the gates that share it.
pub struct Meter {
    upstream: String,
    client: reqwest::Client,
    schemas: tokio::sync::Mutex<HashMap<String, Arc<Schema>>>,
    tallies: Mutex<BTreeMap<Line, Tally>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
}

/// A function's requests in flight, and the wall time during which it had any.
#[derive(Debug, Default)]
struct InFlight {
    now: u32,
    since: Option<std::time::Instant>,
    busy: std::time::Duration,
}

impl Meter {
    /// A meter whose side reads (old items, table descriptions) go to `upstream`.
    pub fn new(upstream: &str) -> Arc<Meter> {
        Arc::new(Meter {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            schemas: tokio::sync::Mutex::new(HashMap::new()),
            tallies: Mutex::new(BTreeMap::new()),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// A request of `function` starts (its gate received it).
    pub fn begin(&self, function: &str) {
        let mut all = self.in_flight.lock().unwrap();
        let f = all.entry(function.to_owned()).or_default();
        if f.now == 0 {
            f.since = Some(std::time::Instant::now());
        }
        f.now += 1;
    }

    /// A request of `function` ends (its gate answered).
    pub fn end(&self, function: &str) {
        let mut all = self.in_flight.lock().unwrap();
        let f = all.entry(function.to_owned()).or_default();
        f.now = f.now.saturating_sub(1);
        if f.now == 0
            && let Some(since) = f.since.take()
        {
            f.busy += since.elapsed();
        }
    }

    /// The wall time during which `function` had at least one request in flight (the
    /// emulator's latency, the gate's and the meter's own reads included).
    pub fn busy(&self, function: &str) -> std::time::Duration {
        self.in_flight
            .lock()
            .unwrap()
            .get(function)
            .map_or(std::time::Duration::ZERO, |f| f.busy)
    }

    /// Everything counted so far, by line.
    pub fn tallies(&self) -> BTreeMap<Line, Tally> {
        self.tallies.lock().unwrap().clone()
    }

    /// Forgets everything counted so far (after setting things up).
    pub fn reset(&self) {
        self.tallies.lock().unwrap().clear();
    }

    /// Before a request goes upstream: reads the items a write will change.
    pub async fn before(&self, target: &str, body: &Value) -> Prepared {
        let Some(operation) = dynamodb_operation(target) else {
            return Prepared::default();
        };
        let mut touches = Vec::new();
        match operation {
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                let table = str_of(body, "TableName");
                let schema = self.schema(&table).await;
                let put = body.get("Item").and_then(Value::as_object).cloned();
                let key = match (&put, body.get("Key").and_then(Value::as_object)) {
                    (Some(item), _) => schema.key_of(item),
                    (None, Some(key)) => key.clone(),
                    (None, None) => Map::new(),
                };
                touches.push(Touch {
                    table,
                    key,
                    old: None,
                    put: if operation == "PutItem" { put } else { None },
                    update: operation == "UpdateItem",
                });
            }
            "BatchWriteItem" => {
                for (table, writes) in body["RequestItems"].as_object().into_iter().flatten() {
                    let schema = self.schema(table).await;
                    for w in writes.as_array().into_iter().flatten() {
                        let put = w["PutRequest"]["Item"].as_object().cloned();
                        let key = match &put {
                            Some(item) => schema.key_of(item),
                            None => w["DeleteRequest"]["Key"]
                                .as_object()
                                .cloned()
                                .unwrap_or_default(),
                        };
                        touches.push(Touch {
                            table: table.clone(),
                            key,
                            old: None,
                            put,
                            update: false,
                        });
                    }
                }
            }
            _ => {}
        }
        let olds =
            futures::future::join_all(touches.iter().map(|t| self.read_item(&t.table, &t.key)))
                .await;
        for (t, old) in touches.iter_mut().zip(olds) {
            t.old = old;
        }
        Prepared { touches }
    }

    /// After the answer came back: counts the request under `function`.
    pub async fn after(&self, function: &str, exchange: Exchange<'_>, prepared: Prepared) {
        let Exchange {
            target,
            body,
            request_bytes,
            status,
            answer,
        } = exchange;
        let (service, operation) = target.split_once('.').unwrap_or(("unknown", target));
        let answer_json: Value = serde_json::from_slice(answer).unwrap_or(Value::Null);
        let mut tally = Tally {
            requests: 1,
            billed_requests: 1,
            request_bytes: request_bytes as u64,
            response_bytes: answer.len() as u64,
            errors: u64::from(!(200..300).contains(&status)),
            ..Tally::default()
        };
        let (service, resource) = if service.starts_with("DynamoDB_") {
            self.dynamodb_units(operation, body, &prepared, status, &answer_json, &mut tally)
                .await;
            ("DynamoDB", dynamodb_resource(operation, body))
        } else if service == "AmazonSQS" {
            tally.billed_requests = sqs_billed_requests(sqs_payload(operation, body, &answer_json));
            let url = str_of(body, "QueueUrl");
            let name = if url.is_empty() {
                str_of(body, "QueueName")
            } else {
                url.rsplit('/').next().unwrap_or_default().to_owned()
            };
            ("SQS", name)
        } else if service == "secretsmanager" {
            let id = str_of(body, "SecretId");
            let short = id.rsplit(':').next().unwrap_or_default().to_owned();
            ("SecretsManager", short)
        } else {
            (service, String::new())
        };
        let line = Line {
            function: function.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            resource,
        };
        self.tallies
            .lock()
            .unwrap()
            .entry(line)
            .or_default()
            .add(&tally);
    }

    async fn dynamodb_units(
        &self,
        operation: &str,
        body: &Value,
        prepared: &Prepared,
        status: u16,
        answer: &Value,
        tally: &mut Tally,
    ) {
        let consistent = |v: &Value| v["ConsistentRead"].as_bool().unwrap_or(false);
        let narrowed = |v: &Value| {
            v.get("ProjectionExpression").is_some() || v.get("AttributesToGet").is_some()
        };
        let ok = (200..300).contains(&status);
        let condition_failed = str_of(answer, "__type").contains("ConditionalCheckFailed");
        match operation {
            "GetItem" if ok => {
                let size = answer["Item"].as_object().map_or(0, item_size);
                tally.read_units += read_units(size, consistent(body));
                tally.approximate += u64::from(narrowed(body));
            }
            "BatchGetItem" if ok => {
                for (table, ask) in body["RequestItems"].as_object().into_iter().flatten() {
                    let asked = ask["Keys"].as_array().map_or(0, Vec::len);
                    let unprocessed = answer["UnprocessedKeys"][table]["Keys"]
                        .as_array()
                        .map_or(0, Vec::len);
                    let items: Vec<&Map<String, Value>> = answer["Responses"][table]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_object)
                        .collect();
                    for item in &items {
                        tally.read_units += read_units(item_size(item), consistent(ask));
                    }
                    // A key that finds nothing still costs the smallest read.
                    let missing = asked.saturating_sub(unprocessed + items.len());
                    tally.read_units += missing as f64 * read_units(0, consistent(ask));
                    tally.approximate += u64::from(narrowed(ask));
                }
            }
            "Query" | "Scan" if ok => {
                let mut bytes: u64 = answer["Items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .map(item_size)
                    .sum();
                let count = answer["Count"].as_u64().unwrap_or(0);
                let scanned = answer["ScannedCount"].as_u64().unwrap_or(count);
                if scanned > count {
                    // Filtered out after reading: assume those items were of the same size.
                    bytes = (bytes * scanned).checked_div(count).unwrap_or(0);
                    tally.approximate += 1;
                }
                tally.approximate += u64::from(narrowed(body) || body.get("Select").is_some());
                tally.read_units += read_units(bytes, consistent(body));
            }
            "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" => {
                let unprocessed = unprocessed_keys(answer);
                for t in &prepared.touches {
                    let schema = self.schema(&t.table).await;
                    if !ok {
                        if condition_failed {
                            tally.write_units += write_units(t.old.as_ref().map_or(0, item_size));
                        }
                        continue;
                    }
                    let left_out = unprocessed
                        .iter()
                        .any(|(table, m)| *table == t.table && schema.key_of(m) == t.key);
                    if left_out {
                        continue;
                    }
                    let new = if t.update {
                        self.read_item(&t.table, &t.key).await
                    } else {
                        t.put.clone()
                    };
                    let (all, index) = change_units(&schema, t.old.as_ref(), new.as_ref());
                    tally.write_units += all;
                    tally.index_write_units += index;
                }
            }
            op if op.starts_with("Transact") => tally.approximate += 1,
            _ => {}
        }
    }

    /// The item at `key` now, read strongly consistent from upstream, unmetered.
    async fn read_item(&self, table: &str, key: &Map<String, Value>) -> Option<Map<String, Value>> {
        if key.is_empty() {
            return None;
        }
        let answer = self
            .upstream_call(
                "GetItem",
                &json!({"TableName": table, "Key": key, "ConsistentRead": true}),
            )
            .await?;
        answer["Item"].as_object().cloned()
    }

    /// A table's keys and indexes, described once.
    async fn schema(&self, table: &str) -> Arc<Schema> {
        let mut schemas = self.schemas.lock().await;
        if let Some(s) = schemas.get(table) {
            return s.clone();
        }
        let described = self
            .upstream_call("DescribeTable", &json!({"TableName": table}))
            .await
            .unwrap_or(Value::Null);
        let schema = Arc::new(schema_of(&described["Table"]));
        schemas.insert(table.to_owned(), schema.clone());
        schema
    }

    async fn upstream_call(&self, operation: &str, body: &Value) -> Option<Value> {
        let answer = self
            .client
            .post(&self.upstream)
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20261128/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .ok()?;
        if !answer.status().is_success() {
            return None;
        }
        let bytes = answer.bytes().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Keys and indexes from a `DescribeTable` answer's `Table`.
pub fn schema_of(table: &Value) -> Schema {
    let names = |schema: &Value| -> Vec<String> {
        schema
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
            .collect()
    };
    let indexes = table["GlobalSecondaryIndexes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ix| Index {
            keys: names(&ix["KeySchema"]),
            projected: match ix["Projection"]["ProjectionType"].as_str() {
                Some("ALL") => None,
                Some("INCLUDE") => Some(
                    ix["Projection"]["NonKeyAttributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect(),
                ),
                _ => Some(Vec::new()),
            },
        })
        .collect();
    Schema {
        keys: names(&table["KeySchema"]),
        indexes,
    }
}

fn dynamodb_operation(target: &str) -> Option<&str> {
    let (service, operation) = target.split_once('.')?;
    service.starts_with("DynamoDB_").then_some(operation)
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The table (and index) a DynamoDB request is about; the tables of a batch, joined.
fn dynamodb_resource(operation: &str, body: &Value) -> String {
    if operation.starts_with("Batch") {
        let tables: Vec<&str> = body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(t, _)| t.as_str())
            .collect();
        return tables.join(",");
    }
    let table = str_of(body, "TableName");
    match body.get("IndexName").and_then(Value::as_str) {
        Some(index) => format!("{table}/index/{index}"),
        None => table,
    }
}

/// The (table, key) pairs a `BatchWriteItem` answer says it did not write.
fn unprocessed_keys(answer: &Value) -> Vec<(String, Map<String, Value>)> {
    let mut out = Vec::new();
    for (table, writes) in answer["UnprocessedItems"].as_object().into_iter().flatten() {
        for w in writes.as_array().into_iter().flatten() {
            if let Some(key) = w["DeleteRequest"]["Key"].as_object() {
                out.push((table.clone(), key.clone()));
            }
            if let Some(item) = w["PutRequest"]["Item"].as_object() {
                // Matched by the key taken from it, like the meter's own.
                out.push((table.clone(), item.clone()));
            }
        }
    }
    out
}

/// The bytes SQS bills a request by: message bodies and attributes sent or received.
fn sqs_payload(operation: &str, body: &Value, answer: &Value) -> u64 {
    let message = |m: &Value, body_key: &str| -> u64 {
        let attributes: u64 = m["MessageAttributes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, a)| {
                name.len() as u64
                    + str_of(a, "DataType").len() as u64
                    + str_of(a, "StringValue").len() as u64
                    + base64_len(&str_of(a, "BinaryValue"))
            })
            .sum();
        str_of(m, body_key).len() as u64 + attributes
    };
    match operation {
        "SendMessage" => message(body, "MessageBody"),
        "SendMessageBatch" => body["Entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| message(e, "MessageBody"))
            .sum(),
        "ReceiveMessage" => answer["Messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| message(m, "Body"))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn item_sizes_follow_dynamodb() {
        // A name's bytes plus the value's: "hello" is 5; 12345 is 5 digits, 3 bytes + 1.
        assert_eq!(item_size(&item(json!({"pk": {"S": "hello"}}))), 7);
        assert_eq!(item_size(&item(json!({"n": {"N": "12345"}}))), 1 + 4);
        assert_eq!(number_size("1000"), 2, "trailing zeros trimmed");
        assert_eq!(number_size("0.001"), 2, "leading zeros trimmed");
        assert_eq!(number_size("-12.5"), 3);
        assert_eq!(item_size(&item(json!({"b": {"B": "aGVsbG8="}}))), 1 + 5);
        assert_eq!(
            item_size(&item(json!({"t": {"BOOL": true}, "z": {"NULL": true}}))),
            4
        );
        // A list of two strings: 3 + (1 + 1) + (2 + 1).
        assert_eq!(
            item_size(&item(json!({"l": {"L": [{"S": "a"}, {"S": "bc"}]}}))),
            1 + 3 + 2 + 3
        );
        // A map: 3 + ("k" 1 + "v" 1 + 1).
        assert_eq!(
            item_size(&item(json!({"m": {"M": {"k": {"S": "v"}}}}))),
            1 + 3 + 3
        );
        assert_eq!(item_size(&item(json!({"s": {"SS": ["ab", "c"]}}))), 1 + 3);
    }

    #[test]
    fn units_round_up_as_dynamodb_bills() {
        assert_eq!(write_units(0), 1.0, "a write costs at least one unit");
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(4500), 5.0);
        assert_eq!(read_units(0, true), 1.0, "a miss still costs a read");
        assert_eq!(read_units(4096, true), 1.0);
        assert_eq!(read_units(4097, true), 2.0);
        assert_eq!(
            read_units(4097, false),
            1.0,
            "eventually consistent is half"
        );
        assert_eq!(read_units(100, false), 0.5);
        assert_eq!(sqs_billed_requests(0), 1);
        assert_eq!(sqs_billed_requests(64 * 1024), 1);
        assert_eq!(sqs_billed_requests(64 * 1024 + 1), 2);
    }

    #[test]
    fn index_writes_are_billed_for_the_projected_item() {
        let schema = Schema {
            keys: vec!["pk".into(), "sk".into()],
            indexes: vec![Index {
                keys: vec!["gsi1pk".into(), "sk".into()],
                projected: Some(vec![]),
            }],
        };
        let big = "x".repeat(3000);
        let new = item(json!({
            "pk": {"S": "hq#1"}, "sk": {"S": "abc"}, "gsi1pk": {"S": "hq#create_task"},
            "trigger_url": {"S": big},
        }));
        // Table: ~3 KB → 3 units; index: keys only (tiny) → 1.
        assert_eq!(change_units(&schema, None, Some(&new)), (4.0, 1.0));
        // Deleting it: the same.
        assert_eq!(change_units(&schema, Some(&new), None), (4.0, 1.0));
        // Without the index key the index holds nothing.
        let sparse = item(json!({"pk": {"S": "hq#1"}, "sk": {"S": "abc"}}));
        assert_eq!(change_units(&schema, None, Some(&sparse)), (1.0, 0.0));
        // Moving the index key: a delete and a put in the index.
        let mut moved = new.clone();
        moved.insert("gsi1pk".into(), json!({"S": "hq#update_task"}));
        assert_eq!(change_units(&schema, Some(&new), Some(&moved)), (5.0, 2.0));
        // Changing a non-projected attribute leaves the index alone.
        let mut touched = new.clone();
        touched.insert("done".into(), json!({"BOOL": true}));
        assert_eq!(
            change_units(&schema, Some(&new), Some(&touched)),
            (3.0, 0.0)
        );
    }
}
