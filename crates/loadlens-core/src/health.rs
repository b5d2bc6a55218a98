//! Is the generator itself the bottleneck? Once per aggregator tick, and never on the request
//! path, reads a few small `/proc` text files (no extra crate) for loadlens's own CPU time and
//! memory (`/proc/self/stat`, `/proc/self/status`), the machine's CPU (`/proc/stat`) and the
//! network namespace's bytes (`/proc/self/net/dev`). Each tick gives one [`HealthSample`] for the
//! snapshot; at the end the monitor judges whether the results can be trusted:
//!
//! - CPU above [`SATURATED_PCT`] of the CPUs this process may use, for [`SUSTAINED_TICKS`]
//!   consecutive ticks: the generator was saturated, so latencies include its own queueing.
//! - Open model: fewer than [`MIN_ACHIEVED_PCT`] of the intended arrivals started: the target
//!   was not held.
//!
//! On systems without `/proc` the CPU, memory and network figures are absent and only the
//! achieved-rate check applies.

use std::time::{Duration, Instant};

use crate::stats::HealthSample;

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

/// What one read of `/proc` gives (each figure absent when its file is missing or unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ProcReading {
    /// This process's CPU ticks (user + system), `/proc/self/stat`.
    cpu_ticks: Option<u64>,
    /// Resident set size and its peak (`VmRSS`, `VmHWM`), KiB, `/proc/self/status`.
    rss_kb: Option<u64>,
    hwm_kb: Option<u64>,
    /// The machine's busy and total CPU ticks over all CPUs, `/proc/stat`.
    machine: Option<(u64, u64)>,
    /// Bytes received and sent over every interface of the network namespace,
    /// `/proc/self/net/dev`.
    net: Option<(u64, u64)>,
}

impl ProcReading {
    /// Read every file now (five small text files: once per tick, never per request).
    fn now() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let status = read("/proc/self/status");
        ProcReading {
            cpu_ticks: read("/proc/self/stat").and_then(|s| parse_self_stat(&s)),
            rss_kb: status.as_deref().and_then(|s| status_kb(s, "VmRSS:")),
            hwm_kb: status.as_deref().and_then(|s| status_kb(s, "VmHWM:")),
            machine: read("/proc/stat").and_then(|s| parse_machine_stat(&s)),
            net: read("/proc/self/net/dev").and_then(|s| parse_net_dev(&s)),
        }
    }
}

