//! A serde `Deserializer` over a [`Node`] tree. Every error that comes out of reading a node
//! (including those a visitor or a `deserialize_with` raises after the node was read) is
//! stamped with that node's position and path, unless a deeper node stamped it first.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use super::{load, Node, NodePath, Pos, Value};

/// A YAML error: what went wrong, and where (line, column and path of the node) when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    pos: Option<Pos>,
    path: String,
}

impl Error {
    pub(super) fn at(message: impl Into<String>, pos: Pos) -> Error {
        Error {
            message: message.into(),
            pos: Some(pos),
            path: String::new(),
        }
    }

    /// Stamp the position and path of the node being read, if no deeper node did.
    fn located(mut self, pos: Pos, path: &NodePath) -> Error {
        if self.pos.is_none() {
            self.pos = Some(pos);
            self.path = path.to_string();
        }
        self
    }

    /// 1-based line and column of the node at fault, if known.
    pub fn location(&self) -> Option<Pos> {
        self.pos
    }

    /// The message with the node's path in front (`user_types[0]: unknown field …`), without
    /// the position.
    pub fn message(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}: {}", p.line, p.column, self.message()),
            None => f.write_str(&self.message()),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            pos: None,
            path: String::new(),
        }
    }
}

/// Parse one YAML document and read it as `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    from_node(&load(text)?, &NodePath::root())
}

/// Read `node`, found at `path` (which prefixes error messages), as `T`.
pub fn from_node<T: DeserializeOwned>(node: &Node, path: &NodePath) -> Result<T, Error> {
    T::deserialize(De { node, path })
}

/// Reads one node.
pub struct De<'a> {
    node: &'a Node,
    path: &'a NodePath,
}

impl<'a> De<'a> {
    /// A deserializer of `node`, found at `path`.
    pub fn new(node: &'a Node, path: &'a NodePath) -> De<'a> {
        De { node, path }
    }

    fn fail(&self, e: Error) -> Error {
        e.located(self.node.pos, self.path)
    }

    fn unexpected(&self) -> Unexpected<'a> {
        match &self.node.value {
            Value::Scalar { text, plain } => {
                if !plain {
                    return Unexpected::Str(text);
                }
                match resolve(text) {
                    Scalar::Null => Unexpected::Unit,
                    Scalar::Bool(b) => Unexpected::Bool(b),
                    Scalar::U64(n) => Unexpected::Unsigned(n),
                    Scalar::I64(n) => Unexpected::Signed(n),
                    Scalar::F64(n) => Unexpected::Float(n),
                    Scalar::Str => Unexpected::Str(text),
                }
            }
            Value::Seq(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
        }
    }

    fn invalid<'de, V: Visitor<'de>>(&self, visitor: &V) -> Error {
        self.fail(de::Error::invalid_type(self.unexpected(), visitor))
    }

    fn visit_seq<'de, V: Visitor<'de>>(
        &self,
        items: &'a [Node],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut seq = Seq {
            items: items.iter(),
            index: 0,
            path: self.path,
        };
        let v = visitor.visit_seq(&mut seq)?;
        match seq.items.len() {
            0 => Ok(v),
            left => Err(de::Error::invalid_length(
                seq.index + left,
                &"fewer elements",
            )),
        }
    }

    fn visit_map<'de, V: Visitor<'de>>(
        &self,
        entries: &'a [(Node, Node)],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut map = Map {
            entries: entries.iter(),
            value: None,
            path: self.path,
        };
        visitor.visit_map(&mut map)
    }

    fn any<'de, V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Scalar { text, plain: false } => visitor.visit_str(text),
            Value::Scalar { text, plain: true } => match resolve(text) {
                Scalar::Null => visitor.visit_unit(),
                Scalar::Bool(b) => visitor.visit_bool(b),
                Scalar::U64(n) => visitor.visit_u64(n),
                Scalar::I64(n) => visitor.visit_i64(n),
                Scalar::F64(n) => visitor.visit_f64(n),
                Scalar::Str => visitor.visit_str(text),
            },
            Value::Seq(items) => self.visit_seq(items, visitor),
            Value::Map(entries) => self.visit_map(entries, visitor),
        }
    }
}

/// What a plain scalar means.
enum Scalar {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str,
}

