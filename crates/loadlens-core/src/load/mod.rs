//! The load model: [`LoadSettings`], how much load and for how long, whatever the file and
//! flags said (what the executor's lanes run and what reports show); its stages and arrival
//! rates ([`profile`]: parsing and the exact arithmetic of ramps and arrival times); and what
//! the open model did ([`ArrivalReport`]). Below the scenario, the thresholds and the executor,
//! which all speak of load.

pub mod profile;
pub mod segment;

use std::time::Duration;

pub use profile::Stage;
pub use segment::{Segment, SegmentError};

use crate::stats::Percentiles;

/// How much load, for how long.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadSettings {
    /// Concurrent users at full load.
    pub users: u64,
    /// Users started per second (`None`: all at once).
    pub spawn_rate: Option<f64>,
    /// Run time (`None`: until iterations are done or the run is stopped).
    #[serde(with = "opt_secs")]
    pub run_time: Option<Duration>,
    /// Total task iterations across users.
    pub iterations: Option<u64>,
    /// Grace period for in-flight requests after the stop.
    #[serde(with = "opt_secs")]
    pub stop_timeout: Option<Duration>,
    /// Ramp through these stages: targets are users (closed model) or arrivals per second (open
    /// model). Without `run_time`, the run lasts as long as the stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Open model (arrival rate) when set; `users` and `spawn_rate` are then unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<ArrivalSettings>,
    /// The share of this load that this process runs (`--segment I/N`); the other fields stay
    /// those of the whole run. Absent: the whole run.
    #[serde(default, skip_serializing_if = "Segment::is_whole")]
    pub segment: Segment,
}

impl LoadSettings {
    /// A closed model of `users` users started at once, with no end of its own.
    pub fn closed(users: u64) -> Self {
        LoadSettings {
            users,
            ..LoadSettings::default()
        }
    }

    /// How long the load lasts by itself: the run time, else the stages' total.
    pub fn duration(&self) -> Option<Duration> {
        self.run_time
            .or_else(|| (!self.stages.is_empty()).then(|| profile::total(&self.stages)))
    }

    /// Users the closed model of the *whole run* runs `t` after its load started: the stages'
    /// level, else the spawn rate's ramp (one user at once, then one every `1/rate`), else
    /// `users`. A segment runs [`Segment::share`] of it.
    pub fn users_at(&self, t: Duration) -> u64 {
        if !self.stages.is_empty() {
            return profile::users_at(&self.stages, t);
        }
        match self.spawn_rate.filter(|r| *r > 0.0 && r.is_finite()) {
            None => self.users,
            Some(r) => ((t.as_secs_f64() * r).floor() as u64)
                .saturating_add(1)
                .min(self.users),
        }
    }

    /// One line for headers and timelines: `50 users`, `ramping users over 3 stages`,
    /// `200 arrivals/s (20–100 VUs)`.
    pub fn describe(&self) -> String {
        let whole = match (&self.arrival, self.stages.len()) {
            (Some(a), 0) => format!(
                "{} arrivals/s ({}–{} VUs)",
                a.rate_per_s, a.pre_allocated_vus, a.max_vus
            ),
            (Some(a), n) => format!(
                "arrivals from {}/s ramping over {n} stages ({}–{} VUs)",
                a.rate_per_s, a.pre_allocated_vus, a.max_vus
            ),
            (None, 0) => format!("{} users", self.users),
            (None, n) => format!("users ramping over {n} stages"),
        };
        if self.segment.is_whole() {
            whole
        } else {
            format!("{whole}, segment {}", self.segment)
        }
    }
}

/// Open-model settings: where the rate starts and how many VUs may serve it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArrivalSettings {
    /// Arrivals per second at the start (constant when there are no stages; the stages' targets
    /// are arrivals per second too).
    pub rate_per_s: f64,
    /// VUs started before the first arrival.
    pub pre_allocated_vus: u64,
    /// Most VUs ever started; an arrival that finds none free beyond this is dropped.
    pub max_vus: u64,
}

/// What the open model did, for reports.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArrivalReport {
    /// Arrivals the profile intended up to the stop (the integral of the rate).
    pub intended: u64,
    /// Iterations started.
    pub started: u64,
    /// Arrivals that found no free VU (`max_vus` reached) and were not run.
    pub dropped_iterations: u64,
    /// `started` as a percent of `intended`.
    pub achieved_pct: f64,
    /// Most VUs started at once.
    pub vus_allocated: u64,
    /// The `max_vus` limit.
    pub max_vus: u64,
    /// Delay between each iteration's intended start and the moment its VU began it, ms.
    /// Large values mean the generator (not the target) fell behind.
    pub schedule_delay_ms: Percentiles,
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
