//! Statsig: feature-gate and config changes on the run's timeline, and the Console API client
//! that guard actions use to turn a gate off or on.
//!
//! - **At the start** ([`StatsigSink::connect`], before the run): the key is checked with read
//!   calls — the state of each watched gate (`GET /console/v1/gates/{id}`) and dynamic config
//!   (`GET /console/v1/dynamic_configs/{id}`), and the first pages of today's audit log, whose
//!   entries are the baseline (not changes of this run). 401/403 is one clear line and a run
//!   without Statsig, or no run with `--statsig-required` (exit 2).
//! - **When the run starts**: the state of each watched gate and config goes on the timeline
//!   (a `note` with its flag).
//! - **During the run** (and once more when the load stops, so that a change of the last
//!   interval is not lost): one task polls the audit log (`GET /console/v1/audit_logs`, from the
//!   run's day, [`ConsoleConfig::page_size`] entries a page, every page until the last, at
//!   most [`Config::max_pages`]) every interval. Each entry not seen before — about a watched
//!   gate or config, or any when none is named — is a `config_changed` event on the timeline:
//!   who, what, which gate or config, the old and new value when the entry has them. From the
//!   timeline it reaches every output: summary, JSON result, HTML report, web dashboard, the
//!   OpenTelemetry run span (`feature_flag.*` attributes) and Datadog (an event tagged
//!   `feature_flag:<id>`), and a `warn` log line, which the live terminal view shows in its log
//!   rows. The task never touches the request path; a failing Statsig only
//!   costs polls, which are counted and reported.
//!
//! [`api`] is the Console API client, shared with the guard actions.

pub mod api;
mod config;
pub mod gates;
mod integration;
#[cfg(any(test, feature = "testing"))]
pub mod stub;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use loadlens_core::report::Summary;
use loadlens_core::run::{EventKind, FlagChange};
use loadlens_core::sink::TimelineHandle;
use loadlens_core::sink::{FinishFuture, Sink, SinkContext, SinkReport, StoppingFuture};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::{
    ApiError, AuditLog, AuditPage, Console, ConsoleConfig, Deadline, DynamicConfig, Gate,
    GateChange, Pagination, Secret, API_VERSION, DEFAULT_BASE_URL,
};
pub use config::{Config, StatsigSettings, KEY_VAR};
pub use integration::Statsig;

/// Why the start-up check failed (the integration turns it into one line).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConnectError {
    /// No key in the environment.
    #[error("STATSIG_CONSOLE_API_KEY is not set (a Console API key of the project)")]
    NoKey,
    /// The client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A read call failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The check took too long.
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
}

/// How long the last read of the audit log, once the load stopped, may take.
const FINAL_POLL_LIMIT: Duration = Duration::from_secs(3);

/// What the run counts of its polls.
#[derive(Debug, Default)]
struct Counts {
    changes: u64,
    failed_polls: u64,
    errors: Vec<String>,
}

/// The Statsig sink: the start state, then the poller's changes, on the timeline.
pub struct StatsigSink {
    console: Console,
    cfg: Config,
    start_state: Vec<(String, FlagChange)>,
    seen: HashSet<String>,
    counts: Arc<Mutex<Counts>>,
    poller: Option<(CancellationToken, JoinHandle<()>)>,
}

impl std::fmt::Debug for StatsigSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsigSink")
            .field("base_url", &self.console.base_url())
            .field("gates", &self.cfg.gates)
            .field("configs", &self.cfg.configs)
            .finish()
    }
}

impl StatsigSink {
    /// The start-up check (bounded by [`Config::check_timeout`]), then the sink.
    pub async fn connect(cfg: Config) -> Result<Self, ConnectError> {
        let console_cfg = cfg.console.clone().ok_or(ConnectError::NoKey)?;
        let console = Console::new(console_cfg).map_err(|e| ConnectError::Client(e.to_string()))?;
        let bound = cfg.check_timeout;
        let url = console.base_url().to_owned();
        match tokio::time::timeout(bound, Self::check(console, cfg)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout(url, bound)),
        }
    }

    async fn check(console: Console, cfg: Config) -> Result<Self, ConnectError> {
        let mut start_state = Vec::new();
        for id in &cfg.gates {
            let g = console.get_gate(id).await?;
            let state = if g.is_enabled { "enabled" } else { "disabled" };
            start_state.push((
                format!("statsig: gate {id} is {state} at the start"),
                FlagChange {
                    provider: "statsig".into(),
                    key: id.clone(),
                    entity: "gate".into(),
                    action: Some("state at start".into()),
                    by: g.last_modifier_name.clone(),
                    old_value: None,
                    new_value: Some(state.into()),
                },
            ));
        }
        for id in &cfg.configs {
            let c = console.get_dynamic_config(id).await?;
            let state = if c.is_enabled { "enabled" } else { "disabled" };
            let value = short(&c.default_value.to_string(), 200);
            start_state.push((
                format!("statsig: config {id} is {state} at the start, default value {value}"),
                FlagChange {
                    provider: "statsig".into(),
                    key: id.clone(),
                    entity: "dynamic_config".into(),
                    action: Some("state at start".into()),
                    by: c.last_modifier_name.clone(),
                    old_value: None,
                    new_value: Some(value),
                },
            ));
        }
        // The audit log as it stands: its entries are not this run's changes (and reading it
        // checks that the key may read it).
        let mut seen = HashSet::new();
        for page in 1..=cfg.max_pages {
            let p = console.audit_logs(SystemTime::now(), page).await?;
            seen.extend(p.entries.iter().map(|e| e.id.clone()));
            if !p.has_next() {
                break;
            }
        }
        Ok(StatsigSink {
            console,
            cfg,
            start_state,
            seen,
            counts: Arc::default(),
            poller: None,
        })
    }

    /// The Console API client this sink uses (the guard actions share it).
    pub fn console(&self) -> &Console {
        &self.console
    }
}

