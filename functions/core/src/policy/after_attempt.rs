//! What follows a delivery attempt: a pure decision, answer in, next step out. The
//! delivery stage ([`crate::stages::delivery`]) does the I/O around it: it sends, reads what this
//! decision needs (the subscription's recent attempts, after a timeout only), and carries
//! the decision out (delete the subscription, queue the retry, write the log).
//!
//! * 2xx: delivered.
//! * 410 Gone: the subscription is deleted at once.
//! * A timeout: retried like any failure, unless the subscription has now timed out
//!   `timeout_limit` times in a row, which deletes it. "In a row" is counted from the
//!   delivery log, in *rounds*: attempts that overlapped in time (they started within one
//!   request limit of each other) were one stall of the receiver and count once, so ten
//!   jobs caught by one slow moment are one timeout, not ten. Any delivered attempt that
//!   started later than a timeout ends the row, whatever the attempt's batch read before;
//!   other failures neither count nor end it.
//! * Anything else: retried on the schedule (jitter, a clamped `Retry-After`), then given
//!   up; with no retries (`dispatch`), failed. A subscription with its own schedule is
//!   retried on that one instead ([`RetryPolicy::next_own_delay`]).

use std::time::Duration;

use crate::model::clock::Millis;
use crate::model::receiver::RetrySchedule;
use crate::policy::retry::{RetryPolicy, parse_retry_after};
use crate::ports::delivery_log::{Attempt, AttemptOutcome};
use crate::ports::http::{HttpResponse, SendError};

/// The answer, or its absence, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Gone,
    TimedOut,
    /// Any other failure; `retry_after` is the receiver's `Retry-After`, when sane.
    Failed {
        retry_after: Option<Duration>,
    },
}

impl Verdict {
    /// Classifies an HTTP answer; `now_secs` dates a `Retry-After` given as an HTTP date.
    pub fn answered(r: &HttpResponse, now_secs: i64) -> Self {
        match r.status {
            200..=299 => Self::Delivered,
            410 => Self::Gone,
            _ => Self::Failed {
                retry_after: r
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, now_secs)),
            },
        }
    }

    /// Classifies a request that got no answer.
    pub fn unanswered(e: &SendError) -> Self {
        match e {
            SendError::Timeout => Self::TimedOut,
            _ => Self::Failed { retry_after: None },
        }
    }
}

/// Whether a failed attempt schedules another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Failures go back on the queue (the delivery stage).
    Scheduled,
    /// The attempt is the only one (`dispatch`).
    None,
}

/// Why a subscription is removed automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Gone,
    TooManyTimeouts { rounds: u32, limit: Duration },
}

/// What an installation does with a subscription that keeps failing (410 Gone, or the
/// timeout limit): `delete` it (Accelo's rule, the default) or `disable` it (inactive,
/// with the reason, until its owner resumes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRepeatedFailure {
    #[default]
    Delete,
    Disable,
}

impl OnRepeatedFailure {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "delete" => Some(Self::Delete),
            "disable" => Some(Self::Disable),
            _ => None,
        }
    }
}

impl Removal {
    /// The sentence for the log and `disabled_reason`, under the deletion rule.
    pub fn reason(&self) -> String {
        self.reason_for(OnRepeatedFailure::Delete)
    }

    /// The sentence for the log and `disabled_reason`: what happened, and what was done.
    pub fn reason_for(&self, policy: OnRepeatedFailure) -> String {
        let done = match policy {
            OnRepeatedFailure::Delete => "deleted",
            OnRepeatedFailure::Disable => "disabled",
        };
        match self {
            Self::Gone => format!("the receiver answered 410 Gone; the subscription was {done}"),
            Self::TooManyTimeouts { rounds, limit } => format!(
                "{rounds} deliveries in a row took longer than {} s; the subscription was {done}",
                limit.as_secs()
            ),
        }
    }
}

/// The next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Nothing more to do (delivered, given up, or failed without retries).
    Done,
    /// Remove the subscription; the delivery ends.
    Remove(Removal),
    /// Queue the next attempt after this long.
    Retry(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: AttemptOutcome,
    pub next: Next,
}

/// The policy's inputs besides the answer.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The attempt that was just made (1 for the first).
    pub attempt: u32,
    pub retries: Retries,
    /// Timeout rounds in a row, this attempt's included (see [`timeout_rounds`]); read
    /// only after a timeout.
    pub timeout_rounds: u32,
    pub timeout_limit: u32,
    pub request_limit: Duration,
    pub retry: &'a RetryPolicy,
    /// The subscription's own schedule, which replaces `retry`'s.
    pub own_schedule: Option<&'a RetrySchedule>,
    /// Uniform in [0, 1), for the jitter.
    pub random: f64,
}

