//! The API Lambda: clients are built once per instance, then every request goes through
//! `webhooks_api::lambda::handle`.

use std::sync::Arc;

use anyhow::Context;
use webhooks_api::App;
use webhooks_api::app::Ports;
use webhooks_core::adapters::aws::{Aws, Queue};
use webhooks_core::adapters::aws_sdk_config;
use webhooks_core::clock::SystemClock;
use webhooks_core::config::{Defaults, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::telemetry::init_lambda();
    let settings = Settings::from_env(&Defaults::lambda()).context("invalid configuration")?;
    let aws = Aws::new(aws_sdk_config().await);
    let events = aws.queue_or_missing(&settings, Queue::Events).await;
    // `dispatch` makes one attempt and never queues a retry; the deliveries queues are
    // only there to complete the stage.
    let deliveries = aws.queue_or_missing(&settings, Queue::Deliveries).await;
    let dead_letters = aws
        .queue_or_missing(&settings, Queue::DeliveriesDeadLetters)
        .await;
    let ports = Ports {
        store: Arc::new(aws.store(&settings)),
        events,
        clock: Arc::new(SystemClock),
        deliverer: Arc::new(aws.deliverer(&settings, deliveries, dead_letters)),
    };
    let app = App::new(settings, ports);
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(webhooks_api::lambda::handle(app, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
