//! The queue port: the events queue (product events in), the deliveries queue (one job per
//! subscription and event) and their dead-letter queues. On AWS these are SQS queues and
//! Lambda's event source receives from them; the local runner and the tests receive
//! through [`QueueReceiver`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

/// The most messages one send request carries (SQS `SendMessageBatch`).
pub const MAX_BATCH: usize = 10;
/// The most bytes of message bodies one send request carries (SQS's classic limit for a
/// whole `SendMessageBatch`, kept below for attributes and encoding).
pub const MAX_BATCH_BYTES: usize = 240 * 1024;
/// The longest delay SQS accepts on a message.
pub const MAX_DELAY_SECS: u32 = 900;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    pub body: String,
    /// Seconds before the message becomes visible, at most [`MAX_DELAY_SECS`].
    pub delay_secs: u32,
    /// String message attributes (the dead-letter reason, for instance).
    pub attributes: BTreeMap<String, String>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }
}

/// A message as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The queue's id of the message: the same on every redelivery of it.
    pub message_id: String,
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    pub attributes: BTreeMap<String, String>,
}

/// A received message and the handle that acknowledges or releases it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message: IncomingMessage,
    pub receipt: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} of {1} messages could not be sent")]
    Partial(usize, usize),
}

#[async_trait]
pub trait QueueSender: Send + Sync {
    /// Sends up to [`MAX_BATCH`] messages in one request. Returns the indexes of the
    /// messages that were not accepted (empty when all were).
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError>;
}

#[async_trait]
pub trait QueueReceiver: Send + Sync {
    /// Up to `max` (at most 10) visible messages, waiting up to `wait` for the first one.
    /// Each stays invisible to other receivers for the queue's visibility timeout.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError>;

    /// The message was handled: delete it.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;

    /// The message failed: make it visible again now. After the queue's maximum number of
    /// receives it moves to the dead-letter queue instead.
    async fn release(&self, receipt: &str) -> Result<(), QueueError>;
}

/// One send request's answer: the indexes it refused, or why it failed whole.
type BatchResult = Result<Vec<usize>, QueueError>;

/// Sends any number of messages, [`MAX_BATCH`] per request and up to `concurrency`
/// requests at once, retrying the ones the queue refused a few times. Says for each
/// message whether it was sent.
pub async fn send_each(
    queue: &dyn QueueSender,
    messages: &[OutgoingMessage],
    concurrency: usize,
) -> Vec<bool> {
    use futures::stream::{self, StreamExt};
    let mut sent = vec![false; messages.len()];
    let mut pending: Vec<usize> = (0..messages.len()).collect();
    for attempt in 0..4u32 {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let chunks = batches(&pending, messages);
        let results: Vec<(Vec<usize>, BatchResult)> = stream::iter(chunks)
            .map(|indexes| async move {
                let result = match contiguous(&indexes) {
                    // The first round's batches: a slice of the messages, no copies.
                    Some(range) => queue.send_batch(&messages[range]).await,
                    None => {
                        let batch: Vec<OutgoingMessage> =
                            indexes.iter().map(|&i| messages[i].clone()).collect();
                        queue.send_batch(&batch).await
                    }
                };
                (indexes, result)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        pending = Vec::new();
        for (indexes, result) in results {
            match result {
                Ok(failed) => {
                    for (position, &i) in indexes.iter().enumerate() {
                        if failed.contains(&position) {
                            pending.push(i);
                        } else {
                            sent[i] = true;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a send request failed; retrying its messages");
                    pending.extend(indexes);
                }
            }
        }
        pending.sort_unstable();
    }
    sent
}

/// The range `indexes` covers, when they follow one another.
fn contiguous(indexes: &[usize]) -> Option<std::ops::Range<usize>> {
    let first = *indexes.first()?;
    let follow = indexes.iter().enumerate().all(|(k, &i)| i == first + k);
    follow.then(|| first..first + indexes.len())
}

/// Groups messages into send requests of at most [`MAX_BATCH`] messages and
/// [`MAX_BATCH_BYTES`] bytes (a message larger than that goes alone, and SQS judges it).
fn batches(indexes: &[usize], messages: &[OutgoingMessage]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &i in indexes {
        let size = messages[i].body.len();
        match out.last_mut() {
            Some(batch) if batch.len() < MAX_BATCH && bytes + size <= MAX_BATCH_BYTES => {
                batch.push(i);
                bytes += size;
            }
            _ => {
                out.push(vec![i]);
                bytes = size;
            }
        }
    }
    out
}

/// Sends every message (see [`send_each`]), or fails saying how many could not be sent.
pub async fn send_all(
    queue: &dyn QueueSender,
    messages: Vec<OutgoingMessage>,
    concurrency: usize,
) -> Result<(), QueueError> {
    let sent = send_each(queue, &messages, concurrency).await;
    let unsent = sent.iter().filter(|ok| !**ok).count();
    if unsent == 0 {
        Ok(())
    } else {
        Err(QueueError::Partial(unsent, messages.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<OutgoingMessage> = (0..25).map(|_| OutgoingMessage::new("x")).collect();
        let sizes: Vec<usize> = batches(&(0..25).collect::<Vec<_>>(), &small)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let big: Vec<OutgoingMessage> = (0..4)
            .map(|_| OutgoingMessage::new("y".repeat(100 * 1024)))
            .collect();
        let sizes: Vec<usize> = batches(&[0, 1, 2, 3], &big).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2]);
    }

    /// Refuses, in its first request, the messages whose body is in `refuse_once`.
    struct RefusesOnce {
        refuse_once: Vec<&'static str>,
        requests: std::sync::Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl QueueSender for RefusesOnce {
        async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
            let mut requests = self.requests.lock().unwrap();
            let first = requests.is_empty();
            requests.push(messages.iter().map(|m| m.body.clone()).collect());
            Ok((0..messages.len())
                .filter(|&i| first && self.refuse_once.contains(&messages[i].body.as_str()))
                .collect())
        }
    }

    #[tokio::test]
    async fn refused_messages_are_sent_again_and_only_they() {
        let queue = RefusesOnce {
            refuse_once: vec!["b", "d"],
            requests: Default::default(),
        };
        let messages: Vec<OutgoingMessage> =
            ["a", "b", "c", "d", "e"].map(OutgoingMessage::new).to_vec();
        assert_eq!(send_each(&queue, &messages, 1).await, vec![true; 5]);
        assert_eq!(
            *queue.requests.lock().unwrap(),
            vec![vec!["a", "b", "c", "d", "e"], vec!["b", "d"]]
        );
    }

    #[test]
    fn only_indexes_that_follow_one_another_make_a_range() {
        assert_eq!(contiguous(&[3, 4, 5]), Some(3..6));
        assert_eq!(contiguous(&[7]), Some(7..8));
        assert_eq!(contiguous(&[3, 5]), None);
        assert_eq!(contiguous(&[4, 3]), None);
        assert_eq!(contiguous(&[]), None);
    }
}