impl Sink for StatsigSink {
    fn name(&self) -> &str {
        "statsig"
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        for (message, flag) in self.start_state.drain(..) {
            ctx.timeline.push_flag(EventKind::Note, message, flag);
        }
        let poller = Poller {
            console: self.console.clone(),
            timeline: ctx.timeline.clone(),
            gates: self.cfg.gates.clone(),
            configs: self.cfg.configs.clone(),
            interval: self.cfg.interval,
            max_pages: self.cfg.max_pages,
            since: SystemTime::now(),
            seen: std::mem::take(&mut self.seen),
            counts: self.counts.clone(),
        };
        let cancel = CancellationToken::new();
        self.poller = Some((cancel.clone(), tokio::spawn(poller.run(cancel))));
    }

    fn stopping(&mut self) -> Option<StoppingFuture> {
        // The poller's last read, before the summary is made.
        let (cancel, task) = self.poller.take()?;
        cancel.cancel();
        Some(Box::pin(async move {
            let _ = task.await;
        }))
    }

    fn finish(mut self: Box<Self>, _summary: &Summary) -> FinishFuture {
        Box::pin(async move {
            // Normally stopped by `stopping`; changes found from here on could not reach the
            // reports: a call in flight ends at the deadline.
            self.console
                .deadline()
                .set(tokio::time::Instant::now() + Duration::from_secs(2));
            if let Some((cancel, task)) = self.poller.take() {
                cancel.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
            }
            let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            SinkReport {
                name: "statsig".into(),
                delivered: c.changes,
                failed: c.failed_polls,
                dropped: 0,
                errors: c.errors.clone(),
            }
        })
    }
}

/// The task that polls the audit log.
struct Poller {
    console: Console,
    timeline: TimelineHandle,
    gates: Vec<String>,
    configs: Vec<String>,
    interval: Duration,
    max_pages: u32,
    since: SystemTime,
    seen: HashSet<String>,
    counts: Arc<Mutex<Counts>>,
}

impl Poller {
    async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.poll() => self.count(r),
            }
        }
        // The load stopped: one last read, so that a change made since the last poll (up to
        // an interval ago) still reaches the reports.
        match tokio::time::timeout(FINAL_POLL_LIMIT, self.poll()).await {
            Ok(r) => self.count(r),
            Err(_) => self.count(Err(ApiError::Transport {
                what: "GET /console/v1/audit_logs (last read)".into(),
                message: format!("no answer within {FINAL_POLL_LIMIT:?}"),
                attempts: 1,
            })),
        }
    }

    fn count(&self, r: Result<(), ApiError>) {
        if let Err(e) = r {
            tracing::warn!(integration = "statsig", error = %e, "Audit log poll failed.");
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            c.failed_polls += 1;
            let m = e.to_string();
            if c.errors.len() < 5 && !c.errors.contains(&m) {
                c.errors.push(m);
            }
        }
    }

    /// Read the pages, then put the new entries on the timeline, oldest first.
    async fn poll(&mut self) -> Result<(), ApiError> {
        // Every page first: an entry is marked seen only once the whole read succeeded, so a
        // poll that fails half-way loses nothing (the next one sees the entry again).
        let mut read = Vec::new();
        for page in 1..=self.max_pages.max(1) {
            let p = self.console.audit_logs(self.since, page).await?;
            let more = p.has_next();
            read.extend(p.entries);
            if !more {
                break;
            }
        }
        let mut fresh = Vec::new();
        for e in read {
            if self.seen.insert(e.id.clone()) && self.watched(&e) && !before(&e, self.since) {
                fresh.push(e);
            }
        }
        // Oldest first. The log lists the newest first; changes within one second keep that
        // order reversed.
        fresh.reverse();
        fresh.sort_by_key(|e| at_ms(e).unwrap_or(u64::MAX));
        let n = fresh.len() as u64;
        for e in fresh {
            let (message, flag) = describe(&e, &self.gates, &self.configs);
            // A log line too: the live terminal view shows warnings in its log rows (and a
            // headless run prints them), so the person watching sees the flip as it lands.
            tracing::warn!(integration = "statsig", change = %message, "Config changed during the run.");
            self.timeline
                .push_flag(EventKind::ConfigChanged, message, flag);
        }
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .changes += n;
        Ok(())
    }

    /// About a watched gate or config (any, when none is named).
    fn watched(&self, e: &AuditLog) -> bool {
        (self.gates.is_empty() && self.configs.is_empty())
            || self
                .gates
                .iter()
                .chain(&self.configs)
                .any(|id| *id == e.name)
    }
}

