//! The Statsig Console API (`https://statsigapi.net`, version `20240601`), by hand on
//! loadlens-core's HTTP client: four calls do not justify a generated SDK.
//!
//! Shapes follow Statsig's OpenAPI specification for `20240601`:
//!
//! | call | request | answer (`200`) |
//! |---|---|---|
//! | [`Console::get_gate`] | `GET /console/v1/gates/{id}` | `{message, data: Gate}` |
//! | [`Console::get_dynamic_config`] | `GET /console/v1/dynamic_configs/{id}` | `{message, data: DynamicConfig}` |
//! | [`Console::disable_gate`] | `PUT /console/v1/gates/{id}/disable`, no body | `{message, data: Gate}` |
//! | [`Console::enable_gate`] | `PUT /console/v1/gates/{id}/enable`, no body | `{message, data: Gate}` |
//! | [`Console::audit_logs`] | `GET /console/v1/audit_logs?startDate=YYYY-MM-DD&limit=N&page=P` | `{message, data: [AuditLog], pagination}` |
//!
//! Every request carries `STATSIG-API-KEY` (marked sensitive) and `STATSIG-API-VERSION:
//! 20240601`. The enable and disable endpoints take no body in this version, so the *reason*
//! of a flip cannot travel to Statsig: [`Console::disable_gate`] returns it with the gate for
//! the caller to record (timeline, Datadog event).
//!
//! Retries ([`Console::call`]): `429` waits for `Retry-After` (seconds) when Statsig sends it,
//! else an exponential backoff with jitter — Statsig's guidance, since rejected attempts count
//! against the per-project mutation quota; `5xx`, `408` and transport errors are retried with
//! backoff too; both are bounded by [`ConsoleConfig::max_attempts`], by
//! [`ConsoleConfig::max_wait`] per wait and by the [`Deadline`] once it is set. `401` and `403`
//! are [`ApiError::Unauthorized`], never retried. No message ever holds the key: errors name
//! the method, the path and the status, and any echo of the key in a body is masked.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use loadlens_core::client::{Client, ClientConfig, ClientError, ClientShared, Request};
use serde::Deserialize;
use tokio::time::Instant;

/// The public Console API.
pub const DEFAULT_BASE_URL: &str = "https://statsigapi.net";
/// The API version every request names.
pub const API_VERSION: &str = "20240601";

pub use crate::secret::Secret;

/// Where and how the client talks to the Console API.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Base URL without a trailing slash ([`DEFAULT_BASE_URL`], or a proxy / the test stub).
    pub base_url: String,
    /// The Console API key.
    pub key: Secret,
    /// Bound on one attempt (connect + answer).
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff step; doubles at each retry.
    pub backoff: Duration,
    /// Longest single wait (a longer `Retry-After` ends the call with the 429).
    pub max_wait: Duration,
    /// Audit-log entries asked per page (`limit`).
    pub page_size: u32,
}

impl ConsoleConfig {
    /// Defaults for `base_url` and `key`: 10 s per attempt, 4 attempts, 500 ms first backoff,
    /// 30 s longest wait, 50 entries per page.
    pub fn new(base_url: &str, key: Secret) -> Self {
        ConsoleConfig {
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
            page_size: 50,
        }
    }
}

/// One failed call. Messages name the call (`GET /console/v1/gates/x`), never the key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// 401 or 403: the key is missing, wrong, revoked or lacks the permission.
    #[error("{what}: Statsig refused the Console API key ({status}){detail}; check STATSIG_CONSOLE_API_KEY (a Console API key of the project, with write access for gate changes)")]
    Unauthorized {
        /// The call.
        what: String,
        /// 401 or 403.
        status: u16,
        /// `: <message from the body>` or empty.
        detail: String,
    },
    /// 404: no such gate or config.
    #[error("{what}: Statsig has no such gate or config (404){detail}")]
    NotFound {
        /// The call.
        what: String,
        /// `: <message from the body>` or empty.
        detail: String,
    },
    /// Any other error status (after the retries, for 429 and 5xx).
    #[error("{what}: Statsig answered {status}{detail}{after}", after = attempts_note(*attempts))]
    Status {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// `: <message from the body>` or empty.
        detail: String,
        /// Attempts made.
        attempts: u32,
    },
    /// No answer (refused, reset, timed out, TLS).
    #[error("{what}: {message}{after}", after = attempts_note(*attempts))]
    Transport {
        /// The call.
        what: String,
        /// What went wrong.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A 2xx whose body is not the specified shape.
    #[error("{what}: unexpected answer from Statsig: {message}")]
    Decode {
        /// The call.
        what: String,
        /// What did not parse.
        message: String,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl ApiError {
    /// The HTTP status, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { status, .. } | ApiError::Status { status, .. } => {
                Some(*status)
            }
            ApiError::NotFound { .. } => Some(404),
            ApiError::Transport { .. } | ApiError::Decode { .. } => None,
        }
    }
}

