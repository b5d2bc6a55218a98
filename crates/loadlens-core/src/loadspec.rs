//! The load-model and threshold parts of the scenario file, and their conversion into
//! [`LoadSettings`] and [`Threshold`]s:
//!
//! ```yaml
//! load:
//!   stages: 30s:100,5m:100,30s:0        # or a list of { duration: 30s, target: 100 }
//!   # open model instead of users:
//!   arrival_rate: 200/s                 # start rate (constant without stages); /s or /m
//!   pre_allocated_vus: 50
//!   max_vus: 500
//! thresholds:
//!   - p95 < 300ms
//!   - { threshold: "error_rate < 1%", abort_on_fail: true, delay: 30s }
//! # scenarios:                          # instead of `load:`, several load models side by side
//! #   browse:   { user_types: [shopper], load: { arrival_rate: 50/s, run_time: 5m } }
//! #   checkout: { user_types: [buyer], start_time: 1m, load: { users: 10, run_time: 2m } }
//! ```
//!
//! In the open model, stage targets are arrival rates: a bare number is per second, or write
//! `500/s`, `30000/m`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::duration::{parse_duration, secs_to_duration};
use crate::load::profile::{parse_rate, parse_stages};
use crate::load::{ArrivalSettings, LoadSettings, Stage};
use crate::scenario::{Load, Scenario};
use crate::thresholds::{self, Threshold};

/// `stages:` — the shorthand string or a list of `{ duration, target }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StagesSpec(pub Vec<Stage>);

fn duration_of(v: &serde_json::Value) -> Result<Duration, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| "not a number".to_owned())
            .and_then(|s| secs_to_duration(s).map_err(|e| e.to_string()))
            .map_err(|e| format!("invalid duration `{n}`: {e}")),
        serde_json::Value::String(s) => parse_duration(s).map_err(|e| e.to_string()),
        other => Err(format!("expected a duration such as `30s`, got {other:?}")),
    }
}

fn target_of(v: &serde_json::Value) -> Result<f64, String> {
    let t = match v {
        serde_json::Value::Number(n) => {
            n.as_f64().ok_or_else(|| format!("invalid target `{n}`"))?
        }
        serde_json::Value::String(s) => parse_rate(s).map_err(|e| e.to_string())?,
        other => {
            return Err(format!(
                "expected a number or a rate such as `500/s`, got {other:?}"
            ))
        }
    };
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(format!("stage target must be 0 or more, got {t}"))
    }
}

impl<'de> Deserialize<'de> for StagesSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StagesSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("stages as `30s:100,5m:100,30s:0` or a list of `{ duration: 30s, target: 100 }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StagesSpec, E> {
                parse_stages(v).map(StagesSpec).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StagesSpec, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Entry {
                    duration: serde_json::Value,
                    target: serde_json::Value,
                }
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<Entry>()? {
                    let n = out.len() + 1;
                    let duration = duration_of(&e.duration)
                        .map_err(|m| de::Error::custom(format!("stage {n}: {m}")))?;
                    let target = target_of(&e.target)
                        .map_err(|m| de::Error::custom(format!("stage {n}: {m}")))?;
                    out.push(Stage { duration, target });
                }
                if out.is_empty() {
                    return Err(de::Error::custom(
                        "`stages` is empty: list at least one stage",
                    ));
                }
                Ok(StagesSpec(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// An arrival rate: `200` or `200/s` (per second), `1200/m`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate(pub f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        target_of(&v)
            .map(Rate)
            .map_err(|e| de::Error::custom(format!("arrival_rate: {e}")))
    }
}

/// One entry of `thresholds:`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSpec {
    /// The rule, e.g. `p95 < 300ms`.
    pub threshold: String,
    /// Stop the run when it fails.
    pub abort_on_fail: bool,
    /// Grace time before it may abort.
    pub delay: Option<Duration>,
    /// Guard actions when it first fails (`on_fail: disable_gate new_checkout`).
    pub on_fail: crate::action::OnFail,
}

