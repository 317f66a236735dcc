//! The queue contract: every adapter of `QueueSender` + `QueueReceiver` must pass it.
//!
//! The queue under test must be empty, have a visibility timeout of [`VISIBILITY_TIMEOUT`]
//! and move a message to `dead_letter` (also empty) after [`MAX_RECEIVES`] receives. The
//! suite takes about three seconds of real time: it waits out one delay and one visibility
//! timeout, overlapping the two.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use webhooks_core::ports::queue::{
    OutgoingMessage, QueueError, QueueReceiver, QueueSender, Received,
};

pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_RECEIVES: u32 = 2;

/// Slack for timing assertions: a receive may return this much before the instant a
/// message became visible by the test's clock (the emulator's clock and ours are read at
/// slightly different moments).
const EARLY: Duration = Duration::from_millis(150);

fn message(body: &str, attributes: &[(&str, &str)]) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        delay_secs: 0,
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Receives until `n` messages arrived or `within` passed. The SQS adapter rounds a wait
/// under a second down to a short poll, so an empty answer is followed by a short pause.
async fn collect<Q: QueueReceiver + ?Sized>(
    queue: &Q,
    n: usize,
    within: Duration,
) -> Vec<Received> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let batch = queue.receive((n - got.len()).min(10), left).await.unwrap();
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50).min(left)).await;
        }
        got.extend(batch);
    }
    got
}

async fn receive_one<Q: QueueReceiver + ?Sized>(queue: &Q, what: &str) -> Received {
    let mut got = collect(queue, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "{what}: expected one message, got {got:?}");
    got.remove(0)
}

async fn assert_empty<Q: QueueReceiver + ?Sized>(queue: &Q, what: &str) {
    let got = queue.receive(10, Duration::ZERO).await.unwrap();
    assert!(
        got.is_empty(),
        "{what}: expected no visible message, got {got:?}"
    );
}

