//! The fan-out's reads for a full batch of narrow events, through the real adapters on
//! moto: a type of so many subscriptions over a quarter as many users (4 each), and one
//! invocation of the template's `BatchSize` (100) events, each visible to one different
//! user. Read units as the meter computes them from what the `Query` requests returned
//! (half a unit per started 4 KB, eventually consistent). The subscriptions are written
//! straight into the table (not metered, not on the bill), and the time that takes on
//! moto is printed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use serde_json::json;
use webhooks_core::adapters::aws::dynamodb::to_item;
use webhooks_core::config::{Defaults, FanoutSettings, FromEnv, Queue};
use webhooks_core::model::clock::ManualClock;
use webhooks_core::model::event::example;
use webhooks_core::model::ids::IdGenerator;
use webhooks_core::ports::queue::IncomingMessage;
use webhooks_core::stages::batch::BatchHandler;

use super::{Function, LogCounter, depth, emulator_config, environment, event_source, gated};
use crate::aws_meter::{Line, Meter, Tally};
use crate::deployed::Deployed;
use crate::fanout_kit::subscription;

/// The fan-out's `Query` requests and their read units, by index.
#[derive(Debug, Clone, Copy, Default)]
pub struct FanoutReads {
    /// On `by_owner_event`: the audience path, one per user named.
    pub by_owner_event: (u64, f64),
    /// On `by_event`: pages of every subscription to the type.
    pub by_event: (u64, f64),
}

impl FanoutReads {
    /// What the fan-out's gate counted.
    pub fn of(tallies: &BTreeMap<Line, Tally>) -> FanoutReads {
        let mut reads = FanoutReads::default();
        for (line, t) in tallies {
            if line.function != "fanout" || line.operation != "Query" {
                continue;
            }
            let index = if line.resource.ends_with("/index/by_owner_event") {
                &mut reads.by_owner_event
            } else if line.resource.ends_with("/index/by_event") {
                &mut reads.by_event
            } else {
                continue;
            };
            index.0 += t.requests;
            index.1 += t.read_units;
        }
        reads
    }

    pub fn read_units(&self) -> f64 {
        self.by_owner_event.1 + self.by_event.1
    }

    /// `Query` requests per event and read units per event, as printed.
    pub fn per_event(&self, events: usize) -> String {
        let n = events.max(1) as f64;
        format!(
            "{:.2} Query of by_owner_event + {:.2} of by_event, {:.3} RRU per event",
            self.by_owner_event.0 as f64 / n,
            self.by_event.0 as f64 / n,
            self.read_units() / n
        )
    }
}

/// One invocation of the batch: what it read and sent, and how long it took on moto.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub reads: FanoutReads,
    pub jobs: usize,
    pub took: Duration,
}

/// What one type size measured.
#[derive(Debug, Clone)]
pub struct NarrowReads {
    pub subscriptions: usize,
    pub users: usize,
    /// Events in the batch, each visible to one user.
    pub events: usize,
    /// Writing the subscriptions into moto.
    pub seeded: Duration,
    /// The fan-out as configured: the audience path.
    pub audience: Invocation,
    /// The same batch again with `audience_limit` 0: the whole type read, as `"all"`
    /// and longer lists read it (and as these events were read before issue 22).
    pub whole_type: Invocation,
}

impl NarrowReads {
    /// Read units per event on the audience path: per audience user too, as each event
    /// names one.
    pub fn read_units_per_event(&self) -> f64 {
        self.audience.reads.read_units() / self.events.max(1) as f64
    }
}

