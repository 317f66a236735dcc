//! The two public pages: the OpenAPI document (`GET /api/v0/webhooks/openapi.json`) and
//! the control panel (`GET /webhooks/panel`). Neither reads a token nor any stored data.
//!
//! Guarantees: the document is `functions/api/openapi.json` byte for byte (a test checks it
//! against the router's table, and schemathesis checks the answers against it); the panel
//! is one self-contained page (`functions/api/panel.html`: inline CSS and JS, nothing
//! fetched but this API), sent with a Content-Security-Policy that lets it run only its own
//! script and style (by their SHA-256, so nothing injected into the page would run) and
//! talk only to its own origin. A development token is written into the page only when the process set one
//! ([`App::development_token`], which only the local runner does).

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

use crate::App;

/// The OpenAPI 3.1 document, as served.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The panel page, before a development token is written into it.
pub const PANEL: &str = include_str!("../panel.html");

/// Where the page carries the development token (empty unless the local runner set one).
const TOKEN_SLOT: &str = r#"<meta name="development-token" content="">"#;

/// The page may run its own inline script and style, named by their hashes, and call this
/// origin; nothing else.
static PANEL_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_hash(PANEL, "script"),
        inline_hash(PANEL, "style"),
    )
});

/// `sha256-…` of the contents of the page's one `<tag>` element, as CSP names inline code.
fn inline_hash(page: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = page.find(&open).expect("the panel has its element") + open.len();
    let end = start
        + page[start..]
            .find(&format!("</{tag}>"))
            .expect("the element is closed");
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &page.as_bytes()[start..end]);
    format!("sha256-{}", STANDARD.encode(digest.as_ref()))
}

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
        .header("content-security-policy", PANEL_POLICY.as_str())
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .body(Bytes::from(page))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_pages_own_script_and_style_by_hash() {
        let policy = PANEL_POLICY.as_str();
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(PANEL.matches("<script>").count(), 1);
        assert_eq!(PANEL.matches("<style>").count(), 1);
        // Any change to the script changes the hash the policy allows.
        let changed = PANEL.replacen("\"use strict\";", "\"use strict\"; alert(1);", 1);
        assert_ne!(
            inline_hash(&changed, "script"),
            inline_hash(PANEL, "script")
        );
        assert!(policy.contains(&format!("script-src '{}'", inline_hash(PANEL, "script"))));
        assert!(policy.contains(&format!("style-src '{}'", inline_hash(PANEL, "style"))));
    }
}
