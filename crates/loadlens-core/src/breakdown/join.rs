//! The join: the client samples of sampled requests on one side, the service's spans on the
//! other, matched by trace id, and each joined request split into its components (see the
//! [module docs](super)). It runs apart from the virtual users (the trace receiver's task
//! owns it) and its memory is bounded:
//!
//! - a sampled request waits at most the join window for its spans (spans from several
//!   services and export batches arrive at different times); then it is final, joined or not;
//! - at most [`JoinSettings::max_pending`] requests wait at once; a request beyond that is
//!   counted as sampled but cannot join, and its spans are counted as dropped;
//! - spans whose trace id no request has (yet) wait too, at most
//!   [`JoinSettings::max_orphan_spans`] of them and at most the window: a request that
//!   arrives later adopts them, the others are counted as foreign (not ours) and forgotten;
//! - a span arriving after its request was final is counted as late, for a window after
//!   that (later, it is counted as foreign: the request is forgotten);
//! - after a burst, the tables give back what they grew to, so a long run's memory follows
//!   the current rate, not its peak.
//!
//! Splitting a joined request into components ([`super::parts`]) reuses its buffers, and
//! components are keyed by the spans' interned names: the join allocates nothing per request
//! in the steady state beyond the request's own list of spans.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::merge::{ComponentHistograms, Histograms, NameHistograms, ServiceHistograms};
use super::parts::{Key, Parts};
use super::series::{Series, MAX_POINTS};
use super::{
    Breakdown, Component, Coverage, Figures, RequestBreakdown, ServiceFigures, SlowRequest,
};
use crate::sample::{Phases, Sample};
use crate::stats::LatencyHistogram;

/// One span of the service, as the join needs it (decoded from OTLP by the receiver).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// 16-byte trace id.
    pub trace_id: u128,
    /// 8-byte span id.
    pub span_id: u64,
    /// The parent's span id, 0 for a root span.
    pub parent_span_id: u64,
    /// The resource's `service.name`.
    pub service: Arc<str>,
    /// What the operation is grouped under: the `service.name`, or for a database span its
    /// `db.system` (`postgresql`).
    pub group: Arc<str>,
    /// The operation: the span name (for a database span, its query summary), or for an
    /// HTTP server span `METHOD http.route`.
    pub operation: Arc<str>,
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_ns: u64,
    /// Whether its status is an error.
    pub error: bool,
}

impl Span {
    pub(super) fn duration_us(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns) / 1000
    }
}

/// How the join behaves.
#[derive(Clone, Debug)]
pub struct JoinSettings {
    /// How long a sampled request waits for its spans.
    pub window: Duration,
    /// Most requests waiting at once.
    pub max_pending: usize,
    /// Most spans of unknown traces waiting at once.
    pub max_orphan_spans: usize,
    /// Most spans kept for one trace (the others are dropped).
    pub max_spans_per_trace: usize,
    /// The slowest requests kept per name.
    pub top_k: usize,
    /// `{trace_id}` link template for reports.
    pub link_template: Option<String>,
    /// Length of one point of the components' series (doubles in long runs).
    pub interval: Duration,
}

impl Default for JoinSettings {
    fn default() -> Self {
        JoinSettings {
            window: Duration::from_secs(10),
            max_pending: 50_000,
            max_orphan_spans: 100_000,
            max_spans_per_trace: 256,
            top_k: 5,
            link_template: None,
            interval: Duration::from_secs(1),
        }
    }
}

/// A sampled request waiting for its spans.
struct Pending {
    name: usize,
    span_id: u64,
    started_at: SystemTime,
    response: Duration,
    phases: Phases,
    spans: Vec<Span>,
}

/// Spans of a trace no request has claimed yet.
struct Orphans {
    since: Instant,
    spans: Vec<Span>,
}

/// What became of a trace that is no longer pending (to count its stragglers).
#[derive(Clone, Copy)]
enum Fate {
    /// Final: later spans are late.
    Final,
    /// Could not wait (table full): its spans are dropped.
    Overflow,
}

#[derive(Default)]
struct ComponentAcc {
    hist: LatencyHistogram,
    errors: u64,
    series: Series,
}

impl ComponentAcc {
    fn record(&mut self, index: usize, us: u64) {
        self.hist.record(Duration::from_micros(us));
        self.series.record(index, us);
    }
}

#[derive(Default)]
struct NameAcc {
    sampled: u64,
    joined: u64,
    total: LatencyHistogram,
    components: BTreeMap<Key, ComponentAcc>,
    /// Slowest first, at most `top_k`.
    slowest: Vec<SlowRequest>,
}

#[derive(Default)]
struct ServiceAcc {
    hist: LatencyHistogram,
    errors: u64,
}

