//! Which endpoint a method and path name.
//!
//! Guarantee: the router is the table [`ENDPOINTS`] and nothing else. A request is served
//! only when one of its rows names the method and a path template that matches, so a test
//! that walks the table (against the OpenAPI document, `functions/api/openapi.json`)
//! covers every route that can answer. API paths are matched after their format suffix is
//! taken off; the two public pages are matched on the exact path (a trailing `/` aside).

use http::Method;
use webhooks_core::model::ids::SubscriptionId;

use crate::envelope::ApiError;
use crate::format::split_suffix;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The OpenAPI document (no token).
    OpenApi,
    /// The control panel page (no token to load it).
    Panel,
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

impl Route {
    /// Served without a token: the document and the panel page.
    pub fn is_public(&self) -> bool {
        matches!(self, Self::OpenApi | Self::Panel)
    }

    /// The body fields a subscription endpoint takes (SPEC sections 3, 7 and 9): a body
    /// naming any other is refused, names starting with `_` (Accelo's meta parameters)
    /// aside. `None` for the event endpoint, whose events carry what the product puts in
    /// them, and for the public pages.
    pub fn body_fields(&self) -> Option<&'static [&'static str]> {
        Some(match self {
            Self::CreateSubscription => &[
                "trigger_url",
                "event_id",
                "content_type",
                "secret",
                "headers",
                "retry_schedule",
                "auth",
                "rate_limit",
            ],
            Self::UpdateSubscription(_) => &[
                "trigger_url",
                "content_type",
                "active",
                "headers",
                "retry_schedule",
                "auth",
                "rate_limit",
            ],
            Self::RotateSecret(_) => &["secret"],
            Self::Recover(_) => &["since", "until"],
            Self::TriggerSubscription(_) | Self::DispatchSubscription(_) => &["object_id"],
            Self::ListTypes
            | Self::ListSubscriptions
            | Self::GetSubscription(_)
            | Self::DeleteSubscription(_)
            | Self::Resend(..)
            | Self::ListDeliveries(_) => &[],
            Self::PublishEvents | Self::OpenApi | Self::Panel => return None,
        })
    }

    /// The body fields only a JSON body carries (SPEC section 9): a form body naming one is
    /// refused ([`crate::input::Params::json_only`]).
    pub const JSON_ONLY_FIELDS: &'static [&'static str] =
        &["headers", "retry_schedule", "auth", "rate_limit"];
}

pub const BASE: &str = "/api/v0";

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no token is read.
    Public,
    /// A bearer token (or authorizer claims) is required.
    Token,
    /// A bearer token with the publish scope.
    Publish,
}

/// One row of the router: a method, a path template as the OpenAPI document spells it
/// (`{name}` matches one non-empty segment), and the route it makes of the captures.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    build: fn(&[&str]) -> Route,
}

macro_rules! endpoint {
    ($method:ident $path:literal $access:ident => $build:expr) => {
        Endpoint {
            method: Method::$method,
            path: $path,
            access: Access::$access,
            build: $build,
        }
    };
}

/// Every endpoint there is. Order matters only among templates that match the same path:
/// the first one wins (`.../subscriptions/types` before `.../subscriptions/{subscription_id}`).
pub static ENDPOINTS: &[Endpoint] = &[
    endpoint!(GET "/api/v0/webhooks/openapi.json" Public => |_| Route::OpenApi),
    endpoint!(GET "/webhooks/panel" Public => |_| Route::Panel),
    endpoint!(GET "/api/v0/webhooks/subscriptions/types" Token => |_| Route::ListTypes),
    endpoint!(GET "/api/v0/webhooks/subscriptions" Token => |_| Route::ListSubscriptions),
    endpoint!(POST "/api/v0/webhooks/subscriptions" Token => |_| Route::CreateSubscription),
    endpoint!(GET "/api/v0/webhooks/subscriptions/{subscription_id}" Token
        => |c| Route::GetSubscription(c[0].into())),
    endpoint!(PUT "/api/v0/webhooks/subscriptions/{subscription_id}" Token
        => |c| Route::UpdateSubscription(c[0].into())),
    endpoint!(DELETE "/api/v0/webhooks/subscriptions/{subscription_id}" Token
        => |c| Route::DeleteSubscription(c[0].into())),
    endpoint!(POST "/api/v0/webhooks/subscriptions/{subscription_id}/secret" Token
        => |c| Route::RotateSecret(c[0].into())),
    endpoint!(POST "/api/v0/webhooks/subscriptions/{subscription_id}/recover" Token
        => |c| Route::Recover(c[0].into())),
    endpoint!(POST "/api/v0/webhooks/subscriptions/{subscription_id}/deliveries/{delivery_id}/resend" Token
        => |c| Route::Resend(c[0].into(), c[1].into())),
    endpoint!(POST "/api/v0/webhooks/subscriptions/{subscription_id}/trigger" Token
        => |c| Route::TriggerSubscription(c[0].into())),
    endpoint!(POST "/api/v0/webhooks/subscriptions/{subscription_id}/dispatch" Token
        => |c| Route::DispatchSubscription(c[0].into())),
    endpoint!(GET "/api/v0/webhooks/subscriptions/{subscription_id}/deliveries" Token
        => |c| Route::ListDeliveries(c[0].into())),
    endpoint!(POST "/api/v0/webhooks/events" Publish => |_| Route::PublishEvents),
];

