//! Accelo's answer envelope: `{"meta": {"status", "message", "more_info"}, "response": ...}`,
//! the status table of the spec, and the `_suppress_*` switches.
//!
//! Guarantee: every answer carries `response`, `null` when there is no resource (errors,
//! delete, trigger), and `meta` unless `_suppress_meta` asked for it to go, so a client
//! that reads `body["response"]` never finds the key missing.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::format::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    OkCreated,
    InvalidRequest,
    InvalidClient,
    InvalidPermission,
    TooManyRequests,
    ServerError,
}

impl Status {
    pub fn code(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::OkCreated => "ok_created",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidPermission => "invalid_permission",
            Self::TooManyRequests => "too_many_requests",
            Self::ServerError => "server_error",
        }
    }

    pub fn http(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::OkCreated => 201,
            Self::InvalidRequest => 400,
            Self::InvalidClient => 401,
            Self::InvalidPermission => 403,
            Self::TooManyRequests => 429,
            Self::ServerError => 500,
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Self::Ok => "Everything executed as expected.",
            Self::OkCreated => "A resource was successfully created.",
            Self::InvalidRequest => "We could not interpret your request.",
            Self::InvalidClient => "Invalid client authentication.",
            Self::InvalidPermission => "You are not allowed to do this.",
            Self::TooManyRequests => "Too many requests; slow down and retry later.",
            Self::ServerError => {
                "The request failed because of an error on our side; please retry later."
            }
        }
    }

    pub fn more_info(self) -> String {
        format!(
            "https://affinitylive.jira.com/wiki/display/APIS/Status+Codes#{}",
            self.code()
        )
    }
}

/// A failed request: a status of the table and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: Status,
    pub message: String,
    /// Seconds, for `too_many_requests`.
    pub retry_after: Option<u64>,
    /// Details that go with the error (the per-event verdicts of a refused publish).
    pub response: Option<Value>,
}

impl ApiError {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            response: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(Status::InvalidRequest, message)
    }

    /// An error whose details must stay inside: logged by the caller, never sent.
    pub fn server_error() -> Self {
        Self::new(Status::ServerError, Status::ServerError.default_message())
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: Status,
    pub response: Option<Value>,
}

impl Reply {
    pub fn ok(response: Value) -> Self {
        Self {
            status: Status::Ok,
            response: Some(response),
        }
    }

    pub fn created(response: Value) -> Self {
        Self {
            status: Status::OkCreated,
            response: Some(response),
        }
    }

    pub fn ok_empty() -> Self {
        Self {
            status: Status::Ok,
            response: None,
        }
    }
}

/// Accelo's `_suppress_http_status`, `_suppress_message` and `_suppress_meta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suppress {
    pub http_status: bool,
    pub message: bool,
    pub meta: bool,
}

