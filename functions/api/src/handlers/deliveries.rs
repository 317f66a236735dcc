//! The delivery side of the API: `dispatch` (one synchronous delivery) and the delivery
//! log of a subscription.
//!
//! Reading the log is bounded: a request reads at most [`MAX_PAGED_DELIVERIES`] + 1
//! records of the log, whatever it asks for. `_cursor` pages cost one page each, however
//! far back they are; `_page` numbers (Accelo's style) keep working for the newest
//! [`MAX_PAGED_DELIVERIES`] attempts and are refused beyond, with a sentence pointing to
//! `_cursor`.

use serde_json::{Value, json};
use webhooks_core::model::event::{format_millis, parse_object_id_param};
use webhooks_core::model::identity::Caller;
use webhooks_core::model::subscription::SubscriptionRef;
use webhooks_core::ports::delivery_log::{Attempt, AttemptOutcome, LogCursor};
use webhooks_core::ports::http::Unreachable;

use crate::app::App;
use crate::envelope::{ApiError, Reply};
use crate::handlers::subscriptions::{failed, store_failed};
use crate::input::Params;
use crate::routes::{no_such_subscription, subscription_id};

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 100;
/// How far back `_page` reaches: `(_page + 1) × _limit` may not pass it. DynamoDB has no
/// offset, so page `n` reads every attempt before it; past this, `_cursor` is the way.
pub const MAX_PAGED_DELIVERIES: usize = 1000;

/// Delivers one object to this subscription now and answers with the receiver's status.
/// The attempt is logged like any other; 410 and the timeout limit act as usual; a
/// failure is not retried (the caller has the answer).
///
/// Without an HTTP answer the result is still `ok` (the dispatch was carried out and
/// logged), with `status` null and `error` one of `timeout`, `blocked`, `connection`
/// ([`Unreachable`]): coarse on purpose, see docs/design.md; or, when the subscription's
/// `auth` got no access token, the `token_…` kind and why.
pub async fn dispatch(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    let object_id = parse_object_id_param(params.number("object_id")?)
        .map_err(|e| ApiError::invalid_request(e.0))?;
    let attempt = app
        .service
        .dispatch(&caller.owner(), &id, object_id)
        .await
        .map_err(failed(raw_id))?;
    let (error, reason) = public_failure(&attempt);
    Ok(Reply::ok(json!({
        "status": attempt.http_status,
        "delivery_id": attempt.delivery_id,
        "outcome": attempt.outcome.as_str(),
        "error": error,
        "reason": reason,
        "duration_ms": attempt.duration_ms,
    })))
}

/// What a client is told about an attempt's failure: the coarse kind when there was no
/// HTTP answer, and a reason without the stored detail (which says more than a client
/// should learn about the network: refused against unresolved, the address a name had).
/// Reasons the platform wrote about its own decisions (410, the timeout limit) stay.
///
/// A failed token request (`token_…`) is told with its kind and reason as stored, which
/// say no more than the coarse kinds (`policy::token::TokenError`).
fn public_failure(a: &Attempt) -> (Option<&str>, Option<String>) {
    if let Some(kind) = a.error_kind.as_deref().filter(|k| k.starts_with("token_")) {
        return (Some(kind), a.reason.clone());
    }
    let unreachable = a.error_kind.as_deref().and_then(Unreachable::from_kind);
    match unreachable {
        Some(kind) if a.outcome == AttemptOutcome::Unsubscribed => {
            (Some(kind.as_str()), a.reason.clone())
        }
        Some(kind) => (Some(kind.as_str()), Some(kind.sentence().to_owned())),
        None => (None, a.reason.clone()),
    }
}

fn page_param(params: &Params, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match params.number(name)? {
        None | Some("") => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                ApiError::invalid_request(format!("{name} must be a whole number from 0 to {max}"))
            }),
    }
}

