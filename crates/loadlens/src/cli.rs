//! Command-line interface. Flag names follow Locust where they overlap (`-u`, `-r`, `-t`, `-H`,
//! `--headless`, `--csv`, `-T`, `-E`), quick mode follows hey/oha (`run URL`, `-c`, `-n`, `-z`,
//! `-q`, `-m`, `-d`, `-D`, `-a`, `--disable-keepalive`), and every flag has an environment twin
//! (`LOADLENS_USERS`, …). The integrations' flags come from their own folders in
//! `loadlens-sinks`, through the registry ([`command`]).
//!
//! `run ARG` reads ARG as a URL when it starts with `http://` or `https://` (any case), and as
//! a scenario file otherwise: a file cannot be named like that by accident, and a URL always
//! has its scheme (hey and oha refuse one without it too).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::demo_target::DemoTargetArgs;

/// Observable HTTP load testing.
#[derive(Parser, Debug)]
#[command(name = "loadlens", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario file, or load one URL in quick mode (`loadlens run https://…`).
    Run(Box<RunArgs>),
    /// Start the built-in demo target and run examples/storefront.yaml against it.
    Demo(DemoArgs),
    /// Serve the built-in demo API (storefront, orders, checkout, search).
    DemoTarget(DemoTargetArgs),
    /// Check a scenario file without running it.
    Validate(ValidateArgs),
    /// Write a commented starter scenario.
    Init(InitArgs),
    /// Convert a HAR recording, an OpenAPI 3 document or curl commands into a scenario that
    /// passes `validate`.
    Convert(crate::convert::ConvertArgs),
    /// Rebuild reports (HTML) from a saved JSON result.
    Report(crate::report_cmd::ReportArgs),
    /// Compare two JSON results per request name; fail on regression bounds (`--fail-if`).
    Compare(crate::compare::CompareArgs),
    /// Combine the JSON results of a run's segments (`run --segment I/N`) into one result and
    /// its reports, with exact percentiles.
    Merge(crate::merge_cmd::MergeArgs),
    /// Coordinate N workers (`run FILE --coordinator URL --workers N`): one start, merged live
    /// figures, global thresholds and abort, and the reports of the whole run.
    Coordinator(Box<crate::coordinator::CoordinatorArgs>),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(crate::manual::CompletionsArgs),
    /// Print the man page (roff), e.g. `loadlens man | man -l -`.
    Man(crate::manual::ManArgs),
}

/// `loadlens init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// File to write.
    #[arg(default_value = "scenario.yaml")]
    pub file: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `loadlens validate`.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Scenario file.
    pub scenario: PathBuf,
}

