//! Property tests of every parser at the edge, driven through the functions the handlers
//! call: event bodies over HTTP (`Event::parse` as `POST /events` calls it) and from the
//! queue (`Event::from_message`, the fan-out's door), request parameters in JSON and form
//! bodies (`input::parse_params`), `Accept` (`Format::from_accept`), token claims
//! (`caller_from_claims`) and bearer tokens (`TokenVerifier::verify`), and the XML and
//! YAML writers (`envelope::respond`).
//!
//! The properties, for every input generated:
//! * no parser panics;
//! * bad input is an error with a message naming what is wrong, never read as something
//!   else (a field given a wrong value is refused, not dropped or defaulted);
//! * valid input reads back as the value it was made from, and an accepted event
//!   survives the queue format unchanged;
//! * the writers' output parses back (XML with roxmltree, YAML with serde_norway) to the
//!   tree that was written; for XML, as [`xml_view`] defines it.
//!
//! Each property runs 256 cases by default; `PROPTEST_CASES=1000000 cargo test --release
//! -p webhooks-tests --test fuzz_parsers` is the long run (see README).

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use webhooks_api::envelope::{Reply, Suppress, respond};
use webhooks_api::format::{Format, singular};
use webhooks_api::input::parse_params;
use webhooks_core::model::catalogue::Catalogue;
use webhooks_core::model::event::{Event, EventOrigin, Visibility};
use webhooks_core::model::identity::Deployment;
use webhooks_core::security::auth::{AuthError, TokenVerifier, caller_from_claims};

const NOW: i64 = 1_780_000_000_000;

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
    CATALOGUE.get_or_init(Catalogue::default)
}

fn hq() -> Deployment {
    Deployment::parse("hq").unwrap()
}

