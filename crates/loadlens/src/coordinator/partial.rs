//! A lost worker's part of the merged result: what it streamed up to its last interval report,
//! as a result of its own, so that `report::merge` adds it like any other worker's.
//!
//! A worker that dies sends no final result, but every second it sent its interval's counters
//! and HDR histograms, which the board added up ([`Streamed`]). Those are exact up to its last
//! report; what it did after (at most one interval, plus the requests in flight when it died)
//! is missing, and its row and the timeline say the figures are partial.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loadlens_core::breakdown;
use loadlens_core::executor::{RunOutput, ScenarioRun};
use loadlens_core::health::GeneratorHealth;
use loadlens_core::load::{LoadSettings, Segment};
use loadlens_core::report::json::ResultDoc;
use loadlens_core::report::{ScenarioOutput, Summary};
use loadlens_core::run::{RunInfo, StopReason};
use loadlens_core::stats::StatsSet;

use super::server::Streamed;

/// What the merged result needs to know of the run to write a lost worker's part.
pub struct Run<'a> {
    /// The run's identity.
    pub info: &'a RunInfo,
    /// The whole run's load.
    pub load: &'a LoadSettings,
    /// The target, as reports show it.
    pub host: Option<String>,
    /// `(method, name)` pairs in the coordinator's order, which the streamed stats follow.
    pub names: &'a [(String, String)],
    /// When the load started (the common start).
    pub started_at: SystemTime,
    /// The scenario hash the workers' results carry, so that the merge takes this one too.
    pub scenario_hash: Option<String>,
    /// The named scenarios of the run (empty: one unnamed profile).
    pub scenarios: &'a [ScenarioRun],
}

/// The result of worker `index` of `workers`, lost for `why`, from what it `streamed` and
/// its `generator` health as its reports showed it.
pub fn lost_result(
    run: &Run<'_>,
    index: u64,
    workers: u64,
    streamed: Streamed,
    generator: Option<GeneratorHealth>,
    why: &str,
) -> ResultDoc {
    let segment = Segment::of_worker(index, workers).unwrap_or(Segment::WHOLE);
    let load = LoadSettings {
        segment,
        ..run.load.clone()
    };
    // Every named scenario of the run, with what the worker streamed of it (so that the merge
    // keeps the scenario sections whichever result comes first).
    let mut streamed_scenarios = streamed.scenarios;
    let mut scenarios: Vec<ScenarioOutput> = run
        .scenarios
        .iter()
        .map(|s| ScenarioOutput {
            name: s.name.clone(),
            start_time: s.start_time,
            load: LoadSettings {
                segment,
                ..s.load.clone()
            },
            stats: take_named(&mut streamed_scenarios, &s.name, run.names.len()),
            arrivals: None,
        })
        .collect();
    // One scenario picked with `--scenario` is the whole run.
    scenarios.extend(
        streamed_scenarios
            .into_iter()
            .map(|(name, stats)| ScenarioOutput {
                name,
                start_time: Duration::ZERO,
                load: load.clone(),
                stats,
                arrivals: None,
            }),
    );
    let mut out = RunOutput {
        started_at: run.started_at,
        ended_at: run.started_at + streamed.elapsed,
        duration: streamed.elapsed,
        stop_reason: StopReason::Aborted(format!(
            "lost: {why}; partial, its requests up to its last report at {:.1} s",
            streamed.elapsed.as_secs_f64()
        )),
        killed: true,
        names: run.names.to_vec(),
        stats: streamed.stats,
        series: streamed.series,
        timeline: Vec::new(),
        sinks: Vec::new(),
        dropped_samples: 0,
        dropped_iterations: streamed.dropped.unwrap_or(0),
        arrivals: None,
        // What it measured of itself in its reports (unknown without any: taken as healthy).
        generator: generator.unwrap_or(GeneratorHealth {
            healthy: true,
            ..GeneratorHealth::default()
        }),
        breaches: Vec::new(),
        scenarios,
        failures: Vec::new(),
        name_tags: Default::default(),
        segments: Vec::new(),
        // Its joins up to its last report, as it streamed them.
        breakdown: match streamed.breakdown.as_ref() {
            Some(h) => match breakdown::merge::merge([h], run.names) {
                Ok(b) => Some(Arc::new(b)),
                Err(e) => {
                    tell!(
                        "warning: worker {}/{workers}'s streamed breakdown is left out: {e}",
                        index + 1
                    );
                    None
                }
            },
            None => None,
        },
    };
    let mut summary = Summary::new(run.info.clone(), load, run.host.clone(), &mut out);
    summary.outcome.scenario_hash = run.scenario_hash.clone();
    ResultDoc::of(&summary)
}

