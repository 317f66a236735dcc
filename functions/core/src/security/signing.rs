//! What a receiver gets: the body in the subscription's content type, the headers of SPEC
//! section 4 (Accelo's, GitHub's and Standard Webhooks' signatures), and the
//! subscription's own headers (SPEC section 9), a `User-Agent` among them replacing the
//! platform's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::HeaderName;
use http::header::{CONTENT_TYPE, USER_AGENT};

use crate::model::subscription::ContentType;
use crate::security::crypto::HmacKey;

/// What a body's `id` is: a product object's number, or (operational events) the id of
/// the subscription the event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum BodyId<'a> {
    Object(u64),
    Subscription(&'a str),
}

impl<'a> BodyId<'a> {
    /// The id of a job: its subject when it has one, else its object.
    pub fn of(object_id: u64, subject: Option<&'a str>) -> Self {
        subject.map_or(Self::Object(object_id), Self::Subscription)
    }
}

/// The body of a delivery: `id` and, except for delete events, `resource_url`.
pub fn body(content_type: ContentType, id: BodyId<'_>, resource_url: Option<&str>) -> Vec<u8> {
    match content_type {
        ContentType::Form => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            match id {
                BodyId::Object(n) => form.append_pair("id", &n.to_string()),
                BodyId::Subscription(s) => form.append_pair("id", s),
            };
            if let Some(url) = resource_url {
                form.append_pair("resource_url", url);
            }
            form.finish().into_bytes()
        }
        ContentType::Json => {
            serde_json::to_vec(&JsonBody { id, resource_url }).expect("a JSON object serializes")
        }
    }
}

/// The JSON body, written straight from its fields.
#[derive(serde::Serialize)]
struct JsonBody<'a> {
    id: BodyId<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_url: Option<&'a str>,
}

/// A secret ready to sign with, set up as HMAC keys once, so that the deliveries of one
/// subscription in a batch share the setup. Two keys, as SPEC section 4 says:
/// `webhook-signature` is keyed by [`key_bytes`] (for a `whsec_` secret, the bytes its
/// base64 encodes, which the Standard Webhooks libraries decode), and the `X-Hub-*`
/// signatures by the secret exactly as the owner set it or was shown it, `whsec_` and
/// all, so that GitHub-style libraries, which take the secret as a string, verify them.
#[derive(Debug)]
pub struct SigningKey {
    standard: HmacKey,
    hub: HmacKey,
}

impl SigningKey {
    pub fn new(secret: &str) -> Self {
        Self {
            standard: HmacKey::new(&key_bytes(secret)),
            hub: HmacKey::new(secret.as_bytes()),
        }
    }
}

/// The event's type (Accelo's header).
pub const X_ACCELO_EVENT: HeaderName = HeaderName::from_static("x-accelo-event");
/// The delivery id (Standard Webhooks).
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// Seconds since the epoch when the attempt was signed (Standard Webhooks).
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// `v1,` signatures of `id.timestamp.body` (Standard Webhooks).
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// `sha1=` HMAC of the body (GitHub's spelling).
pub const X_HUB_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature");
/// `sha256=` HMAC of the body (GitHub's spelling).
pub const X_HUB_SIGNATURE_256: HeaderName = HeaderName::from_static("x-hub-signature-256");

