//! The API Lambda's handler: subscriptions, event ingestion, the delivery log, and the two
//! public pages (the OpenAPI document and the control panel). [`handle`] takes a plain
//! `http::Request` so that the Lambda adapter ([`lambda`]) and the local runner serve
//! requests through exactly the same code.
//!
//! Guarantee: the public pages are answered before any token is read (so they work behind
//! an API Gateway JWT authorizer's `NONE` routes, without claims); every other route is
//! authenticated first.

pub mod app;
pub mod discovery;
pub mod envelope;
pub mod format;
pub mod guard;
pub mod handlers;
pub mod input;
pub mod lambda;
pub mod routes;

use std::time::Instant;

use bytes::Bytes;

pub use app::App;
use envelope::{ApiError, Reply, Status, respond};
use format::{Format, split_suffix};
use routes::Route;

/// Answers one API request.
pub async fn handle(app: &App, req: http::Request<Bytes>) -> http::Response<Bytes> {
    let started = Instant::now();
    let (path, format) = answer_format(&req);
    let route = routes::route(req.method(), req.uri().path());
    let public = match &route {
        Ok(Route::OpenApi) => Some(discovery::openapi()),
        Ok(Route::Panel) => Some(discovery::panel(app)),
        _ => None,
    };
    if let Some(page) = public {
        tracing::info!(
            method = %req.method(),
            path = %path,
            status = page.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request"
        );
        return page;
    }
    let mut suppress = input::query_params(req.uri().query()).suppress();

    let result = serve(app, &req, route, &mut suppress).await;

    let status = match &result {
        Ok(reply) => reply.status,
        Err(e) => e.status,
    };
    tracing::info!(
        method = %req.method(),
        path = %path,
        status = status.code(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    respond(result, format, suppress)
}

/// The request's path without its format suffix, and the format it asks its answer in
/// (the suffix, else `Accept`).
fn answer_format(req: &http::Request<Bytes>) -> (&str, Format) {
    let (path, suffix) = split_suffix(req.uri().path());
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    (path, suffix.unwrap_or_else(|| Format::from_accept(accept)))
}

/// Answers `req` with `error` alone, in the format and with the switches it asks for: for
/// a request that cannot reach the handlers (the Lambda's secrets are unreadable).
pub fn refuse(req: &http::Request<Bytes>, error: ApiError) -> http::Response<Bytes> {
    let (path, format) = answer_format(req);
    tracing::info!(
        method = %req.method(),
        path = %path,
        status = error.status.code(),
        "request"
    );
    let suppress = input::query_params(req.uri().query()).suppress();
    respond(Err(error), format, suppress)
}

async fn serve(
    app: &App,
    req: &http::Request<Bytes>,
    route: Result<Route, ApiError>,
    suppress: &mut envelope::Suppress,
) -> Result<Reply, ApiError> {
    let route = route?;
    let caller = guard::authenticate(&app.settings.verifier, req)?;
    app.limiter.check(&caller, app.clock.now_secs())?;
    // Services publishing events are not webhook users: the pro gate is not theirs.
    if app.settings.pro_gate && !caller.pro && route != Route::PublishEvents {
        return Err(ApiError::new(
            Status::InvalidPermission,
            "webhooks on this installation are for pro users; ask an administrator to upgrade your account",
        ));
    }
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = input::parse_params(req.uri().query(), content_type, req.body())?;
    *suppress = params.suppress();
    if let Some(known) = route.body_fields() {
        params.refuse_unknown(known)?;
    }

    use handlers::subscriptions as subs;
    match route {
        Route::ListTypes => subs::list_types(app),
        Route::ListSubscriptions => subs::list(app, &caller).await,
        Route::CreateSubscription => subs::create(app, &caller, &params).await,
        Route::GetSubscription(id) => subs::get(app, &caller, &id).await,
        Route::DeleteSubscription(id) => subs::delete(app, &caller, &id).await,
        Route::UpdateSubscription(id) => subs::update(app, &caller, &id, &params).await,
        Route::RotateSecret(id) => subs::rotate_secret(app, &caller, &id, &params).await,
        Route::Resend(id, delivery) => subs::resend(app, &caller, &id, &delivery).await,
        Route::Recover(id) => subs::recover(app, &caller, &id, &params).await,
        Route::TriggerSubscription(id) => {
            handlers::events::trigger(app, &caller, &id, &params).await
        }
        Route::DispatchSubscription(id) => {
            handlers::deliveries::dispatch(app, &caller, &id, &params).await
        }
        Route::ListDeliveries(id) => handlers::deliveries::list(app, &caller, &id, &params).await,
        Route::PublishEvents => handlers::events::publish(app, &caller, &params).await,
        // Answered by `handle` before authentication.
        Route::OpenApi | Route::Panel => Err(ApiError::server_error()),
    }
}
