//! Is the generator itself the bottleneck? Samples loadlens's own CPU time and memory from
//! `/proc/self/stat` and `/proc/self/status` once per aggregator tick (no extra crate: two small
//! text files), and at the end judges whether the results can be trusted:
//!
//! - CPU above [`SATURATED_PCT`] of the CPUs this process may use, for [`SUSTAINED_TICKS`]
//!   consecutive ticks: the generator was saturated, so latencies include its own queueing.
//! - Open model: fewer than [`MIN_ACHIEVED_PCT`] of the intended arrivals started: the target
//!   was not held.
//!
//! On systems without `/proc` the CPU and memory figures are absent and only the achieved-rate
//! check applies.

use std::time::{Duration, Instant};

/// CPU share (of the CPUs available to the process) above which a tick counts as saturated.
pub const SATURATED_PCT: f64 = 90.0;
/// Consecutive saturated ticks that make the generator "saturated".
pub const SUSTAINED_TICKS: usize = 5;
/// Share of the intended arrivals that must start for an open-model run to be trustworthy.
pub const MIN_ACHIEVED_PCT: f64 = 95.0;
/// Linux's `USER_HZ`: the unit of utime/stime in `/proc/self/stat` (100 on every mainstream
/// architecture; reading `sysconf(_SC_CLK_TCK)` would need `libc` and `unsafe`).
const TICKS_PER_S: f64 = 100.0;

/// The generator's own resource use and the verdict on it, as written in reports.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorHealth {
    /// False when the results should not be trusted (see `reasons`).
    pub healthy: bool,
    /// Why the results are not trustworthy (empty when healthy).
    pub reasons: Vec<String>,
    /// CPUs the process may use (affinity and cgroup quota).
    pub cpu_cores: f64,
    /// Mean CPU use over the run, percent of `cpu_cores` (null without `/proc`).
    pub cpu_avg_pct: Option<f64>,
    /// Highest CPU use in one tick, percent of `cpu_cores`.
    pub cpu_max_pct: Option<f64>,
    /// Longest stretch of consecutive ticks above the saturation level, seconds.
    pub cpu_saturated_s: f64,
    /// CPU seconds used (user + system) during the run.
    pub cpu_seconds: Option<f64>,
    /// Peak resident memory, MB.
    pub peak_rss_mb: Option<f64>,
    /// Open model: percent of the intended arrivals that started (null in the closed model).
    pub achieved_pct: Option<f64>,
}

/// CPU ticks (user + system) and resident set size now.
fn read_proc() -> Option<(u64, Option<u64>)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        });
    Some((utime + stime, hwm))
}

/// Samples CPU and memory each tick and keeps what the verdict needs (constant memory).
#[derive(Debug)]
pub struct HealthMonitor {
    cores: f64,
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
    max_pct: Option<f64>,
    streak: usize,
    streak_time: Duration,
    longest: Duration,
    peak_kb: Option<u64>,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthMonitor {
    /// Start measuring now.
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let now = read_proc().map(|(t, _)| (Instant::now(), t));
        HealthMonitor {
            cores,
            first: now,
            last: now,
            max_pct: None,
            streak: 0,
            streak_time: Duration::ZERO,
            longest: Duration::ZERO,
            peak_kb: None,
        }
    }

    /// One sample (each aggregator tick). Returns this tick's CPU percent, if known.
    pub fn sample(&mut self) -> Option<f64> {
        let (ticks, hwm) = read_proc()?;
        let now = Instant::now();
        self.peak_kb = hwm.or(self.peak_kb);
        let (at, before) = self.last.replace((now, ticks))?;
        let wall = now.duration_since(at);
        if wall < Duration::from_millis(5) {
            return None;
        }
        let pct = self.pct(ticks.saturating_sub(before), wall);
        self.max_pct = Some(self.max_pct.map_or(pct, |m: f64| m.max(pct)));
        self.observe(pct, wall);
        Some(pct)
    }

    fn pct(&self, ticks: u64, wall: Duration) -> f64 {
        ticks as f64 / TICKS_PER_S / wall.as_secs_f64() / self.cores * 100.0
    }

    /// Fold one tick's CPU percent in (separate from `/proc` so tests can drive it).
    fn observe(&mut self, pct: f64, wall: Duration) {
        if pct > SATURATED_PCT {
            self.streak += 1;
            self.streak_time += wall;
            if self.streak >= SUSTAINED_TICKS {
                self.longest = self.longest.max(self.streak_time);
            }
        } else {
            self.streak = 0;
            self.streak_time = Duration::ZERO;
        }
    }

    /// The verdict so far. `achieved_pct` is the open model's share of intended arrivals that
    /// started (`None` in the closed model).
    pub fn report(&self, achieved_pct: Option<f64>) -> GeneratorHealth {
        let cpu = match (self.first, self.last) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                Some((c1 - c0, self.pct(c1 - c0, t1.duration_since(t0))))
            }
            _ => None,
        };
        let mut reasons = Vec::new();
        if self.longest > Duration::ZERO {
            reasons.push(format!(
                "the generator's CPU was above {SATURATED_PCT:.0}% of its {} CPU(s) for {:.0} s in a row: latencies include its own queueing (use more CPUs or workers, or less load)",
                self.cores,
                self.longest.as_secs_f64()
            ));
        }
        if let Some(a) = achieved_pct.filter(|a| *a < MIN_ACHIEVED_PCT) {
            reasons.push(format!(
                "only {a:.1}% of the intended arrivals started (below {MIN_ACHIEVED_PCT:.0}%): the target rate was not held (raise max VUs or lower the rate)"
            ));
        }
        GeneratorHealth {
            healthy: reasons.is_empty(),
            reasons,
            cpu_cores: self.cores,
            cpu_avg_pct: cpu.map(|c| c.1),
            cpu_max_pct: self.max_pct,
            cpu_saturated_s: self.longest.as_secs_f64(),
            cpu_seconds: cpu.map(|c| c.0 as f64 / TICKS_PER_S),
            peak_rss_mb: self.peak_kb.map(|k| k as f64 / 1024.0),
            achieved_pct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_memory_from_proc() {
        if read_proc().is_none() {
            return; // not Linux
        }
        let mut m = HealthMonitor::new();
        // Burn some CPU so the second sample differs.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(120) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let pct = m.sample().expect("a CPU sample");
        assert!(pct > 10.0, "{pct}");
        let r = m.report(None);
        assert!(r.peak_rss_mb.unwrap() > 1.0);
        assert!(r.cpu_seconds.unwrap() > 0.0);
        assert!(r.healthy, "{:?}", r.reasons);
    }

    #[test]
    fn sustained_saturation_and_missed_rate_make_results_untrustworthy() {
        let mut m = HealthMonitor::new();
        let s = Duration::from_secs(1);
        // Four saturated seconds are not yet "sustained".
        for _ in 0..4 {
            m.observe(99.0, s);
        }
        m.observe(20.0, s);
        assert!(m.report(None).healthy);
        for _ in 0..6 {
            m.observe(95.0, s);
        }
        let r = m.report(Some(99.0));
        assert!(!r.healthy);
        assert_eq!(r.cpu_saturated_s, 6.0);
        assert!(r.reasons[0].contains("for 6 s in a row"), "{:?}", r.reasons);
        let mut ok = HealthMonitor::new();
        ok.observe(50.0, s);
        let r = ok.report(Some(90.0));
        assert!(!r.healthy);
        assert!(
            r.reasons[0].contains("90.0% of the intended arrivals"),
            "{:?}",
            r.reasons
        );
    }
}
