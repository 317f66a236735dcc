//! The subscription endpoints of SPEC sections 3, 7 and 9: input parsed into the core's
//! types, the use case called (`core::service`), the answer shaped. A subscription's
//! `headers`, `retry_schedule`, `auth` and `rate_limit` come in JSON bodies only; answers
//! show every header name, sensitive values masked, and `auth` without its client secret.

use serde_json::{Map, Value, json};
use webhooks_core::model::identity::Caller;
use webhooks_core::model::receiver::OAUTH2_CLIENT_CREDENTIALS;
use webhooks_core::model::subscription::{
    Changes, NewSubscription, RawChanges, RawSubscription, Secret, Subscription,
};
use webhooks_core::ports::store::StoreError;
use webhooks_core::stages::service::{ServiceError, Window};

use crate::app::App;
use crate::envelope::{ApiError, Reply, Status};
use crate::input::Params;
use crate::routes::{no_such_subscription, subscription_id};

/// Store failures are logged here and answered with a `server_error` that says nothing internal.
pub fn store_failed(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store request failed");
    ApiError::server_error()
}

/// A use case's refusal or failure as an answer: an unknown (or foreign) id answers like
/// any other unknown id; a refusal with its sentence; a failure of ours, logged, as a
/// `server_error` that says nothing internal.
pub fn failed(raw_id: &str) -> impl Fn(ServiceError) -> ApiError + '_ {
    move |e| match e {
        ServiceError::NotFound => no_such_subscription(raw_id),
        ServiceError::Invalid(sentence) => ApiError::invalid_request(sentence),
        ServiceError::NotPermitted(sentence) => ApiError::new(Status::InvalidPermission, sentence),
        ServiceError::AccessCheck(e) => {
            tracing::error!(error_kind = %e.kind(), reason = %e, "dispatch: the access check did not answer");
            ApiError::new(
                Status::ServerError,
                format!("the product's access check did not answer, so nothing was sent: {e}"),
            )
        }
        other => {
            tracing::error!(error = %other, "request failed");
            ApiError::server_error()
        }
    }
}

pub fn list_types(app: &App) -> Result<Reply, ApiError> {
    Ok(Reply::ok(
        json!({ "types": app.settings.catalogue.types() }),
    ))
}

/// The subscription object of the spec. A secret is never echoed; its own headers are
/// shown with sensitive values masked (SPEC section 9).
pub fn render(app: &App, s: &Subscription) -> Result<Value, ApiError> {
    let event = app.settings.catalogue.get(&s.event_id);
    let mut body = json!({
        "subscription_id": s.id.as_str(),
        "event_id": s.event_id,
        "trigger_type": event.map(|e| e.trigger_type.as_str()).unwrap_or_default(),
        "trigger_table": event.map(|e| e.trigger_table.as_str()).unwrap_or_default(),
        "trigger_url": s.trigger_url.as_str(),
        "content_type": s.content_type.as_str(),
        "user_id": s.owner.user_id,
        "user_deployment": s.owner.deployment.as_str(),
        "active": s.active,
    });
    // Only a subscription disabled automatically says why.
    if let Some(reason) = &s.disabled_reason {
        body["disabled_reason"] = json!(reason);
    }
    let headers = app.service.headers(s).map_err(failed(""))?;
    if !headers.is_empty() {
        let shown: Map<String, Value> = headers
            .shown()
            .map(|(name, value)| (name.to_owned(), json!(value)))
            .collect();
        body["headers"] = Value::Object(shown);
    }
    if let Some(schedule) = &s.retry_schedule {
        body["retry_schedule"] = json!(schedule.delays());
    }
    // Every field but the client secret, which is never shown.
    if let Some(auth) = &s.auth {
        let mut shown = json!({ "type": OAUTH2_CLIENT_CREDENTIALS });
        if let (Value::Object(shown), Ok(Value::Object(client))) =
            (&mut shown, serde_json::to_value(&auth.client))
        {
            shown.extend(client);
        }
        body["auth"] = shown;
    }
    if let Some(limit) = s.rate_limit {
        body["rate_limit"] = json!(limit.per_second());
    }
    Ok(body)
}

fn user(caller: &Caller) -> Value {
    json!({ "id": caller.user_id, "name": caller.name, "email": caller.email })
}