/// `loadlens run`.
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Scenario file (YAML), or the URL to load in quick mode: an argument starting with
    /// `http://` or `https://` is a URL, anything else a file.
    #[arg(
        env = "LOADLENS_SCENARIO",
        value_name = "SCENARIO | URL",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub scenario: Option<PathBuf>,

    /// Run only these named scenarios of the file's `scenarios:` (comma-separated or
    /// repeated), the first of them at once. With one, the load flags (-u, -r, -t, -i,
    /// --stages, --arrival-rate, …) apply to it as to a file without `scenarios:`.
    #[arg(
        long = "scenario",
        env = "LOADLENS_SCENARIO_NAME",
        value_delimiter = ',',
        value_name = "NAME",
        conflicts_with = "url"
    )]
    pub scenario_names: Vec<String>,

    /// Peak number of concurrent users.
    #[arg(short = 'u', long, env = "LOADLENS_USERS")]
    pub users: Option<u64>,
    /// Run only segment I of N of the load (`2/3`: the second of three), one per machine:
    /// users, ramps, arrivals, iterations and unique data rows are dealt out exactly, so N
    /// segments together run the load of one run; combine their `--json` results with
    /// `loadlens merge`.
    #[arg(
        long,
        env = "LOADLENS_SEGMENT",
        value_name = "I/N",
        conflicts_with = "workers"
    )]
    pub segment: Option<loadlens_core::load::Segment>,
    /// This run is one of N workers: it runs segment `--worker-index`+1 of N (the index
    /// defaults to `JOB_COMPLETION_INDEX`, as set in a Kubernetes Indexed Job).
    #[arg(long, env = "LOADLENS_WORKERS", value_name = "N")]
    pub workers: Option<u64>,
    /// With --workers: this worker's index, from 0 (default: `JOB_COMPLETION_INDEX`).
    #[arg(long, env = "LOADLENS_WORKER_INDEX", value_name = "INDEX")]
    pub worker_index: Option<u64>,
    /// With --workers: join the coordinator at URL (`loadlens coordinator`, e.g.
    /// `http://loadlens-coordinator:7700`): start with the other workers, stream the results to
    /// it, stop when it says so. Token: `LOADLENS_COORDINATOR_TOKEN`.
    #[arg(
        long,
        env = "LOADLENS_COORDINATOR",
        value_name = "URL",
        requires = "workers"
    )]
    pub coordinator: Option<String>,
    /// Users started per second (default: all at once).
    #[arg(short = 'r', long, env = "LOADLENS_SPAWN_RATE")]
    pub spawn_rate: Option<f64>,
    /// Stop after this long, e.g. `30s`, `5m`, `1h30m`. With several named scenarios: the
    /// whole run ends then, whatever their own run times.
    #[arg(short = 't', long, env = "LOADLENS_RUN_TIME", value_parser = duration)]
    pub run_time: Option<std::time::Duration>,
    /// Stop after this many task iterations in total.
    #[arg(short = 'i', long, env = "LOADLENS_ITERATIONS")]
    pub iterations: Option<u64>,
    /// How long in-flight requests may take to finish after the stop (default 10s).
    #[arg(long, env = "LOADLENS_STOP_TIMEOUT", value_parser = duration)]
    pub stop_timeout: Option<std::time::Duration>,
    /// Scenario mode: the base URL (overrides `host:`). Quick mode: a header `Name: value`
    /// (repeatable), like hey and oha.
    #[arg(
        short = 'H',
        long = "host",
        env = "LOADLENS_HOST",
        value_name = "HOST | HEADER"
    )]
    pub host: Vec<String>,
    /// With --web: start the run at once instead of waiting for a start from the page, and
    /// exit at its end (as Locust's --headless).
    #[arg(long, env = "LOADLENS_HEADLESS")]
    pub headless: bool,
    /// The live web dashboard.
    #[command(flatten)]
    pub web: crate::web::WebArgs,

    /// Write Locust-compatible CSV files PREFIX_stats.csv (open model: uncorrected columns
    /// appended), PREFIX_stats_history.csv, PREFIX_failures.csv, PREFIX_exceptions.csv, and
    /// PREFIX_thresholds.csv.
    #[arg(long, env = "LOADLENS_CSV", value_name = "PREFIX")]
    pub csv: Option<PathBuf>,
    /// Write the JSON result (schemas/result.schema.json).
    #[arg(long, env = "LOADLENS_JSON", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the self-contained HTML report (opens from disk, no network).
    #[arg(long, env = "LOADLENS_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write one JUnit test case per threshold.
    #[arg(long, env = "LOADLENS_JUNIT", value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary (also appended to `$GITHUB_STEP_SUMMARY` when that is set).
    #[arg(long, env = "LOADLENS_SUMMARY_MD", value_name = "FILE")]
    pub summary_md: Option<PathBuf>,

    /// Ramp stages `DURATION:TARGET,…`, e.g. `30s:100,5m:100,30s:0`: targets are users, or
    /// arrivals per second with --arrival-rate.
    #[arg(long, env = "LOADLENS_STAGES", value_name = "STAGES")]
    pub stages: Option<String>,
    /// Open model: iterations started per second (`200`, `200/s`, `1200/m`), whatever the
    /// response times; with --stages, the rate to start from.
    #[arg(long, env = "LOADLENS_ARRIVAL_RATE", value_name = "RATE")]
    pub arrival_rate: Option<String>,
    /// Open model: VUs started before the first arrival (default: rate / 10, at least 1).
    #[arg(long, env = "LOADLENS_PRE_ALLOCATED_VUS", value_name = "N")]
    pub pre_allocated_vus: Option<u64>,
    /// Open model: most VUs; an arrival finding none free is a dropped iteration
    /// (default: 10 × pre-allocated).
    #[arg(long, env = "LOADLENS_MAX_VUS", value_name = "N")]
    pub max_vus: Option<u64>,
    /// Pass/fail rule, repeatable: `p95 < 300ms`, `error_rate < 1%`, `rps > 500`,
    /// `p99{name:GET /x} < 1s`, `p95{tag:checkout} < 300ms`, `dropped_iterations == 0`,
    /// `generator_healthy`; add `, abort` or `, abort after 30s` to stop a lost run early.
    /// Exit code 1 when one fails.
    #[arg(
        long = "threshold",
        env = "LOADLENS_THRESHOLDS",
        value_delimiter = ';',
        value_name = "RULE"
    )]
    pub thresholds: Vec<String>,
    /// Print and record the guard actions and planned flips (`on_fail: disable_gate …`,
    /// `actions:`, a monitor's `disable_gate=`), and do none of them.
    #[arg(long, env = "LOADLENS_DRY_RUN_ACTIONS")]
    pub dry_run_actions: bool,

    /// Run id sent with every request and written in every output (generated when absent).
    #[arg(long, env = "TEST_RUN_ID")]
    pub run_id: Option<String>,
    /// Tag for every output, `key=value` (repeatable).
    #[arg(
        long = "tag",
        env = "LOADLENS_TAGS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub tags: Vec<String>,
    /// Header that carries the run id; `none` turns it off.
    #[arg(long, env = "LOADLENS_RUN_ID_HEADER", value_name = "NAME")]
    pub run_id_header: Option<String>,
    /// Run only the tasks with one of these task tags (comma-separated or repeated), as
    /// Locust's `-T`. Not to be confused with `--tag KEY=VALUE`, which labels the run.
    #[arg(
        short = 'T',
        long = "task-tags",
        env = "LOADLENS_TASK_TAGS",
        value_delimiter = ',',
        value_name = "TAG"
    )]
    pub task_tags: Vec<String>,
    /// The former spelling of `-T/--task-tags` (Locust's `--tags`): still accepted, with a
    /// warning, because it differed from `--tag` (a run tag) by one letter.
    #[arg(long = "tags", hide = true, value_delimiter = ',', value_name = "TAG")]
    pub task_tags_deprecated: Vec<String>,
    /// Skip the tasks with one of these task tags, as Locust's `-E`.
    #[arg(
        short = 'E',
        long = "exclude-task-tags",
        alias = "exclude-tags",
        env = "LOADLENS_EXCLUDE_TAGS",
        value_delimiter = ',',
        value_name = "TAG"
    )]
    pub exclude_tags: Vec<String>,
    /// Extra header for every request, `Name: value` (repeatable). Without it,
    /// `LOADLENS_HEADERS` gives them, one per line. A value with a control character (a newline
    /// would start a second header) is refused.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Skip TLS certificate verification.
    #[arg(short = 'k', long, env = "LOADLENS_INSECURE")]
    pub insecure: bool,
    /// Speak HTTP/2 only (h2c by prior knowledge on http://).
    #[arg(long, env = "LOADLENS_HTTP2", conflicts_with = "http1")]
    pub http2: bool,
    /// Speak HTTP/1.1 only.
    #[arg(long, env = "LOADLENS_HTTP1")]
    pub http1: bool,
    /// Share HTTP/2 connections between the users, with at most N requests in flight on each
    /// (fewer if the server's SETTINGS_MAX_CONCURRENT_STREAMS says so), as h2load's `-m` and
    /// oha's `-p`: `-c 500 --http2-streams 10` uses 50 connections. Implies --http2. Default:
    /// each user its own connection, like a browser.
    #[arg(
        long,
        env = "LOADLENS_HTTP2_STREAMS",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        conflicts_with_all = ["http1", "disable_keepalive"]
    )]
    pub http2_streams: Option<u32>,
    /// Request timeout (default 30s).
    #[arg(long, env = "LOADLENS_TIMEOUT", value_parser = duration)]
    pub timeout: Option<std::time::Duration>,
    /// Connect timeout, DNS + TCP + TLS (default 10s).
    #[arg(long, env = "LOADLENS_CONNECT_TIMEOUT", value_parser = duration)]
    pub connect_timeout: Option<std::time::Duration>,
    /// Redirects to follow (default 10; 0 disables).
    #[arg(long, env = "LOADLENS_MAX_REDIRECTS")]
    pub max_redirects: Option<usize>,
    /// Most bytes of a response body kept for checks and captures, e.g. `4MiB` (the default),
    /// `512KiB`, or bytes; a larger body fails the request (`body_too_large`).
    #[arg(long, env = "LOADLENS_MAX_BODY_SIZE", value_parser = loadlens_core::client::parse_size)]
    pub max_body_size: Option<u64>,
    /// Seconds between progress lines when stdout is not a terminal.
    #[arg(long, env = "LOADLENS_PROGRESS_INTERVAL", default_value = "5s", value_parser = duration)]
    pub progress_interval: std::time::Duration,
    /// On a terminal, show one progress line instead of the full-screen view.
    #[arg(long, env = "LOADLENS_NO_TUI")]
    pub no_tui: bool,

    /// Open a new connection for every request (and send `Connection: close` on HTTP/1.1),
    /// as hey's and oha's `--disable-keepalive`: measures the connection set-up each time.
    #[arg(long, env = "LOADLENS_DISABLE_KEEPALIVE")]
    pub disable_keepalive: bool,

    /// Quick mode: the URL to load (the same as `loadlens run URL`).
    #[arg(long, env = "LOADLENS_URL")]
    pub url: Option<String>,
    /// Quick mode: concurrent connections (users); with -q, the most requests in flight.
    #[arg(short = 'c', long, env = "LOADLENS_CONNECTIONS")]
    pub connections: Option<u64>,
    /// Quick mode: total requests (default 200 when neither -n nor -z is given).
    #[arg(
        short = 'n',
        long,
        env = "LOADLENS_REQUESTS",
        conflicts_with = "duration"
    )]
    pub requests: Option<u64>,
    /// Quick mode: how long, e.g. `10s`.
    #[arg(short = 'z', long, env = "LOADLENS_DURATION", value_parser = duration)]
    pub duration: Option<std::time::Duration>,
    /// Quick mode: requests per second for the whole run, as oha's `-q` (hey's `-q` is per
    /// worker: hey `-c 10 -q 5` is loadlens `-c 10 -q 50`). Fixed arrivals (open model,
    /// latency from the intended start); with -c, at most that many requests in flight, and
    /// an arrival finding all busy is a dropped iteration.
    #[arg(
        short = 'q',
        long = "rate",
        env = "LOADLENS_RATE",
        value_name = "RATE",
        conflicts_with = "arrival_rate"
    )]
    pub rate: Option<String>,
    /// Quick mode: HTTP method (default GET).
    #[arg(short = 'm', long, env = "LOADLENS_METHOD")]
    pub method: Option<String>,
    /// Quick mode: request body.
    #[arg(short = 'd', long, env = "LOADLENS_BODY")]
    pub body: Option<String>,
    /// Quick mode: request body from a file.
    #[arg(
        short = 'D',
        long,
        env = "LOADLENS_BODY_FILE",
        value_name = "FILE",
        conflicts_with = "body"
    )]
    pub body_file: Option<PathBuf>,
    /// Quick mode: basic authentication, `USER:PASSWORD` (sent as `Authorization: Basic …`,
    /// never shown in reports).
    #[arg(
        short = 'a',
        long,
        env = "LOADLENS_BASIC_AUTH",
        value_name = "USER:PASSWORD"
    )]
    pub basic_auth: Option<String>,

    /// The integrations' flags (OTLP, Datadog, …) as parsed: see [`command`].
    #[arg(skip)]
    pub integrations: clap::ArgMatches,
}