/// The decision after an attempt.
pub fn decide(verdict: Verdict, cx: &Context<'_>) -> Decision {
    let retry_after = match verdict {
        Verdict::Delivered => {
            return Decision {
                outcome: AttemptOutcome::Delivered,
                next: Next::Done,
            };
        }
        Verdict::Gone => return removed(Removal::Gone),
        Verdict::TimedOut if cx.timeout_rounds >= cx.timeout_limit => {
            return removed(Removal::TooManyTimeouts {
                rounds: cx.timeout_rounds,
                limit: cx.request_limit,
            });
        }
        Verdict::TimedOut => None,
        Verdict::Failed { retry_after } => retry_after,
    };
    let (outcome, next) = match cx.retries {
        Retries::None => (AttemptOutcome::Failed, Next::Done),
        Retries::Scheduled => {
            let delay = match cx.own_schedule {
                Some(own) => cx
                    .retry
                    .next_own_delay(own, cx.attempt, retry_after, cx.random),
                None => cx.retry.next_delay(cx.attempt, retry_after, cx.random),
            };
            match delay {
                Some(delay) => (AttemptOutcome::Retrying, Next::Retry(delay)),
                None => (AttemptOutcome::GaveUp, Next::Done),
            }
        }
    };
    Decision { outcome, next }
}

fn removed(removal: Removal) -> Decision {
    Decision {
        outcome: AttemptOutcome::Unsubscribed,
        next: Next::Remove(removal),
    }
}

/// Whether a logged attempt timed out.
pub fn timed_out(attempt: &Attempt) -> bool {
    attempt.error_kind.as_deref() == Some(SendError::Timeout.kind())
}

/// Timeout rounds in a row for a subscription whose attempt that started at `now_started`
/// just timed out, given its other recent attempts from the log (any order). Attempts
/// that started within `request_limit` of the round's earliest one belong to that round;
/// a delivered attempt that started after a timeout ends the row.
pub fn timeout_rounds(now_started: Millis, recent: &[Attempt], request_limit: Duration) -> u32 {
    timeout_rounds_of(
        now_started,
        recent.iter().filter_map(RowMark::of).collect(),
        request_limit,
    )
}

/// What the timeout count needs of an attempt: when it started, and whether it delivered
/// or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowMark {
    pub at: Millis,
    pub delivered: bool,
}

impl RowMark {
    /// The mark of an attempt that delivered or timed out; other attempts leave none.
    pub fn of(attempt: &Attempt) -> Option<Self> {
        let delivered = attempt.outcome == AttemptOutcome::Delivered;
        (delivered || timed_out(attempt)).then_some(Self {
            at: attempt.at,
            delivered,
        })
    }
}

