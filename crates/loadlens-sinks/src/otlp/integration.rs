//! OTLP as an [`Integration`]: the `--otel` flag (`LOADLENS_OTEL`), the scenario's `otel:`
//! section ([`FileSettings`]) and the standard `OTEL_*` environment over it ([`Config::resolve`]).
//! No start-up check: an unreachable collector costs the run nothing but the summary's
//! delivery line.

use clap::{Args, Command};
use loadlens_core::sample::TraceSettings;
use loadlens_core::scenario::ScenarioError;
use loadlens_core::sink::Sink;

use super::{Config, ExporterKind, FileSettings, Names, OtlpSink};
use crate::integration::{ConfigError, Configured, Input, Integration, Role, Section, StartFuture};

/// The OTLP integration (`otel`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Otlp;

/// The flags of OTLP; the rest of its settings are the standard `OTEL_*` variables.
#[derive(Args, Debug, Default, Clone)]
struct Flags {
    /// OpenTelemetry: a client span per request (its `traceparent` continues into the
    /// service) and OTLP metrics, configured by the standard `OTEL_*` variables
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `..._PROTOCOL` grpc|http/protobuf, …). Also `otel:` in the
    /// scenario.
    #[arg(id = "otel", long = "otel", env = "LOADLENS_OTEL")]
    otel: bool,
}

impl Integration for Otlp {
    fn name(&self) -> &'static str {
        "otel"
    }

    fn args(&self) -> Vec<clap::Arg> {
        Flags::augment_args(Command::new(""))
            .get_arguments()
            .cloned()
            .collect()
    }

    fn configure(&self, input: &Input<'_>) -> Result<Option<Box<dyn Configured>>, ConfigError> {
        let file = match &input.section {
            Some(s) => parse(s)?,
            None => FileSettings::default(),
        };
        // A section turns the export on unless it says `enabled: false`.
        let from_file = input.section.as_ref().map(|_| file.enabled != Some(false));
        if !input.pick("otel", from_file).unwrap_or(false) {
            return Ok(None);
        }
        let config = Config::resolve(&file, |k| (input.env)(k))
            .map_err(|e| ConfigError::Invalid(format!("otel: {e}")))?;
        let role = input.run.role;
        // A worker of a coordinated run exports spans only: without them, nothing.
        if config.is_off()
            || (role == Role::Requests && config.traces.exporter == ExporterKind::None)
        {
            return Ok(None);
        }
        // Under `scenarios:` each scenario's plan keeps only its user types, so the user type
        // indexes of its samples are its own.
        let names = if input.run.scenarios.is_empty() {
            Names::of(&input.run.plan)
        } else {
            Names::of_scenarios(&input.run.scenarios)
        };
        Ok(Some(Box::new(Ready {
            sink: OtlpSink::new(config, names).role(role),
            run_id: input.run.run.id.clone(),
        })))
    }

    fn check(&self, section: &Section<'_>) -> Result<(), ScenarioError> {
        parse(section).map(drop)
    }
}

/// The `otel:` section, with the values the environment cannot excuse checked at their keys
/// (the rest is checked with the environment, in [`Config::resolve`]).
fn parse(section: &Section<'_>) -> Result<FileSettings, ScenarioError> {
    let file: FileSettings = section.parse()?;
    if let Some(p) = &file.protocol {
        if !matches!(p.to_ascii_lowercase().as_str(), "grpc" | "http/protobuf") {
            return Err(section.error_at(
                &["protocol"],
                format!("otel.protocol: `{p}`: expected grpc or http/protobuf"),
            ));
        }
    }
    if let Some(r) = file.sample_ratio.filter(|r| !(0.0..=1.0).contains(r)) {
        return Err(section.error_at(
            &["sample_ratio"],
            format!("otel.sample_ratio: {r} is outside 0..1"),
        ));
    }
    Ok(file)
}

/// The sink, built: it starts exporting when the run starts.
struct Ready {
    sink: OtlpSink,
    run_id: String,
}

impl Configured for Ready {
    fn describe(&self) -> String {
        self.sink.describe()
    }

    fn required(&self) -> bool {
        false
    }

    fn tracing(&self) -> Option<TraceSettings> {
        self.sink.trace_settings(&self.run_id)
    }

    fn start(self: Box<Self>) -> StartFuture {
        let sink: Box<dyn Sink> = Box::new(self.sink);
        Box::pin(async move { Ok(sink) })
    }
}
