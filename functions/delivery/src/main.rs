//! The delivery Lambda: clients (DynamoDB, SQS and one pooled HTTP client) built once per
//! instance, then every SQS batch goes through the core's delivery stage.

use std::sync::Arc;

use anyhow::Context;
use webhooks_core::adapters::aws::{Aws, Queue};
use webhooks_core::adapters::aws_sdk_config;
use webhooks_core::config::{Defaults, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::telemetry::init_lambda();
    let settings = Settings::from_env(&Defaults::lambda()).context("invalid configuration")?;
    let aws = Aws::new(aws_sdk_config().await);
    let deliveries = aws
        .queue(&settings, Queue::Deliveries)
        .await
        .context("the deliveries queue cannot be found")?;
    let dead_letters = aws
        .queue(&settings, Queue::DeliveriesDeadLetters)
        .await
        .context("its dead-letter queue cannot be found")?;
    let deliverer = aws.deliverer(&settings, deliveries, dead_letters);
    webhooks_sqs_lambda::run(Arc::new(deliverer))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
