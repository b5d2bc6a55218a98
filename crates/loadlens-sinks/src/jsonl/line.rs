//! The line format: one JSON object per line, described by `schemas/jsonl.schema.json`.
//!
//! Every line has `ts` (RFC 3339 UTC, milliseconds), `run_id`, `tags` (the run's tags) and
//! `event`; the event's own fields sit beside them at the top level, so that a log pipeline
//! (Loki, ELK) indexes them without unpacking. Units are in the field names (`_ms`, `_s`,
//! `_bytes`, `_pct`). Pure functions of the data, tested without a file.

use std::collections::BTreeMap;
use std::time::SystemTime;

use loadlens_core::executor::describe;
use loadlens_core::report::{Summary, Verdict};
use loadlens_core::run::{rfc3339, EventKind, RunInfo, TimelineEvent};
use loadlens_core::stats::{HealthSample, Snapshot};
use serde_json::{json, Value};

/// Version of the line format, in the `run_start` line; a change that removes or renames a
/// field bumps it.
pub const FORMAT_VERSION: u32 = 1;

/// What every line of a run carries.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// The run id.
    pub run_id: String,
    /// The run's tags.
    pub tags: BTreeMap<String, String>,
}

impl Header {
    /// The header of `run`'s lines.
    pub fn of(run: &RunInfo) -> Self {
        Header {
            run_id: run.id.clone(),
            tags: run.tags.clone(),
        }
    }

    /// One line (without its newline) made at `ts` (RFC 3339): the common fields first, in a
    /// fixed order, then `fields` (an object).
    pub fn line(&self, ts: &str, event: &str, fields: &Value) -> String {
        // Written by hand rather than as one map: serde_json's maps sort their keys, and a
        // reader of the raw file wants `ts` and `event` first.
        let mut out = format!(
            "{{\"ts\":{},\"run_id\":{},\"tags\":{},\"event\":{}",
            Value::from(ts),
            Value::from(self.run_id.as_str()),
            json!(self.tags),
            Value::from(event),
        );
        if fields.as_object().is_some_and(|f| !f.is_empty()) {
            let rest = fields.to_string();
            out.push(',');
            out.push_str(&rest[1..rest.len() - 1]);
        }
        out.push('}');
        out
    }
}

/// [`rfc3339`] of `at`: the `ts` of a line made from a snapshot or at the time of writing.
pub fn ts(at: SystemTime) -> String {
    rfc3339(at)
}

/// The `run_start` line's fields.
pub fn run_start(run: &RunInfo, config: &Value) -> Value {
    json!({
        "format_version": FORMAT_VERSION,
        "scenario": run.scenario,
        "config": if config.is_object() { config.clone() } else { json!({}) },
    })
}

/// The event name and fields of a timeline event, or `None` for those the sink writes from
/// its own hooks (`run_start` when the run starts, `run_end` with the verdict).
///
/// A guard that acts says so in its event's message: the threshold guard as a
/// `threshold_breached` event `aborting the run: …`, a Datadog monitor as a `monitor_state`
/// event ending `— aborting the run` or `— the run will fail`. Those become `guard_action`.
pub fn timeline(e: &TimelineEvent) -> Option<(&'static str, Value)> {
    let mut fields = json!({ "elapsed_s": e.elapsed_s, "message": e.message });
    let mut guard = |guard: &str, action: &str| {
        fields["guard"] = guard.into();
        fields["action"] = action.into();
        "guard_action"
    };
    let event = match e.kind {
        EventKind::RunStarted | EventKind::RunFinished => return None,
        EventKind::UsersSpawned => "spawning_complete",
        EventKind::StageChanged => "stage_change",
        EventKind::ThresholdBreached if e.message.starts_with("aborting the run") => {
            guard("threshold", "abort")
        }
        EventKind::ThresholdBreached => "threshold_breach",
        EventKind::MonitorState if e.message.ends_with("— aborting the run") => {
            guard("monitor", "abort")
        }
        EventKind::MonitorState if e.message.ends_with("— the run will fail") => {
            guard("monitor", "fail")
        }
        EventKind::MonitorState => "monitor_state",
        EventKind::StopRequested => "stop_requested",
        EventKind::ConfigChanged => "config_change",
        // A guard action's outcome or a planned flip: a note (its message says what and how it
        // went), until the line format gets an event of its own.
        EventKind::Note | EventKind::Action => "note",
    };
    Some((event, fields))
}

/// The `interval` lines of a snapshot: one per request name with requests in the interval,
/// from the interval's HDR histograms.
pub fn intervals(s: &Snapshot, names: &[(String, String)]) -> Vec<Value> {
    let span = s.point.span_s;
    s.interval
        .requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.count > 0)
        .map(|(i, r)| {
            let (method, name) = names.get(i).cloned().unwrap_or_default();
            let h = &r.latency;
            json!({
                "elapsed_s": s.elapsed.as_secs_f64(),
                "interval_s": span,
                "method": method,
                "name": name,
                "requests": r.count,
                "failures": r.failures,
                "rps": if span > 0.0 { r.count as f64 / span } else { 0.0 },
                "p50_ms": h.quantile_ms(0.50),
                "p90_ms": h.quantile_ms(0.90),
                "p95_ms": h.quantile_ms(0.95),
                "p99_ms": h.quantile_ms(0.99),
                "max_ms": h.max_ms(),
                "bytes_sent": r.bytes_sent,
                "bytes_received": r.bytes_received,
            })
        })
        .collect()
}

/// The `health` line of a snapshot: the generator's own resource use over the interval; a
/// figure the platform does not give is `null`.
pub fn health(s: &Snapshot) -> Value {
    let HealthSample {
        process_cpu_pct,
        machine_cpu_pct,
        rss_bytes,
        open_connections,
        net_sent_bytes_per_s,
        net_received_bytes_per_s,
        sched_delay_ms,
    } = &s.health;
    json!({
        "elapsed_s": s.elapsed.as_secs_f64(),
        "interval_s": s.point.span_s,
        "users": s.users,
        "process_cpu_pct": process_cpu_pct,
        "machine_cpu_pct": machine_cpu_pct,
        "rss_bytes": rss_bytes,
        "open_connections": open_connections,
        "net_sent_bytes_per_s": net_sent_bytes_per_s,
        "net_received_bytes_per_s": net_received_bytes_per_s,
        "sched_delay_ms": sched_delay_ms,
    })
}

/// The `run_end` line's fields: the verdict, why the run stopped, its totals, and the lines
/// this sink dropped before it.
pub fn run_end(s: &Summary, dropped_lines: u64) -> Value {
    let total = s.stats.aggregate();
    let verdict = match s.verdict() {
        Verdict::Passed => "passed",
        Verdict::Failed => "failed",
        Verdict::Aborted => "aborted",
        Verdict::Interrupted => "interrupted",
    };
    let failed_thresholds: Vec<&str> = s
        .outcome
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| t.expression.as_str())
        .collect();
    json!({
        "verdict": verdict,
        "reason": describe(&s.stop_reason),
        "killed": s.killed,
        "duration_s": s.duration.as_secs_f64(),
        "requests": total.count,
        "failures": total.failures,
        "failed_thresholds": failed_thresholds,
        "failed_guards": s.outcome.failures,
        "dropped_lines": dropped_lines,
    })
}
