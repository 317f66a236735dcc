//! What the SQS-triggered stages have in common: they take a batch of queue messages and
//! say which ones failed (Lambda's `ReportBatchItemFailures`). On AWS, Lambda's event
//! source feeds them; locally, [`consume`] does, with the same retry semantics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ports::queue::{IncomingMessage, QueueReceiver};

#[async_trait]
pub trait BatchHandler: Send + Sync {
    /// Handles a batch; returns the `message_id`s of the messages that failed and must be
    /// received again. The others are done.
    async fn handle_batch(&self, messages: &[IncomingMessage]) -> Vec<String>;
}

/// Feeds a stage from a queue until `stop` turns true, the way Lambda's SQS event source
/// does: up to 10 messages a batch, successes deleted, failures released for redelivery
/// (and, after the queue's maximum receives, moved to its dead-letter queue).
///
/// A batch is handed over as soon as a message is there: the receive's wait (1 s) only
/// bounds how long an idle consumer goes without checking `stop`, and the in-memory
/// queue wakes a waiting receive when a message is sent to it.
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
        // The messages move to the handler; their receipts stay here to settle them.
        let (messages, receipts): (Vec<IncomingMessage>, Vec<String>) =
            batch.into_iter().map(|r| (r.message, r.receipt)).unzip();
        let failed = handler.handle_batch(&messages).await;
        for (message, receipt) in messages.iter().zip(&receipts) {
            let result = if failed.contains(&message.message_id) {
                queue.release(receipt).await
            } else {
                queue.ack(receipt).await
            };
            if let Err(e) = result {
                tracing::warn!(stage = name, error = %e, "could not settle a message; it will be received again");
            }
        }
    }
}
