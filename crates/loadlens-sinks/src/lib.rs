//! loadlens integrations: each outside system is one folder behind a cargo feature and one
//! [`Integration`] (its flags, its scenario section, its resolution of flag > environment >
//! file, its start-up check, its [`loadlens_core::sink::Sink`]), listed once in [`registry`]:
//!
//! | feature | module | section | what it does |
//! |---|---|---|---|
//! | `otlp` | [`otlp`] | `otel:` | a client span per request (connection phases as children) and OTLP metrics, over gRPC or http/protobuf |
//! | `datadog` | [`datadog`] | `datadog:` | run events, metrics (HTTP API or DogStatsD), monitor guards |
//! | `jsonl` | [`jsonl`] | `jsonl:` | JSON-lines telemetry to a file or stdout: lifecycle, per-interval figures, generator health |
//! | `prometheus` | [`prometheus`] | `prometheus:` | `/metrics` for a Prometheus server to scrape (OpenMetrics) during the run, and remote write |
//! | `statsig` | [`statsig`] | `statsig:` | gate and config state at the start and config changes from the audit log on the timeline; the Console API client |
//! | `receiver` | [`receiver`] | `traces:` | an OTLP trace receiver: the service's own spans joined to the client spans, per request name where the time went |
//!
//! The feature `all` turns every integration on (the binary uses it). Every folder has the same
//! few files (`mod.rs`, `config.rs`, `integration.rs`, its encoder and sender, `tests.rs`), and
//! its sink passes the shared contract test in `contract.rs`: it flushes on finish, honours its
//! timeout when the endpoint is down, counts drops, and reports (never panics) on 4xx/5xx
//! answers. `docs/integrations.md` walks through adding one.
//!
//! ```
//! // What the binary does: every integration's flags on `run`, and its section accepted.
//! let registry = loadlens_sinks::registry();
//! let run = clap::Command::new("run").args(loadlens_sinks::integration::args(&registry));
//! # #[cfg(feature = "otlp")]
//! assert!(run.get_arguments().any(|a| a.get_id() == "otel"));
//! let scenario = loadlens_core::scenario::Scenario::from_str_named(
//!     "user_types: [{ name: u, tasks: [{ request: { path: / } }] }]\notel: {}\n",
//!     "s.yaml",
//! )?;
//! let checked = loadlens_sinks::integration::check_sections(&scenario, &registry);
//! assert_eq!(checked.is_ok(), cfg!(feature = "otlp"));
//! # Ok::<(), loadlens_core::scenario::ScenarioError>(())
//! ```

#[cfg(feature = "datadog")]
pub mod datadog;
pub mod integration;
#[cfg(feature = "jsonl")]
pub mod jsonl;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "receiver")]
pub mod receiver;
pub mod secret;
#[cfg(feature = "statsig")]
pub mod statsig;
#[cfg(any(test, feature = "testing"))]
mod stub_http;

pub use integration::Integration;

/// Every integration built in, in the order of their flags in `--help` and their lines in the
/// start banner: one line per integration, behind its feature.
pub fn registry() -> Vec<&'static dyn Integration> {
    vec![
        #[cfg(feature = "otlp")]
        &otlp::Otlp,
        #[cfg(feature = "datadog")]
        &datadog::Datadog,
        #[cfg(feature = "jsonl")]
        &jsonl::Jsonl,
        #[cfg(feature = "prometheus")]
        &prometheus::Prometheus,
        #[cfg(feature = "statsig")]
        &statsig::Statsig,
        #[cfg(feature = "receiver")]
        &receiver::Receiver,
    ]
}

// Each integration's tests call it; built without any, nothing does.
#[cfg(test)]
#[cfg_attr(not(feature = "all"), allow(dead_code))]
pub(crate) mod contract;
