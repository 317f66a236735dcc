//! What a million deliveries cost on the AWS bill, measured through the real adapters.
//!
//! The stack of `template.yaml` is made in moto ([`crate::deployed::Deployed`]); the three
//! functions are composed in this process as their `main`s compose them, each with the
//! environment the template gives it and its AWS endpoint pointed at its own
//! [`IamGate`] holding its role. Every AWS request goes through a gate, which refuses what
//! the role does not allow and counts the rest in one [`Meter`]: requests by function,
//! operation and table or queue, SQS's 64 KB chunks, and DynamoDB's read and write units
//! computed from the item sizes on the wire (see [`crate::aws_meter`]).
//!
//! A scenario publishes events through the API handler as API Gateway hands them over
//! (`POST /api/v0/webhooks/events`, batches of [`Sizes::publish_batch`]), then feeds the
//! fan-out and the delivery stages' batch handlers from their queues in batches of the
//! `BatchSize` their event source mapping has in the template, and the delivery stage
//! POSTs to a local receiver answering 200. Each handler call is timed: Lambda GB-seconds
//! are at those measured durations (rounded up to the millisecond, as Lambda bills) and at
//! the template's `MemorySize` and architecture. The events of the one-subscriber
//! scenario list their user; those of the many-subscriber one say `"all"`. Then
//! [`reads`]: the fan-out alone, one full batch of events each visible to one user, in
//! types of [`Sizes::read_types`] subscriptions.
//!
//! Measured: the functions' own AWS requests and their units, Lambda invocations and their
//! durations, API Gateway requests, the bytes the functions log. Estimated (printed apart
//! and labelled): Lambda's own SQS polling (one `ReceiveMessage` per 10 messages of a
//! batch and one `DeleteMessageBatch` per 10 successes), and CloudWatch Logs ingestion.
//! Figures are printed, never asserted. Prices: [`prices`], mirrored in `docs/cost.md`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webhooks_api::App;
use webhooks_api::app::Ports;
use webhooks_core::adapters::aws::Aws;
use webhooks_core::adapters::aws::emulator_config;
use webhooks_core::adapters::aws::sqs::{Client as SqsClient, SqsQueue};
use webhooks_core::config::{
    ApiSettings, Defaults, DeliveryStageSettings, FanoutSettings, FromEnv, JWT_SECRET, Queue,
    QueueUrls, SECRET_KEY,
};
use webhooks_core::ports::queue::{IncomingMessage, QueueReceiver, Received};
use webhooks_core::stages::batch::BatchHandler;

use crate::aws_meter::{self, Line, Meter, Tally};
use crate::client::{claims, token};
use crate::deployed::Deployed;
use crate::iam_gate::IamGate;
use crate::receiver::Receiver;
use crate::stack::transformed;

pub mod reads;

/// us-east-1 list prices, as of [`prices::AS_OF`]; `docs/cost.md` says where each comes from.
pub mod prices {
    pub const AS_OF: &str = "2026-11-28";
    /// SQS standard queue, per million requests (each 64 KB chunk of payload is one).
    pub const SQS_PER_MILLION_REQUESTS: f64 = 0.40;
    /// DynamoDB on-demand, per million write request units.
    pub const DYNAMODB_PER_MILLION_WRITE_UNITS: f64 = 0.625;
    /// DynamoDB provisioned capacity, per write capacity unit-hour (one write of up to
    /// 1 KB a second for an hour), standard table class. Not cut in November 2024.
    pub const DYNAMODB_PROVISIONED_PER_WCU_HOUR: f64 = 0.000_65;
    /// The use that `DeliveryLogCapacity=provisioned` keeps its write capacity at
    /// (Application Auto Scaling's target in `template.yaml`).
    pub const PROVISIONED_TARGET_USE: f64 = 0.70;
    /// DynamoDB on-demand, per million read request units.
    pub const DYNAMODB_PER_MILLION_READ_UNITS: f64 = 0.125;
    /// Lambda, per million requests (invocations).
    pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
    /// Lambda compute on arm64 (first pricing tier), per GB-second.
    pub const LAMBDA_ARM64_PER_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda compute on x86_64 (first pricing tier), per GB-second.
    pub const LAMBDA_X86_PER_GB_SECOND: f64 = 0.000_016_666_7;
    /// API Gateway HTTP API, per million requests (first 300 million a month), each
    /// request metered in 512 KB increments.
    pub const API_GATEWAY_HTTP_PER_MILLION: f64 = 1.00;
    pub const API_GATEWAY_HTTP_METERING_BYTES: u64 = 512 * 1024;
    /// Secrets Manager, per 10,000 API calls (cold starts only).
    pub const SECRETS_MANAGER_PER_10K_CALLS: f64 = 0.05;
    /// CloudWatch Logs, standard class, per GB ingested; each log event counts 26 bytes more.
    pub const CLOUDWATCH_LOGS_PER_GB: f64 = 0.50;
    pub const CLOUDWATCH_LOGS_EVENT_OVERHEAD_BYTES: u64 = 26;
}

/// What the issue sets as goals, per scenario: (dollars per million, AWS requests per delivery).
pub const GOALS_ONE_SUBSCRIBER: (f64, f64) = (1.00, 0.5);
pub const GOALS_MANY_SUBSCRIBERS: (f64, f64) = (0.50, 0.25);

/// How much to run; each from an environment variable, defaults in brackets.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// `COST_EVENTS_ONE` [2000]: events of the one-subscriber scenario.
    pub one_subscriber_events: usize,
    /// `COST_EVENTS_MANY` [100]: events of the many-subscriber scenario (10,000
    /// deliveries; moto's SQS slows down with the depth of a queue, so more takes long).
    pub many_subscriber_events: usize,
    /// `COST_SUBSCRIBERS` [100]: subscribers per event in that scenario.
    pub subscribers: usize,
    /// `COST_PUBLISH_BATCH` [10]: events per `POST /events` (at most 100).
    pub publish_batch: usize,
    /// `COST_KEYED_PERCENT` [0]: the share of events carrying an `idempotency_key`.
    pub keyed_percent: usize,
    /// `COST_READ_TYPES` [1920,100000]: the sizes of the type in the fan-out's read
    /// runs ([`reads`]), comma-separated; empty: none.
    pub read_types: Vec<usize>,
}

