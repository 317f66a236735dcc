//! Product events: what happened, to which object, and who may see it. Producers send
//! them as JSON (SPEC section 5); [`Event::parse`] turns that JSON into an event that
//! cannot be wrong, or says why not.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::catalogue::Catalogue;
use crate::model::clock::Millis;
use crate::model::identity::{Deployment, UserId};
use crate::model::ids::SubscriptionId;

pub const MAX_VISIBLE_TO: usize = 10_000;
pub const MAX_IDEMPOTENCY_KEY: usize = 256;
pub const MAX_RESOURCE_URL: usize = 2048;
/// The largest event accepted, well under SQS's 256 KiB message limit.
pub const MAX_EVENT_BYTES: usize = 200 * 1024;

/// Who may view the object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Visibility {
    /// `"all"`
    All(AllMarker),
    /// `"check"`: the product's access check names them (SPEC section 5).
    Check(CheckMarker),
    Users(BTreeSet<UserId>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckMarker {
    Check,
}

/// Where an event's access check stopped: the owners whose question failed (asked again
/// alone), how many times they were asked, when they are asked next, and why the last
/// question failed. Only the platform writes it, on the events queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRetry {
    pub users: BTreeSet<UserId>,
    /// Questions asked about them so far.
    pub attempt: u32,
    /// When to ask again, ms since the epoch.
    pub due_at: Millis,
    pub reason: String,
}

impl Visibility {
    pub fn all() -> Self {
        Self::All(AllMarker::All)
    }

    pub fn check() -> Self {
        Self::Check(CheckMarker::Check)
    }

    /// Whether `user` may view the object, as far as the event says: never for
    /// `"check"`, whose answers come from the product.
    pub fn allows(&self, user: UserId) -> bool {
        match self {
            Self::All(_) => true,
            Self::Check(_) => false,
            Self::Users(users) => users.contains(&user),
        }
    }
}

/// A validated event, as it travels on the events queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Identifies this event across retries: assigned when the API accepts it, or the SQS
    /// message id for events sent to the queue directly. Delivery ids derive from it.
    pub event_uid: String,
    pub deployment: Deployment,
    pub event_id: String,
    pub object_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_url: Option<String>,
    pub visible_to: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// RFC 3339.
    pub occurred_at: String,
    /// `trigger` queues an event for every *other* subscription: this one is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_subscription: Option<SubscriptionId>,
    /// Where a large fan-out resumes (a store cursor), on continuation messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_after: Option<String>,
    /// The owners still to ask about, on an access check's retry messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_retry: Option<CheckRetry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

fn bad(msg: impl Into<String>) -> EventError {
    EventError(msg.into())
}

/// Where an event came from, which decides its deployment and uid when it has none.
pub struct EventOrigin<'a> {
    /// The publisher's deployment: the event must be for it (the HTTP door), or `None`
    /// when the queue's producers are trusted to name any deployment.
    pub deployment: Option<&'a Deployment>,
    /// The uid to use when the event carries none.
    pub fallback_uid: &'a str,
    pub now: Millis,
}

