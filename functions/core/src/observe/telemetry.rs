//! Logging and metrics set-up for the binaries. Nothing logs tokens, secrets or bodies.
//!
//! On Lambda ([`init_lambda`]) every log line is one JSON object, the form the template's
//! `LogFormat: JSON` expects: `level`, `target`, `message`, the event's fields, and the
//! fields of the spans it happened in, all at the top level, so the runtime's `requestId`
//! and the delivery stage's `delivery_id` (a field of each line an attempt writes, and of
//! its span at debug level) can be searched and filtered on directly. The
//! level comes from `AWS_LAMBDA_LOG_LEVEL` (the template's `ApplicationLogLevel`), else
//! `RUST_LOG`, else `info`.
//!
//! Metrics ([`crate::observe::metrics`]) leave as CloudWatch embedded metric format lines on
//! stdout: CloudWatch turns them into metrics, with no AWS call from the function.
//! Locally they are dropped.

use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Targets, filter_fn};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::observe::metrics::TARGET as METRICS_TARGET;

/// The log filter: Lambda's application log level, else `RUST_LOG`, else `info`.
fn filter(lambda_level: Option<String>) -> EnvFilter {
    let level = lambda_level.map(|l| match l.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => "info",
    });
    match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    }
}

/// JSON log lines and EMF metric lines on stdout, for the Lambda functions.
pub fn init_lambda() {
    let logs = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_writer(std::io::stdout)
        .with_filter(filter(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok()))
        .with_filter(filter_fn(|m| m.target() != METRICS_TARGET));
    let metrics = MetricLines::new(std::io::stdout)
        .with_filter(Targets::new().with_target(METRICS_TARGET, tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(metrics)
        .try_init();
}

/// Human-readable lines on stderr, for the local runner; metrics are not written. Colours
/// only on a terminal: a file or a pipe gets plain text (and the runner spends no time on
/// escape codes nobody sees).
pub fn init_local() {
    use std::io::IsTerminal;
    let filter = filter(None).add_directive(
        format!("{METRICS_TARGET}=off")
            .parse()
            .expect("a valid directive"),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// The error and everything under it, outermost first, for a log line that gives the
/// whole reason. An `io::Error` hides the error it wraps from `source()` (it reports that
/// error's source instead), so step into it explicitly.
pub fn error_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    })
}

/// One JSON object per event, span fields flattened beside the event's own.
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = Map::new();
        let meta = event.metadata();
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        // Outer spans first, so an inner span's field wins over an outer one's.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// Writes the message of each metrics event, an EMF document, as one line.
pub struct MetricLines<W> {
    make_writer: W,
}

impl<W> MetricLines<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

struct MessageOnly(Option<String>);

impl Visit for MessageOnly {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S, W> Layer<S> for MetricLines<W>
where
    S: Subscriber,
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut message = MessageOnly(None);
        event.record(&mut message);
        if let Some(document) = message.0 {
            let mut out = self.make_writer.make_writer();
            let _ = writeln!(out, "{document}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::Instrument;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("every line is JSON"))
                .collect()
        }
    }

    fn subscriber(logs: Buffer, metrics: Buffer) -> impl Subscriber + Send + Sync {
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(FlatJson)
                    .with_writer(logs)
                    .with_filter(filter(Some("INFO".into())))
                    .with_filter(filter_fn(|m| m.target() != METRICS_TARGET)),
            )
            .with(
                MetricLines::new(metrics)
                    .with_filter(Targets::new().with_target(METRICS_TARGET, tracing::Level::INFO)),
            )
    }

    #[test]
    fn span_fields_are_top_level_fields_of_each_line() {
        let (logs, metrics) = (Buffer::default(), Buffer::default());
        tracing::subscriber::with_default(subscriber(logs.clone(), metrics.clone()), || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
            let _outer = invoke.enter();
            let delivery = tracing::info_span!("delivery", delivery_id = "msg_1");
            let _inner = delivery.enter();
            tracing::info!(status = 200u64, "delivery attempt");
            tracing::debug!("below the level: not written");
        });
        let lines = logs.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["requestId"], "req-1");
        assert_eq!(line["delivery_id"], "msg_1");
        assert_eq!(line["status"], 200);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "delivery attempt");
        assert!(metrics.lines().is_empty());
    }

    #[tokio::test]
    async fn metrics_are_emf_lines_apart_from_the_logs() {
        use crate::ports::delivery_log::AttemptOutcome::{Delivered, Retrying};
        let (logs, metrics) = (Buffer::default(), Buffer::default());
        let _guard = tracing::subscriber::set_default(subscriber(logs.clone(), metrics.clone()));
        let ms = std::time::Duration::from_millis;
        async {
            crate::observe::metrics::delivery_attempts([(Retrying, ms(42))]);
            // A batch: one document per outcome, the durations as a list of values.
            let mut batch = vec![(Delivered, ms(5)), (Retrying, ms(7)), (Delivered, ms(9))];
            // More than EMF's 100 values: a second document for the rest.
            batch.extend((0..150).map(|i| (Delivered, ms(i))));
            crate::observe::metrics::delivery_attempts(batch);
            crate::observe::metrics::fanned_out(&[1, 100, 3]);
            crate::observe::metrics::deferred(0);
        }
        .instrument(tracing::info_span!("delivery", delivery_id = "msg_2"))
        .await;
        assert!(logs.lines().is_empty(), "metrics are not log lines");
        let lines = metrics.lines();
        let doc = &lines[0];
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Webhooks");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Outcome"]]));
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([
                {"Name": "Deliveries", "Unit": "Count"},
                {"Name": "DeliveryDuration", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(doc["Outcome"], "retrying");
        assert_eq!(doc["Deliveries"], 1.0);
        assert_eq!(doc["DeliveryDuration"], 42.0);
        assert!(doc["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);

        // The batch: delivered (100 values, then the other 52), retrying; no document for
        // zero deferred jobs.
        let summary: Vec<(String, f64, usize)> = lines[1..4]
            .iter()
            .map(|d| {
                let n = d["DeliveryDuration"].as_array().map_or(1, Vec::len);
                (
                    d["Outcome"].as_str().unwrap().to_owned(),
                    d["Deliveries"].as_f64().unwrap(),
                    n,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("delivered".to_owned(), 100.0, 100),
                ("delivered".to_owned(), 52.0, 52),
                ("retrying".to_owned(), 1.0, 1),
            ]
        );
        assert_eq!(
            lines[1]["DeliveryDuration"].as_array().unwrap()[..3],
            [5.0, 9.0, 0.0]
        );
        assert_eq!(lines[3]["DeliveryDuration"], 7.0);
        assert_eq!(lines[4]["FanoutJobs"], serde_json::json!([1.0, 100.0, 3.0]));
        assert_eq!(lines.len(), 5, "{lines:?}");
    }

    #[test]
    fn lambda_log_levels_map_to_filters() {
        assert_eq!(filter(Some("DEBUG".into())).to_string(), "debug");
        assert_eq!(filter(Some("FATAL".into())).to_string(), "error");
        assert_eq!(filter(Some("bogus".into())).to_string(), "info");
    }
}
