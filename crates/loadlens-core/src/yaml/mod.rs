//! YAML with real source positions: the text is parsed by `saphyr-parser` (a maintained,
//! YAML 1.2 event parser that marks every event with its span) into a tree of [`Node`]s that
//! each keep where they start, and read into Rust types by a serde `Deserializer` over that
//! tree ([`from_str`], [`from_node`]). Any error raised while a node is read, by the parser, by
//! serde's derive or by a custom `deserialize_with`, carries that node's line and column and
//! its path (`user_types[1].tasks`), so a scenario error names the node at fault, not the
//! first text that looks like it. [`Node::find`] gives the position of any node by its path.
//!
//! Scalars resolve as serde_yaml did (YAML 1.2 core schema): `null`/`~`/empty, `true`/`false`,
//! integers (decimal, `0x`, `0o`), floats (`1.5`, `1e3`, `.inf`, `.nan`), anything else a
//! string; quoted and block scalars are always strings. Anchors and aliases are expanded, within
//! a budget of nodes (so a "billion laughs" document is an error, not an out-of-memory).

mod de;

use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

pub use de::{from_node, from_str, De, Error};

/// Most nodes that aliases may copy in one text (the text's own nodes are bounded by its size).
const MAX_NODES: usize = 500_000;
/// Most levels of nested sequences and mappings (serde_yaml allowed 128).
const MAX_DEPTH: usize = 128;

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line().max(1),
            column: span.start.col() + 1,
        }
    }
}

/// One node of a document and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it starts: the first character of a scalar, the `[`/`{` of a flow collection,
    /// the first `-` or key of a block collection.
    pub pos: Pos,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar: its text, and whether it was plain (unquoted, so `1` and `true` are typed).
    Scalar {
        /// The text after unescaping and folding.
        text: String,
        /// Plain (not quoted, not a block scalar, no `!!str` tag).
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in the order written.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Whether this is a null: an empty plain scalar, `~`, `null`, `Null` or `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The value of `key` in this mapping (the first, if written twice).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key)),
            _ => None,
        }
    }

    /// The position of the node at `path`: of its key when `key` is true and the path ends in
    /// a key. A path that leaves the document stops at the deepest node that exists.
    pub fn find(&self, path: &NodePath, key: bool) -> Pos {
        let mut node = self;
        for (i, seg) in path.0.iter().enumerate() {
            let last = i + 1 == path.0.len();
            let next = match (seg, &node.value) {
                (Seg::Key(k), Value::Map(_)) => match node.entry(k) {
                    Some((kn, _)) if last && key => return kn.pos,
                    Some((_, v)) => Some(v),
                    None => None,
                },
                (Seg::Index(n), Value::Seq(items)) => items.get(*n),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }
}

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// The path of a node from the document root (`user_types[1].tasks[0].steps`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePath(pub(crate) Vec<Seg>);

impl NodePath {
    /// The document root.
    pub fn root() -> NodePath {
        NodePath::default()
    }

    /// The value of `key` in this mapping.
    pub fn key(&self, key: &str) -> NodePath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// Item `i` of this sequence.
    pub fn index(&self, i: usize) -> NodePath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Parse the one document of `text` (an empty text is a null at 1:1). A second document is
/// an error, as it was with serde_yaml.
pub fn load(text: &str) -> Result<Node, Error> {
    let mut docs = load_all(text)?;
    if docs.len() > 1 {
        let second = docs.swap_remove(1);
        return Err(Error::at(
            "a scenario is one YAML document; this text has more than one (a `---` line)",
            second.pos,
        ));
    }
    Ok(docs.pop().unwrap_or(Node {
        value: Value::Scalar {
            text: String::new(),
            plain: true,
        },
        pos: Pos { line: 1, column: 1 },
    }))
}

/// Parse every document of `text` (a Kubernetes manifest file has several).
pub fn load_all(text: &str) -> Result<Vec<Node>, Error> {
    Loader::default().run(text)
}

/// Builds nodes from the parser's events.
#[derive(Default)]
struct Loader {
    /// Open collections: the node being filled and, for a mapping, the key awaiting its value.
    stack: Vec<(Node, Option<Node>)>,
    anchors: std::collections::HashMap<usize, Node>,
    /// Anchors of the open collections, set when they close.
    open_anchors: Vec<usize>,
    nodes: usize,
    docs: Vec<Node>,
}

impl Loader {
    fn run(mut self, text: &str) -> Result<Vec<Node>, Error> {
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(|e| {
                Error::at(
                    e.info().to_owned(),
                    Pos {
                        line: e.marker().line().max(1),
                        column: e.marker().col() + 1,
                    },
                )
            })?;
            let pos = Pos::of(&span);
            match event {
                Event::Scalar(text, style, anchor, tag) => {
                    // `!!str 1` is the string "1"; other tags are not interpreted.
                    let is_str = tag
                        .as_ref()
                        .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str");
                    let node = Node {
                        value: Value::Scalar {
                            text: text.into_owned(),
                            plain: style == ScalarStyle::Plain && !is_str,
                        },
                        pos,
                    };
                    self.push(node, anchor, 0)?;
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(Error::at(
                            format!("nested more than {MAX_DEPTH} levels deep"),
                            pos,
                        ));
                    }
                    let value = match event {
                        Event::SequenceStart(..) => Value::Seq(Vec::new()),
                        _ => Value::Map(Vec::new()),
                    };
                    self.stack.push((Node { value, pos }, None));
                    self.open_anchors.push(anchor);
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, _) = self.stack.pop().expect("balanced events");
                    let anchor = self.open_anchors.pop().unwrap_or(0);
                    self.push(node, anchor, 0)?;
                }
                Event::Alias(id) => {
                    let Some(target) = self.anchors.get(&id) else {
                        return Err(Error::at("alias to an unknown anchor", pos));
                    };
                    let mut node = target.clone();
                    node.pos = pos;
                    let size = count(&node);
                    self.push(node, 0, size)?;
                }
                Event::StreamStart
                | Event::StreamEnd
                | Event::DocumentStart(_)
                | Event::DocumentEnd
                | Event::Nothing => {}
            }
        }
        Ok(self.docs)
    }

    /// Add a finished node to the collection being filled (or end a document with it).
    fn push(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), Error> {
        self.nodes += size;
        if self.nodes > MAX_NODES {
            return Err(Error::at(
                format!("aliases copy more than {MAX_NODES} nodes once expanded"),
                node.pos,
            ));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some((parent, pending)) => match &mut parent.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                },
                Value::Scalar { .. } => unreachable!("only collections are open"),
            },
        }
        Ok(())
    }
}

/// Nodes in a tree: a copy made for an alias counts whole.
fn count(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests;
