//! Scenario errors: what went wrong, where (file:line:col), and what was expected.

use std::fmt;

/// A scenario that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    /// The file could not be read.
    Read {
        /// File name.
        file: String,
        /// OS error.
        message: String,
    },
    /// The file is not a valid scenario.
    Invalid {
        /// File name.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Read { file, message } => {
                write!(f, "{file}: cannot read scenario: {message}")
            }
            ScenarioError::Invalid {
                file,
                line,
                column,
                message,
            } => {
                write!(f, "{file}:{line}:{column}: {message}")
            }
        }
    }
}

impl std::error::Error for ScenarioError {}

impl ScenarioError {
    /// Translate a YAML error (located at its node), adding a "did you mean" for unknown keys.
    pub(crate) fn from_yaml(file: &str, e: &crate::yaml::Error) -> Self {
        let pos = e
            .location()
            .unwrap_or(crate::yaml::Pos { line: 1, column: 1 });
        let (line, column) = (pos.line, pos.column);
        let mut message = e.message();
        if let Some(hint) = suggestion(&message) {
            message.push_str(&hint);
        }
        ScenarioError::Invalid {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }

    /// An error located at the first occurrence of `needle` in `text` (line 1 col 1 if absent).
    pub(crate) fn at_text(file: &str, text: &str, needle: &str, message: String) -> Self {
        let (mut line, mut column) = (1, 1);
        if !needle.is_empty() {
            if let Some(pos) = text.find(needle) {
                line = text[..pos].matches('\n').count() + 1;
                column = pos - text[..pos].rfind('\n').map_or(0, |i| i + 1) + 1;
            }
        }
        ScenarioError::Invalid {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// For "unknown field `x`, expected one of `a`, `b`": the nearest expected key, if close.
pub(super) fn suggestion(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let limit = |cand: &str| (unknown.len().max(cand.len()) / 3).max(1);
    let best = expected
        .iter()
        // The lengths alone rule most out; a 30 KB key is compared with none.
        .filter(|cand| unknown.len().abs_diff(cand.len()) <= limit(cand))
        .map(|cand| (edit_distance(unknown, cand), *cand))
        .min()?;
    (best.0 <= limit(best.1)).then(|| format!(" — did you mean `{}`?", best.1))
}

/// Levenshtein distance with adjacent transpositions counted as one edit (optimal string
/// alignment).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}