/// Take scenario `name`'s figures out of `from` (empty ones when it streamed none).
fn take_named(from: &mut Vec<(String, StatsSet)>, name: &str, names: usize) -> StatsSet {
    match from.iter().position(|(n, _)| n == name) {
        Some(i) => {
            let mut s = from.remove(i).1;
            s.requests.resize_with(names, Default::default);
            s
        }
        None => StatsSet::new(names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadlens_core::plan::Plan;
    use loadlens_core::stats::RequestStats;
    use std::sync::Arc;

    fn set(names: usize, i: usize, count: u64) -> StatsSet {
        let mut s = StatsSet::new(names);
        s.requests[i] = RequestStats {
            count,
            ..RequestStats::default()
        };
        s
    }

    #[test]
    fn a_lost_workers_part_keeps_its_per_scenario_figures_every_named_scenario_and_its_breakdown() {
        let names = vec![
            ("GET".to_owned(), "browse".to_owned()),
            ("GET".to_owned(), "buy".to_owned()),
        ];
        let file = "host: http://127.0.0.1:9\nuser_types: [{ name: u, tasks: [{ request: { path: / } }] }]\n";
        let s = loadlens_core::scenario::Scenario::from_str_named(file, "s.yaml").unwrap();
        let plan = Arc::new(Plan::compile(&s, &Default::default()).unwrap());
        let scenario = |name: &str| ScenarioRun {
            name: name.into(),
            plan: plan.clone(),
            load: LoadSettings::default(),
            start_time: Duration::from_secs(1),
        };
        let scenarios = [scenario("browse"), scenario("buy"), scenario("idle")];
        let info = RunInfo {
            id: "r".into(),
            scenario: "s".into(),
            tags: Default::default(),
        };
        let load = LoadSettings::default();
        let run = Run {
            info: &info,
            load: &load,
            host: None,
            names: &names,
            started_at: SystemTime::UNIX_EPOCH,
            scenario_hash: None,
            scenarios: &scenarios,
        };
        let mut streamed = Streamed::new(2);
        streamed.stats.merge(&set(2, 0, 7));
        streamed.stats.merge(&set(2, 1, 3));
        streamed.scenarios = vec![
            ("buy".into(), set(2, 1, 3)),
            ("browse".into(), set(2, 0, 7)),
        ];
        streamed.elapsed = Duration::from_secs(2);
        // Its breakdown as it last streamed it: 7 requests joined, their total 20 ms each.
        let mut h = loadlens_core::stats::LatencyHistogram::new();
        for _ in 0..7 {
            h.record(Duration::from_millis(20));
        }
        streamed.breakdown = Some(breakdown::merge::Histograms {
            coverage: breakdown::Coverage {
                sampled: 9,
                joined: 7,
                ..Default::default()
            },
            requests: vec![breakdown::merge::NameHistograms {
                method: "GET".into(),
                name: "browse".into(),
                sampled: 9,
                joined: 7,
                total: h.to_base64(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let doc = lost_result(&run, 1, 2, streamed, None, "gone");
        // Its joins up to its last report are in its part, in the form that merges.
        let b = doc.breakdown.as_ref().expect("the streamed breakdown");
        assert_eq!((b.coverage.sampled, b.coverage.joined), (9, 7));
        assert_eq!(b.requests[0].total.count, 7);
        assert!(
            (b.requests[0].total.p50 - 20.0).abs() < 0.1,
            "{:?}",
            b.requests[0].total
        );
        assert!(b.histograms.is_some());
        let got: Vec<(&str, u64)> = doc
            .scenarios
            .iter()
            .map(|s| (s.name.as_str(), s.aggregate.request_count))
            .collect();
        assert_eq!(got, [("browse", 7), ("buy", 3), ("idle", 0)]);
    }
}
