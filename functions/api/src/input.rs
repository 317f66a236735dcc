//! Reading a request: query parameters, a JSON or form-urlencoded body, the `_suppress_*`
//! switches. Bad input becomes an `invalid_request` with a sentence that says what to fix.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::envelope::{ApiError, Suppress};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a parameter was given as. Query strings and form bodies carry only text; a JSON
/// body keeps the JSON type, so that a field given the wrong type is refused instead of
/// being read as something else (an array `secret` is not "no secret").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    /// Query string, form body, or a JSON string.
    Text,
    Number,
    Bool,
    Array,
    Object,
}

impl Given {
    fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Null => None,
            Value::String(_) => Some(Self::Text),
            Value::Number(_) => Some(Self::Number),
            Value::Bool(_) => Some(Self::Bool),
            Value::Array(_) => Some(Self::Array),
            Value::Object(_) => Some(Self::Object),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Text => "a string",
            Self::Number => "a number",
            Self::Bool => "true or false",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

#[derive(Debug, Clone)]
struct Field {
    /// The value as text: scalars as written, arrays and objects as empty text.
    text: String,
    given: Given,
}

/// Request parameters: the query string, then the body's fields on top. A JSON `null`
/// counts as absent.
#[derive(Debug, Default, Clone)]
pub struct Params {
    fields: HashMap<String, Field>,
    /// The body as JSON, when it was JSON (event ingestion reads it whole).
    pub json: Option<Value>,
    /// The names the body gave, `null` ones too, in the body's order.
    body_names: Vec<String>,
}

impl Params {
    /// Any scalar as text (a JSON number or bool as written); for switches and other
    /// parameters that do not care how they were spelled.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .filter(|f| !matches!(f.given, Given::Array | Given::Object))
            .map(|f| f.text.as_str())
    }

    /// A parameter that must be text: a JSON number, bool, array or object is refused
    /// with a sentence naming the field.
    pub fn string(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(f) if f.given == Given::Text => Ok(Some(f.text.as_str())),
            Some(f) => Err(wrong_type(name, "a string", f.given)),
        }
    }

    /// A parameter that is a number, given as a JSON number or as text (which the caller
    /// then parses): a JSON bool, array or object is refused.
    pub fn number(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(f) if matches!(f.given, Given::Text | Given::Number) => Ok(Some(f.text.as_str())),
            Some(f) => Err(wrong_type(name, "a number", f.given)),
        }
    }

    /// A parameter that is a switch, given as a JSON bool or as text (`true`, `false`,
    /// which the caller then parses): a JSON number, array or object is refused.
    pub fn boolean(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(f) if matches!(f.given, Given::Text | Given::Bool) => Ok(Some(f.text.as_str())),
            Some(f) => Err(wrong_type(name, "true or false", f.given)),
        }
    }

    /// A structured field that only a JSON body carries (a subscription's `headers` and
    /// `retry_schedule`): its JSON value, `null` included (which the caller reads as
    /// "remove"). Named in a form body or the query string, it is refused.
    pub fn json_only(&self, name: &str) -> Result<Option<&Value>, ApiError> {
        if let Some(value) = self.json.as_ref().and_then(|body| body.get(name)) {
            return Ok(Some(value));
        }
        if self.fields.contains_key(name) {
            return Err(ApiError::invalid_request(format!(
                "{name} can only be given in a JSON body (Content-Type: application/json)"
            )));
        }
        Ok(None)
    }

    pub fn suppress(&self) -> Suppress {
        let on = |k: &str| {
            matches!(
                self.get(k).map(str::to_ascii_lowercase).as_deref(),
                Some("1" | "true" | "yes" | "on")
            )
        };
        Suppress {
            http_status: on("_suppress_http_status"),
            message: on("_suppress_message"),
            meta: on("_suppress_meta"),
        }
    }

    /// Refuses a body that names a field not in `known`, naming the first such field;
    /// names starting with `_` are Accelo's meta parameters and always pass. Query
    /// parameters are not judged here.
    pub fn refuse_unknown(&self, known: &[&str]) -> Result<(), ApiError> {
        let Some(unknown) = self
            .body_names
            .iter()
            .find(|n| !n.starts_with('_') && !known.contains(&n.as_str()))
        else {
            return Ok(());
        };
        let takes = if known.is_empty() {
            "this request takes no body fields".to_owned()
        } else {
            format!("this request takes {}", known.join(", "))
        };
        Err(ApiError::invalid_request(format!(
            "unknown field `{}`: {takes}",
            unknown.chars().take(64).collect::<String>()
        )))
    }

    fn insert_text(&mut self, name: String, text: String) {
        self.fields.insert(
            name,
            Field {
                text,
                given: Given::Text,
            },
        );
    }
}

