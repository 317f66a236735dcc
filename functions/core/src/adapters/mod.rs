//! Adapters for the ports: in memory (the local runner and tests) and on AWS.

pub mod aws;
pub mod dynamodb;
pub mod dynamodb_delivery_log;
pub mod dynamodb_idempotency;
mod dynamodb_table;
pub mod http;
pub mod memory;
pub mod memory_queue;
pub mod sns;
pub mod sqs;

/// Loads the AWS SDK configuration the usual way (environment, profile, role); it honours
/// `AWS_ENDPOINT_URL`, which is how the local runner and the tests reach moto.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// A configuration for an AWS emulator such as moto at `endpoint`: a fixed region and
/// dummy credentials, nothing read from the environment. For tests and local runs.
pub async fn emulator_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}
