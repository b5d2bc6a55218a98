//! The Datadog HTTP API, by hand on loadlens-core's own client (hyper + rustls, webpki roots):
//! three endpoints and two checks do not justify the official Rust client, which takes 12
//! minutes and 10 GB of memory to build on our machines (STYLE.md, rule 12).
//!
//! Delivery policy ([`Api::deliver`]): `429` waits for `X-RateLimit-Reset` (seconds; at most
//! [`Config::max_rate_limit_wait`](super::Config::max_rate_limit_wait)), `5xx`, `408` and
//! transport errors are retried with exponential backoff and jitter, other `4xx` are not
//! retried; every wait ends at the finish deadline. Keys travel only in `DD-API-KEY` /
//! `DD-APPLICATION-KEY` headers marked sensitive; messages name the method, the path and the
//! status, never a key (and any echo of one in a response body is masked).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use loadlens_core::client::{Client, ClientConfig, ClientShared, Request};
use tokio::time::Instant;

use super::config::{Config, Secret};

/// One failed call.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// Datadog answered with an error status.
    #[error("{what}: Datadog answered {status}{detail}")]
    Status {
        /// `POST /api/v1/events`.
        what: String,
        /// HTTP status.
        status: u16,
        /// `: <errors from the body>` or empty.
        detail: String,
        /// For 429: when the limit resets.
        reset: Option<Duration>,
    },
    /// No answer (refused, reset, timed out, TLS).
    #[error("{what}: {message}")]
    Transport {
        /// `POST /api/v1/events`.
        what: String,
        /// What went wrong.
        message: String,
    },
}

impl ApiError {
    /// Worth another attempt: 429, 408, 5xx, or no answer.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            ApiError::Transport { .. } => true,
        }
    }

    /// The HTTP status, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Transport { .. } => None,
        }
    }
}

