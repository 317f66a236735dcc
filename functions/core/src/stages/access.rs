//! Asking the product's access check (SPEC section 5) which of a group of owners may view
//! an object: the questions signed and sent through the HTTP sender port, under the same
//! address rules and pinning as a delivery (the sender checks the resolved address of
//! every question), at most [`MAX_IN_FLIGHT`] at a time per instance.
//!
//! Guarantees:
//! * The installation secret is read once, at the first question (on AWS one
//!   `GetSecretValue`), and checked then; a secret that cannot be read or is malformed
//!   fails the question (asked again later), never the process.
//! * A question names at most 100 owners, carries Standard Webhooks headers
//!   (`webhook-id` stable for the event and its owners, `webhook-timestamp`,
//!   `webhook-signature` under the installation secret), has 10 s, and reads at most
//!   64 KB of the answer. Only owners asked about can come out of an answer.
//! * [`AccessCheck::ask_all`] answers every candidate exactly once: named (may view),
//!   asked and not named (may not), in a failed question, or not asked because the time
//!   given ran out. The caller decides what follows (`stages::fanout`, `stages::service`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use http::header::{CONTENT_TYPE, USER_AGENT};
use tokio::sync::{OnceCell, Semaphore};

use crate::model::clock::Clock;
use crate::model::identity::UserId;
use crate::policy::access::{
    self, CheckError, CheckSecret, MAX_ANSWER, MAX_IN_FLIGHT, QUESTION_TIMEOUT, Subject,
};
use crate::ports::http::{HttpSender, OutgoingRequest};
use crate::ports::secret::SecretSource;
use crate::security::signing::{
    self, SigningKey, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};

/// The access check of an installation: where it is, its secret, and how to reach it.
pub struct AccessCheck {
    url: String,
    secret: Arc<dyn SecretSource>,
    key: OnceCell<SigningKey>,
    sender: Arc<dyn HttpSender>,
    clock: Arc<dyn Clock>,
    in_flight: Semaphore,
}

/// What the questions about one object came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Answers {
    /// Owners the product named: they may view the object.
    pub named: BTreeSet<UserId>,
    /// Groups whose question failed, with why; nobody in them is delivered to.
    pub failed: Vec<(BTreeSet<UserId>, CheckError)>,
    /// Owners not asked because the time given ran out.
    pub unasked: BTreeSet<UserId>,
}

impl Answers {
    /// The owners still without an answer: in failed questions.
    pub fn failed_users(&self) -> BTreeSet<UserId> {
        self.failed
            .iter()
            .flat_map(|(users, _)| users.iter().copied())
            .collect()
    }
}

impl AccessCheck {
    /// `url` was checked for its form when the settings loaded; its address is checked by
    /// `sender` at every question.
    pub fn new(
        url: String,
        secret: Arc<dyn SecretSource>,
        sender: Arc<dyn HttpSender>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            url,
            secret,
            key: OnceCell::new(),
            sender,
            clock,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Asks about every candidate, a group of at most 100 at a time. Groups not started by
    /// `deadline` are left unasked.
    pub async fn ask_all(
        &self,
        subject: &Subject<'_>,
        candidates: &BTreeSet<UserId>,
        deadline: Option<Instant>,
    ) -> Answers {
        let results: Vec<_> = futures::stream::iter(access::groups(candidates))
            .map(|users| async move {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return (users, None);
                }
                let answer = self.ask(subject, &users).await;
                (users, Some(answer))
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut answers = Answers::default();
        for (users, answer) in results {
            match answer {
                None => answers.unasked.extend(users),
                Some(Ok(named)) => answers.named.extend(named),
                Some(Err(e)) => answers.failed.push((users, e)),
            }
        }
        answers
    }

    /// One question: the owners of `users` the product names.
    pub async fn ask(
        &self,
        subject: &Subject<'_>,
        users: &BTreeSet<UserId>,
    ) -> Result<BTreeSet<UserId>, CheckError> {
        let key = self.key().await?;
        let body = access::body(subject, users);
        let id = access::question_id(subject.event_uid, users);
        let timestamp = self.clock.now_millis().div_euclid(1000);
        let request = OutgoingRequest {
            url: self.url.clone(),
            headers: vec![
                (CONTENT_TYPE, "application/json".to_owned()),
                (
                    USER_AGENT,
                    concat!("webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
                ),
                (
                    WEBHOOK_SIGNATURE,
                    signing::standard_signature(key, &id, timestamp, &body),
                ),
                (WEBHOOK_ID, id),
                (WEBHOOK_TIMESTAMP, timestamp.to_string()),
            ],
            body,
            timeout: QUESTION_TIMEOUT,
            body_cap: MAX_ANSWER,
        };
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| CheckError::Connection)?;
        let answer = self
            .sender
            .post(&request)
            .await
            .map_err(|e| CheckError::unanswered(&e))?;
        access::read_answer(&answer, users)
    }

    /// The signing key, read and checked at the first question.
    async fn key(&self) -> Result<&SigningKey, CheckError> {
        self.key
            .get_or_try_init(|| async {
                let text = self.secret.read().await.map_err(|e| {
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "the access check's secret could not be read");
                    CheckError::Secret
                })?;
                let secret = CheckSecret::parse(&text).map_err(|rule| {
                    tracing::error!(rule = %rule, "the access check's secret is malformed");
                    CheckError::Secret
                })?;
                Ok(SigningKey::new(secret.expose()))
            })
            .await
    }
}