impl Sizes {
    pub fn from_env() -> Sizes {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Sizes {
            one_subscriber_events: var("COST_EVENTS_ONE", 2000),
            many_subscriber_events: var("COST_EVENTS_MANY", 100),
            subscribers: var("COST_SUBSCRIBERS", 100).max(1),
            publish_batch: var("COST_PUBLISH_BATCH", 10).clamp(1, 100),
            keyed_percent: var("COST_KEYED_PERCENT", 0).min(100),
            read_types: std::env::var("COST_READ_TYPES")
                .unwrap_or_else(|_| "1920,100000".into())
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect(),
        }
    }
}

/// One run: so many events, each visible to and subscribed by so many users.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub events: usize,
    pub subscribers: usize,
    /// Events say `"visible_to": "all"` rather than list the subscribers.
    pub all: bool,
    pub goals: (f64, f64),
    /// Each subscription's `rate_limit`, if any.
    pub rate_limit: Option<u32>,
}

/// The rate limit of the rate-limited scenario: above what the bench reaches on moto, so
/// it shows what a limit costs when nothing waits (a job put back costs one more send,
/// receive and delete, like a deferred job).
pub const BENCH_RATE_LIMIT: u32 = 1000;

/// A priced line of the bill.
#[derive(Debug, Clone)]
pub struct BillLine {
    pub item: String,
    /// Quantity per delivery, and its unit (`requests`, `WRU`, `GB-s`, ...).
    pub per_delivery: f64,
    pub unit: String,
    /// Price per one unit.
    pub unit_price: f64,
    pub price_text: String,
}

impl BillLine {
    pub fn dollars_per_million(&self) -> f64 {
        self.per_delivery * self.unit_price * 1e6
    }
}

/// The figures of one scenario, for whoever wants them beyond the printout.
#[derive(Debug, Clone)]
pub struct Figures {
    pub scenario: Scenario,
    pub deliveries: u64,
    pub lines: Vec<BillLine>,
    /// The sum of `lines`: dollars per million deliveries, without Lambda's polling.
    pub dollars_per_million: f64,
    /// The functions' own AWS requests (DynamoDB, SQS) per delivery.
    pub aws_requests_per_delivery: f64,
    /// Lambda's SQS polling, estimated.
    pub polling: Vec<BillLine>,
    pub polling_requests_per_delivery: f64,
    pub logs: BillLine,
    /// The delivery log's write units per delivery (on demand in `lines`).
    pub log_write_units_per_delivery: f64,
    /// `dollars_per_million` with the log's writes on provisioned capacity at
    /// [`prices::PROVISIONED_TARGET_USE`] (`DeliveryLogCapacity=provisioned`), under steady
    /// load: an estimate from the same units, not a measurement.
    pub provisioned_log_dollars_per_million: f64,
    /// The fan-out's index reads.
    pub fanout_reads: reads::FanoutReads,
}

/// Everything a report measured.
pub struct Report {
    pub scenarios: Vec<Figures>,
    /// The fan-out's reads for full batches of narrow events, per size of the type.
    pub reads: Vec<reads::NarrowReads>,
}

/// Runs the scenarios at the sizes the environment asks for (a scenario of no events is
/// left out), prints their bills, then the fan-out's reads for full batches of narrow
/// events, and returns the figures.
pub async fn report() -> Report {
    let sizes = Sizes::from_env();
    let log_bytes = count_logs();
    println!(
        "Cost per million deliveries, us-east-1 list prices of {} (docs/cost.md)",
        prices::AS_OF
    );
    println!(
        "publishing: POST /api/v0/webhooks/events, {} events a request, {}% with an idempotency_key",
        sizes.publish_batch, sizes.keyed_percent
    );
    let scenarios = [
        Scenario {
            name: "one subscriber per event".into(),
            events: sizes.one_subscriber_events,
            subscribers: 1,
            all: false,
            goals: GOALS_ONE_SUBSCRIBER,
            rate_limit: None,
        },
        Scenario {
            name: format!("{} subscribers per event", sizes.subscribers),
            events: sizes.many_subscriber_events,
            subscribers: sizes.subscribers,
            all: true,
            goals: GOALS_MANY_SUBSCRIBERS,
            rate_limit: None,
        },
        Scenario {
            name: format!("one subscriber per event, rate_limit {BENCH_RATE_LIMIT}"),
            events: sizes.one_subscriber_events,
            subscribers: 1,
            all: false,
            goals: GOALS_ONE_SUBSCRIBER,
            rate_limit: Some(BENCH_RATE_LIMIT),
        },
    ];
    let mut all: Vec<Figures> = Vec::new();
    for scenario in scenarios.into_iter().filter(|s| s.events > 0) {
        let measured = run(&scenario, &sizes, &log_bytes).await;
        let figures = bill(&scenario, &measured);
        print!("{}", render(&figures, &measured));
        if scenario.rate_limit.is_none() {
            println!(
                "   rate-limit requests (UpdateItem on the rate-limit table) per delivery: {:.4} (no limit, no request)",
                rate_limit_requests(&measured)
            );
        } else if let Some(plain) = all.first() {
            println!(
                "   the rate limit adds {:.4} AWS requests and ${:.4} per million deliveries ({:.4} UpdateItem per delivery: one per subscription per batch)",
                figures.aws_requests_per_delivery - plain.aws_requests_per_delivery,
                figures.dollars_per_million - plain.dollars_per_million,
                rate_limit_requests(&measured),
            );
        }
        let _ = std::io::stdout().flush();
        all.push(figures);
    }
    let mut narrow = Vec::new();
    for &size in &sizes.read_types {
        narrow.push(reads::narrow(size, &log_bytes).await);
    }
    if !narrow.is_empty() {
        print!("{}", reads::render(&narrow));
    }
    Report {
        scenarios: all,
        reads: narrow,
    }
}