/// The end of the run's delivery window, shared by every task that retries.
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Deadline {
    /// Set it (at finish).
    pub fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// The deadline, once set.
    pub fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request to the API.
#[derive(Debug, Clone)]
pub struct Call {
    /// Method.
    pub method: Method,
    /// Path and query, e.g. `/api/v1/events`.
    pub path: String,
    /// JSON body (uncompressed).
    pub body: Option<Bytes>,
    /// Send the body gzip-compressed.
    pub gzip: bool,
    /// Send the application key too.
    pub app_key: bool,
}

impl Call {
    /// `POST path` with a JSON body.
    pub fn post(path: &str, body: Vec<u8>, gzip: bool) -> Self {
        Call {
            method: Method::POST,
            path: path.into(),
            body: Some(body.into()),
            gzip,
            app_key: false,
        }
    }

    /// `GET path`.
    pub fn get(path: &str, app_key: bool) -> Self {
        Call {
            method: Method::GET,
            path: path.into(),
            body: None,
            gzip: false,
            app_key,
        }
    }

    fn what(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// Answer to a successful call.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (2xx).
    pub status: u16,
    /// Body (decoded JSON text, usually).
    pub body: Bytes,
}

/// A handle on the API: base URL, keys and the shared TLS configuration. Each task sending
/// calls owns its own [`Client`] (its own keep-alive connection).
#[derive(Debug, Clone)]
pub struct Api {
    shared: Arc<ClientShared>,
    base: String,
    api_key: Option<Secret>,
    app_key: Option<Secret>,
    basic_auth: Option<Secret>,
    max_attempts: u32,
    backoff: Duration,
    max_rate_limit_wait: Duration,
}

impl Api {
    /// An API handle for `cfg`.
    pub fn new(cfg: &Config) -> Result<Self, loadlens_core::client::ClientError> {
        let client = ClientConfig {
            request_timeout: cfg.request_timeout,
            connect_timeout: cfg.request_timeout.min(Duration::from_secs(10)),
            max_redirects: 0,
            cookies: false,
            ..ClientConfig::default()
        };
        let shared = ClientShared::new(client)?;
        Ok(Api {
            shared,
            base: cfg.base_url.clone(),
            api_key: cfg.api_key.clone(),
            app_key: cfg.app_key.clone(),
            basic_auth: cfg.basic_auth.clone(),
            max_attempts: cfg.max_attempts.max(1),
            backoff: cfg.backoff,
            max_rate_limit_wait: cfg.max_rate_limit_wait,
        })
    }

    /// A client for one task.
    pub fn client(&self) -> Client {
        Client::new(self.shared.clone())
    }

    /// The full URL of `path` (for messages; it holds no key).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send `call` once.
    pub async fn once(&self, client: &mut Client, call: &Call) -> Result<Answer, ApiError> {
        let what = call.what();
        let url = self.url(&call.path);
        let uri: http::Uri = url.parse().map_err(|_| ApiError::Transport {
            what: what.clone(),
            message: format!("invalid URL {url}"),
        })?;
        let mut req = Request::new(call.method.clone(), uri);
        req.keep_body = true;
        let h = &mut req.headers;
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let mut secret = |name: &'static str, key: &Option<Secret>| {
            if let Some(k) = key {
                if let Ok(mut v) = HeaderValue::from_str(k.expose()) {
                    v.set_sensitive(true);
                    h.insert(HeaderName::from_static(name), v);
                }
            }
        };
        secret("dd-api-key", &self.api_key);
        secret("authorization", &self.basic_auth);
        if call.app_key {
            secret("dd-application-key", &self.app_key);
        }
        if let Some(body) = &call.body {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if call.gzip {
                h.insert(
                    http::header::CONTENT_ENCODING,
                    HeaderValue::from_static("gzip"),
                );
                req.body = super::encode::gzip(body).into();
            } else {
                req.body = body.clone();
            }
        }
        let out = client.send(&req).await;
        let resp = out.result.map_err(|f| ApiError::Transport {
            what: what.clone(),
            message: f.message,
        })?;
        let status = resp.status.as_u16();
        if resp.status.is_success() {
            return Ok(Answer {
                status,
                body: resp.body,
            });
        }
        let reset = resp
            .headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        Err(ApiError::Status {
            what,
            status,
            detail: self.detail(&resp.body),
            reset,
        })
    }

    /// The `errors` of an error body, short and with any key masked.
    fn detail(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let errors = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .map(|e| match e {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let mut d: String = errors.chars().take(200).collect();
        for k in [&self.api_key, &self.app_key].into_iter().flatten() {
            if !k.expose().is_empty() {
                d = d.replace(k.expose(), "***");
            }
        }
        if d.is_empty() {
            d
        } else {
            format!(": {d}")
        }
    }

    /// Send `call`, retrying as the module docs say, never past `deadline` once it is set.
    pub async fn deliver(
        &self,
        client: &mut Client,
        call: &Call,
        deadline: &Deadline,
    ) -> Result<Answer, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match deadline.get() {
                Some(d) => match tokio::time::timeout_at(d, self.once(client, call)).await {
                    Ok(r) => r,
                    Err(_) => Err(ApiError::Transport {
                        what: call.what(),
                        message: "no answer before the end-of-run timeout".into(),
                    }),
                },
                None => self.once(client, call).await,
            };
            let err = match result {
                Ok(a) => return Ok(a),
                Err(e) if !e.retryable() || attempt >= self.max_attempts => return Err(e),
                Err(e) => e,
            };
            let wait = match &err {
                ApiError::Status {
                    status: 429, reset, ..
                } => {
                    let w = reset.unwrap_or(Duration::from_secs(1));
                    if w > self.max_rate_limit_wait {
                        return Err(err);
                    }
                    w
                }
                _ => {
                    let base = self.backoff * 2u32.saturating_pow(attempt - 1);
                    base.min(Duration::from_secs(8))
                        + Duration::from_millis(fastrand::u64(..=base.as_millis() as u64 / 4))
                }
            };
            let until = Instant::now() + wait;
            if deadline.get().is_some_and(|d| until >= d) {
                return Err(err);
            }
            tracing::debug!(sink = "datadog", error = %err, wait_ms = wait.as_millis() as u64, "Retrying.");
            tokio::time::sleep_until(until).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        let s = |status| ApiError::Status {
            what: "x".into(),
            status,
            detail: String::new(),
            reset: None,
        };
        assert!(s(429).retryable() && s(500).retryable() && s(503).retryable());
        assert!(!s(400).retryable() && !s(403).retryable() && !s(413).retryable());
    }

    #[test]
    fn error_details_mask_keys() {
        let api = Api::new(&Config::new("http://127.0.0.1:1", Some("k3y"), Some("4pp"))).unwrap();
        let d = api.detail(br#"{"errors":["bad key k3y or 4pp"]}"#);
        assert_eq!(d, ": bad key *** or ***");
        assert_eq!(api.detail(b"<html>"), "");
    }
}
