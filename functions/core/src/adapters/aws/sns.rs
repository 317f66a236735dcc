//! The operator's channel on SNS: each notice is one `Publish` of its JSON to the topic.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::DisplayErrorContext;

use crate::ports::operator::{OperatorChannel, OperatorError, OperatorNotice};

pub struct SnsTopic {
    client: Client,
    topic_arn: String,
}

impl SnsTopic {
    pub fn from_sdk(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            topic_arn: topic_arn.into(),
        }
    }
}

#[async_trait]
impl OperatorChannel for SnsTopic {
    async fn tell(&self, notice: &OperatorNotice) -> Result<(), OperatorError> {
        let message = serde_json::to_string(notice).expect("a notice serializes");
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notice.event_id)
            .message(message)
            .send()
            .await
            .map_err(|e| OperatorError(DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
