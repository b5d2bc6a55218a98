//! Tag scopes: `p95{tag:checkout} < 300ms` looks at every request sent by a task tagged
//! `checkout`. Tags live on tasks (`tags:`, the ones `-T/--tags` and `-E/--exclude-tags`
//! filter); a request carries the tags of its task, and the requests of `on_start`/`on_stop`
//! carry none.
//!
//! Statistics are kept per request *name*, so the request path knows nothing of tags: at plan
//! time [`NameTags`] (built by [`NameTags::of`], in the plan) maps each name to the tags of the tasks that send it, and a tag scope
//! merges the cumulative histograms and counters of those names when it is evaluated (on every
//! snapshot during the run, for `abort_on_fail`, and once on the final figures).
//!
//! A name belongs to a tag when any request with that name carries the tag. Requests with the
//! same name sent without the tag (by another task, or in `on_start`) then count too: the
//! histograms cannot tell them apart. [`NameTags::warnings`] says so before the run; giving
//! those requests their own `name:` keeps them apart.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Scope, Threshold};
use crate::stats::{RequestStats, RequestSummary, StatsSet};

/// The tags of one request name.
#[derive(Debug, Clone, Default, PartialEq)]
struct Entry {
    /// `METHOD name`, as in reports.
    label: String,
    /// Tags of any task sending the name.
    any: BTreeSet<String>,
    /// Tags of every task (and `on_start`/`on_stop`) sending it; `None` until one is seen.
    every: Option<BTreeSet<String>>,
}

/// The task tags of each request name, in `NameId` order: what a `{tag:…}` scope merges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameTags {
    names: Vec<Entry>,
}

/// The merged figures of the request names carrying one tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSummary {
    /// The tag.
    pub tag: String,
    /// `METHOD name` of every request name carrying it.
    pub requests: Vec<String>,
    /// Their figures together.
    pub summary: RequestSummary,
}

impl NameTags {
    /// Name `i` is `label` (`METHOD name`, as in reports).
    pub(crate) fn set_label(&mut self, i: usize, label: String) {
        self.entry(i).label = label;
    }

    /// Hand-made: `(METHOD name, tags)` in `NameId` order, each sent by one task.
    #[cfg(test)]
    pub(crate) fn from_names(names: &[(&str, &[&str])]) -> Self {
        let mut out = NameTags::default();
        for (i, (label, tags)) in names.iter().enumerate() {
            out.entry(i).label = (*label).to_owned();
            let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
            out.see(i, &tags);
        }
        out
    }

    fn entry(&mut self, i: usize) -> &mut Entry {
        if i >= self.names.len() {
            self.names.resize_with(i + 1, Entry::default);
        }
        &mut self.names[i]
    }

    /// Name `i` is sent by a task with `tags` (none: `on_start`/`on_stop`).
    pub(crate) fn see(&mut self, i: usize, tags: &[String]) {
        let e = self.entry(i);
        e.any.extend(tags.iter().cloned());
        let these: BTreeSet<String> = tags.iter().cloned().collect();
        e.every = Some(match e.every.take() {
            None => these,
            Some(every) => every.intersection(&these).cloned().collect(),
        });
    }

    /// The same tags for the request names `to`, `self` being in the order of `from` (a merged
    /// result numbers the names in its own order); a name `from` lacks has no tag.
    pub fn reordered(&self, from: &[(String, String)], to: &[(String, String)]) -> NameTags {
        let mut out = NameTags::default();
        for (j, (method, name)) in to.iter().enumerate() {
            let known = from
                .iter()
                .position(|n| n.0 == *method && n.1 == *name)
                .and_then(|i| self.names.get(i));
            let e = out.entry(j);
            match known {
                Some(k) => *e = k.clone(),
                None => e.label = format!("{method} {name}"),
            }
        }
        out
    }

    /// Every tag some request carries.
    pub fn tags(&self) -> BTreeSet<&str> {
        self.names
            .iter()
            .flat_map(|e| e.any.iter().map(String::as_str))
            .collect()
    }

    /// `NameId` indexes of the names carrying `tag`.
    fn carrying<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = (usize, &'a Entry)> + 'a {
        self.names
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.any.contains(tag))
    }

    /// `METHOD name` of the request names carrying `tag`.
    pub fn requests(&self, tag: &str) -> Vec<String> {
        self.carrying(tag).map(|(_, e)| e.label.clone()).collect()
    }

