//! The thresholds of a coordinated run, checked live on the merged figures once a second, as
//! the executor checks a single run's: the whole run and each request name, each tag (its
//! names' cumulative figures merged), and `generator_healthy` (every worker's own health, from
//! what it measured of itself each interval), each named scenario (the per-scenario split
//! of the workers' interval reports, added up), and the service's spans (`p95{span:…}`,
//! `{service:…}`, `trace_coverage`) on the workers' latest breakdowns merged exactly
//! (`breakdown::merge`), as a single run reads its trace receiver's latest breakdown.

use std::time::Duration;

use loadlens_core::health::{GeneratorHealth, HealthMonitor};
use loadlens_core::stats::{Aggregator, HealthSample, RequestSummary, Snapshot, StatsSet};
use loadlens_core::thresholds::{Guard, NameTags, Observed, Scope, Threshold};

use crate::runner::Prepared;

/// What the live check needs beyond the snapshot.
pub struct Thresholds {
    /// The task tags of each request name.
    name_tags: NameTags,
    /// The thresholds scoped by tag (none: no cost).
    by_tag: Vec<Threshold>,
    /// Whether a threshold is scoped by a named scenario (none: no cost).
    by_scenario: bool,
    /// Per named scenario, the workers' intervals added up so far.
    scenarios: Vec<(String, StatsSet)>,
}

impl Thresholds {
    /// The task tags of each of the plan's request names, in the plan's order.
    pub fn name_tags(&self) -> &NameTags {
        &self.name_tags
    }

    /// For the run `p` prepares.
    pub fn new(p: &Prepared) -> Self {
        let name_tags = if p.scenarios.is_empty() {
            NameTags::of([&p.plan])
        } else {
            NameTags::of(p.scenarios.iter().map(|s| &*s.plan))
        };
        let by_tag = p
            .thresholds
            .iter()
            .filter(|t| matches!(t.scope, Scope::Tag(_)))
            .cloned()
            .collect();
        let by_scenario = p
            .thresholds
            .iter()
            .any(|t| matches!(t.scope, Scope::Scenario(_)));
        Thresholds {
            name_tags,
            by_tag,
            by_scenario,
            scenarios: Vec::new(),
        }
    }

    /// Add the workers' per-scenario intervals reported since the last tick.
    pub fn add_scenarios(&mut self, reported: Vec<(String, StatsSet)>) {
        if !self.by_scenario {
            return;
        }
        for (name, set) in reported {
            super::server::add_named(&mut self.scenarios, &name, &set);
        }
    }

    /// Check `guard` on the merged snapshot `snap` (and the cumulative figures of `agg`, and
    /// the workers' breakdowns merged in `snap.breakdown`), with the workers' combined
    /// `generator` health: the new breaches' messages, and the reason to abort, if one says so.
    pub fn check(
        &self,
        guard: &mut Guard,
        snap: &Snapshot,
        agg: &Aggregator,
        generator: Option<&GeneratorHealth>,
        elapsed: Duration,
    ) -> (Vec<String>, Option<String>) {
        let tags = self
            .name_tags
            .summaries(&self.by_tag, agg.cumulative(), elapsed);
        let scenarios: Vec<(String, RequestSummary)> = self
            .scenarios
            .iter()
            .map(|(n, set)| {
                let total = RequestSummary::of("", "Aggregated", &set.aggregate(), elapsed);
                (n.clone(), total)
            })
            .collect();
        let observed = Observed {
            aggregate: &snap.total,
            requests: &snap.requests,
            scenarios: &scenarios,
            tags: &tags,
            dropped_iterations: snap.dropped_iterations.unwrap_or(0),
            generator,
            breakdown: snap.breakdown.as_deref(),
        };
        guard.check(&observed, elapsed)
    }
}