impl Event {
    /// Validates a producer's JSON.
    pub fn parse(
        value: &Value,
        catalogue: &Catalogue,
        origin: &EventOrigin<'_>,
    ) -> Result<Self, EventError> {
        let Value::Object(obj) = value else {
            return Err(bad("an event must be a JSON object"));
        };
        let deployment = match (obj.get("deployment"), origin.deployment) {
            (None | Some(Value::Null), Some(own)) => own.clone(),
            (None | Some(Value::Null), None) => return Err(bad("deployment is required")),
            (Some(Value::String(d)), own) => {
                let d = Deployment::parse(d).map_err(|e| bad(format!("deployment: {e}")))?;
                if own.is_some_and(|own| *own != d) {
                    return Err(bad("deployment must be the deployment of your token"));
                }
                d
            }
            _ => return Err(bad("deployment must be a string")),
        };
        let event_id = match obj.get("event_id") {
            Some(Value::String(e)) if !e.is_empty() => e.clone(),
            None | Some(Value::Null) => return Err(bad("event_id is required")),
            _ => return Err(bad("event_id must be a non-empty string")),
        };
        let event_type = catalogue.get(&event_id).ok_or_else(|| {
            bad(format!(
                "event_id `{}` is not a known event",
                event_id.chars().take(64).collect::<String>()
            ))
        })?;
        let object_id = parse_object_id(obj.get("object_id"))?;
        let resource_url = match obj.get("resource_url") {
            None | Some(Value::Null) => None,
            Some(Value::String(u)) => Some(parse_resource_url(u)?),
            _ => return Err(bad("resource_url must be a string")),
        };
        if resource_url.is_none() && event_type.trigger_type != "delete" {
            return Err(bad(
                "resource_url is required (only delete events may leave it out)",
            ));
        }
        let visible_to = parse_visibility(obj.get("visible_to"))?;
        let idempotency_key = match obj.get("idempotency_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => {
                Some(k.clone())
            }
            _ => {
                return Err(bad(format!(
                    "idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} bytes"
                )));
            }
        };
        let occurred_at = match obj.get("occurred_at") {
            None | Some(Value::Null) => format_millis(origin.now),
            Some(Value::String(t)) => {
                let parsed = OffsetDateTime::parse(t, &Rfc3339).map_err(|_| {
                    bad("occurred_at must be an RFC 3339 time such as 2026-11-27T20:00:00Z")
                })?;
                parsed.format(&Rfc3339).unwrap_or_else(|_| t.clone())
            }
            _ => return Err(bad("occurred_at must be an RFC 3339 time string")),
        };
        // The fields the platform itself writes on queued events. A publisher over HTTP may
        // not set them (a chosen uid would collide with another event's delivery ids);
        // producers on the queue are trusted like the platform.
        // On the queue a present internal field must be readable: a uid, exclusion or cursor
        // of the wrong type is refused, not dropped (a dropped exclusion would deliver a
        // trigger to the subscription that asked to be left out; a dropped uid would change
        // the delivery ids of a retried event).
        let internal = origin.deployment.is_none();
        let field = |k: &str| obj.get(k).filter(|v| internal && !v.is_null());
        let event_uid = match field("event_uid") {
            Some(Value::String(u)) if !u.is_empty() && u.len() <= 128 => u.clone(),
            Some(_) => return Err(bad("event_uid must be a string of 1 to 128 bytes")),
            // A keyed event sent to the queue directly takes its uid from the key, so that a
            // redrive from the dead-letter queue (a new message id) is the same event.
            None if internal && idempotency_key.is_some() => {
                keyed_uid(&deployment, idempotency_key.as_deref().unwrap_or_default())
            }
            None => origin.fallback_uid.to_owned(),
        };
        let exclude_subscription = match field("exclude_subscription") {
            None => None,
            Some(Value::String(id)) => Some(
                SubscriptionId::parse(id).map_err(|e| bad(format!("exclude_subscription: {e}")))?,
            ),
            Some(_) => return Err(bad("exclude_subscription must be a subscription id")),
        };
        let resume_after = match field("resume_after") {
            None => None,
            Some(Value::String(cursor)) => Some(cursor.clone()),
            Some(_) => return Err(bad("resume_after must be a string")),
        };
        let check_retry = match field("check_retry") {
            None => None,
            Some(v) if visible_to == Visibility::check() => Some(
                serde_json::from_value::<CheckRetry>(v.clone())
                    .map_err(|e| bad(format!("check_retry: {e}")))?,
            ),
            Some(_) => return Err(bad("check_retry needs visible_to \"check\"")),
        };
        Ok(Self {
            event_uid,
            deployment,
            event_id,
            object_id,
            resource_url,
            visible_to,
            idempotency_key,
            occurred_at,
            exclude_subscription,
            resume_after,
            check_retry,
        })
    }

    /// Reads an event from a queue message body.
    pub fn from_message(
        body: &str,
        catalogue: &Catalogue,
        message_id: &str,
        now: Millis,
    ) -> Result<Self, EventError> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(bad(format!(
                "an event must be at most {MAX_EVENT_BYTES} bytes"
            )));
        }
        let value: Value =
            serde_json::from_str(body).map_err(|e| bad(format!("the message is not JSON: {e}")))?;
        let origin = EventOrigin {
            deployment: None,
            fallback_uid: message_id,
            now,
        };
        Self::parse(&value, catalogue, &origin)
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}