    /// The merged figures of each tag that `thresholds` scope by, from the cumulative `stats`
    /// over `elapsed` (nothing is merged when no threshold has a tag scope).
    pub fn summaries(
        &self,
        thresholds: &[Threshold],
        stats: &StatsSet,
        elapsed: Duration,
    ) -> Vec<TagSummary> {
        let mut out: Vec<TagSummary> = Vec::new();
        for t in thresholds {
            let Scope::Tag(tag) = &t.scope else { continue };
            if out.iter().any(|s| s.tag == *tag) {
                continue;
            }
            let mut merged = RequestStats::default();
            for (i, _) in self.carrying(tag) {
                if let Some(r) = stats.requests.get(i).filter(|r| r.count > 0) {
                    merged.merge(r);
                }
            }
            out.push(TagSummary {
                tag: tag.clone(),
                requests: self.requests(tag),
                summary: RequestSummary::of("", tag, &merged, elapsed),
            });
        }
        out
    }

    /// Names that a tag scope of `thresholds` counts although some of their requests are sent
    /// without the tag (see the module docs), one message each.
    pub fn warnings(&self, thresholds: &[Threshold]) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for t in thresholds {
            let Scope::Tag(tag) = &t.scope else { continue };
            if !seen.insert(tag.as_str()) {
                continue;
            }
            for (_, e) in self.carrying(tag) {
                if e.every.as_ref().is_some_and(|every| !every.contains(tag)) {
                    out.push(format!(
                        "`{{tag:{tag}}}` counts every `{}` request, also those sent without tag `{tag}` (by another task, on_start or on_stop): give them their own `name:` to keep them apart",
                        e.label
                    ));
                }
            }
        }
        out
    }
}

