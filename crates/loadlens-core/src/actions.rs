//! The runner of guard actions and planned flips ([`crate::action`] holds their model).
//!
//! Guards (the aggregator when a threshold with `on_fail` first fails, a sink whose monitor
//! goes to Alert, the caller at the end of a failed run) and the plan (the aggregator at a
//! planned flip) ask through an [`Actions`] handle; each call returns at once and the action
//! runs in a task of its own, so neither the request path nor the aggregator ever waits on a
//! flag service or a webhook. What came of each action (done, failed, dry run, skipped) is a
//! [`Record`], shown on the timeline (an `action` event, which the sinks forward, e.g. as a
//! Datadog event) and in every report; a failed action is shown as failed, never dropped.
//!
//! Rules: a guard switches a gate at most once per run (the first guard wins, later ones are
//! recorded as skipped); `--dry-run-actions` records what would be done and does nothing; a
//! planned flip with `restore` reads the gate's state first and puts it back at
//! [`Actions::finish`]. Feature gates are switched through a [`GateTarget`] that an
//! integration provides; webhooks are sent here, on the core's HTTP client.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use tokio::task::JoinSet;

use crate::action::{Action, Record, Status, Webhook};
use crate::client::{Client, ClientConfig, ClientShared, Request};
use crate::run::{EventKind, TimelineEvent};
use crate::sink::TimelineHandle;

/// What a [`GateTarget`] call returns: a short detail on success, the error otherwise.
pub type GateFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// A system that switches feature gates (provided by an integration, e.g. Statsig's Console
/// API). Errors are whole sentences without secrets; retries are the target's own.
pub trait GateTarget: Send + Sync {
    /// The integration's name (`statsig`): how `actions:` entries name it.
    fn name(&self) -> &str;
    /// Switch `gate` on or off, leaving `reason` where the system keeps one.
    fn set_gate(&self, gate: &str, enable: bool, reason: &str) -> GateFuture<String>;
    /// Whether `gate` is on now (for `restore`).
    fn gate_enabled(&self, gate: &str) -> GateFuture<bool>;
}

/// Webhook delivery: attempts and the first backoff (doubled each time, with jitter).
const WEBHOOK_ATTEMPTS: u32 = 3;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(500);

/// A cloneable handle to the run's actions.
#[derive(Clone)]
pub struct Actions {
    inner: Arc<Inner>,
}

struct Inner {
    run_id: String,
    dry_run: bool,
    targets: Vec<Arc<dyn GateTarget>>,
    /// Targets that are configured but off (their start-up check failed), and why.
    unavailable: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
    http: Option<Arc<ClientShared>>,
    created: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    timeline: Option<TimelineHandle>,
    attached: bool,
    /// Events after the run's timeline was handed over ([`Actions::detach`]).
    late: Vec<TimelineEvent>,
    records: Vec<Record>,
    /// Gates a guard already asked to switch: `(target, gate)`.
    guarded: BTreeSet<(String, String)>,
    /// Actions under way, by id: what to record if they never finish.
    pending: BTreeMap<u64, Record>,
    next_id: u64,
    tasks: JoinSet<()>,
    /// Gates to put back at the end: target, gate, and the state to restore (a task that
    /// reads it first fills it in).
    restores: Vec<Restore>,
}

/// A gate to put back at the end: its target, its id, and the state read before the flip
/// (filled in by the flip's task; `None` while it has not run).
struct Restore {
    target: Arc<dyn GateTarget>,
    gate: String,
    before: Arc<Mutex<Option<bool>>>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions")
            .field("run_id", &self.inner.run_id)
            .field("dry_run", &self.inner.dry_run)
            .finish_non_exhaustive()
    }
}

/// A builder for [`Actions`].
pub struct Builder {
    run_id: String,
    dry_run: bool,
    targets: Vec<Arc<dyn GateTarget>>,
    unavailable: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
}