/// The join of one run: feed it client samples and spans, read a [`Breakdown`] at any time.
pub struct Join {
    settings: JoinSettings,
    names: Vec<(String, String)>,
    run_start: SystemTime,
    interval: Duration,
    pending: HashMap<u128, Pending>,
    /// Pending trace ids in arrival order, with their deadline.
    deadlines: VecDeque<(Instant, u128)>,
    orphans: HashMap<u128, Orphans>,
    orphan_order: VecDeque<(Instant, u128)>,
    orphan_spans: usize,
    /// What became of the traces that were final within the last window, to tell their late
    /// spans from foreign ones.
    fates: HashMap<u128, Fate>,
    fate_order: VecDeque<(Instant, u128)>,
    /// The latest time the join was given.
    now: Instant,
    by_name: Vec<NameAcc>,
    operations: BTreeMap<Key, ComponentAcc>,
    services: BTreeMap<Arc<str>, ServiceAcc>,
    coverage: Coverage,
    /// The last request split (its buffers reused for the next).
    parts: Parts,
}

/// Most final trace ids remembered at once to tell late spans from foreign ones (each for a
/// join window after it became final).
const FATES_KEPT: usize = 200_000;

impl Join {
    /// A join for a run with request names `names` (`NameId` order) that started at `run_start`.
    pub fn new(
        settings: JoinSettings,
        names: Vec<(String, String)>,
        run_start: SystemTime,
    ) -> Self {
        Join {
            interval: settings.interval.max(Duration::from_millis(1)),
            settings,
            by_name: names.iter().map(|_| NameAcc::default()).collect(),
            names,
            run_start,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            orphans: HashMap::new(),
            orphan_order: VecDeque::new(),
            orphan_spans: 0,
            fates: HashMap::new(),
            fate_order: VecDeque::new(),
            now: Instant::now(),
            operations: BTreeMap::new(),
            services: BTreeMap::new(),
            coverage: Coverage::default(),
            parts: Parts::default(),
        }
    }

    /// A request's sample; only sampled requests (with trace ids) take part.
    pub fn client(&mut self, s: &Sample, now: Instant) {
        let Some(ids) = s.trace.filter(|t| t.sampled) else {
            return;
        };
        self.now = self.now.max(now);
        let name = s.name.0 as usize;
        if name >= self.by_name.len() {
            return;
        }
        self.coverage.sampled += 1;
        self.by_name[name].sampled += 1;
        if self.pending.len() >= self.settings.max_pending
            || self.pending.contains_key(&ids.trace_id)
        {
            self.remember(ids.trace_id, Fate::Overflow);
            if let Some(o) = self.orphans.remove(&ids.trace_id) {
                self.orphan_spans -= o.spans.len();
                self.coverage.spans_dropped += o.spans.len() as u64;
            }
            return;
        }
        let mut spans = Vec::new();
        if let Some(o) = self.orphans.remove(&ids.trace_id) {
            self.orphan_spans -= o.spans.len();
            spans = o.spans;
        }
        self.pending.insert(
            ids.trace_id,
            Pending {
                name,
                span_id: ids.span_id,
                started_at: s.started_at,
                response: s.total.saturating_sub(s.schedule_delay),
                phases: s.phases,
                spans,
            },
        );
        self.deadlines
            .push_back((now + self.settings.window, ids.trace_id));
    }

    /// Spans received from the service.
    pub fn spans(&mut self, spans: impl IntoIterator<Item = Span>, now: Instant) {
        self.now = self.now.max(now);
        for span in spans {
            self.coverage.spans_received += 1;
            if let Some(p) = self.pending.get_mut(&span.trace_id) {
                if p.spans.len() < self.settings.max_spans_per_trace {
                    p.spans.push(span);
                } else {
                    self.coverage.spans_dropped += 1;
                }
                continue;
            }
            match self.fates.get(&span.trace_id) {
                Some(Fate::Final) => {
                    self.coverage.spans_late += 1;
                    continue;
                }
                Some(Fate::Overflow) => {
                    self.coverage.spans_dropped += 1;
                    continue;
                }
                None => {}
            }
            if self.orphan_spans >= self.settings.max_orphan_spans {
                // No room to wait for a request that almost never comes after its spans.
                self.coverage.spans_foreign += 1;
                continue;
            }
            let o = self.orphans.entry(span.trace_id).or_insert_with(|| {
                self.orphan_order.push_back((now, span.trace_id));
                Orphans {
                    since: now,
                    spans: Vec::new(),
                }
            });
            if o.spans.len() < self.settings.max_spans_per_trace {
                o.spans.push(span);
                self.orphan_spans += 1;
            } else {
                self.coverage.spans_foreign += 1;
            }
        }
    }

