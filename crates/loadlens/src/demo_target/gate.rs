//! The demo target's feature-gate knob: with `--gate-url`, it polls a feature gate (Statsig's
//! Console API `GET /console/v1/gates/{id}`, or any URL answering JSON with `isEnabled`) and,
//! while the gate is on, adds `--gate-latency` to every response. Loadlens enabling the gate
//! (a planned flip) thus makes the target slower, causally, as a real feature would.
//!
//! ```text
//! loadlens demo-target --gate-url http://127.0.0.1:9000/console/v1/gates/new_checkout \
//!   --gate-header 'STATSIG-API-KEY: console-…' --gate-header 'STATSIG-API-VERSION: 20240601' \
//!   --gate-latency 'fixed(40ms)'
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadlens_core::client::{Client, ClientConfig, ClientShared, Request};
use tokio_util::sync::CancellationToken;

use super::config::Latency;

/// How often the gate is read.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// The gate to follow and what it costs while on.
#[derive(Clone, Debug)]
pub struct GateKnob {
    /// Where the gate's state is read.
    pub url: String,
    /// Headers sent with each read (`Name: value`).
    pub headers: Vec<(String, String)>,
    /// Added to every response while the gate is on.
    pub latency: Latency,
    /// The gate's last known state.
    pub on: Arc<AtomicBool>,
}

impl PartialEq for GateKnob {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.headers == other.headers && self.latency == other.latency
    }
}

impl GateKnob {
    /// The added latency for one response: none while the gate is off.
    pub fn delay(&self) -> Duration {
        if self.on.load(Ordering::Relaxed) {
            self.latency.sample()
        } else {
            Duration::ZERO
        }
    }
}

/// `isEnabled` of a Console API gate (`{ "data": { "isEnabled": true } }`) or of a bare object.
fn enabled(body: &[u8]) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let gate = v.get("data").unwrap_or(&v);
    gate.get("isEnabled")
        .or_else(|| gate.get("enabled"))
        .and_then(serde_json::Value::as_bool)
}

/// Read the gate every [`POLL_EVERY`] until `stop`; a failed read keeps the last state.
pub async fn poll(knob: GateKnob, stop: CancellationToken) {
    let Ok(shared) = ClientShared::new(ClientConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        cookies: false,
        ..ClientConfig::default()
    }) else {
        return;
    };
    let Ok(uri) = knob.url.parse::<http::Uri>() else {
        tracing::warn!(url = %knob.url, "Demo target: --gate-url is not a URL.");
        return;
    };
    let mut req = Request::new(http::Method::GET, uri);
    req.keep_body = true;
    for (k, v) in &knob.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            req.headers.insert(k, v);
        }
    }
    let mut client = Client::new(shared);
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let out = client.send(&req).await;
        match out.result {
            Ok(r) if r.status.is_success() => match enabled(&r.body) {
                Some(on) => knob.on.store(on, Ordering::Relaxed),
                None => tracing::debug!("Demo target: the gate's answer has no isEnabled."),
            },
            Ok(r) => tracing::debug!(status = r.status.as_u16(), "Demo target: gate read failed."),
            Err(e) => tracing::debug!(error = %e.message, "Demo target: gate read failed."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_read_from_a_console_api_gate_or_a_bare_object() {
        assert_eq!(
            enabled(br#"{"message":"ok","data":{"id":"g","isEnabled":true}}"#),
            Some(true)
        );
        assert_eq!(enabled(br#"{"isEnabled":false}"#), Some(false));
        assert_eq!(enabled(br#"{"enabled":true}"#), Some(true));
        assert_eq!(enabled(b"not json"), None);
    }
}
