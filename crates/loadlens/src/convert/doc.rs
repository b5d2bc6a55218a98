//! The documents `convert` reads and writes, as one ordered tree ([`Node`]): an OpenAPI
//! document or a JSON body keeps its key order on the way in, and the scenario keeps a readable
//! order on the way out.
//!
//! Reading: JSON with `serde_json`, YAML with the workspace's YAML parser, both into [`Node`]
//! through one `Deserialize` impl ([`read_json`], [`read_yaml`]); [`read_yaml`] is the only
//! place here that names the YAML crate. Writing: [`to_yaml`], a block-style emitter written
//! here because the scenario wants a header comment and a fixed key order, which no serde YAML
//! serializer gives, and because every string it cannot prove plain goes out as a JSON string
//! (a valid YAML double-quoted scalar), so that what it writes reads back the same.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// An ordered document tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (JSON's syntax).
    Num(String),
    /// A string.
    Str(String),
    /// Written as is, unquoted: a value the emitter knows is plain (`1500ms`, `GET`).
    Plain(String),
    /// A list.
    Seq(Vec<Node>),
    /// A map, in order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A string node.
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    /// The value at `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string (or of a number or boolean, as written).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) | Node::Num(s) | Node::Plain(s) => Some(s),
            Node::Bool(true) => Some("true"),
            Node::Bool(false) => Some("false"),
            _ => None,
        }
    }

    /// The entries of a map (none for anything else).
    pub fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map(m) => m,
            _ => &[],
        }
    }

    /// The items of a list (none for anything else).
    pub fn items(&self) -> &[Node] {
        match self {
            Node::Seq(s) => s,
            _ => &[],
        }
    }

    /// A map from `(key, node)` pairs, leaving out empty maps and lists.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Node)>) -> Node {
        Node::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .filter(|(_, v)| !matches!(v, Node::Map(m) if m.is_empty()))
                .filter(|(_, v)| !matches!(v, Node::Seq(s) if s.is_empty()))
                .collect(),
        )
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Num(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Num(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        // NaN and infinities (YAML's `.nan`, `.inf`) have no JSON spelling: keep them as text.
        Ok(if v.is_finite() {
            Node::Num(serde_json::Number::from_f64(v).map_or(v.to_string(), |n| n.to_string()))
        } else {
            Node::Str(v.to_string())
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Node::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out: Vec<(String, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Node>()? {
            // YAML keys may be numbers (`200:` under `responses`) or booleans: their text.
            let key = match k {
                Node::Null => "null".to_owned(),
                other => other.as_str().unwrap_or_default().to_owned(),
            };
            out.push((key, map.next_value()?));
        }
        Ok(Node::Map(out))
    }
}

/// Read a JSON document; errors say line and column.
pub fn read_json(text: &str) -> Result<Node, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Read a YAML document (JSON too); errors say line and column. The one place `convert` calls
/// the YAML parser.
pub fn read_yaml(text: &str) -> Result<Node, String> {
    loadlens_core::yaml::from_str(text).map_err(|e| match e.location() {
        // Worded as serde_json's errors are, for one style whatever the input.
        Some(p) => format!("{} at line {} column {}", e.message(), p.line, p.column),
        None => e.message(),
    })
}

/// Write `node` (a map) as a YAML document in block style, after `comments` as `#` lines.
pub fn to_yaml(comments: &[String], node: &Node) -> String {
    let mut out = String::new();
    for c in comments {
        for line in c.lines() {
            out.push_str(if line.is_empty() { "#" } else { "# " });
            out.push_str(line);
            out.push('\n');
        }
    }
    match node {
        Node::Map(m) if !m.is_empty() => block_map(&mut out, m, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn block_map(out: &mut String, entries: &[(String, Node)], indent: usize) {
    for (k, v) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar(k));
        out.push(':');
        value_after_key(out, v, indent);
    }
}

/// The value of a map entry, after its `key:`.
fn value_after_key(out: &mut String, v: &Node, indent: usize) {
    match v {
        Node::Map(m) if !m.is_empty() => {
            out.push('\n');
            block_map(out, m, indent + 2);
        }
        Node::Seq(s) if !s.is_empty() => {
            out.push('\n');
            block_seq(out, s, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn block_seq(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match item {
            Node::Map(m) if !m.is_empty() => {
                // The first entry on the dash's line, the others under it.
                let mut inner = String::new();
                block_map(&mut inner, m, indent + 2);
                out.push_str(&inner[indent + 2..]);
            }
            Node::Seq(s) if !s.is_empty() => {
                let mut inner = String::new();
                block_seq(&mut inner, s, indent + 2);
                out.push_str(&inner[indent + 2..]);
            }
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
    }
}

/// A scalar, or an empty container, on one line.
fn inline(v: &Node) -> String {
    match v {
        Node::Null => "null".into(),
        Node::Bool(b) => b.to_string(),
        Node::Num(n) => n.clone(),
        Node::Str(s) => scalar(s),
        Node::Plain(s) => s.clone(),
        Node::Seq(_) => "[]".into(),
        Node::Map(_) => "{}".into(),
    }
}

/// A string as a plain scalar when it surely reads back as that same string, else as a JSON
/// string (a YAML double-quoted scalar). `${` is written `\x24{`, so that the scenario's
/// environment substitution, which runs on the raw text, does not see it.
pub fn scalar(s: &str) -> String {
    if is_plain(s) {
        return s.to_owned();
    }
    let json = serde_json::to_string(s).expect("a string serializes");
    // Characters YAML reads as line breaks inside a quoted scalar, which JSON leaves as is.
    json.replace("${", "\\x24{")
        .replace('\u{85}', "\\x85")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let special = [
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n",
    ];
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('$')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-./:@()+,;=~%!*&?<>{}[]|^'`".contains(c))
        && !special.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// Text from the outside world as a loadlens template that renders exactly that text: each
/// `{{` becomes an expression that renders `{{` (templates have no escape character).
pub fn literal(s: &str) -> String {
    s.replace("{{", "{{ random_choice({{) }}")
}

/// [`literal`] on every string value of a JSON tree (keys are not templates).
pub fn literal_json(node: Node) -> Node {
    match node {
        Node::Str(s) => Node::Str(literal(&s)),
        Node::Seq(s) => Node::Seq(s.into_iter().map(literal_json).collect()),
        Node::Map(m) => Node::Map(m.into_iter().map(|(k, v)| (k, literal_json(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_are_not_plain_read_back_the_same() {
        let tricky = [
            "",
            "42",
            "1.5",
            "true",
            "No",
            "null",
            "~",
            "- a",
            "a: b",
            "a #b",
            "#x",
            "{x}",
            "[x]",
            "*ref",
            "&a",
            "!tag",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "x:",
            " lead",
            "trail ",
            "${HOME}",
            "a${PATH:-x}b",
            "line\nbreak",
            "tab\tx",
            "é",
            "\u{2028}",
            "\u{85}",
            "0x1F",
            "1e3",
            "2024-01-01",
            "@at",
            "%p",
            "`b`",
            "?",
            ":x",
            "a\\b",
        ];
        let node = Node::map(
            tricky
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("k{i}"), Node::str(*s))),
        );
        let text = to_yaml(&[], &node);
        // What the scenario loader does first: environment substitution on the raw text.
        let substituted = loadlens_core::template::substitute_env(&text, |_| None).unwrap();
        let back = read_yaml(&substituted).unwrap();
        for (i, s) in tricky.iter().enumerate() {
            assert_eq!(
                back.get(&format!("k{i}")),
                Some(&Node::str(*s)),
                "{s:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn nested_blocks_read_back_in_order() {
        let node = Node::map([
            ("name", Node::str("x")),
            (
                "list",
                Node::Seq(vec![
                    Node::map([("a", Node::Num("1".into())), ("b", Node::Seq(vec![]))]),
                    Node::Seq(vec![Node::str("p"), Node::Bool(true)]),
                    Node::Map(vec![]),
                    Node::Null,
                ]),
            ),
            (
                "z",
                Node::map([("y", Node::str("/p")), ("a", Node::Plain("1500ms".into()))]),
            ),
        ]);
        let text = to_yaml(&["first".into(), "second\n\nthird".into()], &node);
        assert!(
            text.starts_with("# first\n# second\n#\n# third\n"),
            "{text}"
        );
        let back = read_yaml(&text).unwrap();
        let keys: Vec<&str> = back.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["name", "list", "z"]);
        let list = back.get("list").unwrap().items();
        assert_eq!(list[0].get("a"), Some(&Node::Num("1".into())));
        assert_eq!(list[1].items()[1], Node::Bool(true));
        assert_eq!(list[2], Node::Map(vec![]));
        let z: Vec<&str> = back
            .get("z")
            .unwrap()
            .entries()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(z, ["y", "a"]);
    }

    #[test]
    fn json_and_yaml_keep_key_order_and_stringify_yaml_keys() {
        let j = read_json(r#"{"b": 1, "a": {"d": [1, 2.5, "x", null], "c": true}}"#).unwrap();
        let keys: Vec<&str> = j.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        let y = read_yaml("responses:\n  200: { description: ok }\n  default: {}\n").unwrap();
        let codes: Vec<&str> = y
            .get("responses")
            .unwrap()
            .entries()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(codes, ["200", "default"]);
        let e = read_json("{\n  \"a\": }").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn literal_text_survives_templates() {
        assert_eq!(literal("a{{b}}"), "a{{ random_choice({{) }}b}}");
        assert_eq!(literal("plain"), "plain");
    }
}
