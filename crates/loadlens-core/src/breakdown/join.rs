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
//! - a span arriving after its request was final is counted as late.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::series::{Series, MAX_POINTS};
use super::{
    Breakdown, Component, ComponentKey, ComponentKind, Coverage, Figures, RequestBreakdown,
    ServiceFigures, SlowRequest,
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
    fn duration_us(&self) -> u64 {
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
    components: BTreeMap<ComponentKey, ComponentAcc>,
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
    fates: HashMap<u128, Fate>,
    fate_order: VecDeque<u128>,
    by_name: Vec<NameAcc>,
    operations: BTreeMap<ComponentKey, ComponentAcc>,
    services: BTreeMap<Arc<str>, ServiceAcc>,
    coverage: Coverage,
}

/// How many final trace ids are remembered to tell late spans from foreign ones.
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
            operations: BTreeMap::new(),
            services: BTreeMap::new(),
            coverage: Coverage::default(),
        }
    }

    /// A request's sample; only sampled requests (with trace ids) take part.
    pub fn client(&mut self, s: &Sample, now: Instant) {
        let Some(ids) = s.trace.filter(|t| t.sampled) else {
            return;
        };
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
            self.fate_order.push_back(id);
        }
        while self.fate_order.len() > FATES_KEPT {
            if let Some(old) = self.fate_order.pop_front() {
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
        let parts = Parts::of(&p);
        self.coverage.joined += 1;
        self.coverage.spans_joined += p.spans.len() as u64;
        let total_us = u64::try_from(p.response.as_micros()).unwrap_or(u64::MAX);
        let acc = &mut self.by_name[p.name];
        acc.joined += 1;
        acc.total.record(p.response);
        let mut dominant: Option<(&ComponentKey, u64)> = None;
        for (key, us) in &parts.values {
            acc.components
                .entry(key.clone())
                .or_default()
                .record(index, *us);
            if dominant.is_none_or(|(_, d)| *us > d) {
                dominant = Some((key, *us));
            }
        }
        for (key, errors) in &parts.errors {
            acc.components.entry(key.clone()).or_default().errors += errors;
        }
        if self.settings.top_k > 0 {
            let slow = SlowRequest {
                trace_id: format!("{id:032x}"),
                at_s: p
                    .started_at
                    .duration_since(self.run_start)
                    .unwrap_or_default()
                    .as_secs_f64(),
                total_ms: total_us as f64 / 1000.0,
                dominant: dominant.map(|(k, _)| k.label()).unwrap_or_default(),
                dominant_ms: dominant.map_or(0.0, |(_, us)| us as f64 / 1000.0),
            };
            let at = acc.slowest.partition_point(|s| s.total_ms >= slow.total_ms);
            if at < self.settings.top_k {
                acc.slowest.insert(at, slow);
                acc.slowest.truncate(self.settings.top_k);
            }
        }
        for (key, us) in parts
            .values
            .iter()
            .filter(|(k, _)| k.kind == ComponentKind::Operation)
        {
            self.operations
                .entry(key.clone())
                .or_default()
                .record(index, *us);
        }
        for (key, errors) in parts
            .errors
            .iter()
            .filter(|(k, _)| k.kind == ComponentKind::Operation)
        {
            self.operations.entry(key.clone()).or_default().errors += errors;
        }
        for (service, us, error) in parts.services {
            let s = self.services.entry(service).or_default();
            if let Some(us) = us {
                s.hist.record(Duration::from_micros(us));
            }
            s.errors += u64::from(error);
        }
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
                // Operations by share, largest first; the rest in their kind's order.
                components.sort_by(|x, y| {
                    x.key.kind.cmp(&y.key.kind).then(
                        y.share
                            .total_cmp(&x.share)
                            .then_with(|| x.label.cmp(&y.label)),
                    )
                });
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
        }
    }
}

