//! The model of guard actions and planned flips: what a guard (a failed threshold, a monitor in
//! Alert, the end of a failed run) or the plan of a run (`actions:`) asks an outside system to
//! do, and the record of what came of it. No vendor is named here: a feature gate is switched
//! through a *target* that an integration provides (`statsig`), found by name or, when the
//! action names none, as the only one on. The runner that performs them is
//! [`crate::actions`].
//!
//! ```yaml
//! thresholds:
//!   - { threshold: "p95 < 300ms", on_fail: disable_gate new_checkout }
//!   - "error_rate < 1%, disable_gate new_checkout"
//! actions:
//!   - { at: 5m, statsig: { enable_gate: new_checkout }, restore: true }
//!   - { stage: 2, statsig: { enable_gate: new_checkout } }
//!   - { on: run_failed, webhook: { url: "https://hooks.slack.com/…", headers_from_env: { Authorization: SLACK_TOKEN } } }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Switch a feature gate on or off.
    Gate {
        /// The integration that switches it (`None`: the only one on).
        target: Option<String>,
        /// The gate's id.
        gate: String,
        /// On (true) or off.
        enable: bool,
    },
    /// POST a JSON body (run id, cause, links) to a URL.
    Webhook(Webhook),
}

impl Action {
    /// `disable_gate NAME` / `enable_gate NAME` (the words of a threshold's `on_fail`).
    pub fn parse_words(s: &str) -> Result<Action, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            [verb, gate] if *verb == "disable_gate" || *verb == "enable_gate" => Ok(Action::Gate {
                target: None,
                gate: (*gate).to_owned(),
                enable: *verb == "enable_gate",
            }),
            _ => Err(format!(
                "unknown action `{s}`: expected `disable_gate GATE` or `enable_gate GATE`"
            )),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Gate {
                target,
                gate,
                enable,
            } => {
                let verb = if *enable { "enable" } else { "disable" };
                match target {
                    Some(t) => write!(f, "{verb} gate {gate} ({t})"),
                    None => write!(f, "{verb} gate {gate}"),
                }
            }
            Action::Webhook(w) => write!(f, "webhook {}", crate::encoding::redact_url(&w.url)),
        }
    }
}

/// A webhook: where to POST, and the headers whose values come from the environment (so that
/// a token is never written in the scenario, nor shown anywhere).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Header name → environment variable holding its value.
    #[serde(default)]
    pub headers_from_env: BTreeMap<String, String>,
}

/// `on_fail:` of a threshold: one action or a list; each `disable_gate NAME`, `enable_gate
/// NAME`, `{ disable_gate: NAME }` or `{ webhook: { url, headers_from_env } }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnFail(pub Vec<Action>);

impl<'de> serde::Deserialize<'de> for OnFail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        let items = match v {
            serde_json::Value::Array(s) => s,
            one => vec![one],
        };
        items
            .into_iter()
            .map(|i| one_action(i, None).map_err(D::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(OnFail)
    }
}

fn one_action(v: serde_json::Value, target: Option<&str>) -> Result<Action, String> {
    match v {
        serde_json::Value::String(s) if target.is_none() => Action::parse_words(&s),
        serde_json::Value::Object(m) if m.len() == 1 => {
            let (k, v) = m.into_iter().next().unwrap_or_default();
            let key = k;
            match (key.as_str(), v) {
                ("disable_gate" | "enable_gate", serde_json::Value::String(gate)) => {
                    Ok(Action::Gate {
                        target: target.map(str::to_owned),
                        gate,
                        enable: key == "enable_gate",
                    })
                }
                ("webhook", v) if target.is_none() => serde_json::from_value::<Webhook>(v)
                    .map(Action::Webhook)
                    .map_err(|e| format!("webhook: {e}")),
                _ => Err(format!(
                    "unknown action `{key}`: expected `disable_gate: GATE`, `enable_gate: GATE`{}",
                    if target.is_none() { " or `webhook: {{ url }}`" } else { "" }
                )),
            }
        }
        other => Err(format!(
            "expected an action such as `disable_gate new_checkout` or `{{ webhook: {{ url: … }} }}`, got {}",
            serde_json::to_string(&other).unwrap_or_default()
        )),
    }
}

