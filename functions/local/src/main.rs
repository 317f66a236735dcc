//! `cargo run -p webhooks-local`: the whole platform on 127.0.0.1:3000.
//!
//! The runner allocates with mimalloc: with glibc's allocator, about a third of its CPU per
//! delivery went to `malloc`/`free` (chunk consolidation on every larger request). The
//! Lambda binaries keep the system allocator (their peak RSS is smaller with it).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use webhooks_core::config::{DEV_JWT_SECRET, Defaults, FromEnv, Settings};
use webhooks_core::model::clock::{Clock, SystemClock};
use webhooks_core::security::auth::TokenClaims;
use webhooks_local::compose::VISIBILITY_VARIABLE;
use webhooks_local::{Backend, Visibility, default_claims, mint_token, start_with};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELP: &str = "\
webhooks-local: the webhook platform in one process, for development, demos and tests:
the API, the fan-out (events queue to delivery jobs) and the delivery stage (signed POSTs,
retries, the delivery log), the same code as the Lambda functions.

USAGE:
    webhooks-local                 serve the API on 127.0.0.1:$PORT (default 3000)
    webhooks-local token [OPTIONS] print a bearer token signed with the configured secret
    webhooks-local --help

TOKEN OPTIONS (defaults are those of the token printed at start):
    --sub <ID>            numeric user id            [1]
    --deployment <NAME>   deployment (tenant)        [hq]
    --name <NAME>         user name                  [Local Developer]
    --email <EMAIL>       user email                 [developer@localhost]
    --scope <SCOPES>      space-separated scopes     [webhooks:publish]
    --pro <true|false>    pro user                   [true]
    --days <N>            days until it expires      [30]

ENVIRONMENT:
    PORT                     port to listen on (default 3000)
    WEBHOOKS_BACKEND         memory (default) or aws: DynamoDB/SQS wherever the AWS SDK
                             points (set AWS_ENDPOINT_URL for moto); missing tables and
                             queues are created
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
    WEBHOOKS_LOCAL_VISIBILITY_SECS  visibility timeout of both queues: how long a message
                             a stopped or killed runner had received waits before it is
                             handed out again (default 360 events, 180 deliveries, as on AWS)
    RUST_LOG                 log filter (default info)
    TOKIO_WORKER_THREADS     threads running the platform (default: one per core); 1 spends
                             less CPU per delivery, at a lower top rate (docs/design.md)
";

fn token_command(args: &[String], secret: &str) -> anyhow::Result<()> {
    let mut claims: TokenClaims = default_claims(&SystemClock);
    let mut days = 30i64;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--sub" => claims.sub = value,
            "--deployment" => claims.deployment = value,
            "--name" => claims.name = value,
            "--email" => claims.email = value,
            "--scope" => claims.scope = Some(value).filter(|s| !s.is_empty()),
            "--pro" => claims.pro = Some(value.parse().context("--pro takes true or false")?),
            "--days" => days = value.parse().context("--days takes a whole number")?,
            other => bail!("unknown option {other}; see --help"),
        }
    }
    claims.exp = SystemClock.now_secs() + days * 24 * 3600;
    println!("{}", mint_token(secret, &claims));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return Ok(());
    }
    let settings = Settings::from_env(&Defaults::local()).context("invalid configuration")?;
    let secret = settings
        .api
        .jwt_secret
        .clone()
        .unwrap_or_else(|| DEV_JWT_SECRET.to_owned());
    match args.first().map(String::as_str) {
        Some("token") => return token_command(&args[1..], &secret),
        Some(other) => bail!("unknown command {other}; see --help"),
        None => {}
    }

    webhooks_core::observe::telemetry::init_local();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) if !p.is_empty() => p.parse().context("PORT must be a port number")?,
        _ => 3000,
    };
    let backend_name = std::env::var("WEBHOOKS_BACKEND").unwrap_or_default();
    let backend = Backend::from_name(&backend_name)
        .await
        .context("WEBHOOKS_BACKEND must be memory or aws")?;
    let visibility = Visibility::from_setting(std::env::var(VISIBILITY_VARIABLE).ok().as_deref())?;
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
