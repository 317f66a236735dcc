//! The OAuth2 client credentials grant (RFC 6749 section 4.4) as pure decisions: the token
//! request a subscription's `auth` makes, what its answer means, how long a token is
//! reused, and the kind of a failure (SPEC section 9). No I/O: `stages::token` sends the
//! request through the HTTP sender port and caches the token.
//!
//! Guarantees: the client is authenticated with HTTP Basic, id and secret each
//! form-urlencoded before they are joined by `:` (RFC 6749 section 2.3.1); the answer is
//! read to at most [`MAX_TOKEN_ANSWER`] bytes and never kept or shown (a failure says
//! only why, never what came back); a `token_type` other than Bearer is a failure.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::model::clock::Millis;
use crate::model::receiver::OAuthClient;
use crate::ports::http::{HttpResponse, OutgoingRequest, SendError};

/// The limit on a token request.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest token answer read.
pub const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// A token is dropped this long before it expires.
pub const EXPIRY_MARGIN_MS: Millis = 60_000;
/// How long a token is reused when its answer gives no `expires_in`.
pub const DEFAULT_REUSE_MS: Millis = 5 * 60_000;

/// Why no token was obtained. Says nothing of what the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token endpoint did not answer within 10 s")]
    Timeout,
    #[error("the token endpoint's address is not one this installation delivers to")]
    Blocked,
    #[error("the token endpoint could not be reached")]
    Connection,
    #[error("the token endpoint answered HTTP {0}")]
    Http(u16),
    #[error("the token endpoint's answer was not usable: {0}")]
    BadResponse(BadAnswer),
}

/// What was wrong with a token answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAnswer {
    TooLarge,
    NotJson,
    NoAccessToken,
    NotBearer,
}

impl fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "it is larger than 64 KB",
            Self::NotJson => "it is not a JSON object",
            Self::NoAccessToken => "it has no usable access_token",
            Self::NotBearer => "its token_type is not Bearer",
        })
    }
}

impl TokenError {
    /// The `error_kind` of the attempt it failed: `token_timeout`, `token_blocked`,
    /// `token_connection`, `token_http_NNN` or `token_bad_response`.
    pub fn kind(&self) -> String {
        match self {
            Self::Timeout => "token_timeout".into(),
            Self::Blocked => "token_blocked".into(),
            Self::Connection => "token_connection".into(),
            Self::Http(status) => format!("token_http_{status}"),
            Self::BadResponse(_) => "token_bad_response".into(),
        }
    }

    /// The kind of a request that got no answer.
    pub fn unanswered(e: &SendError) -> Self {
        match e {
            SendError::Timeout => Self::Timeout,
            SendError::BlockedAddress(_) => Self::Blocked,
            _ => Self::Connection,
        }
    }
}

/// An access token. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Authorization` value of a delivery.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// A usable answer: the token, and its lifetime in seconds when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub token: AccessToken,
    pub expires_in: Option<u64>,
}

