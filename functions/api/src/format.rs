//! The three answer formats (JSON, XML, YAML), chosen by a path suffix or `Accept`.
//!
//! Guarantees of the XML form: the document is always well-formed XML 1.0, whatever the
//! strings in the tree hold (characters XML 1.0 forbids become U+FFFD, a carriage return
//! is kept as `&#13;`), element names are always valid XML names, and an array's items
//! are elements named by the array's name made singular ([`singular`]).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Xml,
    Yaml,
}

impl Format {
    fn from_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "json" => Some(Self::Json),
            "xml" => Some(Self::Xml),
            "yml" | "yaml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// The first media type of `Accept` that names one of the formats; JSON otherwise.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Json;
        };
        for media in accept.split(',') {
            let media = media
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            match media.as_str() {
                "application/json" | "text/json" => return Self::Json,
                "text/xml" | "application/xml" => return Self::Xml,
                "text/x-yaml" | "application/x-yaml" | "text/yaml" | "application/yaml" => {
                    return Self::Yaml;
                }
                _ => {}
            }
        }
        Self::Json
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::Xml => "text/xml; charset=utf-8",
            Self::Yaml => "text/x-yaml; charset=utf-8",
        }
    }

    pub fn render(self, tree: &Value) -> Vec<u8> {
        match self {
            Self::Json => serde_json::to_vec(tree).expect("a JSON value always serializes"),
            Self::Yaml => serde_yaml::to_string(tree)
                .expect("a JSON value always serializes as YAML")
                .into_bytes(),
            Self::Xml => {
                let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
                write_xml(&mut out, "data", tree);
                out.push('\n');
                out.into_bytes()
            }
        }
    }
}

/// Splits a format suffix off the last path segment: `/a/b.xml` is `/a/b` in XML. A
/// suffix that names no format is left in place, so the path will not match a route.
pub fn split_suffix(path: &str) -> (&str, Option<Format>) {
    let last_segment_start = path.rfind('/').map_or(0, |i| i + 1);
    if let Some(dot) = path[last_segment_start..].rfind('.') {
        let at = last_segment_start + dot;
        if let Some(format) = Format::from_suffix(&path[at + 1..]) {
            return (&path[..at], Some(format));
        }
    }
    (path, None)
}

/// The element name of an array's items: the array's own name made singular, by the last
/// word of a snake_case name (`subscriptions` → `subscription`, `deliveries` → `delivery`,
/// `subscriptions_users` → `subscriptions_user`, `types` → `type`). A name that is not a
/// plural gives `item`.
pub fn singular(name: &str) -> String {
    let (head, last) = match name.rsplit_once('_') {
        Some((head, last)) => (Some(head), last),
        None => (None, name),
    };
    match (head, singular_word(last)) {
        (_, None) => "item".to_owned(),
        (Some(head), Some(one)) => format!("{head}_{one}"),
        (None, Some(one)) => one,
    }
}

/// One English word made singular, or `None` when it does not read as a plural.
fn singular_word(word: &str) -> Option<String> {
    const IRREGULAR: &[(&str, &str)] = &[
        ("people", "person"),
        ("children", "child"),
        ("statuses", "status"),
        ("aliases", "alias"),
        ("analyses", "analysis"),
        ("indices", "index"),
        ("data", "datum"),
    ];
    let lower = word.to_ascii_lowercase();
    if let Some((_, one)) = IRREGULAR.iter().find(|(many, _)| *many == lower) {
        return Some((*one).to_owned());
    }
    let stem = |cut: usize| word[..word.len() - cut].to_owned();
    if lower.len() > 3 && lower.ends_with("ies") {
        // deliveries → delivery, activities → activity
        return Some(format!("{}y", stem(3)));
    }
    if ["sses", "shes", "ches", "xes", "zzes"]
        .iter()
        .any(|end| lower.ends_with(end))
    {
        // addresses → address, matches → match, boxes → box
        return Some(stem(2));
    }
    if lower.len() > 1
        && lower.ends_with('s')
        && !["ss", "us", "is"].iter().any(|end| lower.ends_with(end))
    {
        return Some(stem(1));
    }
    None
}

/// A valid XML element name for a key: characters outside the name rules become `_`, and
/// a name that cannot start as it is gets a leading `_`.
fn element_name(key: &str) -> std::borrow::Cow<'_, str> {
    let starts_well = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_');
    let all_fit = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if starts_well && all_fit {
        return std::borrow::Cow::Borrowed(key);
    }
    let mut name = String::with_capacity(key.len() + 1);
    if !starts_well {
        name.push('_');
    }
    name.extend(key.chars().map(|c| {
        if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') {
            c
        } else {
            '_'
        }
    }));
    std::borrow::Cow::Owned(name)
}

