use std::collections::BTreeMap;

use serde::Deserialize;

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
fn every_node_has_its_own_position_found_by_path() {
    let doc = load(TEXT).unwrap();
    let second = NodePath::root()
        .key("user_types")
        .index(1)
        .key("tasks")
        .index(0);
    assert_eq!(
        doc.find(&second.key("steps"), true),
        Pos { line: 8, column: 9 }
    );
    assert_eq!(
        doc.find(&second.key("steps"), false),
        Pos {
            line: 8,
            column: 16
        }
    );
    let first = NodePath::root()
        .key("user_types")
        .index(0)
        .key("tasks")
        .index(0);
    let path = first.key("steps").index(0).key("request").key("path");
    assert_eq!(
        doc.find(&path, false),
        Pos {
            line: 5,
            column: 30
        }
    );
    let header = NodePath::root().key("headers").key("X-A");
    assert_eq!(
        doc.find(&header, true),
        Pos {
            line: 9,
            column: 12
        }
    );
}

#[test]
fn a_missing_node_stops_at_its_deepest_ancestor() {
    let doc = load(TEXT).unwrap();
    let p = NodePath::root().key("user_types").index(1).key("weight");
    assert_eq!(doc.find(&p, true), Pos { line: 6, column: 5 });
    let p = NodePath::root().key("user_types").index(7);
    assert_eq!(doc.find(&p, false), Pos { line: 2, column: 3 });
    assert_eq!(
        NodePath::root()
            .key("user_types")
            .index(1)
            .key("weight")
            .to_string(),
        "user_types[1].weight"
    );
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Item {
    name: String,
    #[serde(default)]
    weight: u32,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Doc {
    items: Vec<Item>,
}

#[test]
fn errors_carry_the_position_and_path_of_the_node_at_fault() {
    let text = "items:\n  - name: a\n  - name: b\n    weight: lots\n  - name: c\n    wieght: 1\n";
    let e = from_str::<Doc>(text).unwrap_err();
    // The value, not the first `weight` text: there is none before.
    assert_eq!(
        e.location(),
        Some(Pos {
            line: 4,
            column: 13
        })
    );
    assert_eq!(
        e.message(),
        "items[1].weight: invalid type: string \"lots\", expected u32"
    );
    let text = text.replace("weight: lots", "weight: 2");
    let e = from_str::<Doc>(&text).unwrap_err();
    assert_eq!(e.location(), Some(Pos { line: 6, column: 5 }));
    assert!(
        e.message()
            .starts_with("items[2]: unknown field `wieght`, expected `name` or `weight`"),
        "{e}"
    );
}

#[test]
fn an_error_raised_after_reading_a_value_is_still_at_that_value() {
    #[derive(Debug, Deserialize)]
    struct Wrap {
        #[serde(deserialize_with = "even")]
        #[allow(dead_code)]
        n: u32,
    }
    fn even<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = u32::deserialize(d)?;
        if n % 2 == 1 {
            return Err(serde::de::Error::custom(format!("{n} is odd")));
        }
        Ok(n)
    }
    let e = from_str::<Vec<Wrap>>("- n: 2\n- n:   3\n").unwrap_err();
    assert_eq!(e.to_string(), "2:8: [1].n: 3 is odd");
}

#[test]
fn scalars_resolve_as_yaml_1_2_and_quotes_make_strings() {
    let v: serde_json::Value =
        from_str("[1, -2, 0x1f, 1.5, 1e3, .inf, true, ~, '', '1', \"true\", 0123, abc, !!str 7]")
            .unwrap();
    let s = v.to_string();
    assert_eq!(
        s,
        r#"[1,-2,31,1.5,1000.0,null,true,null,"","1","true","0123","abc","7"]"#
    );
    // Any scalar reads into a string as its text.
    let m: BTreeMap<String, String> = from_str("a: 1\nb: true\nc: x\n").unwrap();
    assert_eq!(m["a"], "1");
    assert_eq!(m["b"], "true");
}

#[test]
fn aliases_are_expanded_within_a_budget() {
    let v: serde_json::Value = from_str("a: &x { k: 1 }\nb: *x\n").unwrap();
    assert_eq!(v["b"]["k"], 1);
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..8 {
        let (p, n) = ((b'a' + i) as char, (b'a' + i + 1) as char);
        bomb.push_str(&format!(
            "{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    let e = load(&bomb).unwrap_err();
    assert!(e.to_string().contains("nodes once expanded"), "{e}");
}

#[test]
fn syntax_errors_and_extra_documents_are_located() {
    let e = load("a: [1, 2\nb: 3\n").unwrap_err();
    assert!(e.location().is_some(), "{e}");
    let e = load("a: 1\n---\nb: 2\n").unwrap_err();
    assert_eq!(e.location().map(|p| p.line), Some(3), "{e}");
    assert_eq!(load_all("a: 1\n---\nb: 2\n").unwrap().len(), 2);
}

#[test]
fn enums_read_from_a_scalar_or_a_one_entry_mapping() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum E {
        Plain,
        Num(u32),
    }
    let v: Vec<E> = from_str("[plain, { num: 3 }]").unwrap();
    assert_eq!(v, [E::Plain, E::Num(3)]);
    let e = from_str::<Vec<E>>("[plain, other]").unwrap_err();
    assert_eq!(e.location(), Some(Pos { line: 1, column: 9 }), "{e}");
}
