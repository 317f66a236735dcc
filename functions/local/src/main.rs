//! `cargo run -p webhooks-local`: the whole platform on 127.0.0.1:3000.
//!
//! The runner allocates with mimalloc: with glibc's allocator, about a third of its CPU per
//! delivery went to `malloc`/`free` (chunk consolidation on every larger request). The
//! Lambda binaries keep the system allocator (their peak RSS is smaller with it).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use clap::{ArgAction, Args, Parser, Subcommand};
use webhooks_core::config::{DEV_JWT_SECRET, Defaults, FromEnv, Settings};
use webhooks_core::model::clock::{Clock, SystemClock};
use webhooks_core::model::identity::PUBLISH_SCOPE;
use webhooks_core::security::auth::TokenClaims;
use webhooks_local::compose::VISIBILITY_VARIABLE;
use webhooks_local::{
    Backend, BackendKind, DEFAULT_DEPLOYMENT, DEFAULT_EMAIL, DEFAULT_NAME, DEFAULT_TOKEN_DAYS,
    DEFAULT_USER, Visibility, default_claims, mint_token, start_with,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "\
webhooks-local: the webhook platform in one process, for development, demos and tests:
the API, the fan-out (events queue to delivery jobs) and the delivery stage (signed POSTs,
retries, the delivery log), the same code as the Lambda functions. Without a command it
serves the API on 127.0.0.1:$PORT (default 3000).";

/// The settings the platform reads (`webhooks_core::config`, the same names as on AWS),
/// and those of the libraries; the runner's own are its options above.
const ENVIRONMENT: &str = "\
Environment:
    WEBHOOKS_JWT_SECRET      HS256 secret for bearer tokens (a development default otherwise)
    WEBHOOKS_JWT_PUBLIC_KEYS PEM RSA public keys accepted for RS256 tokens
    WEBHOOKS_SECRET_KEY      64 hex characters: the key sealing subscription secrets at rest
    WEBHOOKS_ALLOW_HTTP      accept http:// trigger URLs (default true here, false on AWS)
    WEBHOOKS_ALLOW_NETWORKS  address ranges receivers may be in (default 127.0.0.0/8,::1)
    WEBHOOKS_PRO_GATE        only pro users may use webhooks (default false)
    WEBHOOKS_DEPLOYMENTS     comma-separated deployments to serve (default: any)
    WEBHOOKS_EVENT_TYPES[_FILE]  the event catalogue as JSON (or a file holding it)
    WEBHOOKS_RATE_LIMIT_PER_MINUTE  API requests per user and minute (default 600, 0 = off)
    WEBHOOKS_DELIVERY_TIMEOUT_SECS  limit on one delivery request (default 10)
    WEBHOOKS_TIMEOUT_LIMIT   timeouts in a row that delete a subscription (default 5)
    WEBHOOKS_ON_REPEATED_FAILURE  delete (default) or disable a subscription that answers
                             410 Gone or reaches the timeout limit
    WEBHOOKS_API_BASE_URL    this API's address, for the resource_url of operational
                             events (default: the path alone)
    WEBHOOKS_OPERATOR_TOPIC_ARN  an SNS topic the operator hears of removals and give-ups
                             on (aws backend; default: the log)
    WEBHOOKS_BREAKER_COOLDOWN_SECS  how long a receiver that failed slowly has its jobs
                             held back at first (default 30; 0 turns the breaker off)
    WEBHOOKS_RETRY_SCHEDULE  delays before each retry (default 5s,5m,30m,2h,5h,10h,10h)
    WEBHOOKS_DELIVERY_LOG_RETENTION_DAYS  how long attempts stay in the log (default 30)
    WEBHOOKS_RESOURCE_URL_TEMPLATE  resource_url for trigger/dispatch, with {deployment},
                             {trigger_table}, {trigger_table_plural}, {event_id}, {object_id}
    WEBHOOKS_FANOUT_PAGE_SIZE, WEBHOOKS_FANOUT_PAGES_PER_MESSAGE  fan-out paging: subscriptions
                             per store page, pages per message (default: 1 MB pages, 30 s)
    WEBHOOKS_SUBSCRIPTIONS_TABLE, WEBHOOKS_IDEMPOTENCY_TABLE, WEBHOOKS_DELIVERY_LOG_TABLE,
    WEBHOOKS_QUEUE_PREFIX    names of the tables and queues on the aws backend
    RUST_LOG                 log filter (default info)
    TOKIO_WORKER_THREADS     threads running the platform (default: one per core); 1 spends
                             less CPU per delivery, at a lower top rate (docs/design.md)";

#[derive(Parser)]
#[command(
    name = "webhooks-local",
    about = ABOUT,
    after_help = ENVIRONMENT,
    disable_help_subcommand = true,
    flatten_help = true
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The runner's own settings (read here, not by `webhooks_core::config`).
#[derive(Args)]
struct ServeArgs {
    /// Port to listen on, on 127.0.0.1
    #[arg(long, env = "PORT", default_value_t = DEFAULT_PORT, value_parser = port)]
    port: u16,
    /// Where state lives: memory, or aws (DynamoDB and SQS wherever the AWS SDK points,
    /// AWS_ENDPOINT_URL for moto; missing tables and queues are created)
    #[arg(
        long,
        env = "WEBHOOKS_BACKEND",
        value_name = "memory|aws",
        default_value = "memory",
        value_parser = backend
    )]
    backend: BackendKind,
    /// Visibility timeout of both queues: how long a message a stopped or killed runner had
    /// received waits before it is handed out again (default 360 events, 180 deliveries, as
    /// on AWS)
    #[arg(long, env = VISIBILITY_VARIABLE, value_name = "SECS", value_parser = visibility)]
    visibility_secs: Option<Visibility>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a bearer token signed with the configured secret (the defaults are those of
    /// the token printed at start)
    Token(TokenArgs),
}