pub async fn list(app: &App, caller: &Caller) -> Result<Reply, ApiError> {
    let subs = app
        .service
        .list(&caller.owner())
        .await
        .map_err(failed(""))?;
    let users = if subs.is_empty() {
        vec![]
    } else {
        vec![user(caller)]
    };
    Ok(Reply::ok(json!({
        "subscriptions": subs.iter().map(|s| render(app, s)).collect::<Result<Vec<_>, _>>()?,
        "subscriptions_users": users,
    })))
}

pub async fn create(app: &App, caller: &Caller, params: &Params) -> Result<Reply, ApiError> {
    if params.json.as_ref().is_some_and(|v| !v.is_object()) {
        return Err(ApiError::invalid_request(
            "send the subscription as a JSON object with trigger_url and event_id",
        ));
    }
    let raw = RawSubscription {
        trigger_url: params.string("trigger_url")?,
        event_id: params.string("event_id")?,
        content_type: params.string("content_type")?,
        secret: params.string("secret")?,
        headers: params.json_only("headers")?,
        retry_schedule: params.json_only("retry_schedule")?,
        auth: params.json_only("auth")?,
        rate_limit: params.json_only("rate_limit")?,
    };
    let new = NewSubscription::parse(raw, &app.settings.catalogue, &app.settings.url_policy)
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let subscription = app.service.create(caller, new).await.map_err(failed(""))?;
    let mut body = render(app, &subscription)?;
    body["user"] = user(caller);
    Ok(Reply::created(json!({ "subscription": body })))
}

pub async fn get(app: &App, caller: &Caller, raw_id: &str) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    let sub = app
        .service
        .get(&caller.owner(), &id)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok(json!({ "subscription": render(app, &sub)? })))
}

pub async fn delete(app: &App, caller: &Caller, raw_id: &str) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    app.service
        .delete(&caller.owner(), &id)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok_empty())
}

/// `PUT .../subscriptions/{id}`: `trigger_url`, `content_type`, `active`, `headers`,
/// `retry_schedule`, `auth`, `rate_limit`, checked as on create; at least one.
pub async fn update(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    if params.json.as_ref().is_some_and(|v| !v.is_object()) {
        return Err(ApiError::invalid_request(
            "send the changes as a JSON object with trigger_url, content_type, active, headers, retry_schedule, auth or rate_limit",
        ));
    }
    let raw = RawChanges {
        trigger_url: params.string("trigger_url")?,
        content_type: params.string("content_type")?,
        active: params.boolean("active")?,
        headers: params.json_only("headers")?,
        retry_schedule: params.json_only("retry_schedule")?,
        auth: params.json_only("auth")?,
        rate_limit: params.json_only("rate_limit")?,
    };
    let changes = Changes::parse(raw, &app.settings.url_policy)
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let sub = app
        .service
        .update(&caller.owner(), &id, changes)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok(json!({ "subscription": render(app, &sub)? })))
}

/// `POST .../subscriptions/{id}/secret`: a given `secret`, or one the platform generates
/// and shows this once.
pub async fn rotate_secret(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    if params
        .json
        .as_ref()
        .is_some_and(|v| !v.is_object() && !v.is_null())
    {
        return Err(ApiError::invalid_request(
            "send the secret as a JSON object with secret, or no body to have one generated",
        ));
    }
    let given = Secret::parse(params.string("secret")?.unwrap_or_default())
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let rotated = app
        .service
        .rotate_secret(&caller.owner(), &id, given)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok(json!({
        "subscription": render(app, &rotated.subscription)?,
        "secret": rotated.generated.as_ref().map(Secret::expose),
    })))
}

/// `POST .../subscriptions/{id}/deliveries/{delivery_id}/resend`.
pub async fn resend(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    delivery_id: &str,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    app.service
        .resend(&caller.owner(), &id, delivery_id)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok(
        json!({ "delivery_id": delivery_id, "queued": 1 }),
    ))
}

/// `POST .../subscriptions/{id}/recover`: `since`, optional `until` (RFC 3339).
pub async fn recover(
    app: &App,
    caller: &Caller,
    raw_id: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    let window = Window::parse(params.string("since")?, params.string("until")?)
        .map_err(ApiError::invalid_request)?;
    let queued = app
        .service
        .recover(&caller.owner(), &id, window)
        .await
        .map_err(failed(raw_id))?;
    Ok(Reply::ok(json!({ "queued": queued })))
}