/// When a planned action happens.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// This far into the run.
    At(Duration),
    /// This share of the run time (0-1), resolved once the run time is known.
    AtShare(f64),
    /// When this stage (1-based) of the load profile begins.
    Stage(usize),
    /// At the end of a run whose verdict is not `passed`.
    RunFailed,
}

/// One entry of the scenario's `actions:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// When.
    pub when: When,
    /// What.
    pub action: Action,
    /// Put the gate back as it was at the end of the run (gate flips only).
    pub restore: bool,
}

impl<'de> serde::Deserialize<'de> for Planned {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PlannedVisitor)
    }
}

/// Reads an `actions:` entry key by key, so that an error is located at the key it is about.
struct PlannedVisitor;

impl<'de> serde::de::Visitor<'de> for PlannedVisitor {
    type Value = Planned;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an action such as `{ at: 5m, statsig: { enable_gate: new_checkout } }`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Planned, A::Error> {
        use serde::de::Error;
        let mut when = None;
        let mut action = None;
        let mut restore = false;
        let set_when = |w: When, when: &mut Option<When>| -> Result<(), A::Error> {
            if when.is_some() {
                return Err(A::Error::custom(
                    "give one of `at`, `stage` or `on`, not several",
                ));
            }
            *when = Some(w);
            Ok(())
        };
        while let Some(key) = map.next_key::<String>()? {
            let v: serde_json::Value = map.next_value()?;
            match key.as_str() {
                "at" => {
                    let text = match &v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => format!("{n}s"),
                        _ => String::new(),
                    };
                    let w = match text.trim().strip_suffix('%') {
                        Some(p) => match p.trim().parse::<f64>() {
                            Ok(p) if (0.0..=100.0).contains(&p) => When::AtShare(p / 100.0),
                            _ => {
                                return Err(A::Error::custom(format!(
                                    "at: `{text}` is not a share of the run between 0% and 100%"
                                )))
                            }
                        },
                        None => When::At(
                            crate::duration::parse_duration(&text)
                                .map_err(|e| A::Error::custom(format!("at: {e}")))?,
                        ),
                    };
                    set_when(w, &mut when)?;
                }
                "stage" => {
                    let n = v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                        A::Error::custom("stage: expected a stage number, 1 for the first")
                    })?;
                    set_when(When::Stage(n as usize), &mut when)?;
                }
                "on" => match v.as_str() {
                    Some("run_failed") => set_when(When::RunFailed, &mut when)?,
                    _ => return Err(A::Error::custom("on: expected `run_failed`")),
                },
                "restore" => {
                    restore = v
                        .as_bool()
                        .ok_or_else(|| A::Error::custom("restore: expected true or false"))?;
                }
                _ if action.is_some() => {
                    return Err(A::Error::custom(format!(
                        "`{key}`: one action per entry (this one already has one)"
                    )))
                }
                "webhook" => {
                    let mut m = serde_json::Map::new();
                    m.insert(key.clone(), v);
                    action = Some(
                        one_action(serde_json::Value::Object(m), None).map_err(A::Error::custom)?,
                    );
                }
                // Any other key is a target: the integration that acts (`statsig:`).
                target => {
                    action = Some(
                        one_action(v, Some(target))
                            .map_err(|e| A::Error::custom(format!("{target}: {e}")))?,
                    );
                }
            }
        }
        let when = when.ok_or_else(|| {
            A::Error::custom("an action needs `at: 5m`, `at: 50%`, `stage: 2` or `on: run_failed`")
        })?;
        let action = action.ok_or_else(|| {
            A::Error::custom(
                "an action needs what to do, e.g. `statsig: { enable_gate: new_checkout }` or `webhook: { url: … }`",
            )
        })?;
        if restore && !matches!(action, Action::Gate { .. }) {
            return Err(A::Error::custom(
                "restore: only a gate flip can be restored",
            ));
        }
        Ok(Planned {
            when,
            action,
            restore,
        })
    }
}

