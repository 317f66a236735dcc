//! Subscriptions: what a user asked for, validated at the edge into types that cannot
//! hold bad values.
//!
//! A subscription's own headers, retry schedule and rate limit (SPEC section 9) are parsed
//! here from the JSON values a request gave ([`AskedHeaders::parse`],
//! [`RetrySchedule::parse`], [`RateLimit::parse`]); each refusal is a sentence that names
//! the field and the rule. So is `auth` ([`AskedAuth::parse`]), whose client secret is
//! never printed.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::{Host, Url};

use crate::model::catalogue::{Catalogue, EventType};
use crate::model::clock::Millis;
use crate::model::identity::Owner;
use crate::model::ids::SubscriptionId;
use crate::model::network::NetworkPolicy;

pub const MAX_URL_LEN: usize = 2048;
pub const MAX_SECRET_LEN: usize = 512;
/// The most headers a subscription may set.
pub const MAX_HEADERS: usize = 20;
/// The longest header name accepted (SPEC section 9 bounds values only; a name this long
/// is already more than receivers' servers take).
pub const MAX_HEADER_NAME_LEN: usize = 256;
/// The longest header value, in bytes (values are ASCII, so characters too).
pub const MAX_HEADER_VALUE_LEN: usize = 1024;
/// What answers show for a sensitive header's value; given back in a `PUT`, it keeps the
/// stored value of that name.
pub const MASKED: &str = "********";
/// The most delays a retry schedule holds.
pub const MAX_RETRY_DELAYS: usize = 20;
/// The longest delay of a retry schedule, in seconds (a day).
pub const MAX_RETRY_DELAY_SECS: u32 = 86_400;
/// The highest rate limit, in deliveries per second.
pub const MAX_RATE_LIMIT: u32 = 1_000;

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
        Self::parse_field(raw, policy, "trigger_url")
    }

    /// The same rules for another field's URL (`auth`'s `token_url`), named in the refusals.
    pub fn parse_field(
        raw: &str,
        policy: &UrlPolicy,
        field: &'static str,
    ) -> Result<Self, SubscriptionError> {
        use SubscriptionError::*;
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Missing(field));
        }
        if raw.len() > MAX_URL_LEN {
            return Err(InvalidUrl(format!(
                "{field} must be at most {MAX_URL_LEN} characters"
            )));
        }
        let scheme_rule = if policy.allow_http {
            format!("{field} must be an absolute http or https URL")
        } else {
            format!("{field} must be an absolute https URL")
        };
        let url = Url::parse(raw).map_err(|_| InvalidUrl(scheme_rule.clone()))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            _ => return Err(InvalidUrl(scheme_rule)),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidUrl(format!(
                "{field} must not carry a user name or password"
            )));
        }
        let literal: Option<IpAddr> = match url.host() {
            None => return Err(InvalidUrl(scheme_rule)),
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
                    "{field} must not point at {}",
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
    #[error("{0}")]
    InvalidHeaders(String),
    #[error("{0}")]
    InvalidRetrySchedule(String),
    #[error("{0}")]
    InvalidAuth(String),
    #[error(
        "rate_limit must be a whole number of deliveries per second from 1 to {MAX_RATE_LIMIT}"
    )]
    InvalidRateLimit,
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

/// Header names a subscription may not set, lowercase: the ones HTTP itself manages
/// (framing, hop-by-hop) and the ones the platform sets on every delivery (SPEC sections 4
/// and 9). `Authorization` joins them once a subscription has `auth`.
const REFUSED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "x-accelo-event",
];

/// Prefixes of refused header names, lowercase: `Proxy-*`, and the platform's `X-Hub-*`
/// signatures and `webhook-*` headers.
const REFUSED_HEADER_PREFIXES: &[&str] = &["proxy-", "x-hub-", "webhook-"];

/// Header names whose values answers mask, lowercase; so is any name containing
/// [`SENSITIVE_HEADER_WORDS`].
const SENSITIVE_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];
const SENSITIVE_HEADER_WORDS: &[&str] = &["token", "key", "secret"];

/// Whether `name` is an HTTP token (RFC 9110 section 5.6.2): letters, digits and
/// ``!#$%&'*+-.^_`|~``.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether answers show this header's value as [`MASKED`].
pub fn is_sensitive_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_HEADERS.contains(&lower.as_str())
        || SENSITIVE_HEADER_WORDS.iter().any(|w| lower.contains(w))
}