fn wrong_type(name: &str, wanted: &str, given: Given) -> ApiError {
    ApiError::invalid_request(format!("{name} must be {wanted}, not {}", given.describe()))
}

/// Only the query string; used before the body has been judged, so that even an answer
/// about a bad body honours `_suppress_*`.
pub fn query_params(query: Option<&str>) -> Params {
    let mut params = Params::default();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            params.insert_text(k.into_owned(), v.into_owned());
        }
    }
    params
}

/// Query parameters with the body's fields on top.
pub fn parse_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Params, ApiError> {
    let mut params = query_params(query);
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::invalid_request(format!(
            "the request body must be at most {MAX_BODY_BYTES} bytes"
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let media = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_json = match media.as_str() {
        "application/json" => true,
        "application/x-www-form-urlencoded" => false,
        "" => body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'['),
        m if m.ends_with("+json") => true,
        _ => {
            return Err(ApiError::invalid_request(
                "send the request body as application/json or application/x-www-form-urlencoded",
            ));
        }
    };
    if is_json {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid_request(format!("the request body is not valid JSON ({e})"))
        })?;
        if let Value::Object(map) = &value {
            for (k, v) in map {
                params.body_names.push(k.clone());
                let Some(given) = Given::of(v) else {
                    // null: absent, and whatever the query string said stands
                    continue;
                };
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    // Structured values are read from `json` by the endpoints that take them.
                    _ => String::new(),
                };
                params.fields.insert(k.clone(), Field { text, given });
            }
        }
        params.json = Some(value);
    } else {
        let text = std::str::from_utf8(body).map_err(|_| {
            ApiError::invalid_request("the form-urlencoded request body is not valid UTF-8")
        })?;
        if text.contains(['{', '}']) && !text.contains('=') {
            return Err(ApiError::invalid_request(
                "the form-urlencoded request body is malformed; send name=value pairs",
            ));
        }
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            if !pair.contains('=') {
                return Err(ApiError::invalid_request(format!(
                    "the form-urlencoded request body is malformed near `{}`; send name=value pairs",
                    pair.chars().take(32).collect::<String>()
                )));
            }
        }
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            params.body_names.push(k.clone().into_owned());
            params.insert_text(k.into_owned(), v.into_owned());
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ct: Option<&str>, body: &str) -> Result<Params, ApiError> {
        parse_params(
            Some("a=1&_suppress_meta=yes"),
            ct,
            &Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    #[test]
    fn a_body_field_the_endpoint_does_not_know_is_refused_by_name() {
        let known = ["trigger_url", "secret"];
        let refused = |ct, body| {
            parse(Some(ct), body)
                .unwrap()
                .refuse_unknown(&known)
                .unwrap_err()
                .message
        };
        let json = refused(
            "application/json",
            r#"{"trigger_url": "https://x.io", "secert": "s"}"#,
        );
        assert_eq!(
            json,
            "unknown field `secert`: this request takes trigger_url, secret"
        );
        // A null is absent as a value, but its name is still one the endpoint must know.
        assert!(refused("application/json", r#"{"secert": null}"#).contains("`secert`"));
        assert!(
            refused("application/x-www-form-urlencoded", "secret=a&secert=b").contains("`secert`")
        );
        let none = parse(Some("application/json"), r#"{"x": 1}"#)
            .unwrap()
            .refuse_unknown(&[])
            .unwrap_err();
        assert_eq!(
            none.message,
            "unknown field `x`: this request takes no body fields"
        );
        // Known names, `_` meta parameters and the query string (`a`) pass.
        let fine = parse(
            Some("application/json"),
            r#"{"trigger_url": "https://x.io", "secret": null, "_suppress_meta": true}"#,
        )
        .unwrap();
        assert!(fine.refuse_unknown(&known).is_ok());
        let form = parse(
            Some("application/x-www-form-urlencoded"),
            "secret=a&_page=2",
        )
        .unwrap();
        assert!(form.refuse_unknown(&known).is_ok());
    }

    #[test]
    fn json_and_form_bodies_read_alike() {
        let j = parse(
            Some("application/json"),
            r#"{"trigger_url":"https://x","event_id":"e","n":3}"#,
        )
        .unwrap();
        let f = parse(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "trigger_url=https%3A%2F%2Fx&event_id=e&n=3",
        )
        .unwrap();
        for p in [&j, &f] {
            assert_eq!(p.get("trigger_url"), Some("https://x"));
            assert_eq!(p.get("n"), Some("3"));
            assert_eq!(p.get("a"), Some("1"));
            assert!(p.suppress().meta);
        }
    }

    #[test]
    fn json_fields_of_the_wrong_type_are_refused_not_misread() {
        let p = parse(
            Some("application/json"),
            r#"{"secret":["a"],"trigger_url":{"u":1},"event_id":5,"content_type":true,
                "object_id":7,"n":"8","flag":true,"gone":null}"#,
        )
        .unwrap();
        let refused = |r: Result<Option<&str>, ApiError>| r.unwrap_err().message;
        assert_eq!(
            refused(p.string("secret")),
            "secret must be a string, not an array"
        );
        assert_eq!(
            refused(p.string("trigger_url")),
            "trigger_url must be a string, not an object"
        );
        assert_eq!(
            refused(p.string("event_id")),
            "event_id must be a string, not a number"
        );
        assert_eq!(
            refused(p.string("content_type")),
            "content_type must be a string, not true or false"
        );
        assert_eq!(
            refused(p.number("flag")),
            "flag must be a number, not true or false"
        );
        assert_eq!(
            refused(p.number("secret")),
            "secret must be a number, not an array"
        );
        assert_eq!(p.number("object_id").unwrap(), Some("7"));
        assert_eq!(p.number("n").unwrap(), Some("8"));
        assert_eq!(p.string("n").unwrap(), Some("8"));
        assert_eq!(p.string("gone").unwrap(), None, "null is absent");
        assert_eq!(p.get("secret"), None, "an array is no text");
        assert_eq!(p.get("flag"), Some("true"));
        // Query and form values are text and read as whatever is asked.
        let f = parse(
            Some("application/x-www-form-urlencoded"),
            "object_id=3&secret=s",
        )
        .unwrap();
        assert_eq!(f.number("object_id").unwrap(), Some("3"));
        assert_eq!(f.string("secret").unwrap(), Some("s"));
    }

    #[test]
    fn structured_fields_come_in_a_json_body_only() {
        let j = parse(
            Some("application/json"),
            r#"{"headers": {"X-A": "1"}, "retry_schedule": null}"#,
        )
        .unwrap();
        assert_eq!(
            j.json_only("headers").unwrap(),
            Some(&serde_json::json!({"X-A": "1"}))
        );
        assert_eq!(
            j.json_only("retry_schedule").unwrap(),
            Some(&Value::Null),
            "null is given, to remove"
        );
        assert_eq!(j.json_only("other").unwrap(), None);
        let f = parse(
            Some("application/x-www-form-urlencoded"),
            "retry_schedule=5",
        )
        .unwrap();
        assert_eq!(
            f.json_only("retry_schedule").unwrap_err().message,
            "retry_schedule can only be given in a JSON body (Content-Type: application/json)"
        );
        let q = parse_params(Some("headers=x"), None, &Bytes::new()).unwrap();
        assert!(q.json_only("headers").is_err(), "nor in the query string");
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let e = parse(Some("application/json"), "{not json").unwrap_err();
        assert!(
            e.message.starts_with("the request body is not valid JSON"),
            "{}",
            e.message
        );
        assert!(parse(Some("application/x-www-form-urlencoded"), "justtext").is_err());
        assert!(parse(Some("text/plain"), "x").is_err());
        let big = "a".repeat(MAX_BODY_BYTES + 1);
        assert!(
            parse(Some("application/json"), &big)
                .unwrap_err()
                .message
                .contains("at most")
        );
    }
}