/// An event as the HTTP door reads it: the token's deployment is `hq`.
fn parse_http(value: &Value) -> Result<Event, String> {
    let hq = hq();
    let origin = EventOrigin {
        deployment: Some(&hq),
        fallback_uid: "evt_http",
        now: NOW,
    };
    Event::parse(value, catalogue(), &origin).map_err(|e| e.0)
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// Strings that exercise escaping and type guessing: controls, markup, quotes, YAML 1.1
/// words, line separators, non-characters, astral characters, and anything at all.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        3 => "[\\x00-\\x1f\\x7f-\\x9f<>&'\"\\\\:#=\\-~ \u{85}\u{2028}\u{2029}\u{fffe}\u{ffff}\u{feff}a-z0-9é\u{10ffff}]{0,12}",
        2 => prop::sample::select(vec![
            "", "yes", "No", "off", "ON", "y", "n", "true", "False", "null", "Null", "~", "1:20",
            "0x1F", "0o17", "1e3", ".inf", "-.nan", "=", "<<", "- a", "a: b", "#c", "'q'", "@x",
            "`x", "!tag", "&anchor", "*alias", "%YAML", "---", "...", "2026-11-27T20:00:00Z",
            "2026-11-27", "1_000", "+1", "-0", "00", " lead", "trail ", "\t", "\r\n",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Object keys: identifiers, the API's own names, and odd keys that are no XML name.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_][a-z0-9_]{0,10}",
        2 => prop::sample::select(vec![
            "types", "subscriptions", "deliveries", "events", "subscriptions_users", "status",
            "data", "item", "meta", "response", "xml", "xmlns", "yes", "null", "y", "headers",
        ])
        .prop_map(str::to_owned),
        3 => nasty_string(),
        1 => "[\u{a0}-\u{3ff}\u{2070}-\u{218f}\u{3000}-\u{3010}0-9.\\-]{1,6}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        (-1000i32..1000, 0u32..4).prop_map(|(m, e)| Value::from(m as f64 / 10f64.powi(e as i32))),
    ]
}

/// Arbitrary JSON trees: scalars of every type, odd keys, nested arrays and objects.
fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid event as a producer would write it, and the event it must read as.
#[derive(Debug, Clone)]
struct ValidEvent {
    json: Value,
    expected: Event,
}

fn time_strategy() -> impl Strategy<Value = OffsetDateTime> {
    // Years 0001 to 9999 (what RFC 3339 can write), with nanoseconds and an offset.
    (
        -62_135_596_800i64..253_402_300_799,
        0u32..1_000_000_000,
        -(23 * 60 + 59)..=(23 * 60 + 59i32),
        any::<bool>(),
    )
        .prop_filter_map("representable", |(secs, nanos, offset_min, whole)| {
            let nanos = if whole { 0 } else { nanos };
            let offset = time::UtcOffset::from_whole_seconds(offset_min * 60).ok()?;
            let t = OffsetDateTime::from_unix_timestamp(secs)
                .ok()?
                .replace_nanosecond(nanos)
                .ok()?
                .to_offset(offset);
            (1..=9999).contains(&t.year()).then_some(t)
        })
}

fn valid_event() -> impl Strategy<Value = ValidEvent> {
    let event_type = prop::sample::select(catalogue().types().to_vec());
    let object_id = (1..=u64::MAX, any::<bool>());
    let resource_url = (
        prop::sample::select(vec!["http", "https", "HTTPS"]),
        // One hyphen at most: `xn--` starts a punycode label, which must then be valid.
        "[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,4})?(\\.[a-z]{2,5}){0,2}",
        prop::option::of(1u16..),
        "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){0,4}",
        prop::option::of("[A-Za-z0-9=&]{0,12}"),
    )
        .prop_map(|(scheme, host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{path}{query}")
        });
    let visible_to = prop_oneof![
        Just(None),
        prop::collection::vec((any::<u64>(), any::<bool>()), 0..6).prop_map(Some),
    ];
    let key = prop::option::of("\\PC{1,64}");
    let occurred_at = prop::option::of(time_strategy());
    let deployment = prop::sample::select(vec![None, Some(Value::Null), Some(json!("hq"))]);
    // Fields the platform writes: ignored over HTTP whatever they hold.
    let internal = prop::collection::btree_map(
        prop::sample::select(vec!["event_uid", "resume_after", "exclude_subscription"]),
        json_tree(),
        0..3,
    );
    let unknown = prop::collection::btree_map("x_[a-z]{1,8}", json_tree(), 0..3);
    (
        event_type,
        object_id,
        resource_url,
        any::<bool>(),
        visible_to,
        key,
        occurred_at,
        deployment,
        internal,
        unknown,
    )
        .prop_map(
            |(t, (object_id, as_text), url, omit_url, visible, key, at, dep, internal, unknown)| {
                let mut json = Map::new();
                for (k, v) in internal {
                    json.insert(k.to_owned(), v);
                }
                json.extend(unknown);
                json.insert("event_id".into(), json!(t.event_id));
                json.insert(
                    "object_id".into(),
                    if as_text {
                        json!(object_id.to_string())
                    } else {
                        json!(object_id)
                    },
                );
                let omit_url = omit_url && t.trigger_type == "delete";
                if !omit_url {
                    json.insert("resource_url".into(), json!(url));
                }
                let visible_to = match &visible {
                    None => {
                        json.insert("visible_to".into(), json!("all"));
                        Visibility::all()
                    }
                    Some(users) => {
                        let list: Vec<Value> = users
                            .iter()
                            .map(|(id, as_text)| {
                                if *as_text {
                                    json!(id.to_string())
                                } else {
                                    json!(id)
                                }
                            })
                            .collect();
                        json.insert("visible_to".into(), Value::Array(list));
                        Visibility::Users(users.iter().map(|(id, _)| *id).collect())
                    }
                };
                if let Some(k) = &key {
                    json.insert("idempotency_key".into(), json!(k));
                }
                let occurred_at = match at {
                    Some(t) => {
                        let text = t.format(&Rfc3339).expect("a representable time");
                        json.insert("occurred_at".into(), json!(text));
                        text
                    }
                    None => webhooks_core::model::event::format_millis(NOW),
                };
                if let Some(d) = dep {
                    json.insert("deployment".into(), d);
                }
                ValidEvent {
                    json: Value::Object(json),
                    expected: Event {
                        event_uid: "evt_http".into(),
                        deployment: hq(),
                        event_id: t.event_id.clone(),
                        object_id,
                        resource_url: (!omit_url).then_some(url),
                        visible_to,
                        idempotency_key: key,
                        occurred_at,
                        exclude_subscription: None,
                        resume_after: None,
                        check_retry: None,
                    },
                }
            },
        )
}

/// A value that no field of an event accepts in place of `field`'s, with the field's name
/// (the error must name it).
fn bad_field() -> impl Strategy<Value = (&'static str, Option<Value>)> {
    // (Not `[]`: an empty `visible_to` is valid, it names nobody.)
    let wrong_type = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        Just(json!([{}])),
        Just(json!({})),
        Just(json!({"a": 1})),
    ];
    prop_oneof![
        // Absent, null or of the wrong type.
        (
            prop::sample::select(vec!["event_id", "object_id", "visible_to"]),
            prop::option::of(prop_oneof![Just(Value::Null), wrong_type.clone()]),
        ),
        (
            prop::sample::select(vec![
                "deployment",
                "resource_url",
                "idempotency_key",
                "occurred_at",
            ]),
            wrong_type.clone().prop_map(Some),
        ),
        (
            Just("event_id"),
            prop_oneof![
                Just(json!("")),
                number(),
                "[a-z_]{1,20}".prop_filter_map("unknown", |s| {
                    catalogue().get(&s).is_none().then_some(json!(s))
                }),
            ]
            .prop_map(Some)
        ),
        (
            Just("object_id"),
            prop_oneof![
                Just(json!(0)),
                Just(json!("0")),
                Just(json!("")),
                Just(json!(18_446_744_073_709_551_616.0)),
                (i64::MIN..0).prop_map(Value::from),
                (i64::MIN..0).prop_map(|n| json!(n.to_string())),
                (0.01f64..1e12)
                    .prop_filter("fractional", |f| f.fract() != 0.0)
                    .prop_map(Value::from),
                "[a-zA-Z ]{1,8}".prop_map(Value::from),
            ]
            .prop_map(Some)
        ),
        (
            Just("visible_to"),
            prop_oneof![
                "[a-zA-Z]{1,8}".prop_filter_map("not all", |s| (s != "all").then_some(json!(s))),
                number(),
                prop::collection::vec(
                    prop_oneof![
                        Just(Value::Null),
                        any::<bool>().prop_map(Value::Bool),
                        (i64::MIN..0).prop_map(Value::from),
                        Just(json!(1.5)),
                        Just(json!("")),
                        "[a-z]{1,5}".prop_map(Value::from),
                        Just(json!([1])),
                    ],
                    1..3,
                )
                .prop_map(|bad| {
                    let mut list = vec![json!(1), json!("2")];
                    list.extend(bad);
                    Value::Array(list)
                }),
            ]
            .prop_map(Some)
        ),
        (
            Just("resource_url"),
            prop_oneof![
                Just(json!("")),
                number(),
                "(ftp|mailto|file|javascript|data):[a-z/]{1,10}".prop_map(Value::from),
                "[a-z ]{1,20}".prop_map(Value::from),
                Just(json!("https://")),
                Just(json!(format!("https://a.example/{}", "x".repeat(2048)))),
            ]
            .prop_map(Some)
        ),
        (
            Just("idempotency_key"),
            prop_oneof![
                Just(json!("")),
                number(),
                Just(json!("k".repeat(257))),
                Just(json!("é".repeat(129))),
            ]
            .prop_map(Some)
        ),
        (
            Just("occurred_at"),
            prop_oneof![
                number(),
                nasty_string().prop_filter_map("not a time", |s| {
                    OffsetDateTime::parse(&s, &Rfc3339)
                        .is_err()
                        .then_some(json!(s))
                }),
                Just(json!("2026-02-30T00:00:00Z")),
                Just(json!("2026-11-27 20:00:00")),
                Just(json!("2026-11-27T25:00:00Z")),
            ]
            .prop_map(Some)
        ),
        (
            Just("deployment"),
            prop_oneof![
                Just(json!("")),
                Just(json!("acme")),
                Just(json!("HQ")),
                number(),
                "[a-z0-9_-]{0,3}[^a-z0-9_-][a-z]{0,3}".prop_map(Value::from),
                Just(json!("a".repeat(64))),
            ]
            .prop_map(Some)
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

proptest! {
    /// A valid event reads as what it says, over HTTP; what was accepted survives the
    /// queue format (the fan-out reads the same event back, uid included).
    #[test]
    fn valid_events_read_back_as_written(e in valid_event()) {
        let parsed = parse_http(&e.json).map_err(|m| TestCaseError::fail(format!("{m}: {}", e.json)))?;
        prop_assert_eq!(&parsed, &e.expected);
        let again = Event::from_message(&parsed.to_message(), catalogue(), "msg-other", NOW + 1)
            .map_err(|m| TestCaseError::fail(m.0))?;
        prop_assert_eq!(again, parsed);
    }

    /// The same event sent to the queue by a producer: its deployment is required, its
    /// uid is the message id, or a hash of its key when it has one (the same for any
    /// message id, so a redrive is the same event).
    #[test]
    fn valid_events_from_producers_on_the_queue(e in valid_event()) {
        let mut json = e.json.clone();
        let obj = json.as_object_mut().unwrap();
        for internal in ["event_uid", "resume_after", "exclude_subscription"] {
            obj.remove(internal);
        }
        let without_deployment = obj.get("deployment").is_none_or(Value::is_null);
        let body = json.to_string();
        let read = Event::from_message(&body, catalogue(), "msg-1", NOW);
        if without_deployment {
            prop_assert_eq!(read.unwrap_err().0, "deployment is required");
            return Ok(());
        }
        let read = read.map_err(|m| TestCaseError::fail(m.0))?;
        let other = Event::from_message(&body, catalogue(), "msg-2", NOW).unwrap();
        match &e.expected.idempotency_key {
            Some(_) => {
                prop_assert!(read.event_uid.starts_with("key_"));
                prop_assert_eq!(&read.event_uid, &other.event_uid);
            }
            None => prop_assert_eq!((read.event_uid.as_str(), other.event_uid.as_str()), ("msg-1", "msg-2")),
        }
        prop_assert_eq!(Event { event_uid: "evt_http".into(), ..read }, e.expected);
    }

    /// One field made wrong (absent, null, wrong type, out of range, unknown): the event
    /// is refused, and the message names that field.
    #[test]
    fn one_bad_field_is_refused_by_name(e in valid_event(), (field, bad) in bad_field()) {
        let mut json = e.json.clone();
        let obj = json.as_object_mut().unwrap();
        match &bad {
            Some(v) => obj.insert(field.to_owned(), v.clone()),
            None => obj.remove(field),
        };
        let message = match parse_http(&json) {
            Ok(event) => return Err(TestCaseError::fail(format!("{field} = {bad:?} was accepted as {event:?}"))),
            Err(m) => m,
        };
        prop_assert!(message.contains(field), "{field} = {bad:?}: {message}");
    }

    /// Any JSON at all over HTTP: an error with a message, or an event that holds only
    /// what the rules allow and survives the queue format.
    #[test]
    fn any_json_is_an_event_or_a_reason(value in json_tree(), extra in prop::collection::btree_map(
        prop::sample::select(vec!["deployment", "event_id", "object_id", "resource_url", "visible_to",
            "idempotency_key", "occurred_at", "event_uid", "exclude_subscription"]),
        json_tree(), 0..9)) {
        for value in [value.clone(), {
            let mut obj = value.as_object().cloned().unwrap_or_default();
            obj.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
            Value::Object(obj)
        }] {
            match parse_http(&value) {
                Err(message) => prop_assert!(!message.trim().is_empty()),
                Ok(event) => {
                    prop_assert_eq!(event.deployment.as_str(), "hq");
                    prop_assert!(catalogue().get(&event.event_id).is_some());
                    prop_assert!(event.object_id > 0);
                    prop_assert_eq!(&event.event_uid, "evt_http");
                    let back = Event::from_message(&event.to_message(), catalogue(), "m", 0)
                        .map_err(|m| TestCaseError::fail(m.0))?;
                    prop_assert_eq!(back, event);
                }
            }
        }
    }

    /// Any message body on the events queue (not JSON, JSON of any shape, events with any
    /// internal fields): an event or a reason, never a panic.
    #[test]
    fn any_queue_message_is_an_event_or_a_reason(
        body in prop_oneof![any::<String>(), json_tree().prop_map(|v| v.to_string())],
        e in valid_event(),
        internal in prop::collection::btree_map(
            prop::sample::select(vec!["event_uid", "resume_after", "exclude_subscription"]),
            json_tree(), 1..3),
    ) {
        let mut with_internal = e.json.clone();
        with_internal["deployment"] = json!("hq");
        with_internal.as_object_mut().unwrap().extend(internal.clone().into_iter().map(|(k, v)| (k.to_owned(), v)));
        // An internal field given is read as given, or the event is refused.
        match Event::from_message(&with_internal.to_string(), catalogue(), "msg-1", NOW) {
            Err(m) => prop_assert!(!m.0.trim().is_empty()),
            Ok(event) => {
                for (k, v) in &internal {
                    let read = match *k {
                        "event_uid" => Some(json!(event.event_uid)),
                        "resume_after" => event.resume_after.as_ref().map(|c| json!(c)),
                        _ => event.exclude_subscription.as_ref().map(|id| json!(id.to_string())),
                    };
                    if !v.is_null() {
                        prop_assert_eq!(read.as_ref(), Some(v), "{}", k);
                    }
                }
            }
        }
        for body in [body, with_internal.to_string()] {
            match Event::from_message(&body, catalogue(), "msg-1", NOW) {
                Err(m) => prop_assert!(!m.0.trim().is_empty()),
                Ok(event) => {
                    let back = Event::from_message(&event.to_message(), catalogue(), "m", 0)
                        .map_err(|m| TestCaseError::fail(m.0))?;
                    prop_assert_eq!(back, event);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request parameters: subscription input in JSON and form bodies
// ---------------------------------------------------------------------------------------

fn form_body(fields: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

proptest! {
    /// The same fields as a JSON object and as a form read alike: every text field is the
    /// string sent, every number the number as written, whatever characters they hold.
    #[test]
    fn json_and_form_bodies_read_alike(
        fields in prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(vec!["trigger_url", "event_id", "content_type", "secret", "_suppress_meta"]).prop_map(str::to_owned),
                any::<String>(),
            ],
            any::<String>(), 1..6),
        object_id in any::<u64>(),
        json_type in prop::sample::select(vec!["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"]),
        form_type in prop::sample::select(vec!["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"]),
    ) {
        let mut pairs: Vec<(String, String)> = fields.into_iter().filter(|(k, _)| k != "object_id").collect();
        let mut json_obj: Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json_obj.insert("object_id".into(), json!(object_id));
        pairs.push(("object_id".into(), object_id.to_string()));
        let json_body = Bytes::from(Value::Object(json_obj).to_string());
        let form = Bytes::from(form_body(&pairs));
        let from_json = parse_params(None, Some(json_type), &json_body).map_err(|e| TestCaseError::fail(e.message))?;
        let from_form = parse_params(None, Some(form_type), &form).map_err(|e| TestCaseError::fail(format!("{}: {form:?}", e.message)))?;
        for p in [&from_json, &from_form] {
            for (k, v) in &pairs {
                if k == "object_id" {
                    prop_assert_eq!(p.number(k).unwrap(), Some(v.as_str()));
                } else {
                    prop_assert_eq!(p.string(k).unwrap(), Some(v.as_str()));
                }
                prop_assert_eq!(p.get(k), Some(v.as_str()));
            }
        }
        prop_assert_eq!(from_json.suppress(), from_form.suppress());
    }

    /// A JSON field of a type the endpoint does not take is refused with a sentence that
    /// names it and both types; it is never read as absent or as some other value.
    #[test]
    fn json_fields_of_the_wrong_type_are_refused(
        name in prop::sample::select(vec!["trigger_url", "event_id", "content_type", "secret", "object_id", "_limit"]),
        value in json_tree().prop_filter("not null", |v| !v.is_null()),
    ) {
        let body = json!({ name: value }).to_string();
        // The value as JSON text reads back (serde_json may round a float's last digit).
        let value = serde_json::from_str::<Value>(&body).unwrap()[name].clone();
        let body = Bytes::from(body);
        let p = parse_params(Some("trigger_url=q&object_id=1"), Some("application/json"), &body).unwrap();
        let numeric = matches!(name, "object_id" | "_limit");
        let read = if numeric { p.number(name) } else { p.string(name) };
        let fits = matches!(value, Value::String(_)) || (numeric && value.is_number());
        match read {
            Ok(Some(text)) => {
                prop_assert!(fits, "{name} = {value} read as {text:?}");
                let expected = match &value { Value::String(s) => s.clone(), other => other.to_string() };
                prop_assert_eq!(text, expected);
            }
            Ok(None) => return Err(TestCaseError::fail(format!("{name} = {value} read as absent"))),
            Err(e) => {
                prop_assert!(!fits, "{name} = {value} refused: {}", e.message);
                prop_assert!(e.message.starts_with(&format!("{name} must be ")), "{}", e.message);
            }
        }
    }

    /// Any body with any content type: parameters, or `invalid_request` with a reason.
    #[test]
    fn any_body_is_parameters_or_a_reason(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            any::<String>().prop_map(String::into_bytes),
            json_tree().prop_map(|v| v.to_string().into_bytes()),
            "([a-z%+=&{}\\[\\]0-9]|%[0-9A-Fa-f]{2}|%[^0-9A-Fa-f]){0,20}".prop_map(String::into_bytes),
        ],
        content_type in prop::option::of(prop_oneof![
            prop::sample::select(vec!["application/json", "application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data; boundary=x", "application/json;", ";"]).prop_map(str::to_owned),
            any::<String>(),
        ]),
        query in prop::option::of(any::<String>()),
    ) {
        match parse_params(query.as_deref(), content_type.as_deref(), &Bytes::from(body)) {
            Ok(p) => { let _ = p.suppress(); }
            Err(e) => {
                prop_assert_eq!(e.status, webhooks_api::envelope::Status::InvalidRequest);
                prop_assert!(!e.message.trim().is_empty());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Accept
// ---------------------------------------------------------------------------------------

/// The media types that name each format, written out here (not borrowed from the API).
const NAMED: &[(&str, Format)] = &[
    ("application/json", Format::Json),
    ("text/json", Format::Json),
    ("text/xml", Format::Xml),
    ("application/xml", Format::Xml),
    ("text/x-yaml", Format::Yaml),
    ("application/x-yaml", Format::Yaml),
    ("text/yaml", Format::Yaml),
    ("application/yaml", Format::Yaml),
];

/// The rule of `Format::from_accept`'s documentation, as a plain model: each format takes
/// the q of its most specific matching range (the first listed among equals); the highest
/// q above 0 wins, then the more specific range, then the earlier one, then JSON, XML,
/// YAML; nothing acceptable is JSON.
fn model_accept(ranges: &[(String, u16)]) -> Format {
    /// q, specificity, earlier first.
    type Rank = (u16, u8, std::cmp::Reverse<usize>);
    let mut best: Option<(Format, Rank)> = None;
    for format in [Format::Json, Format::Xml, Format::Yaml] {
        let mut chosen: Option<(u8, usize, u16)> = None;
        for (position, (media, q)) in ranges.iter().enumerate() {
            let (kind, _) = media.split_once('/').unwrap();
            let specificity = if media == "*/*" {
                0
            } else if media.ends_with("/*") {
                if !NAMED
                    .iter()
                    .any(|(m, f)| *f == format && m.starts_with(&format!("{kind}/")))
                {
                    continue;
                }
                1
            } else if NAMED.contains(&(media.as_str(), format)) {
                2
            } else {
                continue;
            };
            if chosen.is_none_or(|(s, _, _)| specificity > s) {
                chosen = Some((specificity, position, *q));
            }
        }
        let Some((specificity, position, q)) = chosen else {
            continue;
        };
        if q == 0 {
            continue;
        }
        let rank = (q, specificity, std::cmp::Reverse(position));
        if best.as_ref().is_none_or(|(_, b)| rank > *b) {
            best = Some((format, rank));
        }
    }
    best.map_or(Format::Json, |(f, _)| f)
}

fn media_range() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMED.iter().map(|(m, _)| *m).collect::<Vec<_>>())
            .prop_map(str::to_owned),
        prop::sample::select(vec![
            "*/*",
            "text/*",
            "application/*",
            "image/*",
            "text/html",
            "application/xhtml+xml",
            "application/octet-stream"
        ])
        .prop_map(str::to_owned),
    ]
}

/// A q-value as written, with its value in thousandths.
fn qvalue() -> impl Strategy<Value = (String, u16)> {
    prop_oneof![
        Just(("1".to_owned(), 1000)),
        Just(("1.000".to_owned(), 1000)),
        Just(("0".to_owned(), 0)),
        (0u16..1000, 1usize..=3).prop_map(|(t, digits)| {
            let t = match digits {
                1 => t / 100 * 100,
                2 => t / 10 * 10,
                _ => t,
            };
            let text = format!("{:03}", t);
            (format!("0.{}", &text[..digits]), t)
        }),
    ]
}

proptest! {
    /// Well-formed `Accept` headers (any case, spacing, extra parameters): the format the
    /// documented rule picks.
    #[test]
    fn accept_follows_the_documented_rule(
        ranges in prop::collection::vec((media_range(), prop::option::of(qvalue()), any::<bool>(), any::<bool>(), 0usize..3), 1..6),
    ) {
        let mut header = Vec::new();
        let mut model = Vec::new();
        for (media, q, upper, extra, spaces) in &ranges {
            let pad = " ".repeat(*spaces);
            let mut text = if *upper { media.to_ascii_uppercase() } else { media.clone() };
            if *extra {
                text.push_str(&format!("{pad};{pad}charset=utf-8"));
            }
            if let Some((written, _)) = q {
                text.push_str(&format!("{pad};{pad}{}={written}", if *upper { "Q" } else { "q" }));
            }
            header.push(format!("{pad}{text}{pad}"));
            model.push((media.clone(), q.as_ref().map_or(1000, |(_, t)| *t)));
        }
        let header = header.join(",");
        prop_assert_eq!(Format::from_accept(Some(&header)), model_accept(&model), "{}", header);
    }

    /// Any header at all: some format, never a panic.
    #[test]
    fn any_accept_header_picks_a_format(header in prop_oneof![
        any::<String>(),
        "([a-z*/;=,. q0-9-]|x-yaml|json|xml){0,40}",
    ]) {
        let _ = Format::from_accept(Some(&header));
    }
}

// ---------------------------------------------------------------------------------------
// Token claims and bearer tokens
// ---------------------------------------------------------------------------------------

const SECRET: &[u8] = b"fuzz-secret-of-thirty-two-bytes!";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 JWT with this header and these claims, signed here (not by the code under test).
fn sign(header: &Value, claims: &Value) -> String {
    use hmac::Mac;
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

fn future() -> i64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600) as i64
}

#[derive(Debug, Clone)]
struct ValidClaims {
    claims: Map<String, Value>,
    user_id: u64,
    deployment: String,
    name: String,
    email: String,
    pro: bool,
    scopes: Vec<String>,
}

fn valid_claims() -> impl Strategy<Value = ValidClaims> {
    (
        any::<u64>(),
        "[a-z0-9_-]{1,63}",
        any::<String>(),
        any::<String>(),
        prop::option::of(any::<bool>()),
        prop::collection::vec("[!-~]{1,20}", 0..4),
        // How API Gateway's authorizer would pass them: every claim a string.
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(user_id, deployment, name, email, pro, scopes, strings, scope_array)| {
                let mut claims = Map::new();
                claims.insert("sub".into(), json!(user_id.to_string()));
                claims.insert("deployment".into(), json!(deployment));
                claims.insert("name".into(), json!(name));
                claims.insert("email".into(), json!(email));
                if let Some(p) = pro {
                    claims.insert(
                        "pro".into(),
                        if strings {
                            json!(p.to_string())
                        } else {
                            json!(p)
                        },
                    );
                }
                if !scopes.is_empty() || scope_array {
                    let scope = if scope_array && !strings {
                        json!(scopes)
                    } else {
                        json!(scopes.join(" "))
                    };
                    claims.insert("scope".into(), scope);
                }
                ValidClaims {
                    claims,
                    user_id,
                    deployment,
                    name,
                    email,
                    pro: pro == Some(true),
                    scopes,
                }
            },
        )
}

proptest! {
    /// Valid claims, as JSON or as the authorizer's strings, read as the caller they name.
    #[test]
    fn valid_claims_read_as_their_caller(c in valid_claims()) {
        let caller = caller_from_claims(&c.claims).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", c.claims)))?;
        prop_assert_eq!(caller.user_id, c.user_id);
        prop_assert_eq!(caller.deployment.as_str(), c.deployment.as_str());
        prop_assert_eq!(&caller.name, &c.name);
        prop_assert_eq!(&caller.email, &c.email);
        prop_assert_eq!(caller.pro, c.pro);
        prop_assert_eq!(&caller.scopes, &c.scopes);
        // Signed into a token, the same caller comes out of the verifier.
        let mut claims = c.claims.clone();
        claims.insert("exp".into(), json!(future()));
        let token = sign(&json!({"alg": "HS256", "typ": "JWT"}), &Value::Object(claims));
        prop_assert_eq!(TokenVerifier::new(Some(SECRET)).verify(&token), Ok(caller));
    }

    /// Any claims at all: a caller or a reason; a signed token with them verifies to
    /// exactly what the claims read as.
    #[test]
    fn any_claims_are_a_caller_or_a_reason(
        c in valid_claims(),
        changes in prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(vec!["sub", "deployment", "name", "email", "pro", "scope", "scp"]).prop_map(str::to_owned),
                key(),
            ],
            prop::option::of(json_tree()), 0..4),
    ) {
        let mut claims = c.claims.clone();
        for (k, v) in changes {
            if ["exp", "nbf", "iat", "aud", "iss"].contains(&k.as_str()) {
                continue;
            }
            match v {
                Some(v) => claims.insert(k, v),
                None => claims.remove(&k),
            };
        }
        let read = caller_from_claims(&claims);
        if let Err(e) = &read {
            prop_assert!(matches!(e, AuthError::InvalidClaims(_)), "{e:?}");
        }
        let mut signed = claims.clone();
        signed.insert("exp".into(), json!(future()));
        let token = sign(&json!({"alg": "HS256"}), &Value::Object(signed));
        let verified = TokenVerifier::new(Some(SECRET)).verify(&token);
        let sub_not_text = claims.get("sub").is_some_and(|s| !s.is_string() && !s.is_null());
        // The JWT library parses float claims with its own rounding: a float `name` may
        // read one digit apart. Nothing else may differ.
        let has_float = claims.values().any(Value::is_f64);
        if verified != read && !(has_float && verified.is_ok() == read.is_ok()) {
            // The JWT library itself may refuse a `sub` that is no string (as malformed).
            prop_assert!(
                sub_not_text && matches!(verified, Err(AuthError::Malformed)),
                "verified {verified:?}, claims read {read:?}"
            );
        }
    }

    /// Any string as a bearer token, including JWT-shaped ones with any header and
    /// payload, signed with a wrong key or not at all, or a good token with one character
    /// changed: refused, never a panic and never a caller.
    #[test]
    fn forged_and_garbled_tokens_are_refused(
        garbage in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_=.-]{0,60}",
            (json_tree(), json_tree(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(h, c, s)| format!("{}.{}.{}", b64(h.to_string().as_bytes()), b64(c.to_string().as_bytes()), b64(&s))),
            (prop::sample::select(vec!["HS256", "HS384", "RS256", "none", "ES256", "EdDSA"]), json_tree())
                .prop_map(|(alg, c)| format!("{}.{}.", b64(json!({"alg": alg}).to_string().as_bytes()), b64(c.to_string().as_bytes()))),
        ],
        c in valid_claims(),
        at in any::<prop::sample::Index>(),
        with in prop::sample::select(vec!['A', 'b', '0', '_', '-', '.', '=']),
    ) {
        let verifier = TokenVerifier::new(Some(SECRET));
        prop_assert!(verifier.verify(&garbage).is_err());
        let mut claims = c.claims.clone();
        claims.insert("exp".into(), json!(future()));
        let token = sign(&json!({"alg": "HS256"}), &Value::Object(claims));
        let mut chars: Vec<char> = token.chars().collect();
        let i = at.index(chars.len());
        // Another character than the one there (no case is thrown away: a million cases
        // would hit proptest's limit on rejects).
        chars[i] = if chars[i] == with { if with == 'A' { 'B' } else { 'A' } } else { with };
        let changed: String = chars.into_iter().collect();
        prop_assert!(verifier.verify(&changed).is_err(), "{token} changed at {i} to {with} verified");
    }
}

// ---------------------------------------------------------------------------------------
// The XML and YAML writers
// ---------------------------------------------------------------------------------------

/// Whether XML 1.0 (fifth edition) allows `c` to start a name, colons aside.
fn xml_name_start(c: char) -> bool {
    matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn xml_name_char(c: char) -> bool {
    xml_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// The element a key becomes: as it is when it is an XML name; otherwise every character
/// that cannot be in a name becomes `_`, and `_` is put first when the first character
/// cannot start one.
fn element_name(key: &str) -> String {
    let mut name = String::new();
    if !key.chars().next().is_some_and(xml_name_start) {
        name.push('_');
    }
    name.extend(key.chars().map(|c| if xml_name_char(c) { c } else { '_' }));
    name
}

/// What an XML reader sees of `value` written as the element `name`, which is what the XML
/// form promises: scalars become their text (numbers and booleans as JSON writes them, a
/// character XML 1.0 forbids as U+FFFD); null, the empty string and empty arrays and
/// objects are all an empty element, read as null; an object's keys become element names
/// ([`element_name`], the last of equal names winning as a reader's map keeps it); an
/// array is its items, each an element named by the array's name made singular, so an
/// element whose children all carry that name is read as an array. An object under
/// `headers` (names a user chose) is a list of `<header>` items, each with `<name>` and
/// `<value>` (SPEC section 9).
fn xml_view(value: &Value, name: &str) -> Value {
    match value {
        Value::Object(map) if name == "headers" && !map.is_empty() => Value::Array(
            map.iter()
                .map(|(k, v)| {
                    json!({"name": xml_view(&Value::String(k.clone()), "name"), "value": xml_view(v, "value")})
                })
                .collect(),
        ),
        Value::Null => Value::Null,
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) if s.is_empty() => Value::Null,
        Value::String(s) => Value::String(
            s.chars()
                .map(|c| {
                    let allowed = matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
                    if allowed { c } else { char::REPLACEMENT_CHARACTER }
                })
                .collect(),
        ),
        Value::Array(items) if items.is_empty() => Value::Null,
        Value::Array(items) => {
            let item = singular(name);
            Value::Array(items.iter().map(|v| xml_view(v, &item)).collect())
        }
        Value::Object(map) if map.is_empty() => Value::Null,
        Value::Object(map) => {
            let item = singular(name);
            let children: Vec<(String, &Value)> = map.iter().map(|(k, v)| (element_name(k), v)).collect();
            if children.iter().all(|(n, _)| *n == item) {
                return Value::Array(children.iter().map(|(n, v)| xml_view(v, n)).collect());
            }
            let mut out = Map::new();
            for (n, v) in children {
                let viewed = xml_view(v, &n);
                out.insert(n, viewed);
            }
            Value::Object(out)
        }
    }
}

/// XML read back the way [`xml_view`] describes.
fn xml_read(node: roxmltree::Node) -> Value {
    let children: Vec<_> = node.children().filter(|c| c.is_element()).collect();
    let name = node.tag_name().name();
    if children.is_empty() {
        let text: String = node.children().filter_map(|c| c.text()).collect();
        return if text.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        };
    }
    let item = singular(name);
    if children.iter().all(|c| c.tag_name().name() == item) {
        return Value::Array(children.into_iter().map(xml_read).collect());
    }
    let mut map = Map::new();
    for c in children {
        map.insert(c.tag_name().name().to_owned(), xml_read(c));
    }
    Value::Object(map)
}

fn rendered(format: Format, response: &Value) -> String {
    let answer = respond(Ok(Reply::ok(response.clone())), format, Suppress::default());
    String::from_utf8(answer.into_body().to_vec()).expect("answers are UTF-8")
}

proptest! {
    /// Any tree as an answer's `response`, written as XML: a well-formed document with a
    /// `<data>` root that reads back to the tree (as [`xml_view`] defines it).
    #[test]
    fn xml_answers_read_back_to_the_tree(tree in json_tree()) {
        let xml = rendered(Format::Xml, &tree);
        let doc = roxmltree::Document::parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml:?}")))?;
        prop_assert_eq!(doc.root_element().tag_name().name(), "data");
        let response = doc.root_element().children().find(|c| c.has_tag_name("response")).expect("a response element");
        prop_assert_eq!(xml_read(response), xml_view(&tree, "response"), "{}", xml);
        let meta = doc.root_element().children().find(|c| c.has_tag_name("meta")).expect("a meta element");
        let meta = xml_read(meta);
        prop_assert_eq!(meta["status"].as_str(), Some("ok"));
    }

    /// Any tree as an answer's `response`, written as YAML: it reads back as the same tree,
    /// every scalar of the same type.
    #[test]
    fn yaml_answers_read_back_to_the_tree(tree in json_tree()) {
        let yaml = rendered(Format::Yaml, &tree);
        let back: Value = serde_norway::from_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}: {yaml}")))?;
        prop_assert_eq!(&back["response"], &tree, "{}", yaml);
        prop_assert_eq!(back["meta"]["status"].as_str(), Some("ok"));
    }

    /// Any tree written by the YAML writer at the top (not inside the envelope).
    #[test]
    fn yaml_trees_read_back_at_the_top(tree in json_tree()) {
        let yaml = String::from_utf8(Format::Yaml.render(&tree)).unwrap();
        let back: Value = serde_norway::from_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}: {yaml}")))?;
        prop_assert_eq!(back, tree, "{}", yaml);
    }
}

/// The XML view is not vacuous: the reader tells arrays, objects and text apart.
#[test]
fn the_xml_view_keeps_structure() {
    let tree = json!({"types": [{"event_id": "a"}, null], "n": 1.5, "empty": "", "odd key": [[]]});
    let xml = rendered(Format::Xml, &tree);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let response = doc
        .root_element()
        .children()
        .find(|c| c.has_tag_name("response"))
        .unwrap();
    assert_eq!(
        xml_read(response),
        json!({"types": [{"event_id": "a"}, null], "n": "1.5", "empty": null, "odd_key": [null]})
    );
    assert_eq!(xml_read(response), xml_view(&tree, "response"));
    assert_eq!(
        BTreeSet::from(["type"]),
        doc.descendants()
            .filter(|n| n.has_tag_name("type"))
            .map(|n| n.tag_name().name())
            .collect()
    );
}