/// The entry is dated, and before `since` (by more than a second of clock skew).
fn before(e: &AuditLog, since: SystemTime) -> bool {
    let since_ms = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    at_ms(e).is_some_and(|t| t + 1000 < since_ms)
}

/// When the change was made, epoch milliseconds: `time` as epoch milliseconds (or seconds), or
/// RFC 3339, or `date` + `time` as a UTC day and clock time.
fn at_ms(e: &AuditLog) -> Option<u64> {
    let t = e.time.trim();
    if let Ok(n) = t.parse::<f64>() {
        if n.is_finite() && n > 0.0 {
            return Some(if n > 1e11 {
                n as u64
            } else {
                (n * 1000.0) as u64
            });
        }
    }
    let parse = |s: &str| {
        humantime::parse_rfc3339_weak(s)
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
    };
    parse(t).or_else(|| parse(&format!("{} {}", e.date.trim(), t.trim_end_matches('Z'))))
}

/// The timeline message and the flag of an audit-log entry.
fn describe(e: &AuditLog, gates: &[String], configs: &[String]) -> (String, FlagChange) {
    let action = match &e.action_type {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let entity = if gates.contains(&e.name) {
        "gate"
    } else if configs.contains(&e.name) {
        "dynamic_config"
    } else {
        match action.as_deref() {
            Some(a) if a.starts_with("gate") => "gate",
            Some(a) if a.starts_with("dynamic_config") || a.starts_with("config") => "config",
            Some(a) if a.starts_with("experiment") => "experiment",
            _ => "config",
        }
    };
    let by = match e.modifier_email.as_str() {
        Some(email) if !email.is_empty() && !e.updated_by.is_empty() => {
            Some(format!("{} <{email}>", e.updated_by))
        }
        _ if !e.updated_by.is_empty() => Some(e.updated_by.clone()),
        _ => None,
    };
    let (old_value, new_value) = old_new(&e.changes);
    let mut message = format!("statsig: {} {} changed", entity.replace('_', " "), e.name);
    if let Some(by) = &by {
        message.push_str(&format!(" by {by}"));
    }
    if let Some(a) = &action {
        message.push_str(&format!(" ({a})"));
    }
    if !e.change_log.is_empty() {
        message.push_str(&format!(": {}", short(&e.change_log, 300)));
    }
    if old_value.is_some() || new_value.is_some() {
        message.push_str(&format!(
            " [{} → {}]",
            old_value.as_deref().unwrap_or("?"),
            new_value.as_deref().unwrap_or("?")
        ));
    }
    let flag = FlagChange {
        provider: "statsig".into(),
        key: e.name.clone(),
        entity: entity.into(),
        action,
        by,
        old_value,
        new_value,
    };
    (message, flag)
}

/// The old and new value of a change, where the entry's `changes` has them: the first object
/// (depth first) holding an old-ish and a new-ish key (`oldValue`/`newValue`, `old`/`new`,
/// `before`/`after`, `previous`/`current`, `from`/`to`). The specification leaves `changes`
/// free-form, so anything else is left out rather than guessed.
fn old_new(changes: &Value) -> (Option<String>, Option<String>) {
    const PAIRS: [(&str, &str); 5] = [
        ("oldValue", "newValue"),
        ("old", "new"),
        ("before", "after"),
        ("previous", "current"),
        ("from", "to"),
    ];
    let text = |v: &Value| match v {
        Value::String(s) => short(s, 200),
        other => short(&other.to_string(), 200),
    };
    match changes {
        Value::Object(m) => {
            for (o, n) in PAIRS {
                if m.contains_key(o) || m.contains_key(n) {
                    return (m.get(o).map(text), m.get(n).map(text));
                }
            }
            m.values()
                .map(old_new)
                .find(|(o, n)| o.is_some() || n.is_some())
                .unwrap_or((None, None))
        }
        Value::Array(a) => a
            .iter()
            .map(old_new)
            .find(|(o, n)| o.is_some() || n.is_some())
            .unwrap_or((None, None)),
        _ => (None, None),
    }
}

/// At most `n` characters, `…` when cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}
