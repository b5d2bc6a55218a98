//! A latency histogram: HDR with 3 significant digits, recorded in microseconds.
//!
//! HDR histograms keep memory constant for any run length and merge exactly, which is what
//! makes percentiles across threads and workers correct (docs/architecture.md, invariants).

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latency histogram in microseconds (auto-resizing, 3 significant digits).
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram. Memory grows with the logarithm of the largest value recorded.
    pub fn new() -> Self {
        // 3 significant digits is within the hdrhistogram bounds: `new` cannot fail here.
        LatencyHistogram(Histogram::new(3).expect("3 significant digits is valid"))
    }

    /// Record one duration.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2);
        // Auto-resize makes this infallible for any value we can produce.
        let _ = self.0.record(us);
    }

    /// Add every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        let _ = self.0.add(&other.0);
    }

    /// Forget every value, keeping the allocation.
    pub fn clear(&mut self) {
        self.0.reset();
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value at quantile `q` (0.0..=1.0), in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// Smallest value in milliseconds; 0 when empty.
    pub fn min_ms(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.min() as f64 / 1000.0
        }
    }

    /// Largest value in milliseconds (exact up to the histogram's precision); 0 when empty.
    pub fn max_ms(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.max() as f64 / 1000.0
        }
    }

    /// Mean in milliseconds; 0 when empty.
    pub fn mean_ms(&self) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            self.0.mean() / 1000.0
        }
    }

    /// The standard percentile set used in every report.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            min: self.min_ms(),
            avg: self.mean_ms(),
            p50: self.quantile_ms(0.50),
            p66: self.quantile_ms(0.66),
            p75: self.quantile_ms(0.75),
            p80: self.quantile_ms(0.80),
            p90: self.quantile_ms(0.90),
            p95: self.quantile_ms(0.95),
            p98: self.quantile_ms(0.98),
            p99: self.quantile_ms(0.99),
            p99_9: self.quantile_ms(0.999),
            p99_99: self.quantile_ms(0.9999),
            max: self.max_ms(),
        }
    }

    /// `(value_ms, cumulative fraction)` pairs for a percentile curve, at most about `points` long.
    pub fn curve(&self, points: usize) -> Vec<(f64, f64)> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let ticks = (points / 10).max(1) as u32;
        self.0
            .iter_quantiles(ticks)
            .map(|v| {
                (
                    self.0.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                    v.quantile_iterated_to(),
                )
            })
            .take(points)
            .collect()
    }

    /// `[value_ms, quantile]` pairs at fixed quantiles, every 10 % up to 80 % and then
    /// logarithmically in the tail (90 %, 99 %, … 99.999 %), as far as the samples reach: at
    /// most [`Self::PERCENTILE_CURVE_POINTS`] points whatever the run length, with the tail
    /// resolved (unlike [`Self::curve`], whose `take` can cut the tail of a long-tailed
    /// histogram).
    ///
    /// `n` samples tell nothing beyond the quantile `1 - 1/n`, where the largest of them sits:
    /// the curve ends there, at the maximum (385 samples: at 99.74 %), rather than drawing the
    /// maximum flat out to 99.999 %. (Results written before this ended at `[max, 1.0]`.)
    pub fn percentile_curve(&self) -> Vec<[f64; 2]> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let top = Self::highest_quantile(self.len());
        let mut qs: Vec<f64> = (0..9).map(|i| f64::from(i) / 10.0).collect();
        // 1 - 10^-x for x in 1.0..=5.0 by 0.125: 33 points from 90 % to 99.999 %.
        qs.extend((8..=40).map(|i| 1.0 - 10f64.powf(-f64::from(i) / 8.0)));
        let round = |q: f64| (q * 1e6).round() / 1e6;
        let mut out: Vec<[f64; 2]> = qs
            .into_iter()
            .map(round)
            .filter(|q| *q < round(top))
            .map(|q| [self.quantile_ms(q), q])
            .collect();
        out.push([self.max_ms(), round(top)]);
        out
    }

    /// The highest quantile `n` samples support, `1 - 1/n` (0 for a single sample: it is the
    /// whole distribution, drawn at 0 %).
    pub fn highest_quantile(n: u64) -> f64 {
        if n <= 1 {
            0.0
        } else {
            1.0 - 1.0 / n as f64
        }
    }

    /// Most points [`Self::percentile_curve`] returns.
    pub const PERCENTILE_CURVE_POINTS: usize = 43;

    /// The histogram in HDR's V2 compressed encoding (`V2DeflateSerializer`, as
    /// HdrHistogram's Java, C and Go libraries read it), base64: lossless, a few hundred bytes.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        use hdrhistogram::serialization::Serializer as _;
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail; a histogram too large to encode (counts past 2^63)
        // gives an empty string, which `from_base64` refuses.
        let _ =
            hdrhistogram::serialization::V2DeflateSerializer::new().serialize(&self.0, &mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Read back [`Self::to_base64`] (V2 or V2 deflate, base64).
    pub fn from_base64(text: &str) -> Result<Self, DecodeError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| DecodeError::new(format!("not base64: {e}")))?;
        let mut h: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| DecodeError::new(format!("not an HDR V2 histogram: {e:?}")))?;
        // Merged with others of any range later.
        h.auto(true);
        Ok(LatencyHistogram(h))
    }

    /// The underlying HDR histogram (microseconds), for exporters.
    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }
}

