//! The scenario's `jsonl:` section. The flag `--jsonl` (in `integration.rs`) wins over it.

/// `jsonl: { file: … }`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    /// Where the lines go (`-` for stdout).
    pub file: Option<String>,
}