/// The uid of a keyed event from the queue: a hash of its deployment and key.
fn keyed_uid(deployment: &Deployment, key: &str) -> String {
    use aws_lc_rs::digest;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(deployment.as_str().as_bytes());
    ctx.update(b"\0");
    ctx.update(key.as_bytes());
    crate::model::ids::digest_id("key_", ctx.finish().as_ref())
}

fn parse_object_id(v: Option<&Value>) -> Result<u64, EventError> {
    let msg = "object_id must be a positive whole number";
    match v {
        None | Some(Value::Null) => Err(bad("object_id is required")),
        Some(Value::Number(n)) => n.as_u64().filter(|n| *n > 0).ok_or_else(|| bad(msg)),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(msg)),
        _ => Err(bad(msg)),
    }
}

/// Reads an `object_id` given as a request parameter (`trigger`, `dispatch`).
pub fn parse_object_id_param(v: Option<&str>) -> Result<u64, EventError> {
    parse_object_id(v.map(|s| Value::String(s.to_owned())).as_ref())
}

fn parse_resource_url(u: &str) -> Result<String, EventError> {
    let msg = "resource_url must be an absolute http or https URL of at most 2048 characters";
    if u.len() > MAX_RESOURCE_URL {
        return Err(bad(msg));
    }
    let url = url::Url::parse(u).map_err(|_| bad(msg))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(msg));
    }
    Ok(u.to_owned())
}

fn parse_visibility(v: Option<&Value>) -> Result<Visibility, EventError> {
    match v {
        None | Some(Value::Null) => Err(bad(
            "visible_to is required: the ids of the users who may view the object, \"all\" or \"check\"",
        )),
        Some(Value::String(s)) if s == "all" => Ok(Visibility::all()),
        Some(Value::String(s)) if s == "check" => Ok(Visibility::check()),
        Some(Value::Array(items)) => {
            if items.len() > MAX_VISIBLE_TO {
                return Err(bad(format!(
                    "visible_to may list at most {MAX_VISIBLE_TO} users; use \"all\""
                )));
            }
            items
                .iter()
                .map(|i| match i {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                })
                .collect::<Option<BTreeSet<UserId>>>()
                .map(Visibility::Users)
                .ok_or_else(|| bad("visible_to must list numeric user ids"))
        }
        _ => Err(bad(
            "visible_to must be a list of user ids, \"all\" or \"check\"",
        )),
    }
}

pub fn format_millis(millis: Millis) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Builds a resource URL from the installation's template, for `trigger` and `dispatch`,
/// which start from a bare object id. Placeholders: `{deployment}`, `{trigger_table}`,
/// `{trigger_table_plural}` (English plural: `company` → `companies`), `{event_id}`,
/// `{object_id}`. The older spelling `{trigger_table}s` means the plural too, so templates
/// written before the plural placeholder existed give `companies`, not `companys`.
pub fn resource_url_from_template(
    template: &str,
    deployment: &Deployment,
    table: &str,
    event_id: &str,
    object_id: u64,
) -> String {
    let plural_table = plural(table);
    template
        .replace("{trigger_table_plural}", &plural_table)
        .replace("{trigger_table}s", &plural_table)
        .replace("{deployment}", deployment.as_str())
        .replace("{trigger_table}", table)
        .replace("{event_id}", event_id)
        .replace("{object_id}", &object_id.to_string())
}

/// The English plural of a (snake_case) name, by its ending: `company` → `companies`,
/// `activity` → `activities`, `address` → `addresses`, `match` → `matches`, `task` →
/// `tasks`, `webhook_subscription` → `webhook_subscriptions`.
pub fn plural(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let before_y = lower.strip_suffix('y').and_then(|s| s.chars().last());
    if before_y.is_some_and(|c| c.is_ascii_alphabetic() && !"aeiou".contains(c)) {
        return format!("{}ies", &name[..name.len() - 1]);
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|end| lower.ends_with(end))
    {
        return format!("{name}es");
    }
    if name.is_empty() {
        return String::new();
    }
    format!("{name}s")
}