/// The end of the window in which calls may still be retried, shared by every task that uses
/// the client (set at the end of the run).
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Deadline {
    /// Set it.
    pub fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// The deadline, once set.
    pub fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A feature gate, as the Console API returns it (the fields loadlens uses; the others are
/// ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// Gate id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the gate is enabled (evaluates its rules) or disabled (always false).
    pub is_enabled: bool,
    /// `In Progress`, `Launched`, `Disabled`, `Archived`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Last modification, epoch milliseconds.
    #[serde(default)]
    pub last_modified_time: Option<f64>,
    /// Who modified it last.
    #[serde(default)]
    pub last_modifier_name: Option<String>,
}

/// A dynamic config, as the Console API returns it (the fields loadlens uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DynamicConfig {
    /// Config id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the config is enabled.
    pub is_enabled: bool,
    /// The value served when no rule passes.
    #[serde(default)]
    pub default_value: serde_json::Value,
    /// Last modification, epoch milliseconds.
    #[serde(default)]
    pub last_modified_time: Option<f64>,
    /// Who modified it last.
    #[serde(default)]
    pub last_modifier_name: Option<String>,
}

/// One audit-log entry (`AuditLogDto`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    /// Entry id.
    pub id: String,
    /// The gate, config or other entity changed.
    pub name: String,
    /// What changed, in words.
    #[serde(default)]
    pub change_log: String,
    /// `gate_update`, `config_state_toggle`, … (a string in practice; the spec says object).
    #[serde(default)]
    pub action_type: serde_json::Value,
    /// Day of the change.
    #[serde(default)]
    pub date: String,
    /// Time of the change.
    #[serde(default)]
    pub time: String,
    /// Who made it.
    #[serde(default)]
    pub updated_by: String,
    /// Their user id.
    #[serde(default, rename = "updatedByUserID")]
    pub updated_by_user_id: String,
    /// Their email (string or null).
    #[serde(default)]
    pub modifier_email: serde_json::Value,
    /// The change in detail (old and new values, when Statsig records them).
    #[serde(default)]
    pub changes: serde_json::Value,
    /// Tags of the entity.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `PaginationResponseMetadataDto`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Page size.
    #[serde(default)]
    pub items_per_page: u64,
    /// This page (1-based).
    #[serde(default)]
    pub page_number: u64,
    /// Entries over all pages.
    #[serde(default)]
    pub total_items: u64,
    /// The next page's URL path, or null on the last page.
    #[serde(default)]
    pub next_page: Option<String>,
    /// The previous page's URL path, or null.
    #[serde(default)]
    pub previous_page: Option<String>,
}

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// Its entries.
    pub entries: Vec<AuditLog>,
    /// Where it sits among the pages.
    pub pagination: Pagination,
}

impl AuditPage {
    /// Another page follows.
    pub fn has_next(&self) -> bool {
        self.pagination.next_page.is_some()
    }
}

/// A gate after [`Console::disable_gate`] / [`Console::enable_gate`], with the reason the
/// caller gave (which this API version cannot store on Statsig's side).
#[derive(Debug, Clone, PartialEq)]
pub struct GateChange {
    /// The gate as Statsig returned it after the change.
    pub gate: Gate,
    /// The reason, for the caller's records.
    pub reason: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct ListEnvelope<T> {
    data: Vec<T>,
    #[serde(default)]
    pagination: Pagination,
}

/// A handle on the Console API. Cheap to clone; each call opens its own connection, so that a
/// poll that is waiting out a 429 never holds up a gate change.
#[derive(Debug, Clone)]
pub struct Console {
    shared: Arc<ClientShared>,
    cfg: ConsoleConfig,
    deadline: Deadline,
}

impl Console {
    /// A client for `cfg`.
    pub fn new(cfg: ConsoleConfig) -> Result<Self, ClientError> {
        let client = ClientConfig {
            request_timeout: cfg.request_timeout,
            connect_timeout: cfg.request_timeout.min(Duration::from_secs(10)),
            max_redirects: 0,
            cookies: false,
            ..ClientConfig::default()
        };
        Ok(Console {
            shared: ClientShared::new(client)?,
            cfg,
            deadline: Deadline::default(),
        })
    }

