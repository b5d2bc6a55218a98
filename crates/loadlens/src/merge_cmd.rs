//! `loadlens merge a.json b.json … --json merged.json --html report.html`: the results of a
//! run's segments (`run --segment I/N` on N machines) combined into the whole run's result and
//! reports, with exact percentiles (see `loadlens_core::report::merge`). Thresholds are
//! evaluated again on the merged figures, and the exit code is the merged verdict's.

use std::path::PathBuf;

use clap::Args;
use loadlens_core::report::{json::ResultDoc, merge, Verdict};

use crate::exit::{Exit, Failure};
use crate::runner::Outputs;

/// `loadlens merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// JSON results written by `loadlens run --segment I/N --json FILE`, one per segment.
    #[arg(required = true, value_name = "RESULT.json")]
    pub results: Vec<PathBuf>,
    /// Write the merged JSON result.
    #[arg(long, env = "LOADLENS_JSON", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the merged HTML report.
    #[arg(long, env = "LOADLENS_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write Locust-compatible CSV files PREFIX_stats.csv, PREFIX_stats_history.csv, … .
    #[arg(long, env = "LOADLENS_CSV", value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write one JUnit test case per threshold.
    #[arg(long, env = "LOADLENS_JUNIT", value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary.
    #[arg(
        long = "md",
        alias = "summary-md",
        env = "LOADLENS_SUMMARY_MD",
        value_name = "FILE"
    )]
    pub summary_md: Option<PathBuf>,
}

/// Read, merge, evaluate the thresholds and write the reports.
pub fn run(args: &MergeArgs) -> Result<Exit, Failure> {
    let invalid = |e: String| Failure::new(Exit::InvalidInput, e);
    let mut docs = Vec::new();
    for path in &args.results {
        let doc = ResultDoc::read(path).map_err(|e| invalid(e.to_string()))?;
        docs.push((path.clone(), doc));
    }
    let merged = merge::merge(&docs).map_err(|e| invalid(e.to_string()))?;
    for n in &merged.notes {
        eprintln!("warning: {n}");
    }
    let mut summary = merged.summary;
    summary.evaluate_thresholds(&merged.thresholds);
    merge::keep_breaches(&mut summary, &docs);
    let outputs = Outputs {
        json: args.json.clone(),
        csv: args.csv.clone(),
        html: args.html.clone(),
        junit: args.junit.clone(),
        summary_md: args.summary_md.clone(),
        ..Outputs::default()
    };
    crate::reports::check(&outputs)?;
    eprint!("{}", loadlens_core::report::text::render(&summary));
    let mut failed = false;
    for r in crate::reports::write(&summary, &outputs) {
        match r {
            Ok(p) => say!("wrote {}", p.display()),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Failure::new(
            Exit::Internal,
            "some reports could not be written".into(),
        ));
    }
    Ok(match summary.verdict() {
        Verdict::Passed => Exit::Passed,
        Verdict::Failed => Exit::ThresholdsFailed,
        Verdict::Aborted => Exit::Aborted,
        Verdict::Interrupted => Exit::Interrupted,
    })
}