/// The JSON object of an event as published, for tests and examples.
pub fn example(deployment: &str, event_id: &str, object_id: u64, visible_to: Value) -> Value {
    let mut m = Map::new();
    m.insert("deployment".into(), deployment.into());
    m.insert("event_id".into(), event_id.into());
    m.insert("object_id".into(), object_id.into());
    m.insert(
        "resource_url".into(),
        format!("https://{deployment}.example.com/api/v0/objects/{object_id}").into(),
    );
    m.insert("visible_to".into(), visible_to);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin(dep: Option<&Deployment>) -> EventOrigin<'_> {
        EventOrigin {
            deployment: dep,
            fallback_uid: "uid-1",
            now: 1_700_000_000_000,
        }
    }

    fn parse(v: Value) -> Result<Event, EventError> {
        Event::parse(&v, &Catalogue::default(), &origin(None))
    }

    #[test]
    fn the_spec_example_parses() {
        let e = parse(json!({
            "deployment": "hq", "event_id": "assign_task", "object_id": 123,
            "resource_url": "https://hq.example.com/api/v0/tasks/123", "visible_to": [1, 7, 12],
            "idempotency_key": "task-123-assign-2026-11-27T20:00:00Z", "occurred_at": "2026-11-27T20:00:00Z"
        }))
        .unwrap();
        assert_eq!(e.object_id, 123);
        assert!(e.visible_to.allows(7) && !e.visible_to.allows(2));
        assert!(
            e.event_uid.starts_with("key_"),
            "a keyed event from the queue takes its uid from the key"
        );
        assert_eq!(e.occurred_at, "2026-11-27T20:00:00Z");
        let back = Event::from_message(&e.to_message(), &Catalogue::default(), "other", 0).unwrap();
        assert_eq!(back, e, "the queue format round-trips, keeping the uid");
    }

    /// The platform's own messages, with every field an event can carry, read back as
    /// the event they were written from.
    #[test]
    fn the_platforms_messages_read_back_with_every_field() {
        let event = Event {
            event_uid: "evt_1".into(),
            deployment: Deployment::parse("hq").unwrap(),
            event_id: "assign_task".into(),
            object_id: 7,
            resource_url: Some("https://hq.example.com/api/v0/tasks/7".into()),
            visible_to: Visibility::Users([1, 2].into()),
            idempotency_key: Some("k".into()),
            occurred_at: "2026-11-27T20:00:00Z".into(),
            exclude_subscription: Some(SubscriptionId::parse("6553f10134bb64841fe84d38").unwrap()),
            resume_after: Some("cursor".into()),
            check_retry: None,
        };
        let message = event.to_message();
        assert_eq!(
            Event::from_message(&message, &Catalogue::default(), "other", 0).unwrap(),
            event
        );
        let retry = Event {
            visible_to: Visibility::check(),
            check_retry: Some(CheckRetry {
                users: [3, 9].into(),
                attempt: 2,
                due_at: 1_700_000_000_000,
                reason: "the access check answered HTTP 500".into(),
            }),
            ..event
        };
        assert_eq!(
            Event::from_message(&retry.to_message(), &Catalogue::default(), "other", 0).unwrap(),
            retry
        );
    }

    #[test]
    fn every_field_is_checked() {
        let base = example("hq", "assign_task", 5, json!("all"));
        let with = |k: &str, v: Value| {
            let mut e = base.clone();
            e[k] = v;
            parse(e).unwrap_err().0
        };
        let without = |k: &str| {
            let mut e = base.clone();
            e.as_object_mut().unwrap().remove(k);
            parse(e).unwrap_err().0
        };
        assert!(without("visible_to").starts_with("visible_to is required"));
        assert_eq!(without("deployment"), "deployment is required");
        assert_eq!(without("object_id"), "object_id is required");
        assert!(without("resource_url").starts_with("resource_url is required"));
        assert!(with("event_id", json!("nope")).contains("not a known event"));
        assert!(with("object_id", json!(-3)).contains("positive whole number"));
        assert!(with("object_id", json!("abc")).contains("positive whole number"));
        assert!(with("visible_to", json!(["x"])).contains("numeric user ids"));
        assert!(with("visible_to", json!("some")).contains("list of user ids"));
        assert!(with("resource_url", json!("ftp://x")).contains("absolute http"));
        assert!(with("occurred_at", json!("yesterday")).contains("RFC 3339"));
        assert!(with("idempotency_key", json!("k".repeat(300))).contains("idempotency_key"));
        assert!(with("deployment", json!("HQ!")).starts_with("deployment:"));
        assert!(parse(json!([1])).unwrap_err().0.contains("JSON object"));
    }

    /// `resource_url` is an absolute http or https URL with a host, as `url::Url::parse`
    /// reads it, of at most `MAX_RESOURCE_URL` bytes.
    #[test]
    fn resource_urls_are_http_urls_with_a_host() {
        let read = |u: &str| parse_resource_url(u).is_ok();
        for good in [
            "http://a",
            "https://hq.example.com:8443/api/v0/tasks/1?x=y#z",
            "HTTPS://HQ.example.com/t",
            "http://127.0.0.1/t",
            "http://[::1]:80/t",
            "https://bücher.example/t",
        ] {
            assert!(read(good), "{good}");
        }
        for bad in [
            "",
            "hq.example.com/t",
            "ftp://hq.example.com/t",
            "mailto:a@hq.example.com",
            "file:///etc/passwd",
            "https://",
            "http://1.2.3.999/t",
            "http://xn--zz.com/t",
            "http://hq.example.com:65536/t",
        ] {
            assert!(!read(bad), "{bad}");
        }
        let at_cap = format!(
            "https://hq.example.com/{}",
            "x".repeat(MAX_RESOURCE_URL - 23)
        );
        assert_eq!(at_cap.len(), MAX_RESOURCE_URL);
        assert!(read(&at_cap));
        assert!(!read(&format!("{at_cap}x")));
    }

    #[test]
    fn delete_events_may_omit_the_resource_url() {
        let mut e = example("hq", "delete_invoice", 9, json!([1]));
        e.as_object_mut().unwrap().remove("resource_url");
        assert_eq!(parse(e).unwrap().resource_url, None);
    }

    #[test]
    fn the_http_door_pins_the_deployment() {
        let hq = Deployment::parse("hq").unwrap();
        let mut e = example("acme", "assign_task", 1, json!("all"));
        let err = Event::parse(&e, &Catalogue::default(), &origin(Some(&hq))).unwrap_err();
        assert_eq!(err.0, "deployment must be the deployment of your token");
        e.as_object_mut().unwrap().remove("deployment");
        assert_eq!(
            Event::parse(&e, &Catalogue::default(), &origin(Some(&hq)))
                .unwrap()
                .deployment,
            hq
        );
    }

    #[test]
    fn publishers_over_http_cannot_set_internal_fields() {
        let hq = Deployment::parse("hq").unwrap();
        let mut e = example("hq", "assign_task", 1, json!("all"));
        e["event_uid"] = json!("evt_chosen");
        e["resume_after"] = json!("cursor");
        e["exclude_subscription"] = json!("6553f10134bb64841fe84d38");
        e["visible_to"] = json!("check");
        e["check_retry"] = json!({"users": [1], "attempt": 1, "due_at": 0, "reason": "r"});
        let over_http = Event::parse(&e, &Catalogue::default(), &origin(Some(&hq))).unwrap();
        assert_eq!(over_http.event_uid, "uid-1");
        assert_eq!(over_http.visible_to, Visibility::check());
        assert_eq!(over_http.check_retry, None);
        assert_eq!(
            (over_http.resume_after, over_http.exclude_subscription),
            (None, None)
        );
        let on_queue = Event::parse(&e, &Catalogue::default(), &origin(None)).unwrap();
        assert_eq!(on_queue.event_uid, "evt_chosen");
        assert_eq!(on_queue.resume_after.as_deref(), Some("cursor"));
    }

    /// Found by `tests/tests/fuzz_parsers.rs`: on the queue, an internal field of the wrong
    /// type was dropped silently (a trigger's exclusion lost, a uid replaced).
    #[test]
    fn unreadable_internal_fields_on_the_queue_are_refused() {
        let hq = Deployment::parse("hq").unwrap();
        for (k, v, msg) in [
            ("event_uid", json!(7), "event_uid must be"),
            ("event_uid", json!(""), "event_uid must be"),
            ("event_uid", json!("u".repeat(129)), "event_uid must be"),
            (
                "exclude_subscription",
                json!(123),
                "exclude_subscription must be",
            ),
            (
                "exclude_subscription",
                json!("nope"),
                "exclude_subscription:",
            ),
            ("resume_after", json!({"k": 1}), "resume_after must be"),
            ("check_retry", json!({"users": [1]}), "check_retry needs"),
        ] {
            let mut e = example("hq", "assign_task", 1, json!("all"));
            e[k] = v.clone();
            let err = Event::parse(&e, &Catalogue::default(), &origin(None)).unwrap_err();
            assert!(err.0.starts_with(msg), "{k} = {v}: {}", err.0);
            // Over HTTP the platform's fields are ignored, whatever they hold.
            let http = Event::parse(&e, &Catalogue::default(), &origin(Some(&hq))).unwrap();
            assert_eq!(http.event_uid, "uid-1");
            e[k] = Value::Null;
            assert!(
                Event::parse(&e, &Catalogue::default(), &origin(None)).is_ok(),
                "null is absent"
            );
        }
    }

    #[test]
    fn keyed_events_on_the_queue_keep_their_uid_across_message_ids() {
        let mut e = example("hq", "assign_task", 1, json!("all"));
        e["idempotency_key"] = json!("k-1");
        let first =
            Event::from_message(&e.to_string(), &Catalogue::default(), "message-1", 0).unwrap();
        let redriven =
            Event::from_message(&e.to_string(), &Catalogue::default(), "message-2", 0).unwrap();
        assert_eq!(first.event_uid, redriven.event_uid);
        assert!(first.event_uid.starts_with("key_"));
        let unkeyed = Event::from_message(
            &example("hq", "assign_task", 1, json!("all")).to_string(),
            &Catalogue::default(),
            "message-3",
            0,
        )
        .unwrap();
        assert_eq!(unkeyed.event_uid, "message-3");
    }

    #[test]
    fn plurals_follow_english_endings() {
        let table = [
            ("task", "tasks"),
            ("company", "companies"),
            ("activity", "activities"),
            ("day", "days"),
            ("status", "statuses"),
            ("address", "addresses"),
            ("match", "matches"),
            ("box", "boxes"),
            ("webhook_subscription", "webhook_subscriptions"),
            ("", ""),
        ];
        for (one, many) in table {
            assert_eq!(plural(one), many, "{one}");
        }
    }

    /// The default template gives Accelo's resource paths for every table of the default
    /// catalogue: `companies` and `activities`, not `companys` and `activitys`.
    #[test]
    fn the_default_resource_url_template_pluralises_every_table() {
        let hq = Deployment::parse("hq").unwrap();
        let expected = [
            ("task", "tasks"),
            ("invoice", "invoices"),
            ("purchase", "purchases"),
            ("quote", "quotes"),
            ("request", "requests"),
            ("issue", "issues"),
            ("company", "companies"),
            ("contact", "contacts"),
            ("prospect", "prospects"),
            ("activity", "activities"),
        ];
        let catalogue = Catalogue::default();
        let mut seen = BTreeSet::new();
        for t in catalogue.types() {
            let Some((_, path)) = expected.iter().find(|(one, _)| *one == t.trigger_table) else {
                continue; // operational events have no resource of the product
            };
            seen.insert(t.trigger_table.as_str());
            let want = format!("https://hq.api.accelo.com/api/v0/{path}/7");
            for template in [
                crate::config::DEFAULT_RESOURCE_URL_TEMPLATE,
                "https://{deployment}.api.accelo.com/api/v0/{trigger_table_plural}/{object_id}",
            ] {
                assert_eq!(
                    resource_url_from_template(template, &hq, &t.trigger_table, &t.event_id, 7),
                    want,
                    "{template}"
                );
            }
        }
        assert_eq!(seen.len(), expected.len(), "every table was checked");
        assert_eq!(
            resource_url_from_template(
                "{trigger_table}/{event_id}/{object_id}",
                &hq,
                "company",
                "create_company",
                1
            ),
            "company/create_company/1",
            "the singular placeholder is unchanged"
        );
    }

    #[test]
    fn malformed_messages_are_explained() {
        let err = Event::from_message("{oops", &Catalogue::default(), "m", 0).unwrap_err();
        assert!(err.0.starts_with("the message is not JSON"));
    }
}
