//! Which share of a distributed run this process runs (`--segment I/N`, or `--workers N` with
//! `--worker-index` or Kubernetes' `JOB_COMPLETION_INDEX`), and the scenario hash that
//! `loadlens merge` compares to make sure the segments ran the same thing.

use loadlens_core::executor::{LoadSettings, ScenarioRun};
use loadlens_core::load::Segment;
use loadlens_core::plan::Plan;
use loadlens_core::thresholds::Threshold;

use crate::cli::RunArgs;
use crate::exit::{Exit, Failure};

/// The environment variable a Kubernetes Indexed Job sets to each pod's index (from 0).
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

fn invalid(msg: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::InvalidInput, msg.to_string())
}

/// The segment asked for by the flags (the whole run when none is).
pub fn pick(args: &RunArgs) -> Result<Segment, Failure> {
    pick_with(args, |k| std::env::var(k).ok())
}

fn pick_with(args: &RunArgs, env: impl Fn(&str) -> Option<String>) -> Result<Segment, Failure> {
    if let Some(s) = args.segment {
        return Ok(s);
    }
    let Some(workers) = args.workers else {
        if let Some(i) = args.worker_index {
            return Err(invalid(format!(
                "--worker-index {i} needs --workers N (or give --segment I/N)"
            )));
        }
        return Ok(Segment::WHOLE);
    };
    let index = match args.worker_index {
        Some(i) => i,
        None => match env(JOB_COMPLETION_INDEX) {
            Some(v) => v.trim().parse().map_err(|_| {
                invalid(format!(
                    "{JOB_COMPLETION_INDEX}=`{v}` is not a worker index (a whole number from 0)"
                ))
            })?,
            None => {
                return Err(invalid(format!(
                    "--workers {workers} needs this worker's index: --worker-index I (from 0) or {JOB_COMPLETION_INDEX}"
                )))
            }
        },
    };
    Segment::of_worker(index, workers).map_err(invalid)
}

/// `load` and every named scenario's load, to run `segment` of them.
pub fn apply(
    segment: Segment,
    mut load: LoadSettings,
    mut scenarios: Vec<ScenarioRun>,
) -> Result<(LoadSettings, Vec<ScenarioRun>), Failure> {
    if scenarios.is_empty() {
        segment.check(&load).map_err(invalid)?;
    }
    load.segment = segment;
    for s in &mut scenarios {
        segment.check(&s.load).map_err(|e| {
            invalid(if s.name.is_empty() {
                e.to_string()
            } else {
                format!("scenario `{}`: {e}", s.name)
            })
        })?;
        s.load.segment = segment;
    }
    Ok((load, scenarios))
}

/// A hash of what every segment of a run must share: the scenario file's text, the request
/// names, the whole run's load (every named scenario's too), the thresholds and the host. Not
/// the run id, tags or segment, which differ between workers by design.
pub fn scenario_hash(
    file: Option<&str>,
    plan: &Plan,
    load: &LoadSettings,
    scenarios: &[ScenarioRun],
    thresholds: &[Threshold],
    host: Option<&str>,
) -> String {
    let whole = |l: &LoadSettings| LoadSettings {
        segment: Segment::WHOLE,
        ..l.clone()
    };
    let text = file.and_then(|f| std::fs::read(f).ok());
    let canonical = serde_json::json!({
        "file": text.map(|t| String::from_utf8_lossy(&t).into_owned()),
        "names": plan.names.pairs(),
        "load": whole(load),
        "scenarios": scenarios
            .iter()
            .map(|s| (s.name.clone(), s.start_time.as_secs_f64(), whole(&s.load)))
            .collect::<Vec<_>>(),
        "thresholds": thresholds.iter().map(|t| t.expression.clone()).collect::<Vec<_>>(),
        "host": host,
    });
    format!("fnv1a64:{:016x}", fnv1a64(canonical.to_string().as_bytes()))
}

/// 64-bit FNV-1a. Written by hand: the hash only tells apart results of different scenarios
/// (no adversary), and it must be the same in every build and on every machine, which the
/// standard library's `DefaultHasher` does not promise.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(segment: Option<&str>, workers: Option<u64>, index: Option<u64>) -> RunArgs {
        RunArgs {
            segment: segment.map(|s| s.parse().unwrap()),
            workers,
            worker_index: index,
            ..RunArgs::default()
        }
    }

    #[test]
    fn the_segment_comes_from_the_flags_or_the_indexed_job() {
        let none = |_: &str| None;
        let job = |k: &str| (k == JOB_COMPLETION_INDEX).then(|| "2".to_owned());
        let pick = |a: RunArgs, env: &dyn Fn(&str) -> Option<String>| {
            pick_with(&a, env)
                .map(|s| s.to_string())
                .map_err(|e| e.message)
        };
        assert_eq!(pick(args(None, None, None), &none).unwrap(), "1/1");
        assert_eq!(pick(args(Some("2/3"), None, None), &job).unwrap(), "2/3");
        assert_eq!(pick(args(None, Some(3), None), &job).unwrap(), "3/3");
        assert_eq!(pick(args(None, Some(3), Some(0)), &job).unwrap(), "1/3");
        let e = pick(args(None, Some(3), None), &none).unwrap_err();
        assert!(
            e.contains("--worker-index I (from 0) or JOB_COMPLETION_INDEX"),
            "{e}"
        );
        let e = pick(args(None, Some(2), None), &job).unwrap_err();
        assert_eq!(
            e,
            "worker index 2 is out of range for 2 workers: expected 0 to 1"
        );
        let e = pick(args(None, Some(0), Some(0)), &none).unwrap_err();
        assert_eq!(e, "--workers must be at least 1");
        let e = pick(args(None, None, Some(1)), &none).unwrap_err();
        assert!(e.contains("needs --workers N"), "{e}");
        let bad = |k: &str| (k == JOB_COMPLETION_INDEX).then(|| "x".to_owned());
        let e = pick(args(None, Some(3), None), &bad).unwrap_err();
        assert!(e.contains("`x` is not a worker index"), "{e}");
    }

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
