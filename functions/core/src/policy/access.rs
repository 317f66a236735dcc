//! The access check of SPEC section 5 as pure decisions: how candidate owners are grouped
//! into questions, the question's body and delivery-like id, what an answer means, the
//! installation secret's form, and when a failed question is asked again. No I/O:
//! `stages::access` signs and sends the question through the HTTP sender port.
//!
//! Guarantees: a question names at most [`MAX_USERS_PER_QUESTION`] owners; its
//! `webhook-id` depends only on the event and the owners asked, so a question asked again
//! (a retry, a redelivered message) carries the same id; an answer is read to at most
//! [`MAX_ANSWER`] bytes, and only owners that were asked can come out of it (an id the
//! product was not asked about is ignored); anything but a 2xx answer of the documented
//! shape is a failure, and a failure never names an owner (nobody is delivered to on a
//! guess).

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::model::identity::UserId;
use crate::ports::http::{HttpResponse, SendError};

/// The most owners one question names.
pub const MAX_USERS_PER_QUESTION: usize = 100;
/// The largest answer read.
pub const MAX_ANSWER: usize = 64 * 1024;
/// The limit on one question.
pub const QUESTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Questions in flight at once, per fan-out instance.
pub const MAX_IN_FLIGHT: usize = 10;
/// The fewest random bytes an installation secret encodes.
pub const MIN_SECRET_BYTES: usize = 24;

/// The installation secret that signs questions: `whsec_` and the base64 of at least
/// [`MIN_SECRET_BYTES`] bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckSecret(String);

impl CheckSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rule =
            format!("must be whsec_ and the base64 of at least {MIN_SECRET_BYTES} random bytes");
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or_else(|| rule.clone())?;
        match STANDARD.decode(encoded) {
            Ok(bytes) if bytes.len() >= MIN_SECRET_BYTES => Ok(Self(text.trim().to_owned())),
            _ => Err(rule),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CheckSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CheckSecret(<redacted>)")
    }
}

/// What a question is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject<'a> {
    pub deployment: &'a str,
    pub event_id: &'a str,
    pub object_id: u64,
    pub resource_url: Option<&'a str>,
    /// Identifies the event (its `event_uid`; a `dispatch`, its delivery id).
    pub event_uid: &'a str,
}

/// The candidate owners in questions of at most [`MAX_USERS_PER_QUESTION`], in id order.
pub fn groups(candidates: &BTreeSet<UserId>) -> Vec<BTreeSet<UserId>> {
    let all: Vec<UserId> = candidates.iter().copied().collect();
    all.chunks(MAX_USERS_PER_QUESTION)
        .map(|chunk| chunk.iter().copied().collect())
        .collect()
}

/// The question's JSON body.
pub fn body(subject: &Subject<'_>, users: &BTreeSet<UserId>) -> Vec<u8> {
    json!({
        "deployment": subject.deployment,
        "event_id": subject.event_id,
        "object_id": subject.object_id,
        "resource_url": subject.resource_url,
        "users": users,
    })
    .to_string()
    .into_bytes()
}

/// The question's `webhook-id`: `msg_` and 32 hex digits of SHA-256 over the event and
/// the owners asked, the same every time that group is asked about that event.
pub fn question_id(event_uid: &str, users: &BTreeSet<UserId>) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"access-check\0");
    ctx.update(event_uid.as_bytes());
    for user in users {
        ctx.update(b"\0");
        ctx.update(user.to_string().as_bytes());
    }
    crate::model::ids::digest_id("msg_", ctx.finish().as_ref())
}

/// Why a question got no usable answer. Says nothing of what came back beyond its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("the access check did not answer within 10 s")]
    Timeout,
    #[error("the access check's address is not one this installation calls")]
    Blocked,
    #[error("the access check could not be reached")]
    Connection,
    #[error("the access check answered HTTP {0}")]
    Http(u16),
    #[error("the access check's answer was not usable: {0}")]
    BadAnswer(&'static str),
    #[error("the access check's secret could not be read")]
    Secret,
}

impl CheckError {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> String {
        match self {
            Self::Timeout => "check_timeout".into(),
            Self::Blocked => "check_blocked".into(),
            Self::Connection => "check_connection".into(),
            Self::Http(status) => format!("check_http_{status}"),
            Self::BadAnswer(_) => "check_bad_answer".into(),
            Self::Secret => "check_secret".into(),
        }
    }

    /// The kind of a question that got no answer.
    pub fn unanswered(e: &SendError) -> Self {
        match e {
            SendError::Timeout => Self::Timeout,
            SendError::BlockedAddress(_) => Self::Blocked,
            _ => Self::Connection,
        }
    }
}

/// The owners an answer names, of those asked: a 2xx answer whose body is a JSON object
/// with `visible_to`, a list of ids as numbers or numeric strings.
pub fn read_answer(
    answer: &HttpResponse,
    asked: &BTreeSet<UserId>,
) -> Result<BTreeSet<UserId>, CheckError> {
    if !(200..300).contains(&answer.status) {
        return Err(CheckError::Http(answer.status));
    }
    if answer.body.len() >= MAX_ANSWER {
        return Err(CheckError::BadAnswer("it is 64 KB or larger"));
    }
    let shape = "it is not {\"visible_to\": [ids]}";
    let value: Value =
        serde_json::from_str(&answer.body).map_err(|_| CheckError::BadAnswer(shape))?;
    let Some(Value::Array(items)) = value.get("visible_to") else {
        return Err(CheckError::BadAnswer(shape));
    };
    let mut named = BTreeSet::new();
    for item in items {
        let id = match item {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or(CheckError::BadAnswer(shape))?;
        if asked.contains(&id) {
            named.insert(id);
        }
    }
    Ok(named)
}

/// What follows a failed question, asked `attempt` times so far (from 1): ask again after
/// `delay` on the delivery schedule, or give the event up to the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    AskAgain { delay: Duration },
    GiveUp,
}

