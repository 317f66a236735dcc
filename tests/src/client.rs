//! A small client for the API as an integration sees it: real HTTP, answers parsed back
//! from whichever format was asked for.

use serde_json::{Map, Value};
use webhooks_core::config::DEV_JWT_SECRET;
use webhooks_core::security::auth::{TokenClaims, mint_hs256};

/// An answer: HTTP status, headers, and the envelope parsed into a JSON-shaped tree.
#[derive(Debug)]
pub struct Answer {
    pub http: u16,
    pub headers: reqwest::header::HeaderMap,
    pub tree: Value,
}

impl Answer {
    pub fn status(&self) -> &str {
        self.tree["meta"]["status"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.tree["meta"]["message"].as_str().unwrap_or_default()
    }
}

/// Claims for user `sub` of `deployment`, valid for an hour.
pub fn claims(sub: u64, deployment: &str) -> TokenClaims {
    TokenClaims {
        sub: sub.to_string(),
        deployment: deployment.to_owned(),
        name: format!("User {sub}"),
        email: format!("user{sub}@{deployment}.example"),
        pro: None,
        scope: None,
        exp: now() + 3600,
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token signed with the local runner's development secret.
pub fn token(claims: &TokenClaims) -> String {
    mint_hs256(DEV_JWT_SECRET.as_bytes(), claims)
}

/// Parses a body in the format its content type names.
pub fn parse_body(content_type: &str, body: &[u8]) -> Value {
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).expect("JSON body")
    } else if content_type.starts_with("text/xml") {
        let text = std::str::from_utf8(body).expect("UTF-8 XML");
        let doc = roxmltree::Document::parse(text).expect("well-formed XML");
        assert_eq!(
            doc.root_element().tag_name().name(),
            "data",
            "XML answers have a <data> root"
        );
        xml_to_tree(doc.root_element())
    } else if content_type.starts_with("text/x-yaml") {
        serde_norway::from_slice(body).expect("YAML body")
    } else {
        panic!("unexpected content type {content_type}")
    }
}

/// The item element of each array the API emits, written out here (not borrowed from the
/// API's own rule) so that a wrong singular fails the tests that read XML.
const ARRAY_ITEMS: &[(&str, &str)] = &[
    ("types", "type"),
    ("subscriptions", "subscription"),
    ("subscriptions_users", "subscriptions_user"),
    ("deliveries", "delivery"),
    ("events", "event"),
    ("headers", "header"),
    ("retry_schedule", "item"),
];

/// XML back into a tree: an element of [`ARRAY_ITEMS`] whose children are all its item
/// element is an array; other elements with children are objects; leaves are text.
fn xml_to_tree(node: roxmltree::Node) -> Value {
    let children: Vec<_> = node.children().filter(|c| c.is_element()).collect();
    let name = node.tag_name().name();
    let singular = ARRAY_ITEMS
        .iter()
        .find(|(many, _)| *many == name)
        .map_or("", |(_, one)| *one);
    if children.is_empty() {
        return node
            .text()
            .map_or(Value::Null, |t| Value::String(t.to_owned()));
    }
    if children.iter().all(|c| c.tag_name().name() == singular) {
        return Value::Array(children.into_iter().map(xml_to_tree).collect());
    }
    let mut map = Map::new();
    for c in children {
        map.insert(c.tag_name().name().to_owned(), xml_to_tree(c));
    }
    Value::Object(map)
}

/// The JSON tree as XML carries it: a subscription's `headers` object is a list of
/// `{name, value}` items there (SPEC section 9). Compare it [`stringly`] with the XML tree.
pub fn as_xml_carries(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("headers", Value::Object(headers)) => (
                        k.clone(),
                        headers
                            .iter()
                            .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
                            .collect(),
                    ),
                    _ => (k.clone(), as_xml_carries(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(as_xml_carries).collect()),
        other => other.clone(),
    }
}

/// The tree with every scalar as a string, to compare XML (which has only text) with
/// JSON and YAML.
pub fn stringly(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), stringly(v))).collect())
        }
        Value::Array(a) => {
            if a.is_empty() {
                Value::Null // an empty XML element reads back as nothing
            } else {
                Value::Array(a.iter().map(stringly).collect())
            }
        }
        Value::Null => Value::Null,
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

pub struct Client {
    pub base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// Sends a request; `body` is `(content type, bytes)`.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("Content-Type", ct).body(bytes);
        }
        let resp = req.send().await.expect("the server answers");
        let http = resp.status().as_u16();
        let headers = resp.headers().clone();
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.bytes().await.unwrap();
        Answer {
            http,
            headers,
            tree: parse_body(&ct, &bytes),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(reqwest::Method::GET, path, Some(token), &[], None)
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, Some(token), &[], None)
            .await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(
            reqwest::Method::POST,
            path,
            Some(token),
            &[],
            Some(("application/json", bytes)),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, token: &str, form: &str) -> Answer {
        let body = Some((
            "application/x-www-form-urlencoded",
            form.as_bytes().to_vec(),
        ));
        self.send(reqwest::Method::POST, path, Some(token), &[], body)
            .await
    }
}
