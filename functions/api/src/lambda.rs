//! The Lambda edge: API Gateway's request becomes a plain `http::Request` (with the
//! authorizer's verified claims, when there are any) and the answer goes back.

use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Map, Value};

use crate::App;
use crate::guard::AuthorizerClaims;

/// Serves one API Gateway request.
pub async fn handle(app: &App, req: lambda_http::Request) -> http::Response<Body> {
    let claims = authorizer_claims(&req);
    let (parts, body) = req.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let mut plain = http::Request::from_parts(parts, body);
    if let Some(claims) = claims {
        plain.extensions_mut().insert(claims);
    }
    let (parts, body) = crate::handle(app, plain).await.into_parts();
    http::Response::from_parts(
        parts,
        Body::Text(String::from_utf8_lossy(&body).into_owned()),
    )
}

/// Claims from an HTTP API JWT authorizer or a Lambda authorizer, when the request
/// context carries them.
fn authorizer_claims(req: &lambda_http::Request) -> Option<AuthorizerClaims> {
    let authorizer = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?,
        RequestContext::ApiGatewayV1(ctx) => &ctx.authorizer,
        _ => return None,
    };
    let mut map = Map::new();
    if let Some(jwt) = &authorizer.jwt {
        for (k, v) in &jwt.claims {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for (k, v) in &authorizer.fields {
        map.insert(k.clone(), v.clone());
    }
    // A Lambda authorizer may nest its context under `claims`.
    if let Some(Value::Object(nested)) = map.remove("claims") {
        map.extend(nested);
    }
    (!map.is_empty() && map.contains_key("sub")).then_some(AuthorizerClaims(map))
}
