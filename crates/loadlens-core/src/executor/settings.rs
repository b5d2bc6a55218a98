//! [`LoadSettings`]: how much load and for how long, whatever the file and flags said; what the
//! executor's lanes run and what reports show.

use std::time::Duration;

use super::{profile, ArrivalSettings, Stage};

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

    /// One line for headers and timelines: `50 users`, `ramping users over 3 stages`,
    /// `200 arrivals/s (20–100 VUs)`.
    pub fn describe(&self) -> String {
        match (&self.arrival, self.stages.len()) {
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
        }
    }
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