/// A value form-urlencoded (space as `+`, all but `*-._` and letters and digits as `%XX`).
fn form_encoded(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The `Authorization` value that authenticates the client (RFC 6749 section 2.3.1): id
/// and secret each form-urlencoded, joined by `:`, base64.
pub fn basic_credentials(client_id: &str, client_secret: &str) -> String {
    let joined = format!(
        "{}:{}",
        form_encoded(client_id),
        form_encoded(client_secret)
    );
    format!("Basic {}", STANDARD.encode(joined))
}

/// The token request of a client: a form POST of `grant_type=client_credentials`, with
/// `scope` and `audience` when set, authenticated with HTTP Basic.
pub fn request(client: &OAuthClient, client_secret: &str) -> OutgoingRequest {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = &client.scope {
        form.append_pair("scope", scope);
    }
    if let Some(audience) = &client.audience {
        form.append_pair("audience", audience);
    }
    OutgoingRequest {
        url: client.token_url.as_str().to_owned(),
        headers: vec![
            (
                AUTHORIZATION,
                basic_credentials(&client.client_id, client_secret),
            ),
            (CONTENT_TYPE, "application/x-www-form-urlencoded".into()),
            (ACCEPT, "application/json".into()),
        ],
        body: form.finish().into_bytes(),
        timeout: TOKEN_TIMEOUT,
        // One byte more than allowed, to tell an answer over the cap from one at it.
        body_cap: MAX_TOKEN_ANSWER + 1,
    }
}

/// What a token request's outcome means: a token, or why not.
pub fn read_answer(result: Result<HttpResponse, SendError>) -> Result<Granted, TokenError> {
    let answer = result.map_err(|e| TokenError::unanswered(&e))?;
    if !(200..300).contains(&answer.status) {
        return Err(TokenError::Http(answer.status));
    }
    let bad = TokenError::BadResponse;
    if answer.body.len() > MAX_TOKEN_ANSWER {
        return Err(bad(BadAnswer::TooLarge));
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&answer.body) else {
        return Err(bad(BadAnswer::NotJson));
    };
    let token = match fields.get("access_token") {
        // It goes into a header: visible ASCII only.
        Some(Value::String(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => {
            t.clone()
        }
        _ => return Err(bad(BadAnswer::NoAccessToken)),
    };
    match fields.get("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        _ => return Err(bad(BadAnswer::NotBearer)),
    }
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        // Some providers send it as a string.
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(Granted {
        token: AccessToken(token),
        expires_in,
    })
}

/// Until when a token obtained at `fetched_at` is reused: 60 s before `expires_in` runs
/// out, or 5 minutes without one. A lifetime of 60 s or less is not reused at all.
pub fn reuse_until(fetched_at: Millis, expires_in: Option<u64>) -> Millis {
    match expires_in {
        None => fetched_at + DEFAULT_REUSE_MS,
        Some(secs) => {
            let lifetime = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
            fetched_at + (lifetime - EXPIRY_MARGIN_MS).max(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::url::TriggerUrl;

    fn answer(status: u16, body: &str) -> Result<HttpResponse, SendError> {
        Ok(HttpResponse {
            status,
            retry_after: None,
            body: body.into(),
        })
    }

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let value = basic_credentials("my client", "s:e%c r+t");
        let decoded = STANDARD
            .decode(value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            "my+client:s%3Ae%25c+r%2Bt",
            "a `:` in the secret cannot be taken for the separator"
        );
    }

    #[test]
    fn the_request_is_a_basic_authenticated_form_post_with_its_own_limits() {
        let client = OAuthClient {
            token_url: TriggerUrl::from_stored("https://idp.example/token".into()),
            client_id: "id".into(),
            scope: Some("read write".into()),
            audience: Some("https://api.example/".into()),
        };
        let r = request(&client, "pw");
        assert_eq!(r.url, "https://idp.example/token");
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "grant_type=client_credentials&scope=read+write&audience=https%3A%2F%2Fapi.example%2F"
        );
        assert_eq!(r.headers[0], (AUTHORIZATION, basic_credentials("id", "pw")));
        assert_eq!(
            r.headers[1].1, "application/x-www-form-urlencoded",
            "a form"
        );
        assert_eq!(r.timeout, Duration::from_secs(10));
        assert_eq!(r.body_cap, MAX_TOKEN_ANSWER + 1);
        let plain = request(
            &OAuthClient {
                scope: None,
                audience: None,
                ..client
            },
            "pw",
        );
        assert_eq!(plain.body, b"grant_type=client_credentials");
    }

    #[test]
    fn answers_are_read_and_each_failure_has_its_kind() {
        let ok = read_answer(answer(
            200,
            r#"{"access_token":"t-1","token_type":"bearer","expires_in":3600}"#,
        ))
        .unwrap();
        assert_eq!(ok.token.expose(), "t-1");
        assert_eq!(ok.token.bearer(), "Bearer t-1");
        assert_eq!(ok.expires_in, Some(3600));
        assert!(!format!("{ok:?}").contains("t-1"), "never printed");
        let as_text = read_answer(answer(
            200,
            r#"{"access_token":"t","token_type":"Bearer","expires_in":"60"}"#,
        ));
        assert_eq!(as_text.unwrap().expires_in, Some(60));
        let kind = |r| read_answer(r).unwrap_err().kind();
        assert_eq!(kind(answer(500, "{}")), "token_http_500");
        assert_eq!(kind(answer(401, "no")), "token_http_401");
        assert_eq!(kind(answer(302, "")), "token_http_302");
        assert_eq!(kind(Err(SendError::Timeout)), "token_timeout");
        assert_eq!(
            kind(Err(SendError::BlockedAddress("x".into()))),
            "token_blocked"
        );
        for e in [
            SendError::ConnectionRefused,
            SendError::Dns("x".into()),
            SendError::Tls("x".into()),
        ] {
            assert_eq!(kind(Err(e)), "token_connection");
        }
        for (body, why) in [
            ("not json", BadAnswer::NotJson),
            ("[1]", BadAnswer::NotJson),
            (r#"{"token_type":"Bearer"}"#, BadAnswer::NoAccessToken),
            (
                r#"{"access_token":"","token_type":"Bearer"}"#,
                BadAnswer::NoAccessToken,
            ),
            (
                r#"{"access_token":"a b","token_type":"Bearer"}"#,
                BadAnswer::NoAccessToken,
            ),
            (
                r#"{"access_token":7,"token_type":"Bearer"}"#,
                BadAnswer::NoAccessToken,
            ),
            (
                r#"{"access_token":"t","token_type":"mac"}"#,
                BadAnswer::NotBearer,
            ),
            (r#"{"access_token":"t"}"#, BadAnswer::NotBearer),
        ] {
            let e = read_answer(answer(200, body)).unwrap_err();
            assert_eq!(e, TokenError::BadResponse(why), "{body}");
            assert_eq!(e.kind(), "token_bad_response");
            assert!(!e.to_string().contains(body), "the answer is never shown");
        }
        let big = format!(
            r#"{{"access_token":"t","token_type":"Bearer","pad":"{}"}}"#,
            "x".repeat(MAX_TOKEN_ANSWER)
        );
        assert_eq!(
            read_answer(answer(200, &big)).unwrap_err(),
            TokenError::BadResponse(BadAnswer::TooLarge)
        );
    }

    #[test]
    fn tokens_are_reused_until_60_s_before_expiry_or_5_minutes() {
        assert_eq!(reuse_until(1_000, Some(3600)), 1_000 + 3_540_000);
        assert_eq!(reuse_until(1_000, None), 1_000 + 300_000);
        assert_eq!(reuse_until(1_000, Some(60)), 1_000, "too short to reuse");
        assert_eq!(reuse_until(1_000, Some(0)), 1_000);
        assert!(reuse_until(0, Some(u64::MAX)) > 0, "no overflow");
    }
}
