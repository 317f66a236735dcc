//! The queue port on SQS.
//!
//! * send: `SendMessageBatch`, entry ids `"0"`..`"9"` (the message's index), string
//!   message attributes; entries SQS refuses (a delay over 900 s, say) come back by index.
//! * receive: `ReceiveMessage` with long polling (`wait` rounded down to whole seconds, at
//!   most 20), asking for `ApproximateReceiveCount` and all message attributes.
//! * ack: `DeleteMessage`. release: `ChangeMessageVisibility` to 0; a message no longer in
//!   flight (its visibility timeout already ran out) is visible anyway, so that is success.
//!
//! Behaviour with a receipt of an earlier receive is SQS's own: the request succeeds but
//! "the message might not be deleted" (moto does delete it).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

/// The SQS client, re-exported so composers need not depend on the SDK themselves.
pub use aws_sdk_sqs::Client;

use crate::ports::queue::{
    IncomingMessage, MAX_BATCH, OutgoingMessage, QueueError, QueueReceiver, QueueSender, Received,
};

/// The longest long poll SQS allows.
pub const MAX_WAIT_SECS: u64 = 20;
/// How long a dead-letter queue made by [`SqsQueue::ensure`] keeps messages: 14 days, the
/// most SQS allows, so parked messages can be looked at.
pub const DEAD_LETTER_RETENTION_SECS: u32 = 14 * 24 * 3600;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

fn unavailable<E, R>(e: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    QueueError::Unavailable(DisplayErrorContext(e).to_string())
}

impl SqsQueue {
    /// The queue at `url`, assumed to exist (on AWS the SAM template owns the queues).
    pub fn from_url(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// An SQS client for `config`.
    pub fn client(config: &aws_config::SdkConfig) -> Client {
        Client::new(config)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The existing queue called `name` (`GetQueueUrl`).
    pub async fn by_name(client: Client, name: &str) -> Result<Self, QueueError> {
        let out = client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(unavailable)?;
        let url = out
            .queue_url()
            .ok_or_else(|| QueueError::Unavailable(format!("no URL returned for queue `{name}`")))?
            .to_owned();
        Ok(Self::from_url(client, url))
    }

    /// Creates the queue `name` when it does not exist, with `visibility_timeout_secs`
    /// and, given `dead_letter = Some((dlq_name, max_receive_count))`, a redrive policy to
    /// the queue `dlq_name` (created first when missing, keeping messages 14 days). When a
    /// queue exists with other attributes, they are set to these. For the local runner and
    /// the tests; on AWS the SAM template owns the queues.
    pub async fn ensure(
        client: Client,
        name: &str,
        visibility_timeout_secs: u32,
        dead_letter: Option<(&str, u32)>,
    ) -> Result<Self, QueueError> {
        let mut attributes = HashMap::from([(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )]);
        if let Some((dlq_name, max_receive_count)) = dead_letter {
            let dlq_attributes = HashMap::from([(
                QueueAttributeName::MessageRetentionPeriod,
                DEAD_LETTER_RETENTION_SECS.to_string(),
            )]);
            let dlq_url = create_or_update(&client, dlq_name, dlq_attributes).await?;
            let arn = queue_arn(&client, &dlq_url).await?;
            let policy = serde_json::json!({
                "deadLetterTargetArn": arn,
                "maxReceiveCount": max_receive_count,
            });
            attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = create_or_update(&client, name, attributes).await?;
        Ok(Self::from_url(client, url))
    }
}

/// `CreateQueue`, which succeeds on an existing queue with the same attributes; when the
/// queue exists with others, `SetQueueAttributes` brings them in line.
async fn create_or_update(
    client: &Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, QueueError> {
    let created = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    let url = match created {
        Ok(out) => {
            return out.queue_url().map(str::to_owned).ok_or_else(|| {
                QueueError::Unavailable(format!("no URL returned for queue `{name}`"))
            });
        }
        Err(e)
            if e.as_service_error().is_some_and(|se| {
                se.is_queue_name_exists()
                    || se.code().is_some_and(|c| c.contains("QueueAlreadyExists"))
            }) =>
        {
            SqsQueue::by_name(client.clone(), name).await?.url
        }
        Err(e) => return Err(unavailable(e)),
    };
    client
        .set_queue_attributes()
        .queue_url(&url)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(unavailable)?;
    Ok(url)
}

async fn queue_arn(client: &Client, url: &str) -> Result<String, QueueError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(unavailable)?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| QueueError::Unavailable(format!("no QueueArn returned for `{url}`")))
}

fn too_many(what: &str, n: usize) -> QueueError {
    QueueError::Unavailable(format!(
        "TooManyEntriesInBatchRequest: a {what} holds 1 to {MAX_BATCH} messages, not {n}"
    ))
}

fn entry(index: usize, m: &OutgoingMessage) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let mut attributes = HashMap::with_capacity(m.attributes.len());
    for (name, value) in &m.attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        attributes.insert(name.clone(), value);
    }
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&m.body)
        .delay_seconds(i32::try_from(m.delay_secs).unwrap_or(i32::MAX))
        .set_message_attributes((!attributes.is_empty()).then_some(attributes))
        .build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

fn incoming(m: &aws_sdk_sqs::types::Message) -> Result<Received, QueueError> {
    let missing =
        |what: &str| QueueError::Unavailable(format!("SQS returned a message without {what}"));
    let receive_count = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let attributes: BTreeMap<String, String> = m
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
        .collect();
    Ok(Received {
        message: IncomingMessage {
            message_id: m
                .message_id()
                .ok_or_else(|| missing("a message id"))?
                .to_owned(),
            body: m.body().unwrap_or_default().to_owned(),
            receive_count,
            attributes,
        },
        receipt: m
            .receipt_handle()
            .ok_or_else(|| missing("a receipt handle"))?
            .to_owned(),
    })
}

#[async_trait]
impl QueueSender for SqsQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        if messages.len() > MAX_BATCH {
            return Err(too_many("batch", messages.len()));
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| entry(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(unavailable)?;
        let mut failed = Vec::new();
        for f in out.failed() {
            let index: usize = f.id().parse().map_err(|_| {
                QueueError::Unavailable(format!("SQS reported an unknown batch entry `{}`", f.id()))
            })?;
            tracing::debug!(
                index,
                code = f.code(),
                message = f.message().unwrap_or_default(),
                sender_fault = f.sender_fault(),
                "SQS refused a batch entry"
            );
            failed.push(index);
        }
        failed.sort_unstable();
        failed.dedup();
        Ok(failed)
    }
}

#[async_trait]
impl QueueReceiver for SqsQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        if !(1..=MAX_BATCH).contains(&max) {
            return Err(too_many("receive", max));
        }
        let wait_secs = wait.as_secs().min(MAX_WAIT_SECS) as i32;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(unavailable)?;
        out.messages().iter().map(incoming).collect()
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, receipt: &str) -> Result<(), QueueError> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Its visibility timeout ran out already: it is visible, as asked.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_message_not_inflight()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