fn component(k: &ComponentKey, c: &ComponentAcc, total_sum: f64, interval_s: f64) -> Component {
    let figures = Figures::of(&c.hist);
    Component {
        key: k.clone(),
        label: k.label(),
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

/// One joined request split into its components.
struct Parts {
    /// Microseconds per component (an operation's spans in this trace added up).
    values: Vec<(ComponentKey, u64)>,
    /// Error spans per component.
    errors: Vec<(ComponentKey, u64)>,
    /// Per span that enters a service: its service, duration, error.
    services: Vec<(Arc<str>, Option<u64>, bool)>,
}

impl Parts {
    fn of(p: &Pending) -> Parts {
        let spans = &p.spans;
        let by_id: HashMap<u64, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let mut children: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            children.entry(s.parent_span_id).or_default().push(i);
        }
        // The server's root span: the child of our client span, else (a proxy in between
        // that sends no span of its own) the earliest span whose parent is not in the trace.
        let root = spans
            .iter()
            .position(|s| s.parent_span_id == p.span_id)
            .or_else(|| {
                spans
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !by_id.contains_key(&s.parent_span_id))
                    .min_by_key(|(_, s)| (s.start_ns, std::cmp::Reverse(s.end_ns)))
                    .map(|(i, _)| i)
            })
            .unwrap_or(0);
        let self_us = |i: usize| -> u64 {
            let s = &spans[i];
            let kids = children.get(&s.span_id).map(Vec::as_slice).unwrap_or(&[]);
            let mut iv: Vec<(u64, u64)> = kids
                .iter()
                .map(|&k| {
                    (
                        spans[k].start_ns.clamp(s.start_ns, s.end_ns),
                        spans[k].end_ns.clamp(s.start_ns, s.end_ns),
                    )
                })
                .collect();
            iv.sort_unstable();
            let (mut covered, mut cur): (u64, Option<(u64, u64)>) = (0, None);
            for (a, b) in iv {
                cur = match cur {
                    Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
                    Some((ca, cb)) => {
                        covered += cb - ca;
                        Some((a, b))
                    }
                    None => Some((a, b)),
                };
            }
            if let Some((a, b)) = cur {
                covered += b - a;
            }
            s.end_ns.saturating_sub(s.start_ns).saturating_sub(covered) / 1000
        };
        let us = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut values = Vec::new();
        let mut errors = Vec::new();
        for (kind, d) in [
            (ComponentKind::Dns, p.phases.dns),
            (ComponentKind::Connect, p.phases.connect),
            (ComponentKind::Tls, p.phases.tls),
        ] {
            if let Some(v) = us(d) {
                values.push((ComponentKey::of(kind), v));
            }
        }
        if let Some(ttfb) = us(p.phases.ttfb) {
            let outside = ttfb.saturating_sub(spans[root].duration_us());
            values.push((ComponentKey::of(ComponentKind::Outside), outside));
        }
        let server = ComponentKey::of(ComponentKind::ServerSelf);
        values.push((server.clone(), self_us(root)));
        if spans[root].error {
            errors.push((server, 1));
        }
        // Every span below the root, by operation; a loop in the parent links cannot hang.
        let mut ops: BTreeMap<ComponentKey, (u64, u64)> = BTreeMap::new();
        let mut seen = HashSet::from([root]);
        let mut stack: Vec<usize> = children
            .get(&spans[root].span_id)
            .cloned()
            .unwrap_or_default();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            let s = &spans[i];
            let e = ops
                .entry(ComponentKey::operation(&*s.group, &*s.operation))
                .or_default();
            e.0 += self_us(i);
            e.1 += u64::from(s.error);
            if let Some(k) = children.get(&s.span_id) {
                stack.extend(k.iter().copied());
            }
        }
        for (k, (v, e)) in ops {
            if e > 0 {
                errors.push((k.clone(), e));
            }
            values.push((k, v));
        }
        if let Some(v) = us(p.phases.download) {
            values.push((ComponentKey::of(ComponentKind::Download), v));
        }
        // A span enters a service when its parent is elsewhere (another service, or us).
        let services = spans
            .iter()
            .map(|s| {
                let entry = by_id
                    .get(&s.parent_span_id)
                    .is_none_or(|&pi| spans[pi].service != s.service);
                (s.service.clone(), entry.then(|| s.duration_us()), s.error)
            })
            .collect();
        Parts {
            values,
            errors,
            services,
        }
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