/// What became of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It was done.
    Done,
    /// It was tried and failed (after its retries).
    Failed,
    /// `--dry-run-actions`: shown, not done.
    DryRun,
    /// Not done again: the gate was already switched by an earlier guard of this run.
    Skipped,
}

/// One action of the run, as every report shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Seconds into the run when it was asked for.
    pub elapsed_s: f64,
    /// Why: `threshold `p95 < 300ms` failed: observed 312 ms`, `planned at 30 s`, ….
    pub cause: String,
    /// What: `disable gate new_checkout (statsig)`, `webhook https://…`.
    pub action: String,
    /// What came of it.
    pub status: Status,
    /// The answer, the error, or why it was skipped.
    pub detail: String,
    /// The reason left with the action: `loadlens run RUN_ID: CAUSE`.
    pub reason: String,
}

impl Record {
    /// One line: `disable gate new_checkout (statsig): done (…) — loadlens run ID: threshold …`.
    pub fn line(&self) -> String {
        let status = match self.status {
            Status::Done => "done",
            Status::Failed => "FAILED",
            Status::DryRun => "dry run, not done",
            Status::Skipped => "skipped",
        };
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.detail)
        };
        format!("{}: {status}{detail} — {}", self.action, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_fail_takes_words_maps_and_lists() {
        let one: OnFail = crate::yaml::from_str("disable_gate new_checkout").unwrap();
        assert_eq!(
            one.0,
            [Action::Gate {
                target: None,
                gate: "new_checkout".into(),
                enable: false
            }]
        );
        let list: OnFail = crate::yaml::from_str(
            "[{ enable_gate: a }, { webhook: { url: 'http://h/x', headers_from_env: { Authorization: TOKEN } } }]",
        )
        .unwrap();
        assert_eq!(list.0.len(), 2);
        assert_eq!(list.0[0].to_string(), "enable gate a");
        assert_eq!(list.0[1].to_string(), "webhook http://h/x");
        let e = crate::yaml::from_str::<OnFail>("shutdown now").unwrap_err();
        assert!(
            e.to_string().contains("expected `disable_gate GATE`"),
            "{e}"
        );
    }

    #[test]
    fn planned_entries_name_when_and_what() {
        let p: Vec<Planned> = crate::yaml::from_str(
            "- { at: 5m, statsig: { enable_gate: new_checkout }, restore: true }\n\
             - { at: 50%, statsig: { disable_gate: g } }\n\
             - { stage: 2, statsig: { enable_gate: g } }\n\
             - { on: run_failed, webhook: { url: 'http://h/' } }\n",
        )
        .unwrap();
        assert_eq!(p[0].when, When::At(Duration::from_secs(300)));
        assert!(p[0].restore);
        assert_eq!(
            p[0].action.to_string(),
            "enable gate new_checkout (statsig)"
        );
        assert_eq!(p[1].when, When::AtShare(0.5));
        assert_eq!(p[2].when, When::Stage(2));
        assert_eq!(p[3].when, When::RunFailed);
        for (bad, says) in [
            ("{ statsig: { enable_gate: g } }", "needs `at: 5m`"),
            ("{ at: 5m }", "needs what to do"),
            (
                "{ at: 5m, stage: 2, statsig: { enable_gate: g } }",
                "not several",
            ),
            (
                "{ at: 150%, statsig: { enable_gate: g } }",
                "between 0% and 100%",
            ),
            ("{ at: 5m, statsig: { flip: g } }", "unknown action `flip`"),
            (
                "{ at: 5m, webhook: { url: 'http://h/' }, restore: true }",
                "only a gate flip",
            ),
        ] {
            let e = crate::yaml::from_str::<Planned>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