/// `UpdateItem` requests on the rate-limit table, per delivery.
fn rate_limit_requests(m: &Measured) -> f64 {
    let requests: u64 = m
        .tallies
        .iter()
        .filter(|(line, _)| rename(&m.names, &line.resource).starts_with(RATE_LIMIT_TABLE))
        .map(|(_, tally)| tally.requests)
        .sum();
    requests as f64 / m.deliveries.max(1) as f64
}

/// A function composed in this process, with what its invocations took.
struct Function {
    name: &'static str,
    memory_mb: u64,
    arm64: bool,
    invocations: u64,
    billed_ms: u64,
    busy: Duration,
    records: u64,
    log_bytes: u64,
    log_lines: u64,
    /// Time with AWS requests in flight, during its invocations.
    aws_busy: Duration,
    gate: IamGate,
    meter: Arc<Meter>,
}

impl Function {
    fn new(name: &'static str, logical: &str, gate: IamGate, meter: &Arc<Meter>) -> Function {
        let (memory_mb, arm64) = shape(logical);
        Function {
            name,
            memory_mb,
            arm64,
            invocations: 0,
            billed_ms: 0,
            busy: Duration::ZERO,
            records: 0,
            log_bytes: 0,
            log_lines: 0,
            aws_busy: Duration::ZERO,
            gate,
            meter: meter.clone(),
        }
    }

    /// Runs one invocation, timing it and counting what it logged.
    async fn invoke<T>(
        &mut self,
        logs: &LogCounter,
        records: usize,
        f: impl Future<Output = T>,
    ) -> T {
        let (bytes, lines) = logs.get();
        let aws_before = self.meter.busy(self.name);
        let started = Instant::now();
        let out = f.await;
        let took = started.elapsed();
        self.aws_busy += self.meter.busy(self.name) - aws_before;
        let (bytes_after, lines_after) = logs.get();
        self.invocations += 1;
        self.billed_ms += (took.as_micros() as u64).div_ceil(1000).max(1);
        self.busy += took;
        self.records += records as u64;
        self.log_bytes += bytes_after - bytes;
        self.log_lines += lines_after - lines;
        out
    }

    fn gb_seconds(&self) -> f64 {
        self.billed_ms as f64 / 1000.0 * self.memory_mb as f64 / 1024.0
    }
}

/// Lambda's event source on one queue: its batch size and window, from the template.
#[derive(Debug, Clone, Copy)]
struct EventSource {
    batch_size: usize,
    window_secs: u64,
}

/// What a scenario measured.
pub struct Measured {
    deliveries: u64,
    expected: u64,
    failed_messages: u64,
    functions: Vec<FunctionFigures>,
    tallies: BTreeMap<Line, Tally>,
    cold_start: BTreeMap<Line, Tally>,
    api_gateway_requests: u64,
    /// Per queue: (batches, messages, estimated receive requests billed, delete requests).
    polling: BTreeMap<String, (u64, u64, u64, u64)>,
    sources: Vec<(String, EventSource)>,
    names: Vec<(String, String)>,
    took: Duration,
}

struct FunctionFigures {
    name: &'static str,
    memory_mb: u64,
    arm64: bool,
    invocations: u64,
    billed_ms: u64,
    busy: Duration,
    records: u64,
    gb_seconds: f64,
    log_bytes: u64,
    log_lines: u64,
    aws_busy: Duration,
}

/// The template's `MemorySize` (MB) and whether the function runs on arm64.
fn shape(logical: &str) -> (u64, bool) {
    let props = &transformed()["Resources"][logical]["Properties"];
    let memory = match &props["MemorySize"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(128);
    let arm64 = props["Architectures"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "arm64"));
    (memory, arm64)
}

/// The event source mapping of `logical` in the template.
fn event_source(logical: &str) -> EventSource {
    let resources = transformed()["Resources"].as_object().expect("resources");
    let mapping = resources
        .values()
        .find(|r| {
            r["Type"] == "AWS::Lambda::EventSourceMapping"
                && r["Properties"]["FunctionName"] == json!({"Ref": logical})
        })
        .unwrap_or_else(|| panic!("the template has no event source mapping for {logical}"));
    let number = |v: &Value, default: u64| match v {
        Value::Number(n) => n.as_u64().unwrap_or(default),
        Value::String(s) => s.parse().unwrap_or(default),
        _ => default,
    };
    EventSource {
        batch_size: number(&mapping["Properties"]["BatchSize"], 10) as usize,
        window_secs: number(&mapping["Properties"]["MaximumBatchingWindowInSeconds"], 0),
    }
}

/// A function's settings lookup: its template environment, `extra`, and the secrets it
/// reads at start (one `GetSecretValue` each, through its gate, as its `main` does).
async fn environment(
    deployed: &Deployed,
    logical: &str,
    sdk: &aws_config::SdkConfig,
    secrets: &[&str],
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> =
        deployed.stack.environment(logical).into_iter().collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    for name in secrets {
        let Some(arn) = env
            .get(&format!("{name}_ARN"))
            .filter(|a| !a.trim().is_empty())
        else {
            continue;
        };
        let value = client
            .get_secret_value()
            .secret_id(arn.trim())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{logical} cannot read {name}: {e:?}"));
        env.insert(
            name.to_string(),
            value.secret_string().unwrap_or_default().trim().to_owned(),
        );
    }
    env
}

async fn gated(
    deployed: &Deployed,
    meter: &Arc<Meter>,
    logical: &str,
    name: &str,
) -> (IamGate, Aws) {
    let gate = IamGate::start_metered(
        crate::moto::endpoint(),
        deployed.stack.role(logical),
        meter.clone(),
        name,
    )
    .await;
    let aws = Aws::new(emulator_config(&gate.endpoint).await);
    (gate, aws)
}

