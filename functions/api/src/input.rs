//! Reading a request: query parameters, a JSON or form-urlencoded body, the `_suppress_*`
//! switches. Bad input becomes an `invalid_request` with a sentence that says what to fix.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::envelope::{ApiError, Suppress};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Request parameters: the query string, then the body's fields on top.
#[derive(Debug, Default, Clone)]
pub struct Params {
    fields: HashMap<String, String>,
    /// The body as JSON, when it was JSON (event ingestion reads it whole).
    pub json: Option<Value>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
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
}

/// Only the query string; used before the body has been judged, so that even an answer
/// about a bad body honours `_suppress_*`.
pub fn query_params(query: Option<&str>) -> Params {
    let mut params = Params::default();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            params.fields.insert(k.into_owned(), v.into_owned());
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
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    _ => String::new(), // structured values are read from `json` by the endpoints that take them
                };
                params.fields.insert(k.clone(), text);
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
            params.fields.insert(k.into_owned(), v.into_owned());
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