/// Whether XML 1.0 allows the character in a document (its `Char` production).
fn xml_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn write_xml(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        Value::Object(map) => {
            open(out, name);
            for (k, v) in map {
                write_xml(out, &element_name(k), v);
            }
            close(out, name);
        }
        Value::Array(items) => {
            open(out, name);
            let item = singular(name);
            for v in items {
                write_xml(out, &item, v);
            }
            close(out, name);
        }
        Value::String(s) => leaf(out, name, s),
        Value::Bool(b) => leaf(out, name, if *b { "true" } else { "false" }),
        Value::Number(n) => leaf(out, name, &n.to_string()),
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn leaf(out: &mut String, name: &str, text: &str) {
    open(out, name);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A parser turns a literal carriage return into a line feed; a reference keeps it.
            '\r' => out.push_str("&#13;"),
            c if xml_allows(c) => out.push(c),
            // No reference can carry these in XML 1.0 either: say something was here.
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    close(out, name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn suffixes_split_off_the_last_segment_only() {
        assert_eq!(
            split_suffix("/api/v0/webhooks/subscriptions.xml"),
            ("/api/v0/webhooks/subscriptions", Some(Format::Xml))
        );
        assert_eq!(
            split_suffix("/api/v0/x/583f.yml"),
            ("/api/v0/x/583f", Some(Format::Yaml))
        );
        assert_eq!(
            split_suffix("/api/v0/x.json"),
            ("/api/v0/x", Some(Format::Json))
        );
        assert_eq!(split_suffix("/api/v0/x.csv"), ("/api/v0/x.csv", None));
        assert_eq!(split_suffix("/api/v0.json/x"), ("/api/v0.json/x", None));
    }

    #[test]
    fn accept_picks_a_format() {
        assert_eq!(Format::from_accept(Some("text/xml")), Format::Xml);
        assert_eq!(
            Format::from_accept(Some("text/html, text/x-yaml;q=0.9")),
            Format::Yaml
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
        assert_eq!(Format::from_accept(None), Format::Json);
    }

    #[test]
    fn xml_wraps_the_tree_in_data_and_escapes_text() {
        let tree = json!({"meta": {"status": "ok"}, "response": {"types": [{"event_id": "a<b"}], "n": 1, "x": null}});
        let xml = String::from_utf8(Format::Xml.render(&tree)).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "data");
        let event = root
            .descendants()
            .find(|n| n.has_tag_name("event_id"))
            .unwrap();
        assert_eq!(event.text(), Some("a<b"));
        assert_eq!(event.parent().unwrap().tag_name().name(), "type");
    }

    #[test]
    fn array_items_are_named_by_a_real_singular() {
        // Every array name the API emits, and then some.
        let table = [
            ("types", "type"),
            ("subscriptions", "subscription"),
            ("subscriptions_users", "subscriptions_user"),
            ("deliveries", "delivery"),
            ("events", "event"),
            ("activities", "activity"),
            ("companies", "company"),
            ("addresses", "address"),
            ("matches", "match"),
            ("boxes", "box"),
            ("statuses", "status"),
            ("users", "user"),
            ("visible_to", "item"),
            ("status", "item"),
            ("s", "item"),
        ];
        for (many, one) in table {
            assert_eq!(singular(many), one, "{many}");
        }
    }

    #[test]
    fn xml_arrays_of_the_api_read_back_with_their_singulars() {
        let tree = json!({"response": {
            "deliveries": [{"delivery_id": "msg_1"}],
            "subscriptions_users": [{"id": 1}],
            "types": [{"event_id": "a"}],
        }});
        let xml = String::from_utf8(Format::Xml.render(&tree)).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let names: Vec<&str> = doc
            .descendants()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        for expected in ["delivery", "subscriptions_user", "type"] {
            assert!(names.contains(&expected), "{expected} in {xml}");
        }
        assert!(!xml.contains("<deliverie>"), "{xml}");
    }

    /// Strings from outside (a receiver's body, an echoed event id, a token's name) may hold
    /// characters XML 1.0 forbids; the document must parse all the same.
    #[test]
    fn xml_never_carries_characters_xml_forbids() {
        let nasty = "a\u{0}b\u{1}c\u{8}\u{b}\u{c}\u{1b}[31m\u{1f}d\u{fffe}\u{ffff}e\r\nf\t<&>\u{7f}\u{10ffff}";
        let tree =
            json!({"response": {"response_body": nasty, "1 odd key<": nasty, "names": [nasty]}});
        let xml = String::from_utf8(Format::Xml.render(&tree)).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml:?}"));
        let body = doc
            .descendants()
            .find(|n| n.has_tag_name("response_body"))
            .unwrap();
        assert_eq!(
            body.text(),
            Some(
                "a\u{fffd}b\u{fffd}c\u{fffd}\u{fffd}\u{fffd}\u{fffd}[31m\u{fffd}d\u{fffd}\u{fffd}e\r\nf\t<&>\u{7f}\u{10ffff}"
            ),
            "forbidden characters are replaced, the rest (a carriage return too) kept"
        );
        assert!(doc.descendants().any(|n| n.has_tag_name("_1_odd_key_")));
        assert!(doc.descendants().any(|n| n.has_tag_name("name")));
        // YAML and JSON carry the same string unchanged.
        let back: Value = serde_yaml::from_slice(&Format::Yaml.render(&tree)).unwrap();
        assert_eq!(back, tree);
    }

    #[test]
    fn yaml_is_the_same_tree() {
        let tree = json!({"meta": {"status": "ok"}, "response": {"list": [1, "two"]}});
        let back: Value = serde_yaml::from_slice(&Format::Yaml.render(&tree)).unwrap();
        assert_eq!(back, tree);
    }
}
