//! What the SQS-triggered stages have in common: they take a batch of queue messages and
//! say which ones failed (Lambda's `ReportBatchItemFailures`). On AWS, Lambda's event
//! source feeds them; locally, [`consume`] does, with the same retry semantics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::queue::{IncomingMessage, QueueReceiver};

#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handles a batch; returns the `message_id`s of the messages that failed and must be
    /// received again. The others are done.
    async fn handle_batch(&self, messages: &[IncomingMessage]) -> Vec<String>;
}

/// Feeds a stage from a queue until `stop` turns true, the way Lambda's SQS event source
/// does: up to 10 messages a batch, successes deleted, failures released for redelivery
/// (and, after the queue's maximum receives, moved to its dead-letter queue).
pub async fn consume(
    queue: Arc<dyn QueueReceiver>,
    handler: Arc<dyn BatchHandler>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    name: &'static str,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let received = tokio::select! {
            _ = stop.changed() => return,
            r = queue.receive(10, Duration::from_secs(1)) => r,
        };
        let batch = match received {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(stage = name, error = %e, "receive failed; retrying shortly");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let messages: Vec<IncomingMessage> = batch.iter().map(|r| r.message.clone()).collect();
        let failed = handler.handle_batch(&messages).await;
        for r in &batch {
            let result = if failed.contains(&r.message.message_id) {
                queue.release(&r.receipt).await
            } else {
                queue.ack(&r.receipt).await
            };
            if let Err(e) = result {
                tracing::warn!(stage = name, error = %e, "could not settle a message; it will be received again");
            }
        }
    }
}
