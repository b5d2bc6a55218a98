//! Monitor guards: one task polls `GET /api/v1/monitor/{id}` for every watched monitor at the
//! configured interval (never per VU: the seed scripts' pitfall). Each change of
//! `overall_state` — and the state first seen — goes on the run's timeline and out as a Datadog
//! event. The first time a monitor is seen in `Alert`, its action runs: `mark` does nothing
//! more, `abort` stops the run now ([`Controls::stop`], exit code 3), `fail` lets it go on and
//! fails its verdict ([`Controls::fail`], exit code 1). A monitor already in `Alert` when the
//! run starts triggers its action at once.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadlens_core::action::Action;
use loadlens_core::client::Client;
use loadlens_core::executor::{Controls, StopReason};
use loadlens_core::run::EventKind;
use loadlens_core::sink::TimelineHandle;
use tokio_util::sync::CancellationToken;

use super::api::{Api, ApiError, Call};
use super::config::{MonitorAction, MonitorSpec};
use super::encode::{self, Event};
use super::export::{Job, Queue, Stats};

/// What a poll tells about one monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorStatus {
    /// Its name in Datadog.
    pub name: String,
    /// `overall_state`: `OK`, `Alert`, `Warn`, `No Data`, `Unknown`, `Ignored`, `Skipped`.
    pub state: String,
}

/// Fetch one monitor's status once.
pub async fn fetch(api: &Api, client: &mut Client, id: u64) -> Result<MonitorStatus, ApiError> {
    let path = format!("/api/v1/monitor/{id}");
    let answer = api.once(client, &Call::get(&path, true)).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|e| ApiError::Transport {
            what: format!("GET {path}"),
            message: format!("the answer is not JSON: {e}"),
        })?;
    let state = v
        .get("overall_state")
        .and_then(|s| s.as_str())
        .ok_or_else(|| ApiError::Transport {
            what: format!("GET {path}"),
            message: "the answer has no overall_state".into(),
        })?;
    Ok(MonitorStatus {
        name: v
            .get("name")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_owned(),
        state: state.to_owned(),
    })
}

/// Everything the polling task needs.
pub struct Poller {
    /// The API.
    pub api: Api,
    /// Monitors and their actions.
    pub monitors: Vec<MonitorSpec>,
    /// Poll interval.
    pub interval: Duration,
    /// To stop or fail the run.
    pub controls: Controls,
    /// To record transitions.
    pub timeline: TimelineHandle,
    /// Where transition events go (`None`: events are off).
    pub events: Option<Queue>,
    /// Tags and aggregation key of events.
    pub event_tags: Vec<String>,
    /// Run id.
    pub run_id: String,
    /// Shared counters (poll errors are reported there).
    pub stats: Arc<Stats>,
}

impl Poller {
    /// Poll until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut client = self.api.client();
        let mut last: Vec<Option<String>> = vec![None; self.monitors.len()];
        let mut acted = vec![false; self.monitors.len()];
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            next += self.interval;
            for (i, m) in self.monitors.iter().enumerate() {
                let status = tokio::select! {
                    _ = cancel.cancelled() => return,
                    s = fetch(&self.api, &mut client, m.id) => s,
                };
                match status {
                    Ok(s) => {
                        if last[i].as_deref() != Some(s.state.as_str()) {
                            self.transition(m, last[i].as_deref(), &s, &mut acted[i]);
                            last[i] = Some(s.state);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(sink = "datadog", monitor = m.id, error = %e, "Monitor poll failed.");
                        self.stats.error(&e);
                        if let ApiError::Status {
                            status: 429,
                            reset: Some(r),
                            ..
                        } = e
                        {
                            next = next.max(tokio::time::Instant::now() + r);
                        }
                    }
                }
            }
        }
    }

    fn transition(&self, m: &MonitorSpec, from: Option<&str>, s: &MonitorStatus, acted: &mut bool) {
        let who = if s.name.is_empty() {
            format!("Datadog monitor {}", m.id)
        } else {
            format!("Datadog monitor {} “{}”", m.id, s.name)
        };
        let mut message = match from {
            None => format!("{who} is {}", s.state),
            Some(f) => format!("{who}: {f} → {}", s.state),
        };
        let alert = s.state == "Alert";
        if alert && !*acted {
            *acted = true;
            let at = self.timeline.elapsed().as_secs_f64();
            match &m.action {
                MonitorAction::Mark => {}
                MonitorAction::Abort => {
                    message.push_str(" — aborting the run");
                    self.controls.stop(StopReason::Aborted(format!(
                        "{who} went to Alert at {at:.1} s"
                    )));
                }
                MonitorAction::Fail => {
                    message.push_str(" — the run will fail");
                    self.controls
                        .fail(format!("{who} went to Alert at {at:.1} s"));
                }
                MonitorAction::DisableGate(gate) => {
                    let _ = write!(message, " — disabling gate {gate}");
                    let action = Action::Gate {
                        target: None,
                        gate: gate.clone(),
                        enable: false,
                    };
                    let cause = format!("{who} went to Alert at {at:.1} s");
                    if !self.controls.act(&cause, &action) {
                        tracing::warn!(
                            sink = "datadog",
                            monitor = m.id,
                            "No guard actions for this run: the gate is not disabled."
                        );
                    }
                }
            }
        }
        self.timeline.push(EventKind::MonitorState, message.clone());
        if let Some(q) = &self.events {
            let alert_type = match s.state.as_str() {
                "Alert" => "error",
                "Warn" => "warning",
                "OK" => "success",
                _ => "info",
            };
            let e = Event {
                title: format!("loadlens run {}: {}", self.run_id, short(&message)),
                text: message,
                alert_type,
                date: unix_now(),
            };
            q.offer(Job::Event(encode::event(
                &e,
                &self.event_tags,
                &self.run_id,
            )));
        }
    }
}

/// At most 100 characters, for titles.
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_owned()
    } else {
        s.chars().take(99).chain(std::iter::once('…')).collect()
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
