//! The per-interval time series (rps, failures/s, p50/p95/p99, active users) in bounded memory,
//! for the run and for each request name.
//!
//! Points arrive once a second. When the series reaches its capacity, neighbouring points are
//! merged pairwise and later points are accumulated at the doubled resolution, so a run of any
//! length keeps at most `capacity` points. Counts and rates stay exact when merged; a merged
//! point's percentiles are the count-weighted mean of its parts' percentiles (an approximation,
//! documented in the JSON schema), and its max-of-p99 is kept exactly.
//!
//! Each request name has a series of its own ([`TimeSeries::names`]), so that a report can show
//! which endpoint got slow, and when. They are coarser, to stay small with many names: at most
//! [`TimeSeries::NAME_CAPACITY`] points for each of the first [`TimeSeries::MAX_NAMES`] names
//! (in `NameId` order), so at most 100 × 240 points of 104 bytes, 2.5 MB, whatever the run's
//! length; names beyond those have none (the report says so).

use std::time::Duration;

use super::RequestStats;

/// One interval of the run, aggregated over all request names.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the start of the run, at the end of the interval.
    pub elapsed_s: f64,
    /// Length of the interval in seconds.
    pub span_s: f64,
    /// Active users at the end of the interval.
    pub users: u64,
    /// Requests completed in the interval.
    pub requests: u64,
    /// Requests failed in the interval.
    pub failures: u64,
    /// Requests per second.
    pub rps: f64,
    /// Failures per second.
    pub failures_per_s: f64,
    /// Smallest response time, ms.
    pub min_ms: f64,
    /// Mean response time, ms.
    pub avg_ms: f64,
    /// Median response time, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest response time, ms.
    pub max_ms: f64,
    /// The other percentiles Locust's history has, ms (absent from older result files).
    #[serde(default)]
    pub p66_ms: f64,
    /// 75th percentile, ms.
    #[serde(default)]
    pub p75_ms: f64,
    /// 80th percentile, ms.
    #[serde(default)]
    pub p80_ms: f64,
    /// 90th percentile, ms.
    #[serde(default)]
    pub p90_ms: f64,
    /// 98th percentile, ms.
    #[serde(default)]
    pub p98_ms: f64,
    /// 99.9th percentile, ms.
    #[serde(default)]
    pub p99_9_ms: f64,
    /// 99.99th percentile, ms.
    #[serde(default)]
    pub p99_99_ms: f64,
    /// Median of every request from the start of the run to the end of this interval, ms.
    #[serde(default)]
    pub total_p50_ms: f64,
    /// Mean response size of every request from the start of the run to the end of this
    /// interval, bytes.
    #[serde(default)]
    pub total_avg_content_bytes: f64,
}

impl SeriesPoint {
    /// The point of an interval of length `span` ending at `elapsed`.
    pub fn of(elapsed: Duration, span: Duration, users: u64, agg: &RequestStats) -> Self {
        let span_s = span.as_secs_f64();
        let per_s = |n: u64| if span_s > 0.0 { n as f64 / span_s } else { 0.0 };
        SeriesPoint {
            elapsed_s: elapsed.as_secs_f64(),
            span_s,
            users,
            requests: agg.count,
            failures: agg.failures,
            rps: per_s(agg.count),
            failures_per_s: per_s(agg.failures),
            min_ms: agg.latency.min_ms(),
            avg_ms: agg.latency.mean_ms(),
            p50_ms: agg.latency.quantile_ms(0.5),
            p95_ms: agg.latency.quantile_ms(0.95),
            p99_ms: agg.latency.quantile_ms(0.99),
            max_ms: agg.latency.max_ms(),
            p66_ms: agg.latency.quantile_ms(0.66),
            p75_ms: agg.latency.quantile_ms(0.75),
            p80_ms: agg.latency.quantile_ms(0.80),
            p90_ms: agg.latency.quantile_ms(0.90),
            p98_ms: agg.latency.quantile_ms(0.98),
            p99_9_ms: agg.latency.quantile_ms(0.999),
            p99_99_ms: agg.latency.quantile_ms(0.9999),
            total_p50_ms: 0.0,
            total_avg_content_bytes: 0.0,
        }
    }

