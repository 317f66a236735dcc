//! The API Lambda: clients are built once per instance, then every request goes through
//! `webhooks_api::lambda::handle`.

use std::sync::Arc;

use anyhow::Context;
use webhooks_api::App;
use webhooks_core::adapters::{aws_sdk_config, dynamodb::DynamoSubscriptionStore};
use webhooks_core::clock::SystemClock;
use webhooks_core::config::{Defaults, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::telemetry::init_lambda();
    let settings = Settings::from_env(&Defaults::lambda()).context("invalid configuration")?;
    let sdk = aws_sdk_config().await;
    let store = DynamoSubscriptionStore::from_sdk(&sdk, &settings.subscriptions_table);
    let app = App::new(settings, Arc::new(store), Arc::new(SystemClock));
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(webhooks_api::lambda::handle(app, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