/// Why a header name is refused, when it is. `Authorization` is not here: SPEC section 9
/// refuses it only when the subscription has `auth` (whose token it would collide with),
/// a rule checked where both fields are known ([`NewSubscription::parse`], and
/// `Subscriptions::update` for the stored ones): [`authorization_beside_auth`].
fn refused_header(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("x-hub-") || lower.starts_with("webhook-") || lower == "x-accelo-event" {
        Some("the platform sets it on every delivery")
    } else if REFUSED_HEADERS.contains(&lower.as_str())
        || REFUSED_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        Some("HTTP itself manages it")
    } else {
        None
    }
}

/// `headers` as a request gave them, checked against every rule of SPEC section 9. A
/// value of exactly [`MASKED`] asks to keep the stored value of that name; it is settled
/// by [`AskedHeaders::resolve`] against what is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct AskedHeaders(Vec<(String, Option<String>)>);

impl AskedHeaders {
    /// Reads the `headers` field of a JSON body: an object of at most [`MAX_HEADERS`]
    /// header names (HTTP tokens, none refused, none twice without regard to case) and
    /// string values (printable ASCII, at most [`MAX_HEADER_VALUE_LEN`] bytes).
    ///
    /// `Authorization` is allowed here: SPEC section 9 refuses it only beside `auth`
    /// ([`authorization_beside_auth`]).
    pub fn parse(value: &Value) -> Result<Self, SubscriptionError> {
        let bad = |s: String| SubscriptionError::InvalidHeaders(s);
        let Value::Object(map) = value else {
            return Err(bad(
                "headers must be an object of header names and string values".into(),
            ));
        };
        if map.len() > MAX_HEADERS {
            return Err(bad(format!(
                "headers may hold at most {MAX_HEADERS} headers"
            )));
        }
        let mut seen: Vec<(String, &str)> = Vec::with_capacity(map.len());
        let mut asked = Vec::with_capacity(map.len());
        for (name, value) in map {
            let shown: String = name.chars().take(64).collect();
            if name.len() > MAX_HEADER_NAME_LEN {
                return Err(bad(format!(
                    "headers: a header name must be at most {MAX_HEADER_NAME_LEN} characters"
                )));
            }
            if !is_token(name) {
                return Err(bad(format!(
                    "headers: `{shown}` is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)"
                )));
            }
            if let Some(why) = refused_header(name) {
                return Err(bad(format!("headers: `{name}` cannot be set: {why}")));
            }
            let lower = name.to_ascii_lowercase();
            if let Some((_, first)) = seen.iter().find(|(l, _)| *l == lower) {
                return Err(bad(format!(
                    "headers: `{first}` and `{name}` are the same header (names are compared without case)"
                )));
            }
            seen.push((lower, name));
            let Value::String(text) = value else {
                return Err(bad(format!(
                    "headers: the value of `{name}` must be a string"
                )));
            };
            if text.len() > MAX_HEADER_VALUE_LEN {
                return Err(bad(format!(
                    "headers: the value of `{name}` must be at most {MAX_HEADER_VALUE_LEN} bytes"
                )));
            }
            if !text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
                return Err(bad(format!(
                    "headers: the value of `{name}` must be printable ASCII (space to ~, no control characters)"
                )));
            }
            asked.push((name.clone(), (text != MASKED).then(|| text.clone())));
        }
        Ok(Self(asked))
    }

    /// The headers to store: each value as given, or, for [`MASKED`], the stored value of
    /// the same name (compared without case). A masked value with nothing stored under
    /// its name is refused: there is no value to keep.
    pub fn resolve(self, stored: Option<&Headers>) -> Result<Headers, SubscriptionError> {
        self.0
            .into_iter()
            .map(|(name, value)| match value {
                Some(value) => Ok((name, value)),
                None => match stored.and_then(|s| s.get(&name)) {
                    Some(kept) => Ok((name, kept.to_owned())),
                    None => Err(SubscriptionError::InvalidHeaders(format!(
                        "headers: `{name}` is \"{MASKED}\", which keeps a stored value, and it has none; send its value"
                    ))),
                },
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Headers)
    }
}

