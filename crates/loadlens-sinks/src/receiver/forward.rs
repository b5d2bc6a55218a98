//! Forwarding: every export the receiver accepted, sent on as it came (protobuf, gzip on the
//! wire) to the user's own collector over OTLP/HTTP, with the OTLP exporter's sender (retries
//! with backoff for retryable answers, within its timeout). The queue in front is bounded: a
//! body that finds it full is dropped and counted, never waited for. At the end, what is still
//! queued gets a short time to go out; what does not is reported.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::otlp::config::{ExporterKind, Protocol, SignalConfig};
use crate::otlp::send::{Finishing, Sender, Service};

/// What forwarding did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Exports forwarded.
    pub forwarded: u64,
    /// Exports that could not be forwarded.
    pub failed: u64,
    /// Why, each reason once.
    pub errors: Vec<String>,
}

impl Outcome {
    /// Nothing forwarded, for `why`.
    pub fn failed(why: String) -> Self {
        Outcome {
            errors: vec![why],
            ..Outcome::default()
        }
    }
}

/// Each attempt's limit.
const TIMEOUT: Duration = Duration::from_secs(5);
/// After the run, how long the queued bodies may take.
const DRAIN: Duration = Duration::from_secs(3);

/// Forward what comes on `rx` to `url` until the queue closes; once `stop` is cancelled, the
/// rest has [`DRAIN`].
pub async fn run(
    mut rx: mpsc::Receiver<Bytes>,
    url: http::Uri,
    stop: CancellationToken,
) -> Outcome {
    let shown = loadlens_core::encoding::redact_url(&url.to_string());
    let mut sender = Sender::new(
        SignalConfig {
            exporter: ExporterKind::Otlp,
            endpoint: url,
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            timeout: TIMEOUT,
            gzip: true,
            certificate: None,
            client_certificate: None,
        },
        Service::Traces,
    );
    let finishing = Finishing::default();
    let mut out = Outcome::default();
    let mut errors = BTreeSet::new();
    let mut drain_by: Option<tokio::time::Instant> = None;
    loop {
        let body = tokio::select! {
            b = rx.recv() => b,
            () = stop.cancelled(), if drain_by.is_none() => {
                let by = tokio::time::Instant::now() + DRAIN;
                drain_by = Some(by);
                continue;
            }
        };
        let Some(body) = body else { break };
        let deadline = drain_by.unwrap_or_else(|| tokio::time::Instant::now() + TIMEOUT);
        if drain_by.is_some_and(|by| tokio::time::Instant::now() >= by) {
            out.failed += 1 + drain(&mut rx);
            errors.insert(format!(
                "forwarding to {shown}: not sent within the end-of-run time of {}",
                humantime::format_duration(DRAIN)
            ));
            break;
        }
        match sender.export(body.to_vec(), deadline, &finishing).await {
            Ok(_) => out.forwarded += 1,
            Err(e) => {
                out.failed += 1;
                errors.insert(format!("forwarding to {shown}: {e}"));
            }
        }
    }
    out.errors = errors.into_iter().collect();
    out
}

fn drain(rx: &mut mpsc::Receiver<Bytes>) -> u64 {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    n
}
