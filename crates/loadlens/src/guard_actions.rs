//! Wiring of guard actions and planned flips: the scenario's `actions:` resolved against the
//! load (a time, a share of the run time, a stage), checked before the run (a webhook's
//! header variables set, gate actions with an integration to switch them), the
//! [`Actions`] handle built from the integrations that lend a gate target, and the end of the
//! run (actions `on: run_failed`, restores, every record into the summary).

use std::time::Duration;

use loadlens_core::action::{Action, Planned, When};
use loadlens_core::actions::Actions;
use loadlens_core::executor::{Flip, LoadSettings};
use loadlens_core::report::{Summary, Verdict};
use loadlens_core::thresholds::Threshold;

/// At most this many planned flips: each keeps a segment of histograms until the end.
pub const MAX_FLIPS: usize = 16;

/// How long the end of the run waits for actions under way (their own retries included).
const FINISH_WITHIN: Duration = Duration::from_secs(15);

/// The run's actions, resolved.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Flips at a moment of the run.
    pub flips: Vec<Flip>,
    /// Actions at the end of a failed run.
    pub on_failed: Vec<Action>,
    /// `--dry-run-actions`.
    pub dry_run: bool,
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Resolve `actions:` against `load`; the error names the entry and what is wrong.
pub fn resolve(
    planned: &[Planned],
    load: &LoadSettings,
    thresholds: &[Threshold],
    dry_run: bool,
) -> Result<Plan, String> {
    let mut plan = Plan {
        dry_run,
        ..Plan::default()
    };
    for (i, p) in planned.iter().enumerate() {
        let n = i + 1;
        let at = match &p.when {
            When::At(d) => *d,
            When::AtShare(share) => {
                let total = load.duration().ok_or_else(|| {
                    format!("actions[{n}]: `at` as a share needs a run time (-t) or stages")
                })?;
                total.mul_f64(*share)
            }
            When::Stage(k) => {
                if *k > load.stages.len() {
                    return Err(format!(
                        "actions[{n}]: stage {k}: the load has {} stage(s)",
                        load.stages.len()
                    ));
                }
                load.stages[..k - 1].iter().map(|s| s.duration).sum()
            }
            When::RunFailed => {
                plan.on_failed.push(p.action.clone());
                continue;
            }
        };
        let cause = match &p.when {
            When::Stage(k) => format!("{}, planned at stage {k} ({})", p.action, secs(at)),
            _ => format!("{}, planned at {}", p.action, secs(at)),
        };
        plan.flips.push(Flip {
            at,
            cause,
            action: p.action.clone(),
            restore: p.restore,
        });
    }
    if plan.flips.len() > MAX_FLIPS {
        return Err(format!(
            "actions: {} planned flips, at most {MAX_FLIPS} (each keeps its own histograms until the end of the run)",
            plan.flips.len()
        ));
    }
    let every = plan
        .flips
        .iter()
        .map(|f| &f.action)
        .chain(&plan.on_failed)
        .chain(thresholds.iter().flat_map(|t| &t.on_fail));
    for a in every {
        if let Action::Webhook(w) = a {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(format!(
                    "webhook `{}`: the URL must start with http:// or https://",
                    loadlens_core::encoding::redact_url(&w.url)
                ));
            }
            for (header, var) in &w.headers_from_env {
                if std::env::var(var).map_or(true, |v| v.trim().is_empty()) {
                    return Err(format!(
                        "webhook {}: header {header} comes from the environment variable {var}, which is not set",
                        loadlens_core::encoding::redact_url(&w.url)
                    ));
                }
            }
        }
    }
    Ok(plan)
}