impl AskedHeaders {
    /// Whether a name is among them, compared without case.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

impl fmt::Debug for AskedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// A subscription's own headers, valid (see [`AskedHeaders::parse`]), in name order.
/// Stored sealed like a secret (one sealed value for the whole map: [`Headers::to_sealable`]);
/// never printed with their values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Names and values, as given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The names, as given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of a name, compared without case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What answers show: every name, and the value, or [`MASKED`] for a sensitive one
    /// ([`is_sensitive_header`]).
    pub fn shown(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
            .map(|(n, v)| (n, if is_sensitive_header(n) { MASKED } else { v }))
    }

    /// The text that is sealed (JSON: an array of name and value pairs).
    pub fn to_sealable(&self) -> String {
        serde_json::to_string(self).expect("pairs of strings serialize")
    }

    /// From an opened sealed value.
    pub fn from_opened(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// A subscription's own retry schedule: 1 to [`MAX_RETRY_DELAYS`] delays in whole
/// seconds, each 1 to [`MAX_RETRY_DELAY_SECS`]; delay *n* follows failed attempt *n*
/// (see `policy::retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RetrySchedule(Vec<u32>);

impl RetrySchedule {
    /// Reads the `retry_schedule` field of a JSON body: a list of 1 to 20 numbers of
    /// seconds, each from 1 to 86,400. A fraction is rounded up to whole seconds, as SQS
    /// delays are whole seconds: `1.5` is stored as 2 (nothing below 1 is accepted, so no
    /// delay becomes 0).
    pub fn parse(value: &Value) -> Result<Self, SubscriptionError> {
        let bad = |s: String| SubscriptionError::InvalidRetrySchedule(s);
        let Value::Array(items) = value else {
            return Err(bad(
                "retry_schedule must be a list of delays in seconds, such as [5, 60, 600]".into(),
            ));
        };
        if items.is_empty() || items.len() > MAX_RETRY_DELAYS {
            return Err(bad(format!(
                "retry_schedule must hold 1 to {MAX_RETRY_DELAYS} delays"
            )));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let secs = item.as_f64().ok_or_else(|| {
                    bad(format!(
                        "retry_schedule: delay {} must be a number of seconds",
                        i + 1
                    ))
                })?;
                if !(1.0..=f64::from(MAX_RETRY_DELAY_SECS)).contains(&secs) {
                    return Err(bad(format!(
                        "retry_schedule: delay {} must be from 1 to {MAX_RETRY_DELAY_SECS} seconds",
                        i + 1
                    )));
                }
                Ok(secs.ceil() as u32)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// For values read back from the store, which were validated when written.
    pub fn from_stored(delays: Vec<u32>) -> Self {
        Self(delays)
    }

    /// The delays, in seconds.
    pub fn delays(&self) -> &[u32] {
        &self.0
    }

    /// The delay after attempt number `failed` (from 1) failed, or `None` after the last.
    pub fn after(&self, failed: u32) -> Option<std::time::Duration> {
        let secs = *self.0.get(failed.checked_sub(1)? as usize)?;
        Some(std::time::Duration::from_secs(secs.into()))
    }
}

/// The one `auth` type (SPEC section 9).
pub const OAUTH2_CLIENT_CREDENTIALS: &str = "oauth2_client_credentials";
/// The longest `client_id`, `client_secret`, `scope` or `audience` accepted.
pub const MAX_AUTH_VALUE_LEN: usize = 1024;

/// The refusal of an `Authorization` header beside `auth`, whose token it would replace.
pub fn authorization_beside_auth() -> SubscriptionError {
    SubscriptionError::InvalidHeaders(
        "headers: `Authorization` cannot be set with auth: the platform sends the access token in it".into(),
    )
}

/// What a subscription's `auth` shows and the token request needs, beside the client
/// secret: answers show these fields as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub token_url: TriggerUrl,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// A stored `auth`: the client, and its secret sealed for the subscription and purpose
/// (`crypto::SecretSealer::seal_client_secret`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    pub client: OAuthClient,
    pub sealed_client_secret: String,
}

/// An OAuth2 client secret as given. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// `auth` as a request gave it: the client, and its secret, which a `PUT` may leave out
/// to keep the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedAuth {
    pub client: OAuthClient,
    pub client_secret: Option<ClientSecret>,
}

impl AskedAuth {
    /// Reads the `auth` field of a JSON body: an object with `type`
    /// (`oauth2_client_credentials`), `token_url` (the rules of `trigger_url`),
    /// `client_id` and `client_secret` (non-empty strings), and optional `scope` and
    /// `audience` (strings; `null` is absent), each of at most [`MAX_AUTH_VALUE_LEN`]
    /// bytes with no control characters; no other field.
    pub fn parse(value: &Value, policy: &UrlPolicy) -> Result<Self, SubscriptionError> {
        let bad = |s: String| SubscriptionError::InvalidAuth(s);
        let Value::Object(map) = value else {
            return Err(bad(format!(
                "auth must be an object with type \"{OAUTH2_CLIENT_CREDENTIALS}\", token_url, client_id and client_secret"
            )));
        };
        if let Some(unknown) = map.keys().find(|k| {
            ![
                "type",
                "token_url",
                "client_id",
                "client_secret",
                "scope",
                "audience",
            ]
            .contains(&k.as_str())
        }) {
            let shown: String = unknown.chars().take(64).collect();
            return Err(bad(format!("auth: unknown field `{shown}`")));
        }
        match map.get("type") {
            Some(Value::String(t)) if t == OAUTH2_CLIENT_CREDENTIALS => {}
            _ => {
                return Err(bad(format!(
                    "auth: type must be \"{OAUTH2_CLIENT_CREDENTIALS}\""
                )));
            }
        }
        let text = |name: &str, required: bool| -> Result<Option<String>, SubscriptionError> {
            let value = match map.get(name) {
                None | Some(Value::Null) if required => {
                    return Err(bad(format!("auth: {name} is required")));
                }
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(v)) => v,
                Some(_) => return Err(bad(format!("auth: {name} must be a string"))),
            };
            if value.is_empty() {
                return Err(bad(format!("auth: {name} must not be empty")));
            }
            if value.len() > MAX_AUTH_VALUE_LEN {
                return Err(bad(format!(
                    "auth: {name} must be at most {MAX_AUTH_VALUE_LEN} bytes"
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(bad(format!(
                    "auth: {name} must not contain control characters"
                )));
            }
            Ok(Some(value.clone()))
        };
        let token_url = match map.get("token_url") {
            Some(Value::String(url)) => TriggerUrl::parse_field(url, policy, "auth: token_url")
                .map_err(|e| bad(e.to_string()))?,
            None | Some(Value::Null) => return Err(bad("auth: token_url is required".into())),
            Some(_) => return Err(bad("auth: token_url must be a string".into())),
        };
        let client_id = text("client_id", true)?.unwrap_or_default();
        let client_secret = text("client_secret", false)?.map(ClientSecret);
        Ok(Self {
            client: OAuthClient {
                token_url,
                client_id,
                scope: text("scope", false)?,
                audience: text("audience", false)?,
            },
            client_secret,
        })
    }
}

/// A subscription's rate limit: at most this many of its deliveries start within one
/// second of the platform's clock (see `policy::rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateLimit(u32);

impl RateLimit {
    /// Reads the `rate_limit` field of a JSON body: a whole number from 1 to 1,000 (`5.0`
    /// is 5; `5.5`, a string or a bool are refused).
    pub fn parse(value: &Value) -> Result<Self, SubscriptionError> {
        value
            .as_u64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .filter(|n| (1..=u64::from(MAX_RATE_LIMIT)).contains(n))
            .map(|n| Self(n as u32))
            .ok_or(SubscriptionError::InvalidRateLimit)
    }

    /// For values read back from the store, which were validated when written.
    pub fn from_stored(per_second: u32) -> Self {
        Self(per_second)
    }

    /// Deliveries per second.
    pub fn per_second(self) -> u32 {
        self.0
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
fn edit<T>(
    given: Option<&Value>,
    parse: impl FnOnce(&Value) -> Result<T, SubscriptionError>,
) -> Result<Edit<T>, SubscriptionError> {
    Ok(match given {
        None => Edit::Keep,
        Some(Value::Null) => Edit::Remove,
        Some(value) => Edit::Set(parse(value)?),
    })
}

/// An optional JSON field of a create request: `null` is the same as absent.
fn optional<T>(
    given: Option<&Value>,
    parse: impl FnOnce(&Value) -> Result<T, SubscriptionError>,
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
                return Err(InvalidAuth("auth: client_secret is required".into()));
            }
            if headers.as_ref().is_some_and(|h| h.has("authorization")) {
                return Err(authorization_beside_auth());
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

    fn headers(value: Value) -> Result<Headers, SubscriptionError> {
        AskedHeaders::parse(&value)?.resolve(None)
    }

    fn headers_refused(value: Value) -> String {
        match headers(value) {
            Err(SubscriptionError::InvalidHeaders(sentence)) => sentence,
            other => panic!("not refused as headers: {other:?}"),
        }
    }

    #[test]
    fn headers_follow_every_rule_and_each_refusal_says_which() {
        let ok = headers(serde_json::json!({
            "X-Api-Key": "k1", "User-Agent": "receiver-gateway/2", "Authorization": "Basic dTpw",
            "x-empty": "", "A!#$%&'*+-.^_`|~9": " spaced ~ value "
        }))
        .unwrap();
        assert_eq!(
            ok.get("x-api-key"),
            Some("k1"),
            "names compare without case"
        );
        assert_eq!(ok.names().count(), 5);
        let cases: Vec<(Value, &str)> = vec![
            (serde_json::json!(["X-A", "1"]), "headers must be an object"),
            (serde_json::json!("X-A: 1"), "headers must be an object"),
            (
                Value::Object(
                    (0..21)
                        .map(|i| (format!("X-H{i}"), Value::from("v")))
                        .collect(),
                ),
                "at most 20 headers",
            ),
            (
                serde_json::json!({"X A": "1"}),
                "`X A` is not a header name",
            ),
            (serde_json::json!({"": "1"}), "is not a header name"),
            (serde_json::json!({"X-Ä": "1"}), "is not a header name"),
            (serde_json::json!({"X:A": "1"}), "is not a header name"),
            (
                serde_json::json!({"X".repeat(MAX_HEADER_NAME_LEN + 1): "1"}),
                "at most 256 characters",
            ),
            (
                serde_json::json!({"X-A": 1}),
                "the value of `X-A` must be a string",
            ),
            (serde_json::json!({"X-A": null}), "must be a string"),
            (serde_json::json!({"X-A": ["1"]}), "must be a string"),
            (
                serde_json::json!({"X-A": "a".repeat(MAX_HEADER_VALUE_LEN + 1)}),
                "at most 1024 bytes",
            ),
            (
                serde_json::json!({"X-A": "line\r\nX-B: 2"}),
                "printable ASCII",
            ),
            (serde_json::json!({"X-A": "tab\t"}), "printable ASCII"),
            (serde_json::json!({"X-A": "caf\u{e9}"}), "printable ASCII"),
            (serde_json::json!({"X-A": "\u{7f}"}), "printable ASCII"),
            (
                serde_json::json!({"X-Api-Key": "1", "x-api-key": "2"}),
                "are the same header (names are compared without case)",
            ),
        ];
        for (value, expected) in cases {
            let sentence = headers_refused(value.clone());
            assert!(sentence.starts_with("headers"), "{sentence}");
            assert!(sentence.contains(expected), "{value}: {sentence}");
        }
        assert!(headers(serde_json::json!({"X-A": "a".repeat(MAX_HEADER_VALUE_LEN)})).is_ok());
        let mut twenty = serde_json::Map::new();
        for i in 0..20 {
            twenty.insert(format!("X-H{i}"), Value::from("v"));
        }
        assert!(headers(Value::Object(twenty)).is_ok());
    }

    #[test]
    fn reserved_hop_by_hop_and_platform_header_names_are_refused_in_any_case() {
        for name in [
            "Host",
            "content-length",
            "Content-Type",
            "Transfer-Encoding",
            "CONNECTION",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Upgrade",
            "Expect",
            "Proxy-Authorization",
            "proxy-connection",
            "X-Accelo-Event",
            "X-Hub-Signature",
            "x-hub-signature-256",
            "X-Hub-Anything",
            "webhook-id",
            "Webhook-Signature",
            "webhook-timestamp",
        ] {
            let sentence = headers_refused(serde_json::json!({ name: "v" }));
            assert!(
                sentence.starts_with(&format!("headers: `{name}` cannot be set: ")),
                "{sentence}"
            );
        }
        // Near misses pass: only the exact names and the prefixes are refused.
        assert!(headers(serde_json::json!({"X-Hub": "1", "Webhook": "1", "Proxy": "1", "Tea": "1", "X-Host": "1"})).is_ok());
    }

    #[test]
    fn sensitive_values_are_masked_in_what_answers_show() {
        let h = headers(serde_json::json!({
            "Authorization": "Basic dTpw", "Cookie": "c=1",
            "X-Api-Key": "k", "X-Auth-Token": "t", "X-Client-SECRET": "s", "Monkey": "m",
            "X-Plain": "shown", "User-Agent": "ua"
        }))
        .unwrap();
        let shown: std::collections::BTreeMap<&str, &str> = h.shown().collect();
        for masked in [
            "Authorization",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "X-Client-SECRET",
            "Monkey",
        ] {
            assert_eq!(shown[masked], MASKED, "{masked}");
        }
        assert_eq!(shown["X-Plain"], "shown");
        assert_eq!(shown["User-Agent"], "ua");
        assert_eq!(shown.len(), 8, "every name is shown");
        assert!(is_sensitive_header("proxy-authorization"));
        let printed = format!(
            "{h:?} {:?}",
            AskedHeaders::parse(&serde_json::json!({"X-Plain": "shown"})).unwrap()
        );
        assert!(
            !printed.contains("shown\"") && !printed.contains("Basic"),
            "{printed}"
        );
        // Sealable and back.
        assert_eq!(Headers::from_opened(&h.to_sealable()).unwrap(), h);
    }

    #[test]
    fn a_masked_value_keeps_the_stored_one_and_needs_one_to_keep() {
        let stored = headers(serde_json::json!({"X-Api-Key": "k1", "X-Plain": "p"})).unwrap();
        let asked = AskedHeaders::parse(&serde_json::json!({
            "x-api-key": MASKED, "X-New": "n"
        }))
        .unwrap();
        let kept = asked.resolve(Some(&stored)).unwrap();
        assert_eq!(
            kept.iter().collect::<Vec<_>>(),
            vec![("X-New", "n"), ("x-api-key", "k1")],
            "the whole map is replaced; the masked name keeps its value, spelled as now given"
        );
        let nothing_to_keep = AskedHeaders::parse(&serde_json::json!({"X-Other": MASKED})).unwrap();
        let e = nothing_to_keep.clone().resolve(Some(&stored)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "headers: `X-Other` is \"********\", which keeps a stored value, and it has none; send its value"
        );
        assert!(nothing_to_keep.resolve(None).is_err(), "on create too");
    }

    #[test]
    fn rate_limits_are_whole_numbers_from_1_to_1000() {
        let parse = |v: Value| RateLimit::parse(&v).map(RateLimit::per_second);
        assert_eq!(parse(serde_json::json!(1)), Ok(1));
        assert_eq!(parse(serde_json::json!(1000)), Ok(1000));
        assert_eq!(parse(serde_json::json!(5.0)), Ok(5));
        for bad in [
            serde_json::json!(0),
            serde_json::json!(1001),
            serde_json::json!(-1),
            serde_json::json!(2.5),
            serde_json::json!("5"),
            serde_json::json!(true),
            serde_json::json!([5]),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert_eq!(
                e.to_string(),
                "rate_limit must be a whole number of deliveries per second from 1 to 1000",
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_schedules_hold_1_to_20_delays_of_1_s_to_a_day_rounded_up() {
        let parse = |v: Value| RetrySchedule::parse(&v);
        assert_eq!(parse(serde_json::json!([1, 3])).unwrap().delays(), &[1, 3]);
        assert_eq!(
            parse(serde_json::json!([1.5, 2.01, 86400, 1e2]))
                .unwrap()
                .delays(),
            &[2, 3, 86400, 100],
            "fractions round up to whole seconds"
        );
        assert!(parse(Value::Array(vec![Value::from(5); 20])).is_ok());
        let refused = |v: Value| match parse(v) {
            Err(SubscriptionError::InvalidRetrySchedule(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(serde_json::json!([])),
            "retry_schedule must hold 1 to 20 delays"
        );
        assert_eq!(
            refused(Value::Array(vec![Value::from(5); 21])),
            "retry_schedule must hold 1 to 20 delays"
        );
        assert!(refused(serde_json::json!(5)).starts_with("retry_schedule must be a list"));
        assert!(refused(serde_json::json!({"a": 1})).starts_with("retry_schedule must be a list"));
        assert_eq!(
            refused(serde_json::json!([5, "10"])),
            "retry_schedule: delay 2 must be a number of seconds"
        );
        for out_of_range in [
            serde_json::json!([0]),
            serde_json::json!([0.9]),
            serde_json::json!([-5]),
            serde_json::json!([86400.5]),
            serde_json::json!([1e10]),
        ] {
            assert_eq!(
                refused(out_of_range),
                "retry_schedule: delay 1 must be from 1 to 86400 seconds"
            );
        }
        let s = parse(serde_json::json!([1, 3])).unwrap();
        assert_eq!(s.after(0), None);
        assert_eq!(s.after(1), Some(std::time::Duration::from_secs(1)));
        assert_eq!(s.after(2), Some(std::time::Duration::from_secs(3)));
        assert_eq!(s.after(3), None, "after the last delay's attempt, nothing");
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
            SubscriptionError::InvalidHeaders(_)
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
    fn auth_refused(value: Value) -> String {
        match AskedAuth::parse(&value, &strict()) {
            Err(SubscriptionError::InvalidAuth(sentence)) => sentence,
            other => panic!("not refused as auth: {other:?}"),
        }
    }

    #[test]
    fn auth_follows_every_rule_and_each_refusal_says_which() {
        let ok = AskedAuth::parse(
            &serde_json::json!({
                "type": "oauth2_client_credentials", "token_url": "https://idp.example/token",
                "client_id": "id", "client_secret": "s: 100%", "scope": "a b", "audience": null
            }),
            &strict(),
        )
        .unwrap();
        assert_eq!(ok.client.token_url.as_str(), "https://idp.example/token");
        assert_eq!(ok.client.scope.as_deref(), Some("a b"));
        assert_eq!(ok.client.audience, None);
        assert_eq!(ok.client_secret.as_ref().unwrap().expose(), "s: 100%");
        assert!(
            !format!("{ok:?}").contains("100%"),
            "the secret never prints"
        );
        let without_secret = AskedAuth::parse(
            &serde_json::json!({"type": "oauth2_client_credentials", "token_url": "https://idp.example/t", "client_id": "id"}),
            &strict(),
        )
        .unwrap();
        assert!(
            without_secret.client_secret.is_none(),
            "a PUT may keep the stored one"
        );
        let base = serde_json::json!({
            "type": "oauth2_client_credentials", "token_url": "https://idp.example/token",
            "client_id": "id", "client_secret": "s"
        });
        let with = |key: &str, value: Value| {
            let mut v = base.clone();
            v[key] = value;
            v
        };
        let without = |key: &str| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(key);
            v
        };
        let cases: Vec<(Value, &str)> = vec![
            (serde_json::json!("token"), "auth must be an object"),
            (serde_json::json!([1]), "auth must be an object"),
            (with("extra", Value::from(1)), "auth: unknown field `extra`"),
            (
                without("type"),
                "auth: type must be \"oauth2_client_credentials\"",
            ),
            (with("type", Value::from("basic")), "auth: type must be"),
            (without("token_url"), "auth: token_url is required"),
            (
                with("token_url", Value::from(5)),
                "auth: token_url must be a string",
            ),
            (
                with("token_url", Value::from("http://idp.example/t")),
                "auth: token_url must be an absolute https URL",
            ),
            (
                with("token_url", Value::from("https://10.0.0.1/t")),
                "auth: token_url must not point at",
            ),
            (
                with("token_url", Value::from("https://u:p@idp.example/t")),
                "auth: token_url must not carry a user name",
            ),
            (without("client_id"), "auth: client_id is required"),
            (
                with("client_id", Value::Null),
                "auth: client_id is required",
            ),
            (
                with("client_id", Value::from("")),
                "auth: client_id must not be empty",
            ),
            (
                with("client_id", Value::from(1)),
                "auth: client_id must be a string",
            ),
            (
                with("client_secret", Value::from("")),
                "auth: client_secret must not be empty",
            ),
            (
                with("client_secret", Value::from("a\nb")),
                "auth: client_secret must not contain control characters",
            ),
            (
                with("scope", Value::from("s".repeat(MAX_AUTH_VALUE_LEN + 1))),
                "auth: scope must be at most 1024 bytes",
            ),
            (
                with("audience", serde_json::json!(["a"])),
                "auth: audience must be a string",
            ),
        ];
        for (value, expected) in cases {
            let sentence = auth_refused(value.clone());
            assert!(sentence.contains(expected), "{value}: {sentence}");
        }
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
            authorization_beside_auth()
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
