//! What the coordinator and its workers say to each other over HTTP/1.1, and the shared token.
//!
//! - `POST /v1/join` with a [`Hello`]: `401` without the right token, `409` with a message when
//!   the worker runs another scenario or loadlens version, another split, a segment already
//!   taken, or comes after the start. Otherwise `200` and a long-lived response of JSON lines,
//!   one [`Command`] each: `waiting` as workers join, `start` once all have, `ping` every
//!   [`PING_EVERY`], `load` when the coordinator's dashboard changes the load, `stop` when the
//!   run must end (a global threshold, too few workers left).
//!   The response ending without a `stop` means the coordinator is gone.
//! - `POST /v1/report` with an [`IntervalReport`] per snapshot: one interval's counters and
//!   HDR histograms (deltas, not totals), which the coordinator adds up for the live merged
//!   view and the global thresholds; and, when the worker's trace receiver's breakdown
//!   changed, the whole breakdown so far in the form that merges (cumulative: the coordinator
//!   keeps each worker's latest).
//! - `POST /v1/result` with a [`FinalResult`]: the worker's JSON result, histograms included,
//!   which the coordinator merges exactly as `loadlens merge` does.
//! - `GET /v1/status`: the run id, the phase and the workers, as JSON (for people and probes;
//!   a worker started without `--run-id` takes the run id from it).
//!
//! Every request carries `Authorization: Bearer TOKEN` when `LOADLENS_COORDINATOR_TOKEN` is set.

use std::time::Duration;

use loadlens_core::breakdown::merge::Histograms;
use loadlens_core::report::histograms::StatsRecord;
use loadlens_core::report::json::ResultDoc;
use loadlens_core::stats::HealthSample;

/// The environment variable holding the shared token of a coordinated run.
pub const TOKEN_ENV: &str = "LOADLENS_COORDINATOR_TOKEN";

/// How often the coordinator writes a `ping` line on each worker's command stream.
pub const PING_EVERY: Duration = Duration::from_millis(500);

/// A worker that has not been heard from (no line written to it succeeds, no report arrives)
/// for this long is lost; a coordinator whose command stream is silent for this long is gone.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// A worker's introduction.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hello {
    /// Its loadlens version.
    pub version: String,
    /// `run.scenario_hash` of what it runs, without its own `--threshold` flags (the
    /// coordinator owns the thresholds).
    pub scenario_hash: String,
    /// The segment it runs (`2/3`).
    pub segment: String,
    /// Its run id.
    pub run_id: String,
}

/// One line of the command stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Joined; `joined` of `workers` are in.
    Waiting {
        /// Workers joined so far.
        joined: u64,
        /// Workers expected.
        workers: u64,
    },
    /// Start the load in `in_ms` milliseconds from receipt (relative, so that the workers'
    /// clocks need not agree).
    Start {
        /// Delay before the start.
        in_ms: u64,
        /// The coordinator's run id.
        run_id: String,
    },
    /// Still there.
    Ping,
    /// The load was changed for the rest of the run (the coordinator's web dashboard): the
    /// whole run's user count or arrival rate, of which each worker runs its segment's share.
    Load {
        /// Closed model: the whole run's users.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        users: Option<u64>,
        /// Open model: the whole run's arrivals per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_per_s: Option<f64>,
    },
    /// Stop gracefully now and send the result.
    Stop {
        /// Why (shown in the worker's result).
        reason: String,
    },
}

/// One interval of one worker.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IntervalReport {
    /// The worker's segment (`2/3`).
    pub segment: String,
    /// Counts from 0 per worker, to spot a report lost in between.
    pub seq: u64,
    /// Seconds since the worker's start.
    pub elapsed_s: f64,
    /// Its active users.
    pub users: u64,
    /// Open model: arrivals it dropped so far.
    pub dropped_iterations: Option<u64>,
    /// Per request name, what happened in this interval (names with no request are left out).
    pub requests: Vec<StatsRecord>,
    /// The worker's own resource use over the interval, for `generator_healthy` live.
    #[serde(default)]
    pub health: Option<HealthSample>,
    /// The CPUs the worker may use.
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// Per named scenario, what happened in this interval, per request name (scenarios and
    /// names with no request are left out): for scenario-scoped thresholds live, and a lost
    /// worker's per-scenario figures. Bounded by the requests list: a request is in one
    /// scenario.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioInterval>,
    /// Its trace receiver's breakdown so far (cumulative, in the form that merges), when it
    /// changed since the last report: the coordinator judges the span, service and
    /// trace_coverage thresholds live on the workers' latest ones merged, and keeps a lost
    /// worker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Histograms>,
}

/// One named scenario's part of an [`IntervalReport`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScenarioInterval {
    /// The scenario's name.
    pub name: String,
    /// Per request name, what happened in it in this interval.
    pub requests: Vec<StatsRecord>,
}

/// A worker's final result.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FinalResult {
    /// The worker's segment.
    pub segment: String,
    /// Its result, as its `--json` file has it (its breakdown, when its trace receiver ran,
    /// with the histograms that merge).
    pub result: Box<ResultDoc>,
}

/// Whether the `Authorization` header `given` carries `token` (constant time).
pub fn authorized(token: Option<&str>, given: Option<&[u8]>) -> bool {
    match token {
        None => true,
        Some(t) => {
            let expected = format!("Bearer {t}");
            given.is_some_and(|g| crate::web::constant_time_eq(g, expected.as_bytes()))
        }
    }
}

/// The token from the environment (`None` when unset or empty).
pub fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_one_json_object_per_line() {
        let c = Command::Start {
            in_ms: 1500,
            run_id: "r1".into(),
        };
        let line = serde_json::to_string(&c).unwrap();
        assert_eq!(line, r#"{"type":"start","in_ms":1500,"run_id":"r1"}"#);
        assert_eq!(serde_json::from_str::<Command>(&line).unwrap(), c);
        assert_eq!(
            serde_json::to_string(&Command::Ping).unwrap(),
            r#"{"type":"ping"}"#
        );
    }

    #[test]
    fn the_token_must_match_exactly() {
        assert!(authorized(None, None));
        assert!(authorized(Some("s3"), Some(b"Bearer s3")));
        assert!(!authorized(Some("s3"), Some(b"Bearer s4")));
        assert!(!authorized(Some("s3"), Some(b"s3")));
        assert!(!authorized(Some("s3"), None));
    }
}