impl<'de> Deserialize<'de> for ThresholdSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ThresholdSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a threshold such as `p95 < 300ms` or `{ threshold: \"p95 < 300ms\", abort_on_fail: true, delay: 30s }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ThresholdSpec, E> {
                Ok(ThresholdSpec {
                    threshold: v.to_owned(),
                    abort_on_fail: false,
                    delay: None,
                    on_fail: Default::default(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ThresholdSpec, A::Error> {
                let mut out = ThresholdSpec {
                    threshold: String::new(),
                    abort_on_fail: false,
                    delay: None,
                    on_fail: Default::default(),
                };
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "threshold" => out.threshold = map.next_value()?,
                        "abort_on_fail" => out.abort_on_fail = map.next_value()?,
                        "on_fail" => out.on_fail = map.next_value()?,
                        "delay" => {
                            let v: serde_json::Value = map.next_value()?;
                            out.delay = Some(duration_of(&v).map_err(de::Error::custom)?);
                        }
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["threshold", "abort_on_fail", "delay", "on_fail"],
                            ))
                        }
                    }
                }
                if out.threshold.is_empty() {
                    return Err(de::Error::missing_field("threshold"));
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// `thresholds:` as a list of rules, or as k6 writes them: a map from a metric (with its
/// scope) to its expressions, `{ http_req_duration: ['p(95)<500'], http_req_failed:
/// ['rate<0.01'] }`, an expression being a string or `{ threshold, abortOnFail,
/// delayAbortEval }`. Each becomes the rule `METRIC: EXPRESSION` ([`thresholds::k6`]).
pub(crate) fn thresholds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ThresholdSpec>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<ThresholdSpec>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of thresholds such as `- p95 < 300ms`, or k6's map `{ http_req_duration: ['p(95)<500'] }`")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(t) = seq.next_element()? {
                out.push(t);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(metric) = map.next_key::<String>()? {
                let v: serde_json::Value = map.next_value()?;
                let items = match v {
                    serde_json::Value::Array(items) => items,
                    one => vec![one],
                };
                for item in items {
                    out.push(k6_entry(&metric, item).map_err(de::Error::custom)?);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// One k6 threshold expression on `metric`: `'p(95)<500'` or `{ threshold: 'p(95)<500',
/// abortOnFail: true, delayAbortEval: '10s' }`.
fn k6_entry(metric: &str, item: serde_json::Value) -> Result<ThresholdSpec, String> {
    use serde_json::Value;
    let rule = |expr: &str| format!("{metric}: {expr}");
    match item {
        Value::String(expr) => Ok(ThresholdSpec {
            threshold: rule(&expr),
            abort_on_fail: false,
            delay: None,
            on_fail: Default::default(),
        }),
        Value::Object(m) => {
            let mut spec = ThresholdSpec {
                threshold: String::new(),
                abort_on_fail: false,
                delay: None,
                on_fail: Default::default(),
            };
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("threshold", Value::String(expr)) => spec.threshold = rule(&expr),
                    ("abortOnFail", Value::Bool(b)) => spec.abort_on_fail = b,
                    ("delayAbortEval", v) => spec.delay = Some(duration_of(&v)?),
                    (other, _) => {
                        return Err(format!(
                            "thresholds.{metric}: unknown or mistyped `{other}` (k6's threshold object has `threshold`, `abortOnFail` and `delayAbortEval`)"
                        ))
                    }
                }
            }
            if spec.threshold.is_empty() {
                return Err(format!("thresholds.{metric}: missing `threshold`"));
            }
            Ok(spec)
        }
        _ => Err(format!(
            "thresholds.{metric}: expected an expression such as 'p(95)<500' or a list of them"
        )),
    }
}

impl ThresholdSpec {
    /// Parse the rule and apply the entry's options.
    pub fn parse(&self) -> Result<Threshold, thresholds::ParseError> {
        let mut t = thresholds::parse(&self.threshold)?;
        t.abort_on_fail |= self.abort_on_fail || self.delay.is_some();
        t.delay = t.delay.or(self.delay);
        t.on_fail.extend(self.on_fail.0.iter().cloned());
        Ok(t)
    }
}

/// A `load:` or `scenarios:` entry whose settings do not work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A `start_time` that is not a duration.
    #[error("start_time: {0}")]
    StartTime(String),
    /// Open-model settings without an arrival rate or stages.
    #[error("`pre_allocated_vus`/`max_vus` belong to the open model: add `arrival_rate`")]
    OpenModelOnly,
    /// `max_vus: 0`.
    #[error("max_vus must be at least 1")]
    NoVus,
    /// More pre-allocated VUs than the most allowed.
    #[error("pre_allocated_vus ({pre}) is above max_vus ({max}): raise max_vus or lower pre_allocated_vus")]
    PreAboveMax {
        /// `pre_allocated_vus`.
        pre: u64,
        /// `max_vus`.
        max: u64,
    },
}

