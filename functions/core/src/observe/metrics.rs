//! What the stages count: deliveries by outcome and their duration, jobs per fan-out,
//! failed access check questions,
//! events accepted and refused.
//!
//! A measurement is a CloudWatch embedded metric format (EMF) document emitted as a
//! `tracing` event on [`TARGET`]; the Lambda telemetry writes it as its own stdout line,
//! which CloudWatch Logs turns into metrics (no AWS call, nothing to batch or flush).
//! Where nothing listens on the target (the local runner, tests), the document is not
//! even built. The namespace is `WEBHOOKS_METRICS_NAMESPACE`, `Webhooks` by default.
//!
//! A batch's measurements share documents: one per outcome for its delivery attempts, one
//! for its fanned-out events, the individual values as EMF's lists (at most 100 a
//! document). CloudWatch computes the same statistics from them as from a document each.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::ports::delivery_log::AttemptOutcome;

/// The `tracing` target of metric documents.
pub const TARGET: &str = "webhooks::metrics";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// The delivery attempts of one batch: for each outcome, one document with `Deliveries`
/// (how many) and `DeliveryDuration` (every attempt's, as EMF's list of values). A
/// document per batch and outcome instead of one per attempt: the metric lines were most
/// of the delivery function's CloudWatch Logs bytes per delivery.
pub fn delivery_attempts(attempts: impl IntoIterator<Item = (AttemptOutcome, Duration)>) {
    if !enabled() {
        return;
    }
    let mut by_outcome: Vec<(AttemptOutcome, Vec<f64>)> = Vec::new();
    for (outcome, duration) in attempts {
        let millis = duration.as_secs_f64() * 1000.0;
        match by_outcome.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, durations)) => durations.push(millis),
            None => by_outcome.push((outcome, vec![millis])),
        }
    }
    for (outcome, durations) in by_outcome {
        for chunk in durations.chunks(MAX_VALUES) {
            emit(
                &[
                    ("Deliveries", Sample::One(chunk.len() as f64), Unit::Count),
                    ("DeliveryDuration", Sample::Many(chunk), Unit::Milliseconds),
                ],
                &[("Outcome", outcome.as_str())],
            );
        }
    }
}

/// Jobs put back on the queue, not attempted, because their subscription's receiver is
/// slow or failing (see [`crate::policy::breaker`]): `DeliveriesDeferred`, once per batch.
pub fn deferred(jobs: usize) {
    if jobs > 0 {
        emit(
            &[("DeliveriesDeferred", Sample::One(jobs as f64), Unit::Count)],
            &[],
        );
    }
}

/// Jobs put back on the queue, not attempted, because their subscription's rate limit
/// was reached in the second (see [`crate::policy::rate_limit`]): `DeliveriesRateLimited`,
/// once per batch.
pub fn rate_limited(jobs: usize) {
    if jobs > 0 {
        emit(
            &[(
                "DeliveriesRateLimited",
                Sample::One(jobs as f64),
                Unit::Count,
            )],
            &[],
        );
    }
}

/// The events of a batch fanned out: `FanoutJobs`, the jobs each one made (each page of
/// one continued in a new message counts apart), as EMF's list of values (one document
/// per 100 events).
pub fn fanned_out(jobs_per_event: &[usize]) {
    if !enabled() {
        return;
    }
    let values: Vec<f64> = jobs_per_event.iter().map(|&j| j as f64).collect();
    for chunk in values.chunks(MAX_VALUES) {
        emit(&[("FanoutJobs", Sample::Many(chunk), Unit::Count)], &[]);
    }
}

/// Questions to the product's access check that failed (not 2xx, wrong shape, too
/// large, too slow, a refused address): `AccessCheckFailures`. Their log lines carry the
/// event's `event_uid` and `object_id`.
pub fn access_check_failures(questions: usize) {
    if questions == 0 {
        return;
    }
    emit(
        &[(
            "AccessCheckFailures",
            Sample::One(questions as f64),
            Unit::Count,
        )],
        &[],
    );
}

/// Events offered by producers: `EventsAccepted` and `EventsRefused`, by `Source`
/// (`http` for the API, `queue` for events refused by the fan-out).
pub fn events(source: &'static str, accepted: usize, refused: usize) {
    emit(
        &[
            ("EventsAccepted", Sample::One(accepted as f64), Unit::Count),
            ("EventsRefused", Sample::One(refused as f64), Unit::Count),
        ],
        &[("Source", source)],
    );
}

fn namespace() -> &'static str {
    static NAMESPACE: OnceLock<String> = OnceLock::new();
    NAMESPACE.get_or_init(|| {
        std::env::var("WEBHOOKS_METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "Webhooks".to_owned())
    })
}

/// Values a document may hold for one metric (EMF's limit).
pub const MAX_VALUES: usize = 100;

/// A metric's value in a document: one number, or a list of them (each a sample, as if
/// each had its own document).
#[derive(Debug, Clone, Copy)]
pub enum Sample<'a> {
    One(f64),
    Many(&'a [f64]),
}

impl Sample<'_> {
    fn to_json(self) -> Value {
        match self {
            Self::One(v) => Value::from(v),
            Self::Many([v]) => Value::from(*v),
            Self::Many(vs) => Value::from(vs.to_vec()),
        }
    }
}

fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

fn emit(metrics: &[(&str, Sample<'_>, Unit)], dimensions: &[(&str, &str)]) {
    if !enabled() {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let document = emf_document(namespace(), now, metrics, dimensions);
    tracing::info!(target: TARGET, "{document}");
}

/// The EMF document for these values: one metric directive, one dimension set.
pub fn emf_document(
    namespace: &str,
    timestamp_ms: i64,
    metrics: &[(&str, Sample<'_>, Unit)],
    dimensions: &[(&str, &str)],
) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [names],
                "Metrics": metrics
                    .iter()
                    .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).into(), Value::from(*v));
    }
    for (name, value, _) in metrics {
        doc.insert((*name).into(), value.to_json());
    }
    Value::Object(doc).to_string()
}
