//! The YAML answers, byte for byte.
//!
//! Each case is an answer as `envelope::respond` writes it (or a tree as `Format::render`
//! writes it at the top), in the shapes the API answers: a subscription, lists full and
//! empty, the event types, the events answer, the delivery log, a dispatch, errors and the
//! `_suppress_*` switches; then the strings, keys and numbers a YAML reader would misread
//! (the YAML 1.1 words, numbers and times, leading spaces, colons, line breaks, controls,
//! floats such as `1e300`), nested and empty arrays and objects, and nulls. Every case is
//! also read back with a YAML reader to the tree the JSON form carries.
//!
//! A change to the writer or to the YAML crate that moves a byte fails here, naming the
//! case and printing what was written.

use serde_json::{Value, json};
use webhooks_api::envelope::{ApiError, Reply, Status, Suppress, respond};
use webhooks_api::format::Format;

/// An answer in YAML, and the same answer in JSON (the tree YAML must read back as).
fn answer(result: Result<Reply, ApiError>, suppress: Suppress) -> (String, Value) {
    let yaml = respond(result.clone(), Format::Yaml, suppress);
    let json = respond(result, Format::Json, suppress);
    (
        String::from_utf8(yaml.into_body().to_vec()).expect("YAML answers are UTF-8"),
        serde_json::from_slice(json.body()).expect("JSON answers are JSON"),
    )
}

/// `written` is `expected` byte for byte, and reads back as `tree`.
fn check(case: &str, written: &str, tree: &Value, expected: &str) {
    assert!(
        written == expected,
        "{case}: the YAML changed; written:\n{written}\n-- as a Rust string: {written:?}\n-- expected:\n{expected}"
    );
    let back: Value = serde_norway::from_str(written).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(&back, tree, "{case}: YAML reads back as the JSON tree");
}

fn check_answer(case: &str, result: Result<Reply, ApiError>, suppress: Suppress, expected: &str) {
    let (yaml, tree) = answer(result, suppress);
    check(case, &yaml, &tree, expected);
}

fn check_tree(case: &str, tree: Value, expected: &str) {
    let yaml = String::from_utf8(Format::Yaml.render(&tree)).expect("UTF-8");
    check(case, &yaml, &tree, expected);
}

fn subscription(id: &str, active: bool) -> Value {
    json!({
        "subscription_id": id,
        "event_id": "create_task",
        "trigger_type": "create",
        "trigger_table": "task",
        "trigger_url": "https://hooks.example.com/accelo?x=1&y=yes",
        "content_type": "application/json",
        "user_id": 1,
        "user_deployment": "hq",
        "active": active,
    })
}

#[test]
fn a_created_subscription() {
    let mut body = subscription("6650a1b2c3d4e5f601234567", true);
    body["user"] = json!({"id": 1, "name": "User 1", "email": "user1@hq.example"});
    check_answer(
        "created",
        Ok(Reply::created(json!({ "subscription": body }))),
        Suppress::default(),
        r#"meta:
  message: "A resource was successfully created."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok_created"
  status: "ok_created"
response:
  subscription:
    active: true
    content_type: "application/json"
    event_id: "create_task"
    subscription_id: "6650a1b2c3d4e5f601234567"
    trigger_table: "task"
    trigger_type: "create"
    trigger_url: "https://hooks.example.com/accelo?x=1&y=yes"
    user:
      email: "user1@hq.example"
      id: 1
      name: "User 1"
    user_deployment: "hq"
    user_id: 1
"#,
    );
}

