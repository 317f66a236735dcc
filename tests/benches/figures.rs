//! Every per-delivery figure of docs/performance.md in one run, against one fast
//! receiver, printed as a table. Nothing here asserts a time: it measures and prints.
//!
//! * The receiver: a hyper HTTP/1 server in this process, on a runtime of its own, that
//!   counts requests and notes when each object id arrived. A load generator (a small
//!   keep-alive client written here; `wrk` too, when it is on PATH) measures what it can
//!   take, to show it is not the bottleneck.
//! * Bare reqwest: the same number of POSTs as deliveries, 80 in flight (the runner's 8
//!   delivery workers of 10), and its CPU per POST (this process's threads but the
//!   receiver's): the client's own share of what a delivery costs.
//! * The runner's own delivery client (`ReqwestSender`) alone, the same way: as many POSTs,
//!   80 in flight, each with a delivery's body and signed headers (made once). Its CPU per
//!   POST is the floor under the runner's CPU per delivery; the rest of that is
//!   publishing, fan-out, the queues, signing and the log.
//! * The local runner (`webhooks-local`, release build, memory backend, spawned as a
//!   process, its log at the default level to /dev/null): one subscription (with a
//!   secret, so every delivery is signed), N events published in batches, one delivery
//!   each. Its rate from the first publish to the last receipt, and its CPU per delivery
//!   from `/proc/<pid>/stat` (utime + stime) over the same span.
//! * Latency, publish to receipt: a fresh runner, events in batches of 10 at a steady
//!   rate (2,000/s and 10,000/s), each batch POSTed on its own schedule by a keep-alive
//!   client; latency is from just before the POST to the receiver's arrival time. The
//!   runner's CPU per delivery at each steady rate is printed too (the throughput run
//!   measures it with a backlog, which amortises per-batch costs), and so is the time the
//!   publisher waits for each answer. First, as the floor, the same schedule with each
//!   batch's 10 POSTs sent straight to the receiver by reqwest: one hop, where publish to
//!   receipt takes two (publisher to runner, runner to receiver); then the same publishes
//!   through a relay that only forwards each event (answering at once, as the runner
//!   does): the floor for two hops on this machine. For the runner, the spread of each
//!   batch's arrivals (last less first) shows how much of its latency is the batch's
//!   deliveries waiting on each other.
//! * Instructions per delivery: the throughput run twice more, the runner under valgrind's
//!   callgrind, at `FIGURES_CALLGRIND_EVENTS` (5000) events and three times that; the
//!   difference in its user-space instruction count over the difference in deliveries.
//!   CPU time on this machine moves by a third between runs of one build; this count
//!   moves by well under 1 %, so it is the figure that tells two builds apart (it leaves
//!   out the kernel, and valgrind offers no SHA extensions, so crypto counts high).
//! * Peak RSS (`VmHWM`): the runner's after its loads, and each Lambda binary's (api,
//!   fanout, delivery) run as Lambda runs it (the Runtime API emulator, against moto)
//!   while it carries its part of delivering `FIGURES_RSS_DELIVERIES` webhooks.
//! * Init times, as `--bench init` measures them.
//!
//! Sizes come from the environment so that it can run short:
//! `FIGURES_EVENTS` (100000), `FIGURES_BATCH` (100), `FIGURES_LATENCY_SECS` (5),
//! `FIGURES_RATES` (`2000,10000`), `FIGURES_RSS_DELIVERIES` (10000), `FIGURES_INIT_RUNS`
//! (7), `FIGURES_LOADGEN_SECS` (3), `FIGURES_RUNNER` (another build of the runner, by
//! absolute path, such as `$PWD/target/profiling/webhooks-local` to profile it with
//! perf), `FIGURES_CALLGRIND_EVENTS` (5000), and `FIGURES_SKIP` (any of `lambda`,
//! `init`, `latency`, `instructions`, `cost`, comma-separated). The cost report (`webhooks_tests::cost`, the
//! same as `--bench cost`) takes its sizes from `COST_EVENTS_ONE`, `COST_EVENTS_MANY` and
//! `COST_READ_TYPES` (the fan-out's reads for full batches of narrow events).
//!
//! `cargo bench -p webhooks-tests --bench figures` (it builds the binaries itself; the
//! Lambda parts need moto, as the tests do).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use webhooks_tests::local_process::{LocalProcess, release_binary};

