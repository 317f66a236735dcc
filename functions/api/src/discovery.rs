//! The two public pages: the OpenAPI document (`GET /api/v0/webhooks/openapi.json`) and
//! the control panel (`GET /webhooks/panel`). Neither reads a token nor any stored data.
//!
//! Guarantees: the document is `functions/api/openapi.json` byte for byte (a test checks it
//! against the router's table, and schemathesis checks the answers against it); the panel
//! is one self-contained page (`functions/api/panel.html`: inline CSS and JS, nothing
//! fetched but this API), sent with a Content-Security-Policy that lets it talk only to its
//! own origin. A development token is written into the page only when the process set one
//! ([`App::development_token`], which only the local runner does).

use bytes::Bytes;

use crate::App;

/// The OpenAPI 3.1 document, as served.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The panel page, before a development token is written into it.
pub const PANEL: &str = include_str!("../panel.html");

/// Where the page carries the development token (empty unless the local runner set one).
const TOKEN_SLOT: &str = r#"<meta name="development-token" content="">"#;

/// The page may run its own inline script and style and call this origin; nothing else.
const PANEL_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn openapi() -> http::Response<Bytes> {
    http::Response::builder()
        .status(200)
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .header(http::header::CACHE_CONTROL, "public, max-age=300")
        .header("access-control-allow-origin", "*")
        .body(Bytes::from_static(OPENAPI.as_bytes()))
        .expect("static headers are valid")
}

pub fn panel(app: &App) -> http::Response<Bytes> {
    let page = match app.development_token.get() {
        // A JWT is base64url and dots: nothing in it needs escaping in an attribute, and
        // anything else is refused rather than written into the page.
        Some(token)
            if token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            PANEL.replacen(
                TOKEN_SLOT,
                &format!(r#"<meta name="development-token" content="{token}">"#),
                1,
            )
        }
        _ => PANEL.to_owned(),
    };
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("content-security-policy", PANEL_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .body(Bytes::from(page))
        .expect("static headers are valid")
}
