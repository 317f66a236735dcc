//! The delivery log port: every attempt, kept for a configurable time, read back by the
//! subscription's owner newest first, one bounded page at a time.
//!
//! Guarantees of every adapter:
//! * A page holds at most `limit` attempts of one subscription of one owner, newest
//!   first, and reading it reads at most `limit + 1` records (the one past the page says
//!   whether there is a next page), however long the log is: memory and read cost are
//!   bounded by the page, never by how far back it is.
//! * `next` is a [`LogCursor`] exactly when older attempts exist; the page after it starts
//!   with the attempt following the last one of this page, so walking the cursors lists
//!   every attempt once (attempts recorded meanwhile that sort before the cursor are not
//!   seen on that walk).
//! * A cursor is bound to its subscription: it names a position in that subscription's
//!   log only, and an adapter refuses one of another subscription
//!   ([`StoreError::BadCursor`]). It never names anything outside the owner's partition,
//!   because the partition comes from the owner and the subscription, not the cursor.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};

use crate::model::clock::Millis;
use crate::model::ids::SubscriptionId;
use crate::model::subscription::SubscriptionRef;
use crate::ports::store::StoreError;

/// The largest time the 13 digits of the sort key hold (in the year 2286).
const MAX_SORTABLE_MILLIS: Millis = 9_999_999_999_999;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// Failed; another attempt is scheduled at `next_attempt_at`.
    Retrying,
    /// Failed, and no attempts are left.
    GaveUp,
    /// The subscription was deleted automatically because of this attempt (410 Gone, or
    /// too many timeouts in a row); `reason` says which.
    Unsubscribed,
    /// Not retried (a synchronous `dispatch` that failed).
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::GaveUp => "gave_up",
            Self::Unsubscribed => "unsubscribed",
            Self::Failed => "failed",
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub subscription: SubscriptionRef,
    pub delivery_id: String,
    pub event_id: String,
    pub object_id: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    pub duration_ms: u64,
    /// `SendError::kind`, or `http_status` for an HTTP failure.
    pub error_kind: Option<String>,
    /// A sentence on what happened, for failures and automatic deletions.
    pub reason: Option<String>,
    /// The first 4 KB of the response body.
    pub response_body: String,
    /// The job's `resource_url` and `occurred_at`, so the delivery can be sent again
    /// (resend, recover) from its log line alone. `None` on lines written before they
    /// were kept.
    #[serde(default)]
    pub resource_url: Option<String>,
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// The job's subject (an operational event's subscription id), shown as its object.
    #[serde(default)]
    pub subject: Option<String>,
    pub next_attempt_at: Option<Millis>,
    /// When the attempt started.
    pub at: Millis,
    /// When the record may be forgotten (the table's TTL).
    pub expires_at: Millis,
}

impl Attempt {
    /// How long the request took.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.duration_ms)
    }

    /// A delivered first attempt of object 1 to subscription `sub` (its id is the byte
    /// written as 24 hex digits) of user 1 of `hq`, at `at`, kept until `at`; for tests.
    #[cfg(test)]
    pub(crate) fn example(sub: u8, at: Millis) -> Self {
        use crate::model::identity::{Deployment, Owner};
        use crate::model::ids::SubscriptionId;
        Attempt {
            subscription: SubscriptionRef {
                id: SubscriptionId::parse(&format!("{sub:024x}")).unwrap(),
                owner: Owner {
                    deployment: Deployment::parse("hq").unwrap(),
                    user_id: 1,
                },
            },
            delivery_id: format!("msg_{at}"),
            event_id: "create_task".into(),
            object_id: 1,
            attempt: 1,
            outcome: AttemptOutcome::Delivered,
            http_status: None,
            duration_ms: 0,
            error_kind: None,
            reason: None,
            response_body: String::new(),
            resource_url: None,
            occurred_at: None,
            subject: None,
            next_attempt_at: None,
            at,
            expires_at: at,
        }
    }

    /// The attempt's place in its subscription's log: `{at, 13 digits}#{delivery_id}#{attempt,
    /// 4 digits}`, so that string order is time order (then delivery id, then attempt). A
    /// time before 1970 sorts as 1970 (and one after 2286 as 2286); the record itself keeps
    /// the exact time. It is the DynamoDB table's sort key, and what a cursor holds.
    pub fn sort_key(&self) -> String {
        format!(
            "{:013}#{}#{:04}",
            self.at.clamp(0, MAX_SORTABLE_MILLIS),
            self.delivery_id,
            self.attempt
        )
    }
}