impl Builder {
    /// Add a gate target.
    pub fn target(mut self, t: Arc<dyn GateTarget>) -> Self {
        self.targets.push(t);
        self
    }

    /// A target that is configured but off for this run, and why (its actions fail with it).
    pub fn unavailable(mut self, name: &str, why: impl Into<String>) -> Self {
        self.unavailable.insert(name.to_owned(), why.into());
        self
    }

    /// Links sent in webhook bodies (`dashboard`, `report`).
    pub fn link(mut self, name: &str, url: impl Into<String>) -> Self {
        self.links.insert(name.to_owned(), url.into());
        self
    }

    /// The handle.
    pub fn build(self) -> Actions {
        let http = ClientShared::new(ClientConfig {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_redirects: 0,
            cookies: false,
            ..ClientConfig::default()
        })
        .ok();
        Actions {
            inner: Arc::new(Inner {
                run_id: self.run_id,
                dry_run: self.dry_run,
                targets: self.targets,
                unavailable: self.unavailable,
                links: self.links,
                http,
                created: Instant::now(),
                state: Mutex::new(State::default()),
            }),
        }
    }
}

/// Why an action was asked for, for its record and its dedup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Guard,
    Planned { restore: bool },
}

impl Actions {
    /// Actions of run `run_id`; with `dry_run`, recorded and never done.
    pub fn builder(run_id: impl Into<String>, dry_run: bool) -> Builder {
        Builder {
            run_id: run_id.into(),
            dry_run,
            targets: Vec::new(),
            unavailable: BTreeMap::new(),
            links: BTreeMap::new(),
        }
    }

    /// Whether actions are only recorded.
    pub fn dry_run(&self) -> bool {
        self.inner.dry_run
    }

    /// The target an action goes to: the named one, or the only one; the error says why none.
    fn target_of(&self, name: Option<&str>) -> Result<Arc<dyn GateTarget>, String> {
        let i = &self.inner;
        let found = match name {
            Some(n) => i.targets.iter().find(|t| t.name() == n).cloned(),
            None if i.targets.len() == 1 => i.targets.first().cloned(),
            None if i.targets.len() > 1 => {
                let names: Vec<&str> = i.targets.iter().map(|t| t.name()).collect();
                return Err(format!(
                    "several integrations switch gates ({}): name one in `actions:`",
                    names.join(", ")
                ));
            }
            None => None,
        };
        if let Some(t) = found {
            return Ok(t);
        }
        let off = match name {
            Some(n) => i.unavailable.get(n).map(|why| format!("{n} is off: {why}")),
            None => i
                .unavailable
                .iter()
                .next()
                .map(|(n, why)| format!("{n} is off: {why}")),
        };
        Err(off.unwrap_or_else(|| match name {
            Some(n) => format!("no integration named `{n}` switches gates in this run"),
            None => "no integration that switches feature gates is on (Statsig: set STATSIG_CONSOLE_API_KEY)".into(),
        }))
    }

    /// Hand over the run's timeline: records go there from now on.
    pub fn attach(&self, timeline: TimelineHandle) {
        let mut s = self.lock();
        s.timeline = Some(timeline);
        s.attached = true;
    }

