//! The API Lambda: clients are built once per instance, then every request goes through
//! `webhooks_api::lambda::handle`.

use std::sync::Arc;

use anyhow::Context;
use webhooks_api::App;
use webhooks_api::app::Ports;
use webhooks_core::adapters::aws_sdk_config;
use webhooks_core::adapters::dynamodb::DynamoSubscriptionStore;
use webhooks_core::adapters::sqs::SqsQueue;
use webhooks_core::clock::SystemClock;
use webhooks_core::config::{Defaults, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::telemetry::init_lambda();
    let settings = Settings::from_env(&Defaults::lambda()).context("invalid configuration")?;
    let sdk = aws_sdk_config().await;
    let events_url =
        Settings::required(&settings.events_queue_url, "WEBHOOKS_EVENTS_QUEUE_URL")?.to_owned();
    let ports = Ports {
        store: Arc::new(DynamoSubscriptionStore::from_sdk(
            &sdk,
            &settings.subscriptions_table,
        )),
        events: Arc::new(SqsQueue::from_url(SqsQueue::client(&sdk), events_url)),
        clock: Arc::new(SystemClock),
    };
    let app = App::new(settings, ports);
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(webhooks_api::lambda::handle(app, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