/// The Lambda binaries, run as Lambda runs them (the Runtime API emulator, against moto,
/// with the environment the template gives each): peak RSS under load, and init times.
mod figures_lambda {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};
    use webhooks_core::ports::queue::{IncomingMessage, QueueReceiver};
    use webhooks_tests::client::{claims, token};
    use webhooks_tests::deployed::{Deployed, Function};
    use webhooks_tests::lambda_events::{api_request, list_subscriptions_request, sqs_event};
    use webhooks_tests::lambda_runtime::Runtime;

    use super::{peak_rss_mb, release_binary};

    fn functions() -> [Function; 3] {
        [
            Function {
                logical_id: "ApiFunction",
                binary: release_binary("api"),
            },
            Function {
                logical_id: "FanoutFunction",
                binary: release_binary("fanout"),
            },
            Function {
                logical_id: "DeliveryFunction",
                binary: release_binary("delivery"),
            },
        ]
    }

    /// The pid of this process's child running `binary` (the emulator keeps its own handle).
    fn child_pid(binary: &str) -> Option<u32> {
        let me = std::process::id().to_string();
        let name: String = std::path::Path::new(binary)
            .file_name()?
            .to_string_lossy()
            .chars()
            .take(15)
            .collect();
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1;
            let ppid = rest.split_whitespace().nth(1)?;
            (comm == name && ppid == me).then_some(pid)
        })
    }

    /// Hands the messages of `queue` to `runtime` in SQS batches of 10 until `done` says
    /// so (or nothing has come for 20 s), deleting those the function did not report as
    /// failed.
    async fn drain(
        queue: &dyn QueueReceiver,
        runtime: &mut Runtime,
        done: impl Fn(usize) -> bool,
    ) -> usize {
        let mut handed = 0;
        let mut idle_since = Instant::now();
        while !done(handed) && idle_since.elapsed() < Duration::from_secs(20) {
            // Full batches, as Lambda's batching window gathers them (SQS hands fewer
            // than asked for at a time).
            let mut got = queue.receive(10, Duration::from_secs(1)).await.unwrap();
            while !got.is_empty() && got.len() < 10 {
                let more = queue.receive(10 - got.len(), Duration::ZERO).await.unwrap();
                if more.is_empty() {
                    break;
                }
                got.extend(more);
            }
            if got.is_empty() {
                continue;
            }
            idle_since = Instant::now();
            let (messages, receipts): (Vec<IncomingMessage>, Vec<String>) =
                got.into_iter().map(|r| (r.message, r.receipt)).unzip();
            handed += messages.len();
            let event = serde_json::to_value(sqs_event(&messages)).unwrap();
            let answer = runtime.invoke(event).await;
            // Settled as Lambda's event source settles them: the failures stay on the queue.
            let failed: Vec<&str> = answer["batchItemFailures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["itemIdentifier"].as_str())
                .collect();
            for (message, receipt) in messages.iter().zip(&receipts) {
                if !failed.contains(&message.message_id.as_str()) {
                    let _ = queue.ack(receipt).await;
                }
            }
        }
        handed
    }

    /// Each binary's peak RSS while it carries its part of delivering `deliveries`
    /// webhooks: `subscribers` subscriptions (users 1 to `subscribers`) to one event type,
    /// and `deliveries / subscribers` events that all of them may see, published through
    /// the api (100 per request), fanned out (10 per SQS batch), delivered (10 per batch).
    pub async fn peak_rss(
        receiver_url: &str,
        received: &AtomicUsize,
        deliveries: usize,
    ) -> Vec<(String, f64, String)> {
        let subscribers = super::env_usize("FIGURES_RSS_SUBSCRIBERS", 10).max(1);
        let events = deliveries.div_ceil(subscribers);
        let stack = Deployed::start(&[], &[]).await;
        let client = &stack.moto.client;
        for user in 1..=subscribers as u64 {
            let created = client
                .post_json(
                    "/api/v0/webhooks/subscriptions",
                    &token(&claims(user, "hq")),
                    &json!({"trigger_url": receiver_url, "event_id": "create_invoice", "secret": "bench"}),
                )
                .await;
            assert_eq!(created.status(), "ok_created", "{:?}", created.tree);
        }
        let [api, fanout, delivery] = functions();
        let mut rows = Vec::new();

        // api: the events, 100 per request.
        let mut rt = stack.spawn_ungated(api, &[]).await;
        rt.init_time().await;
        let mut publisher = claims(1, "hq");
        publisher.scope = Some(webhooks_core::model::identity::PUBLISH_SCOPE.into());
        let bearer = token(&publisher);
        let visible: Vec<u64> = (1..=subscribers as u64).collect();
        let mut from = 1u64;
        while from <= events as u64 {
            let to = (from + 100).min(events as u64 + 1);
            let batch: Vec<Value> = (from..to)
                .map(|i| {
                    json!({"event_id": "create_invoice", "object_id": i,
                           "resource_url": format!("https://hq.example.com/api/v0/invoices/{i}"),
                           "visible_to": visible})
                })
                .collect();
            let answer = rt
                .invoke(api_request(
                    "POST",
                    "/api/v0/webhooks/events",
                    &bearer,
                    Some(&json!(batch)),
                ))
                .await;
            assert_eq!(answer["statusCode"], 200, "{answer}");
            from = to;
        }
        let pid = child_pid(api.binary);
        rows.push((
            format!("api peak RSS ({events} events published, 100 per request)"),
            pid.map_or(f64::NAN, peak_rss_mb),
            "MB (VmHWM; goal <= 30)".to_owned(),
        ));
        drop(rt);

        // fan-out: the events queue, 10 per batch.
        let mut rt = stack.spawn_ungated(fanout, &[]).await;
        rt.init_time().await;
        let events_queue = stack.moto.platform.events.receiver.clone();
        let handed = drain(events_queue.as_ref(), &mut rt, |n| n >= events).await;
        let pid = child_pid(fanout.binary);
        rows.push((
            format!("fanout peak RSS ({handed} events, {subscribers} subscribers each)"),
            pid.map_or(f64::NAN, peak_rss_mb),
            "MB (VmHWM; goal <= 30)".to_owned(),
        ));
        drop(rt);

        // delivery: the jobs, 10 per batch, to the receiver.
        let before = received.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut rt = stack
            .spawn_ungated(delivery, &[("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")])
            .await;
        rt.init_time().await;
        let jobs = stack.moto.platform.deliveries.receiver.clone();
        drain(jobs.as_ref(), &mut rt, |_| {
            received.load(Ordering::Relaxed) - before >= deliveries
        })
        .await;
        let delivered = received.load(Ordering::Relaxed) - before;
        let pid = child_pid(delivery.binary);
        rows.push((
            format!("delivery peak RSS ({delivered} deliveries, 10 per batch)"),
            pid.map_or(f64::NAN, peak_rss_mb),
            format!(
                "MB (VmHWM; goal <= 30; {:.0} s on moto)",
                started.elapsed().as_secs_f64()
            ),
        ));
        rows
    }

    /// Init, spawn to the first `/next`, median of `runs`, secrets from Secrets Manager
    /// (as `--bench init` measures it); and the api's spawn to its first answer, where it
    /// reads its secrets.
    pub async fn init_times(runs: usize) -> Vec<(String, f64)> {
        let stack = Deployed::start(&[], &[]).await;
        let median_ms = |mut times: Vec<Duration>| {
            times.sort();
            times[times.len() / 2].as_secs_f64() * 1000.0
        };
        let mut rows = Vec::new();
        let mut answers = Vec::new();
        for function in functions() {
            let mut times = Vec::new();
            for _ in 0..runs.max(1) {
                let mut rt = stack.spawn_ungated(function, &[]).await;
                times.push(rt.init_time().await);
                if function.logical_id == "ApiFunction" {
                    answers.push(rt.time_to_answer(list_subscriptions_request()).await);
                }
            }
            rows.push((format!("{} init", function.logical_id), median_ms(times)));
        }
        rows.push(("ApiFunction first answer".into(), median_ms(answers)));
        rows
    }
}

