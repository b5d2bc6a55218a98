//! The trace receiver as an [`Integration`] (`traces`): `--trace-receiver [ADDR]`
//! (`LOADLENS_TRACE_RECEIVER`), `--trace-receiver-grpc ADDR`, `--trace-join-window DURATION`,
//! `--trace-forward URL`, `--trace-top N`, `--trace-link TEMPLATE`, `--trace-sample RATIO`
//! (each with its `LOADLENS_…` twin) and the scenario's `traces:` section under them. The
//! start-up check binds the endpoints: a port in use refuses the run (exit 2).

use clap::{Args, Command};
use loadlens_core::sample::TraceSettings;
use loadlens_core::scenario::ScenarioError;
use loadlens_core::sink::Sink;

use super::config::{check_link, check_ratio, parse_addr, parse_forward};
use super::{Config, FileSettings, ReceiverSink, DEFAULT_GRPC, DEFAULT_HTTP};
use crate::integration::{
    ConfigError, Configured, Input, Integration, Section, StartError, StartFuture,
};

/// The trace receiver integration (`traces`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Receiver;

/// The flags of the trace receiver.
#[derive(Args, Debug, Default, Clone)]
struct Flags {
    /// Trace receiver: receive the service's own spans over OTLP/HTTP on ADDR (and OTLP/gRPC on
    /// --trace-receiver-grpc) and show, per request, where the time went [default ADDR:
    /// 127.0.0.1:4318; a port alone means 127.0.0.1; `off` turns it off]. Also `traces:` in the
    /// scenario.
    #[arg(
        id = "trace-receiver",
        long = "trace-receiver",
        env = "LOADLENS_TRACE_RECEIVER",
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_HTTP
    )]
    trace_receiver: Option<String>,
    /// Trace receiver: the OTLP/gRPC address [default: 127.0.0.1:4317; `off` turns it off].
    #[arg(
        id = "trace-receiver-grpc",
        long = "trace-receiver-grpc",
        env = "LOADLENS_TRACE_RECEIVER_GRPC",
        value_name = "ADDR"
    )]
    trace_receiver_grpc: Option<String>,
    /// How long a sampled request waits for its service's spans [default: 10s]; the end of the
    /// run waits at most this long for the last ones.
    #[arg(
        id = "trace-join-window",
        long = "trace-join-window",
        env = "LOADLENS_TRACE_JOIN_WINDOW",
        value_name = "DURATION"
    )]
    trace_join_window: Option<String>,
    /// Forward every span received, as it came, to this OTLP/HTTP URL (your own collector),
    /// so that the service's normal pipeline keeps its data.
    #[arg(
        id = "trace-forward",
        long = "trace-forward",
        env = "LOADLENS_TRACE_FORWARD",
        value_name = "URL"
    )]
    trace_forward: Option<String>,
    /// The slowest requests listed per request name [default: 5].
    #[arg(
        id = "trace-top",
        long = "trace-top",
        env = "LOADLENS_TRACE_TOP",
        value_name = "N"
    )]
    trace_top: Option<usize>,
    /// Link the slowest requests to your tracing UI: a URL with `{trace_id}`
    /// (`https://jaeger.example/trace/{trace_id}`).
    #[arg(
        id = "trace-link",
        long = "trace-link",
        env = "LOADLENS_TRACE_LINK",
        value_name = "TEMPLATE"
    )]
    trace_link: Option<String>,
    /// Fraction of requests traced (sent sampled) when --otel is off [default: 1]; with --otel,
    /// its sampler decides.
    #[arg(
        id = "trace-sample",
        long = "trace-sample",
        env = "LOADLENS_TRACE_SAMPLE",
        value_name = "RATIO"
    )]
    trace_sample: Option<f64>,
}

