//! JSON lines as an [`Integration`]: the `--jsonl FILE` flag (`LOADLENS_JSONL`; `-` for
//! stdout) over the scenario's `jsonl:` section (`file:`). The start-up check opens the file,
//! so a path that cannot be written refuses the run (exit 2) before any load, naming the path.

use clap::{Args, Command};
use loadlens_core::scenario::ScenarioError;
use loadlens_core::sink::Sink;

use super::config::FileSettings;
use super::{JsonlSink, Output};
use crate::integration::{
    ConfigError, Configured, Input, Integration, Section, StartError, StartFuture,
};

/// The JSON-lines integration (`jsonl`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Jsonl;

/// The flag of JSON lines.
#[derive(Args, Debug, Default, Clone)]
struct Flags {
    /// JSON-lines telemetry: the run's lifecycle, per-interval figures per request name and the
    /// generator's health, one JSON object per line (schema: schemas/jsonl.schema.json),
    /// appended to FILE; `-` for stdout. Also `jsonl: { file: … }` in the scenario.
    #[arg(
        id = "jsonl",
        long = "jsonl",
        env = "LOADLENS_JSONL",
        value_name = "FILE"
    )]
    jsonl: Option<String>,
}

impl Integration for Jsonl {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn args(&self) -> Vec<clap::Arg> {
        Flags::augment_args(Command::new(""))
            .get_arguments()
            .cloned()
            .collect()
    }

    fn configure(&self, input: &Input<'_>) -> Result<Option<Box<dyn Configured>>, ConfigError> {
        let file: FileSettings = match &input.section {
            Some(s) => s.parse()?,
            None => FileSettings::default(),
        };
        if let (Some(s), Some("")) = (&input.section, file.file.as_deref()) {
            return Err(s
                .error_at(&["file"], "give a file path, or `-` for stdout")
                .into());
        }
        match input.pick::<String>("jsonl", file.file) {
            Some(path) if path.trim().is_empty() => Err(ConfigError::Invalid(
                "--jsonl: give a file path, or `-` for stdout".into(),
            )),
            Some(path) => Ok(Some(Box::new(Ready {
                output: Output::parse(&path),
            }))),
            None => Ok(None),
        }
    }

    fn check(&self, section: &Section<'_>) -> Result<(), ScenarioError> {
        section.parse::<FileSettings>().map(drop)
    }
}

/// Where the lines go; the file is opened by [`Configured::start`].
struct Ready {
    output: Output,
}

impl Configured for Ready {
    fn describe(&self) -> String {
        format!("JSON lines: to {}", self.output)
    }

    fn required(&self) -> bool {
        // Asked for by name: a run that cannot write it would lose what was asked.
        true
    }

    fn writes_stdout(&self) -> bool {
        matches!(self.output, Output::Stdout)
    }

    fn start(self: Box<Self>) -> StartFuture {
        Box::pin(async move {
            let sink = JsonlSink::open(&self.output).map_err(|e| StartError::new(e.to_string()))?;
            Ok(Box::new(sink) as Box<dyn Sink>)
        })
    }
}
