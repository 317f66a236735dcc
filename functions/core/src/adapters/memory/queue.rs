//! An in-memory queue with the SQS behaviours the stages rely on, for the local runner
//! and the tests (the queue contract suite runs against it and against SQS on moto).
//!
//! Like an SQS standard queue:
//!
//! * every message gets a unique id, the same on each redelivery;
//! * `delay_secs` keeps a message invisible until the delay has passed (more than
//!   [`MAX_DELAY_SECS`] is refused for that entry, as SQS reports it in the batch result);
//! * a received message stays invisible for the visibility timeout and then becomes visible
//!   again unless it was acknowledged; `release` makes it visible at once;
//! * each receive counts (`receive_count` includes the current one);
//! * with a dead-letter queue, a message already received `max_receives` times is moved
//!   there (id, body and attributes kept, receive count carried over as SQS and moto do)
//!   by the receive that would have delivered it once more, instead of being delivered;
//!   without one, `max_receives` is ignored and the message keeps coming back;
//! * a receipt handle is only good for the latest receive of its message: acknowledging
//!   or releasing with an older one (or one of a message already deleted) does nothing and
//!   succeeds. SQS documents that such a request "succeeds, but the message might not be
//!   deleted"; here it never is. A string that is not a receipt of this queue's format is
//!   refused, as SQS refuses it with `ReceiptHandleIsInvalid`;
//! * at most [`MAX_BATCH`] messages per send and per receive (SQS's
//!   `TooManyEntriesInBatchRequest`); an empty send is a no-op.
//!
//! Messages are received in the order they became visible (then in the order they were
//! sent), which SQS standard queues do not promise; nothing should rely on it. A receive
//! reads an index by visibility time, so messages that are delayed or in flight cost it
//! nothing, however many there are.
//!
//! A waiting receive returns as soon as a message is sent (or released) to it, not when
//! its wait ends: a send wakes one waiting receiver (not all of them: with several
//! consumers, the others would only wake to find nothing), and a receive that leaves
//! visible messages behind wakes the next one, so no visible message waits while a
//! receiver sleeps.
//!
//! Time is [`tokio::time::Instant`], so a test may pause and advance it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ports::queue::{
    IncomingMessage, MAX_BATCH, MAX_DELAY_SECS, OutgoingMessage, QueueError, QueueReceiver,
    QueueSender, Received,
};

/// The default visibility timeout of SQS.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

struct Stored {
    id: String,
    body: String,
    attributes: BTreeMap<String, String>,
    receive_count: u32,
    visible_at: Instant,
    /// The nonce of the latest receive's receipt, if any.
    receipt_nonce: Option<u64>,
}

#[derive(Default)]
struct State {
    /// By arrival sequence number (looked up, never walked in order: `by_visibility` orders).
    messages: HashMap<u64, Stored>,
    /// Every message's (visible_at, seq): the visible ones are a prefix.
    by_visibility: BTreeSet<(Instant, u64)>,
    next_seq: u64,
}

impl State {
    fn push(&mut self, message: Stored) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_visibility.insert((message.visible_at, seq));
        self.messages.insert(seq, message);
    }

    fn set_visible_at(&mut self, seq: u64, at: Instant) {
        if let Some(m) = self.messages.get_mut(&seq) {
            self.by_visibility.remove(&(m.visible_at, seq));
            m.visible_at = at;
            self.by_visibility.insert((at, seq));
        }
    }

    fn remove(&mut self, seq: u64) -> Option<Stored> {
        let m = self.messages.remove(&seq)?;
        self.by_visibility.remove(&(m.visible_at, seq));
        Some(m)
    }
}

/// An in-memory queue; see the module documentation.
pub struct MemoryQueue {
    name: String,
    visibility_timeout: Duration,
    max_receives: u32,
    dead_letter: Option<Arc<MemoryQueue>>,
    state: Mutex<State>,
    ids: Ids,
    /// Woken when messages arrive or are released: one waiting receiver at a time (see
    /// [`MemoryQueue::wake_one`]).
    arrived: Notify,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("name", &self.name)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_receives", &self.max_receives)
            .field("dead_letter", &self.dead_letter.as_ref().map(|d| d.name()))
            .field("len", &self.len())
            .finish()
    }
}

