//! Load-profile arithmetic, free of I/O and clocks so it can be tested exactly: stages (ramp
//! linearly to a target over a duration, like k6's `stages`), the number of users a closed
//! model should run at a given moment, and the intended start time of every arrival of an open
//! model (constant or ramping arrival rate).
//!
//! Arrival `k` (0-based) is intended at the moment the integral of the rate reaches `k`, so a
//! constant rate `r` starts iterations at `0, 1/r, 2/r, …` and a ramp spreads them the way the
//! rate rises. Times are offsets from the start of the run; the executor adds its start instant.

use std::time::Duration;

/// One stage: move linearly from the previous target to `target` over `duration`.
/// `target` is a number of users (closed model) or arrivals per second (open model).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    /// Length of the stage.
    #[serde(rename = "duration_s", with = "secs")]
    pub duration: Duration,
    /// Level reached at the end of the stage.
    pub target: f64,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        if let Ok(d) = Duration::try_from_secs_f64(v) {
            Ok(d)
        } else {
            Err(serde::de::Error::custom(
                "duration_s must be a non-negative number",
            ))
        }
    }
}

/// A `--stages` value that does not parse; `index` counts stages from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StagesError {
    /// A stage without its `:`.
    #[error("stage {index} `{stage}` must be DURATION:TARGET, e.g. `30s:100`")]
    Form {
        /// Position of the stage, from 1.
        index: usize,
        /// The stage as written.
        stage: String,
    },
    /// A duration that does not parse.
    #[error("stage {index} `{stage}`: {reason}")]
    Duration {
        /// Position of the stage, from 1.
        index: usize,
        /// The stage as written.
        stage: String,
        /// What is wrong with the duration.
        reason: String,
    },
    /// A target rate (`600/m`) that does not parse.
    #[error("stage {index} `{stage}`: {source}")]
    Rate {
        /// Position of the stage, from 1.
        index: usize,
        /// The stage as written.
        stage: String,
        /// What is wrong with the rate.
        source: RateError,
    },
    /// A target that is not a number.
    #[error("stage {index} `{stage}`: target `{target}` is not a number")]
    TargetNotANumber {
        /// Position of the stage, from 1.
        index: usize,
        /// The stage as written.
        stage: String,
        /// The target as written.
        target: String,
    },
    /// A negative or infinite target.
    #[error("stage {index} `{stage}`: target must be 0 or more")]
    NegativeTarget {
        /// Position of the stage, from 1.
        index: usize,
        /// The stage as written.
        stage: String,
    },
    /// Nothing to parse.
    #[error("no stages given: expected e.g. `30s:100,5m:100,30s:0`")]
    Empty,
}

/// An arrival rate that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The count before `/` is not a number.
    #[error("invalid arrival rate `{rate}`: expected e.g. `200/s` or `1200/m`")]
    NotANumber {
        /// The rate as written.
        rate: String,
    },
    /// The unit after `/` is neither `s`, `m`, `h` nor a duration.
    #[error("invalid time unit `{unit}` in arrival rate `{rate}` (use /s or /m)")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The rate as written.
        rate: String,
    },
    /// A negative, infinite or per-zero-time rate.
    #[error("arrival rate `{rate}` must be 0 or more")]
    Negative {
        /// The rate as written.
        rate: String,
    },
}

/// Parse the CLI shorthand `30s:100,5m:100,30s:0` (duration:target, comma-separated).
/// Targets are users or arrivals per second; `30s:600/m` gives a rate in another unit.
pub fn parse_stages(s: &str) -> Result<Vec<Stage>, StagesError> {
    let mut out = Vec::new();
    for (i, part) in s.split(',').map(str::trim).enumerate() {
        let (index, stage) = (i + 1, part.to_owned());
        let Some((d, t)) = part.split_once(':') else {
            return Err(StagesError::Form { index, stage });
        };
        let duration = match crate::duration::parse_duration(d) {
            Ok(d) => d,
            Err(e) => {
                let reason = e.to_string();
                return Err(StagesError::Duration {
                    index,
                    stage,
                    reason,
                });
            }
        };
        // A rate (`500/m`) in the open model; a plain number is users or arrivals per second.
        let target: f64 = if t.contains('/') {
            match parse_rate(t) {
                Ok(r) => r,
                Err(source) => {
                    return Err(StagesError::Rate {
                        index,
                        stage,
                        source,
                    })
                }
            }
        } else {
            match t.trim().parse() {
                Ok(t) => t,
                Err(_) => {
                    let target = t.trim().to_owned();
                    return Err(StagesError::TargetNotANumber {
                        index,
                        stage,
                        target,
                    });
                }
            }
        };
        if !(target.is_finite() && target >= 0.0) {
            return Err(StagesError::NegativeTarget { index, stage });
        }
        out.push(Stage { duration, target });
    }
    if out.is_empty() {
        return Err(StagesError::Empty);
    }
    Ok(out)
}