/// Runs one scenario on a fresh stack.
pub async fn run(scenario: &Scenario, sizes: &Sizes, logs: &LogCounter) -> Measured {
    let started = Instant::now();
    let deployed = Deployed::start(&[], &[]).await;
    let meter = Meter::new(crate::moto::endpoint());
    let receiver = Receiver::start().await;
    let loopback = [("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")];

    // The API, as its main composes it.
    let (gate, aws) = gated(&deployed, &meter, "ApiFunction", "api").await;
    // The receiver is plain HTTP on loopback: subscriptions to it need both.
    let api_extra = [loopback[0], ("WEBHOOKS_ALLOW_HTTP", "true")];
    let secrets = [SECRET_KEY, JWT_SECRET];
    let env = environment(&deployed, "ApiFunction", &aws.sdk, &secrets, &api_extra).await;
    let settings = ApiSettings::from_lookup(&Defaults::lambda(), |k| env.get(k).cloned())
        .expect("the API's template environment is valid");
    let ports = Ports::on_aws(&aws, &settings).await;
    let app = App::new(settings, ports);
    let mut api = Function::new("api", "ApiFunction", gate, &meter);

    // The fan-out.
    let (gate, aws) = gated(&deployed, &meter, "FanoutFunction", "fanout").await;
    let env = environment(&deployed, "FanoutFunction", &aws.sdk, &[], &[]).await;
    let fanout_settings = FanoutSettings::from_lookup(&Defaults::lambda(), |k| env.get(k).cloned())
        .expect("the fan-out's template environment is valid");
    let fanout_stage = aws
        .fanout(&fanout_settings)
        .await
        .expect("the fan-out's queues");
    let fanout = Function::new("fanout", "FanoutFunction", gate, &meter);

    // The delivery stage.
    let (gate, aws) = gated(&deployed, &meter, "DeliveryFunction", "delivery").await;
    let env = environment(
        &deployed,
        "DeliveryFunction",
        &aws.sdk,
        &[SECRET_KEY],
        &loopback,
    )
    .await;
    let delivery_settings =
        DeliveryStageSettings::from_lookup(&Defaults::lambda(), |k| env.get(k).cloned())
            .expect("the delivery function's template environment is valid");
    let delivery_stage = aws
        .delivery_stage(&delivery_settings)
        .await
        .expect("the delivery function's queues");
    let delivery = Function::new("delivery", "DeliveryFunction", gate, &meter);
    let cold_start = meter.tallies();

    // Subscriptions, through the API (set-up: not on the bill).
    for user in 1..=scenario.subscribers as u64 {
        let mut body = json!({
            "trigger_url": receiver.url, "event_id": "create_task",
            "content_type": "application/json", "secret": "s3cret-of-the-receiver",
        });
        if let Some(limit) = scenario.rate_limit {
            body["rate_limit"] = json!(limit);
        }
        let (status, answer) = call_api(
            &app,
            "/api/v0/webhooks/subscriptions",
            &token(&claims(user, "hq")),
            &body,
        )
        .await;
        assert_eq!(status, 201, "a subscription is created: {answer}");
    }
    meter.reset();

    // Publish as a product would, and let the stages take their queues' batches as they
    // fill, as Lambda's event sources would: the queues stay short (moto slows down with
    // long queues, AWS does not).
    let sqs = SqsQueue::client(&emulator_config(crate::moto::endpoint()).await);
    let mut fanout = Consumer {
        function: fanout,
        handler: &fanout_stage,
        queue: queue(&sqs, &fanout_settings.queues, Queue::Events).await,
        source: event_source("FanoutFunction"),
        name: "events",
        ready: 0,
    };
    let mut delivery = Consumer {
        function: delivery,
        handler: &delivery_stage,
        queue: queue(&sqs, &delivery_settings.queues, Queue::Deliveries).await,
        source: event_source("DeliveryFunction"),
        name: "deliveries",
        ready: 0,
    };
    let mut tally = Consumed::default();
    let mut publisher = claims(900_000, "hq");
    publisher.scope = Some("webhooks:publish".into());
    let publisher = token(&publisher);
    let visible_to = if scenario.all {
        json!("all")
    } else {
        json!((1..=scenario.subscribers as u64).collect::<Vec<_>>())
    };
    let mut api_gateway_requests = 0;
    let run_id = webhooks_core::model::random::random_u64();
    for first in (0..scenario.events).step_by(sizes.publish_batch) {
        let batch: Vec<Value> = (first..(first + sizes.publish_batch).min(scenario.events))
            .map(|i| {
                let mut e = json!({
                    "event_id": "create_task", "object_id": 100_000 + i,
                    "resource_url": format!("https://hq.example.com/api/v0/tasks/{}", 100_000 + i),
                    "visible_to": visible_to, "occurred_at": "2026-11-28T09:00:00Z",
                });
                // Every so many events, evenly spread.
                if (i + 1) * sizes.keyed_percent / 100 > i * sizes.keyed_percent / 100 {
                    e["idempotency_key"] = json!(format!("task-{}-{run_id:x}", 100_000 + i));
                }
                e
            })
            .collect();
        let body = Value::Array(batch);
        let n = body.as_array().map_or(0, Vec::len);
        let bytes = body.to_string().len() as u64;
        api_gateway_requests += bytes
            .div_ceil(prices::API_GATEWAY_HTTP_METERING_BYTES)
            .max(1);
        let (status, answer) = api
            .invoke(
                logs,
                n,
                call_api(&app, "/api/v0/webhooks/events", &publisher, &body),
            )
            .await;
        assert!(
            status == 200 && answer["response"]["accepted"].as_u64() == Some(n as u64),
            "every event is accepted: {answer}"
        );
        fanout.pump(&sqs, logs, &mut tally, false).await;
        delivery.pump(&sqs, logs, &mut tally, false).await;
    }
    // Then whatever is left, including jobs the delivery stage put back with a delay (a
    // receiver it does not know yet gets two attempts at a time): waited for, as on AWS.
    loop {
        let fanned = fanout.pump(&sqs, logs, &mut tally, true).await;
        let delivered = delivery.pump(&sqs, logs, &mut tally, true).await;
        if !fanned && !delivered {
            break;
        }
    }
    let (events_source, deliveries_source) = (fanout.source, delivery.source);
    let (fanout, delivery) = (fanout.function, delivery.function);
    let Consumed {
        polling,
        failed_messages,
    } = tally;

    for f in [&api, &fanout, &delivery] {
        f.gate.assert_nothing_refused();
    }
    let names = physical_names(&deployed);
    let functions = [api, fanout, delivery]
        .into_iter()
        .map(|f| FunctionFigures {
            name: f.name,
            memory_mb: f.memory_mb,
            arm64: f.arm64,
            invocations: f.invocations,
            billed_ms: f.billed_ms,
            busy: f.busy,
            records: f.records,
            gb_seconds: f.gb_seconds(),
            log_bytes: f.log_bytes,
            log_lines: f.log_lines,
            aws_busy: f.aws_busy,
        })
        .collect();
    Measured {
        deliveries: receiver.count() as u64,
        expected: (scenario.events * scenario.subscribers) as u64,
        failed_messages,
        functions,
        tallies: meter.tallies(),
        cold_start,
        api_gateway_requests,
        polling,
        sources: vec![
            ("fanout".into(), events_source),
            ("delivery".into(), deliveries_source),
        ],
        names,
        took: started.elapsed(),
    }
}