/// Every gate action has an integration on to switch it: `targets` are the names of those that
/// lend one (`statsig`). Checked before the run, so that a typo or a missing key is found then
/// rather than at the flip.
pub fn check_targets(
    plan: &Plan,
    thresholds: &[Threshold],
    targets: &[&str],
) -> Result<(), String> {
    let gates = plan
        .flips
        .iter()
        .map(|f| (&f.action, f.cause.clone()))
        .chain(
            plan.on_failed
                .iter()
                .map(|a| (a, format!("{a}, if the run fails"))),
        )
        .chain(thresholds.iter().flat_map(|t| {
            t.on_fail
                .iter()
                .map(move |a| (a, format!("{a}, when threshold `{}` fails", t.expression)))
        }));
    let on = if targets.is_empty() {
        "none is on".to_owned()
    } else {
        format!("on: {}", targets.join(", "))
    };
    for (a, what) in gates {
        let Action::Gate { target, .. } = a else {
            continue;
        };
        let missing = match target {
            Some(t) => !targets.contains(&t.as_str()),
            None => targets.is_empty(),
        };
        if missing {
            return Err(format!(
                "{what}: no integration {}that switches feature gates is on for this run ({on}; Statsig needs STATSIG_CONSOLE_API_KEY and --statsig-gate or a `statsig:` section)",
                target.as_deref().map(|t| format!("`{t}` ")).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The lines `--dry-run-actions` prints before the run: every action it would take.
pub fn dry_run_lines(plan: &Plan, thresholds: &[Threshold]) -> Vec<String> {
    let mut lines = Vec::new();
    for t in thresholds {
        for a in &t.on_fail {
            lines.push(format!(
                "dry run: when threshold `{}` first fails: {a}",
                t.expression
            ));
        }
    }
    for f in &plan.flips {
        lines.push(format!(
            "dry run: {}{}",
            f.cause,
            if f.restore {
                ", restored at the end"
            } else {
                ""
            }
        ));
    }
    for a in &plan.on_failed {
        lines.push(format!("dry run: if the run fails: {a}"));
    }
    lines.push("dry run: a Datadog monitor with `disable_gate=` in Alert is recorded, not acted on; nothing is changed anywhere".into());
    lines
}

/// The end of the run: actions `on: run_failed` when the verdict is not `passed`, the
/// restores, and every record (and its timeline events) into `summary`.
pub async fn finish(actions: &Actions, plan: &Plan, summary: &mut Summary) {
    let verdict = summary.verdict();
    if verdict != Verdict::Passed && verdict != Verdict::Interrupted {
        let why = match verdict {
            Verdict::Aborted => loadlens_core::run::describe(&summary.stop_reason),
            _ => {
                let failed: Vec<String> = summary
                    .outcome
                    .thresholds
                    .iter()
                    .filter(|t| !t.passed)
                    .map(|t| format!("threshold `{}` failed ({})", t.expression, t.detail))
                    .chain(summary.outcome.failures.iter().cloned())
                    .collect();
                failed.join("; ")
            }
        };
        let cause = format!("the run failed: {why}");
        for a in &plan.on_failed {
            actions.guard(&cause, a);
        }
    }
    let (records, late) = actions.finish(FINISH_WITHIN).await;
    summary.timeline.extend(late);
    summary.outcome.actions = records;
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadlens_core::load::Stage;

    fn planned(yaml: &str) -> Vec<Planned> {
        loadlens_core::yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn flips_are_resolved_against_the_run_time_and_the_stages() {
        let load = LoadSettings {
            stages: vec![
                Stage {
                    duration: Duration::from_secs(30),
                    target: 10.0,
                },
                Stage {
                    duration: Duration::from_secs(60),
                    target: 10.0,
                },
            ],
            ..LoadSettings::default()
        };
        let p = resolve(
            &planned(
                "- { at: 50%, statsig: { enable_gate: g } }\n\
                 - { stage: 2, statsig: { disable_gate: g } }\n\
                 - { at: 10s, statsig: { enable_gate: g }, restore: true }\n\
                 - { on: run_failed, statsig: { disable_gate: g } }\n",
            ),
            &load,
            &[],
            false,
        )
        .unwrap();
        let at: Vec<u64> = p.flips.iter().map(|f| f.at.as_secs()).collect();
        assert_eq!(at, [45, 30, 10]);
        assert_eq!(
            p.flips[1].cause,
            "disable gate g (statsig), planned at stage 2 (30.0 s)"
        );
        assert!(p.flips[2].restore);
        assert_eq!(p.on_failed.len(), 1);

        let e = resolve(
            &planned("- { stage: 3, statsig: { enable_gate: g } }\n"),
            &load,
            &[],
            false,
        )
        .unwrap_err();
        assert_eq!(e, "actions[1]: stage 3: the load has 2 stage(s)");
        let open_ended = LoadSettings::default();
        let e = resolve(
            &planned("- { at: 50%, statsig: { enable_gate: g } }\n"),
            &open_ended,
            &[],
            false,
        )
        .unwrap_err();
        assert!(e.contains("needs a run time"), "{e}");
        let many = "- { at: 1s, statsig: { enable_gate: g } }\n".repeat(MAX_FLIPS + 1);
        let e = resolve(&planned(&many), &load, &[], false).unwrap_err();
        assert!(e.contains("at most 16"), "{e}");
    }

    #[test]
    fn gate_actions_need_an_integration_that_switches_gates() {
        let t = loadlens_core::thresholds::parse("p95 < 1s, disable_gate g").unwrap();
        let plan = Plan::default();
        assert!(check_targets(&plan, std::slice::from_ref(&t), &["statsig"]).is_ok());
        let e = check_targets(&plan, &[t], &[]).unwrap_err();
        assert!(
            e.starts_with("disable gate g, when threshold `p95 < 1s, disable_gate g` fails: no integration that switches feature gates is on for this run (none is on;"),
            "{e}"
        );
    }
}
