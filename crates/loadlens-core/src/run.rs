//! Run identity and control: the run id and tags present on every request header, event,
//! metric, span, log line and report; the run's timeline of events; and the [`Controls`] that
//! stop, fail or re-target a run, with the [`StopReason`] it ended for. Below the sinks and the
//! executor, which both hold the controls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Who and what this run is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    /// Unique id (`--run-id` / `TEST_RUN_ID`, generated when absent).
    pub id: String,
    /// Scenario name.
    pub scenario: String,
    /// Tags (`env`, `service`, `team`, `git_sha`, user tags).
    pub tags: BTreeMap<String, String>,
}

/// A run id such as `20261122-001502-3fa9c1`: sortable by time, unique enough to never collide.
pub fn generate_run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let stamp =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    // 2026-11-22T00:15:02Z -> 20261122-001502
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let compact = compact.replace('T', "-");
    format!("{compact}-{:06x}", fastrand::u32(..0x0100_0000))
}

/// Kinds of timeline events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The run started.
    RunStarted,
    /// Every user of the profile has been started.
    UsersSpawned,
    /// The run was asked to stop (time up, iterations done, Ctrl-C, a guard).
    StopRequested,
    /// The run ended.
    RunFinished,
    /// A threshold was breached.
    ThresholdBreached,
    /// A monitor changed state.
    MonitorState,
    /// A stage of the load profile began.
    StageChanged,
    /// A feature flag or config changed.
    ConfigChanged,
    /// Anything a sink wants on the timeline.
    Note,
    /// A guard action or a planned flip, with its outcome ([`crate::action::Record`]).
    Action,
}

/// One event on the run's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimelineEvent {
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Wall-clock time (RFC 3339).
    pub at: String,
    /// Kind.
    pub kind: EventKind,
    /// Human-readable description.
    pub message: String,
    /// The feature flag or config this event is about, for the outputs that give it structure
    /// (OpenTelemetry `feature_flag.*` attributes, Datadog tags, the JSON result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<FlagChange>,
}

impl TimelineEvent {
    /// An event now, `elapsed` into the run.
    pub fn now(elapsed: Duration, kind: EventKind, message: impl Into<String>) -> Self {
        TimelineEvent {
            elapsed_s: elapsed.as_secs_f64(),
            at: rfc3339(SystemTime::now()),
            kind,
            message: message.into(),
            flag: None,
        }
    }
}

/// A feature flag or config, its change or its state, as a flag service's audit log or API
/// tells it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlagChange {
    /// The flag service (`statsig`).
    pub provider: String,
    /// The gate's or config's id (OpenTelemetry's `feature_flag.key`).
    pub key: String,
    /// `gate`, `dynamic_config`, or what the service calls the entity.
    pub entity: String,
    /// What happened, in the service's words (`gate_update`, `state at start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Who did it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The value before, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_value: Option<String>,
    /// The value after (or now), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_value: Option<String>,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Why the run stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum StopReason {
    /// The run time elapsed.
    RunTime,
    /// The iteration budget was spent.
    Iterations,
    /// Every user finished on its own.
    UsersFinished,
    /// Ctrl-C (or the stop button): graceful.
    Interrupted,
    /// A guard (threshold, monitor) aborted the run.
    Aborted(String),
    /// A data feeder with `on_exhausted: stop_run` ran out of rows.
    DataExhausted(String),
    /// A coordinated run lost workers below its `--min-workers`: stopped, and failed (the
    /// caller adds the reason to the run's failures).
    WorkersLost(String),
}

/// The load asked for during a run through [`Controls::set_users`] and
/// [`Controls::set_arrival_rate`] (the web dashboard's fields). `None` keeps the load model's
/// own; a value replaces it, stages included, from that moment to the end of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadTarget {
    /// Closed model: users to run (ramped at once; the most recently started stop first).
    pub users: Option<u64>,
    /// Open model: arrivals per second.
    pub rate_per_s: Option<f64>,
}

