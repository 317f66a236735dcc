//! The fan-out Lambda: clients built once per instance, then every SQS batch goes through
//! the core's fan-out stage. Of the secrets it reads only the access check's, at its first
//! question, when one is configured.

use std::sync::Arc;

use anyhow::Context;
use webhooks_core::adapters::aws::Aws;
use webhooks_core::adapters::aws::sdk_config;
use webhooks_core::config::{Defaults, FanoutSettings, FromEnv};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::observe::telemetry::init_lambda();
    let settings =
        FanoutSettings::from_env(&Defaults::lambda()).context("invalid configuration")?;
    let fanout = Aws::new(sdk_config().await)
        .fanout(&settings)
        .await
        .context("the queues cannot be found")?;
    webhooks_sqs_lambda::run(Arc::new(fanout))
        .await
        .map_err(|e| anyhow::anyhow!(e))
}