/// Figures collected for the final table: (section, name, value, unit).
#[derive(Default)]
struct Table(Vec<(String, String, String)>);

impl Table {
    fn add(&mut self, name: impl Into<String>, value: impl Into<String>, note: impl Into<String>) {
        let (name, value, note) = (name.into(), value.into(), note.into());
        println!("  {name}: {value} {note}");
        self.0.push((name, value, note));
    }

    fn print(&self) {
        let w = self.0.iter().map(|r| r.0.len()).max().unwrap_or(10);
        let v = self.0.iter().map(|r| r.1.len()).max().unwrap_or(10);
        println!();
        println!("{:<w$}  {:>v$}  note", "figure", "value");
        println!("{}", "-".repeat(w + v + 40));
        for (name, value, note) in &self.0 {
            println!("{name:<w$}  {value:>v$}  {note}");
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn skipped(part: &str) -> bool {
    std::env::var("FIGURES_SKIP")
        .unwrap_or_default()
        .split(',')
        .any(|p| p.trim() == part)
}

// ---------------------------------------------------------------------------------------
// The receiver

/// What the receiver saw: a count, and when each object id (of a run's range) arrived,
/// in nanoseconds since `epoch`.
pub struct Seen {
    pub count: AtomicUsize,
    epoch: Instant,
    /// Object ids from `base` on; 0 = not yet.
    arrivals: std::sync::RwLock<(u64, Arc<Vec<AtomicU64>>)>,
}

impl Seen {
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64 + 1
    }

    /// Starts noting arrivals of object ids `base..base + len`.
    fn track(&self, base: u64, len: usize) -> Arc<Vec<AtomicU64>> {
        let slots: Arc<Vec<AtomicU64>> = Arc::new((0..len).map(|_| AtomicU64::new(0)).collect());
        *self.arrivals.write().unwrap() = (base, slots.clone());
        slots
    }

    fn note(&self, object_id: u64) {
        let now = self.nanos(Instant::now());
        let guard = self.arrivals.read().unwrap();
        let (base, slots) = &*guard;
        if let Some(slot) = object_id
            .checked_sub(*base)
            .and_then(|i| slots.get(i as usize))
        {
            let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// The object id of a delivery body: form (`id=123&...`) or JSON (`{"id":123,...}`).
fn object_id(body: &[u8]) -> Option<u64> {
    let rest = body
        .strip_prefix(b"id=")
        .or_else(|| body.strip_prefix(b"{\"id\":"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

struct FastReceiver {
    url: String,
    addr: SocketAddr,
    seen: Arc<Seen>,
}

/// Starts the receiver on a runtime of its own (two worker threads), so that the bench's
/// publisher never delays an arrival.
fn start_receiver() -> FastReceiver {
    let seen = Arc::new(Seen {
        count: AtomicUsize::new(0),
        epoch: Instant::now(),
        arrivals: std::sync::RwLock::new((0, Arc::new(Vec::new()))),
    });
    let shared = seen.clone();
    // Named, like its runtime's threads, so the client's CPU can be told from its own.
    let addr = serve_http("receiver", move |body| {
        if let Some(id) = object_id(&body) {
            shared.note(id);
        }
        shared.count.fetch_add(1, Ordering::Relaxed);
        async {}
    });
    FastReceiver {
        url: format!("http://{addr}/hook"),
        addr,
        seen,
    }
}

/// A relay that does nothing but forward: each POST of events is answered at once, and
/// each event's object id is POSTed to `receiver` (a batch's at the same time), as the
/// runner's delivery would. What publish to receipt costs on this machine with no work
/// in between, two hops as through the runner.
fn start_relay(receiver: &str) -> SocketAddr {
    let (receiver, http) = (receiver.to_owned(), client());
    serve_http("relay", move |body| {
        let (receiver, http) = (receiver.clone(), http.clone());
        tokio::spawn(async move {
            let events: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
            let posts = events
                .iter()
                .filter_map(|e| e["object_id"].as_u64())
                .map(|id| post_object(&http, &receiver, id));
            futures::future::join_all(posts).await;
        });
        async {}
    })
}

/// A POST of one object id to `url`, in the form a delivery has (what the receiver reads).
fn post_object(
    http: &reqwest::Client,
    url: &str,
    id: u64,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("id={id}&resource_url=x"))
        .send()
}

/// An HTTP/1 server on 127.0.0.1, on a runtime of its own (two worker threads named
/// `name`): each request's body goes to `handle`, and the answer is `200 ok`.
fn serve_http<F, Fut>(name: &'static str, handle: F) -> SocketAddr
where
    F: Fn(Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(name)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                let handle = handle.clone();
                                async move {
                                    let body = req.into_body().collect().await?.to_bytes();
                                    handle(body).await;
                                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                        Bytes::from_static(b"ok"),
                                    )))
                                }
                            });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .expect("the server's thread starts");
    rx.recv().unwrap()
}

// ---------------------------------------------------------------------------------------
// Load generator: keep-alive connections on plain threads, one request at a time each.

fn load_generator(addr: SocketAddr, connections: usize, duration: Duration) -> f64 {
    let body = b"id=1&resource_url=https%3A%2F%2Fhq.example.com%2Fapi%2Fv0%2Finvoices%2F1";
    let request = format!(
        "POST /hook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (request, stop, total) = (request.clone(), stop.clone(), total.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(&request).is_err() {
                        break;
                    }
                    // One response: headers, then content-length bytes.
                    let mut have = 0;
                    let complete = loop {
                        match s.read(&mut buf[have..]) {
                            Ok(0) | Err(_) => break false,
                            Ok(k) => have += k,
                        }
                        if let Some(end) = find(&buf[..have], b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            while have < end + 4 + len {
                                match s.read(&mut buf[have..]) {
                                    Ok(0) | Err(_) => return n,
                                    Ok(k) => have += k,
                                }
                            }
                            break true;
                        }
                    };
                    if !complete {
                        break;
                    }
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
                n
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    total.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `wrk` against the receiver, when it is installed: its requests/s.
fn wrk(url: &str, secs: u64) -> Option<f64> {
    let script = std::env::temp_dir().join("figures-wrk.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = \"id=1&resource_url=x\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n",
    )
    .ok()?;
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------
// The local runner as a process

/// The runner binary: the release build, or `FIGURES_RUNNER` (another build of it, e.g.
/// `--profile profiling` for perf).
fn runner_binary() -> String {
    std::env::var("FIGURES_RUNNER").unwrap_or_else(|_| release_binary("webhooks-local").to_owned())
}

fn runner_command() -> Command {
    Command::new(runner_binary())
}

/// The local runner as a process (`cmd` runs it, perhaps under a tool): memory backend,
/// no rate limit, its log at the default level to nowhere (or to `FIGURES_RUNNER_LOG`).
fn spawn_runner(mut cmd: Command) -> LocalProcess {
    cmd.env("PORT", "0")
        .env("WEBHOOKS_BACKEND", "memory")
        .env("WEBHOOKS_RATE_LIMIT_PER_MINUTE", "0")
        .env_remove("RUST_LOG")
        .stderr(match std::env::var_os("FIGURES_RUNNER_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("the log file")),
            None => Stdio::null(),
        });
    LocalProcess::spawn(cmd)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / clock_ticks())
}

/// CPU time (user + system) of this process's threads, but for the receiver's.
fn cpu_time_but_receiver() -> Duration {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with("receiver") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// The peak resident set of a process so far (`VmHWM`), in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()
        .unwrap()
}

async fn subscribe(http: &reqwest::Client, runner: &LocalProcess, url: &str) {
    let body = json!({"trigger_url": url, "event_id": "create_invoice", "secret": "bench-secret"});
    let text = http
        .post(format!("{}/api/v0/webhooks/subscriptions", runner.base))
        .bearer_auth(&runner.token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["meta"]["status"], "ok_created", "{answer}");
}

fn events_body(ids: std::ops::Range<u64>) -> Vec<u8> {
    let events: Vec<Value> = ids
        .map(|i| {
            json!({
                "event_id": "create_invoice",
                "object_id": i,
                "resource_url": format!("https://hq.example.com/api/v0/invoices/{i}"),
                "visible_to": [1],
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

async fn publish(http: &reqwest::Client, runner: &LocalProcess, body: Vec<u8>) {
    let answer = http
        .post(format!("{}/api/v0/webhooks/events", runner.base))
        .bearer_auth(&runner.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    assert!(
        !text.contains("\"failed\"") && !text.contains("\"invalid\""),
        "{text}"
    );
}

async fn wait_for(seen: &Seen, n: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while seen.count.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// A steady-rate run: each object id's time from its batch's send to its arrival.
struct SteadyRun {
    latencies: Vec<Duration>,
    /// Per batch, its last arrival less its first.
    spreads: Vec<Duration>,
    /// Each batch's time to its answer.
    answers: Vec<Duration>,
    /// Events per second offered, as sent.
    offered: f64,
}

impl SteadyRun {
    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// Offers `n` object ids from `base` on in batches of 10 at `per_sec`: each batch at its
/// own time, on its own task, by `send(first id)` (true when answered with success).
/// Latency is from just before the send to the receiver's arrival time; waits (up to
/// 60 s) for every id to arrive.
async fn at_steady_rate<F, Fut>(
    seen: &Arc<Seen>,
    base: u64,
    per_sec: usize,
    n: usize,
    send: F,
) -> SteadyRun
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let batches = n.div_ceil(10);
    let period = Duration::from_secs_f64(10.0 / per_sec as f64);
    let slots = seen.track(base, n);
    let before = seen.count.load(Ordering::Relaxed);
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..batches).map(|_| AtomicU64::new(0)).collect());
    let t0 = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for b in 0..batches {
        tokio::time::sleep_until(t0 + period * b as u32).await;
        let sending = send(base + (b * 10) as u64);
        let (sent_at, seen) = (sent_at.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            sent_at[b].store(seen.nanos(at), Ordering::Relaxed);
            let ok = sending.await;
            assert!(ok, "a send failed");
            at.elapsed()
        }));
    }
    let span = t0.elapsed();
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    wait_for(seen, before + n, Duration::from_secs(60)).await;
    let mut latencies: Vec<Duration> = (0..n)
        .filter_map(|i| {
            let got = slots[i].load(Ordering::Relaxed);
            let sent = sent_at[i / 10].load(Ordering::Relaxed);
            (got != 0 && sent != 0).then(|| Duration::from_nanos(got.saturating_sub(sent)))
        })
        .collect();
    latencies.sort();
    answers.sort();
    let mut spreads: Vec<Duration> = (0..batches)
        .filter_map(|b| {
            let arrived = slots[b * 10..((b + 1) * 10).min(n)]
                .iter()
                .map(|slot| slot.load(Ordering::Relaxed))
                .filter(|&at| at != 0);
            let (first, last) =
                arrived.fold((u64::MAX, 0), |(lo, hi), at| (lo.min(at), hi.max(at)));
            (last >= first).then(|| Duration::from_nanos(last - first))
        })
        .collect();
    spreads.sort();
    SteadyRun {
        latencies,
        spreads,
        answers,
        offered: n as f64 / span.as_secs_f64(),
    }
}

/// [`at_steady_rate`] with each batch POSTed as 10 events to `url` (with `bearer`, when
/// given), as a producer publishes them.
async fn publish_steadily(
    seen: &Arc<Seen>,
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    base: u64,
    per_sec: usize,
    n: usize,
) -> SteadyRun {
    at_steady_rate(seen, base, per_sec, n, |from| {
        let mut post = http
            .post(url)
            .header("content-type", "application/json")
            .body(events_body(from..from + 10));
        if let Some(token) = bearer {
            post = post.bearer_auth(token);
        }
        async move { post.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------

/// The runner's delivery client (`ReqwestSender`, loopback allowed as the runner allows it)
/// alone: `posts` POSTs, 80 in flight, each with the body and signed headers of a
/// delivery (made once: signing is the runner's cost, not the client's). Its rate, and
/// the CPU of this process's threads but the receiver's. What the runner does besides
/// sending (publish, fan-out, queues, signing, the log) is its CPU per delivery less this.
async fn delivery_client_alone(url: &str, posts: usize) -> (f64, Duration) {
    use webhooks_core::adapters::http::ReqwestSender;
    use webhooks_core::model::network::{IpRange, NetworkPolicy};
    use webhooks_core::model::subscription::ContentType;
    use webhooks_core::ports::http::{HttpSender, OutgoingRequest};
    use webhooks_core::security::signing::{self, BodyId, SigningKey};

    let sender = ReqwestSender::new(NetworkPolicy::allowing(IpRange::loopback()));
    let body = signing::body(
        ContentType::Form,
        BodyId::Object(1),
        Some("https://hq.example.com/api/v0/invoices/1"),
    );
    let key = SigningKey::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let request = OutgoingRequest {
        url: url.to_owned(),
        headers: signing::headers(
            ContentType::Form,
            "create_invoice",
            "msg_0123456789abcdef0123456789abcdef",
            1_700_000_000,
            &body,
            Some(&key),
            None,
        ),
        body,
        timeout: Duration::from_secs(10),
        body_cap: webhooks_core::ports::http::MAX_RESPONSE_BODY,
    };
    let post = |_| async {
        let answer = sender.post(&request).await.expect("the receiver answers");
        assert_eq!(answer.status, 200);
    };
    posts_in_flight(posts, post).await
}

/// 1,000 POSTs to warm up (connections made), then `posts` more, 80 in flight: their rate
/// and the CPU of this process's threads but the receiver's meanwhile.
async fn posts_in_flight<F, Fut>(posts: usize, post: F) -> (f64, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future,
{
    stream::iter(0..1000)
        .map(&post)
        .buffer_unordered(80)
        .for_each(|_| async {})
        .await;
    let started = Instant::now();
    let cpu_before = cpu_time_but_receiver();
    stream::iter(0..posts)
        .map(&post)
        .buffer_unordered(80)
        .for_each(|_| async {})
        .await;
    let rate = posts as f64 / started.elapsed().as_secs_f64();
    (rate, cpu_time_but_receiver().saturating_sub(cpu_before))
}

/// What a throughput run measured.
struct Throughput {
    rate: f64,
    published: Duration,
    cpu: Duration,
    delivered: usize,
}

/// The runner subscribed to the receiver, then `events` events published in batches of
/// `batch`, four requests at a time, until every delivery arrived. One batch goes first
/// as a warm-up (connections made); the figures cover the rest.
async fn throughput(
    http: &reqwest::Client,
    receiver: &FastReceiver,
    runner: &LocalProcess,
    events: usize,
    batch: usize,
) -> Throughput {
    subscribe(http, runner, &receiver.url).await;
    let before = receiver.seen.count.load(Ordering::Relaxed);
    publish(http, runner, events_body(1..batch as u64 + 1)).await;
    assert!(wait_for(&receiver.seen, before + batch, Duration::from_secs(120)).await);
    let start_count = receiver.seen.count.load(Ordering::Relaxed);
    let cpu_before = cpu_time(runner.pid());
    let started = Instant::now();
    let bodies: Vec<Vec<u8>> = (0..events.div_ceil(batch))
        .map(|b| {
            let from = 1_000_000 + (b * batch) as u64;
            events_body(from..(from + batch as u64).min(1_000_000 + events as u64))
        })
        .collect();
    stream::iter(bodies)
        .map(|body| publish(http, runner, body))
        .buffer_unordered(4)
        .for_each(|_| async {})
        .await;
    let published = started.elapsed();
    let all = wait_for(
        &receiver.seen,
        start_count + events,
        Duration::from_secs(600),
    )
    .await;
    let elapsed = started.elapsed();
    let cpu = cpu_time(runner.pid()) - cpu_before;
    let delivered = receiver.seen.count.load(Ordering::Relaxed) - start_count;
    assert!(all, "only {delivered} of {events} deliveries arrived");
    Throughput {
        rate: delivered as f64 / elapsed.as_secs_f64(),
        published,
        cpu,
        delivered,
    }
}

/// The runner's user-space instructions per delivery, counted by valgrind's callgrind:
/// the throughput run twice under it, at `small` and `large` events, and the difference
/// divided by the difference in deliveries, so that start-up, subscription and warm-up
/// cancel out. Unlike CPU time, the count hardly moves between runs of one build (two
/// runs differed by 0.3 %), so it tells builds apart where the timings cannot. It leaves
/// out the kernel's share, and counts crypto at the instruction set valgrind offers (no
/// SHA extensions), above what it costs natively. `None` without valgrind.
async fn instructions_per_delivery(
    http: &reqwest::Client,
    receiver: &FastReceiver,
    small: usize,
    large: usize,
) -> Option<f64> {
    let present = Command::new("valgrind").arg("--version").output();
    if !present.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/figures");
    std::fs::create_dir_all(&dir).expect("target/figures");
    let mut counts = Vec::new();
    for events in [small, large] {
        let out = dir.join(format!("callgrind.{events}.out"));
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(runner_binary());
        let mut runner = spawn_runner(cmd);
        throughput(http, receiver, &runner, events, 100).await;
        // Ctrl-C: the runner stops, and callgrind writes its counts as it exits.
        let signalled = Command::new("kill")
            .args(["-INT", &runner.pid().to_string()])
            .status();
        assert!(
            signalled.is_ok_and(|s| s.success()),
            "the runner is signalled"
        );
        runner.child.wait().expect("the runner exits");
        let written = std::fs::read_to_string(&out).expect("callgrind's counts");
        let total = written
            .lines()
            .find_map(|l| l.strip_prefix("totals: ").or(l.strip_prefix("summary: ")))
            .and_then(|t| t.trim().parse::<f64>().ok())
            .expect("a total in callgrind's output");
        counts.push(total);
    }
    Some((counts[1] - counts[0]) / (large - small) as f64)
}

#[tokio::main]
async fn main() {
    let events = env_usize("FIGURES_EVENTS", 100_000);
    let batch = env_usize("FIGURES_BATCH", 100).clamp(1, 100);
    let latency_secs = env_usize("FIGURES_LATENCY_SECS", 5);
    let loadgen_secs = env_usize("FIGURES_LOADGEN_SECS", 3);
    let rates: Vec<usize> = std::env::var("FIGURES_RATES")
        .unwrap_or_else(|_| "2000,10000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();

    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--release", "--bins", "-p", "webhooks-local"]);
    if !skipped("lambda") || !skipped("init") {
        build.args([
            "-p",
            "webhooks-api",
            "-p",
            "webhooks-fanout",
            "-p",
            "webhooks-delivery",
        ]);
    }
    assert!(
        build.status().expect("cargo runs").success(),
        "the binaries build"
    );

    let mut table = Table::default();
    let receiver = start_receiver();
    println!(
        "receiver: hyper HTTP/1 on {} (its own 2-thread runtime)",
        receiver.url
    );

    // The receiver alone, under a load generator.
    let generated = load_generator(receiver.addr, 64, Duration::from_secs(loadgen_secs as u64));
    table.add(
        "receiver alone, load generator (64 keep-alive connections)",
        format!("{generated:.0}"),
        "requests/s",
    );
    if let Some(rate) = wrk(&receiver.url, loadgen_secs as u64) {
        table.add(
            "receiver alone, wrk -t2 -c64",
            format!("{rate:.0}"),
            "requests/s",
        );
    }

    // Bare reqwest: as many POSTs as deliveries, 80 in flight.
    let http = client();
    let bare_body = b"id=1&resource_url=https%3A%2F%2Fhq.example.com%2Fapi%2Fv0%2Finvoices%2F1";
    let post = |_| {
        let req = http
            .post(&receiver.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .timeout(Duration::from_secs(10))
            .body(&bare_body[..]);
        async move { req.send().await.unwrap().bytes().await.unwrap() }
    };
    let (bare, bare_cpu) = posts_in_flight(events, post).await;
    table.add(
        "bare reqwest POST rate (80 in flight)",
        format!("{bare:.0}"),
        "requests/s",
    );
    table.add(
        "bare reqwest CPU per POST",
        format!("{:.1}", bare_cpu.as_secs_f64() * 1e6 / events as f64),
        "µs (this process's threads but the receiver's: the client's own share of a delivery)",
    );

    // The runner's own delivery client alone, as a floor for the runner's CPU per delivery.
    let (client_rate, client_cpu) = delivery_client_alone(&receiver.url, events).await;
    table.add(
        "the runner's delivery client alone, POST rate (80 in flight)",
        format!("{client_rate:.0}"),
        "requests/s",
    );
    table.add(
        "the runner's delivery client alone, CPU per POST",
        format!("{:.1}", client_cpu.as_secs_f64() * 1e6 / events as f64),
        "µs (as above: the floor under the runner's CPU per delivery)",
    );

    // The local runner: N events in batches, one subscriber each.
    let runner = spawn_runner(runner_command());
    let Throughput {
        rate,
        published,
        cpu,
        delivered,
    } = throughput(&http, &receiver, &runner, events, batch).await;
    table.add(
        format!("local runner delivery rate ({events} events, batches of {batch})"),
        format!("{rate:.0}"),
        format!(
            "deliveries/s (published in {:.2} s)",
            published.as_secs_f64()
        ),
    );
    table.add(
        "local runner / bare reqwest",
        format!("{:.2}", rate / bare),
        "rate ratio, bound >= 0.5 (docs/performance.md)",
    );
    let runner_cpu = cpu.as_secs_f64() / delivered as f64;
    table.add(
        "local runner CPU per delivery",
        format!("{:.1}", runner_cpu * 1e6),
        "µs (utime+stime of webhooks-local)",
    );
    table.add(
        "local runner CPU per delivery / bare reqwest CPU per POST",
        format!(
            "{:.2}",
            runner_cpu / (bare_cpu.as_secs_f64() / events as f64)
        ),
        "CPU ratio, bound <= 2 (docs/performance.md)",
    );
    table.add(
        "local runner peak RSS after the throughput run",
        format!("{:.1}", peak_rss_mb(runner.pid())),
        "MB (VmHWM)",
    );
    drop(runner);

    if !skipped("instructions") {
        let small = env_usize("FIGURES_CALLGRIND_EVENTS", 5000).max(100);
        let label = "local runner instructions per delivery";
        match instructions_per_delivery(&http, &receiver, small, 3 * small).await {
            Some(count) => table.add(
                label,
                format!("{count:.0}"),
                format!(
                    "user space, callgrind, runs of {small} and {} events: steady between runs, to compare builds",
                    3 * small
                ),
            ),
            None => table.add(label, "-", "valgrind is not on PATH"),
        }
    }

    if !skipped("latency") {
        // The floor: the same schedule, each batch's 10 POSTs sent straight to the
        // receiver by this process's reqwest client, with no runner in between.
        let mut next_id = 10_000_000u64;
        for &per_sec in &rates {
            let n = per_sec * latency_secs;
            let (base, url) = (next_id, receiver.url.clone());
            next_id += n as u64 + 1000;
            let run = at_steady_rate(&receiver.seen, base, per_sec, n, |from| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let posts = (from..from + 10).map(|id| post_object(&http, &url, id));
                    futures::future::join_all(posts)
                        .await
                        .into_iter()
                        .all(|r| r.is_ok_and(|r| r.status().is_success()))
                }
            })
            .await;
            table.add(
                format!("bare reqwest -> receiver at {per_sec}/s (10 POSTs a batch) p50 / p99"),
                format!("{} / {}", ms(run.percentile(0.5)), ms(run.percentile(0.99))),
                "ms: this machine's floor for one hop, below any runner figure",
            );
        }

        // Two hops with nothing in between: the same publishes through a relay.
        let relay = format!("http://{}/events", start_relay(&receiver.url));
        for &per_sec in &rates {
            let n = per_sec * latency_secs;
            let base = next_id;
            next_id += n as u64 + 1000;
            let run = publish_steadily(&receiver.seen, &http, &relay, None, base, per_sec, n).await;
            table.add(
                format!("relay doing nothing, publish -> receipt at {per_sec}/s p50 / p99"),
                format!("{} / {}", ms(run.percentile(0.5)), ms(run.percentile(0.99))),
                format!(
                    "ms: the floor for two hops, the runner's path; its answer p50 {} / p99 {} ms",
                    ms(percentile(&run.answers, 0.5)),
                    ms(percentile(&run.answers, 0.99))
                ),
            );
        }

        let runner = spawn_runner(runner_command());
        subscribe(&http, &runner, &receiver.url).await;
        for &per_sec in &rates {
            let n = per_sec * latency_secs;
            let base = next_id;
            next_id += n as u64 + 1000;
            let cpu_before = cpu_time(runner.pid());
            let (url, token) = (
                format!("{}/api/v0/webhooks/events", runner.base),
                &runner.token,
            );
            let run =
                publish_steadily(&receiver.seen, &http, &url, Some(token), base, per_sec, n).await;
            let steady_cpu = cpu_time(runner.pid()).saturating_sub(cpu_before);
            let label = format!("latency at {per_sec}/s ({n} events, batches of 10)");
            table.add(
                format!("{label} p50"),
                ms(run.percentile(0.5)),
                "ms publish->receipt",
            );
            table.add(
                format!("{label} p99"),
                ms(run.percentile(0.99)),
                "ms publish->receipt",
            );
            table.add(
                format!("{label} spread in a batch p50 / p99"),
                format!(
                    "{} / {}",
                    ms(percentile(&run.spreads, 0.5)),
                    ms(percentile(&run.spreads, 0.99))
                ),
                "ms from a batch's first arrival to its last",
            );
            table.add(
                format!("{label} publisher"),
                format!("{:.0}", run.offered),
                format!(
                    "events/s offered; publish answer p50 {} / p99 {} ms; {} of {n} arrived",
                    ms(percentile(&run.answers, 0.5)),
                    ms(percentile(&run.answers, 0.99)),
                    run.latencies.len()
                ),
            );
            table.add(
                format!("{label} runner CPU per delivery"),
                format!("{:.1}", steady_cpu.as_secs_f64() * 1e6 / n as f64),
                "µs at this steady rate (no backlog, unlike the throughput run)",
            );
        }
        table.add(
            "local runner peak RSS after the latency runs",
            format!("{:.1}", peak_rss_mb(runner.pid())),
            "MB (VmHWM)",
        );
        drop(runner);
    }

    if !skipped("lambda") {
        let deliveries = env_usize("FIGURES_RSS_DELIVERIES", 10_000);
        for (name, mb, note) in
            figures_lambda::peak_rss(&receiver.url, &receiver.seen.count, deliveries).await
        {
            table.add(name, format!("{mb:.1}"), note);
        }
    }

    if !skipped("init") {
        let inits = figures_lambda::init_times(env_usize("FIGURES_INIT_RUNS", 7)).await;
        for (name, value) in &inits {
            table.add(
                name.clone(),
                format!("{value:.1}"),
                if name.ends_with("first answer") {
                    "ms (spawn to the answer of a first request, which reads the secrets)"
                } else {
                    "ms (spawn to first /next, median; secrets from Secrets Manager, moto)"
                },
            );
        }
        let of = |id: &str| {
            inits
                .iter()
                .find(|(n, _)| n.starts_with(id))
                .map(|(_, v)| *v)
        };
        if let (Some(api), Some(fanout)) = (of("ApiFunction"), of("FanoutFunction")) {
            table.add(
                "api init / fan-out init",
                format!("{:.2}", api / fanout),
                "goal <= 1.2",
            );
        }
    }

    // The bill and the AWS requests per delivery, through the real adapters on moto
    // (`--bench cost` alone prints its full table; sizes from its `COST_*` variables).
    if !skipped("cost") {
        let report = webhooks_tests::cost::report().await;
        for figures in report.scenarios {
            let (dollars_goal, requests_goal) = figures.scenario.goals;
            table.add(
                format!("cost, {}", figures.scenario.name),
                format!("{:.4}", figures.dollars_per_million),
                format!("$ per million deliveries, goal <= {dollars_goal:.2} (docs/cost.md)"),
            );
            table.add(
                format!("cost, {}, log provisioned", figures.scenario.name),
                format!("{:.4}", figures.provisioned_log_dollars_per_million),
                "$ per million, estimate: DeliveryLogCapacity=provisioned at 70 % use".to_owned(),
            );
            table.add(
                format!("AWS requests per delivery, {}", figures.scenario.name),
                format!("{:.3}", figures.aws_requests_per_delivery),
                format!("goal <= {requests_goal:.2} (besides Lambda's polling)"),
            );
            table.add(
                format!("fan-out RRU per event, {}", figures.scenario.name),
                format!(
                    "{:.3}",
                    figures.fanout_reads.read_units() / figures.scenario.events.max(1) as f64
                ),
                "read units of its index Queries, full batches",
            );
        }
        for r in report.reads {
            table.add(
                format!(
                    "fan-out RRU per event, {} narrow events, {} subscriptions over {} users",
                    r.events, r.subscriptions, r.users
                ),
                format!("{:.3}", r.read_units_per_event()),
                "each event visible to one user; goal <= 1 per audience user",
            );
        }
    }

    table.print();
}
