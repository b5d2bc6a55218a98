//! The plan: a scenario compiled for running. Request names are interned into [`NameId`]s,
//! variables resolved to slots, templates, checks and captures compiled, feeder files loaded,
//! headers merged (scenario < user type < request) and static bodies encoded once — so the
//! request path only renders what really varies and clones cheap handles for the rest.
//!
//! This file holds the plan's types; `compile.rs` compiles a scenario into them (steps,
//! requests, headers) and `checks.rs` the parts that read responses (checks, captures, JSON
//! bodies).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::Uri;

use crate::client::Request;
use crate::feeder::Feeder;
use crate::inspect::{Capture, Check};
use crate::sample::NameId;
use crate::scenario::{ScenarioError, WaitTime};
use crate::template::{Slot, Template};
use crate::thresholds::NameTags;

mod checks;
mod compile;

/// Interned `(method, name)` pairs.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    names: Vec<(String, String)>,
    /// Ids by pair: a generated scenario may have 100,000 names, and a linear search per
    /// request made compiling it quadratic.
    ids: HashMap<(String, String), NameId>,
}

impl NameTable {
    /// The id of `(method, name)`, interning it if new.
    pub fn intern(&mut self, method: &str, name: &str) -> NameId {
        let key = (method.to_owned(), name.to_owned());
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = NameId(self.names.len() as u32);
        self.names.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// `(method, name)` of an id.
    pub fn get(&self, id: NameId) -> (&str, &str) {
        let (m, n) = &self.names[id.0 as usize];
        (m, n)
    }

    /// All pairs in id order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.names
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The parts of a request that vary per send.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Full URL.
    pub url: Template,
    /// Headers whose values vary.
    pub headers: Vec<(HeaderName, Template)>,
    /// Body, when it varies.
    pub body: Option<Template>,
}

/// A compiled request.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// Statistics name.
    pub name: NameId,
    /// The request; complete when `template` is `None`, else its static parts.
    pub request: Request,
    /// What has to be rendered per send.
    pub template: Option<RequestTemplate>,
    /// Checks, in order.
    pub checks: Vec<Check>,
    /// Captures, in order.
    pub captures: Vec<Capture>,
    /// A status check replaces the default rule (4xx/5xx fail).
    pub status_checked: bool,
}

/// Items of a loop.
#[derive(Debug, Clone)]
pub enum LoopItems {
    /// Literal items.
    List(Vec<String>),
    /// A variable holding a JSON array.
    Var(Slot, String),
}

/// One compiled step.
#[derive(Debug, Clone)]
pub enum StepPlan {
    /// Send a request.
    Request(Box<RequestPlan>),
    /// Pause.
    Think(WaitTime),
    /// Repeat `steps` with the VU variable `slot` set to each item.
    Loop {
        /// Loop variable slot.
        slot: usize,
        /// Items.
        items: LoopItems,
        /// Body.
        steps: Vec<StepPlan>,
    },
}

impl StepPlan {
    /// Every request plan in these steps, recursively.
    pub fn requests_mut<'a>(steps: &'a mut [StepPlan], out: &mut Vec<&'a mut RequestPlan>) {
        for s in steps {
            match s {
                StepPlan::Request(r) => out.push(r),
                StepPlan::Loop { steps, .. } => Self::requests_mut(steps, out),
                StepPlan::Think(_) => {}
            }
        }
    }
}

/// A task: what one iteration of a user does.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// Name for reports.
    pub name: String,
    /// Relative frequency.
    pub weight: u32,
    /// Tags.
    pub tags: Vec<String>,
    /// Steps, in order.
    pub steps: Vec<StepPlan>,
}

/// A feeder as a user type sees it: which VU slots its columns fill.
#[derive(Debug, Clone)]
pub struct FeederUse {
    /// Index into [`Plan::feeders`].
    pub feeder: usize,
    /// VU slot per column.
    pub slots: Vec<usize>,
}

/// A user type, compiled.
#[derive(Debug, Clone)]
pub struct UserTypePlan {
    /// Name.
    pub name: String,
    /// Share of users.
    pub weight: u32,
    /// Fixed number of users, if any.
    pub count: Option<u64>,
    /// Think time.
    pub wait: WaitTime,
    /// Run once at user start.
    pub on_start: Vec<StepPlan>,
    /// Run once at graceful user stop.
    pub on_stop: Vec<StepPlan>,
    /// Tasks.
    pub tasks: Vec<TaskPlan>,
    /// Number of VU variable slots.
    pub vars: usize,
    /// Feeders and their slots.
    pub feeders: Vec<FeederUse>,
    cumulative: Vec<u32>,
}