    /// Mix the percentiles Locust's history adds with `other`'s, by `w` (a weighting by
    /// request counts). The total median is `total`'s.
    pub fn mix_extra_percentiles(
        &mut self,
        other: &SeriesPoint,
        w: impl Fn(f64, f64) -> f64,
        total: f64,
    ) {
        self.p66_ms = w(self.p66_ms, other.p66_ms);
        self.p75_ms = w(self.p75_ms, other.p75_ms);
        self.p80_ms = w(self.p80_ms, other.p80_ms);
        self.p90_ms = w(self.p90_ms, other.p90_ms);
        self.p98_ms = w(self.p98_ms, other.p98_ms);
        self.p99_9_ms = w(self.p99_9_ms, other.p99_9_ms);
        self.p99_99_ms = w(self.p99_99_ms, other.p99_99_ms);
        self.total_p50_ms = total;
        // Cumulative too, and only the total's mean is known: the later point's (the caller
        // mixing segments side by side weighs it like the median).
        self.total_avg_content_bytes =
            w(self.total_avg_content_bytes, other.total_avg_content_bytes);
    }

    /// Merge `later` (the next interval) into `self`.
    ///
    /// Counts and rates add up over the longer interval; percentiles are count-weighted.
    pub fn absorb(&mut self, later: &SeriesPoint) {
        let (a, b) = (self.requests as f64, later.requests as f64);
        let w = |x: f64, y: f64| {
            if a + b > 0.0 {
                (x * a + y * b) / (a + b)
            } else {
                0.0
            }
        };
        self.avg_ms = w(self.avg_ms, later.avg_ms);
        self.p50_ms = w(self.p50_ms, later.p50_ms);
        self.p95_ms = w(self.p95_ms, later.p95_ms);
        self.p99_ms = w(self.p99_ms, later.p99_ms);
        // Cumulative: the later point's total median is the merged point's.
        self.mix_extra_percentiles(later, w, later.total_p50_ms);
        self.total_avg_content_bytes = later.total_avg_content_bytes;
        self.max_ms = self.max_ms.max(later.max_ms);
        self.min_ms = match (self.requests, later.requests) {
            (0, _) => later.min_ms,
            (_, 0) => self.min_ms,
            _ => self.min_ms.min(later.min_ms),
        };
        self.elapsed_s = later.elapsed_s;
        self.span_s += later.span_s;
        self.users = later.users;
        self.requests += later.requests;
        self.failures += later.failures;
        if self.span_s > 0.0 {
            self.rps = self.requests as f64 / self.span_s;
            self.failures_per_s = self.failures as f64 / self.span_s;
        }
    }
}

/// Bounded time series.
#[derive(Clone, Debug)]
pub struct TimeSeries {
    points: Vec<SeriesPoint>,
    capacity: usize,
    /// How many raw intervals one stored point covers (doubles at each downsampling).
    per_point: usize,
    pending: Option<(SeriesPoint, usize)>,
    /// One series per request name (empty when none was pushed), see [`Self::push_names`].
    names: Vec<TimeSeries>,
}

impl TimeSeries {
    /// One hour at 1 s resolution before the first downsampling.
    pub const DEFAULT_CAPACITY: usize = 3600;

    /// Points kept per request name: a 4-minute run keeps every second, a 1-hour one a point
    /// per 16 s.
    pub const NAME_CAPACITY: usize = 240;

    /// Request names with a series of their own (the first ones, in `NameId` order).
    pub const MAX_NAMES: usize = 100;

    /// An empty series keeping at most `capacity` (≥ 2) points.
    pub fn new(capacity: usize) -> Self {
        TimeSeries {
            points: Vec::new(),
            capacity: capacity.max(2),
            per_point: 1,
            pending: None,
            names: Vec::new(),
        }
    }

