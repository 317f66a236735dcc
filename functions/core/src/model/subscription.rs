//! Subscriptions: what a user asked for, validated at the edge into types that cannot
//! hold bad values.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::model::catalogue::{Catalogue, EventType};
use crate::model::clock::Millis;
use crate::model::identity::Owner;
use crate::model::ids::SubscriptionId;
use crate::model::network::NetworkPolicy;

pub const MAX_URL_LEN: usize = 2048;
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

/// The rule for trigger URLs, set per installation.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// Accept `http://` as well as `https://`.
    pub allow_http: bool,
    pub network: NetworkPolicy,
}

/// An absolute http(s) URL that passed the installation's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TriggerUrl(String);

impl TriggerUrl {
    pub fn parse(raw: &str, policy: &UrlPolicy) -> Result<Self, SubscriptionError> {
        use SubscriptionError::*;
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Missing("trigger_url"));
        }
        if raw.len() > MAX_URL_LEN {
            return Err(InvalidUrl(format!(
                "trigger_url must be at most {MAX_URL_LEN} characters"
            )));
        }
        let scheme_rule = if policy.allow_http {
            "trigger_url must be an absolute http or https URL"
        } else {
            "trigger_url must be an absolute https URL"
        };
        let url = Url::parse(raw).map_err(|_| InvalidUrl(scheme_rule.to_owned()))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            _ => return Err(InvalidUrl(scheme_rule.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidUrl(
                "trigger_url must not carry a user name or password".to_owned(),
            ));
        }
        let literal: Option<IpAddr> = match url.host() {
            None => return Err(InvalidUrl(scheme_rule.to_owned())),
            Some(Host::Ipv4(v4)) => Some(v4.into()),
            Some(Host::Ipv6(v6)) => Some(v6.into()),
            Some(Host::Domain(d))
                if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
            {
                Some(IpAddr::from([127, 0, 0, 1]))
            }
            Some(Host::Domain(_)) => None,
        };
        if let Some(ip) = literal {
            policy.network.check(ip).map_err(|refused| {
                InvalidUrl(format!(
                    "trigger_url must not point at {}",
                    refused.class.describe()
                ))
            })?;
        }
        Ok(Self(url.into()))
    }

    /// For values read back from the store, which were validated when written.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    #[error("{0}")]
    InvalidUrl(String),
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
    #[error("nothing to change: send trigger_url, content_type or active")]
    NothingToChange,
}

/// An update request, validated: at least one field, each checked as on create.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub trigger_url: Option<TriggerUrl>,
    pub content_type: Option<ContentType>,
    pub active: Option<bool>,
}

/// The raw fields of an update request, as they came in.
#[derive(Debug, Default, Clone)]
pub struct RawChanges<'a> {
    pub trigger_url: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// `true` or `false` (a JSON bool, or the word in a form).
    pub active: Option<&'a str>,
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
        if trigger_url.is_none() && content_type.is_none() && active.is_none() {
            return Err(SubscriptionError::NothingToChange);
        }
        Ok(Self {
            trigger_url,
            content_type,
            active,
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
}

/// The raw fields of a create request, as they came in.
#[derive(Debug, Default, Clone)]
pub struct RawSubscription<'a> {
    pub trigger_url: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub secret: Option<&'a str>,
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
        Ok(Self {
            event,
            trigger_url,
            content_type,
            secret,
        })
    }
}

/// A stored subscription. The secret is held sealed (see `crypto::SecretSealer`).
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
    use crate::model::network::IpRange;

    fn strict() -> UrlPolicy {
        UrlPolicy::default()
    }

    #[test]
    fn https_urls_pass_and_others_explain_why_not() {
        assert!(TriggerUrl::parse("https://example.com/hook", &strict()).is_ok());
        let err = TriggerUrl::parse("http://example.com/hook", &strict()).unwrap_err();
        assert_eq!(err.to_string(), "trigger_url must be an absolute https URL");
        assert!(TriggerUrl::parse("/relative", &strict()).is_err());
        assert!(TriggerUrl::parse("ftp://example.com", &strict()).is_err());
        assert!(TriggerUrl::parse("https://user:pw@example.com", &strict()).is_err());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(
            TriggerUrl::parse(&long, &strict())
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
    }

    #[test]
    fn literal_private_targets_are_refused_unless_allowed() {
        for url in [
            "https://127.0.0.1/x",
            "https://10.0.0.5/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:192.168.0.1]/x",
            "https://localhost/x",
        ] {
            let err = TriggerUrl::parse(url, &strict()).unwrap_err();
            assert!(
                err.to_string().starts_with("trigger_url must not point at"),
                "{url}: {err}"
            );
        }
        let local = UrlPolicy {
            allow_http: true,
            network: NetworkPolicy::allowing(IpRange::loopback()),
        };
        assert!(TriggerUrl::parse("http://127.0.0.1:9000/hook", &local).is_ok());
        assert!(TriggerUrl::parse("http://10.0.0.1/hook", &local).is_err());
    }

    #[test]
    fn create_requests_validate_every_field() {
        let cat = Catalogue::default();
        let raw = |url, ev, ct, secret| RawSubscription {
            trigger_url: url,
            event_id: ev,
            content_type: ct,
            secret,
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
            SubscriptionError::InvalidUrl(_)
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
}
