//! The queue contract against the in-memory queue and against SQS on moto, and what only
//! the in-memory queue shows (its length, stale receipts).

use std::sync::Arc;
use std::time::Duration;

use webhooks_core::adapters::aws::sqs::SqsQueue;
use webhooks_core::adapters::memory::queue::MemoryQueue;
use webhooks_core::ports::queue::{OutgoingMessage, QueueError, QueueReceiver, QueueSender};
use webhooks_tests::queue_suite::{self, MAX_RECEIVES, VISIBILITY_TIMEOUT};
use webhooks_tests::{moto, unique};

fn memory_pair() -> (MemoryQueue, Arc<MemoryQueue>) {
    let dlq = Arc::new(MemoryQueue::simple("events-dlq"));
    let queue = MemoryQueue::new(
        "events",
        VISIBILITY_TIMEOUT,
        MAX_RECEIVES,
        Some(dlq.clone()),
    );
    (queue, dlq)
}

#[tokio::test]
async fn memory_queue_keeps_the_contract() {
    let (queue, dlq) = memory_pair();
    queue_suite::run(&queue, dlq.as_ref()).await;
    assert!(queue.is_empty() && dlq.is_empty());
}

#[tokio::test]
async fn sqs_queue_keeps_the_contract() {
    let sdk = moto::sdk_config().await;
    let client = SqsQueue::client(&sdk);
    let name = unique("events");
    let dlq_name = format!("{name}-dlq");
    let secs = VISIBILITY_TIMEOUT.as_secs() as u32;
    let queue = SqsQueue::ensure(client.clone(), &name, secs, Some((&dlq_name, MAX_RECEIVES)))
        .await
        .unwrap();
    let again = SqsQueue::ensure(client.clone(), &name, secs, Some((&dlq_name, MAX_RECEIVES)))
        .await
        .expect("ensure is idempotent");
    assert_eq!(again.url(), queue.url());
    let dlq = SqsQueue::by_name(client.clone(), &dlq_name).await.unwrap();
    let same = SqsQueue::from_url(client, queue.url());
    queue_suite::run(&same, &dlq).await;
}

#[tokio::test]
async fn sqs_ensure_brings_an_existing_queue_in_line() {
    let sdk = moto::sdk_config().await;
    let client = SqsQueue::client(&sdk);
    let name = unique("plain");
    let dlq_name = format!("{name}-dlq");
    SqsQueue::ensure(client.clone(), &name, 30, None)
        .await
        .unwrap();
    // Now with another timeout and a dead-letter queue: CreateQueue alone would refuse.
    let queue = SqsQueue::ensure(client.clone(), &name, 2, Some((&dlq_name, 1)))
        .await
        .unwrap();
    let dlq = SqsQueue::by_name(client, &dlq_name).await.unwrap();
    queue
        .send_batch(&[OutgoingMessage::new("once")])
        .await
        .unwrap();
    let got = queue.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 1);
    queue.release(&got[0].receipt).await.unwrap();
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
    let parked = dlq.receive(1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(parked.len(), 1, "moved after one receive");
    assert_eq!(parked[0].message.body, "once");
}

#[tokio::test]
async fn memory_queue_counts_and_ignores_stale_receipts() {
    let (queue, dlq) = memory_pair();
    let mut delayed = OutgoingMessage::new("later");
    delayed.delay_secs = 60;
    let mut too_late = OutgoingMessage::new("too late");
    too_late.delay_secs = 901;
    let failed = queue
        .send_batch(&[OutgoingMessage::new("now"), delayed, too_late])
        .await
        .unwrap();
    assert_eq!(
        failed,
        vec![2],
        "a delay over 900 s is refused for that entry"
    );
    assert_eq!(queue.len(), 2, "delayed messages count");

    let first = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(queue.len(), 2, "in-flight messages count");
    queue.release(&first[0].receipt).await.unwrap();
    let second = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(second[0].message.receive_count, 2);

    // The first receipt is stale now: acknowledging or releasing with it does nothing.
    queue.ack(&first[0].receipt).await.unwrap();
    queue.release(&first[0].receipt).await.unwrap();
    assert_eq!(queue.len(), 2);
    assert!(
        queue.receive(10, Duration::ZERO).await.unwrap().is_empty(),
        "still in flight"
    );

    // A receipt of another queue, or no receipt at all.
    assert!(matches!(
        queue.ack("not a receipt").await,
        Err(QueueError::Unavailable(_))
    ));
    assert!(matches!(
        queue.receive(0, Duration::ZERO).await,
        Err(QueueError::Unavailable(_))
    ));

    queue.ack(&second[0].receipt).await.unwrap();
    assert_eq!(queue.len(), 1, "only the delayed message is left");
    queue.ack(&second[0].receipt).await.unwrap();
    assert_eq!(queue.len(), 1, "acknowledging twice is harmless");
    assert!(dlq.is_empty());
    assert!(queue.send_batch(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn memory_queue_waiters_wake_on_release() {
    let (queue, _dlq) = memory_pair();
    queue
        .send_batch(&[OutgoingMessage::new("m")])
        .await
        .unwrap();
    let r = queue.receive(1, Duration::ZERO).await.unwrap().remove(0);
    let started = tokio::time::Instant::now();
    let (got, released) = tokio::join!(queue.receive(1, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        queue.release(&r.receipt).await
    });
    released.unwrap();
    assert_eq!(got.unwrap()[0].message.receive_count, 2);
    assert!(started.elapsed() < Duration::from_secs(1));
}
