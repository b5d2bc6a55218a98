//! The names a sample's indexes stand for: request names, their servers, scenarios, user
//! types and tasks, taken from the plans before the run.

use loadlens_core::executor::ScenarioRun;
use loadlens_core::plan::Plan;
use loadlens_core::sample::Sample;

/// Names the sink turns indexes of a [`Sample`] into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    /// `(method, request name)` in `NameId` order.
    pub requests: Vec<(String, String)>,
    /// `server.address` and `server.port` of each request name (`NameId` order), when its URL
    /// names the server before the run (not a templated URL).
    pub servers: Vec<Option<(String, u16)>>,
    /// The run's scenarios in [`Sample::scenario`] order: one for a plain run, one per entry
    /// of `scenarios:` otherwise.
    pub scenarios: Vec<ScenarioNames>,
}

/// The names of one scenario of the run: the user type and task indexes of its samples point
/// into its own plan, which under `scenarios:` keeps only that scenario's user types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioNames {
    /// Its name under `scenarios:`; `None` for a plain run, whose spans carry the run's
    /// scenario name.
    pub name: Option<String>,
    /// User type names in the order of its plan.
    pub user_types: Vec<String>,
    /// Task names of each user type.
    pub tasks: Vec<Vec<String>>,
}

impl ScenarioNames {
    pub(super) fn of(name: Option<String>, plan: &Plan) -> Self {
        ScenarioNames {
            name,
            user_types: plan.user_types.iter().map(|u| u.name.clone()).collect(),
            tasks: plan
                .user_types
                .iter()
                .map(|u| u.tasks.iter().map(|t| t.name.clone()).collect())
                .collect(),
        }
    }
}

impl Names {
    /// The names of a plain run of `plan`.
    pub fn of(plan: &Plan) -> Self {
        Names {
            requests: plan.names.pairs().to_vec(),
            servers: servers([plan]),
            scenarios: vec![ScenarioNames::of(None, plan)],
        }
    }

    /// The names of a run of named scenarios, in the order given to the executor (their
    /// plans share one name table). A scenario with an empty name is the plain run's.
    pub fn of_scenarios(scenarios: &[ScenarioRun]) -> Self {
        Names {
            requests: scenarios
                .first()
                .map(|s| s.plan.names.pairs().to_vec())
                .unwrap_or_default(),
            servers: servers(scenarios.iter().map(|s| &*s.plan)),
            scenarios: scenarios
                .iter()
                .map(|s| ScenarioNames::of((!s.name.is_empty()).then(|| s.name.clone()), &s.plan))
                .collect(),
        }
    }

    /// `server.address` and `server.port` of a request name, when known.
    pub(super) fn server(&self, i: u32) -> Option<(&str, u16)> {
        self.servers
            .get(i as usize)?
            .as_ref()
            .map(|(h, p)| (h.as_str(), *p))
    }

    pub(super) fn request(&self, i: u32) -> (&str, &str) {
        self.requests
            .get(i as usize)
            .map_or(("GET", "?"), |(m, n)| (m.as_str(), n.as_str()))
    }

    pub(super) fn scenario(&self, i: u16) -> Option<&ScenarioNames> {
        self.scenarios.get(usize::from(i))
    }

    /// The named scenario of a sample (`None` in a plain run).
    pub(super) fn scenario_name(&self, s: &Sample) -> Option<&str> {
        self.scenario(s.scenario)?.name.as_deref()
    }

    pub(super) fn user_type(&self, s: &Sample) -> String {
        self.scenario(s.scenario)
            .and_then(|sc| sc.user_types.get(usize::from(s.user_type)))
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn task(&self, s: &Sample) -> String {
        if s.task == Sample::NO_TASK {
            return "on_start/on_stop".to_owned();
        }
        self.scenario(s.scenario)
            .and_then(|sc| sc.tasks.get(usize::from(s.user_type)))
            .and_then(|t| t.get(usize::from(s.task)))
            .cloned()
            .unwrap_or_else(|| format!("task {}", s.task))
    }
}

/// The server of each request name of `plans` (which share one name table): the host and port
/// of the first of its requests whose URL is not templated.
pub(super) fn servers<'a>(plans: impl IntoIterator<Item = &'a Plan>) -> Vec<Option<(String, u16)>> {
    use loadlens_core::plan::StepPlan;
    pub(super) fn walk(steps: &[StepPlan], out: &mut Vec<Option<(String, u16)>>) {
        for s in steps {
            match s {
                StepPlan::Request(r) => {
                    let url = &r.request.url;
                    let templated = r.template.is_some() && url.host() == Some("template.invalid");
                    let i = r.name.0 as usize;
                    if templated || out.get(i).is_some_and(Option::is_some) {
                        continue;
                    }
                    if out.len() <= i {
                        out.resize(i + 1, None);
                    }
                    let port = url
                        .port_u16()
                        .unwrap_or(if url.scheme_str() == Some("https") {
                            443
                        } else {
                            80
                        });
                    out[i] = url.host().map(|h| {
                        (
                            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                            port,
                        )
                    });
                }
                StepPlan::Loop { steps, .. } => walk(steps, out),
                StepPlan::Think(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    for p in plans {
        for u in &p.user_types {
            walk(&u.on_start, &mut out);
            walk(&u.on_stop, &mut out);
            for t in &u.tasks {
                walk(&t.steps, &mut out);
            }
        }
    }
    out
}