/// A stage fed from its queue, as its Lambda event source feeds it.
struct Consumer<'a> {
    function: Function,
    handler: &'a dyn BatchHandler,
    queue: SqsQueue,
    source: EventSource,
    name: &'static str,
    /// Messages known to be ready at least (a lower bound: sends only add to it).
    ready: usize,
}

/// What the event sources did, for the bill.
#[derive(Default)]
struct Consumed {
    /// Per queue: (batches, messages, estimated receive requests billed, delete requests).
    polling: BTreeMap<String, (u64, u64, u64, u64)>,
    failed_messages: u64,
}

impl Consumer<'_> {
    /// Hands the stage full batches while its queue has them; `finishing`, also the last
    /// short one, and waits for delayed messages. Says whether it handled any.
    async fn pump(
        &mut self,
        sqs: &SqsClient,
        logs: &LogCounter,
        consumed: &mut Consumed,
        finishing: bool,
    ) -> bool {
        let mut handled = false;
        loop {
            let (ready, delayed) = if self.ready >= self.source.batch_size {
                (self.ready, 0)
            } else {
                depth(sqs, &self.queue).await
            };
            self.ready = ready;
            if ready == 0 && finishing && delayed > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            if ready == 0 || (!finishing && ready < self.source.batch_size) {
                return handled;
            }
            let batch = receive(&self.queue, self.source.batch_size).await;
            self.ready = self.ready.saturating_sub(batch.len());
            if batch.is_empty() {
                self.ready = 0;
                continue;
            }
            let messages: Vec<IncomingMessage> = batch.iter().map(|r| r.message.clone()).collect();
            let failed = self
                .function
                .invoke(logs, messages.len(), self.handler.handle_batch(&messages))
                .await;
            consumed.failed_messages += failed.len() as u64;
            settle(
                sqs,
                &self.queue,
                &batch,
                &failed,
                &mut consumed.polling,
                self.name,
            )
            .await;
            handled = true;
        }
    }
}

/// One API Gateway (HTTP API, payload 2.0) request through the API's Lambda handler.
async fn call_api(app: &App, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
    let event = crate::lambda_events::api_request("POST", path, bearer, Some(body));
    let request =
        lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event");
    let answer = webhooks_api::lambda::handle(app, request).await;
    let status = answer.status().as_u16();
    let tree = match answer.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, tree)
}

async fn queue(sqs: &SqsClient, urls: &QueueUrls, queue: Queue) -> SqsQueue {
    match urls.url(queue) {
        Some(url) => SqsQueue::from_url(sqs.clone(), url.to_owned()),
        None => SqsQueue::by_name(sqs.clone(), &urls.default_name(queue))
            .await
            .expect("the queue exists"),
    }
}

/// Up to `size` messages, received 10 at a time as Lambda's poller does, without waiting
/// out the batching window (the queue holds a backlog, so batches fill).
async fn receive(queue: &SqsQueue, size: usize) -> Vec<Received> {
    let mut batch = Vec::new();
    while batch.len() < size {
        let want = (size - batch.len()).min(10);
        let got = queue
            .receive(want, Duration::ZERO)
            .await
            .expect("moto receives");
        if got.is_empty() {
            break;
        }
        batch.extend(got);
    }
    batch
}

/// Messages on a queue now (unmetered): visible, and delayed.
async fn depth(sqs: &SqsClient, queue: &SqsQueue) -> (usize, usize) {
    use aws_sdk_sqs::types::QueueAttributeName as Name;
    let answer = sqs
        .get_queue_attributes()
        .queue_url(queue.url())
        .attribute_names(Name::ApproximateNumberOfMessages)
        .attribute_names(Name::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("moto answers");
    let count = |name: Name| {
        answer
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (
        count(Name::ApproximateNumberOfMessages),
        count(Name::ApproximateNumberOfMessagesDelayed),
    )
}

/// Deletes a batch's successes as the event source does, and counts the requests that
/// Lambda's poller would have made for it.
async fn settle(
    sqs: &SqsClient,
    queue: &SqsQueue,
    batch: &[Received],
    failed: &[String],
    polling: &mut BTreeMap<String, (u64, u64, u64, u64)>,
    name: &str,
) {
    let done: Vec<&Received> = batch
        .iter()
        .filter(|r| !failed.contains(&r.message.message_id))
        .collect();
    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.receipt)
                    .build()
                    .expect("a complete entry")
            })
            .collect::<Vec<_>>();
        sqs.delete_message_batch()
            .queue_url(queue.url())
            .set_entries(Some(entries))
            .send()
            .await
            .expect("moto deletes");
    }
    let receives: u64 = batch
        .chunks(10)
        .map(|c| {
            let bytes: u64 = c
                .iter()
                .map(|r| {
                    r.message.body.len() as u64
                        + r.message
                            .attributes
                            .iter()
                            .map(|(k, v)| (k.len() + "String".len() + v.len()) as u64)
                            .sum::<u64>()
                })
                .sum();
            aws_meter::sqs_billed_requests(bytes)
        })
        .sum();
    let entry = polling.entry(name.to_owned()).or_default();
    entry.0 += 1;
    entry.1 += batch.len() as u64;
    entry.2 += receives;
    entry.3 += done.len().div_ceil(10) as u64;
}

