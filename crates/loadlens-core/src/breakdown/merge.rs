//! The breakdowns of a coordinated run's workers, added up. Each worker joins the service's
//! spans to its own requests; what it hands over ([`Histograms`]) keeps every figure in a form
//! that adds up: counters, and each component's HDR histogram (V2, compressed, base64, as the
//! JSON result's `histograms` section). The merged breakdown's counts, means, percentiles,
//! maxima, shares and error counts are those of one join over every worker's requests.
//!
//! Two parts are not exact: the slowest requests are the top k of the workers' own top k
//! (exact for the k slowest of the run, since each worker's list holds its own k slowest),
//! and a component's per-interval series, whose points of the same interval add their counts
//! and means exactly but take the count-weighted mean of the workers' 95th percentiles.
//!
//! The merged breakdown carries its own [`Histograms`] again, so that a merged result merges
//! further (`loadlens merge` of merged results gives the same figures).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sort_components;
use super::{
    Breakdown, Component, ComponentKey, Coverage, Figures, RequestBreakdown, SeriesPoint,
    ServiceFigures, SlowRequest,
};
use crate::stats::{DecodeError, LatencyHistogram};

/// A breakdown in a form that merges exactly (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Trace coverage (counters: they add up).
    pub coverage: Coverage,
    /// Per request name with at least one sampled request.
    pub requests: Vec<NameHistograms>,
    /// Each downstream operation over every request name.
    pub operations: Vec<ComponentHistograms>,
    /// Per `service.name`, the durations of its top spans.
    pub services: Vec<ServiceHistograms>,
    /// Link to a trace in the user's tracing UI.
    pub link_template: Option<String>,
    /// Length in seconds of one point of the series.
    pub interval_s: f64,
}

/// One request name's part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NameHistograms {
    /// HTTP method.
    pub method: String,
    /// Request name.
    pub name: String,
    /// Requests sent sampled.
    pub sampled: u64,
    /// Of those, joined.
    pub joined: u64,
    /// The client's total response time of the joined requests.
    pub total: String,
    /// Its components.
    pub components: Vec<ComponentHistograms>,
    /// Its slowest joined requests, slowest first.
    pub slowest: Vec<SlowRequest>,
}

/// One component's part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentHistograms {
    /// What it is.
    pub key: ComponentKey,
    /// Its values, microseconds.
    pub values: String,
    /// Its spans with an error status.
    pub errors: u64,
    /// Its values per interval.
    pub series: Vec<SeriesPoint>,
}

/// One service's part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceHistograms {
    /// `service.name`.
    pub service: String,
    /// Durations of its top spans.
    pub values: String,
    /// Its spans with an error status.
    pub errors: u64,
}

#[derive(Default)]
struct Acc {
    hist: LatencyHistogram,
    errors: u64,
    series: BTreeMap<u64, SeriesPoint>,
}

impl Acc {
    fn add(&mut self, c: &ComponentHistograms) -> Result<(), DecodeError> {
        self.hist.merge(&decode(&c.values, &c.key.label())?);
        self.errors += c.errors;
        for p in &c.series {
            // Points of the same interval (the workers start together) merge.
            let at = (p.elapsed_s * 1000.0).round() as u64;
            let q = self.series.entry(at).or_insert(SeriesPoint {
                elapsed_s: p.elapsed_s,
                ..SeriesPoint::default()
            });
            let n = q.count + p.count;
            if n > 0 {
                let w =
                    |a: f64, na: u64, b: f64, nb: u64| (a * na as f64 + b * nb as f64) / n as f64;
                q.avg_ms = w(q.avg_ms, q.count, p.avg_ms, p.count);
                q.p95_ms = w(q.p95_ms, q.count, p.p95_ms, p.count);
            }
            q.count = n;
        }
        Ok(())
    }

    fn lossless(&self, key: &ComponentKey) -> ComponentHistograms {
        ComponentHistograms {
            key: key.clone(),
            values: self.hist.to_base64(),
            errors: self.errors,
            series: self.series.values().copied().collect(),
        }
    }

    fn component(&self, key: &ComponentKey, total_sum: f64) -> Component {
        let figures = Figures::of(&self.hist);
        Component {
            label: key.label(),
            key: key.clone(),
            share: if total_sum > 0.0 {
                figures.sum() / total_sum
            } else {
                0.0
            },
            figures,
            errors: self.errors,
            series: self.series.values().copied().collect(),
        }
    }
}

fn decode(text: &str, what: &str) -> Result<LatencyHistogram, DecodeError> {
    LatencyHistogram::from_base64(text)
        .map_err(|e| DecodeError::new(format!("the breakdown's `{what}`: {e}")))
}

#[derive(Default)]
struct NameAcc {
    sampled: u64,
    joined: u64,
    total: LatencyHistogram,
    components: BTreeMap<ComponentKey, Acc>,
    slowest: Vec<SlowRequest>,
    top_k: usize,
}