/// One page of a subscription's log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub attempts: Vec<Attempt>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<LogCursor>,
}

/// A position in one subscription's log: the sort key of the last attempt a page held,
/// and the subscription it belongs to. Over the API it travels as an opaque string
/// ([`LogCursor::encode`]) and comes back through [`LogCursor::parse`], which refuses
/// anything it did not issue for that subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    subscription: SubscriptionId,
    after: String,
}

/// Why a cursor given by a caller was refused; the messages are sentences for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error(
        "_cursor is not a cursor this API issued; pass response.next_cursor of the previous page unchanged"
    )]
    Malformed,
    #[error(
        "_cursor belongs to another subscription's delivery log; pass the next_cursor of this subscription's previous page"
    )]
    OtherSubscription,
}

/// The version prefix of the encoding, so that a later encoding can tell old cursors apart.
const CURSOR_VERSION: &str = "dl1";

impl LogCursor {
    /// The position just after `attempt` (older attempts follow it).
    pub fn after(attempt: &Attempt) -> Self {
        Self {
            subscription: attempt.subscription.id.clone(),
            after: attempt.sort_key(),
        }
    }

    pub fn subscription(&self) -> &SubscriptionId {
        &self.subscription
    }

    /// The sort key of the last attempt before the position.
    pub fn position(&self) -> &str {
        &self.after
    }

    /// The cursor as callers see it: base64url (no padding) of
    /// `dl1|{subscription_id}|{sort key}`.
    pub fn encode(&self) -> String {
        B64URL.encode(format!(
            "{CURSOR_VERSION}|{}|{}",
            self.subscription, self.after
        ))
    }

    /// Reads a cursor that a caller sent back for `subscription`'s log. It must be one
    /// [`LogCursor::encode`] wrote: the version, a subscription id equal to `subscription`,
    /// and a well-formed sort key. The cursor is validated, not signed: a hand-made one
    /// can only name a position in the caller's own log, which the caller may read anyway.
    pub fn parse(text: &str, subscription: &SubscriptionId) -> Result<Self, CursorError> {
        let bytes = B64URL
            .decode(text.trim())
            .map_err(|_| CursorError::Malformed)?;
        let plain = String::from_utf8(bytes).map_err(|_| CursorError::Malformed)?;
        let mut parts = plain.splitn(3, '|');
        let (Some(CURSOR_VERSION), Some(id), Some(after)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(CursorError::Malformed);
        };
        let id = SubscriptionId::parse(id).map_err(|_| CursorError::Malformed)?;
        if !is_sort_key(after) {
            return Err(CursorError::Malformed);
        }
        if &id != subscription {
            return Err(CursorError::OtherSubscription);
        }
        Ok(Self {
            subscription: id,
            after: after.to_owned(),
        })
    }
}

/// `{13 digits}#{delivery id: 1 to 256 printable characters, no '#'}#{4 digits}`.
fn is_sort_key(key: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let Some((at, rest)) = key.split_once('#') else {
        return false;
    };
    let Some((delivery_id, attempt)) = rest.rsplit_once('#') else {
        return false;
    };
    digits(at, 13)
        && digits(attempt, 4)
        && (1..=256).contains(&delivery_id.len())
        && !delivery_id.contains('#')
        && !delivery_id.chars().any(char::is_control)
}

#[async_trait]
pub trait DeliveryLog: Send + Sync {
    async fn record(&self, attempt: &Attempt) -> Result<(), StoreError>;

    /// Several attempts at once: the delivery stage writes a batch's lines together, and
    /// hands them over (a store that keeps them as they are need not copy them). The
    /// same attempt twice (a job SQS handed over twice, attempted in the same
    /// millisecond) is kept once. The default writes them one by one.
    async fn record_all(&self, attempts: Vec<Attempt>) -> Result<(), StoreError> {
        for attempt in &attempts {
            self.record(attempt).await?;
        }
        Ok(())
    }