    /// The base URL (for messages and the banner; it holds no key).
    pub fn base_url(&self) -> &str {
        &self.cfg.base_url
    }

    /// The deadline shared by the calls of this client and its clones.
    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    /// `GET /console/v1/gates/{id}`.
    pub async fn get_gate(&self, id: &str) -> Result<Gate, ApiError> {
        let path = format!("/console/v1/gates/{}", encode(id));
        self.data(Method::GET, &path).await
    }

    /// `GET /console/v1/dynamic_configs/{id}`.
    pub async fn get_dynamic_config(&self, id: &str) -> Result<DynamicConfig, ApiError> {
        let path = format!("/console/v1/dynamic_configs/{}", encode(id));
        self.data(Method::GET, &path).await
    }

    /// `PUT /console/v1/gates/{id}/disable`; `reason` comes back in the [`GateChange`].
    pub async fn disable_gate(&self, id: &str, reason: &str) -> Result<GateChange, ApiError> {
        let path = format!("/console/v1/gates/{}/disable", encode(id));
        let gate = self.data(Method::PUT, &path).await?;
        Ok(GateChange {
            gate,
            reason: reason.to_owned(),
        })
    }

    /// `PUT /console/v1/gates/{id}/enable`; `reason` comes back in the [`GateChange`].
    pub async fn enable_gate(&self, id: &str, reason: &str) -> Result<GateChange, ApiError> {
        let path = format!("/console/v1/gates/{}/enable", encode(id));
        let gate = self.data(Method::PUT, &path).await?;
        Ok(GateChange {
            gate,
            reason: reason.to_owned(),
        })
    }

    /// One page (1-based) of the audit log from the day of `since` (UTC; the API filters by
    /// day, so the caller drops entries older than `since` itself), [`ConsoleConfig::page_size`]
    /// entries at most.
    pub async fn audit_logs(&self, since: SystemTime, page: u32) -> Result<AuditPage, ApiError> {
        let day = &humantime::format_rfc3339_seconds(since).to_string()[..10];
        let path = format!(
            "/console/v1/audit_logs?startDate={day}&limit={}&page={}",
            self.cfg.page_size.max(1),
            page.max(1)
        );
        let what = format!("GET {}", strip_query(&path));
        let body = self.call(Method::GET, &path).await?;
        let list: ListEnvelope<AuditLog> =
            serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
                what,
                message: e.to_string(),
            })?;
        Ok(AuditPage {
            entries: list.data,
            pagination: list.pagination,
        })
    }

    async fn data<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ApiError> {
        let what = format!("{method} {path}");
        let body = self.call(method, path).await?;
        serde_json::from_slice::<Envelope<T>>(&body)
            .map(|e| e.data)
            .map_err(|e| ApiError::Decode {
                what,
                message: e.to_string(),
            })
    }

    /// Send one call, retrying as the module docs say.
    pub async fn call(&self, method: Method, path: &str) -> Result<Bytes, ApiError> {
        let what = format!("{method} {}", strip_query(path));
        let mut client = Client::new(self.shared.clone());
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let once = self.once(&mut client, &method, path, &what);
            let result = match self.deadline.get() {
                Some(d) => match tokio::time::timeout_at(d, once).await {
                    Ok(r) => r,
                    Err(_) => Err(Failed::Transport(
                        "no answer before the end-of-run timeout".into(),
                    )),
                },
                None => once.await,
            };
            let failed = match result {
                Ok(body) => return Ok(body),
                Err(f) => f,
            };
            let retry = match &failed {
                Failed::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
                Failed::Transport(_) => true,
            };
            let backoff = self.backoff(attempt);
            let wait = match &failed {
                Failed::Status {
                    status: 429,
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => backoff,
            };
            let until = Instant::now() + wait;
            let give_up = !retry
                || attempt >= self.cfg.max_attempts.max(1)
                || wait > self.cfg.max_wait
                || self.deadline.get().is_some_and(|d| until >= d);
            if give_up {
                return Err(failed.into_error(what, attempt));
            }
            tracing::debug!(integration = "statsig", call = %what, attempt, wait_ms = wait.as_millis() as u64, "Retrying.");
            tokio::time::sleep_until(until).await;
        }
    }

    /// Exponential backoff with full jitter on top: `backoff·2^(n-1)` (at most 8 s) plus up to
    /// half as much again.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .cfg
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(Duration::from_secs(8));
        base + Duration::from_millis(fastrand::u64(..=base.as_millis() as u64 / 2))
    }

    async fn once(
        &self,
        client: &mut Client,
        method: &Method,
        path: &str,
        what: &str,
    ) -> Result<Bytes, Failed> {
        let url = format!("{}{path}", self.cfg.base_url);
        let uri: http::Uri = url
            .parse()
            .map_err(|_| Failed::Transport(format!("invalid URL {}", strip_query(&url))))?;
        let mut req = Request::new(method.clone(), uri);
        req.keep_body = true;
        req.headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        req.headers.insert(
            HeaderName::from_static("statsig-api-version"),
            HeaderValue::from_static(API_VERSION),
        );
        let mut key = HeaderValue::from_str(self.cfg.key.expose()).map_err(|_| {
            Failed::Transport("the Console API key is not a valid header value".into())
        })?;
        key.set_sensitive(true);
        req.headers
            .insert(HeaderName::from_static("statsig-api-key"), key);
        let out = client.send(&req).await;
        let resp = out
            .result
            .map_err(|f| Failed::Transport(self.mask(&f.message)))?;
        if resp.status.is_success() {
            return Ok(resp.body);
        }
        let retry_after = resp
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        tracing::trace!(integration = "statsig", call = %what, status = resp.status.as_u16(), "Failed.");
        Err(Failed::Status {
            status: resp.status.as_u16(),
            detail: self.detail(&resp.body),
            retry_after,
        })
    }

    /// The `message` of an error body, short and with the key masked.
    fn detail(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let d = self.mask(&message.chars().take(200).collect::<String>());
        if d.is_empty() {
            d
        } else {
            format!(": {d}")
        }
    }

    fn mask(&self, text: &str) -> String {
        let key = self.cfg.key.expose();
        if key.is_empty() {
            text.to_owned()
        } else {
            text.replace(key, "***")
        }
    }
}

