//! Prometheus remote write 1.0: the scrape endpoint's series pushed as a protobuf
//! `WriteRequest`, snappy block-compressed, to Prometheus (with
//! `--web.enable-remote-write-receiver`), Mimir, Thanos receive or any compatible receiver.
//!
//! The messages are written by hand with prost's derive: four small messages of
//! `prometheus/prompb/types.proto` do not justify generated code or a crate of Prometheus
//! types. One request carries one snapshot's series, all at that snapshot's timestamp.
//!
//! Delivery ([`Sender`]): one request in flight, always the newest snapshot. A request that
//! fails with 5xx, 429 or no answer is retried with exponential backoff; when a newer snapshot
//! arrived meanwhile, the older one is dropped instead (the series are cumulative, so the
//! newer one carries everything) and counted. Other 4xx are not retried. The final snapshot
//! is sent at finish, retried until the finish deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use loadlens_core::client::{Client, ClientConfig, ClientShared, Request};
use prost::Message as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::exposition::{sorted_labels, Metrics};

/// `prometheus.WriteRequest` (field 3, metadata, is not sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: labels sorted by name, `__name__` included.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The `WriteRequest` of `metrics`: every sample of the scrape endpoint, plus `job="loadlens"`
/// (what a scrape would add), at the snapshot's time.
pub fn write_request(metrics: &Metrics) -> WriteRequest {
    let ts = metrics.timestamp_ms();
    let mut timeseries = Vec::new();
    for f in metrics.families() {
        for p in &f.samples {
            let mut labels = sorted_labels(p.metric_name(&f), &p.labels);
            labels
                .entry("job".into())
                .or_insert_with(|| "loadlens".into());
            timeseries.push(TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect(),
                samples: vec![Sample {
                    value: p.value,
                    timestamp: ts,
                }],
            });
        }
    }
    WriteRequest { timeseries }
}

/// The body of a remote-write request: the protobuf, snappy block-compressed (not framed).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    let raw = req.encode_to_vec();
    // Compressing into a buffer of `max_compress_len` cannot fail.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// The receiver's URL, without credentials (safe to show).
    pub url: String,
    /// `Authorization: Basic …` from the URL's `user:password@`.
    pub authorization: Option<String>,
    /// Attempts per request (the first included) before it counts as failed.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter.
    pub backoff: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// What the sender did, for the sink report.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests the receiver accepted.
    pub delivered: AtomicU64,
    /// Requests given up on (non-retryable answer or attempts exhausted).
    pub failed: AtomicU64,
    /// Snapshots not sent because a newer one replaced them while a request was retried.
    pub superseded: AtomicU64,
    /// Distinct error messages (no credentials: the URL is shown without them).
    pub errors: Mutex<Vec<String>>,
}

impl Counts {
    fn error(&self, message: String) {
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if !e.contains(&message) && e.len() < 8 {
            e.push(message);
        }
    }
}

/// The sender task's handle: the latest metrics go in through a watch channel; the task sends
/// them one request at a time.
#[derive(Debug)]
pub struct Sender {
    tx: watch::Sender<Option<(u64, Arc<Metrics>)>>,
    finish: Arc<Mutex<Option<Instant>>>,
    /// What it did.
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
    seq: u64,
}

/// One attempt's failure.
struct Failure {
    message: String,
    retryable: bool,
}

impl Sender {
    /// Start the sender task on the current runtime.
    pub fn start(target: Target) -> Result<Sender, String> {
        let config = ClientConfig {
            request_timeout: target.request_timeout,
            connect_timeout: target.request_timeout.min(Duration::from_secs(5)),
            max_redirects: 0,
            cookies: false,
            ..ClientConfig::default()
        };
        let shared = ClientShared::new(config).map_err(|e| e.to_string())?;
        let uri: http::Uri = target
            .url
            .parse()
            .map_err(|_| format!("invalid remote-write URL {}", target.url))?;
        let (tx, rx) = watch::channel(None);
        let counts = Arc::new(Counts::default());
        let finish = Arc::new(Mutex::new(None));
        let task = tokio::spawn(run(
            Client::new(shared),
            uri,
            target,
            rx,
            counts.clone(),
            finish.clone(),
        ));
        Ok(Sender {
            tx,
            finish,
            counts,
            task,
            seq: 0,
        })
    }

