//! The subscription endpoints of SPEC section 3.

use serde_json::{Value, json};
use webhooks_core::identity::Caller;
use webhooks_core::store::StoreError;
use webhooks_core::subscription::{
    NewSubscription, RawSubscription, Subscription, SubscriptionRef,
};

use crate::app::App;
use crate::envelope::{ApiError, Reply};
use crate::input::Params;
use crate::routes::{no_such_subscription, subscription_id};

/// Store failures are logged here and answered with a `server_error` that says nothing internal.
pub fn store_failed(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store request failed");
    ApiError::server_error()
}

pub fn list_types(app: &App) -> Result<Reply, ApiError> {
    Ok(Reply::ok(
        json!({ "types": app.settings.catalogue.types() }),
    ))
}

/// The subscription object of the spec. A secret is never echoed.
pub fn render(app: &App, s: &Subscription) -> Value {
    let event = app.settings.catalogue.get(&s.event_id);
    json!({
        "subscription_id": s.id.as_str(),
        "event_id": s.event_id,
        "trigger_type": event.map(|e| e.trigger_type.as_str()).unwrap_or_default(),
        "trigger_table": event.map(|e| e.trigger_table.as_str()).unwrap_or_default(),
        "trigger_url": s.trigger_url.as_str(),
        "content_type": s.content_type.as_str(),
        "user_id": s.owner.user_id,
        "user_deployment": s.owner.deployment.as_str(),
    })
}

fn user(caller: &Caller) -> Value {
    json!({ "id": caller.user_id, "name": caller.name, "email": caller.email })
}

pub async fn list(app: &App, caller: &Caller) -> Result<Reply, ApiError> {
    let subs = app
        .store
        .list_by_owner(&caller.owner())
        .await
        .map_err(store_failed)?;
    let users = if subs.is_empty() {
        vec![]
    } else {
        vec![user(caller)]
    };
    Ok(Reply::ok(json!({
        "subscriptions": subs.iter().map(|s| render(app, s)).collect::<Vec<_>>(),
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
    };
    let new = NewSubscription::parse(raw, &app.settings.catalogue, &app.settings.url_policy)
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let key = SubscriptionRef {
        id: app.ids.next(app.clock.as_ref()),
        owner: caller.owner(),
    };
    // Sealed for this subscription alone: copied onto another row it does not open.
    let sealed_secret = new
        .secret
        .as_ref()
        .map(|s| app.settings.sealer.seal_for(s.expose(), &key));
    let subscription = Subscription {
        id: key.id,
        owner: key.owner,
        owner_name: caller.name.clone(),
        owner_email: caller.email.clone(),
        event_id: new.event.event_id.clone(),
        trigger_url: new.trigger_url,
        content_type: new.content_type,
        sealed_secret,
        created_at: app.clock.now_millis(),
        active: true,
        disabled_reason: None,
        previous_secret: None,
    };
    app.store.put(&subscription).await.map_err(store_failed)?;
    tracing::info!(subscription_id = %subscription.id, event_id = %subscription.event_id, "subscription created");
    let mut body = render(app, &subscription);
    body["user"] = user(caller);
    Ok(Reply::created(json!({ "subscription": body })))
}

pub async fn get(app: &App, caller: &Caller, raw_id: &str) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    let sub = app
        .store
        .get(&caller.owner(), &id)
        .await
        .map_err(store_failed)?;
    let sub = sub.ok_or_else(|| no_such_subscription(raw_id))?;
    Ok(Reply::ok(json!({ "subscription": render(app, &sub) })))
}

pub async fn delete(app: &App, caller: &Caller, raw_id: &str) -> Result<Reply, ApiError> {
    let id = subscription_id(raw_id)?;
    match app
        .store
        .delete(&caller.owner(), &id)
        .await
        .map_err(store_failed)?
    {
        Some(_) => {
            tracing::info!(subscription_id = %id, "subscription deleted by its owner");
            Ok(Reply::ok_empty())
        }
        None => Err(no_such_subscription(raw_id)),
    }
}