/// Builds the HTTP answer for a result, in the chosen format.
pub fn respond(
    result: Result<Reply, ApiError>,
    format: Format,
    suppress: Suppress,
) -> http::Response<Bytes> {
    let (status, message, response, retry_after) = match result {
        Ok(reply) => (
            reply.status,
            reply.status.default_message().to_owned(),
            reply.response,
            None,
        ),
        Err(e) => (e.status, e.message, e.response, e.retry_after),
    };
    let mut tree = Map::new();
    if !suppress.meta {
        let mut meta = Map::new();
        meta.insert("status".into(), json!(status.code()));
        if !suppress.message {
            meta.insert("message".into(), json!(message));
        }
        meta.insert("more_info".into(), json!(status.more_info()));
        tree.insert("meta".into(), Value::Object(meta));
    }
    tree.insert("response".into(), response.unwrap_or(Value::Null));
    let http_status = if suppress.http_status {
        200
    } else {
        status.http()
    };
    let mut builder = http::Response::builder()
        .status(http_status)
        .header(http::header::CONTENT_TYPE, format.content_type())
        .header(http::header::CACHE_CONTROL, "no-store");
    if !suppress.message {
        // Accelo repeats the message in this header; keep it to printable ASCII.
        let reason: String = message
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .collect();
        builder = builder.header("X-Status-Reason", reason);
    }
    if let Some(secs) = retry_after {
        builder = builder.header(http::header::RETRY_AFTER, secs.to_string());
    }
    builder
        .body(Bytes::from(format.render(&Value::Object(tree))))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &http::Response<Bytes>) -> Value {
        serde_json::from_slice(r.body()).unwrap()
    }

    #[test]
    fn every_status_maps_to_its_http_code() {
        let table = [
            (Status::Ok, 200, "ok"),
            (Status::OkCreated, 201, "ok_created"),
            (Status::InvalidRequest, 400, "invalid_request"),
            (Status::InvalidClient, 401, "invalid_client"),
            (Status::InvalidPermission, 403, "invalid_permission"),
            (Status::TooManyRequests, 429, "too_many_requests"),
            (Status::ServerError, 500, "server_error"),
        ];
        for (status, http, code) in table {
            let r = respond(
                Err(ApiError::new(status, "m")),
                Format::Json,
                Suppress::default(),
            );
            assert_eq!(r.status().as_u16(), http);
            assert_eq!(body(&r)["meta"]["status"], code);
        }
    }

    #[test]
    fn suppress_switches_do_what_they_say() {
        let err = || Err(ApiError::invalid_request("trigger_url is required"));
        let r = respond(
            err(),
            Format::Json,
            Suppress {
                http_status: true,
                ..Default::default()
            },
        );
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(body(&r)["meta"]["status"], "invalid_request");
        let r = respond(
            err(),
            Format::Json,
            Suppress {
                message: true,
                ..Default::default()
            },
        );
        assert!(body(&r)["meta"].get("message").is_none());
        assert!(r.headers().get("X-Status-Reason").is_none());
        let r = respond(
            Ok(Reply::ok(json!({"a": 1}))),
            Format::Json,
            Suppress {
                meta: true,
                ..Default::default()
            },
        );
        assert_eq!(body(&r), json!({"response": {"a": 1}}));
        let r = respond(
            err(),
            Format::Json,
            Suppress {
                meta: true,
                ..Default::default()
            },
        );
        assert_eq!(body(&r), json!({"response": null}));
    }

    /// SPEC section 3: both keys always present; `"response": null` without a resource.
    #[test]
    fn answers_without_a_resource_carry_a_null_response_in_every_format() {
        let cases: Vec<(&str, Result<Reply, ApiError>, Suppress)> = vec![
            (
                "error",
                Err(ApiError::invalid_request("nope")),
                Suppress::default(),
            ),
            (
                "server error",
                Err(ApiError::server_error()),
                Suppress::default(),
            ),
            ("delete", Ok(Reply::ok_empty()), Suppress::default()),
            (
                "suppressed status",
                Err(ApiError::invalid_request("nope")),
                Suppress {
                    http_status: true,
                    message: true,
                    ..Default::default()
                },
            ),
        ];
        for (what, result, suppress) in cases {
            let json = respond(result.clone(), Format::Json, suppress);
            let tree = body(&json);
            assert_eq!(tree.get("response"), Some(&Value::Null), "{what}: {tree}");
            assert!(tree["meta"]["status"].is_string(), "{what}");

            let yaml = respond(result.clone(), Format::Yaml, suppress);
            let back: Value = serde_norway::from_slice(yaml.body()).unwrap();
            assert_eq!(back, tree, "{what}: YAML is the same tree");
            let text = std::str::from_utf8(yaml.body()).unwrap();
            assert!(text.contains("response: null"), "{what}: {text}");

            let xml = respond(result, Format::Xml, suppress);
            let text = std::str::from_utf8(xml.body()).unwrap();
            let doc = roxmltree::Document::parse(text).unwrap();
            let response = doc
                .root_element()
                .children()
                .find(|n| n.has_tag_name("response"))
                .unwrap_or_else(|| panic!("{what}: no <response> in {text}"));
            assert!(
                response.children().next().is_none(),
                "{what}: <response> is empty"
            );
        }
    }
}
