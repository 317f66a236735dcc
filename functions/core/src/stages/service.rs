//! The subscription owner's use cases (SPEC sections 3, 5 and 7): create, read, update,
//! pause and resume, rotate the secret, delete, trigger, dispatch, resend and recover. The
//! API's handlers parse input into the types here and shape the answers; everything else
//! happens here, over the ports, beside the fan-out and delivery stages.
//!
//! Guarantees:
//! * Tenancy: every use case takes the caller's owner and finds only that owner's
//!   subscriptions; another owner's id is [`ServiceError::NotFound`], like an unknown one.
//!   So is a delivery id that is not in the subscription's log.
//! * A refused request changes nothing: input arrives parsed, and windows and ids are
//!   checked before anything is written or queued.
//! * Secrets are sealed for their subscription before they are stored and never returned,
//!   except a generated secret, once, in the answer of the rotation that made it. So are
//!   a subscription's own headers, which answers show with sensitive values masked
//!   ([`Subscriptions::headers`]).
//! * So is the client secret of `auth`, never shown; a `PUT` of `auth` without one keeps
//!   the stored one. `Authorization` in `headers` is refused beside `auth`.
//! * `PUT` replaces the whole header map; a masked value (`"********"`) keeps the stored
//!   value of that name, and is refused when there is none, before anything is written.
//! * A resent or recovered delivery keeps its delivery id (`webhook-id`) and starts a
//!   fresh retry schedule; it goes through the deliveries queue like any job.
//! * Recovering a window answers how many deliveries it queues and queues them
//!   asynchronously, a page at a time through the deliveries queue ([`RecoverTask`]), so a
//!   window of any size takes the API one walk of the log and bounded memory.

use std::sync::Arc;
use std::time::Duration;

use crate::model::catalogue::Catalogue;
use crate::model::clock::{Clock, Millis};
use crate::model::event::{Event, Visibility, format_millis, resource_url_from_template};
use crate::model::identity::{Caller, Owner};
use crate::model::ids::{IdGenerator, SubscriptionId};
use crate::model::job::DeliveryJob;
use crate::model::random::random_id;
use crate::model::receiver::{Auth, Headers, authorization_beside_auth};
use crate::model::subscription::{
    Changes, Edit, NewSubscription, PreviousSecret, Secret, Subscription, SubscriptionRef,
};
use crate::policy::access::{CheckError, Subject};
use crate::ports::delivery_log::{Attempt, LogCursor};
use crate::ports::queue::{OutgoingMessage, QueueError, QueueSender, send_all};
use crate::ports::store::{StoreError, SubscriptionStore};
use crate::security::crypto::{SealError, SecretSealer};
use crate::stages::access::AccessCheck;
use crate::stages::delivery::{Deliverer, DeliveryError, Retries};
use crate::stages::recovery::{LOG_PAGE, RecoverTask, again};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Unknown, malformed or another owner's: all answer alike.
    #[error("no such subscription or delivery")]
    NotFound,
    /// The request cannot be carried out as asked; the sentence says why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The caller may not do this; the sentence says why.
    #[error("{0}")]
    NotPermitted(String),
    /// The product's access check gave no usable answer.
    #[error(transparent)]
    AccessCheck(CheckError),
    #[error("a subscription's sealed headers cannot be opened with this installation's key")]
    Unsealable {
        #[source]
        source: SealError,
    },
}

/// What the use cases need to know of the installation.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub catalogue: Catalogue,
    /// The `resource_url` of events that `trigger` and `dispatch` make from a bare object
    /// id (see `event::resource_url_from_template`).
    pub resource_url_template: String,
    /// How far back the delivery log reaches: a recover window may not start earlier.
    pub log_retention: Duration,
}

/// The use cases, over the ports. Built once per process.
pub struct Subscriptions {
    pub store: Arc<dyn SubscriptionStore>,
    /// The events queue: triggered events go there for the fan-out.
    pub events: Arc<dyn QueueSender>,
    /// The deliveries queue: resent and recovered deliveries, and recover tasks.
    pub deliveries: Arc<dyn QueueSender>,
    /// The delivery stage, for `dispatch`, and its log.
    pub deliverer: Arc<Deliverer>,
    pub sealer: SecretSealer,
    pub clock: Arc<dyn Clock>,
    pub ids: IdGenerator,
    pub settings: ServiceSettings,
    /// The product's access check, when the installation has one: `trigger` leaves the
    /// audience to it and `dispatch` asks it about the caller.
    pub access: Option<Arc<AccessCheck>>,
}

