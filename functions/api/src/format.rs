//! The three answer formats (JSON, XML, YAML), chosen by a path suffix or `Accept`.

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

/// The element name of an array's items: the array's own name made singular
/// (`subscriptions` → `subscription`, `types` → `type`).
fn singular(name: &str) -> &str {
    name.strip_suffix('s')
        .filter(|s| !s.is_empty())
        .unwrap_or("item")
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
                write_xml(out, k, v);
            }
            close(out, name);
        }
        Value::Array(items) => {
            open(out, name);
            for v in items {
                write_xml(out, singular(name), v);
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
            c => out.push(c),
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
    fn yaml_is_the_same_tree() {
        let tree = json!({"meta": {"status": "ok"}, "response": {"list": [1, "two"]}});
        let back: Value = serde_yaml::from_slice(&Format::Yaml.render(&tree)).unwrap();
        assert_eq!(back, tree);
    }
}