/// Message ids and receipt nonces: unique within the queue (a counter, mixed with a
/// random key of the queue by a bijection, so distinct counts give distinct values) and
/// unlikely to repeat across queues, without a system call per message.
struct Ids {
    key: [u64; 2],
    counter: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let mut b = [0u8; 16];
        crate::model::random::random_bytes(&mut b);
        let (k0, k1) = b.split_at(8);
        Self {
            key: [
                u64::from_le_bytes(k0.try_into().expect("8 bytes")),
                u64::from_le_bytes(k1.try_into().expect("8 bytes")),
            ],
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> [u64; 2] {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        [mix(n ^ self.key[0]), mix(n ^ self.key[1])]
    }

    /// A fresh message id, a version 4 UUID, as SQS message ids are.
    fn message_id(&self) -> String {
        let [a, b] = self.next();
        let random = ((u128::from(a) << 64) | u128::from(b)).to_be_bytes();
        uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .to_string()
    }

    /// A receive's nonce: what tells it from the message's earlier receives.
    fn nonce(&self) -> u64 {
        self.next()[0]
    }
}

/// `{seq}.{nonce}`: the sequence number finds the message, the nonce (16 lowercase hex
/// digits) tells this receive from earlier ones.
fn receipt(seq: u64, nonce: u64) -> String {
    format!("{seq}.{nonce:016x}")
}

/// SplitMix64's finalizer: a bijection on u64 that scatters consecutive inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sequence number and nonce of a receipt written by [`receipt`], and only of such a
/// string: the numbers read must write it back exactly (a number with a sign or leading
/// zeros, or upper-case hex, is not one).
fn parse_receipt(handle: &str) -> Result<(u64, u64), QueueError> {
    handle
        .split_once('.')
        .and_then(|(seq, nonce)| Some((seq.parse().ok()?, u64::from_str_radix(nonce, 16).ok()?)))
        .filter(|&(seq, nonce)| receipt(seq, nonce) == handle)
        .ok_or_else(|| {
            QueueError::Unavailable(format!(
                "ReceiptHandleIsInvalid: `{handle}` is not a receipt handle of this queue"
            ))
        })
}

fn check_max(max: usize) -> Result<(), QueueError> {
    if (1..=MAX_BATCH).contains(&max) {
        Ok(())
    } else {
        Err(QueueError::Unavailable(format!(
            "InvalidParameterValue: a receive asks for 1 to {MAX_BATCH} messages, not {max}"
        )))
    }
}

impl MemoryQueue {
    /// A queue whose received messages stay invisible for `visibility_timeout`, and which
    /// moves a message to `dead_letter` (when given) instead of delivering it more than
    /// `max_receives` times.
    pub fn new(
        name: impl Into<String>,
        visibility_timeout: Duration,
        max_receives: u32,
        dead_letter: Option<Arc<MemoryQueue>>,
    ) -> Self {
        Self {
            name: name.into(),
            visibility_timeout,
            max_receives,
            dead_letter,
            state: Mutex::new(State::default()),
            ids: Ids::new(),
            arrived: Notify::new(),
        }
    }