impl Integration for Receiver {
    fn name(&self) -> &'static str {
        "traces"
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
        let invalid = |flag: &str, e: String| ConfigError::Invalid(format!("{flag}: {e}"));
        // A section turns the receiver on unless it says `enabled: false`.
        if file.enabled == Some(false) && !input.given("trace-receiver") {
            return Ok(None);
        }
        let from_file = input
            .section
            .as_ref()
            .map(|_| file.http.clone().unwrap_or_default());
        let Some(http) = input.pick("trace-receiver", from_file) else {
            return Ok(None);
        };
        let http = parse_addr(&http, DEFAULT_HTTP).map_err(|e| invalid("--trace-receiver", e))?;
        let grpc_given = input.given("trace-receiver-grpc") || file.grpc.is_some();
        let grpc = match input.pick("trace-receiver-grpc", file.grpc.clone()) {
            Some(g) => {
                parse_addr(&g, DEFAULT_GRPC).map_err(|e| invalid("--trace-receiver-grpc", e))?
            }
            None => DEFAULT_GRPC.parse().ok(),
        };
        // `--trace-receiver off` turns both off, unless gRPC has an address of its own.
        if http.is_none() && (!grpc_given || grpc.is_none()) {
            return Ok(None);
        }
        let mut config = Config {
            http,
            grpc,
            ..Config::default()
        };
        if let Some(w) = input.pick::<String>("trace-join-window", None) {
            config.join.window = loadlens_core::duration::parse_duration(&w)
                .map_err(|e| invalid("--trace-join-window", e.to_string()))?;
        } else if let Some(w) = file.join_window {
            config.join.window = w;
        }
        if config.join.window.is_zero() {
            return Err(invalid(
                "--trace-join-window",
                "must be longer than 0s".into(),
            ));
        }
        if let Some(f) = input.pick("trace-forward", file.forward.clone()) {
            config.forward = Some(parse_forward(&f).map_err(|e| invalid("--trace-forward", e))?);
        }
        if let Some(k) = input.pick("trace-top", file.top) {
            config.join.top_k = k;
        }
        if let Some(l) = input.pick("trace-link", file.link.clone()) {
            check_link(&l).map_err(|e| invalid("--trace-link", e))?;
            config.join.link_template = Some(l);
        }
        if let Some(r) = input.pick("trace-sample", file.sample_ratio) {
            config.sample_ratio = check_ratio(r).map_err(|e| invalid("--trace-sample", e))?;
        }
        // It joins the spans of this process's requests: the coordinator sends none.
        if !input.run.role.requests() {
            return Ok(None);
        }
        // A worker streams its breakdown to the coordinator, which judges the span
        // thresholds live on the workers' breakdowns merged.
        config.live_histograms = !input.run.role.run_level();
        Ok(Some(Box::new(Ready {
            config,
            run_id: input.run.run.id.clone(),
        })))
    }

    fn check(&self, section: &Section<'_>) -> Result<(), ScenarioError> {
        parse(section).map(drop)
    }
}

/// The `traces:` section, its values checked at their keys.
fn parse(section: &Section<'_>) -> Result<FileSettings, ScenarioError> {
    let file: FileSettings = section.parse()?;
    for (key, value, default) in [
        ("http", &file.http, DEFAULT_HTTP),
        ("grpc", &file.grpc, DEFAULT_GRPC),
    ] {
        if let Some(Err(e)) = value.as_deref().map(|v| parse_addr(v, default)) {
            return Err(section.error_at(&[key], format!("traces.{key}: {e}")));
        }
    }
    if let Some(Err(e)) = file.forward.as_deref().map(parse_forward) {
        return Err(section.error_at(&["forward"], format!("traces.forward: {e}")));
    }
    if let Some(Err(e)) = file.link.as_deref().map(check_link) {
        return Err(section.error_at(&["link"], format!("traces.link: {e}")));
    }
    if let Some(Err(e)) = file.sample_ratio.map(check_ratio) {
        return Err(section.error_at(&["sample_ratio"], format!("traces.sample_ratio: {e}")));
    }
    if file.join_window.is_some_and(|w| w.is_zero()) {
        return Err(section.error_at(
            &["join_window"],
            "traces.join_window: must be longer than 0s",
        ));
    }
    Ok(file)
}

/// Configured, not started: [`Configured::start`] binds the endpoints.
struct Ready {
    config: Config,
    run_id: String,
}

impl Configured for Ready {
    fn describe(&self) -> String {
        self.config.describe()
    }

    /// An endpoint that cannot listen is a configuration error, not a degraded run.
    fn required(&self) -> bool {
        true
    }

    /// Requests must carry a sampled `traceparent` for the service's spans to join them; a
    /// span exporter (`--otel`), listed first, decides instead when it is on.
    fn tracing(&self) -> Option<TraceSettings> {
        Some(TraceSettings::new(&self.run_id, self.config.sample_ratio))
    }

    fn start(self: Box<Self>) -> StartFuture {
        Box::pin(async move {
            let sink =
                ReceiverSink::start(self.config).map_err(|e| StartError::new(e.to_string()))?;
            Ok(Box::new(sink) as Box<dyn Sink>)
        })
    }
}
