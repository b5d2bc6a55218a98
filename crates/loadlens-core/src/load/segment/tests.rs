use std::time::Duration;

use super::*;
use crate::load::profile::{parse_stages, Pacer};
use crate::load::ArrivalSettings;

fn all(n: u64) -> Vec<Segment> {
    (0..n).map(|i| Segment::of_worker(i, n).unwrap()).collect()
}

#[test]
fn segments_parse_and_bad_ones_say_why() {
    let s: Segment = "2/3".parse().unwrap();
    assert_eq!((s.index(), s.count(), s.to_string()), (1, 3, "2/3".into()));
    assert!("1/1".parse::<Segment>().unwrap().is_whole());
    assert_eq!(Segment::of_worker(2, 3).unwrap(), "3/3".parse().unwrap());
    for (bad, says) in [
        ("0/3", "count from 1"),
        ("4/3", "I is above N"),
        ("1/0", "at least 1"),
        ("0/0", "at least 1"),
        ("two/3", "must be I/N"),
        ("3", "must be I/N"),
        ("-1/3", "must be I/N"),
    ] {
        let e = bad.parse::<Segment>().unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let e = Segment::of_worker(3, 3).unwrap_err().to_string();
    assert_eq!(
        e,
        "worker index 3 is out of range for 3 workers: expected 0 to 2"
    );
    assert_eq!(
        Segment::of_worker(0, 0).unwrap_err(),
        SegmentError::NoWorkers
    );
    // Serialised as written on the command line.
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"2/3\"");
    assert_eq!(serde_json::from_str::<Segment>("\"2/3\"").unwrap(), s);
}

#[test]
fn shares_add_up_exactly_and_differ_by_at_most_one() {
    for n in 1..=9 {
        for total in 0..300 {
            let shares: Vec<u64> = all(n).iter().map(|s| s.share(total)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {n}");
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(hi - lo <= 1, "{total} over {n}: {shares:?}");
            // Item j is owned by exactly one segment, and `global` numbers a segment's items.
            for j in 0..total {
                assert_eq!(all(n).iter().filter(|s| s.owns(j)).count(), 1);
            }
            for s in all(n) {
                for local in 0..s.share(total) {
                    assert!(s.owns(s.global(local)) && s.global(local) < total);
                }
            }
        }
    }
}

fn closed(users: u64, spawn_rate: Option<f64>, stages: &str) -> LoadSettings {
    LoadSettings {
        users,
        spawn_rate,
        stages: if stages.is_empty() {
            Vec::new()
        } else {
            parse_stages(stages).unwrap()
        },
        ..LoadSettings::default()
    }
}

/// Users, spawn rates and stages: at every moment the segments' user counts add up to the whole
/// run's, and each segment's count moves only in the direction the whole run's moves (a ramp up
/// never stops a user in some segment).
#[test]
fn closed_model_users_add_up_at_every_moment_for_a_matrix_of_loads() {
    let mut checked = 0;
    for users in [0, 1, 2, 3, 5, 7, 10, 64, 101] {
        for spawn_rate in [None, Some(0.5), Some(3.0), Some(10.0), Some(1000.0)] {
            for stages in [
                "",
                "10s:10,20s:10,10s:0",
                "0s:3,5s:17,5s:1,3s:1",
                "7s:101,3s:4",
            ] {
                let load = closed(users, spawn_rate, stages);
                for n in 1..=6 {
                    let mut last: Option<(u64, Vec<u64>)> = None;
                    for step in 0..=200 {
                        let t = Duration::from_millis(step * 250);
                        let whole = load.users_at(t);
                        let parts: Vec<u64> =
                            all(n).iter().map(|s| s.share(load.users_at(t))).collect();
                        assert_eq!(parts.iter().sum::<u64>(), whole, "{load:?} n={n} t={t:?}");
                        if let Some((w0, p0)) = &last {
                            for (a, b) in p0.iter().zip(&parts) {
                                assert!(
                                    (whole >= *w0 && b >= a) || (whole <= *w0 && b <= a),
                                    "{load:?} n={n} t={t:?}: {p0:?} -> {parts:?}"
                                );
                            }
                        }
                        last = Some((whole, parts));
                        checked += 1;
                    }
                    // Every stage's target splits exactly too.
                    for stage in &load.stages {
                        let target = stage.target as u64;
                        let sum: u64 = all(n).iter().map(|s| s.share(target)).sum();
                        assert_eq!(sum, target);
                    }
                }
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

/// Arrival rates, constant and staged: the segments' arrivals are disjoint, and together they
/// are the whole run's schedule, instant for instant.
#[test]
fn open_model_arrivals_are_the_whole_schedule_dealt_out_for_a_matrix_of_rates() {
    for rate in [0.5, 7.0, 100.0, 333.3] {
        for stages in ["", "2s:30,2s:30,1s:0", "0s:50,1s:50,2s:5"] {
            let stages = if stages.is_empty() {
                Vec::new()
            } else {
                parse_stages(stages).unwrap()
            };
            let end = Some(Duration::from_secs(5));
            let drain = |mut p: Pacer| {
                let mut v = Vec::new();
                while let Some(at) = p.take_due(Duration::from_secs(3600)) {
                    v.push(at);
                }
                assert_eq!(p.issued() as usize, v.len());
                v
            };
            let whole = drain(Pacer::new(rate, stages.clone(), end));
            for n in 1..=6 {
                let mut union = Vec::new();
                for s in all(n) {
                    let part = drain(Pacer::new(rate, stages.clone(), end).segment(s));
                    assert_eq!(part.len() as u64, s.share(whole.len() as u64));
                    union.extend(part);
                }
                union.sort();
                assert_eq!(union, whole, "rate {rate} {stages:?} n={n}");
            }
        }
    }
}

/// Iteration budgets and VU pools split exactly; a VU pool smaller than the number of
/// segments is refused.
#[test]
fn iterations_and_vu_pools_add_up_and_too_few_vus_are_refused() {
    for total in [0, 1, 9, 10, 1001] {
        for n in 1..=7 {
            assert_eq!(all(n).iter().map(|s| s.share(total)).sum::<u64>(), total);
        }
    }
    let open = LoadSettings {
        arrival: Some(ArrivalSettings {
            rate_per_s: 10.0,
            pre_allocated_vus: 2,
            max_vus: 3,
        }),
        ..LoadSettings::default()
    };
    for s in all(3) {
        s.check(&open).unwrap();
    }
    let e = all(4)[0].check(&open).unwrap_err().to_string();
    assert_eq!(
        e,
        "max_vus (3) is below the number of segments (4): each segment needs at least one VU; raise max_vus to at least 4"
    );
    // The closed model has no such limit: a segment may get 0 users.
    let few = closed(1, None, "");
    for s in all(4) {
        s.check(&few).unwrap();
    }
    assert_eq!(
        all(4).iter().map(|s| s.share(1)).collect::<Vec<_>>(),
        [1, 0, 0, 0]
    );
}

#[test]
fn load_settings_keep_the_whole_run_and_name_the_segment() {
    let mut load = closed(10, None, "");
    assert_eq!(load.describe(), "10 users");
    assert!(!serde_json::to_string(&load).unwrap().contains("segment"));
    load.segment = "2/3".parse().unwrap();
    assert_eq!(load.describe(), "10 users, segment 2/3");
    let json = serde_json::to_value(&load).unwrap();
    assert_eq!(json["segment"], "2/3");
    assert_eq!(json["users"], 10);
    let back: LoadSettings = serde_json::from_value(json).unwrap();
    assert_eq!(back, load);
}
