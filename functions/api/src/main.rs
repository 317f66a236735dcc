//! The API Lambda: settings checked and clients built once per instance, secrets read at
//! its first request (see `webhooks_api::lambda::Instance`), then every request goes
//! through the same handler.

use anyhow::Context;
use webhooks_api::lambda::Instance;
use webhooks_core::adapters::aws::{Aws, sdk_config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::observe::telemetry::init_lambda();
    let api = Instance::start(Aws::new(sdk_config().await)).context("invalid configuration")?;
    let api = &api;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(api.serve(req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