/// Parse an arrival rate: `200`, `200/s`, `1200/m`, `50/1s`; returns arrivals per second.
pub fn parse_rate(s: &str) -> Result<f64, RateError> {
    let t = s.trim();
    let rate = || t.to_owned();
    let (num, unit) = t.split_once('/').unwrap_or((t, "s"));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| RateError::NotANumber { rate: rate() })?;
    let per = match unit.trim() {
        "s" | "sec" | "1s" => 1.0,
        "m" | "min" | "1m" => 60.0,
        "h" | "1h" => 3600.0,
        other => crate::duration::parse_duration(other)
            .map_err(|_| RateError::Unit {
                unit: other.to_owned(),
                rate: rate(),
            })?
            .as_secs_f64(),
    };
    let per_second = n / per;
    if !(per_second.is_finite() && per_second >= 0.0 && per > 0.0) {
        return Err(RateError::Negative { rate: rate() });
    }
    Ok(per_second)
}

/// Total length of `stages`.
pub fn total(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// Index of the stage running at `t` (`stages.len()` once all are over).
pub fn stage_at(stages: &[Stage], t: Duration) -> usize {
    let mut end = Duration::ZERO;
    for (i, s) in stages.iter().enumerate() {
        end += s.duration;
        if t < end {
            return i;
        }
    }
    stages.len()
}

/// The level at `t`, starting from `start` and moving linearly through `stages`; after the
/// last stage its target holds.
pub fn level_at(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut t = t.as_secs_f64();
    for s in stages {
        let d = s.duration.as_secs_f64();
        if t < d {
            return from + (s.target - from) * (t / d);
        }
        t -= d;
        from = s.target;
    }
    from
}

/// Users a closed model runs at `t`: the staged level (from 0) rounded down, so a ramp from 0 to
/// 10 users over 10 s starts one user per second.
pub fn users_at(stages: &[Stage], t: Duration) -> u64 {
    let l = level_at(0.0, stages, t);
    // A tiny epsilon so that 2.9999999 (float rounding of an exact 3) counts as 3.
    (l + 1e-9).floor().max(0.0) as u64
}

/// Arrivals expected in `[0, t)` at a rate starting at `start` and moving through `stages`
/// (per second): the integral of the rate.
pub fn arrivals_by(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut t = t.as_secs_f64();
    let mut sum = 0.0;
    for s in stages {
        let d = s.duration.as_secs_f64();
        let span = t.min(d);
        let a = if d > 0.0 { (s.target - from) / d } else { 0.0 };
        sum += from * span + a * span * span / 2.0;
        if t <= d {
            return sum;
        }
        t -= d;
        from = s.target;
    }
    sum + from * t
}

/// Intended start of arrival `k` (0-based): the first moment the integral of the rate reaches
/// `k`. `None` when the rate never gets there (it ends at zero before).
pub fn arrival_time(start: f64, stages: &[Stage], k: u64) -> Option<Duration> {
    let mut left = k as f64;
    if left == 0.0 {
        return Some(Duration::ZERO);
    }
    let mut from = start;
    let mut at = 0.0;
    for s in stages {
        let d = s.duration.as_secs_f64();
        let a = if d > 0.0 { (s.target - from) / d } else { 0.0 };
        let whole = from * d + a * d * d / 2.0;
        if whole >= left && d > 0.0 {
            // Solve from·τ + a·τ²/2 = left in the stable form τ = 2·left / (from + √(from² + 2·a·left)).
            let disc = (from * from + 2.0 * a * left).max(0.0);
            let denom = from + disc.sqrt();
            if denom > 0.0 {
                let tau = (2.0 * left / denom).min(d);
                // `None` past what a duration can hold: such an arrival never comes.
                return Duration::try_from_secs_f64(at + tau).ok();
            }
        }
        left -= whole;
        at += d;
        from = s.target;
    }
    // A rate so low (`1e-300/s`) that the next arrival is beyond any duration: none comes.
    (from > 0.0)
        .then(|| Duration::try_from_secs_f64(at + left / from).ok())
        .flatten()
}

/// Issues the arrivals of an open model in order: a cursor over [`arrival_time`].
#[derive(Debug, Clone)]
pub struct Pacer {
    start: f64,
    stages: Vec<Stage>,
    end: Option<Duration>,
    /// Arrivals of this segment issued so far.
    next: u64,
    next_at: Option<Duration>,
    segment: super::Segment,
}

impl Pacer {
    /// A pacer starting at `start` arrivals/s, moving through `stages`, issuing nothing at or
    /// after `end`.
    pub fn new(start: f64, stages: Vec<Stage>, end: Option<Duration>) -> Self {
        let mut p = Pacer {
            start,
            stages,
            end,
            next: 0,
            next_at: None,
            segment: super::Segment::WHOLE,
        };
        p.next_at = p.compute(0);
        p
    }

    /// The same schedule, issuing only `segment`'s arrivals (`i, i+N, i+2N, …` of the whole
    /// run's, each at its own intended time).
    pub fn segment(mut self, segment: super::Segment) -> Self {
        self.segment = segment;
        self.next_at = self.compute(self.next);
        self
    }

    /// Intended offset of this segment's arrival `k`.
    fn compute(&self, k: u64) -> Option<Duration> {
        arrival_time(self.start, &self.stages, self.segment.global(k))
            .filter(|t| self.end.is_none_or(|e| *t < e))
    }

    /// Intended offset of the next arrival, `None` when the profile has no more.
    pub fn next_at(&self) -> Option<Duration> {
        self.next_at
    }

    /// Arrivals (of its segment) issued so far.
    pub fn issued(&self) -> u64 {
        self.next
    }

    /// Take the next arrival if it is due at `now` (an offset from the start).
    pub fn take_due(&mut self, now: Duration) -> Option<Duration> {
        let at = self.next_at.filter(|at| *at <= now)?;
        self.next += 1;
        self.next_at = self.compute(self.next);
        Some(at)
    }

    /// Arrivals the profile intends in `[0, t)` (for the achieved-rate check), for the whole
    /// run (a segment's share is about `1/N` of it).
    pub fn expected_by(&self, t: Duration) -> f64 {
        let t = self.end.map_or(t, |e| t.min(e));
        arrivals_by(self.start, &self.stages, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(s: &str) -> Vec<Stage> {
        parse_stages(s).unwrap()
    }
    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn stage_shorthand_parses_and_rejects_with_reasons() {
        let s = st("30s:100, 5m:100,30s:0");
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].duration, Duration::from_secs(300));
        assert_eq!(s[2].target, 0.0);
        assert_eq!(total(&s), Duration::from_secs(360));
        assert!(parse_stages("30s")
            .unwrap_err()
            .to_string()
            .contains("DURATION:TARGET"));
        assert!(parse_stages("30s:x")
            .unwrap_err()
            .to_string()
            .contains("not a number"));
        assert_eq!(parse_stages("1m:600/m").unwrap()[0].target, 10.0);
        assert!(parse_stages("3q:1")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_stages("1s:-1")
            .unwrap_err()
            .to_string()
            .contains("0 or more"));
    }

    #[test]
    fn rates_parse_with_time_units() {
        assert_eq!(parse_rate("200").unwrap(), 200.0);
        assert_eq!(parse_rate("200/s").unwrap(), 200.0);
        assert_eq!(parse_rate("1200/m").unwrap(), 20.0);
        assert_eq!(parse_rate("50/10s").unwrap(), 5.0);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("1/parsec").is_err());
    }

    #[test]
    fn users_ramp_linearly_hold_and_ramp_down() {
        let s = st("10s:100,20s:100,10s:0");
        assert_eq!(users_at(&s, secs(0.0)), 0);
        assert_eq!(users_at(&s, secs(1.0)), 10);
        assert_eq!(users_at(&s, secs(5.0)), 50);
        assert_eq!(users_at(&s, secs(10.0)), 100);
        assert_eq!(users_at(&s, secs(29.9)), 100);
        assert_eq!(users_at(&s, secs(35.0)), 50);
        assert_eq!(users_at(&s, secs(40.0)), 0);
        assert_eq!(users_at(&s, secs(100.0)), 0);
        // Steps: a zero-length stage jumps.
        let steps = st("0s:10,5s:10,0s:20,5s:20");
        assert_eq!(users_at(&steps, secs(0.0)), 10);
        assert_eq!(users_at(&steps, secs(5.0)), 20);
        assert_eq!(stage_at(&steps, secs(2.0)), 1);
        assert_eq!(stage_at(&steps, secs(7.0)), 3);
        assert_eq!(stage_at(&steps, secs(10.0)), 4);
    }

    #[test]
    fn constant_rate_arrivals_are_evenly_spaced() {
        for k in 0..1000u64 {
            let t = arrival_time(200.0, &[], k).unwrap();
            assert!(
                (t.as_secs_f64() - k as f64 / 200.0).abs() < 1e-9,
                "{k}: {t:?}"
            );
        }
        assert!((arrivals_by(200.0, &[], secs(2.5)) - 500.0).abs() < 1e-9);
        assert_eq!(arrival_time(0.0, &[], 1), None);
    }

    #[test]
    fn ramping_rate_arrivals_follow_the_integral() {
        // 0 → 100/s over 10 s (500 arrivals), hold 100/s for 10 s, 100 → 0 over 10 s.
        let s = st("10s:100,10s:100,10s:0");
        assert!((arrivals_by(0.0, &s, secs(10.0)) - 500.0).abs() < 1e-9);
        assert!((arrivals_by(0.0, &s, secs(20.0)) - 1500.0).abs() < 1e-9);
        assert!((arrivals_by(0.0, &s, secs(30.0)) - 2000.0).abs() < 1e-9);
        // Arrival k is where the integral reaches k: in the ramp, 5t² = k → t = √(k/5).
        for k in [1u64, 20, 125, 499] {
            let t = arrival_time(0.0, &s, k).unwrap().as_secs_f64();
            assert!((t - (k as f64 / 5.0).sqrt()).abs() < 1e-9, "{k}: {t}");
        }
        assert!((arrival_time(0.0, &s, 1000).unwrap().as_secs_f64() - 15.0).abs() < 1e-9);
        // Ramp down: 1500 + 100τ − 5τ² = k.
        let t = arrival_time(0.0, &s, 1995).unwrap().as_secs_f64();
        assert!((1500.0 + 100.0 * (t - 20.0) - 5.0 * (t - 20.0).powi(2) - 1995.0).abs() < 1e-6);
        // Nothing after the rate reached zero.
        assert_eq!(arrival_time(0.0, &s, 2001), None);
        // The times are increasing, and the count at each arrival time matches.
        let mut last = Duration::ZERO;
        for k in 1..2000u64 {
            let t = arrival_time(0.0, &s, k).unwrap();
            assert!(t > last, "{k}");
            assert!((arrivals_by(0.0, &s, t) - k as f64).abs() < 1e-6, "{k}");
            last = t;
        }
    }

    #[test]
    fn pacer_stops_at_the_end_and_counts_what_it_issued() {
        let mut p = Pacer::new(10.0, vec![], Some(secs(1.0)));
        let mut n = 0;
        while p.take_due(secs(5.0)).is_some() {
            n += 1;
        }
        assert_eq!(n, 10);
        assert_eq!(p.issued(), 10);
        assert_eq!(p.next_at(), None);
        assert!((p.expected_by(secs(3.0)) - 10.0).abs() < 1e-9);
    }

    /// The pacing loop as the executor runs it (sleep until the next arrival, take all that are
    /// due), under tokio's paused clock: every arrival leaves at its intended instant and the
    /// count in each window matches the profile.
    #[tokio::test(start_paused = true)]
    async fn paced_arrivals_leave_on_time_under_a_paused_clock() {
        let start = tokio::time::Instant::now();
        let stages = st("2s:50,2s:50");
        let mut p = Pacer::new(0.0, stages.clone(), Some(secs(4.0)));
        let mut times = Vec::new();
        while let Some(at) = p.next_at() {
            tokio::time::sleep_until(start + at).await;
            let now = start.elapsed();
            while let Some(intended) = p.take_due(now) {
                assert!(
                    now - intended < Duration::from_millis(2),
                    "{now:?} {intended:?}"
                );
                times.push(now);
            }
        }
        // 0→50/s over 2 s = 50 arrivals, then 100 more.
        assert_eq!(times.len(), 150);
        let in_first_second = times.iter().filter(|t| **t < secs(1.0)).count();
        assert!((12..=13).contains(&in_first_second), "{in_first_second}");
        let in_last_second = times.iter().filter(|t| **t >= secs(3.0)).count();
        assert_eq!(in_last_second, 50);
        assert!(start.elapsed() < secs(4.0));
    }
}
