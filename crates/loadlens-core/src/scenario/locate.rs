//! Where a node of the scenario is in its text, found by the node's path
//! (`user_types[1].tasks[0].steps`), not by searching for its text: a second, empty `steps:`
//! must be reported on its own line, not on the line of the first `steps:` above it.
//!
//! serde_yaml keeps no spans in what it returns, but it does put the position of the node
//! being read into any error raised while reading it. So the text is read once more (only
//! when there is an error to report) by a walker that follows the path and fails on purpose
//! at the target node, and the position of that failure is the node's position.

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// The path of a node from the document root, built as the scenario is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePath(Vec<Seg>);

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

/// Marks the deliberate failure; any other error means the text itself did not parse.
const FOUND: &str = "loadlens: the node to locate";

/// The 1-based line and column of the node at `path` in `text` — of its key when `key` is true
/// and the path ends in a key. A path that leaves the document stops at the deepest node that
/// exists. `None` when the text does not parse that far (it has parsed before we locate).
pub(crate) fn locate(text: &str, path: &NodePath, key: bool) -> Option<(usize, usize)> {
    let de = serde_yaml::Deserializer::from_str(text);
    let walk = Walk { rest: &path.0, key };
    match walk.deserialize(de) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// Follows `rest` from the node it is given.
struct Walk<'p> {
    rest: &'p [Seg],
    key: bool,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.rest.split_first() else {
            return Err(A::Error::custom(FOUND));
        };
        let fail_at_key = self.key && rest.is_empty();
        while let Some(hit) = map.next_key_seed(Key {
            want,
            fail: fail_at_key,
        })? {
            if hit {
                return map.next_value_seed(Walk {
                    rest,
                    key: self.key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        // No such key: this mapping is the deepest node on the path.
        Err(A::Error::custom(FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.rest.split_first() else {
            return Err(A::Error::custom(FOUND));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(A::Error::custom(FOUND));
            }
        }
        seq.next_element_seed(Walk {
            rest,
            key: self.key,
        })?;
        Err(A::Error::custom(FOUND))
    }

    // Any scalar ends the walk here.
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Reads one mapping key: `true` if it is `want`; fails there when `fail` is set.
struct Key<'w> {
    want: &'w str,
    fail: bool,
}

impl Key<'_> {
    fn hit<E: serde::de::Error>(&self, key: &str) -> Result<bool, E> {
        match key == self.want {
            true if self.fail => Err(E::custom(FOUND)),
            hit => Ok(hit),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        self.hit(v)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<bool, E> {
        self.hit(&v.to_string())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
user_types:
  - name: a
    tasks:
      - steps:
          - request: { path: /a }
  - name: b
    tasks:
      - steps: []
headers: { X-A: '1' }
";

    #[test]
    fn follows_the_path_not_the_first_similar_text() {
        let second = NodePath::root()
            .key("user_types")
            .index(1)
            .key("tasks")
            .index(0);
        assert_eq!(locate(TEXT, &second.key("steps"), true), Some((8, 9)));
        assert_eq!(locate(TEXT, &second.key("steps"), false), Some((8, 16)));
        let first = NodePath::root()
            .key("user_types")
            .index(0)
            .key("tasks")
            .index(0);
        assert_eq!(
            locate(
                TEXT,
                &first.key("steps").index(0).key("request").key("path"),
                false
            ),
            Some((5, 30))
        );
        assert_eq!(
            locate(TEXT, &NodePath::root().key("headers").key("X-A"), true),
            Some((9, 12))
        );
    }

    #[test]
    fn a_missing_node_stops_at_its_deepest_ancestor() {
        let p = NodePath::root().key("user_types").index(1).key("weight");
        assert_eq!(locate(TEXT, &p, true), Some((6, 5)));
        assert_eq!(
            locate(TEXT, &NodePath::root().key("user_types").index(7), false),
            Some((2, 3))
        );
        assert_eq!(p.to_string(), "user_types[1].weight");
    }
}
