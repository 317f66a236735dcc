//! What the stages count: deliveries by outcome and their duration, jobs per fan-out,
//! events accepted and refused.
//!
//! A measurement is a CloudWatch embedded metric format (EMF) document emitted as a
//! `tracing` event on [`TARGET`]; the Lambda telemetry writes it as its own stdout line,
//! which CloudWatch Logs turns into metrics (no AWS call, nothing to batch or flush).
//! Where nothing listens on the target (the local runner, tests), the document is not
//! even built. The namespace is `WEBHOOKS_METRICS_NAMESPACE`, `Webhooks` by default.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::delivery_log::AttemptOutcome;

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

/// One delivery attempt: `Deliveries` (count) and `DeliveryDuration` by `Outcome`.
pub fn delivery_attempt(outcome: AttemptOutcome, duration: Duration) {
    emit(
        &[
            ("Deliveries", 1.0, Unit::Count),
            (
                "DeliveryDuration",
                duration.as_secs_f64() * 1000.0,
                Unit::Milliseconds,
            ),
        ],
        &[("Outcome", outcome.as_str())],
    );
}

/// A job put back on the queue, not attempted, because its subscription's receiver is
/// slow or failing (see [`crate::breaker`]): `DeliveriesDeferred`.
pub fn deferred() {
    emit(&[("DeliveriesDeferred", 1.0, Unit::Count)], &[]);
}

/// One event fanned out (its last page): `FanoutJobs`, the jobs it made in all.
pub fn fanned_out(jobs: usize) {
    emit(&[("FanoutJobs", jobs as f64, Unit::Count)], &[]);
}

/// Events offered by producers: `EventsAccepted` and `EventsRefused`, by `Source`
/// (`http` for the API, `queue` for events refused by the fan-out).
pub fn events(source: &'static str, accepted: usize, refused: usize) {
    emit(
        &[
            ("EventsAccepted", accepted as f64, Unit::Count),
            ("EventsRefused", refused as f64, Unit::Count),
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

fn emit(metrics: &[(&str, f64, Unit)], dimensions: &[(&str, &str)]) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
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
    metrics: &[(&str, f64, Unit)],
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
        doc.insert((*name).into(), Value::from(*value));
    }
    Value::Object(doc).to_string()
}