/// The error for a tag scope that no task carries, listing the tags there are.
pub fn unknown_tag(expression: &str, tag: &str, known: &BTreeSet<&str>) -> String {
    let known = if known.is_empty() {
        "no task has `tags:`".to_owned()
    } else {
        format!(
            "tags: {}",
            known.iter().copied().collect::<Vec<_>>().join(", ")
        )
    };
    format!("threshold `{expression}`: no task has tag `{tag}` ({known})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, PlanOptions};
    use crate::sample::{ErrorKind, Failure, NameId, Sample};
    use crate::scenario::Scenario;
    use crate::thresholds::{evaluate, parse, Guard, Observed};

    const FILE: &str = r#"
host: http://127.0.0.1:9
user_types:
  - name: shopper
    on_start: [{ request: { path: /login, name: login } }]
    tasks:
      - tags: [browse]
        request: { path: /products, name: products }
      - tags: [checkout, slow]
        steps:
          - request: { path: /cart, name: cart }
          - for: i
            in: [1, 2]
            steps: [{ request: { method: POST, path: /pay, name: pay } }]
      - tags: [checkout]
        request: { path: /login, name: login }
"#;

    fn plan() -> Plan {
        let s = Scenario::from_str_named(FILE, "t.yaml").unwrap();
        Plan::compile(&s, &PlanOptions::default()).unwrap()
    }

    fn id(plan: &Plan, name: &str) -> usize {
        plan.names
            .pairs()
            .iter()
            .position(|(_, n)| n == name)
            .unwrap()
    }

    fn sample(name: usize, ms: u64, failed: bool) -> Sample {
        let failure = Failure::new(ErrorKind::Status, "HTTP 500");
        let mut s = Sample::failed_before_send(NameId(name as u32), failure);
        s.total = Duration::from_millis(ms);
        s.status = Some(if failed { 500 } else { 200 });
        if !failed {
            s.failure = None;
        }
        s
    }

    #[test]
    fn a_request_carries_its_tasks_tags_and_loops_are_followed() {
        let p = plan();
        let t = NameTags::of([&p]);
        assert_eq!(
            t.tags().into_iter().collect::<Vec<_>>(),
            ["browse", "checkout", "slow"]
        );
        assert_eq!(
            t.requests("checkout"),
            ["GET login", "GET cart", "POST pay"]
        );
        assert_eq!(t.requests("slow"), ["GET cart", "POST pay"]);
        assert_eq!(t.requests("browse"), ["GET products"]);
        assert!(t.requests("nope").is_empty());
        // `login` is also sent by on_start, without the tag: that is worth a warning.
        let w = t.warnings(&[
            parse("p95{tag:checkout} < 1s").unwrap(),
            parse("p99{tag:checkout} < 2s").unwrap(),
            parse("p95{tag:slow} < 1s").unwrap(),
        ]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("`GET login`") && w[0].contains("name:"),
            "{w:?}"
        );
    }

    #[test]
    fn a_tag_scope_merges_the_histograms_of_its_names() {
        let p = plan();
        let tags = NameTags::of([&p]);
        let mut stats = StatsSet::new(p.names.len());
        for _ in 0..480 {
            stats.record(&sample(id(&p, "products"), 10, false));
        }
        for i in 0..10 {
            stats.record(&sample(id(&p, "cart"), 400, i == 0));
            stats.record(&sample(id(&p, "pay"), 600, false));
        }
        let ts = [
            parse("p95{tag:slow} < 300ms").unwrap(),
            parse("p50{tag:slow} > 399ms").unwrap(),
            parse("error_rate{tag:slow} <= 5%").unwrap(),
            parse("requests{tag:slow} == 20").unwrap(),
            parse("p95{tag:browse} < 300ms").unwrap(),
            parse("p95 < 300ms").unwrap(),
        ];
        let elapsed = Duration::from_secs(10);
        let summaries = tags.summaries(&ts, &stats, elapsed);
        assert_eq!(summaries.len(), 2, "one per tag");
        let agg = RequestSummary::of("", "Aggregated", &stats.aggregate(), elapsed);
        let o = Observed {
            aggregate: &agg,
            requests: &[],
            scenarios: &[],
            tags: &summaries,
            dropped_iterations: 0,
            generator: None,
            breakdown: None,
        };
        let got: Vec<Option<bool>> = ts.iter().map(|t| t.check(&o).1).collect();
        // The aggregate p95 is fast (the slow names are 4% of it); the tag's is not.
        assert_eq!(
            got,
            [
                Some(false),
                Some(true),
                Some(true),
                Some(true),
                Some(true),
                Some(true)
            ]
        );
        assert_eq!(ts[3].check(&o).0, Some(20.0));
        let r = evaluate(&ts, &o, &[]);
        assert_eq!(r[0].scope, "tag:slow");
        assert_eq!(r[0].requests, ["GET cart", "POST pay"]);
        assert!(r[5].requests.is_empty());
        // A tag whose requests sent nothing has no data, and fails at the end.
        let quiet = [parse("p95{tag:checkout} < 1s").unwrap()];
        let none = tags.summaries(&quiet, &StatsSet::new(p.names.len()), elapsed);
        let o = Observed { tags: &none, ..o };
        assert_eq!(quiet[0].check(&o), (None, None));
        let r = evaluate(&quiet, &o, &[]);
        assert!(!r[0].passed);
        assert_eq!(r[0].detail, "no data for p95 tag:checkout");
    }

    #[test]
    fn a_tag_scope_aborts_the_run_once_its_requests_are_slow() {
        let p = plan();
        let tags = NameTags::of([&p]);
        let ts = vec![parse("p95{tag:slow} < 300ms, abort after 2s").unwrap()];
        let mut guard = Guard::new(ts.clone());
        let mut stats = StatsSet::new(p.names.len());
        let mut check = |stats: &StatsSet, secs: u64| {
            let elapsed = Duration::from_secs(secs);
            let summaries = tags.summaries(&ts, stats, elapsed);
            let agg = RequestSummary::of("", "Aggregated", &stats.aggregate(), elapsed);
            let o = Observed {
                aggregate: &agg,
                requests: &[],
                scenarios: &[],
                tags: &summaries,
                dropped_iterations: 0,
                generator: None,
                breakdown: None,
            };
            guard.check(&o, elapsed)
        };
        for _ in 0..100 {
            stats.record(&sample(id(&p, "products"), 900, false));
            stats.record(&sample(id(&p, "cart"), 20, false));
        }
        // Slow untagged requests do not touch the tag.
        assert_eq!(check(&stats, 1), (vec![], None));
        for _ in 0..100 {
            stats.record(&sample(id(&p, "pay"), 900, false));
        }
        let (events, abort) = check(&stats, 1);
        assert_eq!(events.len(), 1, "breached");
        assert_eq!(abort, None, "within the delay");
        let (_, abort) = check(&stats, 2);
        assert!(abort.unwrap().contains("p95{tag:slow}"));
    }
}
