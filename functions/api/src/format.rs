//! The three answer formats (JSON, XML, YAML), chosen by a path suffix or `Accept`.
//!
//! Guarantees of the XML form: the document is always well-formed XML 1.0, whatever the
//! strings in the tree hold (characters XML 1.0 forbids become U+FFFD, a carriage return
//! is kept as `&#13;`), element names are always valid XML names, and an array's items
//! are elements named by the array's name made singular ([`singular`]). An object whose
//! keys are names a user chose ([`NAMED_MAPS`]: a subscription's `headers`) is a list
//! too, of items each with `<name>` and `<value>`, as SPEC section 9 says: such a key
//! need not be an XML name.
//!
//! Guarantees of the YAML form: block mappings and sequences, every string double-quoted
//! with escapes for anything that is not printable, so that YAML 1.1 parsers (PyYAML,
//! Ruby's Psych) and YAML 1.2 parsers read the same tree as the JSON form: a string
//! `yes`, `off`, `2026-11-27T20:00:00Z`, `1:20` or `=` stays a string. A YAML library's
//! writer does not keep this: `serde_norway` (as `serde_yaml` before it) writes those
//! strings plain, which YAML 1.1 reads as booleans, times, numbers or the `=` value key,
//! and floats as `1e300`, which it reads as a string; so the writer is ours, and
//! `functions/api/tests/yaml_golden.rs` pins its bytes.

use serde_json::{Map, Value};

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

    /// The format `Accept` prefers. Each format takes the q-value of the most specific
    /// media range that matches it (`text/xml` over `text/*` over `*/*`); the highest q
    /// wins, q=0 meaning "not acceptable"; on a tie an exactly named type beats a wildcard,
    /// then the range listed first wins, then JSON, XML, YAML in that order. When nothing
    /// is acceptable (or `Accept` is absent or unreadable) the answer is JSON: the spec
    /// has no "not acceptable" status, and every client reads the JSON envelope.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Json;
        };
        let ranges: Vec<MediaRange> = accept.split(',').filter_map(MediaRange::parse).collect();
        let mut best: Option<(Self, Preference)> = None;
        for format in [Self::Json, Self::Xml, Self::Yaml] {
            let Some(pref) = ranges
                .iter()
                .enumerate()
                .filter_map(|(position, range)| range.matches(format, position))
                .max_by(|a, b| {
                    a.specificity
                        .cmp(&b.specificity)
                        .then(b.position.cmp(&a.position))
                })
            else {
                continue;
            };
            if pref.q == 0 {
                continue;
            }
            if best.as_ref().is_none_or(|(_, b)| pref.beats(b)) {
                best = Some((format, pref));
            }
        }
        best.map_or(Self::Json, |(format, _)| format)
    }

    /// The media types that name this format exactly.
    fn media_types(self) -> &'static [&'static str] {
        match self {
            Self::Json => &["application/json", "text/json"],
            Self::Xml => &["text/xml", "application/xml"],
            Self::Yaml => &[
                "text/x-yaml",
                "application/x-yaml",
                "text/yaml",
                "application/yaml",
            ],
        }
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
            Self::Yaml => {
                let mut out = String::new();
                match tree {
                    Value::Object(map) if !map.is_empty() => {
                        write_yaml_map(&mut out, map, 0, false)
                    }
                    Value::Array(items) if !items.is_empty() => write_yaml_seq(&mut out, items, 0),
                    other => {
                        yaml_scalar(&mut out, other);
                        out.push('\n');
                    }
                }
                out.into_bytes()
            }
            Self::Xml => {
                let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
                write_xml(&mut out, "data", tree);
                out.push('\n');
                out.into_bytes()
            }
        }
    }
}

/// One media range of `Accept`, with its q-value in thousandths.
struct MediaRange {
    kind: String,
    subtype: String,
    q: u16,
}

