//! The generic precedence (flag > environment > file) and sections, with a stand-in
//! integration's flag.

use std::sync::Arc;

use clap::{Arg, ArgAction, Command};
use loadlens_core::plan::{Plan, PlanOptions};
use loadlens_core::run::RunInfo;
use loadlens_core::scenario::Scenario;

use super::*;

const TEXT: &str = "\
host: http://127.0.0.1:1
user_types:
  - name: u
    tasks: [{ request: { path: / } }]
probe:
  site: from-file
  ports: [1, 2]
";

/// A flag with the environment twin `twin`, a list and a flag with a default.
fn command_with(twin: &'static str) -> Command {
    Command::new("run")
        .arg(Arg::new("probe-site").long("probe-site").env(twin))
        .arg(
            Arg::new("probe-port")
                .long("probe-port")
                .value_parser(clap::value_parser!(u16))
                .action(ArgAction::Append)
                .value_delimiter(','),
        )
        .arg(
            Arg::new("probe-default")
                .long("probe-default")
                .default_value("from-default"),
        )
}

/// Its twin is never set: only the environment test sets a twin, of its own name, so tests
/// running in parallel do not see it.
fn command() -> Command {
    command_with("LOADLENS_TEST_PROBE_SITE_NEVER_SET")
}

fn facts(s: &Scenario) -> RunFacts {
    let plan = Plan::compile(s, &PlanOptions::default()).unwrap();
    RunFacts {
        run: RunInfo {
            id: "r".into(),
            scenario: "s".into(),
            tags: Default::default(),
        },
        host: None,
        load: String::new(),
        plan: Arc::new(plan),
        scenarios: Vec::new(),
        role: Default::default(),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    site: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
}

/// Picks `probe-site` the way an integration would, from `args` and the file.
fn site(cmd: Command, args: &[&str]) -> Option<String> {
    let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
    let matches = cmd.try_get_matches_from(args).unwrap();
    let run = facts(&s);
    let input = Input {
        matches: &matches,
        section: Section::of(&s, "probe"),
        env: &|_| None,
        run: &run,
    };
    let file: Probe = input.section.unwrap().parse().unwrap();
    input.pick("probe-site", file.site)
}

#[test]
fn the_file_value_is_used_when_no_flag_is_given() {
    assert_eq!(site(command(), &["run"]).as_deref(), Some("from-file"));
}

// clap reads the twin from the process environment; this test's twin is a variable no other
// test's command declares.
#[test]
fn the_environment_twin_wins_over_the_file_and_the_flag_over_both() {
    const TWIN: &str = "LOADLENS_TEST_PROBE_SITE_ENV_LAYER";
    std::env::set_var(TWIN, "from-env");
    let from_env = site(command_with(TWIN), &["run"]);
    let from_flag = site(command_with(TWIN), &["run", "--probe-site", "from-flag"]);
    std::env::remove_var(TWIN);
    assert_eq!(from_env.as_deref(), Some("from-env"));
    assert_eq!(from_flag.as_deref(), Some("from-flag"));
}

#[test]
fn the_flag_wins_over_the_file() {
    assert_eq!(
        site(command(), &["run", "--probe-site", "from-flag"]).as_deref(),
        Some("from-flag")
    );
}

#[test]
fn lists_and_defaults_follow_the_same_order() {
    let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
    let run = facts(&s);
    let pick = |args: &[&str]| {
        let matches = command().try_get_matches_from(args).unwrap();
        let input = Input {
            matches: &matches,
            section: Section::of(&s, "probe"),
            env: &|_| None,
            run: &run,
        };
        let file: Probe = input.section.unwrap().parse().unwrap();
        (
            input.pick_list("probe-port", file.ports),
            input.pick("probe-default", Some("from-file".to_owned())),
            input.pick::<String>("probe-default", None),
            input.given("probe-default"),
        )
    };
    let (ports, with_file, without, given) = pick(&["run"]);
    assert_eq!(ports, [1, 2]);
    // A default is what is left when the file says nothing either.
    assert_eq!(with_file.as_deref(), Some("from-file"));
    assert_eq!(without.as_deref(), Some("from-default"));
    assert!(!given);
    let (ports, ..) = pick(&["run", "--probe-port", "7,8"]);
    assert_eq!(ports, [7, 8]);
}

#[test]
fn an_unknown_flag_id_reads_as_absent() {
    let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
    let run = facts(&s);
    let matches = command().try_get_matches_from(["run"]).unwrap();
    let input = Input {
        matches: &matches,
        section: None,
        env: &|_| None,
        run: &run,
    };
    assert_eq!(input.pick("no-such-flag", Some(3u8)), Some(3));
    assert!(!input.given("no-such-flag"));
}

#[test]
fn section_errors_are_located_inside_the_section() {
    let s = Scenario::from_str_named(&TEXT.replace("site:", "sight:"), "s.yaml").unwrap();
    let e = Section::of(&s, "probe")
        .unwrap()
        .parse::<Probe>()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("s.yaml:6:3: probe: unknown field `sight`"),
        "{e}"
    );
    let at = Section::of(&s, "probe")
        .unwrap()
        .error_at(&["ports"], "no")
        .to_string();
    assert_eq!(at, "s.yaml:7:3: no");
}

#[test]
fn a_key_no_integration_owns_is_refused() {
    let s = Scenario::from_str_named(TEXT, "s.yaml").unwrap();
    let e = check_sections(&s, &[]).unwrap_err().to_string();
    assert!(e.starts_with("s.yaml:5:1: unknown field `probe`"), "{e}");
    assert!(Section::of(&s, "nothing").is_none());
}