/// The headers of one attempt. `secret` is the subscription's secret, when it has one;
/// `previous` the secret it replaced, while that still signs after a rotation: then
/// `webhook-signature` carries both `v1,` signatures (the new one first, space-separated,
/// as Standard Webhooks allows), and the `X-Hub-Signature` headers the new one only.
pub fn headers(
    content_type: ContentType,
    event_id: &str,
    delivery_id: &str,
    timestamp: i64,
    body: &[u8],
    secret: Option<&SigningKey>,
    previous: Option<&SigningKey>,
) -> Vec<(HeaderName, String)> {
    let mut h = vec![
        (CONTENT_TYPE, content_type.as_str().to_owned()),
        (
            USER_AGENT,
            concat!("webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        (X_ACCELO_EVENT, event_id.to_owned()),
        (WEBHOOK_ID, delivery_id.to_owned()),
        (WEBHOOK_TIMESTAMP, timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        h.push((
            X_HUB_SIGNATURE,
            format!("sha1={}", hex::encode(secret.hub.sha1(body))),
        ));
        h.push((
            X_HUB_SIGNATURE_256,
            format!("sha256={}", hex::encode(secret.hub.sha256(&[body]))),
        ));
        let mut signatures = standard_signature(secret, delivery_id, timestamp, body);
        if let Some(previous) = previous {
            signatures.push(' ');
            signatures.push_str(&standard_signature(previous, delivery_id, timestamp, body));
        }
        h.push((WEBHOOK_SIGNATURE, signatures));
    }
    h
}

/// Adds a subscription's own headers after the platform's. Their names were checked when
/// they were set (none is one the platform sets, see `model::subscription`), except
/// `User-Agent`, which replaces the platform's.
pub fn add_own(headers: &mut Vec<(HeaderName, String)>, own: &[(HeaderName, String)]) {
    if own.iter().any(|(name, _)| name == USER_AGENT) {
        headers.retain(|(name, _)| name != USER_AGENT);
    }
    headers.extend_from_slice(own);
}

/// The bytes a secret signs with. A secret in Standard Webhooks' spelling (`whsec_` and
/// base64, as the platform generates them) signs with the bytes it encodes, so receivers
/// pass it to the standard libraries as it is; any other secret signs with its own bytes.
pub fn key_bytes(secret: &str) -> std::borrow::Cow<'_, [u8]> {
    match secret
        .strip_prefix("whsec_")
        .and_then(|encoded| B64.decode(encoded).ok())
        .filter(|bytes| !bytes.is_empty())
    {
        Some(bytes) => std::borrow::Cow::Owned(bytes),
        None => std::borrow::Cow::Borrowed(secret.as_bytes()),
    }
}

/// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` (Standard Webhooks).
pub fn standard_signature(
    key: &SigningKey,
    delivery_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let timestamp = timestamp.to_string();
    let mac = key.standard.sha256(&[
        delivery_id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        body,
    ]);
    format!("v1,{}", B64.encode(mac))
}

/// The Standard Webhooks spelling of a secret (`whsec_` and base64 of the bytes it signs
/// with), which receivers pass to the standard libraries.
pub fn whsec(secret: &str) -> String {
    format!("whsec_{}", B64.encode(key_bytes(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_in_both_content_types() {
        assert_eq!(
            body(
                ContentType::Form,
                BodyId::Object(123),
                Some("https://x.example/a?b=c")
            ),
            b"id=123&resource_url=https%3A%2F%2Fx.example%2Fa%3Fb%3Dc"
        );
        assert_eq!(
            body(
                ContentType::Json,
                BodyId::Object(123),
                Some("https://x.example/t/1")
            ),
            br#"{"id":123,"resource_url":"https://x.example/t/1"}"#
        );
        assert_eq!(
            body(ContentType::Json, BodyId::Object(9), None),
            br#"{"id":9}"#
        );
        assert_eq!(body(ContentType::Form, BodyId::Object(9), None), b"id=9");
        // An operational event's id is its subscription's id, a string.
        let subscription = BodyId::Subscription("6553f10134bb64841fe84d38");
        assert_eq!(
            body(ContentType::Json, subscription, None),
            br#"{"id":"6553f10134bb64841fe84d38"}"#
        );
        assert_eq!(
            body(ContentType::Form, subscription, None),
            b"id=6553f10134bb64841fe84d38"
        );
    }

    #[test]
    fn unsigned_deliveries_carry_no_signatures() {
        let h = headers(
            ContentType::Form,
            "assign_task",
            "msg_1",
            1,
            b"id=1",
            None,
            None,
        );
        assert!(h.iter().all(|(k, _)| !k.as_str().contains("signature")));
        assert!(h.contains(&(X_ACCELO_EVENT, "assign_task".into())));
    }

    #[test]
    fn signatures_match_independent_vectors() {
        // Computed independently with Python's hmac module.
        let h = headers(
            ContentType::Json,
            "create_task",
            "msg_abc",
            1_700_000_000,
            br#"{"id":1}"#,
            Some(&SigningKey::new("s3cret")),
            None,
        );
        let get = |name: &str| {
            h.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(
            get("X-Hub-Signature"),
            "sha1=2f0ee5192ed120c9fc4d16555636ddb35811f47e"
        );
        assert_eq!(
            get("X-Hub-Signature-256"),
            "sha256=63ddab34da5838e383545e9c90b40f74a4e3daabc5dd9a8d49a51875ad4b2418"
        );
        assert_eq!(
            get("webhook-signature"),
            "v1,eHbQcD49Vi330nsuAxPVTI6bXZzeamAa+ZIUQraOpXM="
        );
        // After a rotation: the new secret's signature first, then the old one's; the
        // X-Hub headers carry the new one only.
        let rotated = headers(
            ContentType::Json,
            "create_task",
            "msg_abc",
            1_700_000_000,
            br#"{"id":1}"#,
            Some(&SigningKey::new("n3w")),
            Some(&SigningKey::new("s3cret")),
        );
        let new_only = headers(
            ContentType::Json,
            "create_task",
            "msg_abc",
            1_700_000_000,
            br#"{"id":1}"#,
            Some(&SigningKey::new("n3w")),
            None,
        );
        let value = |h: &[(HeaderName, String)], name: &str| {
            h.iter().find(|(k, _)| k == name).unwrap().1.clone()
        };
        assert_eq!(
            value(&rotated, "webhook-signature"),
            format!(
                "{} v1,eHbQcD49Vi330nsuAxPVTI6bXZzeamAa+ZIUQraOpXM=",
                value(&new_only, "webhook-signature")
            )
        );
        assert_eq!(
            value(&rotated, "X-Hub-Signature-256"),
            value(&new_only, "X-Hub-Signature-256")
        );
        // A `whsec_` secret: webhook-signature keyed by the bytes its base64 encodes (the
        // same as the plain secret they spell), X-Hub-* by the string as shown (vectors
        // from Python's hmac module, keyed by b"whsec_czNjcmV0").
        let spelled = headers(
            ContentType::Json,
            "create_task",
            "msg_abc",
            1_700_000_000,
            br#"{"id":1}"#,
            Some(&SigningKey::new("whsec_czNjcmV0")),
            None,
        );
        assert_eq!(
            value(&spelled, "webhook-signature"),
            "v1,eHbQcD49Vi330nsuAxPVTI6bXZzeamAa+ZIUQraOpXM="
        );
        assert_eq!(
            value(&spelled, "X-Hub-Signature-256"),
            "sha256=3c762dd17edce26ac0b175357fb60ec6ac694f5541cd3a536ecb4a85d7060ac7"
        );
        assert_eq!(
            value(&spelled, "X-Hub-Signature"),
            "sha1=f03a1ca4c17a96e22d05da21db3a5ce649e95b3d"
        );
        assert_eq!(whsec("s3cret"), "whsec_czNjcmV0");
        // A secret already in that spelling is its own.
        assert_eq!(whsec("whsec_czNjcmV0"), "whsec_czNjcmV0");
        assert_eq!(&*key_bytes("whsec_czNjcmV0"), b"s3cret");
        assert_eq!(&*key_bytes("whsec_not base64!"), b"whsec_not base64!");
        // A generated secret signs with the 32 bytes it encodes.
        let generated = crate::model::subscription::Secret::generate();
        assert_eq!(key_bytes(generated.expose()).len(), 32);
        assert_ne!(
            generated.expose(),
            crate::model::subscription::Secret::generate().expose()
        );
    }

    #[test]
    fn own_headers_follow_the_platforms_and_a_user_agent_replaces_its() {
        let platform = || headers(ContentType::Json, "e", "msg_1", 1, b"{}", None, None);
        let own = |pairs: &[(&str, &str)]| -> Vec<(HeaderName, String)> {
            pairs
                .iter()
                .map(|(n, v)| {
                    (
                        HeaderName::from_bytes(n.as_bytes()).unwrap(),
                        (*v).to_owned(),
                    )
                })
                .collect()
        };
        let mut h = platform();
        add_own(
            &mut h,
            &own(&[("X-Api-Key", "k"), ("User-Agent", "theirs/1")]),
        );
        let agents: Vec<&str> = h
            .iter()
            .filter(|(n, _)| n == USER_AGENT)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(agents, ["theirs/1"]);
        assert!(h.contains(&(HeaderName::from_static("x-api-key"), "k".into())));
        assert_eq!(h.len(), platform().len() + 1);
        let mut untouched = platform();
        add_own(&mut untouched, &own(&[("X-A", "1")]));
        assert!(
            untouched
                .iter()
                .any(|(n, v)| n == USER_AGENT && v.starts_with("webhooks/"))
        );
    }
}