    /// Hand over the newest metrics; never waits.
    pub fn offer(&mut self, metrics: Arc<Metrics>) {
        self.seq += 1;
        let seq = self.seq;
        self.tx.send_replace(Some((seq, metrics)));
    }

    /// Send the final metrics and wait until they are delivered or given up on, or `deadline`.
    pub async fn finish(self, last: Arc<Metrics>, deadline: Instant) {
        *self.finish.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        let seq = self.seq + 1;
        self.tx.send_replace(Some((seq, last)));
        // Closing the channel tells the task that this is the last one.
        drop(self.tx);
        let abort = self.task.abort_handle();
        if tokio::time::timeout_at(deadline, self.task).await.is_err() {
            abort.abort();
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
            self.counts.error(
                "the final remote write was not accepted before the end-of-run timeout".into(),
            );
        }
    }
}

async fn run(
    mut client: Client,
    uri: http::Uri,
    target: Target,
    mut rx: watch::Receiver<Option<(u64, Arc<Metrics>)>>,
    counts: Arc<Counts>,
    finish: Arc<Mutex<Option<Instant>>>,
) {
    let mut sent = 0;
    // Marks the value seen, so that `changed` waits for the next one.
    let newest = |rx: &mut watch::Receiver<Option<(u64, Arc<Metrics>)>>| {
        rx.borrow_and_update()
            .as_ref()
            .map(|(s, m)| (*s, m.clone()))
    };
    loop {
        // The newest metrics not sent yet; once the sink is finishing (channel closed) and
        // everything is sent, the task ends.
        let (seq, metrics) = match newest(&mut rx) {
            Some((seq, m)) if seq > sent => (seq, m),
            _ => {
                if rx.changed().await.is_err() && newest(&mut rx).is_none_or(|(s, _)| s <= sent) {
                    return;
                }
                continue;
            }
        };
        sent = seq;
        let body = Bytes::from(encode(&write_request(&metrics)));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Err(f) = send(&mut client, &uri, &target, body.clone()).await else {
                counts.delivered.fetch_add(1, Ordering::Relaxed);
                break;
            };
            let deadline = *finish.lock().unwrap_or_else(|p| p.into_inner());
            // While finishing, the final request is retried until the deadline.
            let exhausted = attempt >= target.max_attempts.max(1) && deadline.is_none();
            let wait = backoff(target.backoff, attempt);
            let too_late = deadline.is_some_and(|d| Instant::now() + wait >= d);
            if !f.retryable || exhausted || too_late {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                counts.error(f.message);
                break;
            }
            tokio::time::sleep(wait).await;
            if newest(&mut rx).is_some_and(|(s, _)| s > seq) {
                // A newer snapshot carries everything this one did (the series are cumulative).
                counts.superseded.fetch_add(1, Ordering::Relaxed);
                counts.error(f.message);
                break;
            }
        }
    }
}

fn backoff(first: Duration, attempt: u32) -> Duration {
    let base = first.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    let base = base.min(Duration::from_secs(5));
    // Up to 25 % jitter, so that many generators do not retry in step.
    base + base.mul_f64(fastrand::f64() * 0.25)
}

async fn send(
    client: &mut Client,
    uri: &http::Uri,
    target: &Target,
    body: Bytes,
) -> Result<(), Failure> {
    let mut req = Request::new(Method::POST, uri.clone());
    req.keep_body = true;
    let h = &mut req.headers;
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    h.insert(
        http::header::CONTENT_ENCODING,
        HeaderValue::from_static("snappy"),
    );
    h.insert(
        HeaderName::from_static("x-prometheus-remote-write-version"),
        HeaderValue::from_static("0.1.0"),
    );
    if let Some(auth) = &target.authorization {
        if let Ok(mut v) = HeaderValue::from_str(auth) {
            v.set_sensitive(true);
            h.insert(http::header::AUTHORIZATION, v);
        }
    }
    req.body = body;
    let what = format!("remote write to {}", target.url);
    let out = client.send(&req).await;
    let resp = out.result.map_err(|f| Failure {
        message: format!("{what}: {}", f.message),
        retryable: true,
    })?;
    let status = resp.status.as_u16();
    if resp.status.is_success() {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&resp.body);
    let detail: String = body.trim().chars().take(200).collect();
    Err(Failure {
        message: if detail.is_empty() {
            format!("{what}: answered {status}")
        } else {
            format!("{what}: answered {status}: {detail}")
        },
        retryable: status == 429 || status >= 500,
    })
}
