//! Prometheus: the run's metrics served on `/metrics` for a Prometheus server to scrape
//! (OpenMetrics text, or the classic 0.0.4 text format for scrapers that do not accept it), and
//! optionally pushed with remote write 1.0 to Prometheus, Mimir or Thanos.
//!
//! - [`Prometheus`] is the integration (`integration.rs`, with `config.rs`): the
//!   `prometheus:` section, the flags (`--prometheus [ADDR]`, `--prometheus-remote-write URL`,
//!   `--prometheus-linger DURATION`) and their resolution, flag > environment twin > section;
//! - [`exposition`]: the cumulative metrics and their families (names, labels, buckets) and the
//!   text formats;
//! - [`server`]: the scrape endpoint, bound at start-up (a port in use refuses the run);
//! - [`remote_write`]: the protobuf messages, snappy, and the sender task.
//!
//! The sink folds each snapshot into its cumulative [`Metrics`] on the aggregator's tick (a few
//! additions per request name) and publishes an `Arc` of them; scrapes render from that, and the
//! remote-write task sends it. Nothing here is on the request path.
//!
//! At the end of the run the final metrics are published and marked final. If anything scraped
//! the endpoint during the run, the sink keeps serving until one scrape has read the final
//! metrics, for at most [`Config::linger`] (5 s by default), so that the scraper sees the run's
//! last counts; then the listener closes. A run nobody scrapes ends at once.

mod config;
pub mod exposition;
mod integration;
#[cfg(test)]
mod peer;
pub mod remote_write;
pub mod server;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use loadlens_core::report::Summary;
use loadlens_core::sink::{FinishFuture, Sink, SinkContext, SinkReport};
use loadlens_core::stats::Snapshot;

pub use config::{Config, FileSettings, DEFAULT_LINGER, DEFAULT_LISTEN};
pub use exposition::{Format, Metrics, BUCKETS_S};
pub use integration::Prometheus;

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The scrape endpoint's address could not be bound.
    #[error("cannot serve Prometheus metrics on {addr}: {source} (choose another address with --prometheus ADDR)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The remote-write URL is not an http(s) URL.
    #[error("invalid Prometheus remote-write URL {url}: {reason}")]
    RemoteWriteUrl {
        /// The URL, credentials masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The Prometheus sink: scrape endpoint and/or remote write.
#[derive(Debug)]
pub struct PrometheusSink {
    config: Config,
    endpoint: Option<server::Endpoint>,
    sender: Option<remote_write::Sender>,
    metrics: Metrics,
}

impl PrometheusSink {
    /// Bind the scrape endpoint and start the remote-write task. Call within a tokio runtime.
    pub fn start(config: Config) -> Result<Self, StartError> {
        // Until the run starts (`on_start`), a scrape sees an empty exposition.
        let nobody = loadlens_core::run::RunInfo {
            id: String::new(),
            scenario: String::new(),
            tags: Default::default(),
        };
        let empty = Metrics::new(&nobody, &[]);
        let endpoint = match config.listen {
            Some(addr) => {
                let bind = std::net::TcpListener::bind(addr)
                    .and_then(|l| server::Endpoint::serve(l, Arc::new(empty.clone())));
                Some(bind.map_err(|source| StartError::Bind { addr, source })?)
            }
            None => None,
        };
        let sender = match &config.remote_write {
            Some(url) => {
                let (bare, authorization) = loadlens_core::encoding::url_credentials(url);
                let bad = |reason: &str| StartError::RemoteWriteUrl {
                    url: loadlens_core::encoding::redact_url(url),
                    reason: reason.into(),
                };
                if !(bare.starts_with("http://") || bare.starts_with("https://")) {
                    return Err(bad("it must start with http:// or https://"));
                }
                let target = remote_write::Target {
                    url: bare,
                    authorization,
                    max_attempts: config.max_attempts,
                    backoff: config.backoff,
                    request_timeout: config.finish_timeout.max(Duration::from_secs(1)),
                };
                Some(remote_write::Sender::start(target).map_err(|e| bad(&e))?)
            }
            None => None,
        };
        Ok(PrometheusSink {
            config,
            endpoint,
            sender,
            metrics: empty,
        })
    }

    /// The scrape endpoint's address (with the port chosen when asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref().map(server::Endpoint::addr)
    }

    fn publish(&mut self, last: bool) {
        let m = Arc::new(self.metrics.clone());
        if let Some(e) = &self.endpoint {
            e.publish(m.clone(), last);
        }
        if let Some(s) = &mut self.sender {
            if !last {
                s.offer(m);
            }
        }
    }
}

impl Sink for PrometheusSink {
    fn name(&self) -> &str {
        "prometheus"
    }

    fn describe(&self) -> Option<String> {
        let mut config = self.config.clone();
        config.listen = self.local_addr().or(config.listen);
        Some(format!("prometheus: {}", config.describe()))
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        self.metrics = Metrics::new(&ctx.run, &ctx.names);
        self.publish(false);
    }

    fn on_snapshot(&mut self, snapshot: &Arc<Snapshot>) {
        self.metrics.update(snapshot);
        self.publish(false);
    }

    fn finish(self: Box<Self>, _summary: &Summary) -> FinishFuture {
        let PrometheusSink {
            config,
            endpoint,
            sender,
            metrics,
        } = *self;
        Box::pin(async move {
            let last = Arc::new(metrics);
            let deadline = tokio::time::Instant::now() + config.finish_timeout;
            let push = async {
                if let Some(s) = sender {
                    let counts = s.counts.clone();
                    s.finish(last.clone(), deadline).await;
                    Some(counts)
                } else {
                    None
                }
            };
            let serve = async {
                let e = endpoint?;
                e.publish(last.clone(), true);
                // Linger only for a scraper that is there: a run nobody scrapes ends at once.
                if e.scrapes() > 0 {
                    e.linger(config.linger).await;
                }
                Some(e.shutdown().await)
            };
            let (counts, scrapes) = tokio::join!(push, serve);
            let mut report = SinkReport {
                name: "prometheus".into(),
                ..SinkReport::default()
            };
            if let Some(n) = scrapes {
                report.delivered += n;
            }
            if let Some(c) = counts {
                report.delivered += c.delivered.load(Ordering::Relaxed);
                report.failed += c.failed.load(Ordering::Relaxed);
                report.dropped += c.superseded.load(Ordering::Relaxed);
                report.errors = c.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
            }
            report
        })
    }
}
