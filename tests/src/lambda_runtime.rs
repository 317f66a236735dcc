//! A Lambda Runtime API on 127.0.0.1, enough to run the real function binaries as Lambda
//! does: the binary asks for the next event, handles it, and posts its answer back.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    /// When the function first asked for an event: the end of its init.
    first_next: Option<Instant>,
    pending: VecDeque<(String, Value)>,
    answers: Vec<(String, Value)>,
    errors: Vec<(String, String)>,
}

/// The runtime API, and the function process it feeds.
pub struct Runtime {
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    wake: Arc<Notify>,
    pub address: String,
    child: Option<Child>,
    spawned_at: Option<Instant>,
    server: tokio::task::JoinHandle<()>,
    next_id: usize,
}

impl Runtime {
    pub async fn start() -> Runtime {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let (arrived, wake) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (s, a, w) = (state.clone(), arrived.clone(), wake.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, a, w) = (s.clone(), a.clone(), w.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| handle(req, s.clone(), a.clone(), w.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Runtime {
            state,
            arrived,
            wake,
            address,
            child: None,
            spawned_at: None,
            server,
            next_id: 0,
        }
    }

    /// Starts a function binary against this runtime, with these environment variables.
    pub fn spawn(&mut self, binary: &str, envs: &[(&str, &str)]) {
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "test-function")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        self.spawned_at = Some(Instant::now());
        self.child = Some(cmd.spawn().expect("the function binary starts"));
    }

    /// The function's init: from its spawn to its first request for an event.
    pub async fn init_time(&mut self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = self.state.lock().unwrap().first_next {
                return at - self.spawned_at.expect("a spawned function");
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the function exited with {status} during init");
            }
            assert!(Instant::now() < deadline, "no init within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Hands `event` to the function and returns the time from its spawn to the answer:
    /// a cold start's first request as its caller waits for it.
    pub async fn time_to_answer(&mut self, event: Value) -> Duration {
        self.invoke(event).await;
        self.spawned_at.expect("a spawned function").elapsed()
    }

    /// Hands an event to the function and waits for its answer.
    pub async fn invoke(&mut self, event: Value) -> Value {
        self.next_id += 1;
        let id = format!("request-{}", self.next_id);
        self.state
            .lock()
            .unwrap()
            .pending
            .push_back((id.clone(), event));
        self.wake.notify_waiters();
        self.wake.notify_one();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let st = self.state.lock().unwrap();
                if let Some((_, answer)) = st.answers.iter().find(|(i, _)| *i == id) {
                    return answer.clone();
                }
                if let Some((_, error)) = st.errors.iter().find(|(i, _)| *i == id) {
                    panic!("the function reported an error: {error}");
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the function exited with {status} (see its stderr above)");
            }
            assert!(
                Instant::now() < deadline,
                "no answer from the function within 60 s"
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), self.arrived.notified()).await;
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.server.abort();
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    wake: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path.ends_with("/runtime/invocation/next") {
        state
            .lock()
            .unwrap()
            .first_next
            .get_or_insert_with(Instant::now);
        loop {
            let next = state.lock().unwrap().pending.pop_front();
            if let Some((id, event)) = next {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 60_000;
                return Ok(Response::builder()
                    .header("Lambda-Runtime-Aws-Request-Id", id)
                    .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                    .header(
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:test",
                    )
                    .header(
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-00000000-000000000000000000000000",
                    )
                    .body(Full::new(Bytes::from(event.to_string())))
                    .unwrap());
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    // /2018-06-01/runtime/invocation/{id}/response | /error, or /runtime/init/error
    if let [.., "invocation", id, kind] = parts.as_slice() {
        let mut st = state.lock().unwrap();
        if *kind == "response" {
            st.answers.push((
                id.to_string(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ));
        } else {
            st.errors
                .push((id.to_string(), String::from_utf8_lossy(&body).into_owned()));
        }
    } else {
        state
            .lock()
            .unwrap()
            .errors
            .push(("init".into(), String::from_utf8_lossy(&body).into_owned()));
    }
    arrived.notify_waiters();
    Ok(Response::builder()
        .status(202)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap())
}

/// Environment for a function binary that reaches moto, with its resources named.
pub fn moto_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The platform's tables and queues in moto (created as the local runner creates them;
/// the template, on AWS), its API served for setting things up, and the environment a
/// function binary needs to find them.
pub struct MotoPlatform {
    pub platform: std::sync::Arc<webhooks_local::Platform>,
    pub running: webhooks_local::Running,
    pub client: crate::client::Client,
    env: Vec<(String, String)>,
}

impl MotoPlatform {
    /// Fresh tables and queues; `extra` settings go to the platform and the binary alike.
    pub async fn start(extra: &[(&str, &str)]) -> MotoPlatform {
        let names = [
            ("WEBHOOKS_SUBSCRIPTIONS_TABLE", crate::unique("subs")),
            ("WEBHOOKS_IDEMPOTENCY_TABLE", crate::unique("idem")),
            ("WEBHOOKS_DELIVERY_LOG_TABLE", crate::unique("log")),
            ("WEBHOOKS_RATE_LIMIT_TABLE", crate::unique("rate")),
            ("WEBHOOKS_QUEUE_PREFIX", crate::unique("q")),
        ];
        let mut vars: Vec<(&str, &str)> = names.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.extend_from_slice(extra);
        let backend = webhooks_local::Backend::Aws(Box::new(crate::moto::sdk_config().await));
        let platform = std::sync::Arc::new(
            webhooks_local::compose(&backend, crate::runner::settings(&vars))
                .await
                .expect("the platform composes on moto"),
        );
        let running = webhooks_local::serve(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            platform.app.clone(),
        )
        .await
        .expect("the API serves");
        let client = crate::client::Client::new(running.base_url());
        let mut env = moto_env(crate::moto::endpoint());
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        MotoPlatform {
            platform,
            running,
            client,
            env,
        }
    }

    /// The variables that name the platform's resources and reach moto.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Starts a function binary against `runtime` with the platform's environment and `more`.
    pub fn spawn(&self, runtime: &mut Runtime, binary: &str, more: &[(&str, &str)]) {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(more);
        runtime.spawn(binary, &env);
    }
}