/// Runs the whole contract against `queue` and its dead-letter queue `dead_letter`.
pub async fn run<Q, D>(queue: &Q, dead_letter: &D)
where
    Q: QueueSender + QueueReceiver + ?Sized,
    D: QueueReceiver + ?Sized,
{
    assert_empty(queue, "a new queue").await;

    // Round trip: body and attributes kept, a message id, the first receive counted.
    let sent = message(
        r#"{"event":"assign_task","text":"ünïcode & <xml>"}"#,
        &[("reason", "invalid json"), ("webhooks_message_id", "m-1")],
    );
    assert_eq!(
        queue.send_batch(std::slice::from_ref(&sent)).await.unwrap(),
        Vec::<usize>::new()
    );
    let r = receive_one(queue, "round trip").await;
    assert_eq!(r.message.body, sent.body);
    assert_eq!(r.message.attributes, sent.attributes);
    assert_eq!(r.message.receive_count, 1);
    assert!(!r.message.message_id.is_empty());
    assert!(!r.receipt.is_empty());
    assert_empty(queue, "a received message is invisible").await;
    queue.ack(&r.receipt).await.unwrap();
    assert_empty(queue, "an acknowledged message is gone").await;

    // A full batch: ten messages in one request, ten distinct ids.
    let batch: Vec<OutgoingMessage> = (0..10)
        .map(|i| message(&format!("batch {i}"), &[]))
        .collect();
    assert_eq!(queue.send_batch(&batch).await.unwrap(), Vec::<usize>::new());
    let got = collect(queue, 10, Duration::from_secs(5)).await;
    let bodies: BTreeSet<String> = got.iter().map(|r| r.message.body.clone()).collect();
    let expected: BTreeSet<String> = batch.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, expected);
    let ids: BTreeSet<&str> = got.iter().map(|r| r.message.message_id.as_str()).collect();
    assert_eq!(ids.len(), 10, "message ids are unique");
    assert!(got.iter().all(|r| r.message.attributes.is_empty()));
    for r in &got {
        queue.ack(&r.receipt).await.unwrap();
    }
    assert_empty(queue, "after acknowledging the batch").await;

    // More than ten per request is refused, on both sides.
    let eleven: Vec<OutgoingMessage> = (0..11)
        .map(|i| message(&format!("too many {i}"), &[]))
        .collect();
    let refused = queue.send_batch(&eleven).await;
    assert!(
        matches!(refused, Err(QueueError::Unavailable(_))),
        "{refused:?}"
    );
    let refused = queue.receive(11, Duration::ZERO).await;
    assert!(
        matches!(refused, Err(QueueError::Unavailable(_))),
        "{refused:?}"
    );
    assert_empty(queue, "nothing of a refused batch was sent").await;

    // release: visible again at once, counted again; released MAX_RECEIVES times, the
    // next receive moves it to the dead-letter queue with its body and attributes.
    let doomed = message("doomed", &[("reason", "unreachable"), ("attempt", "3")]);
    queue
        .send_batch(std::slice::from_ref(&doomed))
        .await
        .unwrap();
    let first = receive_one(queue, "before release").await;
    assert_eq!(first.message.receive_count, 1);
    queue.release(&first.receipt).await.unwrap();
    let second = receive_one(queue, "after release").await;
    assert_eq!(second.message.message_id, first.message.message_id);
    assert_eq!(second.message.receive_count, 2);
    assert_eq!(second.message.body, doomed.body);
    assert_eq!(
        MAX_RECEIVES, 2,
        "the suite releases the message MAX_RECEIVES times"
    );
    queue.release(&second.receipt).await.unwrap();
    let before = Instant::now();
    assert_empty(
        queue,
        "a message received MAX_RECEIVES times is not delivered again",
    )
    .await;
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "a receive with no wait returns at once"
    );
    let parked = receive_one(dead_letter, "the dead-letter queue").await;
    assert_eq!(parked.message.body, doomed.body);
    assert_eq!(parked.message.attributes, doomed.attributes);
    assert_eq!(
        parked.message.message_id, first.message.message_id,
        "the id is kept"
    );
    assert!(parked.message.receive_count >= 1);
    dead_letter.ack(&parked.receipt).await.unwrap();
    assert_empty(dead_letter, "after acknowledging the parked message").await;
    assert_empty(queue, "the parked message left the queue").await;

    // A delayed message and an unacknowledged one, overlapped: the delayed one shows up
    // after its delay (not before), the other after the visibility timeout (not before).
    let mut delayed = message("delayed", &[("kind", "delayed")]);
    delayed.delay_secs = 1;
    let forgotten = message("forgotten", &[]);
    let sent_at = Instant::now();
    queue
        .send_batch(&[delayed.clone(), forgotten.clone()])
        .await
        .unwrap();
    let got = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|r| r.message.body.as_str())
            .collect::<Vec<_>>(),
        vec!["forgotten"],
        "only the undelayed message is visible at first"
    );
    let forgotten_at = Instant::now();
    let forgotten_first = got.into_iter().next().unwrap();

    // One long poll: it returns when the delayed message becomes visible.
    let got = queue.receive(10, Duration::from_secs(3)).await.unwrap();
    let arrived = sent_at.elapsed();
    assert_eq!(
        got.iter()
            .map(|r| r.message.body.as_str())
            .collect::<Vec<_>>(),
        vec!["delayed"],
        "the delayed message, and not the one still invisible"
    );
    assert!(
        arrived + EARLY >= Duration::from_secs(1),
        "delivered {arrived:?} after sending, before its 1 s delay"
    );
    assert!(
        arrived < Duration::from_millis(2500),
        "a long poll returns when a message becomes visible, not at its end ({arrived:?})"
    );
    assert_eq!(got[0].message.attributes, delayed.attributes);
    assert_eq!(got[0].message.receive_count, 1);
    queue.ack(&got[0].receipt).await.unwrap();

    let again = receive_one(queue, "after the visibility timeout").await;
    let reappeared = forgotten_at.elapsed();
    assert_eq!(again.message.message_id, forgotten_first.message.message_id);
    assert_eq!(again.message.body, forgotten.body);
    assert_eq!(again.message.receive_count, 2);
    assert!(
        reappeared + EARLY >= VISIBILITY_TIMEOUT,
        "reappeared {reappeared:?} after its receive, before the visibility timeout"
    );
    queue.ack(&again.receipt).await.unwrap();
    assert_empty(queue, "after the timing checks").await;

    // A waiting receiver is woken by a send.
    let started = Instant::now();
    let (got, sent) = tokio::join!(queue.receive(1, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        queue.send_batch(&[message("wake up", &[])]).await
    });
    sent.unwrap();
    let mut got = got.unwrap();
    if got.is_empty() {
        // SQS's long poll may end empty-handed early; it must not wait out its whole wait.
        got = collect(queue, 1, Duration::from_secs(2)).await;
    }
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.body, "wake up");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "woken {:?} after waiting",
        started.elapsed()
    );
    queue.ack(&got[0].receipt).await.unwrap();
    assert_empty(queue, "at the end").await;
    assert_empty(dead_letter, "at the end").await;
}