/// The workers' generator health together: healthy when every worker is, with each one's
/// reasons under its segment; `None` before any worker measured itself.
pub fn generator<'a>(
    workers: impl Iterator<Item = (String, &'a HealthMonitor)>,
) -> Option<GeneratorHealth> {
    let mut out: Option<GeneratorHealth> = None;
    for (segment, m) in workers {
        let h = m.report(None);
        let o = out.get_or_insert_with(|| GeneratorHealth {
            healthy: true,
            ..GeneratorHealth::default()
        });
        o.healthy &= h.healthy;
        o.reasons
            .extend(h.reasons.iter().map(|r| format!("segment {segment}: {r}")));
        o.cpu_cores += h.cpu_cores;
        o.cpu_max_pct = max(o.cpu_max_pct, h.cpu_max_pct);
        o.cpu_saturated_s = o.cpu_saturated_s.max(h.cpu_saturated_s);
        o.peak_rss_mb = max(o.peak_rss_mb, h.peak_rss_mb);
    }
    out
}

/// The health the merged snapshot shows: the busiest worker's CPU, the most memory, the
/// latest scheduling delay at its worst, the open connections and network rates added up.
pub fn worst_health<'a>(samples: impl Iterator<Item = &'a HealthSample>) -> HealthSample {
    fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
    samples.fold(HealthSample::default(), |o, s| HealthSample {
        process_cpu_pct: max(o.process_cpu_pct, s.process_cpu_pct),
        machine_cpu_pct: max(o.machine_cpu_pct, s.machine_cpu_pct),
        rss_bytes: max(o.rss_bytes, s.rss_bytes),
        open_connections: sum(o.open_connections, s.open_connections),
        net_sent_bytes_per_s: sum(o.net_sent_bytes_per_s, s.net_sent_bytes_per_s),
        net_received_bytes_per_s: sum(o.net_received_bytes_per_s, s.net_received_bytes_per_s),
        sched_delay_ms: max(o.sched_delay_ms, s.sched_delay_ms),
    })
}

/// The larger of two figures, either of which may be missing.
fn max<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b > a { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadlens_core::thresholds::parse;

    fn cpu(pct: f64) -> HealthSample {
        HealthSample {
            process_cpu_pct: Some(pct),
            rss_bytes: Some(10 << 20),
            ..HealthSample::default()
        }
    }

    #[test]
    fn one_saturated_worker_makes_the_run_unhealthy_live_and_aborts_it() {
        let (mut calm, mut busy) = (HealthMonitor::remote(2.0), HealthMonitor::remote(2.0));
        let s = Duration::from_secs(1);
        for _ in 0..4 {
            calm.fold(&cpu(20.0), s);
            busy.fold(&cpu(97.0), s);
        }
        let both = |calm: &HealthMonitor, busy: &HealthMonitor| {
            generator([("1/2".to_owned(), calm), ("2/2".to_owned(), busy)].into_iter()).unwrap()
        };
        // Four saturated seconds are not yet sustained.
        assert!(both(&calm, &busy).healthy);
        for _ in 0..2 {
            calm.fold(&cpu(20.0), s);
            busy.fold(&cpu(97.0), s);
        }
        let g = both(&calm, &busy);
        assert!(!g.healthy);
        assert_eq!(g.reasons.len(), 1, "{:?}", g.reasons);
        assert!(g.reasons[0].starts_with("segment 2/2: "), "{:?}", g.reasons);
        assert_eq!(g.cpu_cores, 4.0);
        assert_eq!(g.cpu_max_pct, Some(97.0));

        let mut guard = Guard::new(vec![parse("generator_healthy, abort").unwrap()]);
        let total = RequestSummary::default();
        let observed = Observed {
            aggregate: &total,
            requests: &[],
            scenarios: &[],
            tags: &[],
            dropped_iterations: 0,
            generator: Some(&g),
            breakdown: None,
        };
        let (breached, abort) = guard.check(&observed, Duration::from_secs(6));
        assert_eq!(breached.len(), 1, "{breached:?}");
        assert!(abort.is_some());
    }

    #[test]
    fn the_merged_health_shows_the_busiest_worker_and_the_connections_of_all() {
        let a = HealthSample {
            open_connections: Some(3),
            ..cpu(40.0)
        };
        let b = HealthSample {
            open_connections: Some(4),
            ..cpu(70.0)
        };
        let h = worst_health([&a, &b].into_iter());
        assert_eq!(h.process_cpu_pct, Some(70.0));
        assert_eq!(h.open_connections, Some(7));
        assert_eq!(h.rss_bytes, Some(10 << 20));
    }
}
