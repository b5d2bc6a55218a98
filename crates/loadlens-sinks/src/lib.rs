//! loadlens integrations whose dependencies or protocols are too heavy for the engine, each in
//! its own folder behind a cargo feature, each a [`loadlens_core::sink::Sink`]:
//!
//! | feature | module | what it does |
//! |---|---|---|
//! | `datadog` | [`datadog`] | run events, metrics (HTTP API or DogStatsD), monitor guards |
//! | `otlp` | [`otlp`] | a client span per request (connection phases as children) and OTLP metrics, over gRPC or http/protobuf |
//! | `prometheus` | [`prometheus`] | `/metrics` for a Prometheus server to scrape (OpenMetrics), and remote write |
//!
//! Every sink folder has the same few files (`mod.rs`, `config.rs`, its encoder and sender,
//! `tests.rs`) and passes the shared contract test in `contract.rs`: it flushes on finish,
//! honours its timeout when the endpoint is down, counts drops, and reports (never panics) on
//! 4xx/5xx answers.
//!
//! ```no_run
//! # #[cfg(feature = "datadog")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use loadlens_sinks::datadog::{Config, DatadogSink, Overrides};
//! let env = |k: &str| std::env::var(k).ok();
//! if let Some(config) = Config::resolve(None, &Overrides::default(), env)? {
//!     let sink = DatadogSink::connect(config).await?;
//!     // executor.sink(Box::new(sink)) …
//! #   drop(sink);
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "datadog")]
pub mod datadog;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "prometheus")]
pub mod prometheus;

// Extend the condition with each new sink's feature.
#[cfg(all(
    test,
    any(feature = "datadog", feature = "otlp", feature = "prometheus")
))]
pub(crate) mod contract;
