//! A component's values per interval in bounded memory: each interval keeps a count, a sum and
//! 64 logarithmic buckets (25 % wide, 10 µs to 13 s) for its 95th percentile. When a run
//! outgrows [`MAX_POINTS`] intervals, neighbours merge pairwise (exactly: counts add) and the
//! interval doubles, for every series of the run at once.

use super::SeriesPoint;

/// Most points a series keeps.
pub(crate) const MAX_POINTS: usize = 120;

const BUCKETS: usize = 64;
const FACTOR: f64 = 1.25;
const FIRST_US: f64 = 10.0;

#[derive(Clone, Debug)]
struct Point {
    count: u32,
    sum_us: u64,
    buckets: [u32; BUCKETS],
}

impl Default for Point {
    fn default() -> Self {
        Point {
            count: 0,
            sum_us: 0,
            buckets: [0; BUCKETS],
        }
    }
}

fn bucket(us: u64) -> usize {
    if (us as f64) < FIRST_US {
        return 0;
    }
    let b = ((us as f64) / FIRST_US).ln() / FACTOR.ln();
    (b as usize + 1).min(BUCKETS - 1)
}

/// The upper edge of bucket `b`, microseconds.
fn upper_us(b: usize) -> f64 {
    FIRST_US * FACTOR.powi(b as i32)
}

impl Point {
    fn absorb(&mut self, o: &Point) {
        self.count += o.count;
        self.sum_us += o.sum_us;
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
    }

    fn p95_ms(&self) -> f64 {
        let want = (f64::from(self.count) * 0.95).ceil() as u32;
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want.max(1) {
                // The bucket's upper edge, but never above the mean's possible maximum.
                return upper_us(b).min(self.sum_us as f64) / 1000.0;
            }
        }
        0.0
    }
}

/// The values of one component per interval (by the request's start time).
#[derive(Clone, Debug, Default)]
pub(crate) struct Series {
    points: Vec<Point>,
}

impl Series {
    /// Record `us` in interval `index` (< [`MAX_POINTS`]).
    pub(crate) fn record(&mut self, index: usize, us: u64) {
        if self.points.len() <= index {
            self.points.resize_with(index + 1, Point::default);
        }
        let p = &mut self.points[index];
        p.count += 1;
        p.sum_us += us;
        p.buckets[bucket(us)] += 1;
    }

    /// Merge neighbours pairwise (the interval doubles).
    pub(crate) fn halve(&mut self) {
        let old = std::mem::take(&mut self.points);
        for pair in old.chunks(2) {
            let mut p = pair[0].clone();
            if let Some(q) = pair.get(1) {
                p.absorb(q);
            }
            self.points.push(p);
        }
    }

    /// The points with values, each stamped with the end of its interval.
    pub(crate) fn points(&self, interval_s: f64) -> Vec<SeriesPoint> {
        self.points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.count > 0)
            .map(|(i, p)| SeriesPoint {
                elapsed_s: (i + 1) as f64 * interval_s,
                count: u64::from(p.count),
                avg_ms: p.sum_us as f64 / f64::from(p.count) / 1000.0,
                p95_ms: p.p95_ms(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_keep_count_mean_and_a_p95_within_a_bucket_and_merge_exactly() {
        let mut s = Series::default();
        for i in 0..100u64 {
            s.record(0, 1_000 + i * 10); // 1.00–1.99 ms
            s.record(2, 20_000);
        }
        let p = s.points(1.0);
        assert_eq!(p.len(), 2, "the empty interval is left out");
        assert_eq!((p[0].elapsed_s, p[0].count), (1.0, 100));
        assert!((p[0].avg_ms - 1.495).abs() < 1e-9);
        // The true p95 is 1.94 ms; a bucket is 25 % wide.
        assert!(
            p[0].p95_ms >= 1.94 && p[0].p95_ms <= 1.94 * 1.25,
            "{}",
            p[0].p95_ms
        );
        assert_eq!((p[1].elapsed_s, p[1].count), (3.0, 100));
        s.halve();
        let p = s.points(2.0);
        assert_eq!((p[0].elapsed_s, p[0].count), (2.0, 100));
        assert_eq!((p[1].elapsed_s, p[1].count), (4.0, 100));
        assert!((p[1].avg_ms - 20.0).abs() < 1e-9);
    }
}