/// What one attempt ended with, before it becomes an [`ApiError`].
enum Failed {
    Status {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    Transport(String),
}

impl Failed {
    fn into_error(self, what: String, attempts: u32) -> ApiError {
        match self {
            Failed::Status {
                status: status @ (401 | 403),
                detail,
                ..
            } => ApiError::Unauthorized {
                what,
                status,
                detail,
            },
            Failed::Status {
                status: 404,
                detail,
                ..
            } => ApiError::NotFound { what, detail },
            Failed::Status { status, detail, .. } => ApiError::Status {
                what,
                status,
                detail,
                attempts,
            },
            Failed::Transport(message) => ApiError::Transport {
                what,
                message,
                attempts,
            },
        }
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (a date in the past is no wait).
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `path` without its query string (messages stay short and stable).
fn strip_query(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Percent-encode a path segment (gate and config ids are usually `[a-z0-9_]`, but a name
/// with a space or a slash must not change the path).
fn encode(segment: &str) -> String {
    loadlens_core::encoding::encode(segment, loadlens_core::encoding::Set::PathSegment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_prints() {
        let cfg = ConsoleConfig::new("http://127.0.0.1:1/", Secret::new("console-s3cret"));
        assert_eq!(cfg.base_url, "http://127.0.0.1:1");
        assert!(!format!("{cfg:?}").contains("s3cret"));
        let console = Console::new(cfg).unwrap();
        assert_eq!(
            console.detail(br#"{"message":"bad key console-s3cret"}"#),
            ": bad key ***"
        );
        assert_eq!(console.detail(b"<html>"), "");
    }

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(encode("new_checkout"), "new_checkout");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode("50%?#x"), "50%25%3F%23x");
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(retry_after("-1"), None);
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(60);
        let wait = retry_after(&httpdate::fmt_http_date(in_a_minute)).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn unauthorized_says_what_to_do() {
        let e = Failed::Status {
            status: 401,
            detail: String::new(),
            retry_after: None,
        }
        .into_error("GET /console/v1/gates/g".into(), 1);
        let m = e.to_string();
        assert!(
            m.contains("(401)") && m.contains("STATSIG_CONSOLE_API_KEY"),
            "{m}"
        );
    }
}