fn render(a: &Attempt) -> Value {
    let (public_kind, reason) = public_failure(a);
    json!({
        "delivery_id": a.delivery_id,
        "event_id": a.event_id,
        // An operational event's object is the subscription it is about.
        "object_id": a.subject.as_deref().map_or(json!(a.object_id), |s| json!(s)),
        "attempt": a.attempt,
        "outcome": a.outcome.as_str(),
        "http_status": a.http_status,
        "duration_ms": a.duration_ms,
        // HTTP failures keep their `http_NNN`; others say only timeout, blocked or connection.
        "error_kind": public_kind.map(str::to_owned).or_else(|| a.error_kind.clone()),
        "reason": reason,
        // Kept for attempts that did not deliver; null when none was kept (a success).
        "response_body": (!a.response_body.is_empty()).then_some(&a.response_body),
        "attempted_at": format_millis(a.at),
        "next_attempt_at": a.next_attempt_at.map(format_millis),
    })
}

/// `GET .../subscriptions/{id}/deliveries?_limit=10&_cursor=…`: attempts, newest first,
/// and `next_cursor` for the next page (null on the last). `_page=n` (from 0) instead of
/// `_cursor` answers the `n`th page of `_limit`, as long as `(n + 1) × _limit` is at most
/// [`MAX_PAGED_DELIVERIES`]; it is read as one page of `(n + 1) × _limit` of which the
/// last `_limit` are answered, so it never reads more than that bound. The log outlives
/// an automatic deletion, so the owner can read why it happened.
pub async fn list(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    let limit = page_param(params, "_limit", DEFAULT_LIMIT, MAX_LIMIT)?.max(1);
    let page = match params.number("_page")?.map(str::trim) {
        None | Some("") => None,
        Some(v) if !v.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(ApiError::invalid_request("_page must be a whole number"));
        }
        // Too many digits for a usize is far past the reach below.
        Some(v) => Some(v.parse::<usize>().unwrap_or(usize::MAX)),
    };
    let cursor = match params.string("_cursor")? {
        None | Some("") => None,
        Some(text) => Some(
            LogCursor::parse(text, &id).map_err(|e| ApiError::invalid_request(e.to_string()))?,
        ),
    };
    if cursor.is_some() && page.is_some() {
        return Err(ApiError::invalid_request(
            "_cursor and _page cannot be used together; _cursor alone continues from the page that gave it",
        ));
    }
    if let Some(n) = page
        && n.checked_add(1)
            .and_then(|p| p.checked_mul(limit))
            .is_none_or(|reach| reach > MAX_PAGED_DELIVERIES)
    {
        return Err(ApiError::invalid_request(format!(
            "_page reaches only the newest {MAX_PAGED_DELIVERIES} deliveries ((_page + 1) × _limit at most {MAX_PAGED_DELIVERIES}); to read further back, pass response.next_cursor as _cursor"
        )));
    }
    let key = SubscriptionRef {
        id: id.clone(),
        owner: caller.owner(),
    };
    let skip = page.unwrap_or(0) * limit;
    let mut read = app
        .deliverer
        .log
        .page(&key, cursor.as_ref(), skip + limit)
        .await
        .map_err(store_failed)?;
    let attempts = read.attempts.split_off(skip.min(read.attempts.len()));
    let from_the_start = cursor.is_none() && skip == 0;
    if attempts.is_empty()
        && app
            .store
            .get(&key.owner, &id)
            .await
            .map_err(store_failed)?
            .is_none()
    {
        // Neither a subscription nor a log: unknown, or someone else's.
        let no_log = from_the_start
            || app
                .deliverer
                .log
                .page(&key, None, 1)
                .await
                .map_err(store_failed)?
                .attempts
                .is_empty();
        if no_log {
            return Err(no_such_subscription(raw_id));
        }
    }
    let mut response = json!({
        "deliveries": attempts.iter().map(render).collect::<Vec<_>>(),
        "next_cursor": read.next.as_ref().map(LogCursor::encode),
        "limit": limit,
    });
    if let Some(n) = page {
        response["page"] = json!(n);
    }
    Ok(Reply::ok(response))
}
