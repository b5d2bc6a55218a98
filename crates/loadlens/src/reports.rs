//! The report files of a run: checked before it starts, so that a path that cannot be written
//! refuses the run before it sends any load, and written at its end, each one independently.

use std::path::PathBuf;

use anyhow::Context as _;
use loadlens_core::report::{self, json::ResultDoc, Summary};

use crate::exit::{Exit, Failure};
use crate::runner::Outputs;

/// Refuse a run whose reports could not be written at its end (exit 2 before any load):
/// a missing directory that cannot be created, a read-only directory, a directory as the path.
pub fn check(outputs: &Outputs) -> Result<(), Failure> {
    let files = [
        &outputs.json,
        &outputs.html,
        &outputs.junit,
        &outputs.summary_md,
    ];
    let csv = outputs.csv.iter().flat_map(|p| report::csv::paths(p));
    for path in files.into_iter().flatten().cloned().chain(csv) {
        report::check_writable(&path).map_err(|e| {
            Failure::new(
                Exit::InvalidInput,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
    }
    if let Some(path) = &outputs.step_summary {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Failure::new(
                    Exit::InvalidInput,
                    format!(
                        "cannot append to $GITHUB_STEP_SUMMARY {}: {e}",
                        path.display()
                    ),
                )
            })?;
    }
    Ok(())
}

/// Write every requested report; each result is independent, so one failure loses nothing else.
pub fn write(summary: &Summary, outputs: &Outputs) -> Vec<anyhow::Result<PathBuf>> {
    let mut results = Vec::new();
    // The HTML report is rendered from the JSON document, so both are built from one `ResultDoc`.
    let doc = (outputs.json.is_some() || outputs.html.is_some()).then(|| ResultDoc::of(summary));
    if let (Some(path), Some(doc)) = (&outputs.json, &doc) {
        results.push(
            doc.write(path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map(|_| path.clone()),
        );
    }
    if let (Some(path), Some(doc)) = (&outputs.html, &doc) {
        results.push(
            report::html::write(doc, path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map(|_| path.clone()),
        );
    }
    let written = |r: std::io::Result<()>, path: &PathBuf| {
        r.with_context(|| format!("cannot write {}", path.display()))
            .map(|_| path.clone())
    };
    if let Some(path) = &outputs.junit {
        results.push(written(report::junit::write(summary, path), path));
    }
    if let Some(path) = &outputs.summary_md {
        results.push(written(report::markdown::write(summary, path), path));
    }
    if let Some(path) = &outputs.step_summary {
        results.push(written(report::markdown::append(summary, path), path));
    }
    if let Some(prefix) = &outputs.csv {
        match report::csv::write(summary, prefix) {
            Ok(paths) => results.extend(paths.into_iter().map(Ok)),
            Err(e) => results.push(Err(anyhow::anyhow!(
                "cannot write CSV files {}_*.csv: {e}",
                prefix.display()
            ))),
        }
    }
    results
}

/// The end of a run: write every report first, then print the summary and a line per report
/// file, with printing that cannot fail the run (after SIGHUP the terminal is gone, and a plain
/// `println!` would panic on it before a single file was written). False when a report could
/// not be written (each error is on stderr, with the OS error that says why).
pub fn write_and_print(summary: &Summary, outputs: &Outputs) -> bool {
    use std::io::Write as _;

    let written = write(summary, outputs);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "\n{}\n", report::text::header(summary));
    let _ = write!(stdout, "{}", report::text::render(summary));
    let mut all = true;
    for w in &written {
        match w {
            Ok(path) => _ = writeln!(stdout, "wrote {}", path.display()),
            Err(e) => {
                _ = writeln!(std::io::stderr(), "error: {e:#}");
                all = false;
            }
        }
    }
    all
}
