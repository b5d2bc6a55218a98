//! One joined request split into its components: its spans as a tree (parent links), the
//! server's root span found, each span's self time, the downstream operations added up.
//!
//! The join does this for every sampled request, on the receiver's thread beside the virtual
//! users, so it allocates nothing of its own in the steady state: [`Parts`] keeps its buffers
//! from one request to the next, the tree is two sorted lists (span ids, parent links) rather
//! than maps, and components are keyed by the spans' interned names ([`Key`]).

use std::sync::Arc;
use std::time::Duration;

use super::join::Span;
use super::{ComponentKey, ComponentKind};
use crate::sample::Phases;

/// A component inside the join: an operation is keyed by the names its spans share (no
/// allocation per request). It orders as [`ComponentKey`] does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    kind: ComponentKind,
    /// An operation's group (`service.name` or `db.system`) and name.
    op: Option<(Arc<str>, Arc<str>)>,
}

impl Key {
    pub(super) fn of(kind: ComponentKind) -> Self {
        Key { kind, op: None }
    }

    fn operation(group: &Arc<str>, operation: &Arc<str>) -> Self {
        Key {
            kind: ComponentKind::Operation,
            op: Some((group.clone(), operation.clone())),
        }
    }

    pub(super) fn is_operation(&self) -> bool {
        self.kind == ComponentKind::Operation
    }

    /// The key reports read.
    pub(super) fn component_key(&self) -> ComponentKey {
        match &self.op {
            Some((group, operation)) => ComponentKey::operation(&**group, &**operation),
            None => ComponentKey::of(self.kind),
        }
    }
}

/// The components of the last request split, and the buffers reused for the next.
#[derive(Default)]
pub(super) struct Parts {
    /// Microseconds per component (an operation's spans in this trace added up), in the
    /// order of [`Key`].
    pub(super) values: Vec<(Key, u64)>,
    /// Error spans per component.
    pub(super) errors: Vec<(Key, u64)>,
    /// Per span: its duration if it enters a service (its parent is elsewhere: another
    /// service, or us).
    pub(super) entries: Vec<Option<u64>>,
    /// (span id, index), sorted.
    ids: Vec<(u64, usize)>,
    /// (parent span id, index), sorted: a span's children are a range.
    kids: Vec<(u64, usize)>,
    intervals: Vec<(u64, u64)>,
    stack: Vec<usize>,
    seen: Vec<bool>,
    /// Operation, self time, errors.
    ops: Vec<(Key, u64, u64)>,
}

fn us(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Parts {
    /// Split one request (its client span `span_id`, its phases, its spans) into components.
    pub(super) fn split(&mut self, span_id: u64, phases: &Phases, spans: &[Span]) {
        self.values.clear();
        self.errors.clear();
        self.entries.clear();
        self.ids.clear();
        self.ids
            .extend(spans.iter().enumerate().map(|(i, s)| (s.span_id, i)));
        self.ids.sort_unstable();
        self.kids.clear();
        self.kids
            .extend(spans.iter().enumerate().map(|(i, s)| (s.parent_span_id, i)));
        self.kids.sort_unstable();
        // The server's root span: the child of our client span, else (a proxy in between
        // that sends no span of its own) the earliest span whose parent is not in the trace.
        let root = spans
            .iter()
            .position(|s| s.parent_span_id == span_id)
            .or_else(|| {
                spans
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| self.index_of(s.parent_span_id).is_none())
                    .min_by_key(|(_, s)| (s.start_ns, std::cmp::Reverse(s.end_ns)))
                    .map(|(i, _)| i)
            })
            .unwrap_or(0);
        for (kind, d) in [
            (ComponentKind::Dns, phases.dns),
            (ComponentKind::Connect, phases.connect),
            (ComponentKind::Tls, phases.tls),
        ] {
            if let Some(v) = us(d) {
                self.values.push((Key::of(kind), v));
            }
        }
        if let Some(ttfb) = us(phases.ttfb) {
            let outside = ttfb.saturating_sub(spans[root].duration_us());
            self.values.push((Key::of(ComponentKind::Outside), outside));
        }
        let server_self = self.self_us(spans, root);
        self.values
            .push((Key::of(ComponentKind::ServerSelf), server_self));
        if spans[root].error {
            self.errors.push((Key::of(ComponentKind::ServerSelf), 1));
        }
        // Every span below the root, by operation; a loop in the parent links cannot hang.
        self.ops.clear();
        self.seen.clear();
        self.seen.resize(spans.len(), false);
        self.seen[root] = true;
        self.stack.clear();
        let (a, b) = self.children(spans[root].span_id);
        self.stack.extend(self.kids[a..b].iter().map(|&(_, i)| i));
        while let Some(i) = self.stack.pop() {
            if std::mem::replace(&mut self.seen[i], true) {
                continue;
            }
            let s = &spans[i];
            let v = self.self_us(spans, i);
            match self.ops.iter_mut().find(|(k, _, _)| {
                k.op.as_ref()
                    .is_some_and(|(g, o)| *g == s.group && *o == s.operation)
            }) {
                Some(e) => {
                    e.1 += v;
                    e.2 += u64::from(s.error);
                }
                None => self.ops.push((
                    Key::operation(&s.group, &s.operation),
                    v,
                    u64::from(s.error),
                )),
            }
            let (a, b) = self.children(s.span_id);
            self.stack.extend(self.kids[a..b].iter().map(|&(_, i)| i));
        }
        self.ops.sort_unstable_by(|x, y| x.0.cmp(&y.0));
        for (k, v, e) in self.ops.drain(..) {
            if e > 0 {
                self.errors.push((k.clone(), e));
            }
            self.values.push((k, v));
        }
        if let Some(v) = us(phases.download) {
            self.values.push((Key::of(ComponentKind::Download), v));
        }
        for s in spans {
            let entry = self
                .index_of(s.parent_span_id)
                .is_none_or(|pi| spans[pi].service != s.service);
            self.entries.push(entry.then(|| s.duration_us()));
        }
    }

    /// The index of the span with id `id` (the last one, if several share it).
    fn index_of(&self, id: u64) -> Option<usize> {
        let p = self.ids.partition_point(|&(x, _)| x <= id);
        (p > 0 && self.ids[p - 1].0 == id).then(|| self.ids[p - 1].1)
    }

    /// The range of `kids` whose parent is `id`.
    fn children(&self, id: u64) -> (usize, usize) {
        let a = self.kids.partition_point(|&(x, _)| x < id);
        let b = self.kids.partition_point(|&(x, _)| x <= id);
        (a, b)
    }

    /// Span `i`'s duration minus the time its children cover (within it), µs.
    fn self_us(&mut self, spans: &[Span], i: usize) -> u64 {
        let s = &spans[i];
        let (a, b) = self.children(s.span_id);
        self.intervals.clear();
        // A span that ends before it starts (a broken exporter) covers nothing.
        let (lo, hi) = (s.start_ns, s.end_ns.max(s.start_ns));
        self.intervals.extend(self.kids[a..b].iter().map(|&(_, k)| {
            (
                spans[k].start_ns.clamp(lo, hi),
                spans[k].end_ns.clamp(lo, hi),
            )
        }));
        self.intervals.sort_unstable();
        let (mut covered, mut cur): (u64, Option<(u64, u64)>) = (0, None);
        for &(a, b) in &self.intervals {
            let b = b.max(a);
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
    }
}