/// One entry of `scenarios:`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// User types this scenario runs (default: all).
    #[serde(default)]
    pub user_types: Vec<String>,
    /// When it starts, from the start of the run.
    #[serde(default)]
    pub start_time: Option<serde_json::Value>,
    /// Its load model.
    #[serde(default)]
    pub load: Load,
}

impl ScenarioSpec {
    /// The start offset.
    pub fn start(&self) -> Result<Duration, LoadError> {
        self.start_time
            .as_ref()
            .map_or(Ok(Duration::ZERO), duration_of)
            .map_err(LoadError::StartTime)
    }
}

/// Load settings from the file's `load:` (CLI flags are applied on top by the caller).
pub fn settings(load: &Load) -> Result<LoadSettings, LoadError> {
    let stages = load.stages.clone().unwrap_or_default().0;
    let arrival = match (load.arrival_rate, load.pre_allocated_vus, load.max_vus) {
        (None, None, None) => None,
        (None, _, _) if stages.is_empty() => return Err(LoadError::OpenModelOnly),
        (rate, pre, max) => Some(arrival(rate.map_or(0.0, |r| r.0), pre, max)?),
    };
    Ok(LoadSettings {
        users: load.users.unwrap_or(1),
        spawn_rate: load.spawn_rate,
        run_time: load.run_time,
        iterations: load.iterations,
        stop_timeout: load.stop_timeout,
        stages,
        arrival,
        segment: Default::default(),
    })
}

/// Open-model settings with defaults: pre-allocated VUs default to the start rate × 100 ms
/// (at least 1, at most `max`), max VUs to ten times the pre-allocated ones.
pub fn arrival(
    rate: f64,
    pre: Option<u64>,
    max: Option<u64>,
) -> Result<ArrivalSettings, LoadError> {
    let pre = pre.unwrap_or_else(|| {
        // The default never exceeds an explicit max.
        let d = ((rate / 10.0).ceil() as u64).max(1);
        max.map_or(d, |m| d.min(m))
    });
    let max = max.unwrap_or_else(|| pre.max(1) * 10);
    if max == 0 {
        return Err(LoadError::NoVus);
    }
    if pre > max {
        return Err(LoadError::PreAboveMax { pre, max });
    }
    Ok(ArrivalSettings {
        rate_per_s: rate,
        pre_allocated_vus: pre,
        max_vus: max,
    })
}

