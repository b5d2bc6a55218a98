//! What one loadlens process can hold, checked before a run starts (flags, the scenario file,
//! the dashboard's load changes) so that an absurd load is an input error instead of a process
//! that allocates until the machine kills it, writing no report.
//!
//! The rule, documented in the README:
//! - at most [`MAX_USERS`] users (closed model, any stage's target) or VUs (open model's
//!   `max_vus`) per process;
//! - each of them is budgeted [`VU_MEMORY`], and together they must fit in half of the memory
//!   the machine has available when the run starts (`MemAvailable` in `/proc/meminfo`; not
//!   checked where that is unknown);
//! - at most [`MAX_ARRIVAL_RATE`] arrivals per second (the start rate and every stage's target).

use crate::load::LoadSettings;

/// Most users or VUs in one process: well beyond what one machine drives (thousands to tens
/// of thousands), well below what exhausts it.
pub const MAX_USERS: u64 = 1_000_000;

/// Memory budgeted per user: its connection (socket buffers, TLS state), its client, variables
/// and task. An idle user measures about 20 KiB; a busy one with a response in hand more.
pub const VU_MEMORY: u64 = 64 * 1024;

/// Most arrivals per second of the open model: the pacer and the driver hand out each arrival
/// one by one, and one process serves about 100,000 requests per second at best.
pub const MAX_ARRIVAL_RATE: f64 = 1_000_000.0;

/// Bytes of memory available to new allocations now (`MemAvailable`), where the OS tells.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// A load above what one process can hold; the message says which setting and what fits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    /// More users or VUs than [`MAX_USERS`].
    #[error("{what} is {users}, above the limit of {MAX_USERS} users per process: split the load over several loadlens processes")]
    TooManyUsers {
        /// The setting, as the user knows it (`users (-u/-c)`).
        what: String,
        /// The number asked for.
        users: u64,
    },
    /// More users or VUs than half of the available memory holds at [`VU_MEMORY`] each.
    #[error(
        "{what} is {users}: at {} KiB each they need {} MiB, more than half of the {} MiB of memory available; this machine can hold about {fits}",
        VU_MEMORY / 1024,
        .need / (1024 * 1024),
        .available / (1024 * 1024)
    )]
    Memory {
        /// The setting, as the user knows it.
        what: String,
        /// The number asked for.
        users: u64,
        /// Bytes they need.
        need: u64,
        /// Bytes of memory available.
        available: u64,
        /// How many fit.
        fits: u64,
    },
    /// An arrival rate above [`MAX_ARRIVAL_RATE`].
    #[error("{what} is {rate}/s, above the limit of {MAX_ARRIVAL_RATE}/s per process: split the load over several loadlens processes")]
    Rate {
        /// The setting, as the user knows it.
        what: String,
        /// Arrivals per second asked for.
        rate: f64,
    },
    /// A stage target (closed model) above [`MAX_USERS`].
    #[error("a stage's target is {peak} users, above the limit of {MAX_USERS} users per process")]
    StageTarget {
        /// The highest stage target.
        peak: f64,
    },
}

/// Check `users` users (or VUs) against [`MAX_USERS`] and, when `available` memory is known,
/// against half of it at [`VU_MEMORY`] each. `what` names the setting in the error
/// (`-c/--users`, `max_vus`).
pub fn check_users(what: &str, users: u64, available: Option<u64>) -> Result<(), LimitError> {
    if users > MAX_USERS {
        return Err(LimitError::TooManyUsers {
            what: what.to_owned(),
            users,
        });
    }
    if let Some(avail) = available {
        let need = users.saturating_mul(VU_MEMORY);
        if need > avail / 2 {
            return Err(LimitError::Memory {
                what: what.to_owned(),
                users,
                need,
                available: avail,
                fits: avail / 2 / VU_MEMORY,
            });
        }
    }
    Ok(())
}

/// Check an arrival rate (per second) against [`MAX_ARRIVAL_RATE`].
pub fn check_rate(what: &str, rate: f64) -> Result<(), LimitError> {
    if rate > MAX_ARRIVAL_RATE {
        return Err(LimitError::Rate {
            what: what.to_owned(),
            rate,
        });
    }
    Ok(())
}

/// Check a whole load: the most users or VUs it can run, and every arrival rate it asks for.
pub fn check_load(load: &LoadSettings, available: Option<u64>) -> Result<(), LimitError> {
    match &load.arrival {
        Some(a) => {
            check_rate("the arrival rate", a.rate_per_s)?;
            for s in &load.stages {
                check_rate("a stage's arrival rate", s.target)?;
            }
            check_users("max_vus (--max-vus)", a.max_vus, available)
        }
        None => {
            check_users("users (-u/-c)", load.users, available)?;
            let peak = load.stages.iter().map(|s| s.target).fold(0.0, f64::max);
            // Stage targets are floats; anything above the cap is rejected before the cast.
            if peak > MAX_USERS as f64 {
                return Err(LimitError::StageTarget { peak });
            }
            check_users("a stage's target", peak as u64, available)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{ArrivalSettings, Stage};
    use std::time::Duration;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn users_fit_in_half_the_available_memory_and_under_the_cap() {
        assert!(check_users("-c", 10_000, Some(4 * GIB)).is_ok());
        let e = check_users("-c", 100_000, Some(4 * GIB)).unwrap_err();
        assert!(matches!(e, LimitError::Memory { fits: 32768, .. }));
        let e = e.to_string();
        assert_eq!(e, "-c is 100000: at 64 KiB each they need 6250 MiB, more than half of the 4096 MiB of memory available; this machine can hold about 32768");
        assert!(e.contains("can hold about 32768"), "{e}");
        assert!(check_users("-c", 10_000_000, None)
            .unwrap_err()
            .to_string()
            .contains("limit of 1000000"));
        assert!(check_users("-c", u64::MAX, Some(u64::MAX))
            .unwrap_err()
            .to_string()
            .contains("18446744073709551615"));
    }

    #[test]
    fn rates_and_stage_peaks_are_checked() {
        let open = LoadSettings {
            arrival: Some(ArrivalSettings {
                rate_per_s: 1e12,
                pre_allocated_vus: 1,
                max_vus: 10,
            }),
            ..LoadSettings::default()
        };
        assert!(check_load(&open, None)
            .unwrap_err()
            .to_string()
            .contains("1000000000000/s"));
        let staged = LoadSettings {
            users: 1,
            stages: vec![Stage {
                duration: Duration::from_secs(1),
                target: 1e15,
            }],
            ..LoadSettings::default()
        };
        assert!(check_load(&staged, None)
            .unwrap_err()
            .to_string()
            .contains("stage"));
        assert!(check_load(&LoadSettings::closed(50), Some(GIB)).is_ok());
    }
}
