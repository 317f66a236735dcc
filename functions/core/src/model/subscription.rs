//! Subscriptions: what a user asked for, validated at the edge into types that cannot
//! hold bad values: a create ([`NewSubscription`]), an update ([`Changes`]), and the
//! subscription as stored ([`Subscription`]). Its URLs are parsed by `model::url`, its
//! receiver settings (headers, retry schedule, auth, rate limit) by `model::receiver`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::catalogue::{Catalogue, EventType};
use crate::model::clock::Millis;
use crate::model::identity::Owner;
use crate::model::ids::SubscriptionId;
use crate::model::receiver::{
    AskedAuth, AskedHeaders, Auth, RateLimit, ReceiverError, RetrySchedule,
    authorization_beside_auth,
};
use crate::model::url::{TriggerUrl, UrlError, UrlPolicy};

pub const MAX_SECRET_LEN: usize = 512;

/// How a delivery body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ContentType {
    #[default]
    #[serde(rename = "application/x-www-form-urlencoded")]
    Form,
    #[serde(rename = "application/json")]
    Json,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Form => "application/x-www-form-urlencoded",
            Self::Json => "application/json",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "application/x-www-form-urlencoded" => Some(Self::Form),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A subscription's signing secret, as the user gave it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn parse(raw: &str) -> Result<Option<Self>, SubscriptionError> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > MAX_SECRET_LEN {
            return Err(SubscriptionError::InvalidSecret(format!(
                "secret must be at most {MAX_SECRET_LEN} bytes"
            )));
        }
        if raw.chars().any(char::is_control) {
            return Err(SubscriptionError::InvalidSecret(
                "secret must not contain control characters".to_owned(),
            ));
        }
        Ok(Some(Self(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A new secret the platform makes: 32 random bytes in Standard Webhooks' spelling
    /// (`whsec_` and base64), which receivers pass to the standard libraries as it is.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        crate::model::random::random_bytes(&mut bytes);
        Self(format!("whsec_{}", STANDARD.encode(bytes)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(
        "event_id `{0}` is not a known event; GET /api/v0/webhooks/subscriptions/types lists them"
    )]
    UnknownEvent(String),
    #[error("content_type must be application/x-www-form-urlencoded or application/json")]
    UnknownContentType,
    #[error("{0}")]
    InvalidSecret(String),
    #[error("active must be true or false")]
    InvalidActive,
    #[error(transparent)]
    Receiver(#[from] ReceiverError),
    #[error(
        "nothing to change: send trigger_url, content_type, active, headers, retry_schedule, auth or rate_limit"
    )]
    NothingToChange,
}

/// What an update does to an optional field: leaves it, removes it (`null`), or sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Edit<T> {
    #[default]
    Keep,
    Remove,
    Set(T),
}

impl<T> Edit<T> {
    fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

/// An update request, validated: at least one field, each checked as on create.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub trigger_url: Option<TriggerUrl>,
    pub content_type: Option<ContentType>,
    pub active: Option<bool>,
    /// Replaces the whole map; masked values are settled against the stored ones.
    pub headers: Edit<AskedHeaders>,
    pub retry_schedule: Edit<RetrySchedule>,
    /// Without a client secret, keeps the stored one.
    pub auth: Edit<AskedAuth>,
    pub rate_limit: Edit<RateLimit>,
}

/// The raw fields of an update request, as they came in.
#[derive(Debug, Default, Clone)]
pub struct RawChanges<'a> {
    pub trigger_url: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// `true` or `false` (a JSON bool, or the word in a form).
    pub active: Option<&'a str>,
    /// The JSON value given; `null` removes the field.
    pub headers: Option<&'a Value>,
    pub retry_schedule: Option<&'a Value>,
    pub auth: Option<&'a Value>,
    pub rate_limit: Option<&'a Value>,
}

/// An optional JSON field of an update: absent keeps it, `null` removes it. (An empty
/// `headers` object sets no headers, which removes them too.)
fn edit<T, E: Into<SubscriptionError>>(
    given: Option<&Value>,
    parse: impl FnOnce(&Value) -> Result<T, E>,
) -> Result<Edit<T>, SubscriptionError> {
    Ok(match given {
        None => Edit::Keep,
        Some(Value::Null) => Edit::Remove,
        Some(value) => Edit::Set(parse(value).map_err(Into::into)?),
    })
}