pub fn after_failure(
    retry: &crate::policy::retry::RetryPolicy,
    attempt: u32,
    random: f64,
) -> AfterFailure {
    match retry.next_delay(attempt, None, random) {
        Some(delay) => AfterFailure::AskAgain {
            // SQS delays are whole seconds; a jittered 4.6 s must not become 4.
            delay: Duration::from_secs(delay.as_secs_f64().ceil().max(1.0) as u64),
        },
        None => AfterFailure::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::retry::RetryPolicy;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            retry_after: None,
            body: body.into(),
        }
    }

    fn set(ids: &[u64]) -> BTreeSet<UserId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn groups_hold_at_most_a_hundred_owners_in_id_order() {
        let candidates: BTreeSet<UserId> = (1..=250).collect();
        let groups = groups(&candidates);
        assert_eq!(
            groups.iter().map(BTreeSet::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        assert_eq!(groups[1].first(), Some(&101));
        assert!(super::groups(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn an_answer_names_only_owners_that_were_asked() {
        let asked = set(&[1, 7, 12]);
        let named = read_answer(&answer(200, r#"{"visible_to": [7, "12", 99]}"#), &asked).unwrap();
        assert_eq!(named, set(&[7, 12]));
        assert_eq!(
            read_answer(&answer(204, r#"{"visible_to": []}"#), &asked).unwrap(),
            set(&[])
        );
    }

    #[test]
    fn anything_else_is_a_failure_naming_nobody() {
        let asked = set(&[1]);
        for (status, body, kind) in [
            (500, r#"{"visible_to": [1]}"#, "check_http_500"),
            (302, "", "check_http_302"),
            (200, "not json", "check_bad_answer"),
            (200, r#"{"users": [1]}"#, "check_bad_answer"),
            (200, r#"{"visible_to": "all"}"#, "check_bad_answer"),
            (200, r#"{"visible_to": [1, "x"]}"#, "check_bad_answer"),
            (200, r#"{"visible_to": [1.5]}"#, "check_bad_answer"),
            (200, r#"[1]"#, "check_bad_answer"),
        ] {
            let e = read_answer(&answer(status, body), &asked).unwrap_err();
            assert_eq!(e.kind(), kind, "{status} {body}");
        }
        let big = format!(
            r#"{{"visible_to": [1], "pad": "{}"}}"#,
            "x".repeat(MAX_ANSWER)
        );
        assert_eq!(
            read_answer(&answer(200, &big), &asked).unwrap_err().kind(),
            "check_bad_answer"
        );
    }

    #[test]
    fn a_question_id_is_stable_for_its_event_and_owners() {
        let a = question_id("evt_1", &set(&[1, 2]));
        assert_eq!(a, question_id("evt_1", &set(&[2, 1])));
        assert_ne!(a, question_id("evt_1", &set(&[1, 2, 3])));
        assert_ne!(a, question_id("evt_2", &set(&[1, 2])));
        // Not the user list [12] against [1, 2].
        assert_ne!(
            question_id("e", &set(&[12])),
            question_id("e", &set(&[1, 2]))
        );
        assert!(a.starts_with("msg_") && a.len() == 36);
    }

    #[test]
    fn the_body_names_the_object_and_the_owners() {
        let subject = Subject {
            deployment: "hq",
            event_id: "assign_task",
            object_id: 42,
            resource_url: Some("https://hq.example/tasks/42"),
            event_uid: "evt_1",
        };
        let body: Value = serde_json::from_slice(&body(&subject, &set(&[3, 1]))).unwrap();
        assert_eq!(
            body,
            json!({"deployment": "hq", "event_id": "assign_task", "object_id": 42,
                   "resource_url": "https://hq.example/tasks/42", "users": [1, 3]})
        );
    }

    #[test]
    fn the_secret_is_whsec_and_at_least_24_bytes() {
        let good = format!("whsec_{}", STANDARD.encode([7u8; 24]));
        assert_eq!(CheckSecret::parse(&good).unwrap().expose(), good);
        for bad in [
            format!("whsec_{}", STANDARD.encode([7u8; 23])),
            STANDARD.encode([7u8; 32]),
            "whsec_not base64!".to_owned(),
            String::new(),
        ] {
            assert!(CheckSecret::parse(&bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", CheckSecret::parse(&good).unwrap()).contains("whsec_"));
    }

    #[test]
    fn failures_follow_the_delivery_schedule_then_give_up() {
        let retry = RetryPolicy::default();
        assert_eq!(
            after_failure(&retry, 1, 0.5),
            AfterFailure::AskAgain {
                delay: Duration::from_secs(5)
            }
        );
        // Jitter down to 4.5 s rounds up to whole seconds.
        assert_eq!(
            after_failure(&retry, 1, 0.0),
            AfterFailure::AskAgain {
                delay: Duration::from_secs(5)
            }
        );
        assert_eq!(
            after_failure(&retry, 2, 0.5),
            AfterFailure::AskAgain {
                delay: Duration::from_secs(300)
            }
        );
        assert_eq!(after_failure(&retry, 8, 0.5), AfterFailure::GiveUp);
    }
}