/// Checks of these sections, returning `(text to locate, message)` for the scenario's error.
pub fn validate(s: &Scenario) -> Result<(), (String, String)> {
    // Tags live on tasks; a tag scope naming none of them is a typo.
    let tags: std::collections::BTreeSet<&str> = s
        .user_types
        .iter()
        .flat_map(|u| &u.tasks)
        .flat_map(|t| &t.tags)
        .map(String::as_str)
        .collect();
    for t in &s.thresholds {
        let parsed = t
            .parse()
            .map_err(|e| (t.threshold.clone(), e.to_string()))?;
        if let thresholds::Scope::Tag(tag) = &parsed.scope {
            if !tags.contains(tag.as_str()) {
                return Err((
                    t.threshold.clone(),
                    thresholds::unknown_tag(&parsed.expression, tag, &tags),
                ));
            }
        }
    }
    for t in &s.thresholds {
        // A scope on a named scenario that does not exist would never be evaluated.
        if let Ok(thresholds::Threshold {
            scope: thresholds::Scope::Scenario(name),
            expression,
            ..
        }) = t.parse()
        {
            if !s.scenarios.contains_key(&name) {
                return Err((
                    t.threshold.clone(),
                    format!(
                        "threshold `{expression}`: no scenario is named `{name}` (define it under `scenarios:`)"
                    ),
                ));
            }
        }
    }
    check_load(&s.load, "")?;
    let only_stop_timeout = Load {
        stop_timeout: s.load.stop_timeout,
        ..Load::default()
    };
    if !s.scenarios.is_empty() && s.load != only_stop_timeout {
        // Silently ignoring it would run a different test than the file seems to say.
        return Err((
            "load".to_owned(),
            "a top-level `load:` does not apply beside `scenarios:`: each scenario has its own `load:` (only `stop_timeout` applies to all)".to_owned(),
        ));
    }
    for (name, sc) in &s.scenarios {
        sc.start()
            .map_err(|e| (name.clone(), format!("scenario `{name}`: {e}")))?;
        check_load(&sc.load, name)?;
        for u in &sc.user_types {
            if !s.user_types.iter().any(|t| t.name == *u) {
                let known: Vec<&str> = s.user_types.iter().map(|t| t.name.as_str()).collect();
                return Err((
                    u.clone(),
                    format!(
                        "scenario `{name}` names user type `{u}`, which is not defined (user types: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What `run` would reject in one `load:` section, located at its key: a load that runs
/// nothing, a spawn rate that never spawns, settings that do not apply together, a load above
/// what one process can hold ([`crate::limits`], except the memory check, which depends on the
/// machine that runs it). `scenario` names the section's scenario (empty: the top-level one).
fn check_load(load: &Load, scenario: &str) -> Result<(), (String, String)> {
    let at = |key: &str, message: String| {
        let message = if scenario.is_empty() {
            message
        } else {
            format!("scenario `{scenario}`: {message}")
        };
        (key.to_owned(), message)
    };
    let l = settings(load).map_err(|e| at("load", e.to_string()))?;
    let staged = !l.stages.is_empty();
    if load.users == Some(0) && !staged && l.arrival.is_none() {
        return Err(at(
            "users",
            "`users: 0` runs nothing: give at least 1 (or ramp with `stages`)".into(),
        ));
    }
    if let Some(r) = load.spawn_rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(at(
                "spawn_rate",
                format!("`spawn_rate` must be a positive number of users per second, got {r}"),
            ));
        }
        if staged {
            return Err(at(
                "spawn_rate",
                "`spawn_rate` does not apply with `stages`: the stages ramp the users; remove one"
                    .into(),
            ));
        }
    }
    if l.arrival.as_ref().is_some_and(|a| a.rate_per_s == 0.0) && !staged {
        return Err(at(
            "arrival_rate",
            "`arrival_rate` is 0 and there are no `stages`: nothing would run".into(),
        ));
    }
    crate::limits::check_load(&l, None).map_err(|e| {
        let e = e.to_string();
        let key = match &l.arrival {
            Some(_) if e.contains("max_vus") => "max_vus",
            Some(_) if e.contains("stage") => "stages",
            Some(_) => "arrival_rate",
            None if e.contains("stage") => "stages",
            None => "users",
        };
        at(key, e)
    })
}