#[derive(Args)]
struct TokenArgs {
    /// Numeric user id
    #[arg(long, value_name = "ID", default_value_t = DEFAULT_USER)]
    sub: u64,
    /// Deployment (tenant)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_DEPLOYMENT)]
    deployment: String,
    /// User name
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    name: String,
    /// User email
    #[arg(long, value_name = "EMAIL", default_value = DEFAULT_EMAIL)]
    email: String,
    /// Space-separated scopes ('' for none)
    #[arg(long, value_name = "SCOPES", default_value = PUBLISH_SCOPE)]
    scope: String,
    /// Pro user
    #[arg(long, value_name = "true|false", default_value_t = true, action = ArgAction::Set)]
    pro: bool,
    /// Days until it expires
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TOKEN_DAYS, allow_negative_numbers = true)]
    days: i64,
}

impl TokenArgs {
    fn claims(self, clock: &dyn Clock) -> TokenClaims {
        TokenClaims {
            sub: self.sub.to_string(),
            deployment: self.deployment,
            name: self.name,
            email: self.email,
            pro: Some(self.pro),
            scope: Some(self.scope).filter(|s| !s.is_empty()),
            exp: clock.now_secs() + self.days * 24 * 3600,
        }
    }
}

const DEFAULT_PORT: u16 = 3000;

/// A port number; an empty `PORT` is the default.
fn port(text: &str) -> Result<u16, std::num::ParseIntError> {
    if text.is_empty() {
        Ok(DEFAULT_PORT)
    } else {
        text.parse()
    }
}

fn backend(text: &str) -> Result<BackendKind, &'static str> {
    BackendKind::from_name(text).ok_or("use memory or aws")
}

fn visibility(text: &str) -> Result<Visibility, webhooks_local::InvalidVisibility> {
    Visibility::from_setting(Some(text))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env(&Defaults::local()).context("invalid configuration")?;
    let secret = settings
        .api
        .jwt_secret
        .clone()
        .unwrap_or_else(|| DEV_JWT_SECRET.to_owned());
    if let Some(Command::Token(args)) = cli.command {
        println!("{}", mint_token(&secret, &args.claims(&SystemClock)));
        return Ok(());
    }
    let ServeArgs {
        port,
        backend,
        visibility_secs,
    } = cli.serve;

    webhooks_core::observe::telemetry::init_local();
    let backend = Backend::new(backend).await;
    let visibility = visibility_secs.unwrap_or_default();
    let using_dev_secret = secret == DEV_JWT_SECRET;
    let running = start_with(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        &backend,
        settings,
        visibility,
    )
    .await?;
    let token = mint_token(&secret, &default_claims(&SystemClock));
    // The panel (on 127.0.0.1 only) offers this token to whoever opens it.
    let _ = running.app.development_token.set(token.clone());

    println!(
        "webhooks-local listening on {} ({} backend)",
        running.base_url(),
        backend.name()
    );
    if using_dev_secret {
        println!(
            "tokens are signed with the development secret `{DEV_JWT_SECRET}` (set WEBHOOKS_JWT_SECRET to change it)"
        );
    }
    println!("ready bearer token (user 1 of deployment hq, may publish events, valid 30 days):");
    println!("{token}");
    println!(
        "try: curl -H 'Authorization: Bearer {token}' {}/api/v0/webhooks/subscriptions/types",
        running.base_url()
    );
    println!("more tokens: cargo run -p webhooks-local -- token --sub 2 --deployment hq");
    println!(
        "control panel: {}/webhooks/panel (offers this token); API document: {}/api/v0/webhooks/openapi.json",
        running.base_url(),
        running.base_url()
    );

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping");
    running.stop().await;
    Ok(())
}