/// This process's CPU ticks (user + system) from the text of `/proc/self/stat`.
fn parse_self_stat(stat: &str) -> Option<u64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` figure of `/proc/self/status` (`VmRSS:`, `VmHWM:`).
fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// `(busy, total)` CPU ticks of the whole machine from the text of `/proc/stat` (its first,
/// `cpu ` line). Idle and I/O wait are not busy; guest time is already inside user time.
fn parse_machine_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `(received, sent)` bytes summed over every interface from the text of `/proc/self/net/dev`
/// (loopback included: a load test against a local target travels over `lo`).
fn parse_net_dev(dev: &str) -> Option<(u64, u64)> {
    let mut sum = None;
    for line in dev.lines() {
        let Some((_, counters)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<&str> = counters.split_whitespace().collect();
        // 8 receive columns (bytes first), then 8 transmit columns (bytes first).
        let (Some(rx), Some(tx)) = (f.first(), f.get(8)) else {
            continue;
        };
        let (Ok(rx), Ok(tx)) = (rx.parse::<u64>(), tx.parse::<u64>()) else {
            continue;
        };
        let (r, t) = sum.get_or_insert((0u64, 0u64));
        *r += rx;
        *t += tx;
    }
    sum
}

/// Samples CPU, memory and network each tick and keeps what the verdict needs (constant
/// memory).
#[derive(Debug)]
pub struct HealthMonitor {
    cores: f64,
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
    /// The previous reading, for the per-interval figures.
    previous: (Instant, ProcReading),
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
        let at = Instant::now();
        let reading = ProcReading::now();
        let now = reading.cpu_ticks.map(|t| (at, t));
        HealthMonitor {
            cores,
            first: now,
            last: now,
            previous: (at, reading),
            max_pct: None,
            streak: 0,
            streak_time: Duration::ZERO,
            longest: Duration::ZERO,
            peak_kb: None,
        }
    }

    /// One sample (each aggregator tick): the generator's resource use since the previous
    /// one. `open_connections` comes from the client; `sched_delay` is how late the tick fired
    /// (`None` for a tick that was not scheduled, such as the final one).
    pub fn sample(
        &mut self,
        open_connections: Option<u64>,
        sched_delay: Option<Duration>,
    ) -> HealthSample {
        let reading = ProcReading::now();
        let now = Instant::now();
        let (at, before) = std::mem::replace(&mut self.previous, (now, reading));
        let wall = now.duration_since(at);
        self.peak_kb = reading.hwm_kb.or(self.peak_kb);
        // Too short an interval gives no meaningful rate (the final tick right after one).
        let rated = wall >= Duration::from_millis(5);
        let secs = wall.as_secs_f64();
        let mut process_cpu_pct = None;
        if let Some(ticks) = reading.cpu_ticks {
            if let Some((_, last)) = self.last.replace((now, ticks)) {
                if rated {
                    let pct = self.pct(ticks.saturating_sub(last), wall);
                    self.max_pct = Some(self.max_pct.map_or(pct, |m: f64| m.max(pct)));
                    self.observe(pct, wall);
                    // CPU time is counted in 10 ms ticks per thread: a short interval can show
                    // a few percent above 100, which the figure's 0–100 range does not allow.
                    process_cpu_pct = Some(pct.min(100.0));
                }
            }
        }
        let machine_cpu_pct = match (before.machine, reading.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64 * 100.0)
            }
            _ => None,
        };
        let net = match (before.net, reading.net) {
            (Some((r0, s0)), Some((r1, s1))) if rated => Some((
                r1.saturating_sub(r0) as f64 / secs,
                s1.saturating_sub(s0) as f64 / secs,
            )),
            _ => None,
        };
        HealthSample {
            process_cpu_pct,
            machine_cpu_pct,
            rss_bytes: reading.rss_kb.map(|k| k * 1024),
            open_connections,
            net_sent_bytes_per_s: net.map(|n| n.1),
            net_received_bytes_per_s: net.map(|n| n.0),
            sched_delay_ms: sched_delay.map(|d| d.as_secs_f64() * 1000.0),
        }
    }

    /// A monitor of another process (a coordinator's view of one of its workers), with
    /// `cores` CPUs, fed with the samples that process measured ([`HealthMonitor::fold`]).
    pub fn remote(cores: f64) -> Self {
        HealthMonitor {
            cores,
            first: None,
            last: None,
            previous: (Instant::now(), ProcReading::default()),
            max_pct: None,
            streak: 0,
            streak_time: Duration::ZERO,
            longest: Duration::ZERO,
            peak_kb: None,
        }
    }

    /// Fold in one interval of `wall` that the monitored process measured of itself.
    pub fn fold(&mut self, s: &HealthSample, wall: Duration) {
        if let Some(pct) = s.process_cpu_pct {
            self.max_pct = Some(self.max_pct.map_or(pct, |m: f64| m.max(pct)));
            self.observe(pct, wall);
        }
        if let Some(rss) = s.rss_bytes {
            self.peak_kb = Some(self.peak_kb.unwrap_or(0).max(rss / 1024));
        }
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
        if ProcReading::now().cpu_ticks.is_none() {
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
        let pct = m.sample(None, None).process_cpu_pct.expect("a CPU sample");
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

    const SELF_STAT: &str = "4242 (load lens) (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 200000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 17000 0 0 0 17 1 0 0 0 0 0";

    const STATUS: &str = "Name:\tloadlens\nVmPeak:\t  300000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";

    const PROC_STAT: &str =
        "cpu  100 20 30 800 50 5 5 10 7 0\ncpu0 50 10 15 400 25 2 3 5 3 0\nintr 1 2 3\n";

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0
  eth0:   250 3 0 0 0 0 0 0   75 2 0 0 0 0 0 0
";

    #[test]
    fn parses_sample_proc_texts() {
        // Fields after the command name, even with spaces and parentheses in it.
        assert_eq!(parse_self_stat(SELF_STAT), Some(1234 + 567));
        assert_eq!(status_kb(STATUS, "VmRSS:"), Some(20480));
        assert_eq!(status_kb(STATUS, "VmHWM:"), Some(40960));
        assert_eq!(status_kb(STATUS, "VmSwap:"), None);
        // Busy = everything but idle and iowait over the first eight columns (guest time is
        // already inside user time).
        let total = 100 + 20 + 30 + 800 + 50 + 5 + 5 + 10;
        assert_eq!(parse_machine_stat(PROC_STAT), Some((total - 850, total)));
        // Every interface, loopback included.
        assert_eq!(parse_net_dev(NET_DEV), Some((1250, 1075)));
        assert_eq!(parse_self_stat("garbage"), None);
        assert_eq!(parse_machine_stat("intr 1 2"), None);
        assert_eq!(parse_net_dev("Inter-|\n face |\n"), None);
    }

    #[test]
    fn one_sample_gives_every_figure_on_linux() {
        if ProcReading::now().net.is_none() {
            return; // not Linux
        }
        let mut m = HealthMonitor::new();
        std::thread::sleep(Duration::from_millis(20));
        let s = m.sample(Some(3), Some(Duration::from_millis(7)));
        assert!(s.process_cpu_pct.is_some(), "{s:?}");
        let machine = s.machine_cpu_pct.expect("machine CPU");
        assert!((0.0..=100.0).contains(&machine), "{s:?}");
        assert!(s.rss_bytes.unwrap() > 1 << 20, "{s:?}");
        assert!(s.net_sent_bytes_per_s.unwrap() >= 0.0, "{s:?}");
        assert!(s.net_received_bytes_per_s.unwrap() >= 0.0, "{s:?}");
        assert_eq!(s.open_connections, Some(3));
        assert_eq!(s.sched_delay_ms, Some(7.0));
    }
}