/// What a guard action request goes to: the run's actions runner (`crate::actions`), set
/// by the executor when the run has one.
type ActionHook = Arc<dyn Fn(&str, &crate::action::Action) + Send + Sync>;

#[derive(Clone, Default)]
struct Hook(Arc<Mutex<Option<ActionHook>>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// Stop handles given to the executor. Clone them to stop the run from elsewhere.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    pub(crate) stop: CancellationToken,
    pub(crate) kill: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    failures: Arc<Mutex<Vec<String>>>,
    /// Latest load asked for; the executor's driver loop wakes on each change.
    pub(crate) load: watch::Sender<LoadTarget>,
    /// Guard actions asked for from outside the core ([`Controls::act`]).
    actions: Hook,
}

impl Controls {
    /// New, not stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop gracefully, for `reason` (the first reason given wins).
    pub fn stop(&self, reason: StopReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            r.get_or_insert(reason);
        }
        self.stop.cancel();
    }

    /// Stop now: in-flight requests are abandoned. Reports are still written.
    pub fn kill(&self) {
        self.stop(StopReason::Interrupted);
        self.kill.cancel();
    }

    /// True once a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// True once killed.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    /// Fail the run without stopping it: the verdict becomes failed, with `reason` shown in the
    /// summary and the JSON result (a guard such as a monitor with the `fail` action).
    pub fn fail(&self, reason: impl Into<String>) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reason.into());
    }

    /// Where [`Controls::act`] requests go (the executor sets it when the run has actions).
    pub fn on_action(&self, f: impl Fn(&str, &crate::action::Action) + Send + Sync + 'static) {
        *self.actions.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(f));
    }

    /// A guard (e.g. a monitor in Alert) asks for `action` because of `cause`; it returns at
    /// once, the action runs apart (once per gate). False when the run takes no actions.
    pub fn act(&self, cause: &str, action: &crate::action::Action) -> bool {
        let hook = self
            .actions
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match hook {
            Some(h) => {
                h(cause, action);
                true
            }
            None => false,
        }
    }

    /// Reasons given to [`Controls::fail`] so far.
    pub fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Change the closed model's user count for the rest of the run (every closed-model
    /// scenario of the run gets `users`). Users are started or stopped on the driver's next step.
    pub fn set_users(&self, users: u64) {
        self.load.send_modify(|t| t.users = Some(users));
    }

    /// Change the open model's arrival rate (per second) for the rest of the run (every
    /// open-model scenario gets `rate`). Negative or non-finite rates are ignored.
    pub fn set_arrival_rate(&self, rate: f64) {
        if rate.is_finite() && rate >= 0.0 {
            self.load.send_modify(|t| t.rate_per_s = Some(rate));
        }
    }

    /// The load asked for so far through [`Controls::set_users`] and
    /// [`Controls::set_arrival_rate`].
    pub fn load_target(&self) -> LoadTarget {
        *self.load.borrow()
    }

    /// Why the run was asked to stop (the first reason given), `None` before any stop.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Human-readable stop reason.
pub fn describe(r: &StopReason) -> String {
    match r {
        StopReason::RunTime => "run time elapsed".into(),
        StopReason::Iterations => "all iterations done".into(),
        StopReason::UsersFinished => "every user finished".into(),
        StopReason::Interrupted => "interrupted".into(),
        StopReason::Aborted(why) => format!("aborted: {why}"),
        StopReason::DataExhausted(feeder) => format!("data feeder `{feeder}` ran out of rows"),
        StopReason::WorkersLost(why) => format!("too few workers: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_time_sortable_and_distinct() {
        let a = generate_run_id();
        let b = generate_run_id();
        assert_eq!(a.len(), "20261122-001502-3fa9c1".len(), "{a}");
        assert_ne!(a, b);
        assert!(a[..8].chars().all(|c| c.is_ascii_digit()));
    }
}
