//! Run identity: the run id and tags present on every request header, event, metric, span,
//! log line and report; and the run's timeline of events.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}

impl TimelineEvent {
    /// An event now, `elapsed` into the run.
    pub fn now(elapsed: Duration, kind: EventKind, message: impl Into<String>) -> Self {
        TimelineEvent {
            elapsed_s: elapsed.as_secs_f64(),
            at: rfc3339(SystemTime::now()),
            kind,
            message: message.into(),
        }
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
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
