//! The load flags (`-u`, `-r`, `-t`, `-i`, `--stages`, `--arrival-rate`, `--pre-allocated-vus`,
//! `--max-vus`) over the scenario file's `load:`: which named scenarios they apply to, how they
//! combine with the file's keys without silent surprises, and the checks of the result against
//! what this machine can hold.

use loadlens_core::executor::{profile, LoadSettings};
use loadlens_core::limits;
use loadlens_core::loadspec::{self, ScenarioSpec};
use loadlens_core::scenario::{Load, Scenario};

use crate::cli::RunArgs;
use crate::exit::{Exit, Failure};

fn invalid(msg: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::InvalidInput, msg.to_string())
}

/// The named scenarios to run, in file order: all of `scenarios:`, or those `--scenario`
/// picks. Load flags apply when exactly one runs; with several, they are a usage error.
pub(crate) fn pick_scenarios<'a>(
    args: &RunArgs,
    s: &'a Scenario,
    file: &str,
) -> Result<Vec<(&'a String, &'a ScenarioSpec)>, Failure> {
    if !args.scenario_names.is_empty() && s.scenarios.is_empty() {
        return Err(invalid(format!(
            "--scenario: {file} has no `scenarios:` to pick from"
        )));
    }
    if let Some(n) = args
        .scenario_names
        .iter()
        .find(|n| !s.scenarios.contains_key(*n))
    {
        let known: Vec<&str> = s.scenarios.keys().map(String::as_str).collect();
        return Err(invalid(format!(
            "--scenario: {file} has no scenario `{n}` (scenarios: {})",
            known.join(", ")
        )));
    }
    let picked: Vec<_> = s
        .scenarios
        .iter()
        .filter(|(n, _)| args.scenario_names.is_empty() || args.scenario_names.contains(n))
        .collect();
    let flags: Vec<&str> = [
        (args.users.is_some(), "-u/--users"),
        (args.spawn_rate.is_some(), "-r/--spawn-rate"),
        (args.iterations.is_some(), "-i/--iterations"),
        (args.stages.is_some(), "--stages"),
        (args.arrival_rate.is_some(), "--arrival-rate"),
        (args.pre_allocated_vus.is_some(), "--pre-allocated-vus"),
        (args.max_vus.is_some(), "--max-vus"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect();
    if picked.len() > 1 && !flags.is_empty() {
        let names: Vec<&str> = picked.iter().map(|(n, _)| n.as_str()).collect();
        return Err(invalid(format!(
            "{} cannot apply to the named scenarios of {file} ({}): each has its own `load:`. Run one of them alone, with the flags applied to it, with `--scenario NAME`; -t/--run-time alone caps the whole run",
            flags.join(", "),
            names.join(", ")
        )));
    }
    Ok(picked)
}

/// A `load:` section (the file's, or the one named scenario's) under the load flags; `top` is
/// the file's own `load:` when `l` is a named scenario's (for its stop timeout).
///
/// Flags override the file key by key, except where a key would silently change what a flag
/// means: `--stages` define the run's length unless `-t` is given too (the file's `run_time`
/// would leave an idle tail after them, as k6 does not either); and a flag that cannot apply
/// to the file's load model is an error rather than ignored.
pub(crate) fn flagged_load(
    args: &RunArgs,
    l: &Load,
    top: Option<&Load>,
) -> Result<LoadSettings, Failure> {
    let file = loadspec::settings(l).map_err(invalid)?;
    let open = args.arrival_rate.is_some() || file.arrival.is_some();
    let closed_flag = match (args.users, args.spawn_rate) {
        (Some(_), _) => Some("-u/--users"),
        (None, Some(_)) => Some("-r/--spawn-rate"),
        (None, None) => None,
    };
    if let Some(flag) = closed_flag {
        if open {
            return Err(invalid(format!(
                "{flag} belongs to the closed model, and this run is of the open model (`arrival_rate` in the file or --arrival-rate): set the rate with --arrival-rate and the VUs with --max-vus"
            )));
        }
        if args.stages.is_none() && !file.stages.is_empty() {
            return Err(invalid(format!(
                "{flag} does not apply: the file's `stages` set the users over time; replace them with --stages (e.g. --stages 30s:50,5m:50)"
            )));
        }
    }
    if args.arrival_rate.is_some()
        && file.arrival.is_none()
        && args.stages.is_none()
        && !file.stages.is_empty()
    {
        return Err(invalid(
            "--arrival-rate: the file's `stages` are user counts (closed model), not arrival rates; give --stages with rates too",
        ));
    }
    let load = LoadSettings {
        users: args.users.or(l.users).unwrap_or(1),
        spawn_rate: args.spawn_rate.or(l.spawn_rate),
        run_time: args
            .run_time
            .or(l.run_time.filter(|_| args.stages.is_none())),
        iterations: args.iterations.or(l.iterations),
        stop_timeout: args
            .stop_timeout
            .or(l.stop_timeout)
            .or(top.and_then(|t| t.stop_timeout)),
        ..file
    };
    checked(load_flags(args, load)?)
}

/// Checks of a load that no single flag or key can make alone, and of what this machine can
/// hold (see `loadlens_core::limits`).
pub(crate) fn checked(load: LoadSettings) -> Result<LoadSettings, Failure> {
    if load.arrival.is_none() && load.stages.is_empty() && load.users == 0 {
        return Err(invalid("users must be at least 1"));
    }
    if let Some(r) = load.spawn_rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(invalid(format!(
                "spawn rate must be a positive number, got {r}"
            )));
        }
    }
    limits::check_load(&load, limits::available_memory()).map_err(invalid)?;
    Ok(load)
}

/// Apply `--stages`, `--arrival-rate`, `--pre-allocated-vus` and `--max-vus` on top of `load`.
pub(crate) fn load_flags(args: &RunArgs, mut load: LoadSettings) -> Result<LoadSettings, Failure> {
    if let Some(s) = &args.stages {
        load.stages = profile::parse_stages(s).map_err(|e| invalid(format!("--stages: {e}")))?;
    }
    let rate = match &args.arrival_rate {
        Some(r) => {
            Some(profile::parse_rate(r).map_err(|e| invalid(format!("--arrival-rate: {e}")))?)
        }
        None => None,
    };
    if rate.is_some() || args.pre_allocated_vus.is_some() || args.max_vus.is_some() {
        let base = load.arrival.clone();
        let rate = rate.or(base.as_ref().map(|a| a.rate_per_s));
        let Some(rate) = rate.or_else(|| (!load.stages.is_empty()).then_some(0.0)) else {
            return Err(invalid(
                "--pre-allocated-vus/--max-vus belong to the open model: add --arrival-rate",
            ));
        };
        let pre = args
            .pre_allocated_vus
            .or(base.as_ref().map(|a| a.pre_allocated_vus));
        let max = args.max_vus.or(base.as_ref().map(|a| a.max_vus));
        load.arrival = Some(loadspec::arrival(rate, pre, max).map_err(invalid)?);
    }
    if load.arrival.as_ref().is_some_and(|a| a.rate_per_s == 0.0) && load.stages.is_empty() {
        return Err(invalid(
            "the arrival rate is 0 and there are no --stages: nothing would run",
        ));
    }
    if load.arrival.is_some() && load.duration().is_none() && load.iterations.is_none() {
        return Err(invalid(
            "the open model needs an end: give -t/--run-time, --stages or -i/--iterations",
        ));
    }
    Ok(load)
}
