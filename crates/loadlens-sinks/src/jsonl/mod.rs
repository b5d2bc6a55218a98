//! JSON-lines telemetry (`--jsonl FILE`, `-` for stdout): the run's lifecycle, per-interval
//! figures per request name and the generator's own health, one JSON object per line, for Loki,
//! ELK or any log pipeline. The format is in [`mod@line`] and `schemas/jsonl.schema.json`.
//!
//! Lines, in the order they are written:
//!
//! | `event` | when |
//! |---|---|
//! | `run_start` | the run starts; with the resolved configuration (secrets removed) |
//! | `spawning_complete`, `stage_change`, `threshold_breach`, `guard_action`, `monitor_state`, `stop_requested`, `config_change`, `note` | the run's timeline events, as they happen |
//! | `interval` | every snapshot (1 s), one per request name with requests in it |
//! | `health` | every snapshot: the generator's CPU, memory, connections, network, scheduling delay |
//! | `run_end` | the run ended; with the verdict, why it stopped, and the lines dropped before it |
//!
//! The hooks never wait on the output: lines go through a bounded queue to a writer thread
//! ([`writer`]), and a full queue drops lines and counts them (in the sink's report and in the
//! `run_end` line). Only the `run_end` line waits for room, bounded by the finish timeout.

mod config;
mod integration;
pub mod line;
pub mod writer;

pub use integration::Jsonl;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loadlens_core::report::Summary;
use loadlens_core::run::TimelineEvent;
use loadlens_core::sink::{FinishFuture, Sink, SinkContext, SinkReport};
use loadlens_core::stats::Snapshot;

use self::line::Header;
use self::writer::Writer;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output (`-`).
    Stdout,
    /// A file, appended to (created if missing), so that a log shipper tailing it keeps its
    /// place across runs.
    File(PathBuf),
}

impl Output {
    /// `-` is standard output; anything else a file path.
    pub fn parse(s: &str) -> Output {
        if s == "-" {
            Output::Stdout
        } else {
            Output::File(PathBuf::from(s))
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Stdout => f.write_str("stdout"),
            Output::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The output could not be opened: the run is refused before it sends any load.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the JSON-lines file {path}: {source}")]
pub struct OpenError {
    /// The path given.
    pub path: PathBuf,
    /// Why (the OS error).
    #[source]
    pub source: std::io::Error,
}

/// The JSON-lines sink.
#[derive(Debug)]
pub struct JsonlSink {
    writer: Writer,
    header: Header,
    names: Vec<(String, String)>,
    finish_timeout: Duration,
}

impl JsonlSink {
    /// Time the end of the run waits for the output to take the last lines.
    pub const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

    /// Open `output` (a file is created if missing, and appended to) and start its writer.
    pub fn open(output: &Output) -> Result<JsonlSink, OpenError> {
        let out: Box<dyn std::io::Write + Send> = match output {
            Output::Stdout => Box::new(std::io::stdout()),
            Output::File(path) => Box::new(std::io::BufWriter::with_capacity(
                64 * 1024,
                open_file(path)?,
            )),
        };
        let path = match output {
            Output::File(p) => p.clone(),
            Output::Stdout => PathBuf::from("-"),
        };
        Self::with_writer(out, writer::DEFAULT_CAPACITY)
            .map_err(|source| OpenError { path, source })
    }

    /// A sink writing to `out` behind a queue of `capacity` lines (tests give a slow writer).
    pub fn with_writer(
        out: Box<dyn std::io::Write + Send>,
        capacity: usize,
    ) -> std::io::Result<JsonlSink> {
        Ok(JsonlSink {
            writer: Writer::spawn(out, capacity)?,
            header: Header::default(),
            names: Vec::new(),
            finish_timeout: Self::FINISH_TIMEOUT,
        })
    }

    /// How long [`Sink::finish`] waits for the output to take the last lines.
    pub fn finish_timeout(mut self, limit: Duration) -> Self {
        self.finish_timeout = limit;
        self
    }

    fn write(&self, ts: &str, event: &str, fields: &serde_json::Value) {
        self.writer.offer(self.header.line(ts, event, fields));
    }
}

fn open_file(path: &Path) -> Result<std::fs::File, OpenError> {
    let err = |source| OpenError {
        path: path.to_owned(),
        source,
    };
    if path.is_dir() {
        return Err(err(std::io::Error::other("it is a directory")));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        self.header = Header::of(&ctx.run);
        self.names = ctx.names.clone();
        let now = line::ts(SystemTime::now());
        self.write(&now, "run_start", &line::run_start(&ctx.run, &ctx.config));
    }

    fn on_event(&mut self, e: &TimelineEvent) {
        // Stamped when it happened: events reach sinks with the next snapshot.
        if let Some((event, fields)) = line::timeline(e) {
            self.write(&e.at, event, &fields);
        }
    }

    fn on_snapshot(&mut self, s: &Arc<Snapshot>) {
        let at = line::ts(s.at);
        for fields in line::intervals(s, &self.names) {
            self.write(&at, "interval", &fields);
        }
        self.write(&at, "health", &line::health(s));
    }

    fn finish(self: Box<Self>, summary: &Summary) -> FinishFuture {
        let this = *self;
        // A sink that never saw the start (a run refused early) still names its run.
        let header = if this.header.run_id.is_empty() {
            Header::of(&summary.run)
        } else {
            this.header.clone()
        };
        let end = line::run_end(summary, this.writer.dropped());
        let last = header.line(&line::ts(SystemTime::now()), "run_end", &end);
        let limit = this.finish_timeout;
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            this.writer.offer_last(last, limit).await;
            let closed = this
                .writer
                .close(limit.saturating_sub(started.elapsed()))
                .await;
            SinkReport {
                name: "jsonl".into(),
                delivered: closed.written,
                failed: closed.failed,
                dropped: closed.dropped,
                errors: closed.error.into_iter().collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests;