/// How much a range says a format is wanted.
#[derive(Debug, Clone, Copy)]
struct Preference {
    q: u16,
    /// 2: named exactly, 1: `type/*`, 0: `*/*`.
    specificity: u8,
    /// Where the range stands in `Accept`.
    position: usize,
}

impl Preference {
    fn beats(&self, other: &Preference) -> bool {
        (self.q, self.specificity, std::cmp::Reverse(self.position))
            > (
                other.q,
                other.specificity,
                std::cmp::Reverse(other.position),
            )
    }
}

impl MediaRange {
    /// `type/subtype;q=0.5;...`; a range without a `/` or with an unreadable q is skipped.
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let media = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = media.split_once('/')?;
        let mut q = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = parse_qvalue(value.trim())?;
            }
        }
        Some(Self {
            kind: kind.trim().to_owned(),
            subtype: subtype.trim().to_owned(),
            q,
        })
    }

    fn matches(&self, format: Format, position: usize) -> Option<Preference> {
        let specificity = if self.kind == "*" && self.subtype == "*" {
            0
        } else if self.subtype == "*" {
            let kind = &self.kind;
            if !format
                .media_types()
                .iter()
                .any(|m| m.split('/').next() == Some(kind.as_str()))
            {
                return None;
            }
            1
        } else {
            let media = format!("{}/{}", self.kind, self.subtype);
            if !format.media_types().contains(&media.as_str()) {
                return None;
            }
            2
        };
        Some(Preference {
            q: self.q,
            specificity,
            position,
        })
    }
}

/// RFC 9110's qvalue: `0`, `1`, or a fraction with up to three decimals, in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn yaml_pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A mapping in block style at `indent`; `inline_first` when the first key follows a
/// sequence's `- ` on the same line.
fn write_yaml_map(out: &mut String, map: &Map<String, Value>, indent: usize, inline_first: bool) {
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 || !inline_first {
            yaml_pad(out, indent);
        }
        yaml_key(out, k);
        out.push(':');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_yaml_map(out, m, indent + 2, false);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_yaml_seq(out, a, indent + 2);
            }
            scalar => {
                out.push(' ');
                yaml_scalar(out, scalar);
                out.push('\n');
            }
        }
    }
}

fn write_yaml_seq(out: &mut String, items: &[Value], indent: usize) {
    for v in items {
        yaml_pad(out, indent);
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push_str("- ");
                write_yaml_map(out, m, indent + 2, true);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push_str("-\n");
                write_yaml_seq(out, a, indent + 2);
            }
            scalar => {
                out.push_str("- ");
                yaml_scalar(out, scalar);
                out.push('\n');
            }
        }
    }
}

/// A key plain when it is a plain identifier that no YAML version reads as anything but a
/// string; double-quoted otherwise.
fn yaml_key(out: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        out.push_str(key);
    } else {
        yaml_string(out, key);
    }
}

/// Scalars and empty collections.
fn yaml_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) if n.is_f64() => out.push_str(&yaml_float(&n.to_string())),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => yaml_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// A float as JSON writes it (`1e300`, `1.5e-7`, `0.25`), spelled so that YAML 1.1 reads
/// a float too: its float form needs a `.` and a signed exponent (`1.0e+300`); YAML 1.2
/// reads both spellings alike. Without this, PyYAML reads `1e300` as a string.
fn yaml_float(json: &str) -> String {
    let (mantissa, exponent) = match json.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (json, None),
    };
    let mut out = mantissa.to_owned();
    if !mantissa.contains('.') {
        out.push_str(".0");
    }
    if let Some(e) = exponent {
        out.push('e');
        if !e.starts_with(['+', '-']) {
            out.push('+');
        }
        out.push_str(e);
    }
    out
}

/// A double-quoted YAML string. Escaped: `"` and `\`, C0 and C1 controls, DEL, the
/// characters YAML 1.1 treats as line breaks inside a scalar (U+0085, U+2028, U+2029),
/// and U+FFFE/U+FFFF, which YAML does not allow in a stream.
fn yaml_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
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