/// One type of `subscriptions` over a quarter as many users, one full batch of narrow
/// events fanned out on each read path.
pub async fn narrow(subscriptions: usize, logs: &LogCounter) -> NarrowReads {
    let deployed = Deployed::start(&[], &[]).await;
    let meter = Meter::new(crate::moto::endpoint());
    let (gate, aws) = gated(&deployed, &meter, "FanoutFunction", "fanout").await;
    let env = environment(&deployed, "FanoutFunction", &aws.sdk, &[], &[]).await;
    let settings = FanoutSettings::from_lookup(&Defaults::lambda(), |k| env.get(k).cloned())
        .expect("the fan-out's template environment is valid");
    let mut fanout = Function::new("fanout", "FanoutFunction", gate, &meter);
    let events = event_source("FanoutFunction").batch_size;
    let users = (subscriptions / 4).max(events);

    // Set-up, unmetered: `BatchWriteItem` of the items the store writes, 25 a request
    // (moto takes ten times as long with a `PutItem` each).
    let started = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(&crate::moto::sdk_config().await);
    let (ids, clock) = (IdGenerator::default(), ManualClock::at(1_800_000_000_000));
    let requests: Vec<WriteRequest> = (0..subscriptions as u64)
        .map(|n| {
            let sub = subscription(&ids, &clock, "hq", n % users as u64, "create_task");
            let put = PutRequest::builder()
                .set_item(Some(to_item(&sub)))
                .build()
                .expect("an item");
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    stream::iter(requests.chunks(25))
        .map(|chunk| {
            let write = dynamodb
                .batch_write_item()
                .request_items(&settings.subscriptions_table, chunk.to_vec());
            async move {
                let out = write.send().await.expect("moto writes them");
                assert!(
                    out.unprocessed_items().is_none_or(|u| u.is_empty()),
                    "moto processes every item"
                );
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
    let seeded = started.elapsed();

    let sqs = super::SqsQueue::client(&emulator_config(crate::moto::endpoint()).await);
    let deliveries = super::queue(&sqs, &settings.queues, Queue::Deliveries).await;
    // One invocation reads the whole type, however long moto takes over its pages
    // (DynamoDB answers one in milliseconds; moto in seconds, past the time budget).
    let mut settings = settings;
    settings.stage.time_budget = Duration::from_secs(3600);
    let mut whole = settings.clone();
    whole.stage.audience_limit = 0;
    let mut runs = Vec::new();
    for (run, settings) in [settings, whole].iter().enumerate() {
        let stage = aws.fanout(settings).await.expect("the fan-out's queues");
        let messages: Vec<IncomingMessage> = (0..events)
            .map(|k| {
                let user = (k * users / events) as u64;
                let object_id = (1 + run * events + k) as u64;
                IncomingMessage {
                    message_id: format!("narrow-{object_id}"),
                    body: example("hq", "create_task", object_id, json!([user])).to_string(),
                    receive_count: 1,
                    attributes: Default::default(),
                }
            })
            .collect();
        let (queued, _) = depth(&sqs, &deliveries).await;
        meter.reset();
        let started = Instant::now();
        let failed = fanout
            .invoke(logs, events, stage.handle_batch(&messages))
            .await;
        let took = started.elapsed();
        assert!(failed.is_empty(), "every event fans out: {failed:?}");
        let reads = FanoutReads::of(&meter.tallies());
        let (now, _) = depth(&sqs, &deliveries).await;
        runs.push(Invocation {
            reads,
            jobs: now - queued,
            took,
        });
    }
    fanout.gate.assert_nothing_refused();
    let whole_type = runs.pop().expect("two runs");
    let audience = runs.pop().expect("two runs");
    NarrowReads {
        subscriptions,
        users,
        events,
        seeded,
        audience,
        whole_type,
    }
}

/// The printout of the narrow-event runs.
pub fn render(runs: &[NarrowReads]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== fan-out reads: one invocation of a full batch of events, each visible to one different user"
    );
    let _ = writeln!(
        out,
        "   {:>13} {:>6} {:>9} {:>6} {:>6} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "subscriptions",
        "users",
        "seeded s",
        "events",
        "jobs",
        "Q by_owner",
        "Q by_event",
        "RRU",
        "RRU/event",
        "invoke ms"
    );
    for r in runs {
        for (path, i) in [
            ("audience path", &r.audience),
            ("whole type", &r.whole_type),
        ] {
            let _ = writeln!(
                out,
                "   {:>13} {:>6} {:>9.0} {:>6} {:>6} {:>10} {:>10} {:>8.1} {:>10.3} {:>10.0}  {path}",
                r.subscriptions,
                r.users,
                r.seeded.as_secs_f64(),
                r.events,
                i.jobs,
                i.reads.by_owner_event.0,
                i.reads.by_event.0,
                i.reads.read_units(),
                i.reads.read_units() / r.events.max(1) as f64,
                i.took.as_secs_f64() * 1000.0
            );
        }
    }
    let _ = writeln!(
        out,
        "   goal: at most 1 RRU per audience user (here per event), whatever the size of the type;"
    );
    let _ = writeln!(
        out,
        "   whole type: the same batch with audience_limit 0, as \"all\" and longer lists read it"
    );
    out
}