/// Physical names of tables and queues, and the names the bill shows instead.
fn physical_names(deployed: &Deployed) -> Vec<(String, String)> {
    let var = |name: &str| {
        deployed
            .moto
            .env()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let prefix = var("WEBHOOKS_QUEUE_PREFIX");
    let mut names = vec![
        (
            var("WEBHOOKS_SUBSCRIPTIONS_TABLE"),
            "subscriptions".to_owned(),
        ),
        (var("WEBHOOKS_IDEMPOTENCY_TABLE"), "idempotency".to_owned()),
        (
            var("WEBHOOKS_DELIVERY_LOG_TABLE"),
            "delivery log".to_owned(),
        ),
        (
            var("WEBHOOKS_RATE_LIMIT_TABLE"),
            RATE_LIMIT_TABLE.to_owned(),
        ),
    ];
    for q in [
        Queue::Events,
        Queue::EventsDeadLetters,
        Queue::Deliveries,
        Queue::DeliveriesDeadLetters,
    ] {
        names.push((
            format!("{prefix}-{}", q.suffix()),
            format!("{} queue", q.suffix()),
        ));
    }
    names
}

fn rename(names: &[(String, String)], resource: &str) -> String {
    let mut out = resource.to_owned();
    for (physical, shown) in names {
        if !physical.is_empty() && out.starts_with(physical.as_str()) {
            out = format!("{shown}{}", &out[physical.len()..]);
        }
    }
    out
}

/// What the bill calls the delivery log table.
const LOG_TABLE: &str = "delivery log";
/// What the bill calls the rate-limit table.
const RATE_LIMIT_TABLE: &str = "rate limit";

/// Dollars per million writes of one unit on provisioned capacity kept at the target use.
pub fn provisioned_write_unit_per_million() -> f64 {
    prices::DYNAMODB_PROVISIONED_PER_WCU_HOUR / 3600.0 / prices::PROVISIONED_TARGET_USE * 1e6
}

/// Prices what a scenario measured.
pub fn bill(scenario: &Scenario, m: &Measured) -> Figures {
    let deliveries = m.deliveries.max(1) as f64;
    let per = |n: f64| n / deliveries;
    let million = |price: f64| price / 1e6;
    let mut lines = Vec::new();
    let api_calls = m
        .functions
        .iter()
        .find(|f| f.name == "api")
        .map_or(0, |f| f.invocations);
    lines.push(BillLine {
        item: format!("API Gateway HTTP API: POST /events ({api_calls} requests)"),
        per_delivery: per(m.api_gateway_requests as f64),
        unit: "requests".into(),
        unit_price: million(prices::API_GATEWAY_HTTP_PER_MILLION),
        price_text: format!("${:.2}/M", prices::API_GATEWAY_HTTP_PER_MILLION),
    });
    for f in &m.functions {
        lines.push(BillLine {
            item: format!("Lambda {}: invocations", f.name),
            per_delivery: per(f.invocations as f64),
            unit: "requests".into(),
            unit_price: million(prices::LAMBDA_PER_MILLION_REQUESTS),
            price_text: format!("${:.2}/M", prices::LAMBDA_PER_MILLION_REQUESTS),
        });
        let price = if f.arm64 {
            prices::LAMBDA_ARM64_PER_GB_SECOND
        } else {
            prices::LAMBDA_X86_PER_GB_SECOND
        };
        lines.push(BillLine {
            item: format!(
                "Lambda {}: {} MB {}, {:.1} ms/invocation",
                f.name,
                f.memory_mb,
                if f.arm64 { "arm64" } else { "x86_64" },
                f.billed_ms as f64 / f.invocations.max(1) as f64
            ),
            per_delivery: per(f.gb_seconds),
            unit: "GB-s".into(),
            unit_price: price,
            price_text: format!("${price}/GB-s"),
        });
    }
    let mut requests = 0;
    let mut log_write_units = 0.0;
    let order = |f: &str| ["api", "fanout", "delivery"].iter().position(|n| *n == f);
    let mut tallies: Vec<(&Line, &Tally)> = m.tallies.iter().collect();
    tallies.sort_by_key(|(l, _)| (order(&l.function), l.service.clone(), l.operation.clone()));
    for (line, t) in tallies {
        let resource = rename(&m.names, &line.resource);
        let what = format!(
            "{} {} {} ({})",
            line.service, line.operation, resource, line.function
        );
        requests += t.requests;
        match line.service.as_str() {
            "SQS" => lines.push(BillLine {
                item: what,
                per_delivery: per(t.billed_requests as f64),
                unit: "requests".into(),
                unit_price: million(prices::SQS_PER_MILLION_REQUESTS),
                price_text: format!("${:.2}/M", prices::SQS_PER_MILLION_REQUESTS),
            }),
            "DynamoDB" => {
                let calls = format!("{what}, {:.3} req", per(t.requests as f64));
                if t.read_units > 0.0 {
                    lines.push(BillLine {
                        item: calls.clone(),
                        per_delivery: per(t.read_units),
                        unit: "RRU".into(),
                        unit_price: million(prices::DYNAMODB_PER_MILLION_READ_UNITS),
                        price_text: format!("${}/M", prices::DYNAMODB_PER_MILLION_READ_UNITS),
                    });
                }
                if resource == LOG_TABLE {
                    log_write_units += t.write_units;
                }
                if t.write_units > 0.0 || t.read_units == 0.0 {
                    let index = if t.index_write_units > 0.0 {
                        format!(" (index {:.3})", per(t.index_write_units))
                    } else {
                        String::new()
                    };
                    lines.push(BillLine {
                        item: format!("{calls}{index}"),
                        per_delivery: per(t.write_units),
                        unit: "WRU".into(),
                        unit_price: million(prices::DYNAMODB_PER_MILLION_WRITE_UNITS),
                        price_text: format!("${}/M", prices::DYNAMODB_PER_MILLION_WRITE_UNITS),
                    });
                }
            }
            _ => lines.push(BillLine {
                item: what,
                per_delivery: per(t.billed_requests as f64),
                unit: "requests".into(),
                unit_price: prices::SECRETS_MANAGER_PER_10K_CALLS / 1e4,
                price_text: format!("${}/10k", prices::SECRETS_MANAGER_PER_10K_CALLS),
            }),
        }
    }
    let mut polling = Vec::new();
    let mut polling_requests = 0;
    for (queue, (batches, messages, receives, deletes)) in &m.polling {
        polling_requests += receives + deletes;
        polling.push(BillLine {
            item: format!(
                "SQS polling by Lambda, {queue} queue: {batches} batches of {:.1} messages",
                *messages as f64 / (*batches).max(1) as f64
            ),
            per_delivery: per((receives + deletes) as f64),
            unit: "requests".into(),
            unit_price: million(prices::SQS_PER_MILLION_REQUESTS),
            price_text: format!("${:.2}/M", prices::SQS_PER_MILLION_REQUESTS),
        });
    }
    let (log_bytes, log_lines) = m
        .functions
        .iter()
        .fold((0, 0), |(b, l), f| (b + f.log_bytes, l + f.log_lines));
    let ingested = log_bytes + log_lines * prices::CLOUDWATCH_LOGS_EVENT_OVERHEAD_BYTES;
    let logs = BillLine {
        item: format!(
            "CloudWatch Logs ingestion ({:.0} bytes, {:.2} lines per delivery)",
            per(log_bytes as f64),
            per(log_lines as f64)
        ),
        per_delivery: per(ingested as f64) / 1e9,
        unit: "GB".into(),
        unit_price: prices::CLOUDWATCH_LOGS_PER_GB,
        price_text: format!("${:.2}/GB", prices::CLOUDWATCH_LOGS_PER_GB),
    };
    let dollars_per_million: f64 = lines.iter().map(BillLine::dollars_per_million).sum();
    let log_write_units_per_delivery = per(log_write_units);
    Figures {
        scenario: scenario.clone(),
        deliveries: m.deliveries,
        dollars_per_million,
        log_write_units_per_delivery,
        provisioned_log_dollars_per_million: dollars_per_million
            - log_write_units_per_delivery * prices::DYNAMODB_PER_MILLION_WRITE_UNITS
            + log_write_units_per_delivery * provisioned_write_unit_per_million(),
        lines,
        aws_requests_per_delivery: per(requests as f64),
        polling_requests_per_delivery: per(polling_requests as f64),
        polling,
        logs,
        fanout_reads: reads::FanoutReads::of(&m.tallies),
    }
}

/// The printout of one scenario.
fn render(f: &Figures, m: &Measured) -> String {
    let mut out = String::new();
    let s = &f.scenario;
    let _ = writeln!(
        out,
        "\n== {}: {} events x {} subscribers = {} deliveries expected, {} received ({:.0} s)",
        s.name,
        s.events,
        s.subscribers,
        m.expected,
        m.deliveries,
        m.took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "   visible_to {}; fan-out reads: {}",
        if s.all {
            "\"all\""
        } else {
            "lists the subscribers"
        },
        f.fanout_reads.per_event(s.events)
    );
    if m.deliveries != m.expected || m.failed_messages > 0 {
        let _ = writeln!(
            out,
            "   WARNING: {} messages failed in a stage; the figures cover what was delivered",
            m.failed_messages
        );
    }
    for (name, source) in &m.sources {
        let _ = writeln!(
            out,
            "   {name} event source (template): BatchSize {}, MaximumBatchingWindowInSeconds {}",
            source.batch_size, source.window_secs
        );
    }
    for fun in &m.functions {
        let _ = writeln!(
            out,
            "   {:<8} {:>6} invocations, {:>6.1} records each, {:>8.2} ms mean measured, of which {:>8.2} ms with AWS requests in flight ({} ms billed in all)",
            fun.name,
            fun.invocations,
            fun.records as f64 / fun.invocations.max(1) as f64,
            fun.busy.as_secs_f64() * 1000.0 / fun.invocations.max(1) as f64,
            fun.aws_busy.as_secs_f64() * 1000.0 / fun.invocations.max(1) as f64,
            fun.billed_ms
        );
    }
    let _ = writeln!(
        out,
        "\n   {:<84} {:>12} {:<8} {:>16} {:>10}",
        "line item", "per delivery", "unit", "price", "$/M deliv."
    );
    let row = |out: &mut String, l: &BillLine| {
        let _ = writeln!(
            out,
            "   {:<84} {:>12.6} {:<8} {:>16} {:>10.4}",
            l.item,
            l.per_delivery,
            l.unit,
            l.price_text,
            l.dollars_per_million()
        );
    };
    for l in &f.lines {
        row(&mut out, l);
    }
    let (goal_dollars, goal_requests) = s.goals;
    let _ = writeln!(
        out,
        "   {:<84} {:>12} {:<8} {:>16} {:>10.4}   (goal <= {goal_dollars:.2})",
        "SUM (measured; without Lambda's SQS polling and logs)", "", "", "", f.dollars_per_million
    );
    let _ = writeln!(
        out,
        "   {:<84} {:>12} {:<8} {:>16} {:>10.4}   (estimate)",
        format!(
            "  the same with DeliveryLogCapacity=provisioned: {:.3} WRU at ${:.3}/M",
            f.log_write_units_per_delivery,
            provisioned_write_unit_per_million()
        ),
        "",
        "",
        format!("${}/WCU-h", prices::DYNAMODB_PROVISIONED_PER_WCU_HOUR),
        f.provisioned_log_dollars_per_million
    );
    let _ = writeln!(
        out,
        "   AWS requests per delivery, the functions' own (DynamoDB, SQS): {:.3}   (goal <= {goal_requests})",
        f.aws_requests_per_delivery
    );
    let _ = writeln!(out, "   Estimated, not in the sum above:");
    for l in &f.polling {
        row(&mut out, l);
    }
    let polling: f64 = f.polling.iter().map(BillLine::dollars_per_million).sum();
    let _ = writeln!(
        out,
        "   {:<84} {:>12} {:<8} {:>16} {:>10.4}",
        "  polling, both queues (1 ReceiveMessage + 1 DeleteMessageBatch per 10 messages)",
        format!("{:.3}", f.polling_requests_per_delivery),
        "requests",
        "",
        polling
    );
    row(&mut out, &f.logs);
    let _ = writeln!(
        out,
        "   {:<84} {:>12} {:<8} {:>16} {:>10.4}",
        "TOTAL with Lambda's polling and logs",
        "",
        "",
        "",
        f.dollars_per_million + polling + f.logs.dollars_per_million()
    );
    let mut cold: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for (l, t) in &m.cold_start {
        *cold
            .entry((&l.function, &l.service, &l.operation))
            .or_default() += t.requests;
    }
    let cold: Vec<String> = cold
        .iter()
        .map(|((function, service, operation), n)| {
            format!("{service} {operation} x{n} ({function})")
        })
        .collect();
    let _ = writeln!(
        out,
        "   Per cold start, not per delivery: {}",
        if cold.is_empty() {
            "nothing".to_owned()
        } else {
            cold.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "   Requests as the gates counted them:\n   {:<64} {:>8} {:>8} {:>9} {:>9} {:>10} {:>10} {:>6}",
        "function: service operation resource",
        "requests",
        "billed",
        "B out/req",
        "B in/req",
        "RRU",
        "WRU",
        "errors"
    );
    for (l, t) in &m.tallies {
        let _ = writeln!(
            out,
            "   {:<64} {:>8} {:>8} {:>9} {:>9} {:>10.1} {:>10.1} {:>6}",
            format!(
                "{}: {} {} {}",
                l.function,
                l.service,
                l.operation,
                rename(&m.names, &l.resource)
            ),
            t.requests,
            t.billed_requests,
            t.request_bytes / t.requests.max(1),
            t.response_bytes / t.requests.max(1),
            t.read_units,
            t.write_units,
            t.errors
        );
    }
    let approximate: u64 = m.tallies.values().map(|t| t.approximate).sum();
    if approximate > 0 {
        let _ = writeln!(
            out,
            "   NOTE: the units of {approximate} requests are estimated (projection, filter or Transact*)"
        );
    }
    out
}

/// Counts the bytes and lines the functions log, in the form they have on Lambda (and
/// copies them to the file `COST_LOG_FILE` names, if any, to see what they are).
#[derive(Clone, Default)]
pub struct LogCounter {
    bytes: Arc<AtomicU64>,
    lines: Arc<AtomicU64>,
    copy: Option<Arc<std::sync::Mutex<std::fs::File>>>,
}

impl LogCounter {
    fn get(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::SeqCst),
            self.lines.load(Ordering::SeqCst),
        )
    }
}