impl RunArgs {
    /// `run URL`: move a positional argument that is a URL into `url` (quick mode).
    pub fn take_url(&mut self) {
        if let Some(p) = &self.scenario {
            let text = p.to_string_lossy();
            if is_url(&text) {
                self.url = Some(text.into_owned());
                self.scenario = None;
            }
        }
    }
}

/// Whether `run ARG` means a URL: it starts with `http://` or `https://`, in any case.
pub fn is_url(arg: &str) -> bool {
    let lower = arg.get(..8).unwrap_or(arg).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `loadlens demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How long to run (default 20s).
    #[arg(short = 't', long, env = "LOADLENS_RUN_TIME", value_parser = duration, default_value = "20s")]
    pub run_time: std::time::Duration,
    /// Users (default: the scenario's).
    #[arg(short = 'u', long, env = "LOADLENS_USERS")]
    pub users: Option<u64>,
    /// Directory for the reports.
    #[arg(long, env = "LOADLENS_DEMO_OUT", default_value = "loadlens-demo")]
    pub out: PathBuf,
    /// Seconds between progress lines when stdout is not a terminal.
    #[arg(long, env = "LOADLENS_PROGRESS_INTERVAL", default_value = "5s", value_parser = duration)]
    pub progress_interval: std::time::Duration,
    /// On a terminal, show one progress line instead of the full-screen view.
    #[arg(long, env = "LOADLENS_NO_TUI")]
    pub no_tui: bool,
    /// Make one of the demo target's simulated operations slow (`cache`, `db` or `pricing`), so
    /// that the report's breakdown blames it.
    #[arg(long, env = "LOADLENS_DEMO_SLOW", value_parser = slow_operation)]
    pub slow: Option<crate::demo_target::Operation>,
    /// The live web dashboard (the demo starts at once and exits at its end).
    #[command(flatten)]
    pub web: crate::web::WebArgs,
    /// The integrations' flags, as in `run`: see [`command`].
    #[arg(skip)]
    pub integrations: clap::ArgMatches,
}

/// The command line: the derived commands, with every integration's flags (from
/// [`loadlens_sinks::registry`]) added to `run` and `demo` alike.
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    // Under a heading of their own, in registry order (each integration's derive numbered its
    // flags from 0, which would interleave them with the command's own).
    let args: Vec<clap::Arg> = loadlens_sinks::integration::args(&loadlens_sinks::registry())
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.help_heading("Integrations").display_order(i))
        .collect();
    Cli::command()
        .mut_subcommand("run", |c| c.args(args.clone()))
        .mut_subcommand("coordinator", |c| c.args(args.clone()))
        .mut_subcommand("demo", |c| c.args(args))
}

/// Parse the command line (exits with clap's message on an error), keeping the matches of
/// `run` or `demo` for the integrations.
pub fn parse() -> Cli {
    use clap::FromArgMatches as _;
    let matches = command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match (&mut cli.command, matches.subcommand()) {
        (Command::Run(a), Some((_, m))) => {
            a.integrations = m.clone();
            a.take_url();
        }
        (Command::Demo(a), Some((_, m))) => a.integrations = m.clone(),
        (Command::Coordinator(a), Some((_, m))) => {
            a.run.integrations = m.clone();
            a.run.take_url();
        }
        _ => {}
    }
    cli
}

fn slow_operation(s: &str) -> Result<crate::demo_target::Operation, String> {
    use crate::demo_target::Operation;
    Operation::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        format!("unknown operation; known operations: {}", known.join(", "))
    })
}

pub(crate) fn duration(
    s: &str,
) -> Result<std::time::Duration, loadlens_core::duration::DurationError> {
    loadlens_core::duration::parse_duration(s)
}
