//! The run's resolved configuration as sinks receive it ([`SinkContext::config`]): what flags,
//! environment and file came to, for the JSON-lines `run_start` line. Secrets stay out: the
//! host is already redacted, and headers (which may carry credentials) are not listed.
//!
//! [`SinkContext::config`]: loadlens_core::sink::SinkContext::config

use loadlens_core::client::HttpVersion;
use serde_json::{json, Value};

use crate::runner::Prepared;

/// The configuration of the run `p` is about to start. `integrations` is filled by the caller
/// once they started: the banner line of each (those lines never carry secrets).
pub fn config(p: &Prepared) -> Value {
    let c = &p.client;
    let scenarios: Vec<Value> = p
        .scenarios
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "start_time_s": s.start_time.as_secs_f64(),
                "load": s.load,
            })
        })
        .collect();
    let requests: Vec<String> = p
        .plan
        .names
        .pairs()
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    json!({
        "scenario": p.run.scenario,
        "host": p.host,
        "load": p.load,
        "scenarios": scenarios,
        "run_time_cap_s": p.run_time_cap.map(|d| d.as_secs_f64()),
        "requests": requests,
        "thresholds": p.thresholds.iter().map(|t| &t.expression).collect::<Vec<_>>(),
        "client": {
            "timeout_s": c.request_timeout.as_secs_f64(),
            "connect_timeout_s": c.connect_timeout.as_secs_f64(),
            "max_redirects": c.max_redirects,
            "max_body_size_bytes": c.max_body_size,
            "insecure": c.insecure,
            "http_version": match c.version {
                HttpVersion::Auto => "auto",
                HttpVersion::Http1 => "http1",
                _ => "http2",
            },
            "http2_streams": c.http2_streams,
        },
        "integrations": [],
    })
}