    /// Append the points of the same interval for each request name, in `NameId` order (only
    /// the first [`Self::MAX_NAMES`] are kept). Call it once per interval, beside [`Self::push`].
    pub fn push_names(&mut self, points: impl IntoIterator<Item = SeriesPoint>) {
        for (i, p) in points.into_iter().take(Self::MAX_NAMES).enumerate() {
            if i == self.names.len() {
                self.names.push(TimeSeries::new(Self::NAME_CAPACITY));
            }
            self.names[i].push(p);
        }
    }

    /// The series of each request name, in `NameId` order (empty when none was pushed).
    pub fn names(&self) -> &[TimeSeries] {
        &self.names
    }

    /// Append a name's whole series (rebuilding a series from a saved result).
    pub fn push_name_series(&mut self, series: TimeSeries) {
        if self.names.len() < Self::MAX_NAMES {
            self.names.push(series);
        }
    }

    /// Append the point of the next interval.
    pub fn push(&mut self, p: SeriesPoint) {
        let (acc, n) = match self.pending.take() {
            Some((mut acc, n)) => {
                acc.absorb(&p);
                (acc, n + 1)
            }
            None => (p, 1),
        };
        if n < self.per_point {
            self.pending = Some((acc, n));
            return;
        }
        self.points.push(acc);
        if self.points.len() >= self.capacity {
            self.downsample();
        }
    }

    fn downsample(&mut self) {
        let old = std::mem::take(&mut self.points);
        let mut it = old.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.absorb(&b);
            }
            self.points.push(a);
        }
        self.per_point *= 2;
    }

    /// Stored points, oldest first, plus a partly filled last point if any.
    pub fn points(&self) -> Vec<SeriesPoint> {
        let mut v = self.points.clone();
        if let Some((p, _)) = &self.pending {
            v.push(p.clone());
        }
        v
    }

    /// Seconds covered by one stored point (for 1 s ticks).
    pub fn resolution(&self) -> usize {
        self.per_point
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(i: usize, requests: u64) -> SeriesPoint {
        SeriesPoint {
            elapsed_s: i as f64,
            span_s: 1.0,
            requests,
            rps: requests as f64,
            p99_ms: 10.0,
            max_ms: i as f64,
            ..SeriesPoint::default()
        }
    }

    #[test]
    fn long_runs_stay_bounded_and_keep_totals() {
        let mut s = TimeSeries::new(100);
        for i in 1..=10_000 {
            s.push(pt(i, 7));
        }
        let pts = s.points();
        assert!(pts.len() <= 100, "{}", pts.len());
        assert_eq!(pts.iter().map(|p| p.requests).sum::<u64>(), 70_000);
        assert_eq!(pts.last().unwrap().elapsed_s, 10_000.0);
        assert!(pts.iter().all(|p| (p.rps - 7.0).abs() < 1e-9));
        assert_eq!(pts.iter().map(|p| p.max_ms).fold(0.0, f64::max), 10_000.0);
        assert!(s.resolution() >= 100);
    }

    #[test]
    fn each_name_has_a_bounded_series_of_its_own() {
        let mut s = TimeSeries::new(100);
        for i in 1..=10_000 {
            s.push(pt(i, 7));
            s.push_names((0..150).map(|n| pt(i, n)));
        }
        assert_eq!(s.names().len(), TimeSeries::MAX_NAMES);
        for (n, name) in s.names().iter().enumerate() {
            let pts = name.points();
            assert!(pts.len() <= TimeSeries::NAME_CAPACITY, "{}", pts.len());
            assert_eq!(
                pts.iter().map(|p| p.requests).sum::<u64>(),
                10_000 * n as u64
            );
            assert_eq!(pts.last().unwrap().elapsed_s, 10_000.0);
        }
    }

    #[test]
    fn short_runs_keep_every_second() {
        let mut s = TimeSeries::new(100);
        for i in 1..=20 {
            s.push(pt(i, i as u64));
        }
        assert_eq!(s.points().len(), 20);
        assert_eq!(s.resolution(), 1);
    }
}