/// Whether XML 1.0 (fifth edition) lets `c` start a name (`NameStartChar`), the colon
/// aside (it would make a namespace prefix).
fn xml_name_start(c: char) -> bool {
    matches!(c, 'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// Whether XML 1.0 (fifth edition) allows `c` inside a name (`NameChar`), the colon aside.
fn xml_name_char(c: char) -> bool {
    xml_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A valid XML element name for a key, by XML 1.0's `Name` production: characters that
/// cannot be in a name become `_`, and a name that cannot start as it is gets a leading
/// `_`. (Unicode's "alphanumeric" is not that production: `ª`, `²` and `µ` are
/// alphanumeric and no name characters, and many name characters are not alphanumeric.)
fn element_name(key: &str) -> std::borrow::Cow<'_, str> {
    let starts_well = key.chars().next().is_some_and(xml_name_start);
    if starts_well && key.chars().all(xml_name_char) {
        return std::borrow::Cow::Borrowed(key);
    }
    let mut name = String::with_capacity(key.len() + 1);
    if !starts_well {
        name.push('_');
    }
    name.extend(key.chars().map(|c| if xml_name_char(c) { c } else { '_' }));
    std::borrow::Cow::Owned(name)
}

/// Whether XML 1.0 allows the character in a document (its `Char` production).
fn xml_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Keys whose object values map names a user chose to values: XML writes them as a list
/// of items (named by the key made singular), each with `<name>` and `<value>`.
pub const NAMED_MAPS: &[&str] = &["headers"];

fn write_xml(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Object(map) if NAMED_MAPS.contains(&name) => {
            open(out, name);
            let item = singular(name);
            for (k, v) in map {
                open(out, &item);
                leaf(out, "name", k);
                write_xml(out, "value", v);
                close(out, &item);
            }
            close(out, name);
        }
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
    fn accept_honours_q_values() {
        let cases = [
            ("application/xml;q=0.1, application/json", Format::Json),
            ("application/json;q=0.5, text/xml", Format::Xml),
            ("text/xml;q=0.9, text/x-yaml;q=0.95", Format::Yaml),
            ("application/json;q=0, text/xml;q=0.2", Format::Xml),
            ("application/json; q=0 , */*", Format::Xml),
            ("text/*;q=0.5, application/json;q=0.4", Format::Xml),
            ("text/xml, application/json", Format::Xml),
            ("application/json, text/xml", Format::Json),
            ("text/xml;q=0.5, */*;q=0.5", Format::Xml),
            ("text/xml;Q=0.500, application/json;q=0.499", Format::Xml),
            ("*/*;q=0.1, text/xml;q=0", Format::Json),
            // Nothing acceptable, or nonsense: JSON.
            ("text/xml;q=0, application/json;q=0", Format::Json),
            ("*/*;q=0", Format::Json),
            ("text/html", Format::Json),
            ("text/xml;q=2", Format::Json),
            ("text/xml;q=abc", Format::Json),
            ("garbage", Format::Json),
            ("", Format::Json),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::from_accept(Some(accept)), expected, "{accept}");
        }
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

    #[test]
    fn xml_writes_headers_as_header_items_with_name_and_value() {
        let tree = json!({"subscription": {
            "headers": {"1-Not-An-Xml-Name": "a<b", "X-Api-Key": "********"},
            "retry_schedule": [1, 3],
        }});
        let xml = String::from_utf8(Format::Xml.render(&tree)).unwrap();
        assert!(
            xml.contains(
                "<headers><header><name>1-Not-An-Xml-Name</name><value>a&lt;b</value></header>\
                 <header><name>X-Api-Key</name><value>********</value></header></headers>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<retry_schedule><item>1</item><item>3</item></retry_schedule>"),
            "{xml}"
        );
        roxmltree::Document::parse(&xml).unwrap();
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
        let back: Value = serde_norway::from_slice(&Format::Yaml.render(&tree)).unwrap();
        assert_eq!(back, tree);
    }

    /// Strings that YAML 1.1 would read as something else (bools, times, sexagesimal
    /// numbers, the merge and value keys) are quoted; anything unprintable is escaped.
    #[test]
    fn yaml_strings_stay_strings_for_every_yaml_version() {
        let tricky = [
            "yes",
            "No",
            "Off",
            "y",
            "N",
            "on",
            "true",
            "null",
            "~",
            "",
            "2026-11-27T20:00:00Z",
            "2026-11-27",
            "1_000",
            "1:20",
            "0x1F",
            "1e3",
            ".inf",
            "=",
            "<<",
            "- a",
            "a: b",
            "#c",
            "'q'",
            "\"dq\"",
            "back\\slash",
        ];
        let tree = json!({"response": {"list": tricky, "nested": [[1, "2"], [], {}], "empty": {}}});
        let yaml = String::from_utf8(Format::Yaml.render(&tree)).unwrap();
        for s in tricky {
            let quoted = serde_json::to_string(s).unwrap();
            assert!(
                yaml.contains(&format!("- {quoted}\n")),
                "{s:?} quoted in {yaml}"
            );
        }
        let back: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, tree, "{yaml}");
        let controls =
            json!({"a": "a\u{0}b\u{1b}c\u{7f}\u{85}\u{2028}\u{fffe}\u{ffff}\u{10ffff}é\r\n\t"});
        let yaml = String::from_utf8(Format::Yaml.render(&controls)).unwrap();
        assert_eq!(
            yaml,
            "a: \"a\\x00b\\x1Bc\\x7F\\x85\\u2028\\uFFFE\\uFFFF\u{10ffff}é\\r\\n\\t\"\n"
        );
        let back: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, controls);
    }

    /// Found by `tests/tests/fuzz_parsers.rs`: keys that Unicode calls alphanumeric but XML
    /// does not allow in names (`ª`, `²`, `µ`) made documents no parser reads.
    #[test]
    fn xml_element_names_follow_the_xml_name_production() {
        let tree = json!({"ª": 1, "a²": 2, "µ": 3, "x\u{e0100}": 4, "ok·name": 5});
        let xml = String::from_utf8(Format::Xml.render(&tree)).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        let names: Vec<&str> = doc
            .root_element()
            .children()
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(names, ["a_", "ok·name", "x\u{e0100}", "__", "__"]);
    }

    /// Found by the property tests: a top-level array was written as `[]`, whatever it held.
    #[test]
    fn yaml_writes_a_top_level_array_in_full() {
        let tree = json!([null, 1, "a", [2], {"k": "v"}]);
        let back: Value = serde_norway::from_slice(&Format::Yaml.render(&tree)).unwrap();
        assert_eq!(back, tree);
    }

    /// Floats are written so that YAML 1.1 (PyYAML's float form: a `.` and a signed
    /// exponent) and YAML 1.2 both read floats.
    #[test]
    fn yaml_floats_read_as_floats_in_yaml_1_1() {
        for (f, written) in [
            (1e300, "1.0e+300"),
            (1.5e-7, "1.5e-7"),
            (-2e22, "-2.0e+22"),
            (0.25, "0.25"),
            (3.0, "3.0"),
        ] {
            let yaml = String::from_utf8(Format::Yaml.render(&json!({"f": f}))).unwrap();
            assert_eq!(yaml, format!("f: {written}\n"));
            let back: Value = serde_norway::from_str(&yaml).unwrap();
            assert_eq!(back["f"].as_f64(), Some(f));
        }
    }

    #[test]
    fn yaml_is_the_same_tree() {
        let tree = json!({"meta": {"status": "ok"}, "response": {"list": [1, "two"]}});
        let back: Value = serde_norway::from_slice(&Format::Yaml.render(&tree)).unwrap();
        assert_eq!(back, tree);
    }
}