/// An optional JSON field of a create request: `null` is the same as absent.
fn optional<T, E: Into<SubscriptionError>>(
    given: Option<&Value>,
    parse: impl FnOnce(&Value) -> Result<T, E>,
) -> Result<Option<T>, SubscriptionError> {
    match edit(given, parse)? {
        Edit::Set(value) => Ok(Some(value)),
        Edit::Keep | Edit::Remove => Ok(None),
    }
}

impl Changes {
    pub fn parse(raw: RawChanges<'_>, policy: &UrlPolicy) -> Result<Self, SubscriptionError> {
        let trigger_url = raw
            .trigger_url
            .map(|url| TriggerUrl::parse(url, policy))
            .transpose()?;
        let content_type = raw
            .content_type
            .map(|ct| ContentType::parse(ct).ok_or(SubscriptionError::UnknownContentType))
            .transpose()?;
        let active = match raw.active.map(|a| a.trim().to_ascii_lowercase()).as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(SubscriptionError::InvalidActive),
        };
        let headers = edit(raw.headers, AskedHeaders::parse)?;
        let retry_schedule = edit(raw.retry_schedule, RetrySchedule::parse)?;
        let auth = edit(raw.auth, |v| AskedAuth::parse(v, policy))?;
        let rate_limit = edit(raw.rate_limit, RateLimit::parse)?;
        if trigger_url.is_none()
            && content_type.is_none()
            && active.is_none()
            && headers.is_keep()
            && retry_schedule.is_keep()
            && auth.is_keep()
            && rate_limit.is_keep()
        {
            return Err(SubscriptionError::NothingToChange);
        }
        Ok(Self {
            trigger_url,
            content_type,
            active,
            headers,
            retry_schedule,
            auth,
            rate_limit,
        })
    }
}

/// A create request, validated.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub event: EventType,
    pub trigger_url: TriggerUrl,
    pub content_type: ContentType,
    pub secret: Option<Secret>,
    pub headers: Option<AskedHeaders>,
    pub retry_schedule: Option<RetrySchedule>,
    /// With its client secret (a create has none stored to keep).
    pub auth: Option<AskedAuth>,
    pub rate_limit: Option<RateLimit>,
}

/// The raw fields of a create request, as they came in.
#[derive(Debug, Default, Clone)]
pub struct RawSubscription<'a> {
    pub trigger_url: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub secret: Option<&'a str>,
    /// The JSON values given.
    pub headers: Option<&'a Value>,
    pub retry_schedule: Option<&'a Value>,
    pub auth: Option<&'a Value>,
    pub rate_limit: Option<&'a Value>,
}

impl NewSubscription {
    pub fn parse(
        raw: RawSubscription<'_>,
        catalogue: &Catalogue,
        policy: &UrlPolicy,
    ) -> Result<Self, SubscriptionError> {
        use SubscriptionError::*;
        let event_id = raw
            .event_id
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(Missing("event_id"))?;
        let trigger_url =
            TriggerUrl::parse(raw.trigger_url.ok_or(Missing("trigger_url"))?, policy)?;
        let event = catalogue
            .get(event_id)
            .cloned()
            .ok_or_else(|| UnknownEvent(event_id.chars().take(64).collect()))?;
        let content_type = match raw.content_type.map(str::trim).filter(|s| !s.is_empty()) {
            None => ContentType::default(),
            Some(ct) => ContentType::parse(ct).ok_or(UnknownContentType)?,
        };
        let secret = Secret::parse(raw.secret.unwrap_or_default())?;
        let headers = optional(raw.headers, AskedHeaders::parse)?;
        let retry_schedule = optional(raw.retry_schedule, RetrySchedule::parse)?;
        let auth = optional(raw.auth, |v| AskedAuth::parse(v, policy))?;
        if let Some(auth) = &auth {
            if auth.client_secret.is_none() {
                return Err(
                    ReceiverError::InvalidAuth("auth: client_secret is required".into()).into(),
                );
            }
            if headers.as_ref().is_some_and(|h| h.has("authorization")) {
                return Err(authorization_beside_auth().into());
            }
        }
        let rate_limit = optional(raw.rate_limit, RateLimit::parse)?;
        Ok(Self {
            event,
            trigger_url,
            content_type,
            secret,
            headers,
            retry_schedule,
            auth,
            rate_limit,
        })
    }
}