    /// Attempts for one subscription of its owner, newest first: at most `limit`, starting
    /// after `after` (from the newest when `None`), reading at most `limit + 1` records.
    /// `next` is set exactly when older attempts exist. `limit` 0 reads nothing and
    /// answers an empty last page. A cursor of another subscription is
    /// [`StoreError::BadCursor`]. Records past their `expires_at` may still appear until
    /// swept.
    async fn page(
        &self,
        subscription: &SubscriptionRef,
        after: Option<&LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError>;
}

/// Builds a page from up to `limit + 1` attempts read newest first.
pub fn page_of(mut read: Vec<Attempt>, limit: usize) -> LogPage {
    let more = read.len() > limit;
    read.truncate(limit);
    let next = if more {
        read.last().map(LogCursor::after)
    } else {
        None
    };
    LogPage {
        attempts: read,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str) -> SubscriptionId {
        SubscriptionId::parse(id).unwrap()
    }

    const A: &str = "65f0c1a2b3c4d5e6f7a8b9c0";
    const B: &str = "65f0c1a2b3c4d5e6f7a8b9c1";

    #[test]
    fn sort_keys_are_the_padded_time_delivery_id_and_attempt() {
        for (at, attempt) in [
            (0, 0),
            (7, 3),
            (1_700_000_000_123, 12),
            (-5, 9_999),
            (MAX_SORTABLE_MILLIS + 1, 10_000),
            (i64::MAX, u32::MAX),
        ] {
            let mut a = Attempt::example(1, at);
            a.delivery_id = "msg_abc".into();
            a.attempt = attempt;
            assert_eq!(
                a.sort_key(),
                format!(
                    "{:013}#msg_abc#{:04}",
                    at.clamp(0, MAX_SORTABLE_MILLIS),
                    attempt
                )
            );
        }
        for (at, attempt, key) in [
            (1_700_000_000_123, 3, "1700000000123#msg_abc#0003"),
            (-5, 9_999, "0000000000000#msg_abc#9999"),
            (i64::MAX, u32::MAX, "9999999999999#msg_abc#4294967295"),
        ] {
            let mut a = Attempt::example(1, at);
            a.delivery_id = "msg_abc".into();
            a.attempt = attempt;
            assert_eq!(a.sort_key(), key);
        }
    }

    #[test]
    fn a_cursor_reads_back_for_its_own_subscription_only() {
        let cursor = LogCursor {
            subscription: sub(A),
            after: "1700000000123#msg_abc#0003".into(),
        };
        let text = cursor.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text} is URL-safe"
        );
        assert_eq!(LogCursor::parse(&text, &sub(A)), Ok(cursor));
        assert_eq!(
            LogCursor::parse(&text, &sub(B)),
            Err(CursorError::OtherSubscription)
        );
    }

    #[test]
    fn forged_and_damaged_cursors_are_refused() {
        let enc = |s: &str| B64URL.encode(s);
        for bad in [
            String::new(),
            "not base64!".into(),
            enc(""),
            enc(&format!("dl2|{A}|1700000000123#msg_abc#0003")),
            enc(&format!("dl1|{A}")),
            enc(&format!(
                "dl1|{}|1700000000123#msg_abc#0003",
                "X".repeat(24)
            )),
            enc(&format!("dl1|{A}|170000000012#msg_abc#0003")),
            enc(&format!("dl1|{A}|1700000000123#msg_abc#003")),
            enc(&format!("dl1|{A}|1700000000123##0003")),
            enc(&format!("dl1|{A}|1700000000123#msg#abc#0003")),
            enc(&format!("dl1|{A}|1700000000123#msg\nabc#0003")),
            enc(&format!("dl1|{A}|x1700000000123#msg_abc#0003")),
            B64URL.encode([0xff, 0xfe]),
        ] {
            assert_eq!(
                LogCursor::parse(&bad, &sub(A)),
                Err(CursorError::Malformed),
                "{bad:?}"
            );
        }
    }
}