    /// Make final the requests whose window has passed, and forget the unclaimed spans that
    /// waited a whole window (foreign).
    pub fn expire(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            self.finalize(id);
        }
        while let Some(&(since, id)) = self.orphan_order.front() {
            if since + self.settings.window > now {
                break;
            }
            self.orphan_order.pop_front();
            if let Some(o) = self.orphans.remove(&id).filter(|o| o.since == since) {
                self.orphan_spans -= o.spans.len();
                self.coverage.spans_foreign += o.spans.len() as u64;
            }
        }
        while let Some(&(at, id)) = self.fate_order.front() {
            if at + self.settings.window > now {
                break;
            }
            self.fate_order.pop_front();
            self.fates.remove(&id);
        }
        // After a burst, give back what the tables grew to.
        shrink_map(&mut self.pending);
        shrink_map(&mut self.orphans);
        shrink_map(&mut self.fates);
        shrink_deque(&mut self.deadlines);
        shrink_deque(&mut self.orphan_order);
        shrink_deque(&mut self.fate_order);
    }

    /// Make every waiting request final now (the end of the run), and count every unclaimed
    /// span as foreign.
    pub fn flush(&mut self) {
        while let Some((_, id)) = self.deadlines.pop_front() {
            self.finalize(id);
        }
        for (_, o) in self.orphans.drain() {
            self.coverage.spans_foreign += o.spans.len() as u64;
        }
        self.orphan_order.clear();
        self.orphan_spans = 0;
    }

    /// Requests waiting that have no span yet.
    pub fn waiting_without_spans(&self) -> usize {
        self.pending.values().filter(|p| p.spans.is_empty()).count()
    }

    /// How long a sampled request waits for its spans.
    pub fn window(&self) -> Duration {
        self.settings.window
    }

    /// Requests waiting for the end of their window.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn remember(&mut self, id: u128, fate: Fate) {
        if self.fates.insert(id, fate).is_none() {
            self.fate_order.push_back((self.now, id));
        }
        while self.fate_order.len() > FATES_KEPT {
            if let Some((_, old)) = self.fate_order.pop_front() {
                self.fates.remove(&old);
            }
        }
    }

    fn finalize(&mut self, id: u128) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.remember(id, Fate::Final);
        if p.spans.is_empty() {
            return;
        }
        let index = self.interval_index(p.started_at);
        let mut parts = std::mem::take(&mut self.parts);
        parts.split(p.span_id, &p.phases, &p.spans);
        self.coverage.joined += 1;
        self.coverage.spans_joined += p.spans.len() as u64;
        let total_us = u64::try_from(p.response.as_micros()).unwrap_or(u64::MAX);
        let acc = &mut self.by_name[p.name];
        acc.joined += 1;
        acc.total.record(p.response);
        let mut dominant: Option<(&Key, u64)> = None;
        for (key, us) in &parts.values {
            component_acc(&mut acc.components, key).record(index, *us);
            if dominant.is_none_or(|(_, d)| *us > d) {
                dominant = Some((key, *us));
            }
        }
        for (key, errors) in &parts.errors {
            component_acc(&mut acc.components, key).errors += errors;
        }
        let total_ms = total_us as f64 / 1000.0;
        let at = acc.slowest.partition_point(|s| s.total_ms >= total_ms);
        if at < self.settings.top_k {
            acc.slowest.insert(
                at,
                SlowRequest {
                    trace_id: format!("{id:032x}"),
                    at_s: p
                        .started_at
                        .duration_since(self.run_start)
                        .unwrap_or_default()
                        .as_secs_f64(),
                    total_ms,
                    dominant: dominant
                        .map(|(k, _)| k.component_key().label())
                        .unwrap_or_default(),
                    dominant_ms: dominant.map_or(0.0, |(_, us)| us as f64 / 1000.0),
                },
            );
            acc.slowest.truncate(self.settings.top_k);
        }
        for (key, us) in parts.values.iter().filter(|(k, _)| k.is_operation()) {
            component_acc(&mut self.operations, key).record(index, *us);
        }
        for (key, errors) in parts.errors.iter().filter(|(k, _)| k.is_operation()) {
            component_acc(&mut self.operations, key).errors += errors;
        }
        for (s, entry) in p.spans.iter().zip(&parts.entries) {
            let acc = match self.services.get_mut(&s.service) {
                Some(a) => a,
                None => self.services.entry(s.service.clone()).or_default(),
            };
            if let Some(us) = entry {
                acc.hist.record(Duration::from_micros(*us));
            }
            acc.errors += u64::from(s.error);
        }
        self.parts = parts;
    }

    /// The series index of a request started at `at`, merging every series when the run
    /// outgrows them.
    fn interval_index(&mut self, at: SystemTime) -> usize {
        let since = at.duration_since(self.run_start).unwrap_or_default();
        loop {
            let i = (since.as_nanos() / self.interval.as_nanos().max(1)) as usize;
            if i < MAX_POINTS {
                return i;
            }
            self.interval *= 2;
            for acc in &mut self.by_name {
                for c in acc.components.values_mut() {
                    c.series.halve();
                }
            }
            for c in self.operations.values_mut() {
                c.series.halve();
            }
        }
    }

    /// The breakdown so far.
    pub fn breakdown(&self) -> Breakdown {
        let interval_s = self.interval.as_secs_f64();
        let requests = self
            .names
            .iter()
            .zip(&self.by_name)
            .filter(|(_, a)| a.sampled > 0)
            .map(|((method, name), a)| {
                let total = Figures::of(&a.total);
                let total_sum = total.sum();
                let mut components: Vec<Component> = a
                    .components
                    .iter()
                    .map(|(k, c)| component(k, c, total_sum, interval_s))
                    .collect();
                super::sort_components(&mut components);
                RequestBreakdown {
                    method: method.clone(),
                    name: name.clone(),
                    sampled: a.sampled,
                    joined: a.joined,
                    total,
                    components,
                    slowest: a.slowest.clone(),
                }
            })
            .collect();
        let mut operations: Vec<Component> = self
            .operations
            .iter()
            .map(|(k, c)| component(k, c, 0.0, interval_s))
            .collect();
        operations.sort_by(|x, y| y.figures.sum().total_cmp(&x.figures.sum()));
        Breakdown {
            coverage: Coverage {
                pending: self.pending.len() as u64,
                ..self.coverage.clone()
            },
            requests,
            operations,
            services: self
                .services
                .iter()
                .map(|(s, a)| ServiceFigures {
                    service: s.to_string(),
                    figures: Figures::of(&a.hist),
                    errors: a.errors,
                })
                .collect(),
            link_template: self.settings.link_template.clone(),
            interval_s,
            histograms: None,
        }
    }

    /// The breakdown so far in a form that merges exactly ([`super::merge`]): counters and
    /// HDR histograms, and the components' per-interval series `with_series` (the final
    /// breakdown has them; a coordinated worker streams its live ones without them, as they
    /// are most of the size: about 85 bytes a point, up to 120 points a component).
    pub fn histograms(&self, with_series: bool) -> Histograms {
        let interval_s = self.interval.as_secs_f64();
        let part = |k: &Key, c: &ComponentAcc| ComponentHistograms {
            key: k.component_key(),
            values: c.hist.to_base64(),
            errors: c.errors,
            series: if with_series {
                c.series.points(interval_s)
            } else {
                Vec::new()
            },
        };
        Histograms {
            coverage: Coverage {
                pending: self.pending.len() as u64,
                ..self.coverage.clone()
            },
            requests: self
                .names
                .iter()
                .zip(&self.by_name)
                .filter(|(_, a)| a.sampled > 0)
                .map(|((method, name), a)| NameHistograms {
                    method: method.clone(),
                    name: name.clone(),
                    sampled: a.sampled,
                    joined: a.joined,
                    total: a.total.to_base64(),
                    components: a.components.iter().map(|(k, c)| part(k, c)).collect(),
                    slowest: a.slowest.clone(),
                })
                .collect(),
            operations: self.operations.iter().map(|(k, c)| part(k, c)).collect(),
            services: self
                .services
                .iter()
                .map(|(s, a)| ServiceHistograms {
                    service: s.to_string(),
                    values: a.hist.to_base64(),
                    errors: a.errors,
                })
                .collect(),
            link_template: self.settings.link_template.clone(),
            interval_s,
        }
    }
}

/// Tables this small are left as they are.
const SHRINK_ABOVE: usize = 4096;

/// Shrink a table to twice its length once it holds less than a quarter of its capacity.
fn shrink_map<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > SHRINK_ABOVE && m.len() < m.capacity() / 4 {
        m.shrink_to(m.len() * 2);
    }
}

fn shrink_deque<T>(d: &mut VecDeque<T>) {
    if d.capacity() > SHRINK_ABOVE && d.len() < d.capacity() / 4 {
        d.shrink_to(d.len() * 2);
    }
}

/// The accumulator of `key`, made on first use.
fn component_acc<'a>(map: &'a mut BTreeMap<Key, ComponentAcc>, key: &Key) -> &'a mut ComponentAcc {
    if !map.contains_key(key) {
        map.insert(key.clone(), ComponentAcc::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn component(k: &Key, c: &ComponentAcc, total_sum: f64, interval_s: f64) -> Component {
    let figures = Figures::of(&c.hist);
    let key = k.component_key();
    Component {
        label: key.label(),
        key,
        share: if total_sum > 0.0 {
            figures.sum() / total_sum
        } else {
            0.0
        },
        figures,
        errors: c.errors,
        series: c.series.points(interval_s),
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