    /// A queue with SQS's default visibility timeout (30 s) and no dead-letter queue.
    pub fn simple(name: impl Into<String>) -> Self {
        Self::new(name, DEFAULT_VISIBILITY_TIMEOUT, u32::MAX, None)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dead_letter(&self) -> Option<&Arc<MemoryQueue>> {
        self.dead_letter.as_ref()
    }

    /// Every message in the queue: visible, delayed or in flight.
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes one waiting receiver, or lets the next receive that starts waiting go on at
    /// once. The receiver woken wakes the next one if it leaves visible messages behind.
    fn wake_one(&self) {
        self.arrived.notify_one();
    }

    /// Messages moved here from the queue this one is the dead-letter queue of.
    fn accept_dead_letters(&self, moved: Vec<Stored>) {
        if moved.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        for mut message in moved {
            message.visible_at = now;
            message.receipt_nonce = None;
            state.push(message);
        }
        drop(state);
        self.wake_one();
    }

    /// Receives up to `max` visible messages now. Also returns when the next invisible
    /// message becomes visible, if any.
    fn take(&self, max: usize, now: Instant) -> (Vec<Received>, Option<Instant>) {
        let mut state = self.lock();
        let mut received = Vec::new();
        let mut moved = Vec::new();
        while received.len() < max {
            let Some(&(visible_at, seq)) = state.by_visibility.first() else {
                break;
            };
            if visible_at > now {
                break;
            }
            let dead = self.dead_letter.is_some()
                && state
                    .messages
                    .get(&seq)
                    .is_some_and(|m| m.receive_count >= self.max_receives);
            if dead {
                moved.extend(state.remove(seq));
                continue;
            }
            state.set_visible_at(seq, now + self.visibility_timeout);
            let message = state
                .messages
                .get_mut(&seq)
                .expect("indexed messages exist");
            message.receive_count = message.receive_count.saturating_add(1);
            let nonce = self.ids.nonce();
            message.receipt_nonce = Some(nonce);
            received.push(Received {
                message: IncomingMessage {
                    message_id: message.id.clone(),
                    body: message.body.clone(),
                    receive_count: message.receive_count,
                    attributes: message.attributes.clone(),
                },
                receipt: receipt(seq, nonce),
            });
        }
        let first = state.by_visibility.first().map(|(at, _)| *at);
        let next_visible = first.filter(|at| *at > now);
        // Visible messages left behind (this receive was full): the next receiver may take them.
        let left_behind = first.is_some_and(|at| at <= now);
        drop(state);
        if left_behind {
            self.wake_one();
        }
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.accept_dead_letters(moved);
        }
        (received, next_visible)
    }

    /// Applies `f` to the message `receipt` was issued for, if that receipt is still its
    /// latest one.
    fn with_current<T>(
        &self,
        receipt: &str,
        f: impl FnOnce(&mut State, u64) -> T,
    ) -> Result<Option<T>, QueueError> {
        let (seq, nonce) = parse_receipt(receipt)?;
        let mut state = self.lock();
        let current = state
            .messages
            .get(&seq)
            .is_some_and(|m| m.receipt_nonce == Some(nonce));
        Ok(current.then(|| f(&mut state, seq)))
    }
}

#[async_trait]
impl QueueSender for MemoryQueue {
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<Vec<usize>, QueueError> {
        if messages.len() > MAX_BATCH {
            return Err(QueueError::Unavailable(format!(
                "TooManyEntriesInBatchRequest: a batch holds at most {MAX_BATCH} messages, not {}",
                messages.len()
            )));
        }
        let now = Instant::now();
        let mut failed = Vec::new();
        let mut state = self.lock();
        for (i, m) in messages.iter().enumerate() {
            if m.delay_secs > MAX_DELAY_SECS {
                failed.push(i);
                continue;
            }
            state.push(Stored {
                id: self.ids.message_id(),
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                receive_count: 0,
                visible_at: now + Duration::from_secs(u64::from(m.delay_secs)),
                receipt_nonce: None,
            });
        }
        drop(state);
        self.wake_one();
        Ok(failed)
    }
}

#[async_trait]
impl QueueReceiver for MemoryQueue {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        check_max(max)?;
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a send between the look and the wait wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let now = Instant::now();
            let (received, next_visible) = self.take(max, now);
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let until = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = &mut arrived => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.with_current(receipt, |state, seq| {
            state.remove(seq);
        })?;
        Ok(())
    }