/// The segments of a path template or a request path, without the leading `/` and
/// without a trailing one.
fn segments(path: &str) -> Vec<&str> {
    path.trim_end_matches('/').split('/').skip(1).collect()
}

/// The captures when `template` matches `path`, segment by segment.
fn matches<'p>(template: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let want = segments(template);
    let got = segments(path);
    if want.len() != got.len() {
        return None;
    }
    let mut captures = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        if w.starts_with('{') && w.ends_with('}') {
            if g.is_empty() {
                return None;
            }
            captures.push(*g);
        } else if w != g {
            return None;
        }
    }
    Some(captures)
}

/// The route for a method and a request path (as received, format suffix and all), or the
/// `invalid_request` that explains why there is none.
pub fn route(method: &Method, raw_path: &str) -> Result<Route, ApiError> {
    let (api_path, _) = split_suffix(raw_path);
    // The first template that matches decides the path; its rows decide the method.
    let found = ENDPOINTS.iter().find_map(|e| {
        let path = match e.access {
            Access::Public => raw_path,
            Access::Token | Access::Publish => api_path,
        };
        matches(e.path, path).map(|captures| (e.path, captures))
    });
    let Some((template, captures)) = found else {
        return Err(unknown_path(api_path));
    };
    let rows = ENDPOINTS.iter().filter(|e| e.path == template);
    if let Some(e) = rows.clone().find(|e| e.method == *method) {
        return Ok((e.build)(&captures));
    }
    let names: Vec<&str> = rows.map(|e| e.method.as_str()).collect();
    Err(ApiError::invalid_request(format!(
        "{method} is not supported on {api_path}; use {}",
        names.join(" or ")
    )))
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
    fn the_public_pages_match_exactly() {
        assert_eq!(
            route(&Method::GET, "/api/v0/webhooks/openapi.json"),
            Ok(Route::OpenApi)
        );
        assert_eq!(route(&Method::GET, "/webhooks/panel"), Ok(Route::Panel));
        assert_eq!(route(&Method::GET, "/webhooks/panel/"), Ok(Route::Panel));
        assert!(Route::Panel.is_public() && Route::OpenApi.is_public());
        assert!(!Route::ListTypes.is_public());
        // The document is JSON only; the suffix is not a format switch here.
        for other in ["/api/v0/webhooks/openapi.xml", "/api/v0/webhooks/openapi"] {
            assert!(route(&Method::GET, other).is_err(), "{other}");
        }
        assert_eq!(
            route(&Method::POST, "/webhooks/panel").unwrap_err().message,
            "POST is not supported on /webhooks/panel; use GET"
        );
    }

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];

    fn document() -> serde_json::Value {
        serde_json::from_str(crate::discovery::OPENAPI).expect("openapi.json is JSON")
    }

    /// A path the template matches, with a well-formed id in every `{...}`.
    fn instance(template: &str) -> String {
        template
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "0123456789abcdef01234567"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The router is the table, so walking the table walks every route that can answer:
    /// each must be in the document with its access, and each operation of the document
    /// must be a route, with no other method answering on its path.
    #[test]
    fn the_openapi_document_describes_every_route_and_no_other() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for e in ENDPOINTS {
            let method = e.method.as_str().to_ascii_lowercase();
            let op = &paths
                .get(e.path)
                .unwrap_or_else(|| panic!("{} is not in openapi.json", e.path))[&method];
            assert!(op.is_object(), "{method} {} is not in openapi.json", e.path);
            let security = &op["security"];
            match e.access {
                Access::Public => assert_eq!(security, &serde_json::json!([]), "{}", e.path),
                Access::Token => assert!(security.is_null(), "{}: the global bearer", e.path),
                Access::Publish => assert_eq!(
                    security,
                    &serde_json::json!([{ "bearer": [webhooks_core::model::identity::PUBLISH_SCOPE] }]),
                    "{}",
                    e.path
                ),
            }
            let responses = op["responses"].as_object().expect("responses");
            let successes: Vec<&String> = responses.keys().filter(|k| k.starts_with('2')).collect();
            assert_eq!(successes.len(), 1, "{method} {}: one success", e.path);
            if e.access != Access::Public {
                for code in ["400", "401", "403", "429", "500"] {
                    assert!(
                        responses.contains_key(code),
                        "{method} {}: {code} is not documented",
                        e.path
                    );
                }
                // The API answers every path with a format suffix too.
                let suffixed = format!("{}.xml", instance(e.path));
                assert!(route(&e.method, &suffixed).is_ok(), "{suffixed}");
            }
            let built = route(&e.method, &instance(e.path));
            assert!(built.is_ok(), "{method} {}: {built:?}", e.path);
            let built = built.unwrap();
            assert_eq!(built.is_public(), e.access == Access::Public);
            // The body fields the router lets through are the ones documented, and the
            // document says no others are taken.
            let Some(known) = built.body_fields() else {
                continue;
            };
            let mut known = known.to_vec();
            known.sort_unstable();
            let contents = op["requestBody"]["content"].as_object();
            assert_eq!(contents.is_some(), !known.is_empty(), "{method} {}", e.path);
            for (media, content) in contents.into_iter().flatten() {
                let schema = &content["schema"];
                let mut documented: Vec<&str> = schema["properties"]
                    .as_object()
                    .expect("properties")
                    .keys()
                    .map(String::as_str)
                    .collect();
                documented.sort_unstable();
                // A form body cannot carry the JSON-only fields: its schema leaves them out.
                let expected: Vec<&str> = known
                    .iter()
                    .copied()
                    .filter(|f| media == "application/json" || !Route::JSON_ONLY_FIELDS.contains(f))
                    .collect();
                assert_eq!(documented, expected, "{method} {} {media}", e.path);
                assert_eq!(
                    schema["additionalProperties"], false,
                    "{method} {} {media}: unknown fields are refused",
                    e.path
                );
            }
        }
        for (path, item) in paths {
            for method in METHODS {
                let documented = item.get(method).is_some();
                let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
                let in_table = ENDPOINTS.iter().any(|e| e.path == path && e.method == m);
                assert_eq!(
                    documented, in_table,
                    "{method} {path}: documented {documented}, routed {in_table}"
                );
                assert_eq!(
                    route(&m, &instance(path)).is_ok(),
                    documented,
                    "{method} {path} answers exactly when documented"
                );
            }
        }
    }

    #[test]
    fn the_document_describes_the_delivery_receivers_get() {
        let doc = document();
        let delivery = &doc["webhooks"]["delivery"]["post"];
        let headers: Vec<&str> = delivery["parameters"]
            .as_array()
            .expect("delivery headers")
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for h in [
            "X-Accelo-Event",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "X-Hub-Signature",
            "X-Hub-Signature-256",
        ] {
            assert!(headers.contains(&h), "{h} is not documented");
        }
        let bodies = delivery["requestBody"]["content"].as_object().unwrap();
        assert!(bodies.contains_key("application/json"));
        assert!(bodies.contains_key("application/x-www-form-urlencoded"));
        let statuses = &doc["components"]["schemas"]["Meta"]["properties"]["status"]["enum"];
        for s in [
            crate::envelope::Status::Ok,
            crate::envelope::Status::OkCreated,
            crate::envelope::Status::InvalidRequest,
            crate::envelope::Status::InvalidClient,
            crate::envelope::Status::InvalidPermission,
            crate::envelope::Status::TooManyRequests,
            crate::envelope::Status::ServerError,
        ] {
            assert!(
                statuses.as_array().unwrap().contains(&s.code().into()),
                "{}",
                s.code()
            );
            if s.http() >= 400 {
                let name = s.code();
                let r = &doc["components"]["responses"][name];
                assert!(r.is_object(), "{name} has no response");
                assert!(
                    r.to_string().contains(&format!("\"const\":\"{name}\"")),
                    "{name}: meta.status is pinned"
                );
            }
        }
        let scheme = &doc["components"]["securitySchemes"]["bearer"];
        assert_eq!(
            (scheme["type"].as_str(), scheme["scheme"].as_str()),
            (Some("http"), Some("bearer"))
        );
    }

    #[test]
    fn malformed_and_unknown_ids_answer_alike() {
        let a = subscription_id("nope").unwrap_err();
        let b = no_such_subscription("nope");
        assert_eq!(a, b);
    }
}