impl std::io::Write for LogCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.fetch_add(buf.len() as u64, Ordering::SeqCst);
        let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
        self.lines.fetch_add(lines, Ordering::SeqCst);
        if let Some(file) = &self.copy {
            file.lock().unwrap().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) the Lambda log and metric layers of `webhooks_core::observe::telemetry`, at
/// the template's default level (INFO), writing into a counter instead of stdout.
pub fn count_logs() -> LogCounter {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{EnvFilter, Targets, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use webhooks_core::observe::metrics::TARGET;
    use webhooks_core::observe::telemetry::{FlatJson, MetricLines};

    static COUNTER: std::sync::OnceLock<LogCounter> = std::sync::OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let copy = std::env::var("COST_LOG_FILE")
                .ok()
                .and_then(|path| std::fs::File::create(path).ok())
                .map(|f| Arc::new(std::sync::Mutex::new(f)));
            let counter = LogCounter {
                copy,
                ..LogCounter::default()
            };
            let (a, b) = (counter.clone(), counter.clone());
            let logs = tracing_subscriber::fmt::layer()
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(FlatJson)
                .with_writer(move || a.clone())
                .with_filter(EnvFilter::new("info"))
                .with_filter(filter_fn(|m| m.target() != TARGET));
            let metrics = MetricLines::new(move || b.clone())
                .with_filter(Targets::new().with_target(TARGET, tracing::Level::INFO));
            let _ = tracing_subscriber::registry()
                .with(logs)
                .with(metrics)
                .try_init();
            counter
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// $0.00065 a unit-hour buys 3,600 writes at full use; at 70 % use, 2,520.
    #[test]
    fn a_provisioned_write_unit_is_its_hourly_price_over_the_writes_it_carries_at_70_percent() {
        let per_million = provisioned_write_unit_per_million();
        assert!(
            (per_million - 0.000_65 / 2520.0 * 1e6).abs() < 1e-9,
            "{per_million}"
        );
        assert!((0.25..0.26).contains(&per_million), "{per_million}");
    }
}