/// [`timeout_rounds`] over marks (any order; the same attempt twice counts once).
pub fn timeout_rounds_of(now_started: Millis, marks: Vec<RowMark>, request_limit: Duration) -> u32 {
    let limit = request_limit.as_millis() as i64;
    let mut entries: Vec<(Millis, bool)> = marks.iter().map(|m| (m.at, m.delivered)).collect();
    entries.push((now_started, false));
    // Newest first; at the same instant a delivery sorts first, so it ends the row.
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut rounds = 0;
    let mut round_start: Option<Millis> = None;
    for (at, delivered) in entries {
        if delivered {
            break;
        }
        match round_start {
            Some(start) if start - at < limit => round_start = Some(at.min(start)),
            _ => {
                rounds += 1;
                round_start = Some(at);
            }
        }
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    fn logged(at: Millis, outcome: AttemptOutcome, kind: Option<&str>) -> Attempt {
        Attempt {
            outcome,
            error_kind: kind.map(str::to_owned),
            ..Attempt::example(1, at)
        }
    }

    fn timeout(at: Millis) -> Attempt {
        logged(at, AttemptOutcome::Retrying, Some("timeout"))
    }

    fn delivered(at: Millis) -> Attempt {
        logged(at, AttemptOutcome::Delivered, None)
    }

    fn cx(rounds: u32, attempt: u32, retries: Retries, policy: &RetryPolicy) -> Context<'_> {
        Context {
            attempt,
            retries,
            timeout_rounds: rounds,
            timeout_limit: 5,
            request_limit: LIMIT,
            retry: policy,
            own_schedule: None,
            random: 0.5,
        }
    }

    #[test]
    fn a_token_request_that_timed_out_is_no_timeout_of_the_receiver() {
        let token = logged(1_000_000, AttemptOutcome::Retrying, Some("token_timeout"));
        assert!(!timed_out(&token));
        assert_eq!(RowMark::of(&token), None, "it leaves no mark in the row");
        let rows = vec![timeout(1_000_000), token, timeout(1_100_000)];
        assert_eq!(timeout_rounds(1_100_000, &rows, LIMIT), 2);
    }

    #[test]
    fn concurrent_timeouts_are_one_round() {
        // Ten jobs caught by one stall: they started within a few milliseconds.
        let stall: Vec<Attempt> = (0..9).map(|i| timeout(1_000_000 + i)).collect();
        assert_eq!(timeout_rounds(1_000_009, &stall, LIMIT), 1);
    }

    #[test]
    fn sequential_timeouts_are_rounds_each() {
        let earlier: Vec<Attempt> = (1..5).map(|i| timeout(1_000_000 + i * 15_000)).collect();
        assert_eq!(timeout_rounds(1_000_000 + 5 * 15_000, &earlier, LIMIT), 5);
        // Two stalls of three concurrent jobs each, then this one.
        let two_stalls = [
            timeout(0),
            timeout(5),
            timeout(9),
            timeout(20_000),
            timeout(20_001),
            timeout(20_002),
        ];
        assert_eq!(timeout_rounds(40_000, &two_stalls, LIMIT), 3);
    }

    #[test]
    fn a_later_delivery_ends_the_row_whatever_was_read_before() {
        let log = [
            timeout(0),
            timeout(15_000),
            delivered(30_000),
            timeout(45_000),
        ];
        assert_eq!(timeout_rounds(60_000, &log, LIMIT), 2);
        // A delivery that started after this timed-out attempt: the receiver answers.
        let log = [timeout(0), timeout(15_000), delivered(60_001)];
        assert_eq!(timeout_rounds(60_000, &log, LIMIT), 0);
        // Other failures are neutral.
        let log = [
            timeout(0),
            logged(15_000, AttemptOutcome::Retrying, Some("http_500")),
            timeout(30_000),
        ];
        assert_eq!(timeout_rounds(45_000, &log, LIMIT), 3);
    }

    #[test]
    fn decisions_follow_the_policy() {
        let policy = RetryPolicy::default();
        let d = decide(Verdict::Delivered, &cx(0, 1, Retries::Scheduled, &policy));
        assert_eq!((d.outcome, d.next), (AttemptOutcome::Delivered, Next::Done));
        let d = decide(Verdict::Gone, &cx(0, 1, Retries::Scheduled, &policy));
        assert_eq!(d.next, Next::Remove(Removal::Gone));
        assert_eq!(d.outcome, AttemptOutcome::Unsubscribed);
        let d = decide(Verdict::TimedOut, &cx(4, 1, Retries::Scheduled, &policy));
        assert_eq!(
            d.outcome,
            AttemptOutcome::Retrying,
            "below the limit: retried"
        );
        let d = decide(Verdict::TimedOut, &cx(5, 1, Retries::None, &policy));
        assert_eq!(
            d.next,
            Next::Remove(Removal::TooManyTimeouts {
                rounds: 5,
                limit: LIMIT
            })
        );
        let failed = Verdict::Failed { retry_after: None };
        let d = decide(failed, &cx(0, 1, Retries::Scheduled, &policy));
        assert_eq!(d.next, Next::Retry(Duration::from_secs(5)));
        let d = decide(
            failed,
            &cx(0, policy.max_attempts(), Retries::Scheduled, &policy),
        );
        assert_eq!((d.outcome, d.next), (AttemptOutcome::GaveUp, Next::Done));
        let d = decide(failed, &cx(0, 1, Retries::None, &policy));
        assert_eq!((d.outcome, d.next), (AttemptOutcome::Failed, Next::Done));
        let asked = Verdict::Failed {
            retry_after: Some(Duration::from_secs(120)),
        };
        let d = decide(asked, &cx(0, 1, Retries::Scheduled, &policy));
        assert_eq!(d.next, Next::Retry(Duration::from_secs(120)));
    }

    #[test]
    fn an_own_schedule_decides_instead_of_the_installations() {
        let policy = RetryPolicy::default();
        let own = RetrySchedule::from_stored(vec![1, 3]);
        let with_own = |attempt, verdict| {
            decide(
                verdict,
                &Context {
                    own_schedule: Some(&own),
                    ..cx(0, attempt, Retries::Scheduled, &policy)
                },
            )
        };
        let failed = Verdict::Failed { retry_after: None };
        assert_eq!(
            with_own(1, failed).next,
            Next::Retry(Duration::from_secs(1))
        );
        assert_eq!(
            with_own(2, failed).next,
            Next::Retry(Duration::from_secs(3))
        );
        assert_eq!(
            (with_own(3, failed).outcome, with_own(3, failed).next),
            (AttemptOutcome::GaveUp, Next::Done),
            "after the last delay's attempt, as with the default"
        );
        let asked = Verdict::Failed {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            with_own(1, asked).next,
            Next::Retry(Duration::from_secs(30))
        );
        assert_eq!(
            with_own(1, Verdict::TimedOut).next,
            Next::Retry(Duration::from_secs(1))
        );
        let dispatch = decide(
            failed,
            &Context {
                own_schedule: Some(&own),
                ..cx(0, 1, Retries::None, &policy)
            },
        );
        assert_eq!(
            (dispatch.outcome, dispatch.next),
            (AttemptOutcome::Failed, Next::Done)
        );
    }
}
