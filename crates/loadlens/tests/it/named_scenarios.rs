//! Named `scenarios:` and the CLI's load flags: `-t` caps a run of several scenarios, the other
//! load flags are a usage error there, and `--scenario NAME` runs one alone with the flags
//! applied to it.

use crate::schema::assert_valid;
use crate::support::*;

const FILE: &str = r#"
user_types:
  - name: browser
    tasks: [{ request: { path: /api/products, name: browse } }]
  - name: searcher
    tasks: [{ request: { path: /api/v1/search?q=shoe, name: search } }]
scenarios:
  browse:
    user_types: [browser]
    load: { arrival_rate: 40/s, run_time: 20s, max_vus: 10, stop_timeout: 7s }
  search:
    user_types: [searcher]
    start_time: 5s
    load: { users: 2, run_time: 20s }
thresholds:
  - "requests{scenario:browse} > 0"
  - "requests{scenario:search} >= 0"
"#;

fn setup(tag: &str) -> (DemoTarget, TempDir, String) {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new(tag);
    let file = dir.path("s.yaml");
    std::fs::write(&file, FILE).unwrap();
    (target, dir, file.display().to_string())
}

fn read_json(dir: &TempDir) -> serde_json::Value {
    let j = serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    assert_valid(&j);
    j
}

fn served(target: &DemoTarget, route: &str) -> u64 {
    target.stats()["routes"][route].as_u64().unwrap_or(0)
}

