//! The API Lambda: secrets and clients are read and built once per instance, then every
//! request goes through `webhooks_api::lambda::handle`.

use anyhow::Context;
use webhooks_api::App;
use webhooks_api::app::Ports;
use webhooks_core::adapters::aws::Aws;
use webhooks_core::adapters::aws::sdk_config;
use webhooks_core::config::{ApiSettings, Defaults, FromEnv, JWT_SECRET, SECRET_KEY};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    webhooks_core::telemetry::init_lambda();
    let aws = Aws::new(sdk_config().await);
    let env = aws.environment(&[SECRET_KEY, JWT_SECRET]).await?;
    let settings = ApiSettings::from_lookup(&Defaults::lambda(), |k| env.get(k))
        .context("invalid configuration")?;
    let ports = Ports::on_aws(&aws, &settings).await;
    let app = App::new(settings, ports);
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(webhooks_api::lambda::handle(app, req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