    async fn release(&self, receipt: &str) -> Result<(), QueueError> {
        let released = self.with_current(receipt, |state, seq| {
            state.set_visible_at(seq, Instant::now());
        })?;
        if released.is_some() {
            self.wake_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(n: usize) -> Vec<OutgoingMessage> {
        (0..n)
            .map(|i| OutgoingMessage::new(format!("m{i}")))
            .collect()
    }

    /// A receive waiting with a long wait returns the message sent meanwhile at once: on
    /// paused time the clock only moves when every task waits, so a receive that slept to
    /// the end of its wait would have let 20 s pass.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_receive_returns_as_soon_as_a_message_is_sent() {
        let queue = Arc::new(MemoryQueue::simple("q"));
        let started = Instant::now();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.receive(10, Duration::from_secs(20)).await.unwrap() }
        });
        // The receive is waiting (it found nothing); the clock has not moved.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished());
        queue.send_batch(&messages(1)).await.unwrap();
        let got = waiting.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO, "the receive slept");
    }

    /// A send wakes one waiting receiver; when that one leaves messages behind (it takes
    /// fewer than were sent), it wakes the next, so none waits out its wait.
    #[tokio::test(start_paused = true)]
    async fn receivers_wake_each_other_for_what_they_leave_behind() {
        let queue = Arc::new(MemoryQueue::simple("q"));
        let started = Instant::now();
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(
                    async move { queue.receive(1, Duration::from_secs(20)).await.unwrap() },
                )
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        queue.send_batch(&messages(3)).await.unwrap();
        let mut bodies = Vec::new();
        for r in receivers {
            let got = r.await.unwrap();
            assert_eq!(got.len(), 1);
            bodies.push(got[0].message.body.clone());
        }
        bodies.sort();
        assert_eq!(bodies, ["m0", "m1", "m2"]);
        assert_eq!(started.elapsed(), Duration::ZERO, "a receiver slept");
    }

    #[test]
    fn message_ids_and_receipts_are_unique_and_shaped_like_sqs_ones() {
        let ids = Ids::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.message_id();
            assert_eq!(id.len(), 36);
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                groups
                    .iter()
                    .all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))),
                "{id}"
            );
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            assert!(seen.insert(id));
        }
        let nonce = ids.nonce();
        assert_ne!(ids.nonce(), nonce);
        let written = receipt(7, nonce);
        assert_eq!(written.len(), 1 + 1 + 16, "{written}");
        assert_eq!(parse_receipt(&written).unwrap(), (7, nonce));
        assert_eq!(
            parse_receipt(&receipt(u64::MAX, 0)).unwrap(),
            (u64::MAX, 0),
            "the largest sequence number and a nonce of zeros"
        );
    }

    /// Only the spelling the queue writes is a receipt: the same numbers written another
    /// way (a sign, leading zeros, upper-case hex) are refused, as a changed SQS receipt
    /// handle is.
    #[test]
    fn receipts_are_read_only_as_written() {
        for bad in [
            "7.00000000000000ff0",
            "7.00000000000000f",
            "7.00000000000000FF",
            "07.00000000000000ff",
            "+7.00000000000000ff",
            ".00000000000000ff",
            "7",
            "7.+0000000000000ff",
            "x.00000000000000ff",
        ] {
            assert!(parse_receipt(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_receipt("0.00000000000000ff").unwrap(), (0, 255));
    }

    /// A message released by a consumer wakes a receiver that waits for it.
    #[tokio::test(start_paused = true)]
    async fn a_release_wakes_a_waiting_receive() {
        let queue = Arc::new(MemoryQueue::simple("q"));
        queue.send_batch(&messages(1)).await.unwrap();
        let first = queue.receive(1, Duration::ZERO).await.unwrap();
        let started = Instant::now();
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.receive(1, Duration::from_secs(20)).await.unwrap() }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        queue.release(&first[0].receipt).await.unwrap();
        assert_eq!(waiting.await.unwrap().len(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