impl UserTypePlan {
    /// Pick a task by weight.
    #[inline]
    pub fn pick(&self, rng: &mut fastrand::Rng) -> &TaskPlan {
        let total = *self.cumulative.last().unwrap_or(&0);
        if total == 0 || self.tasks.len() == 1 {
            return &self.tasks[0];
        }
        let r = rng.u32(0..total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        &self.tasks[i]
    }

    /// The URL of the first task request whose URL does not vary (tasks in order, loops
    /// included): where an open-model VU connects while it waits for its first arrival.
    pub fn first_static_url(&self) -> Option<&Uri> {
        fn find(steps: &[StepPlan]) -> Option<&Uri> {
            steps.iter().find_map(|s| match s {
                StepPlan::Request(r) => r
                    .template
                    .as_ref()
                    .is_none_or(|t| t.url.static_text().is_some())
                    .then_some(&r.request.url),
                StepPlan::Loop { steps, .. } => find(steps),
                StepPlan::Think(_) => None,
            })
        }
        self.tasks.iter().find_map(|t| find(&t.steps))
    }

    /// Every request plan of this user type.
    pub fn requests_mut(&mut self) -> Vec<&mut RequestPlan> {
        let mut out = Vec::new();
        StepPlan::requests_mut(&mut self.on_start, &mut out);
        StepPlan::requests_mut(&mut self.on_stop, &mut out);
        for t in &mut self.tasks {
            StepPlan::requests_mut(&mut t.steps, &mut out);
        }
        out
    }
}

/// A compiled scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub name: String,
    /// Request names.
    pub names: NameTable,
    /// User types.
    pub user_types: Vec<UserTypePlan>,
    /// Loaded data feeders.
    pub feeders: Vec<Arc<Feeder>>,
    /// Run-wide variable names and initial values.
    pub globals: Vec<(String, Option<String>)>,
    /// Number of run-wide counters.
    pub counters: usize,
}

/// A plan that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A scenario error, located in the file.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// A quick-mode URL that does not parse.
    #[error("invalid URL `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Options applied while compiling.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Overrides the scenario's host.
    pub host: Option<String>,
    /// Header carrying the run id and its value, added to every request.
    pub run_id_header: Option<(HeaderName, HeaderValue)>,
    /// Extra headers for every request (CLI `--header`), applied last.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Keep only tasks with one of these tags (empty: all).
    pub tags: Vec<String>,
    /// Drop tasks with one of these tags.
    pub exclude_tags: Vec<String>,
}

impl Plan {
    /// The user type of the `i`-th user (0-based): first the fixed counts in order, then the
    /// weighted types spread the way Locust does (deterministic, proportional at every prefix).
    pub fn user_type_for(&self, i: u64) -> usize {
        let mut i = i;
        for (k, u) in self.user_types.iter().enumerate() {
            if let Some(c) = u.count {
                if i < c {
                    return k;
                }
                i -= c;
            }
        }
        let weighted: Vec<usize> = (0..self.user_types.len())
            .filter(|&k| self.user_types[k].count.is_none() && self.user_types[k].weight > 0)
            .collect();
        if weighted.is_empty() {
            // Only fixed-count types: extra users cycle through them.
            return (i % self.user_types.len() as u64) as usize;
        }
        if weighted.len() == 1 {
            return weighted[0];
        }
        let total: i64 = weighted
            .iter()
            .map(|&k| i64::from(self.user_types[k].weight))
            .sum();
        // Smooth weighted round-robin, position i.
        let slot = i % total as u64;
        let mut current: Vec<i64> = vec![0; weighted.len()];
        let mut pick = 0;
        for _ in 0..=slot {
            for (c, &k) in current.iter_mut().zip(&weighted) {
                *c += i64::from(self.user_types[k].weight);
            }
            pick = (0..current.len())
                .max_by_key(|&k| (current[k], -(k as i64)))
                .unwrap_or(0);
            current[pick] -= total;
        }
        weighted[pick]
    }
}

// Built here, where plans are known, so that the thresholds need not import the plan (see the
// crate's layers).
impl NameTags {
    /// The tags of every request name sent by `plans` (the plans of one run share one name
    /// table; each may keep only some user types).
    pub fn of<'a>(plans: impl IntoIterator<Item = &'a Plan>) -> Self {
        let mut out = NameTags::default();
        for plan in plans {
            for (i, (m, n)) in plan.names.pairs().iter().enumerate() {
                out.set_label(i, format!("{m} {n}"));
            }
            for u in &plan.user_types {
                walk(&u.on_start, &[], &mut out);
                walk(&u.on_stop, &[], &mut out);
                for t in &u.tasks {
                    walk(&t.steps, &t.tags, &mut out);
                }
            }
        }
        out
    }
}

fn walk(steps: &[StepPlan], tags: &[String], out: &mut NameTags) {
    for s in steps {
        match s {
            StepPlan::Request(r) => out.see(r.name.0 as usize, tags),
            StepPlan::Loop { steps, .. } => walk(steps, tags, out),
            StepPlan::Think(_) => {}
        }
    }
}

/// Default stop timeout when neither file nor CLI sets one.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;
