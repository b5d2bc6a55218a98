//! `loadlens report RESULT.json --html out.html`: rebuild the HTML report from a saved JSON
//! result, e.g. one written by CI, or by an older run before the report got a new section.

use std::path::PathBuf;

use clap::Args;
use loadlens_core::report::{html, json::ResultDoc};

use crate::exit::{Exit, Failure};

/// `loadlens report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// JSON result written by `loadlens run --json` (format_version 1).
    pub result: PathBuf,
    /// Where to write the HTML report (default: the result's path with `.html`).
    #[arg(long, env = "LOADLENS_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Read the result and write the report.
pub fn run(args: &ReportArgs) -> Result<Exit, Failure> {
    let doc = ResultDoc::read(&args.result)
        .map_err(|e| Failure::new(Exit::InvalidInput, e.to_string()))?;
    let out = args
        .html
        .clone()
        .unwrap_or_else(|| args.result.with_extension("html"));
    if out == args.result {
        return Err(Failure::new(
            Exit::InvalidInput,
            format!(
                "{}: refusing to overwrite the result with its report; give --html FILE",
                out.display()
            ),
        ));
    }
    html::write(&doc, &out).map_err(|e| {
        Failure::new(
            Exit::Internal,
            format!("cannot write {}: {e}", out.display()),
        )
    })?;
    say!("wrote {}", out.display());
    Ok(Exit::Passed)
}