#[test]
fn run_time_caps_a_run_of_several_named_scenarios() {
    let (target, dir, file) = setup("cap");
    let started = std::time::Instant::now();
    let out = run(&[
        "run",
        &file,
        "-H",
        &target.url,
        "-t",
        "1500ms",
        "--stop-timeout",
        "3s",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 0);
    let took = started.elapsed().as_secs_f64();
    assert!(took < 4.0, "the 20 s scenarios stopped at -t: {took}");
    assert!(
        stdout(&out).contains("scenarios browse, search for 1s 500ms"),
        "{}",
        stdout(&out)
    );
    let j = read_json(&dir);
    assert_eq!(j["run"]["stop_reason"], "run time elapsed");
    let sc = j["scenarios"].as_array().unwrap();
    let browse = sc[0]["aggregate"]["request_count"].as_u64().unwrap();
    // 40/s until the cap at 1.5 s: 60 arrivals, or 59 when warming up its VUs took the lane
    // more than 25 ms of the 1.5 s. Every one intended before the cap is issued, however late
    // the pacer ran on a loaded machine.
    let arrivals = &sc[0]["arrivals"];
    let intended = arrivals["intended"].as_u64().unwrap();
    assert!((59..=60).contains(&intended), "{arrivals}");
    let started = arrivals["started"].as_u64().unwrap();
    assert_eq!(
        started + arrivals["dropped_iterations"].as_u64().unwrap(),
        intended,
        "{arrivals}"
    );
    assert_eq!(browse, started, "{arrivals}");
    // `search` starts at 5 s, after the cap: it never ran.
    assert_eq!(sc[1]["aggregate"]["request_count"], 0);
    assert_eq!(served(&target, "GET /api/v1/search"), 0);
    // --stop-timeout overrides every scenario's own.
    assert_eq!(sc[0]["load"]["stop_timeout"], 3.0);
    assert_eq!(sc[1]["load"]["stop_timeout"], 3.0);
}

#[test]
fn load_flags_with_several_named_scenarios_are_usage_errors() {
    let dir = TempDir::new("flags");
    let file = dir.path("s.yaml");
    std::fs::write(&file, FILE).unwrap();
    let f = file.to_str().unwrap();
    for (args, flag) in [
        (vec!["-u", "5"], "-u/--users"),
        (vec!["-r", "2"], "-r/--spawn-rate"),
        (vec!["-i", "10"], "-i/--iterations"),
        (vec!["--stages", "1s:5"], "--stages"),
        (vec!["--arrival-rate", "5"], "--arrival-rate"),
        (vec!["--pre-allocated-vus", "2"], "--pre-allocated-vus"),
        (vec!["--max-vus", "2"], "--max-vus"),
        (vec!["--scenario", "browse,search", "-u", "5"], "-u/--users"),
    ] {
        let mut a = vec!["run", f, "-H", "http://127.0.0.1:9", "-t", "1s"];
        a.extend(args.iter());
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "error: {flag} cannot apply to the named scenarios of {f} (browse, search)"
            )) && err.contains("`--scenario NAME`"),
            "{args:?}: {err}"
        );
    }
    for (args, needle) in [
        (
            vec!["--scenario", "nope"],
            "has no scenario `nope` (scenarios: browse, search)",
        ),
        (
            vec!["--url", "http://127.0.0.1:9/", "--scenario", "x"],
            "cannot be used with",
        ),
    ] {
        let mut a = vec!["run"];
        if args[0] != "--url" {
            a.push(f);
        }
        a.extend(args.iter());
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    let plain = dir.path("plain.yaml");
    std::fs::write(
        &plain,
        "user_types: [{ name: u, tasks: [{ request: { path: 'http://127.0.0.1:9/' } }] }]\n",
    )
    .unwrap();
    let out = run(&["run", plain.to_str().unwrap(), "--scenario", "browse"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no `scenarios:` to pick from"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn one_picked_scenario_runs_alone_at_once_with_the_load_flags() {
    let (target, dir, file) = setup("pick");
    let out = run(&[
        "run",
        &file,
        "-H",
        &target.url,
        "--scenario",
        "search",
        "-u",
        "3",
        "-i",
        "30",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 0);
    // The threshold on the scenario left out is skipped, with a word why.
    assert!(
        stderr(&out).contains("warning: threshold `requests{scenario:browse} > 0` is skipped: --scenario did not pick scenario `browse`"),
        "{}",
        stderr(&out)
    );
    let j = read_json(&dir);
    assert_eq!(j["run"]["stop_reason"], "all iterations done");
    let sc = j["scenarios"].as_array().unwrap();
    assert_eq!(sc.len(), 1);
    assert_eq!(sc[0]["name"], "search");
    assert_eq!(sc[0]["start_time_s"], 0.0, "picked: starts at once");
    assert_eq!(sc[0]["load"]["users"], 3);
    assert_eq!(sc[0]["aggregate"]["request_count"], 30);
    assert!(
        j["run"]["duration_s"].as_f64().unwrap() < 4.0,
        "no 5 s wait"
    );
    assert_eq!(served(&target, "GET /api/v1/search"), 30);
    assert_eq!(served(&target, "GET /api/products"), 0);
    let t = j["thresholds"].as_array().unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["expression"], "requests{scenario:search} >= 0");
    assert_eq!(t[0]["observed"], 30.0);
}

#[test]
fn picked_scenarios_keep_their_offsets_from_the_first() {
    let (target, dir, file) = setup("pick2");
    let text = FILE
        .replace("    start_time: 5s\n", "    start_time: 6s\n")
        .replace(
            "    user_types: [browser]\n",
            "    user_types: [browser]\n    start_time: 5s\n",
        );
    std::fs::write(&file, text).unwrap();
    let out = run(&[
        "run",
        &file,
        "-H",
        &target.url,
        "--scenario",
        "search,browse",
        "-t",
        "1500ms",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = read_json(&dir);
    let starts: Vec<f64> = j["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start_time_s"].as_f64().unwrap())
        .collect();
    assert_eq!(
        starts,
        [0.0, 1.0],
        "browse first (at 5 s in the file), search 1 s later"
    );
    assert!(served(&target, "GET /api/products") > 0);
    assert!(served(&target, "GET /api/v1/search") > 0);
}

#[test]
fn a_top_level_load_beside_scenarios_is_an_error_except_its_stop_timeout() {
    let dir = TempDir::new("top-load");
    let file = dir.path("s.yaml");
    let f = file.to_str().unwrap();
    // Line 7 of the file, where `scenarios:` was.
    let with_load =
        |load: &str| FILE.replace("scenarios:\n", &format!("load: {load}\nscenarios:\n"));
    std::fs::write(&file, with_load("{ users: 50 }")).unwrap();
    let validate = vec!["validate", f];
    let start = vec!["run", f, "-H", "http://127.0.0.1:9", "-t", "1s"];
    for args in [validate, start] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "{f}:7:1: a top-level `load:` does not apply beside `scenarios:`"
            )),
            "{args:?}: {err}"
        );
    }
    std::fs::write(&file, with_load("{ stop_timeout: 3s }")).unwrap();
    let out = run(&["validate", f]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
