//! `loadlens convert openapi`.

use std::path::PathBuf;

use clap::Args;

use super::{Common, Draft};

/// `loadlens convert openapi`.
#[derive(Args, Debug, Clone, Default)]
pub struct OpenApiArgs {
    /// The OpenAPI document (JSON or YAML; `-`: stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Shared flags.
    #[command(flatten)]
    pub common: Common,
}

/// Convert.
pub fn convert(_args: &OpenApiArgs) -> Result<Draft, String> {
    Err("not yet".into())
}
