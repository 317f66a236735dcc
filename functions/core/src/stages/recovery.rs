//! Resending and recovering deliveries (SPEC section 7), the part the owner's service and
//! the delivery stage share: the job that sends a logged delivery again ([`again`]), which
//! log lines a recovery sends ([`ended_undelivered`]), and the task that carries a
//! recovery through the deliveries queue a page of the log at a time ([`RecoverTask`]).
//!
//! Guarantees:
//! * A delivery sent again keeps its delivery id (`webhook-id`), event and object, and
//!   starts a fresh retry schedule (attempt 1).
//! * A recovery lists each undelivered delivery of its window once: a delivery has at most
//!   one line that ends it undelivered, its last.
//! * A task holds one page of the log in memory at a time ([`LOG_PAGE`] lines).

use crate::model::clock::Millis;
use crate::model::event::format_millis;
use crate::model::job::DeliveryJob;
use crate::model::subscription::SubscriptionRef;
use crate::ports::delivery_log::{Attempt, AttemptOutcome, DeliveryLog, LogCursor};
use crate::ports::store::StoreError;

/// Log records read per request while looking for a delivery or walking a window.
pub const LOG_PAGE: usize = 1000;

/// The job that sends a logged delivery again: same id, event and object, a fresh retry
/// schedule.
pub fn again(line: &Attempt) -> DeliveryJob {
    DeliveryJob {
        delivery_id: line.delivery_id.clone(),
        subscription: line.subscription.clone(),
        event_id: line.event_id.clone(),
        object_id: line.object_id,
        resource_url: line.resource_url.clone(),
        occurred_at: line
            .occurred_at
            .clone()
            .unwrap_or_else(|| format_millis(line.at)),
        attempt: 1,
        due_at: None,
        subject: line.subject.clone(),
    }
}

/// Whether a log line ends a delivery without delivering it: what a recovery sends again.
/// A delivery has at most one such line (its last), so a window lists it once.
pub fn ended_undelivered(line: &Attempt) -> bool {
    matches!(
        line.outcome,
        AttemptOutcome::GaveUp | AttemptOutcome::Failed | AttemptOutcome::Unsubscribed
    )
}

/// A recovery under way, carried by the deliveries queue: the subscription, the window,
/// and where in the log (newest first) the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoverTask {
    pub subscription: SubscriptionRef,
    pub since: Millis,
    pub until: Millis,
    /// An encoded [`LogCursor`]; `None` at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One page of a window: the lines to send again, and where the next page starts.
pub struct WindowPage {
    pub lines: Vec<Attempt>,
    pub next: Option<LogCursor>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TaskMessage {
    recover: RecoverTask,
}

impl RecoverTask {
    pub fn to_message(&self) -> String {
        serde_json::to_string(&TaskMessage {
            recover: self.clone(),
        })
        .expect("a task serializes")
    }

    /// The task a queue message carries, or `None` when it is something else (a job).
    pub fn from_message(body: &str) -> Option<Self> {
        if !body.starts_with("{\"recover\"") {
            return None;
        }
        serde_json::from_str::<TaskMessage>(body)
            .ok()
            .map(|m| m.recover)
    }

    /// The lines of the window on the page after `after` (the log newest first): those
    /// that ended a delivery undelivered, between `since` and `until`. `next` is `None`
    /// once the log is older than `since`.
    pub async fn page(
        &self,
        log: &dyn DeliveryLog,
        after: Option<&LogCursor>,
    ) -> Result<WindowPage, StoreError> {
        let page = log.page(&self.subscription, after, LOG_PAGE).await?;
        let past_window = page.attempts.last().is_some_and(|a| a.at < self.since);
        let lines = page
            .attempts
            .into_iter()
            .filter(|a| a.at >= self.since && a.at <= self.until && ended_undelivered(a))
            .collect();
        Ok(WindowPage {
            lines,
            next: page.next.filter(|_| !past_window),
        })
    }

    /// The next page's cursor, parsed.
    pub fn cursor(&self) -> Option<LogCursor> {
        self.after
            .as_deref()
            .and_then(|c| LogCursor::parse(c, &self.subscription.id).ok())
    }
}