/// Resolve a plain scalar as serde_yaml did (YAML 1.2 core schema).
fn resolve(text: &str) -> Scalar {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::F64(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::F64(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::F64(f64::NAN),
        _ => {}
    }
    let (neg, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let radix = |prefix: &str, radix: u32| {
        let rest = digits.strip_prefix(prefix)?;
        if rest.is_empty() || rest.starts_with(['+', '-']) {
            return None;
        }
        u64::from_str_radix(rest, radix).ok()
    };
    if let Some(n) = radix("0x", 16).or_else(|| radix("0o", 8)) {
        return signed(neg, n).unwrap_or(Scalar::Str);
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // `0123` stays text, as with serde_yaml (a zip code, not an octal number).
        if digits.len() > 1 && digits.starts_with('0') {
            return Scalar::Str;
        }
        if let Some(s) = digits.parse::<u64>().ok().and_then(|n| signed(neg, n)) {
            return s;
        }
    }
    // A float in YAML's syntax only: Rust would also take `inf`, `NaN` or `infinity`.
    let float_chars = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if float_chars && digits.bytes().any(|b| b.is_ascii_digit()) {
        if let Ok(f) = text.parse::<f64>() {
            return Scalar::F64(f);
        }
    }
    Scalar::Str
}

fn signed(neg: bool, n: u64) -> Option<Scalar> {
    if !neg {
        return Some(Scalar::U64(n));
    }
    if n == 0 {
        return Some(Scalar::I64(0));
    }
    i64::try_from(n - 1).ok().map(|m| Scalar::I64(-m - 1))
}

impl<'de, 'a> de::Deserializer<'de> for De<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor).map_err(|e| self.fail(e))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Any scalar reads as its text (`port: 8080` into a string), as with serde_yaml.
        match &self.node.value {
            Value::Scalar { text, .. } => visitor.visit_str(text),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(De {
                node: self.node,
                path: self.path,
            })
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Seq(items) => self.visit_seq(items, visitor),
            _ if self.node.is_null() => self.visit_seq(&[], visitor),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // `otel:` alone reads as an empty mapping, as with serde_yaml.
        match &self.node.value {
            Value::Map(entries) => self.visit_map(entries, visitor),
            _ if self.node.is_null() => self.visit_map(&[], visitor),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (node, path) = (self.node, self.path);
        visitor
            .visit_newtype_struct(De { node, path })
            .map_err(|e| e.located(node.pos, path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Scalar { .. } => visitor.visit_enum(Enum {
                variant: self.node,
                value: None,
                path: self.path,
            }),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(Enum {
                variant: &entries[0].0,
                value: Some(&entries[0].1),
                path: self.path,
            }),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 bytes byte_buf unit unit_struct
    }
}

/// The items of a sequence.
struct Seq<'a> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'a NodePath,
}

impl<'de, 'a> SeqAccess<'de> for Seq<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(self.index);
        self.index += 1;
        seed.deserialize(De { node, path: &path })
            .map(Some)
            .map_err(|e| e.located(node.pos, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of a mapping. A key's errors (an unknown field) are at the key, with the
/// mapping's path, as serde_yaml reported them.
struct Map<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, NodePath)>,
    path: &'a NodePath,
}

impl<'de, 'a> MapAccess<'de> for Map<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let text = match &key.value {
            Value::Scalar { text, .. } => text.as_str(),
            _ => {
                return Err(Error::at(
                    "a mapping key must be a plain value, not a list or a mapping",
                    key.pos,
                ))
            }
        };
        self.value = Some((value, self.path.key(text)));
        seed.deserialize(De {
            node: key,
            path: self.path,
        })
        .map(Some)
        .map_err(|e| e.located(key.pos, self.path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (node, path) = self.value.take().expect("a key before its value");
        seed.deserialize(De { node, path: &path })
            .map_err(|e| e.located(node.pos, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum: a scalar (a unit variant) or a one-entry mapping (`variant: value`).
struct Enum<'a> {
    variant: &'a Node,
    value: Option<&'a Node>,
    path: &'a NodePath,
}

impl<'de, 'a> EnumAccess<'de> for Enum<'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let v = seed
            .deserialize(De {
                node: self.variant,
                path: self.path,
            })
            .map_err(|e| e.located(self.variant.pos, self.path))?;
        Ok((v, self))
    }
}

impl<'de, 'a> VariantAccess<'de> for Enum<'a> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None => Ok(()),
            Some(v) if v.is_null() => Ok(()),
            Some(v) => Err(Error::at("this variant takes no value", v.pos)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        let node = self.value.unwrap_or(self.variant);
        seed.deserialize(De {
            node,
            path: self.path,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        let node = self.value.unwrap_or(self.variant);
        de::Deserializer::deserialize_seq(
            De {
                node,
                path: self.path,
            },
            visitor,
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let node = self.value.unwrap_or(self.variant);
        de::Deserializer::deserialize_map(
            De {
                node,
                path: self.path,
            },
            visitor,
        )
    }
}

impl<'de, 'a> IntoDeserializer<'de, Error> for De<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}