/// The workers' breakdowns `parts` as one, request names in the order of `names` (the
/// merged result's), with its [`Histograms`] (the merge of the parts') in
/// [`Breakdown::histograms`].
pub fn merge<'a>(
    parts: impl IntoIterator<Item = &'a Histograms>,
    names: &[(String, String)],
) -> Result<Breakdown, DecodeError> {
    merge_with(parts, names, true)
}

/// [`merge`] without the merged [`Histograms`] (their encoding is most of a merge's cost):
/// for the live view and thresholds, which read only the figures.
pub fn figures<'a>(
    parts: impl IntoIterator<Item = &'a Histograms>,
    names: &[(String, String)],
) -> Result<Breakdown, DecodeError> {
    merge_with(parts, names, false)
}

fn merge_with<'a>(
    parts: impl IntoIterator<Item = &'a Histograms>,
    names: &[(String, String)],
    lossless: bool,
) -> Result<Breakdown, DecodeError> {
    let mut coverage = Coverage::default();
    let mut by_name: BTreeMap<(String, String), NameAcc> = BTreeMap::new();
    let mut operations: BTreeMap<ComponentKey, Acc> = BTreeMap::new();
    let mut services: BTreeMap<String, (LatencyHistogram, u64)> = BTreeMap::new();
    let mut link_template = None;
    let mut interval_s: f64 = 0.0;
    for p in parts {
        let c = &p.coverage;
        coverage.sampled += c.sampled;
        coverage.joined += c.joined;
        coverage.spans_received += c.spans_received;
        coverage.spans_joined += c.spans_joined;
        coverage.spans_dropped += c.spans_dropped;
        coverage.spans_late += c.spans_late;
        coverage.spans_foreign += c.spans_foreign;
        coverage.rejected_exports += c.rejected_exports;
        coverage.pending += c.pending;
        link_template = link_template.or_else(|| p.link_template.clone());
        interval_s = interval_s.max(p.interval_s);
        for r in &p.requests {
            let acc = by_name
                .entry((r.method.clone(), r.name.clone()))
                .or_default();
            acc.sampled += r.sampled;
            acc.joined += r.joined;
            acc.total.merge(&decode(
                &r.total,
                &format!("{} {} total", r.method, r.name),
            )?);
            for c in &r.components {
                acc.components.entry(c.key.clone()).or_default().add(c)?;
            }
            acc.top_k = acc.top_k.max(r.slowest.len());
            acc.slowest.extend(r.slowest.iter().cloned());
        }
        for c in &p.operations {
            operations.entry(c.key.clone()).or_default().add(c)?;
        }
        for s in &p.services {
            let e = services.entry(s.service.clone()).or_default();
            e.0.merge(&decode(&s.values, &s.service)?);
            e.1 += s.errors;
        }
    }
    let mut requests = Vec::new();
    let mut encoded = Vec::new();
    // The merged result's order first, then any name it lacks.
    let mut order: Vec<(String, String)> = names
        .iter()
        .filter(|n| by_name.contains_key(*n))
        .cloned()
        .collect();
    order.extend(by_name.keys().filter(|k| !names.contains(k)).cloned());
    for key in order {
        let Some(mut a) = by_name.remove(&key) else {
            continue;
        };
        let total = Figures::of(&a.total);
        let total_sum = total.sum();
        let mut components: Vec<Component> = a
            .components
            .iter()
            .map(|(k, c)| c.component(k, total_sum))
            .collect();
        // As the join orders them.
        sort_components(&mut components);
        a.slowest.sort_by(|x, y| y.total_ms.total_cmp(&x.total_ms));
        a.slowest.truncate(a.top_k);
        encoded.push(NameHistograms {
            method: key.0.clone(),
            name: key.1.clone(),
            sampled: a.sampled,
            joined: a.joined,
            total: if lossless {
                a.total.to_base64()
            } else {
                String::new()
            },
            components: if lossless {
                a.components.iter().map(|(k, c)| c.lossless(k)).collect()
            } else {
                Vec::new()
            },
            slowest: a.slowest.clone(),
        });
        requests.push(RequestBreakdown {
            method: key.0,
            name: key.1,
            sampled: a.sampled,
            joined: a.joined,
            total,
            components,
            slowest: a.slowest,
        });
    }
    let histograms = lossless.then(|| Histograms {
        coverage: coverage.clone(),
        requests: encoded,
        operations: operations.iter().map(|(k, c)| c.lossless(k)).collect(),
        services: services
            .iter()
            .map(|(service, (h, errors))| ServiceHistograms {
                service: service.clone(),
                values: h.to_base64(),
                errors: *errors,
            })
            .collect(),
        link_template: link_template.clone(),
        interval_s,
    });
    let mut operations: Vec<Component> = operations
        .iter()
        .map(|(k, c)| c.component(k, 0.0))
        .collect();
    operations.sort_by(|x, y| y.figures.sum().total_cmp(&x.figures.sum()));
    Ok(Breakdown {
        coverage,
        requests,
        operations,
        services: services
            .into_iter()
            .map(|(service, (h, errors))| ServiceFigures {
                service,
                figures: Figures::of(&h),
                errors,
            })
            .collect(),
        link_template,
        interval_s,
        histograms: histograms.map(std::sync::Arc::new),
    })
}
