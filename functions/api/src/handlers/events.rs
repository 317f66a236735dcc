//! Events in: `POST /webhooks/events` for producers with the publish scope, and
//! `POST /webhooks/subscriptions/{id}/trigger`. Both put events on the events queue, where
//! the fan-out picks them up.

use serde_json::{Value, json};
use webhooks_core::model::event::{
    Event, EventOrigin, MAX_EVENT_BYTES, Visibility, parse_object_id_param,
};
use webhooks_core::model::identity::{Caller, PUBLISH_SCOPE};
use webhooks_core::ports::queue::{OutgoingMessage, send_each};
use webhooks_core::stages::fanout::NO_ACCESS_CHECK;

use crate::app::App;
use crate::envelope::{ApiError, Reply, Status};
use crate::handlers::subscriptions::failed;
use crate::input::Params;
use crate::routes::subscription_id;

/// The most events one request may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 100;

pub async fn publish(app: &App, caller: &Caller, params: &Params) -> Result<Reply, ApiError> {
    if !caller.has_scope(PUBLISH_SCOPE) {
        return Err(ApiError::new(
            Status::InvalidPermission,
            format!("publishing events needs a token with the {PUBLISH_SCOPE} scope"),
        ));
    }
    let items: Vec<&Value> = match &params.json {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => {
            return Err(ApiError::invalid_request(
                "send one event as a JSON object, or several as a JSON array",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid_request("the array holds no events"));
    }
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::invalid_request(format!(
            "send at most {MAX_EVENTS_PER_REQUEST} events per request"
        )));
    }

    let now = app.clock.now_millis();
    // Each valid event with its queue message, written once (its size is checked on it).
    let mut parsed: Vec<Result<(Event, String), String>> = items
        .iter()
        .map(|item| {
            let uid = app.new_event_uid();
            let origin = EventOrigin {
                deployment: Some(&caller.deployment),
                fallback_uid: &uid,
                now,
            };
            let event = Event::parse(item, &app.settings.catalogue, &origin).map_err(|e| e.0)?;
            if event.visible_to == Visibility::check() && app.settings.access_check.is_none() {
                return Err(NO_ACCESS_CHECK.to_owned());
            }
            let message = event.to_message();
            if message.len() > MAX_EVENT_BYTES {
                return Err(format!("an event must be at most {MAX_EVENT_BYTES} bytes; list fewer users in visible_to or use \"all\""));
            }
            Ok((event, message))
        })
        .collect();
    let messages: Vec<OutgoingMessage> = parsed
        .iter_mut()
        .filter_map(|r| r.as_mut().ok())
        .map(|(_, message)| OutgoingMessage::new(std::mem::take(message)))
        .collect();
    let valid: Vec<(usize, &Event)> = parsed
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|(e, _)| (i, e)))
        .collect();
    let sent = send_each(app.events.as_ref(), &messages, 4).await;

    let mut verdicts: Vec<Value> = parsed
        .iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(_) => Value::Null, // filled in below
            Err(message) => json!({"index": index, "status": "invalid", "message": message}),
        })
        .collect();
    for ((index, event), ok) in valid.iter().zip(&sent) {
        verdicts[*index] = if *ok {
            json!({"index": index, "status": "accepted", "event_uid": event.event_uid})
        } else {
            json!({"index": index, "status": "failed", "message": "the event could not be queued; send it again"})
        };
    }
    let accepted = sent.iter().filter(|ok| **ok).count();
    tracing::info!(deployment = %caller.deployment, received = items.len(), accepted, "events published");
    webhooks_core::observe::metrics::events("http", accepted, parsed.len() - valid.len());
    let response = json!({ "accepted": accepted, "events": verdicts });
    if accepted > 0 {
        return Ok(Reply::ok(response));
    }
    let mut error = if valid.is_empty() {
        let first = parsed
            .iter()
            .find_map(|r| r.as_ref().err())
            .cloned()
            .unwrap_or_default();
        ApiError::invalid_request(if items.len() == 1 {
            first
        } else {
            format!("no event was valid; the first problem: {first}")
        })
    } else {
        tracing::error!("the events queue refused every event");
        ApiError::server_error()
    };
    error.response = Some(response);
    Err(error)
}

/// `POST .../subscriptions/{id}/trigger`: an event for this object, queued to the
/// caller's other subscriptions to the same event.
pub async fn trigger(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    let object_id = parse_object_id_param(params.number("object_id")?)
        .map_err(|e| ApiError::invalid_request(e.0))?;
    app.service
        .trigger(caller, &id, object_id)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok_empty())
}
