//! File descriptors for the users: each user holds a connection, and a run whose users need
//! more descriptors than the process may open fails their connects with `EMFILE` (counted as
//! kind `resource`, with back-off). Before the run, the soft limit (`ulimit -n`, often 1024) is
//! raised as far as the hard limit allows, as wrk and k6 users expect, and a run that still
//! does not fit gets a warning that says what to do.

use loadlens_core::executor::{LoadSettings, ScenarioRun};

/// Descriptors the process needs besides its users' connections: the runtime, standard
/// streams, report files, sinks and the dashboard.
const RESERVED: u64 = 32;

/// The most users (closed model) or VUs (open model) `load` can run at once in this process:
/// its segment's share of the whole run's (`--segment 2/6` of 100,000 users runs 16,667).
fn peak_users(load: &LoadSettings) -> u64 {
    let whole = match &load.arrival {
        Some(a) => a.max_vus,
        None => {
            let staged = load.stages.iter().map(|s| s.target).fold(0.0, f64::max);
            load.users.max(staged as u64)
        }
    };
    load.segment.share(whole)
}

/// Descriptors a run needs: one per user of every scenario (they may overlap), plus
/// [`RESERVED`].
pub fn needed(load: &LoadSettings, scenarios: &[ScenarioRun]) -> u64 {
    let users = if scenarios.is_empty() {
        peak_users(load)
    } else {
        scenarios.iter().map(|s| peak_users(&s.load)).sum()
    };
    users.saturating_add(RESERVED)
}

/// Raise the soft descriptor limit towards the hard one so that `needed` fit; a warning when
/// they still do not.
#[cfg(unix)]
pub fn ensure(needed: u64) -> Option<String> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?; // `None`: unlimited.
    if soft >= needed {
        return None;
    }
    // Up to the hard limit, as wrk and k6 users expect; an unlimited hard limit still has the
    // kernel's own ceiling (`nr_open`, 1,048,576 by default), so ask only for what is needed.
    let raised = limit.maximum.map_or(needed, |hard| hard.max(soft));
    let now = match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => raised,
        Err(_) => soft,
    };
    (now < needed).then(|| {
        format!(
            "{} users need about {needed} file descriptors, but this process may open only {now} (ulimit -n; hard limit {}): connections beyond it fail with kind `resource`. Raise the limit (e.g. `ulimit -n {}`) or run fewer users",
            needed - RESERVED,
            limit.maximum.map_or_else(|| "unlimited".to_owned(), |h| h.to_string()),
            needed.next_power_of_two().max(65_536),
        )
    })
}

/// Descriptor limits are a Unix notion.
#[cfg(not(unix))]
pub fn ensure(_needed: u64) -> Option<String> {
    None
}