/// A recover request's window, parsed at the edge: `until` defaults to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: Millis,
    pub until: Option<Millis>,
}

impl Window {
    /// `since` (required) and `until` (optional), RFC 3339 times.
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Self, String> {
        let time = |name: &str, text: &str| {
            time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Millis)
                .map_err(|_| {
                    format!("{name} must be an RFC 3339 time, such as 2026-11-28T09:00:00Z")
                })
        };
        let since = match since.map(str::trim).filter(|s| !s.is_empty()) {
            None => {
                return Err("since is required: the start of the window, an RFC 3339 time".into());
            }
            Some(text) => time("since", text)?,
        };
        let until = until
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|text| time("until", text))
            .transpose()?;
        Ok(Self { since, until })
    }
}

/// What a rotation did: the subscription as stored, and the secret when the platform
/// generated it (to be shown this once).
pub struct Rotated {
    pub subscription: Subscription,
    pub generated: Option<Secret>,
}

impl Subscriptions {
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewSubscription,
    ) -> Result<Subscription, ServiceError> {
        let key = SubscriptionRef {
            id: self.ids.next(self.clock.as_ref()),
            owner: caller.owner(),
        };
        // Sealed for this subscription alone: copied onto another row it does not open.
        let sealed_secret = new
            .secret
            .as_ref()
            .map(|s| self.sealer.seal_for(s.expose(), &key));
        let sealed_headers = match new.headers {
            None => None,
            Some(asked) => {
                let headers = asked
                    .resolve(None)
                    .map_err(|e| ServiceError::Invalid(e.to_string()))?;
                self.sealer.seal_headers(&headers, &key)
            }
        };
        // Parsed with its client secret: a create has none stored to keep.
        let auth = new.auth.and_then(|asked| {
            Some(Auth {
                sealed_client_secret: self
                    .sealer
                    .seal_client_secret(asked.client_secret?.expose(), &key),
                client: asked.client,
            })
        });
        let subscription = Subscription {
            id: key.id,
            owner: key.owner,
            owner_name: caller.name.clone(),
            owner_email: caller.email.clone(),
            event_id: new.event.event_id.clone(),
            trigger_url: new.trigger_url,
            content_type: new.content_type,
            sealed_secret,
            created_at: self.clock.now_millis(),
            active: true,
            disabled_reason: None,
            previous_secret: None,
            sealed_headers,
            retry_schedule: new.retry_schedule,
            auth,
            rate_limit: new.rate_limit,
        };
        self.store.put(&subscription).await?;
        tracing::info!(subscription_id = %subscription.id, event_id = %subscription.event_id, "subscription created");
        Ok(subscription)
    }

    pub async fn list(&self, owner: &Owner) -> Result<Vec<Subscription>, ServiceError> {
        Ok(self.store.list_by_owner(owner).await?)
    }

    pub async fn get(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
    ) -> Result<Subscription, ServiceError> {
        self.store
            .get(owner, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    pub async fn delete(&self, owner: &Owner, id: &SubscriptionId) -> Result<(), ServiceError> {
        match self.store.delete(owner, id).await? {
            Some(_) => {
                tracing::info!(subscription_id = %id, "subscription deleted by its owner");
                Ok(())
            }
            None => Err(ServiceError::NotFound),
        }
    }

    /// The subscription's own headers, opened (none when it has none).
    pub fn headers(&self, subscription: &Subscription) -> Result<Headers, ServiceError> {
        self.sealer
            .open_headers(subscription.sealed_headers.as_deref(), &subscription.key())
            .map_err(|source| ServiceError::Unsealable { source })
    }

    /// Changes the URL, the content type, whether it is active, its headers or its retry
    /// schedule. Resuming clears the reason an automatic disable left; pausing takes it
    /// out of the fan-out's indexes.
    pub async fn update(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
        changes: Changes,
    ) -> Result<Subscription, ServiceError> {
        let mut subscription = self.get(owner, id).await?;
        if let Some(url) = changes.trigger_url {
            subscription.trigger_url = url;
        }
        if let Some(content_type) = changes.content_type {
            subscription.content_type = content_type;
        }
        if let Some(active) = changes.active {
            subscription.active = active;
            subscription.disabled_reason = None;
        }
        match changes.headers {
            Edit::Keep => {}
            Edit::Remove => subscription.sealed_headers = None,
            Edit::Set(asked) => {
                let stored = self.headers(&subscription)?;
                let headers = asked
                    .resolve(Some(&stored))
                    .map_err(|e| ServiceError::Invalid(e.to_string()))?;
                subscription.sealed_headers =
                    self.sealer.seal_headers(&headers, &subscription.key());
            }
        }
        match changes.retry_schedule {
            Edit::Keep => {}
            Edit::Remove => subscription.retry_schedule = None,
            Edit::Set(schedule) => subscription.retry_schedule = Some(schedule),
        }
        match changes.auth {
            Edit::Keep => {}
            Edit::Remove => subscription.auth = None,
            Edit::Set(asked) => {
                // Without a client secret, the stored one is kept (sealed for this
                // subscription and purpose already).
                let sealed_client_secret = match (asked.client_secret, &subscription.auth) {
                    (Some(secret), _) => self
                        .sealer
                        .seal_client_secret(secret.expose(), &subscription.key()),
                    (None, Some(stored)) => stored.sealed_client_secret.clone(),
                    (None, None) => {
                        return Err(ServiceError::Invalid(
                            "auth: client_secret is required: this subscription has none stored to keep".into(),
                        ));
                    }
                };
                subscription.auth = Some(Auth {
                    client: asked.client,
                    sealed_client_secret,
                });
            }
        }
        // `Authorization` beside `auth`, whichever of the two this request changes.
        if subscription.auth.is_some()
            && self.headers(&subscription)?.get("authorization").is_some()
        {
            return Err(ServiceError::Invalid(
                authorization_beside_auth().to_string(),
            ));
        }
        match changes.rate_limit {
            Edit::Keep => {}
            Edit::Remove => subscription.rate_limit = None,
            Edit::Set(limit) => subscription.rate_limit = Some(limit),
        }
        self.replace(&subscription).await?;
        tracing::info!(subscription_id = %id, active = subscription.active, "subscription updated by its owner");
        Ok(subscription)
    }

    /// Sets a new secret, given or generated; the current one keeps signing beside it for
    /// [`ROTATION_OVERLAP`].
    pub async fn rotate_secret(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
        given: Option<Secret>,
    ) -> Result<Rotated, ServiceError> {
        let mut subscription = self.get(owner, id).await?;
        let generated = match given {
            Some(_) => None,
            None => Some(Secret::generate()),
        };
        let secret = given
            .as_ref()
            .or(generated.as_ref())
            .expect("a secret was given or generated");
        let now = self.clock.now_millis();
        subscription.previous_secret =
            subscription
                .sealed_secret
                .take()
                .map(|sealed| PreviousSecret {
                    sealed,
                    until: now + ROTATION_OVERLAP.as_millis() as i64,
                });
        subscription.sealed_secret =
            Some(self.sealer.seal_for(secret.expose(), &subscription.key()));
        self.replace(&subscription).await?;
        tracing::info!(subscription_id = %id, generated = generated.is_some(), "subscription secret rotated");
        Ok(Rotated {
            subscription,
            generated,
        })
    }

    /// Queues an event for this object to the owner's other subscriptions to the same
    /// event (the caller is the only known viewer), or, with an access check, to the other
    /// subscriptions of the owners it names; answers its uid.
    pub async fn trigger(
        &self,
        caller: &Caller,
        id: &SubscriptionId,
        object_id: u64,
    ) -> Result<String, ServiceError> {
        let subscription = self.get(&caller.owner(), id).await?;
        let event = Event {
            event_uid: random_id("evt_"),
            deployment: caller.deployment.clone(),
            event_id: subscription.event_id.clone(),
            object_id,
            resource_url: self.resource_url(&subscription, object_id),
            visible_to: match self.access {
                Some(_) => Visibility::check(),
                None => Visibility::Users([caller.user_id].into()),
            },
            idempotency_key: None,
            occurred_at: format_millis(self.clock.now_millis()),
            exclude_subscription: Some(subscription.id.clone()),
            resume_after: None,
            check_retry: None,
        };
        send_all(
            self.events.as_ref(),
            vec![OutgoingMessage::new(event.to_message())],
            1,
        )
        .await?;
        tracing::info!(subscription_id = %subscription.id, event_uid = %event.event_uid, "event triggered");
        Ok(event.event_uid)
    }

    /// Delivers one object to this subscription now, logged like any attempt and not
    /// retried (the caller has the answer). With an access check, only when it names the
    /// caller; nothing is sent when it does not answer.
    pub async fn dispatch(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
        object_id: u64,
    ) -> Result<Attempt, ServiceError> {
        let subscription = self.get(owner, id).await?;
        let delivery_id = random_id("msg_");
        let resource_url = self.resource_url(&subscription, object_id);
        if let Some(access) = &self.access {
            let caller = [owner.user_id].into();
            let subject = Subject {
                deployment: owner.deployment.as_str(),
                event_id: &subscription.event_id,
                object_id,
                resource_url: resource_url.as_deref(),
                event_uid: &delivery_id,
            };
            let named = access
                .ask(&subject, &caller)
                .await
                .map_err(ServiceError::AccessCheck)?;
            if named.is_empty() {
                return Err(ServiceError::NotPermitted(format!(
                    "the product's access check does not name you among the users who may view object {object_id}"
                )));
            }
        }
        let job = DeliveryJob {
            delivery_id,
            subscription: subscription.key(),
            event_id: subscription.event_id.clone(),
            object_id,
            resource_url,
            occurred_at: format_millis(self.clock.now_millis()),
            attempt: 1,
            due_at: None,
            subject: None,
        };
        Ok(self
            .deliverer
            .attempt(&job, &subscription, Retries::None)
            .await?)
    }

    /// Queues one logged delivery again: same delivery id, a fresh retry schedule.
    pub async fn resend(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
        delivery_id: &str,
    ) -> Result<(), ServiceError> {
        let subscription = self.get(owner, id).await?;
        let line = self
            .find_delivery(&subscription.key(), delivery_id)
            .await?
            .ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "delivery `{}` is not in this subscription's delivery log",
                    delivery_id.chars().take(64).collect::<String>()
                ))
            })?;
        send_all(
            self.deliveries.as_ref(),
            vec![OutgoingMessage::new(again(&line).to_message())],
            1,
        )
        .await?;
        tracing::info!(subscription_id = %id, delivery_id, "delivery queued again by its owner");
        Ok(())
    }

    /// Counts the deliveries of the window that failed or gave up, and queues a task that
    /// sends them again, a page at a time. Answers how many.
    pub async fn recover(
        &self,
        owner: &Owner,
        id: &SubscriptionId,
        window: Window,
    ) -> Result<usize, ServiceError> {
        let now = self.clock.now_millis();
        let until = window.until.unwrap_or(now);
        let reach = now - self.settings.log_retention.as_millis() as i64;
        if window.since > now {
            return Err(ServiceError::Invalid(
                "since must not be in the future".into(),
            ));
        }
        if until < window.since {
            return Err(ServiceError::Invalid(
                "until must not be before since".into(),
            ));
        }
        if window.since < reach {
            return Err(ServiceError::Invalid(format!(
                "since is before the delivery log's reach ({} days); nothing older is kept",
                self.settings.log_retention.as_secs() / 86_400
            )));
        }
        let subscription = self.get(owner, id).await?;
        let task = RecoverTask {
            subscription: subscription.key(),
            since: window.since,
            until,
            after: None,
        };
        let mut count = 0;
        let mut after: Option<LogCursor> = None;
        loop {
            let page = task
                .page(self.deliverer.log.as_ref(), after.as_ref())
                .await?;
            count += page.lines.len();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        if count > 0 {
            send_all(
                self.deliveries.as_ref(),
                vec![OutgoingMessage::new(task.to_message())],
                1,
            )
            .await?;
        }
        tracing::info!(subscription_id = %id, count, "recovery queued");
        Ok(count)
    }

    /// The latest line of a delivery in the subscription's log, newest first; the walk
    /// reads the log back to the delivery (or to its end).
    async fn find_delivery(
        &self,
        key: &SubscriptionRef,
        delivery_id: &str,
    ) -> Result<Option<Attempt>, ServiceError> {
        let mut after: Option<LogCursor> = None;
        loop {
            let page = self
                .deliverer
                .log
                .page(key, after.as_ref(), LOG_PAGE)
                .await?;
            if let Some(found) = page.attempts.iter().find(|a| a.delivery_id == delivery_id) {
                return Ok(Some(found.clone()));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
    }

    async fn replace(&self, subscription: &Subscription) -> Result<(), ServiceError> {
        if self.store.replace(subscription).await? {
            Ok(())
        } else {
            // Deleted between the read and the write.
            Err(ServiceError::NotFound)
        }
    }

    fn resource_url(&self, subscription: &Subscription, object_id: u64) -> Option<String> {
        let event_type = self.settings.catalogue.get(&subscription.event_id);
        match event_type {
            Some(t) if t.trigger_type == "delete" => None,
            _ => Some(resource_url_from_template(
                &self.settings.resource_url_template,
                &subscription.owner.deployment,
                event_type
                    .map(|t| t.trigger_table.as_str())
                    .unwrap_or_default(),
                &subscription.event_id,
                object_id,
            )),
        }
    }
}
