//! The delivery Lambda: the sealing key (its only secret), clients and one pooled HTTP
//! client are read and built once per instance, then every SQS batch goes through the
//! core's delivery stage.

use std::sync::Arc;

use anyhow::Context;
use webhooks_core::adapters::aws::Aws;
use webhooks_core::adapters::aws::sdk_config;
use webhooks_core::config::{Defaults, DeliveryStageSettings, FromEnv, SECRET_KEY};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::observe::telemetry::init_lambda();
    let aws = Aws::new(sdk_config().await);
    let env = aws.environment(&[SECRET_KEY]).await?;
    let settings = DeliveryStageSettings::from_lookup(&Defaults::lambda(), |k| env.get(k))
        .context("invalid configuration")?;
    let deliverer = aws
        .delivery_stage(&settings)
        .await
        .context("the deliveries queues cannot be found")?;
    webhooks_sqs_lambda::run(Arc::new(deliverer))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
