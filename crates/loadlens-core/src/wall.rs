//! Wall-clock times of monotonic instants: a request's wall-clock start is computed from the
//! monotonic one it is timed from, instead of reading the system clock a second time per
//! request (issue #18). The two clocks are tied at the start of every run and once per
//! aggregation tick ([`reanchor`]), so a step of the system clock (NTP, a resumed VM) shows
//! from the next tick on, as it would in `SystemTime::now()`; between ticks the two clocks run
//! at the same rate (both are slewed alike).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The monotonic origin that instants are measured from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Wall-clock nanoseconds since the Unix epoch at [`base`]; `i64::MIN` until first tied.
static OFFSET_NS: AtomicI64 = AtomicI64::new(i64::MIN);

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Tie the wall clock to the monotonic one now.
pub fn reanchor() {
    let base = base();
    // The system clock read between two monotonic readings, again if the thread was
    // preempted in between (the tie would be off by as long as it waited).
    let (mut mono, mut wall) = (Instant::now(), SystemTime::now());
    for _ in 0..5 {
        let m1 = Instant::now();
        wall = SystemTime::now();
        let m2 = Instant::now();
        mono = m1 + (m2 - m1) / 2;
        if m2 - m1 < Duration::from_micros(20) {
            break;
        }
    }
    let since_epoch = match wall.duration_since(UNIX_EPOCH) {
        Ok(d) => nanos(d),
        Err(e) => -nanos(e.duration()),
    };
    OFFSET_NS.store(
        since_epoch - nanos(mono.saturating_duration_since(base)),
        Ordering::Relaxed,
    );
}

/// The wall-clock time of `at`.
pub fn at(at: Instant) -> SystemTime {
    let base = base();
    let mut offset = OFFSET_NS.load(Ordering::Relaxed);
    if offset == i64::MIN {
        reanchor();
        offset = OFFSET_NS.load(Ordering::Relaxed);
    }
    let since_base = match at.checked_duration_since(base) {
        Some(d) => nanos(d),
        None => -nanos(base.duration_since(at)),
    };
    let ns = offset.saturating_add(since_base);
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Measured bounds: the derived time of now lies between two readings of the system clock
    /// taken around it, and later instants map to later times by the same amount.
    #[test]
    fn the_wall_time_of_an_instant_is_the_system_clocks() {
        reanchor();
        let before = SystemTime::now();
        let now = Instant::now();
        let derived = at(now);
        let after = SystemTime::now();
        // Both clocks read within the same microseconds; allow the tie's own rounding.
        let slack = Duration::from_micros(50);
        assert!(
            derived + slack >= before && derived <= after + slack,
            "{derived:?} not in {before:?}..{after:?}"
        );
        // Other tests' runs may tie the clocks again in between: by then a few microseconds
        // may separate them, never more.
        let close = |a: Duration, b: Duration| a.abs_diff(b) < slack;
        let later = now + Duration::from_millis(1500);
        let ahead = at(later).duration_since(derived).unwrap();
        assert!(close(ahead, Duration::from_millis(1500)), "{ahead:?}");
        let earlier = now - Duration::from_millis(20);
        let behind = derived.duration_since(at(earlier)).unwrap();
        assert!(close(behind, Duration::from_millis(20)), "{behind:?}");
    }
}
