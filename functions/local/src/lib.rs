//! The local runner: the same handlers as the Lambda functions, composed in one process
//! with in-memory adapters (or DynamoDB/SQS wherever the AWS SDK points), behind a plain
//! HTTP server on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use webhooks_api::App;
use webhooks_api::input::MAX_BODY_BYTES;
use webhooks_core::adapters::aws::sdk_config;
use webhooks_core::config::Settings;
use webhooks_core::model::clock::Clock;
use webhooks_core::ports::queue::QueueError;
use webhooks_core::ports::store::StoreError;
use webhooks_core::security::auth::{TokenClaims, mint_hs256};
use webhooks_core::stages::batch::consume;

pub mod compose;
pub use compose::{InvalidVisibility, Platform, QueuePair, Visibility, compose, compose_with};

/// Delivery batches the local runner handles at once (Lambda's counterpart is the
/// delivery function's concurrency).
pub const DELIVERY_WORKERS: usize = 8;

/// Where state lives.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Maps and queues in this process; gone when it stops.
    Memory,
    /// DynamoDB and SQS as this SDK configuration reaches them (moto, through
    /// `AWS_ENDPOINT_URL`, or a real account); missing tables and queues are created.
    Aws(Box<aws_config::SdkConfig>),
}

/// Which backend `WEBHOOKS_BACKEND` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Memory,
    Aws,
}

impl BackendKind {
    /// `memory` (or nothing) and `aws`, spaces around them aside.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim() {
            "" | "memory" => Some(Self::Memory),
            "aws" => Some(Self::Aws),
            _ => None,
        }
    }
}

impl Backend {
    /// The backend of this kind; `aws` configured from the environment like any AWS SDK
    /// client.
    pub async fn new(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Memory => Self::Memory,
            BackendKind::Aws => Self::Aws(Box::new(sdk_config().await)),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Aws(_) => "aws",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare the AWS backend: {0}")]
    Aws(#[from] StoreError),
    #[error("cannot prepare the AWS backend's queues: {0}")]
    Queues(#[from] QueueError),
}

/// A running local platform.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    /// Every part, when started by [`start`].
    pub platform: Option<Arc<Platform>>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    stages: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the server task to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        for stage in self.stages {
            let _ = stage.await;
        }
    }
}

/// Starts the platform on `addr` (port 0 picks a free one): the API, and the fan-out
/// fed continuously from the events queue.
pub async fn start(
    addr: SocketAddr,
    backend: &Backend,
    settings: Settings,
) -> Result<Running, LocalError> {
    start_with(addr, backend, settings, Visibility::default()).await
}

/// [`start`] with these queue visibility timeouts.
pub async fn start_with(
    addr: SocketAddr,
    backend: &Backend,
    settings: Settings,
    visibility: Visibility,
) -> Result<Running, LocalError> {
    let platform = Arc::new(compose_with(backend, settings, visibility).await?);
    let mut running = serve(addr, platform.app.clone()).await?;
    let stop = running.shutdown.subscribe();
    running.stages.push(tokio::spawn(consume(
        platform.events.receiver.clone(),
        platform.fanout.clone(),
        stop,
        "fan-out",
    )));
    // Several batches at once, as Lambda runs several instances: a batch that waits on a
    // slow receiver holds one worker, not the stage.
    for _ in 0..DELIVERY_WORKERS {
        running.stages.push(tokio::spawn(consume(
            platform.deliveries.receiver.clone(),
            platform.deliverer.clone(),
            running.shutdown.subscribe(),
            "delivery",
        )));
    }
    running.platform = Some(platform);
    Ok(running)
}

/// Serves an already composed API on `addr`.
pub async fn serve(addr: SocketAddr, app: Arc<App>) -> Result<Running, LocalError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| LocalError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| LocalError::Bind { addr, source })?;
    let (shutdown, mut stopped) = watch::channel(false);
    let served = app.clone();
    let server = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    // Answers go out as written, not held back for a coalescing ACK.
                    let _ = stream.set_nodelay(true);
                    let app = served.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let app = app.clone();
                            async move { Ok::<_, std::convert::Infallible>(answer(&app, req).await) }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            }
        }
    });
    Ok(Running {
        addr,
        app,
        platform: None,
        shutdown,
        server,
        stages: Vec::new(),
    })
}

/// Reads the body (up to one byte past the API's limit, so the API can refuse it with its
/// own message) and hands the request to the same handler the Lambda uses.
async fn answer(
    app: &App,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => collected.to_bytes(),
        // Over the limit: a body one byte too long gets the API's "too large" answer.
        Err(_) => Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]),
    };
    let (parts, body) = webhooks_api::handle(app, http::Request::from_parts(parts, body))
        .await
        .into_parts();
    hyper::Response::from_parts(parts, Full::new(body))
}

/// A token for the local runner, signed with its HS256 secret.
pub fn mint_token(secret: &str, claims: &TokenClaims) -> String {
    mint_hs256(secret.as_bytes(), claims)
}

// The claims of the token printed at start, and the `token` command's defaults.
pub const DEFAULT_USER: u64 = 1;
pub const DEFAULT_DEPLOYMENT: &str = "hq";
pub const DEFAULT_NAME: &str = "Local Developer";
pub const DEFAULT_EMAIL: &str = "developer@localhost";
pub const DEFAULT_TOKEN_DAYS: i64 = 30;

/// The claims of the token printed at start: user 1 of deployment `hq`, allowed to
/// publish events, valid for 30 days.
pub fn default_claims(clock: &dyn Clock) -> TokenClaims {
    TokenClaims {
        sub: DEFAULT_USER.to_string(),
        deployment: DEFAULT_DEPLOYMENT.into(),
        name: DEFAULT_NAME.into(),
        email: DEFAULT_EMAIL.into(),
        pro: Some(true),
        scope: Some(webhooks_core::model::identity::PUBLISH_SCOPE.into()),
        exp: clock.now_secs() + DEFAULT_TOKEN_DAYS * 24 * 3600,
    }
}
