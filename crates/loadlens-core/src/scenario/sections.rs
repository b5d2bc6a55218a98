//! Top-level sections the core does not declare: the integrations' (`otel:`, `datadog:`, …).
//!
//! The core knows nothing of them beyond their names. [`Scenario`](super::Scenario) is read
//! through a thin `Deserializer` adapter whose top-level map hands the derived visitor only the
//! keys that are `Scenario`'s own fields and sets every other key aside (its value skipped), so
//! errors inside core fields keep their node's line and column. Whoever owns a section (the
//! binary's integrations) then reads it with [`Source::parse_section`], which deserializes the
//! value of that key: errors are located inside the section. A key nobody owns is refused by
//! [`Scenario::check_sections`], at the key.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, IgnoredAny, IntoDeserializer,
    MapAccess, Visitor,
};

use super::{NodePath, Scenario, ScenarioError, Source};

/// Deserialize `Option<Duration>` from a string (`500ms`, `10s`, `1m30s`) or a number of
/// seconds, as the core's own keys are, for `#[serde(deserialize_with)]` in a section; errors
/// keep the value's line and column.
pub fn opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    super::values::opt_duration(d)
}

/// Reads a `Scenario` from `de`, setting aside the top-level keys that are not its fields.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<(Scenario, Vec<String>), D::Error> {
    let mut sections = Vec::new();
    let scenario = serde::Deserialize::deserialize(Sectioned {
        inner: de,
        sections: &mut sections,
    })?;
    Ok((scenario, sections))
}

/// The top-level keys `Scenario` declares, as serde's derive lists them.
pub(super) fn core_fields() -> &'static [&'static str] {
    let fields = Cell::new(&[][..]);
    let _ = <Scenario as serde::Deserialize>::deserialize(Fields(&fields));
    fields.get()
}

/// Passes everything to `inner`; only the top-level struct's map is filtered.
struct Sectioned<'s, D> {
    inner: D,
    sections: &'s mut Vec<String>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Sectioned<'_, D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            Filter {
                visitor,
                fields,
                sections: self.sections,
            },
        )
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The top-level visitor: lends the derived visitor a map without the foreign keys.
struct Filter<'s, V> {
    visitor: V,
    fields: &'static [&'static str],
    sections: &'s mut Vec<String>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Filter<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(FilteredMap {
            map,
            fields: self.fields,
            sections: self.sections,
        })
    }

    // Anything but a mapping is the derived visitor's to refuse, with its own message.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(seq)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<V::Value, E> {
        self.visitor.visit_str(v)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<V::Value, E> {
        self.visitor.visit_bool(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<V::Value, E> {
        self.visitor.visit_i64(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.visitor.visit_u64(v)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<V::Value, E> {
        self.visitor.visit_f64(v)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }
}

struct FilteredMap<'s, A> {
    map: A,
    fields: &'static [&'static str],
    sections: &'s mut Vec<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FilteredMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.map.next_key_seed(KeyText)? {
            if self.fields.contains(&key.as_str()) {
                let de: serde::de::value::StrDeserializer<'_, A::Error> =
                    key.as_str().into_deserializer();
                return seed.deserialize(de).map(Some);
            }
            self.map.next_value::<IgnoredAny>()?;
            self.sections.push(key);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// A mapping key as text (a scalar key such as `1` or `true` as YAML writes it).
struct KeyText;

impl<'de> DeserializeSeed<'de> for KeyText {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
        Ok("null".to_owned())
    }
}

/// Captures the `fields` serde's derive passes to `deserialize_struct`, then gives up.
struct Fields<'c>(&'c Cell<&'static [&'static str]>);

impl<'de> Deserializer<'de> for Fields<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(Self::Error::custom("fields captured"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(Self::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

impl Source {
    /// Deserialize the top-level section `key` of the text as `T`. Errors are located inside
    /// the section (file:line:col, with the node's path and a "did you mean" for unknown keys).
    /// A section whose value is null (`otel:` alone) is read as an empty mapping would be, by
    /// `T`'s own rules for null.
    pub fn parse_section<T: DeserializeOwned>(&self, key: &str) -> Result<T, ScenarioError> {
        let doc =
            crate::yaml::load(&self.text).map_err(|e| ScenarioError::from_yaml(&self.file, &e))?;
        let Some(node) = doc.get(key) else {
            return Err(self.error_at_key(
                &NodePath::root(),
                format!("the file has no `{key}:` section"),
            ));
        };
        crate::yaml::from_node(node, &NodePath::root().key(key))
            .map_err(|e| ScenarioError::from_yaml(&self.file, &e))
    }
}

impl Scenario {
    /// Refuse a top-level key that is neither one of the core's keys nor in `known` (the
    /// sections that the integrations own), at the key, naming the keys expected.
    pub fn check_sections(&self, known: &[&str]) -> Result<(), ScenarioError> {
        let Some(unknown) = self.sections.iter().find(|s| !known.contains(&s.as_str())) else {
            return Ok(());
        };
        let expected: Vec<String> = core_fields()
            .iter()
            .chain(known)
            .map(|k| format!("`{k}`"))
            .collect();
        // Worded as serde words its own unknown fields, so that the hint and the tools that
        // read the list (the schema test) treat both alike.
        let mut message = format!(
            "unknown field `{unknown}`, expected one of {}",
            expected.join(", ")
        );
        if let Some(hint) = super::error::suggestion(&message) {
            message.push_str(&hint);
        }
        Err(self
            .source
            .error_at_key(&NodePath::root().key(unknown), message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
user_types:
  - name: u
    tasks: [{ request: { path: / } }]
otel:
  endpoint: http://x
  sample_rate: 1
datadog: {}
";

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Otel {
        endpoint: Option<String>,
        sample_ratio: Option<f64>,
    }

    #[test]
    fn foreign_top_level_keys_are_set_aside_in_order() {
        let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
        assert_eq!(s.sections, ["otel", "datadog"]);
        assert!(s.check_sections(&["datadog", "otel"]).is_ok());
    }

    #[test]
    fn an_unowned_key_is_refused_at_the_key_naming_the_expected_ones() {
        let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
        let e = s
            .check_sections(&["datadog", "otle"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.yaml:4:1: unknown field `otel`, expected one of `name`"),
            "{e}"
        );
        assert!(
            e.contains("`user_types`") && e.ends_with("`datadog`, `otle` — did you mean `otle`?"),
            "{e}"
        );
    }

    #[test]
    fn a_section_is_read_with_errors_located_inside_it() {
        let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
        let e = s
            .source
            .parse_section::<Otel>("otel")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.yaml:6:3: otel: unknown field `sample_rate`"),
            "{e}"
        );
        assert!(e.contains("did you mean `sample_ratio`?"), "{e}");
    }

    #[test]
    fn core_errors_keep_their_location_past_a_section() {
        let text = "otel: { a: 1 }\nuser_types:\n  - name: u\n    wiat: 1\n    tasks: []\n";
        let e = Scenario::from_str_named(text, "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.yaml:4:5: user_types[0]: unknown field `wiat`"),
            "{e}"
        );
    }
}