    /// The run's timeline is being taken for the reports: later records are kept for
    /// [`Actions::finish`] instead.
    pub fn detach(&self) {
        self.lock().attached = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn elapsed(&self) -> Duration {
        let s = self.lock();
        s.timeline
            .as_ref()
            .map_or_else(|| self.inner.created.elapsed(), TimelineHandle::elapsed)
    }

    /// A guard asks for `action` because of `cause` (e.g. `threshold `p95 < 300ms` failed:
    /// observed 312 ms`). A gate is switched once per run; returns at once.
    pub fn guard(&self, cause: &str, action: &Action) {
        self.start(cause, action, Kind::Guard);
    }

    /// The plan asks for `action` (a flip at its time); with `restore`, the gate's state is
    /// read first and put back at [`Actions::finish`]. Returns at once.
    pub fn planned(&self, cause: &str, action: &Action, restore: bool) {
        self.start(cause, action, Kind::Planned { restore });
    }

    fn start(&self, cause: &str, action: &Action, kind: Kind) {
        let elapsed = self.elapsed();
        let reason = format!("loadlens run {}: {cause}", self.inner.run_id);
        let mut record = Record {
            elapsed_s: elapsed.as_secs_f64(),
            cause: cause.to_owned(),
            action: action.to_string(),
            status: Status::Failed,
            detail: String::new(),
            reason: reason.clone(),
        };
        let target = match action {
            Action::Gate { target, .. } => match self.target_of(target.as_deref()) {
                Ok(t) => {
                    record.action = match action {
                        Action::Gate { gate, enable, .. } => Action::Gate {
                            target: Some(t.name().to_owned()),
                            gate: gate.clone(),
                            enable: *enable,
                        }
                        .to_string(),
                        Action::Webhook(_) => record.action,
                    };
                    Some(t)
                }
                Err(e) => {
                    record.detail = e;
                    self.record(record);
                    return;
                }
            },
            Action::Webhook(_) => None,
        };
        if let (Kind::Guard, Action::Gate { gate, .. }, Some(t)) = (kind, action, &target) {
            let first = self
                .lock()
                .guarded
                .insert((t.name().to_owned(), gate.clone()));
            if !first {
                record.status = Status::Skipped;
                record.detail = "an earlier guard of this run already switched it".into();
                self.record(record);
                return;
            }
        }
        if self.inner.dry_run {
            record.status = Status::DryRun;
            self.record(record);
            return;
        }
        let this = self.clone();
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        s.pending.insert(id, record.clone());
        let restore_slot = match (kind, action, &target) {
            (Kind::Planned { restore: true }, Action::Gate { gate, .. }, Some(t)) => {
                let slot = Arc::new(Mutex::new(None));
                s.restores.push(Restore {
                    target: t.clone(),
                    gate: gate.clone(),
                    before: slot.clone(),
                });
                Some(slot)
            }
            _ => None,
        };
        let action = action.clone();
        let cause = cause.to_owned();
        s.tasks.spawn(async move {
            let result = match (&action, target) {
                (Action::Gate { gate, enable, .. }, Some(t)) => {
                    // Unknown state: restoring means undoing this flip.
                    let before = match &restore_slot {
                        Some(_) => t.gate_enabled(gate).await.unwrap_or(!enable),
                        None => !enable,
                    };
                    let done = t.set_gate(gate, *enable, &reason).await;
                    // Only a flip that was made is put back.
                    if let (Some(slot), Ok(_)) = (restore_slot, &done) {
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(before);
                    }
                    done
                }
                (Action::Webhook(w), _) => this.send_webhook(w, &cause).await,
                (Action::Gate { .. }, None) => Err("no target".into()),
            };
            let mut record = record;
            match result {
                Ok(d) => {
                    record.status = Status::Done;
                    record.detail = d;
                }
                Err(e) => record.detail = e,
            }
            this.lock().pending.remove(&id);
            this.record(record);
        });
    }

    fn record(&self, r: Record) {
        // Shown live (the terminal view's log rows, stderr when headless): a guard acting on
        // an outside system is worth a look during the run, not only in the summary.
        tracing::warn!("Guard action: {}", r.line());
        let mut s = self.lock();
        let kind = EventKind::Action;
        let message = r.line();
        match (&s.timeline, s.attached) {
            (Some(t), true) => t.push(kind, message),
            (t, _) => {
                let elapsed = t
                    .as_ref()
                    .map_or_else(|| self.inner.created.elapsed(), TimelineHandle::elapsed);
                s.late.push(TimelineEvent::now(elapsed, kind, message));
            }
        }
        s.records.push(r);
    }

    /// POST the webhook's JSON body, retried within bounds (transport errors, 408, 429, 5xx).
    async fn send_webhook(&self, w: &Webhook, cause: &str) -> Result<String, String> {
        let shown = crate::encoding::redact_url(&w.url);
        let uri: http::Uri = w
            .url
            .parse()
            .map_err(|_| format!("invalid webhook URL {shown}"))?;
        let shared = self
            .inner
            .http
            .clone()
            .ok_or("no HTTP client for webhooks")?;
        let mut req = Request::new(http::Method::POST, uri);
        req.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, var) in &w.headers_from_env {
            let value = std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    format!("webhook header {name}: environment variable {var} is not set")
                })?;
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("webhook header `{name}` is not a header name"))?;
            let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
                format!("webhook header {name}: the value of {var} cannot be sent in a header")
            })?;
            value.set_sensitive(true);
            req.headers.insert(name, value);
        }
        let body = serde_json::json!({
            "run_id": self.inner.run_id,
            "cause": cause,
            "breach": cause,
            "at": crate::run::rfc3339(SystemTime::now()),
            "links": self.inner.links,
            "source": "loadlens",
        });
        req.body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let mut client = Client::new(shared);
        let mut last = String::new();
        for attempt in 0..WEBHOOK_ATTEMPTS {
            if attempt > 0 {
                let base = WEBHOOK_BACKOFF * 2u32.pow(attempt - 1);
                tokio::time::sleep(base.mul_f64(0.5 + fastrand::f64())).await;
            }
            let out = client.send(&req).await;
            match out.result {
                Ok(r) if r.status.is_success() => {
                    return Ok(format!("POST {shown}: {}", r.status.as_u16()))
                }
                Ok(r) => {
                    let s = r.status.as_u16();
                    last = format!("POST {shown}: answered {s}");
                    if !(s == 408 || s == 429 || s >= 500) {
                        break;
                    }
                }
                Err(f) => last = format!("POST {shown}: {}", f.message),
            }
        }
        Err(last)
    }

    /// End of the run: put restored gates back, then wait for every action under way, at most
    /// `limit`. Returns every record (those that did not finish in time as failed) and the
    /// timeline events recorded after [`Actions::detach`].
    pub async fn finish(&self, limit: Duration) -> (Vec<Record>, Vec<TimelineEvent>) {
        let deadline = tokio::time::Instant::now() + limit;
        // The flips first: a restore must not race the flip it undoes.
        self.wait(deadline).await;
        let restores = std::mem::take(&mut self.lock().restores);
        for Restore {
            target: t,
            gate,
            before,
        } in restores
        {
            let Some(before) = *before.lock().unwrap_or_else(|p| p.into_inner()) else {
                continue;
            };
            let action = Action::Gate {
                target: Some(t.name().to_owned()),
                gate,
                enable: before,
            };
            self.start(
                "restore at the end of the run",
                &action,
                Kind::Planned { restore: false },
            );
        }
        self.wait(deadline).await;
        let mut s = self.lock();
        s.tasks.abort_all();
        let pending = std::mem::take(&mut s.pending);
        drop(s);
        for (_, mut r) in pending {
            r.detail = format!(
                "did not finish within {} after the run",
                humantime::format_duration(limit)
            );
            self.record(r);
        }
        let mut s = self.lock();
        let mut records = s.records.clone();
        records.sort_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s));
        (records, std::mem::take(&mut s.late))
    }

    async fn wait(&self, deadline: tokio::time::Instant) {
        loop {
            let mut tasks = std::mem::take(&mut self.lock().tasks);
            if tasks.is_empty() {
                return;
            }
            let timed_out = tokio::time::timeout_at(deadline, async {
                while tasks.join_next().await.is_some() {}
            })
            .await
            .is_err();
            // Tasks spawned meanwhile are in the state's new set: the next round waits for them.
            if timed_out {
                tasks.abort_all();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
