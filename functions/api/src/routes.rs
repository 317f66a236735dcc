//! Which endpoint a method and path name. Paths are matched after the `/api/v0` prefix and
//! the format suffix are taken off.

use http::Method;
use webhooks_core::ids::SubscriptionId;

use crate::envelope::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ListTypes,
    ListSubscriptions,
    CreateSubscription,
    GetSubscription(String),
    DeleteSubscription(String),
    UpdateSubscription(String),
    RotateSecret(String),
    Resend(String, String),
    Recover(String),
    TriggerSubscription(String),
    DispatchSubscription(String),
    ListDeliveries(String),
    PublishEvents,
}

pub const BASE: &str = "/api/v0";

/// The route, or the `invalid_request` that explains why there is none.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let rest = path.strip_prefix(BASE).ok_or_else(|| unknown_path(path))?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
    let (allowed, route): (&[Method], Option<Route>) = match segments.as_slice() {
        ["webhooks", "subscriptions", "types"] => (
            &[Method::GET],
            (method == Method::GET).then_some(Route::ListTypes),
        ),
        ["webhooks", "subscriptions"] => (
            &[Method::GET, Method::POST],
            match *method {
                Method::GET => Some(Route::ListSubscriptions),
                Method::POST => Some(Route::CreateSubscription),
                _ => None,
            },
        ),
        ["webhooks", "subscriptions", id] if !id.is_empty() => (
            &[Method::GET, Method::PUT, Method::DELETE],
            match *method {
                Method::GET => Some(Route::GetSubscription(id.to_string())),
                Method::PUT => Some(Route::UpdateSubscription(id.to_string())),
                Method::DELETE => Some(Route::DeleteSubscription(id.to_string())),
                _ => None,
            },
        ),
        ["webhooks", "subscriptions", id, "secret"] if !id.is_empty() => (
            &[Method::POST],
            (method == Method::POST).then(|| Route::RotateSecret(id.to_string())),
        ),
        ["webhooks", "subscriptions", id, "recover"] if !id.is_empty() => (
            &[Method::POST],
            (method == Method::POST).then(|| Route::Recover(id.to_string())),
        ),
        [
            "webhooks",
            "subscriptions",
            id,
            "deliveries",
            delivery,
            "resend",
        ] if !id.is_empty() && !delivery.is_empty() => (
            &[Method::POST],
            (method == Method::POST).then(|| Route::Resend(id.to_string(), delivery.to_string())),
        ),
        ["webhooks", "subscriptions", id, "trigger"] if !id.is_empty() => (
            &[Method::POST],
            (method == Method::POST).then(|| Route::TriggerSubscription(id.to_string())),
        ),
        ["webhooks", "subscriptions", id, "dispatch"] if !id.is_empty() => (
            &[Method::POST],
            (method == Method::POST).then(|| Route::DispatchSubscription(id.to_string())),
        ),
        ["webhooks", "subscriptions", id, "deliveries"] if !id.is_empty() => (
            &[Method::GET],
            (method == Method::GET).then(|| Route::ListDeliveries(id.to_string())),
        ),
        ["webhooks", "events"] => (
            &[Method::POST],
            (method == Method::POST).then_some(Route::PublishEvents),
        ),
        _ => return Err(unknown_path(path)),
    };
    route.ok_or_else(|| {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        ApiError::invalid_request(format!(
            "{method} is not supported on {path}; use {}",
            names.join(" or ")
        ))
    })
}

fn unknown_path(path: &str) -> ApiError {
    let shown: String = path.chars().take(200).collect();
    ApiError::invalid_request(format!(
        "there is no endpoint at {shown}; the webhooks API lives under {BASE}/webhooks/subscriptions"
    ))
}

/// Parses an id from a path. A malformed id answers exactly like an unknown or foreign one.
pub fn subscription_id(raw: &str) -> Result<SubscriptionId, ApiError> {
    SubscriptionId::parse(raw).map_err(|_| no_such_subscription(raw))
}

/// The one answer for ids that do not exist, are malformed, or belong to someone else.
pub fn no_such_subscription(raw: &str) -> ApiError {
    let shown: String = raw
        .chars()
        .take(40)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    ApiError::invalid_request(format!(
        "you have no subscription with id `{shown}`; GET {BASE}/webhooks/subscriptions lists yours"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_and_wrong_methods_are_named() {
        assert_eq!(
            route(&Method::GET, "/api/v0/webhooks/subscriptions/types"),
            Ok(Route::ListTypes)
        );
        assert_eq!(
            route(&Method::POST, "/api/v0/webhooks/subscriptions"),
            Ok(Route::CreateSubscription)
        );
        assert_eq!(
            route(&Method::GET, "/api/v0/webhooks/subscriptions/"),
            Ok(Route::ListSubscriptions)
        );
        assert_eq!(
            route(&Method::DELETE, "/api/v0/webhooks/subscriptions/abc"),
            Ok(Route::DeleteSubscription("abc".into()))
        );
        let e = route(&Method::PUT, "/api/v0/webhooks/subscriptions").unwrap_err();
        assert_eq!(
            e.message,
            "PUT is not supported on /api/v0/webhooks/subscriptions; use GET or POST"
        );
        assert!(
            route(&Method::GET, "/api/v1/monkeys")
                .unwrap_err()
                .message
                .starts_with("there is no endpoint")
        );
        assert!(route(&Method::GET, "/api/v0/webhooks/monkeys").is_err());
        assert_eq!(
            route(&Method::POST, "/api/v0/webhooks/events"),
            Ok(Route::PublishEvents)
        );
        assert_eq!(
            route(&Method::POST, "/api/v0/webhooks/subscriptions/abc/trigger"),
            Ok(Route::TriggerSubscription("abc".into()))
        );
        assert!(route(&Method::GET, "/api/v0/webhooks/events").is_err());
    }

    #[test]
    fn malformed_and_unknown_ids_answer_alike() {
        let a = subscription_id("nope").unwrap_err();
        let b = no_such_subscription("nope");
        assert_eq!(a, b);
    }
}
