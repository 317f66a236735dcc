//! The Lambda edge of the SQS-triggered stages (fan-out, delivery): Lambda's `SqsEvent`
//! becomes queue messages for a [`BatchHandler`], and its failures become the
//! `batchItemFailures` of `ReportBatchItemFailures`, so only those messages are retried.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use webhooks_core::ports::queue::IncomingMessage;
use webhooks_core::stages::batch::BatchHandler;

/// The queue message a record carries.
pub fn incoming(record: &SqsMessage) -> IncomingMessage {
    IncomingMessage {
        message_id: record.message_id.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        attributes: record
            .message_attributes
            .iter()
            .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
            .collect(),
    }
}

/// Handles one invocation's batch.
pub async fn handle(handler: &dyn BatchHandler, event: SqsEvent) -> SqsBatchResponse {
    let messages: Vec<IncomingMessage> = event.records.iter().map(incoming).collect();
    let mut response = SqsBatchResponse::default();
    for id in handler.handle_batch(&messages).await {
        response.add_failure(id);
    }
    response
}

/// Runs a stage as a Lambda function until the runtime stops it.
pub async fn run(handler: Arc<dyn BatchHandler>) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, std::convert::Infallible>(handle(handler.as_ref(), event.payload).await)
    }))
    .await
}