/// A stored subscription. The secret and the headers are held sealed (see
/// `crypto::SecretSealer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub owner: Owner,
    pub owner_name: String,
    pub owner_email: String,
    pub event_id: String,
    pub trigger_url: TriggerUrl,
    pub content_type: ContentType,
    pub sealed_secret: Option<String>,
    pub created_at: Millis,
    /// False when paused by its owner or disabled automatically: it gets no jobs from
    /// the fan-out (it is not in the indexes) and no deliveries.
    pub active: bool,
    /// Why it was disabled automatically (410, the timeout limit); `None` when active or
    /// paused by its owner.
    pub disabled_reason: Option<String>,
    /// The secret before the last rotation, which keeps signing beside the new one for a
    /// while.
    pub previous_secret: Option<PreviousSecret>,
    /// Its own headers ([`Headers::to_sealable`]), sealed for it like its secret.
    #[serde(default)]
    pub sealed_headers: Option<String>,
    /// Its own retry schedule, in place of the installation's.
    #[serde(default)]
    pub retry_schedule: Option<RetrySchedule>,
    /// Its OAuth2 client, whose access token each delivery carries.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Its own limit on deliveries per second, across every delivery instance.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// A rotated-out secret, sealed like the current one, and when it stops signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub sealed: String,
    pub until: Millis,
}

impl Subscription {
    /// Its key: owner and id.
    pub fn key(&self) -> SubscriptionRef {
        SubscriptionRef {
            id: self.id.clone(),
            owner: self.owner.clone(),
        }
    }

    /// The previous secret, while it still signs at `now`.
    pub fn previous_secret_at(&self, now: Millis) -> Option<&str> {
        self.previous_secret
            .as_ref()
            .filter(|p| p.until > now)
            .map(|p| p.sealed.as_str())
    }
}

