//! A subscription's receiver settings (SPEC section 9): its own headers, retry schedule,
//! OAuth2 client (`auth`) and rate limit, parsed here from the JSON values a request gave
//! ([`AskedHeaders::parse`], [`RetrySchedule::parse`], [`AskedAuth::parse`],
//! [`RateLimit::parse`]). Each refusal is a sentence that names the field and the rule;
//! header values and the client secret are never printed.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::url::{TriggerUrl, UrlPolicy};

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

/// Why a receiver setting was refused: a sentence naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiverError {
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
    pub fn parse(value: &Value) -> Result<Self, ReceiverError> {
        let bad = |s: String| ReceiverError::InvalidHeaders(s);
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
    pub fn resolve(self, stored: Option<&Headers>) -> Result<Headers, ReceiverError> {
        self.0
            .into_iter()
            .map(|(name, value)| match value {
                Some(value) => Ok((name, value)),
                None => match stored.and_then(|s| s.get(&name)) {
                    Some(kept) => Ok((name, kept.to_owned())),
                    None => Err(ReceiverError::InvalidHeaders(format!(
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
    pub fn parse(value: &Value) -> Result<Self, ReceiverError> {
        let bad = |s: String| ReceiverError::InvalidRetrySchedule(s);
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
pub fn authorization_beside_auth() -> ReceiverError {
    ReceiverError::InvalidHeaders(
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
    pub fn parse(value: &Value, policy: &UrlPolicy) -> Result<Self, ReceiverError> {
        let bad = |s: String| ReceiverError::InvalidAuth(s);
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
        let text = |name: &str, required: bool| -> Result<Option<String>, ReceiverError> {
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
    pub fn parse(value: &Value) -> Result<Self, ReceiverError> {
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
            .ok_or(ReceiverError::InvalidRateLimit)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> UrlPolicy {
        UrlPolicy::default()
    }

    fn headers(value: Value) -> Result<Headers, ReceiverError> {
        AskedHeaders::parse(&value)?.resolve(None)
    }

    fn headers_refused(value: Value) -> String {
        match headers(value) {
            Err(ReceiverError::InvalidHeaders(sentence)) => sentence,
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
            Err(ReceiverError::InvalidRetrySchedule(s)) => s,
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

    fn auth_refused(value: Value) -> String {
        match AskedAuth::parse(&value, &strict()) {
            Err(ReceiverError::InvalidAuth(sentence)) => sentence,
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
}