/// A histogram in a result file that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    /// An error saying `what`.
    pub(crate) fn new(what: String) -> Self {
        DecodeError(what)
    }
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Smallest value.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 66th percentile (Locust column).
    pub p66: f64,
    /// 75th percentile.
    pub p75: f64,
    /// 80th percentile (Locust column).
    pub p80: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 98th percentile (Locust column).
    pub p98: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest value.
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::new();
        for v in 1..=1000 {
            h.record(ms(v));
        }
        let p = h.percentiles();
        assert_eq!(h.len(), 1000);
        // 3 significant digits: within 0.1 % of the exact order statistic.
        for (got, want) in [
            (p.p50, 500.0),
            (p.p90, 900.0),
            (p.p95, 950.0),
            (p.p99, 990.0),
            (p.p99_9, 999.0),
        ] {
            assert!(
                (got - want).abs() <= want * 0.001 + 0.001,
                "{got} vs {want}"
            );
        }
        assert!((p.min - 1.0).abs() < 0.002);
        assert!((p.max - 1000.0).abs() < 1.0);
        assert!((p.avg - 500.5).abs() < 0.5);
    }

    #[test]
    fn merging_shards_equals_one_histogram_of_all_samples() {
        let mut all = LatencyHistogram::new();
        let mut shards = vec![LatencyHistogram::new(); 4];
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..20_000 {
            // A long-tailed mix: mostly fast, a few slow.
            let us = if rng.u32(0..100) < 3 {
                rng.u64(100_000..3_000_000)
            } else {
                rng.u64(200..20_000)
            };
            let d = Duration::from_micros(us);
            all.record(d);
            shards[i % 4].record(d);
        }
        let mut merged = LatencyHistogram::new();
        for s in &shards {
            merged.merge(s);
        }
        assert_eq!(merged.percentiles(), all.percentiles());
        assert_eq!(merged.len(), 20_000);
    }

    #[test]
    fn the_base64_encoding_is_lossless_and_merges_exactly() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut all = LatencyHistogram::new();
        let mut parts = vec![LatencyHistogram::new(); 3];
        for i in 0..30_000 {
            let d = Duration::from_micros(if i % 50 == 0 {
                rng.u64(1_000_000..60_000_000)
            } else {
                rng.u64(50..50_000)
            });
            all.record(d);
            parts[i % 3].record(d);
        }
        let mut merged = LatencyHistogram::new();
        for p in &parts {
            let text = p.to_base64();
            assert!(text.len() < 20_000, "{}", text.len());
            let back = LatencyHistogram::from_base64(&text).unwrap();
            assert_eq!(back.inner(), p.inner());
            merged.merge(&back);
        }
        assert_eq!(merged.percentiles(), all.percentiles());
        assert_eq!(merged.inner(), all.inner());
        let empty = LatencyHistogram::from_base64(&LatencyHistogram::new().to_base64()).unwrap();
        assert!(empty.is_empty());
        assert!(LatencyHistogram::from_base64("%%%").is_err());
        assert!(LatencyHistogram::from_base64("aGVsbG8=").is_err());
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = LatencyHistogram::new();
        assert_eq!(h.percentiles(), Percentiles::default());
        assert!(h.curve(100).is_empty());
        assert!(h.percentile_curve().is_empty());
    }

    #[test]
    fn percentile_curve_is_bounded_monotonic_and_reaches_the_max() {
        let mut h = LatencyHistogram::new();
        for v in 1..=100_000u64 {
            h.record(Duration::from_micros(v * 10));
        }
        let c = h.percentile_curve();
        assert!(
            c.len() <= LatencyHistogram::PERCENTILE_CURVE_POINTS,
            "{}",
            c.len()
        );
        assert!(c
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] < w[1][1]));
        assert_eq!(c.last().unwrap(), &[h.max_ms(), 0.99999]);
        let p99 = c.iter().find(|p| (p[1] - 0.99).abs() < 1e-9).unwrap();
        assert!((p99[0] - 990.0).abs() < 1.0, "{p99:?}");
    }

    #[test]
    fn percentile_curve_stops_where_the_samples_stop() {
        let mut h = LatencyHistogram::new();
        for v in 1..=385u64 {
            h.record(Duration::from_millis(v));
        }
        let c = h.percentile_curve();
        // 1 - 1/385 = 99.74 %: the last point, at the maximum; nothing at 99.9 % or beyond.
        let last = c.last().unwrap();
        assert_eq!(last[1], 0.997403);
        assert_eq!(last[0], h.max_ms());
        assert!(c.iter().all(|p| p[1] <= 0.997403), "{c:?}");
        assert!(c.windows(2).all(|w| w[0][1] < w[1][1]));
        let mut one = LatencyHistogram::new();
        one.record(Duration::from_millis(7));
        assert_eq!(one.percentile_curve().len(), 1);
    }
}