/// What the fan-out needs of a subscription: enough to address it and to filter by owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRef {
    pub id: SubscriptionId,
    pub owner: Owner,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> UrlPolicy {
        UrlPolicy::default()
    }

    #[test]
    fn create_requests_validate_every_field() {
        let cat = Catalogue::default();
        let raw = |url, ev, ct, secret| RawSubscription {
            trigger_url: url,
            event_id: ev,
            content_type: ct,
            secret,
            ..Default::default()
        };
        let ok = NewSubscription::parse(
            raw(Some("https://a.example/h"), Some("assign_task"), None, None),
            &cat,
            &strict(),
        )
        .unwrap();
        assert_eq!(ok.content_type, ContentType::Form);
        assert!(ok.secret.is_none());
        let err = |r| NewSubscription::parse(r, &cat, &strict()).unwrap_err();
        assert_eq!(
            err(raw(None, Some("assign_task"), None, None)),
            SubscriptionError::Missing("trigger_url")
        );
        assert_eq!(
            err(raw(Some("https://a.example"), None, None, None)),
            SubscriptionError::Missing("event_id")
        );
        assert!(matches!(
            err(raw(Some("https://a.example"), Some("nope"), None, None)),
            SubscriptionError::UnknownEvent(_)
        ));
        assert_eq!(
            err(raw(
                Some("https://a.example"),
                Some("assign_task"),
                Some("text/plain"),
                None
            )),
            SubscriptionError::UnknownContentType
        );
        let big = "s".repeat(MAX_SECRET_LEN + 1);
        assert!(matches!(
            err(raw(
                Some("https://a.example"),
                Some("assign_task"),
                None,
                Some(&big)
            )),
            SubscriptionError::InvalidSecret(_)
        ));
    }

    #[test]
    fn updates_validate_every_field_and_need_one() {
        let raw = |url, ct, active| RawChanges {
            trigger_url: url,
            content_type: ct,
            active,
            ..Default::default()
        };
        let parse = |r| Changes::parse(r, &strict());
        assert_eq!(
            parse(raw(None, None, None)).unwrap_err(),
            SubscriptionError::NothingToChange
        );
        assert_eq!(
            parse(raw(None, None, Some("FALSE"))).unwrap().active,
            Some(false)
        );
        assert_eq!(
            parse(raw(None, None, Some("true"))).unwrap().active,
            Some(true)
        );
        assert_eq!(
            parse(raw(None, None, Some("maybe"))).unwrap_err(),
            SubscriptionError::InvalidActive
        );
        assert!(matches!(
            parse(raw(Some("http://10.0.0.1/x"), None, None)).unwrap_err(),
            SubscriptionError::Url(UrlError::Invalid(_))
        ));
        assert_eq!(
            parse(raw(None, Some("text/plain"), None)).unwrap_err(),
            SubscriptionError::UnknownContentType
        );
        let both = parse(raw(
            Some("https://b.example/h"),
            Some("application/json"),
            None,
        ))
        .unwrap();
        assert_eq!(both.trigger_url.unwrap().as_str(), "https://b.example/h");
        assert_eq!(both.content_type, Some(ContentType::Json));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::parse("hunter2").unwrap().unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_new_fields_are_json_only_values_that_null_removes() {
        let parse = |h: Option<&Value>, r: Option<&Value>| {
            Changes::parse(
                RawChanges {
                    headers: h,
                    retry_schedule: r,
                    ..Default::default()
                },
                &strict(),
            )
        };
        let null = Value::Null;
        let removed = parse(Some(&null), None).unwrap();
        assert_eq!(removed.headers, Edit::Remove);
        assert_eq!(removed.retry_schedule, Edit::Keep);
        let schedule = serde_json::json!([2]);
        let set = parse(None, Some(&schedule)).unwrap();
        assert_eq!(
            set.retry_schedule,
            Edit::Set(RetrySchedule::from_stored(vec![2]))
        );
        assert!(matches!(
            parse(Some(&serde_json::json!({"Host": "x"})), None).unwrap_err(),
            SubscriptionError::Receiver(ReceiverError::InvalidHeaders(_))
        ));
        let cat = Catalogue::default();
        let create = |h: Option<&Value>| {
            NewSubscription::parse(
                RawSubscription {
                    trigger_url: Some("https://a.example/h"),
                    event_id: Some("assign_task"),
                    headers: h,
                    retry_schedule: Some(&null),
                    ..Default::default()
                },
                &cat,
                &strict(),
            )
        };
        let plain = create(Some(&null)).unwrap();
        assert!(plain.headers.is_none() && plain.retry_schedule.is_none());
        assert!(
            create(Some(&serde_json::json!({"X-A": "1"})))
                .unwrap()
                .headers
                .is_some()
        );
    }
    #[test]
    fn auth_on_create_needs_its_secret_and_refuses_an_authorization_header() {
        let cat = Catalogue::default();
        let auth = serde_json::json!({
            "type": "oauth2_client_credentials", "token_url": "https://idp.example/token",
            "client_id": "id", "client_secret": "s"
        });
        let create = |auth: &Value, headers: Option<&Value>| {
            NewSubscription::parse(
                RawSubscription {
                    trigger_url: Some("https://a.example/h"),
                    event_id: Some("assign_task"),
                    headers,
                    auth: Some(auth),
                    ..Default::default()
                },
                &cat,
                &strict(),
            )
        };
        assert!(create(&auth, None).unwrap().auth.is_some());
        assert!(create(&Value::Null, None).unwrap().auth.is_none());
        let mut no_secret = auth.clone();
        no_secret.as_object_mut().unwrap().remove("client_secret");
        assert_eq!(
            create(&no_secret, None).unwrap_err().to_string(),
            "auth: client_secret is required"
        );
        let authorization = serde_json::json!({"authorization": "Basic x"});
        assert_eq!(
            create(&auth, Some(&authorization)).unwrap_err(),
            authorization_beside_auth().into()
        );
        assert!(
            create(&Value::Null, Some(&authorization)).is_ok(),
            "without auth it is allowed"
        );
        let changes = Changes::parse(
            RawChanges {
                auth: Some(&no_secret),
                ..Default::default()
            },
            &strict(),
        )
        .unwrap();
        assert!(matches!(&changes.auth, Edit::Set(a) if a.client_secret.is_none()));
        let removed = Changes::parse(
            RawChanges {
                auth: Some(&Value::Null),
                ..Default::default()
            },
            &strict(),
        )
        .unwrap();
        assert_eq!(removed.auth, Edit::Remove);
    }
}
