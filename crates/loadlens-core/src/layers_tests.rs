//! The core's layering, as documented in the crate root (`lib.rs`, "Layers"), checked against
//! the code: a module's files may name (`crate::…`) only modules of its own layer or lower ones.
//! Test code (`tests.rs`, `*_tests.rs`, and `#[cfg(test)] mod tests` blocks) may reach higher
//! to build fixtures, and comments (doc links) are not imports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `module → layer` from the numbered list in the crate docs.
fn documented_layers() -> BTreeMap<String, usize> {
    let mut layers = BTreeMap::new();
    let mut in_list = false;
    for line in include_str!("lib.rs").lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc == "# Layers" {
            in_list = true;
            continue;
        }
        if !in_list {
            continue;
        }
        if doc.starts_with('#') {
            break;
        }
        let Some((n, rest)) = doc.split_once(". ") else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else {
            continue;
        };
        // The modules are the links before the colon: "[`a`], [`b`]: what they are".
        let head = rest.split_once(':').map_or(rest, |(h, _)| h);
        for m in head.split(',') {
            let m = m.trim().trim_start_matches("[`").trim_end_matches("`]");
            layers.insert(m.to_owned(), n);
        }
    }
    layers
}

/// The top-level modules declared in `lib.rs`, test-only ones aside.
fn declared_modules() -> Vec<String> {
    let lib = include_str!("lib.rs");
    let mut out = Vec::new();
    let mut test_only = false;
    for line in lib.lines() {
        let l = line.trim();
        if l == "#[cfg(test)]" {
            test_only = true;
            continue;
        }
        let name = l
            .strip_prefix("pub mod ")
            .or_else(|| l.strip_prefix("pub(crate) mod "))
            .or_else(|| l.strip_prefix("mod "))
            .and_then(|r| r.strip_suffix(';'));
        if let Some(name) = name {
            if !test_only {
                out.push(name.to_owned());
            }
        }
        test_only = false;
    }
    out
}

/// The `.rs` files of a module: `src/m.rs`, or every file under `src/m/`.
fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src.join(module)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The top-level modules named by `crate::…` paths in the code of `text` (comments and test
/// modules aside).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let code = line.split("//").next().unwrap_or("");
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|(_, next)| {
                let next = next.trim_start();
                let next = next.strip_prefix("pub(crate) ").unwrap_or(next);
                next.starts_with("mod tests")
            })
        {
            break; // the test module runs to the end of the file
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            // `testutil::` in `crate::testutil`, not `loadlens_crate::x`.
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

fn is_test_file(p: &Path) -> bool {
    let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    name == "tests" || name.ends_with("_tests")
}

#[test]
fn every_module_has_a_documented_layer() {
    let layers = documented_layers();
    assert!(
        layers.len() > 5,
        "the Layers list was not found: {layers:?}"
    );
    for m in declared_modules() {
        assert!(
            layers.contains_key(&m),
            "module `{m}` is not in the crate docs' Layers list (lib.rs): add it to its layer"
        );
    }
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let layers = documented_layers();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (module, layer) in &layers {
        for file in files_of(&src, module) {
            if is_test_file(&file) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, used) in crate_paths(&text) {
                let Some(used_layer) = layers.get(&used) else {
                    continue; // `crate::testutil` and the like
                };
                if used_layer > layer {
                    wrong.push(format!(
                        "{}:{line}: `{module}` (layer {layer}) uses `crate::{used}` (layer {used_layer})",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "lower layers must not import higher ones (see Layers in lib.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_in_code_only() {
    let text = "use crate::plan::Plan;\n/// [`x`](crate::report::Summary)\nlet a = crate::stats::f(); // crate::sink\nloadlens_crate::executor::x();\n#[cfg(test)]\nmod tests {\n    use crate::executor::X;\n}\n";
    let got: Vec<String> = crate_paths(text).into_iter().map(|(_, m)| m).collect();
    assert_eq!(got, ["plan", "stats"]);
}