#[test]
fn a_subscription_disabled_with_a_reason() {
    let mut body = subscription("6650a1b2c3d4e5f601234567", false);
    body["disabled_reason"] =
        json!("the receiver answered 410 Gone: \"unsubscribed\"\nno more deliveries");
    check_answer(
        "disabled",
        Ok(Reply::ok(json!({ "subscription": body }))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  subscription:
    active: false
    content_type: "application/json"
    disabled_reason: "the receiver answered 410 Gone: \"unsubscribed\"\nno more deliveries"
    event_id: "create_task"
    subscription_id: "6650a1b2c3d4e5f601234567"
    trigger_table: "task"
    trigger_type: "create"
    trigger_url: "https://hooks.example.com/accelo?x=1&y=yes"
    user_deployment: "hq"
    user_id: 1
"#,
    );
}

#[test]
fn a_list_and_an_empty_list() {
    check_answer(
        "list",
        Ok(Reply::ok(json!({
            "subscriptions": [
                subscription("6650a1b2c3d4e5f601234567", true),
                subscription("6650a1b2c3d4e5f601234568", false),
            ],
            "subscriptions_users": [{"id": 1, "name": "User 1", "email": "user1@hq.example"}],
        }))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  subscriptions:
    - active: true
      content_type: "application/json"
      event_id: "create_task"
      subscription_id: "6650a1b2c3d4e5f601234567"
      trigger_table: "task"
      trigger_type: "create"
      trigger_url: "https://hooks.example.com/accelo?x=1&y=yes"
      user_deployment: "hq"
      user_id: 1
    - active: false
      content_type: "application/json"
      event_id: "create_task"
      subscription_id: "6650a1b2c3d4e5f601234568"
      trigger_table: "task"
      trigger_type: "create"
      trigger_url: "https://hooks.example.com/accelo?x=1&y=yes"
      user_deployment: "hq"
      user_id: 1
  subscriptions_users:
    - email: "user1@hq.example"
      id: 1
      name: "User 1"
"#,
    );
    check_answer(
        "empty list",
        Ok(Reply::ok(
            json!({"subscriptions": [], "subscriptions_users": []}),
        )),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  subscriptions: []
  subscriptions_users: []
"#,
    );
}

#[test]
fn the_event_types() {
    let catalogue = webhooks_core::model::catalogue::Catalogue::default();
    let types: Vec<&webhooks_core::model::catalogue::EventType> = [
        "create_task",
        "update_request_status",
        "webhook_subscription_removed",
    ]
    .iter()
    .map(|id| catalogue.get(id).expect("in the default catalogue"))
    .collect();
    check_answer(
        "types",
        Ok(Reply::ok(json!({ "types": types }))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  types:
    - event_id: "create_task"
      event_title: "Task created"
      trigger_table: "task"
      trigger_type: "create"
    - event_id: "update_request_status"
      event_title: "Request status changed"
      trigger_table: "request"
      trigger_type: "update"
    - event_id: "webhook_subscription_removed"
      event_title: "Webhook subscription removed automatically"
      trigger_table: "webhook_subscription"
      trigger_type: "update"
"#,
    );
}

#[test]
fn the_events_answer_accepted_and_refused() {
    check_answer(
        "events accepted",
        Ok(Reply::ok(json!({"accepted": 1, "events": [
            {"index": 0, "status": "accepted", "event_uid": "evt_0123456789abcdef0123456789abcdef"},
            {"index": 1, "status": "invalid", "message": "event_id: `no` is not an event type; GET /api/v0/webhooks/subscriptions/types lists them"},
            {"index": 2, "status": "failed", "message": "the event could not be queued; send it again"},
        ]}))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  accepted: 1
  events:
    - event_uid: "evt_0123456789abcdef0123456789abcdef"
      index: 0
      status: "accepted"
    - index: 1
      message: "event_id: `no` is not an event type; GET /api/v0/webhooks/subscriptions/types lists them"
      status: "invalid"
    - index: 2
      message: "the event could not be queued; send it again"
      status: "failed"
"#,
    );
    let mut refused =
        ApiError::invalid_request("no event was valid; the first problem: object_id is required");
    refused.response = Some(json!({"accepted": 0, "events": [
        {"index": 0, "status": "invalid", "message": "object_id is required"},
        {"index": 1, "status": "invalid", "message": "visible_to: [1, \"2\"] must be \"all\" or user ids"},
    ]}));
    check_answer(
        "events refused",
        Err(refused),
        Suppress::default(),
        r#"meta:
  message: "no event was valid; the first problem: object_id is required"
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#invalid_request"
  status: "invalid_request"
response:
  accepted: 0
  events:
    - index: 0
      message: "object_id is required"
      status: "invalid"
    - index: 1
      message: "visible_to: [1, \"2\"] must be \"all\" or user ids"
      status: "invalid"
"#,
    );
}

#[test]
fn the_delivery_log() {
    check_answer(
        "deliveries",
        Ok(Reply::ok(json!({
            "deliveries": [
                {
                    "delivery_id": "msg_0123456789abcdef0123456789abcdef",
                    "event_id": "create_task",
                    "object_id": 42,
                    "attempt": 2,
                    "outcome": "failed",
                    "http_status": 500,
                    "duration_ms": 1234,
                    "error_kind": "http_500",
                    "reason": "the receiver answered 500",
                    "response_body": "<html>\r\n  <body>oops: no</body>\n</html>\u{0}\u{1b}[0m",
                    "attempted_at": "2026-11-27T20:00:00Z",
                    "next_attempt_at": "2026-11-27T20:05:00Z",
                },
                {
                    "delivery_id": "msg_fedcba9876543210fedcba9876543210",
                    "event_id": "webhook_subscription_disabled",
                    "object_id": "6650a1b2c3d4e5f601234567",
                    "attempt": 1,
                    "outcome": "delivered",
                    "http_status": 204,
                    "duration_ms": 0,
                    "error_kind": null,
                    "reason": null,
                    "response_body": null,
                    "attempted_at": "2026-11-27T19:59:59Z",
                    "next_attempt_at": null,
                },
                {
                    "delivery_id": "msg_00000000000000000000000000000000",
                    "event_id": "create_task",
                    "object_id": 7,
                    "attempt": 5,
                    "outcome": "failed",
                    "http_status": null,
                    "duration_ms": 10000,
                    "error_kind": "timeout",
                    "reason": "the receiver did not answer in time",
                    "response_body": null,
                    "attempted_at": "2026-11-27T19:00:00Z",
                    "next_attempt_at": null,
                },
            ],
            "next_cursor": "ZGwxfDY2NTBhMWIyYzNkNGU1ZjYwMTIzNDU2N3wx",
            "limit": 3,
            "page": 0,
        }))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  deliveries:
    - attempt: 2
      attempted_at: "2026-11-27T20:00:00Z"
      delivery_id: "msg_0123456789abcdef0123456789abcdef"
      duration_ms: 1234
      error_kind: "http_500"
      event_id: "create_task"
      http_status: 500
      next_attempt_at: "2026-11-27T20:05:00Z"
      object_id: 42
      outcome: "failed"
      reason: "the receiver answered 500"
      response_body: "<html>\r\n  <body>oops: no</body>\n</html>\x00\x1B[0m"
    - attempt: 1
      attempted_at: "2026-11-27T19:59:59Z"
      delivery_id: "msg_fedcba9876543210fedcba9876543210"
      duration_ms: 0
      error_kind: null
      event_id: "webhook_subscription_disabled"
      http_status: 204
      next_attempt_at: null
      object_id: "6650a1b2c3d4e5f601234567"
      outcome: "delivered"
      reason: null
      response_body: null
    - attempt: 5
      attempted_at: "2026-11-27T19:00:00Z"
      delivery_id: "msg_00000000000000000000000000000000"
      duration_ms: 10000
      error_kind: "timeout"
      event_id: "create_task"
      http_status: null
      next_attempt_at: null
      object_id: 7
      outcome: "failed"
      reason: "the receiver did not answer in time"
      response_body: null
  limit: 3
  next_cursor: "ZGwxfDY2NTBhMWIyYzNkNGU1ZjYwMTIzNDU2N3wx"
  page: 0
"#,
    );
    check_answer(
        "no deliveries",
        Ok(Reply::ok(
            json!({"deliveries": [], "next_cursor": null, "limit": 10}),
        )),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  deliveries: []
  limit: 10
  next_cursor: null
"#,
    );
}

#[test]
fn a_dispatch_a_resend_a_recovery_a_secret_and_a_delete() {
    check_answer(
        "dispatch",
        Ok(Reply::ok(json!({
            "status": null,
            "delivery_id": "msg_0123456789abcdef0123456789abcdef",
            "outcome": "failed",
            "error": "blocked",
            "reason": "the receiver's address is not allowed",
            "duration_ms": 3,
        }))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  delivery_id: "msg_0123456789abcdef0123456789abcdef"
  duration_ms: 3
  error: "blocked"
  outcome: "failed"
  reason: "the receiver's address is not allowed"
  status: null
"#,
    );
    check_answer(
        "resend",
        Ok(Reply::ok(
            json!({"delivery_id": "msg_0123456789abcdef0123456789abcdef", "queued": 1}),
        )),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  delivery_id: "msg_0123456789abcdef0123456789abcdef"
  queued: 1
"#,
    );
    check_answer(
        "recover",
        Ok(Reply::ok(json!({"queued": 0}))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  queued: 0
"#,
    );
    check_answer(
        "secret",
        Ok(Reply::ok(json!({
            "subscription": subscription("6650a1b2c3d4e5f601234567", true),
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        }))),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response:
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  subscription:
    active: true
    content_type: "application/json"
    event_id: "create_task"
    subscription_id: "6650a1b2c3d4e5f601234567"
    trigger_table: "task"
    trigger_type: "create"
    trigger_url: "https://hooks.example.com/accelo?x=1&y=yes"
    user_deployment: "hq"
    user_id: 1
"#,
    );
    check_answer(
        "delete",
        Ok(Reply::ok_empty()),
        Suppress::default(),
        r#"meta:
  message: "Everything executed as expected."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#ok"
  status: "ok"
response: null
"#,
    );
}

#[test]
fn errors_and_the_suppress_switches() {
    let mut limited = ApiError::new(Status::TooManyRequests, "slow down: 120 requests a minute");
    limited.retry_after = Some(30);
    check_answer(
        "too many requests",
        Err(limited),
        Suppress::default(),
        r#"meta:
  message: "slow down: 120 requests a minute"
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#too_many_requests"
  status: "too_many_requests"
response: null
"#,
    );
    check_answer(
        "server error",
        Err(ApiError::server_error()),
        Suppress::default(),
        r#"meta:
  message: "The request failed because of an error on our side; please retry later."
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#server_error"
  status: "server_error"
response: null
"#,
    );
    check_answer(
        "invalid request, message suppressed",
        Err(ApiError::invalid_request("trigger_url is required")),
        Suppress {
            message: true,
            http_status: true,
            meta: false,
        },
        r#"meta:
  more_info: "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#invalid_request"
  status: "invalid_request"
response: null
"#,
    );
    check_answer(
        "meta suppressed",
        Ok(Reply::ok(json!({"queued": 2}))),
        Suppress {
            meta: true,
            ..Suppress::default()
        },
        r#"response:
  queued: 2
"#,
    );
    check_answer(
        "error, meta suppressed",
        Err(ApiError::new(
            Status::InvalidClient,
            "the token has expired",
        )),
        Suppress {
            meta: true,
            ..Suppress::default()
        },
        r#"response: null
"#,
    );
}

/// Strings a YAML 1.1 or 1.2 reader would take for something else, or that break a plain
/// scalar: every one stays a double-quoted string.
#[test]
fn strings_a_reader_would_misread() {
    let tricky = [
        "yes",
        "no",
        "Yes",
        "NO",
        "on",
        "Off",
        "y",
        "n",
        "true",
        "False",
        "null",
        "Null",
        "~",
        "",
        "1e3",
        "1E3",
        "+1",
        "-1",
        "1.0",
        ".5",
        "0x1F",
        "0o17",
        "017",
        "1_000",
        "1:20",
        "190:20:30",
        ".inf",
        "-.Inf",
        ".nan",
        "2026-11-27",
        "2026-11-27T20:00:00Z",
        "2026-11-27 20:00:00 +1",
        "=",
        "<<",
        "- a",
        "-",
        "? x",
        "a: b",
        "a:b",
        ":",
        "#c",
        "a #c",
        "'q'",
        "\"dq\"",
        "back\\slash",
        "  leading",
        "trailing  ",
        " ",
        "line\nbreak",
        "cr\rlf",
        "tab\there",
        "&anchor",
        "*alias",
        "!tag",
        "%YAML",
        "---",
        "...",
        "[1]",
        "{a: 1}",
        "|",
        ">",
        "@at",
        "`tick",
        ",",
        "é",
        "日本",
        "🦀",
    ];
    check_tree(
        "tricky strings",
        json!({"list": tricky.as_slice()}),
        r##"list:
  - "yes"
  - "no"
  - "Yes"
  - "NO"
  - "on"
  - "Off"
  - "y"
  - "n"
  - "true"
  - "False"
  - "null"
  - "Null"
  - "~"
  - ""
  - "1e3"
  - "1E3"
  - "+1"
  - "-1"
  - "1.0"
  - ".5"
  - "0x1F"
  - "0o17"
  - "017"
  - "1_000"
  - "1:20"
  - "190:20:30"
  - ".inf"
  - "-.Inf"
  - ".nan"
  - "2026-11-27"
  - "2026-11-27T20:00:00Z"
  - "2026-11-27 20:00:00 +1"
  - "="
  - "<<"
  - "- a"
  - "-"
  - "? x"
  - "a: b"
  - "a:b"
  - ":"
  - "#c"
  - "a #c"
  - "'q'"
  - "\"dq\""
  - "back\\slash"
  - "  leading"
  - "trailing  "
  - " "
  - "line\nbreak"
  - "cr\rlf"
  - "tab\there"
  - "&anchor"
  - "*alias"
  - "!tag"
  - "%YAML"
  - "---"
  - "..."
  - "[1]"
  - "{a: 1}"
  - "|"
  - ">"
  - "@at"
  - "`tick"
  - ","
  - "é"
  - "日本"
  - "🦀"
"##,
    );
}

/// Keys are plain only when no reader can take them for anything but a string.
#[test]
fn keys_a_reader_would_misread() {
    check_tree(
        "tricky keys",
        json!({
            "plain_key": 1, "_under": 2, "CamelCase9": 3,
            "yes": 4, "No": 5, "ON": 6, "off": 7, "y": 8, "N": 9, "true": 10, "null": 11,
            "1": 12, "1e3": 13, "": 14, " lead": 15, "a b": 16, "a:b": 17, "a-b": 18,
            "a.b": 19, "é": 20, "<<": 21, "~": 22, "line\nkey": 23, "\"q\"": 24,
        }),
        r#""": 14
" lead": 15
"\"q\"": 24
"1": 12
"1e3": 13
"<<": 21
CamelCase9: 3
"N": 9
"No": 5
"ON": 6
_under: 2
"a b": 16
"a-b": 18
"a.b": 19
"a:b": 17
"line\nkey": 23
"null": 11
"off": 7
plain_key: 1
"true": 10
"y": 8
"yes": 4
"~": 22
"é": 20
"#,
    );
}

/// Numbers as JSON has them; floats spelled so that YAML 1.1 reads floats too.
#[test]
fn numbers_and_booleans() {
    check_tree(
        "numbers",
        json!({
            "ints": [0, 1, -1, i64::MIN, i64::MAX, u64::MAX],
            "floats": [1e300, 1.5e-7, -2e22, 0.25, 3.0, -0.0, 0.1, 1e-300, 123456789.125, f64::MAX, f64::MIN_POSITIVE],
            "bools": [true, false],
        }),
        r#"bools:
  - true
  - false
floats:
  - 1.0e+300
  - 1.5e-7
  - -2.0e+22
  - 0.25
  - 3.0
  - -0.0
  - 0.1
  - 1.0e-300
  - 123456789.125
  - 1.7976931348623157e+308
  - 2.2250738585072014e-308
ints:
  - 0
  - 1
  - -1
  - -9223372036854775808
  - 9223372036854775807
  - 18446744073709551615
"#,
    );
}

/// Nested and empty arrays and objects, nulls, at every depth.
#[test]
fn nesting_emptiness_and_nulls() {
    check_tree(
        "nested",
        json!({
            "empty_array": [],
            "empty_object": {},
            "null": null,
            "nulls": [null, null],
            "nested": [[1, "2"], [], {}, [[]], [{}], {"a": []}, {"a": {}}, {"a": [null, {"b": [[3]]}]}],
            "deep": {"a": {"b": {"c": {"d": [{"e": null, "f": [{}]}]}}}},
        }),
        r#"deep:
  a:
    b:
      c:
        d:
          - e: null
            f:
              - {}
empty_array: []
empty_object: {}
nested:
  -
    - 1
    - "2"
  - []
  - {}
  -
    - []
  -
    - {}
  - a: []
  - a: {}
  - a:
      - null
      - b:
          -
            - 3
"null": null
nulls:
  - null
  - null
"#,
    );
}

/// At the top, outside the envelope: the writer handles any tree.
#[test]
fn trees_at_the_top() {
    check_tree(
        "top array",
        json!([null, 1, "a", [2], {"k": "v"}, [], {}]),
        r#"- null
- 1
- "a"
-
  - 2
- k: "v"
- []
- {}
"#,
    );
    check_tree("top empty object", json!({}), "{}\n");
    check_tree("top empty array", json!([]), "[]\n");
    check_tree("top null", json!(null), "null\n");
    check_tree("top string", json!("yes"), "\"yes\"\n");
    check_tree("top float", json!(1e300), "1.0e+300\n");
}
