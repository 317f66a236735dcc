//! Adapters for the ports: in memory (the local runner and tests) and on AWS.

pub mod dynamodb;
pub mod memory;

/// Loads the AWS SDK configuration the usual way (environment, profile, role); it honours
/// `AWS_ENDPOINT_URL`, which is how the local runner and the tests reach moto.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
