//! Wiring of a run: merge the scenario with flags into a plan and settings, run the executor
//! with Ctrl-C handling and the live view, then write every report — also when interrupted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use loadlens_core::client::{parse_header, ClientConfig, ClientShared, HttpVersion};
use loadlens_core::encoding::redact_url;
use loadlens_core::executor::{Controls, Executor, LoadSettings, ScenarioRun};
use loadlens_core::limits;
use loadlens_core::loadspec;
use loadlens_core::plan::{Plan, PlanOptions};
use loadlens_core::report::{Summary, Verdict};
use loadlens_core::run::{generate_run_id, RunInfo};
use loadlens_core::scenario::Scenario;
use loadlens_core::thresholds::{unknown_tag, NameTags, Scope, Threshold};
use loadlens_sinks::integration::{self, Configured, Input, Role, RunFacts, Section};
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::exit::{Exit, Failure};
use crate::identity;
use crate::loadflags::{checked, flagged_load, load_flags, pick_scenarios};
use crate::signals::{Stop, StopSignals};

/// Header that carries the run id unless configured otherwise.
pub const DEFAULT_RUN_ID_HEADER: &str = "X-Test-Run-Id";

/// Everything needed to start a run.
pub struct Prepared {
    /// Compiled scenario.
    pub plan: Plan,
    /// Load settings after flags.
    pub load: LoadSettings,
    /// HTTP client settings.
    pub client: ClientConfig,
    /// Identity.
    pub run: RunInfo,
    /// Target host for reports.
    pub host: Option<String>,
    /// Thresholds: the file's, then `--threshold`.
    pub thresholds: Vec<Threshold>,
    /// Named scenarios of the file (empty: one scenario with `load`).
    pub scenarios: Vec<ScenarioRun>,
    /// The integrations that are on for this run (OTLP, Datadog, …), resolved from their
    /// flags, environment and sections; each is started (and checked) in [`execute`].
    pub integrations: Vec<Box<dyn Configured>>,
    /// `-t` over several named scenarios: the whole run ends then.
    pub run_time_cap: Option<Duration>,
    /// Said on stderr before the run (skipped thresholds, tag scopes counting untagged requests).
    pub warnings: Vec<String>,
    /// Planned flips and actions at the end of a failed run (`actions:`), `--dry-run-actions`.
    pub actions: crate::guard_actions::Plan,
    /// What the segments of one distributed run must share (file, requests, whole load,
    /// thresholds), hashed: `loadlens merge` refuses results whose hashes differ.
    pub scenario_hash: String,
    /// The same hash without the `--threshold` flags: what a worker and its coordinator must
    /// share (the coordinator owns the thresholds; only the file's are in both).
    pub join_hash: String,
    /// `--coordinator URL`: this run is a worker of a coordinated run.
    pub coordinator: Option<String>,
}

/// Where reports go.
#[derive(Debug, Default, Clone)]
pub struct Outputs {
    /// `--json`.
    pub json: Option<PathBuf>,
    /// `--csv`.
    pub csv: Option<PathBuf>,
    /// `--html`.
    pub html: Option<PathBuf>,
    /// `--junit`.
    pub junit: Option<PathBuf>,
    /// `--summary-md`.
    pub summary_md: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`: the Markdown summary is appended there.
    pub step_summary: Option<PathBuf>,
    /// Seconds between plain progress lines.
    pub progress_every: Duration,
    /// `--web` and its options: the live web dashboard.
    pub web: Option<crate::web::WebArgs>,
    /// `--headless`: with `--web`, start at once instead of waiting for the page.
    pub headless: bool,
    /// `--no-tui`: one progress line on a terminal instead of the full-screen view.
    pub no_tui: bool,
    /// Where messages during the run go (stderr, or the full-screen view while it is up).
    pub console: crate::live::Console,
}

fn invalid(msg: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::InvalidInput, msg.to_string())
}

/// `--header` values, or else `LOADLENS_HEADERS` with one header per line. Only the variable is
/// split at line ends: in a flag's value a newline is a control character, and refused, not a
/// second header.
fn header_flags(args: &RunArgs) -> Vec<String> {
    if !args.headers.is_empty() {
        return args.headers.clone();
    }
    let env = std::env::var("LOADLENS_HEADERS").unwrap_or_default();
    env.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The quick-mode flags given with a scenario file: refused, naming the file's equivalent
/// (clap cannot tell, since `run ARG` is a file or a URL by its text).
fn quick_only(args: &RunArgs) -> Result<(), Failure> {
    let given = [
        (args.connections.is_some(), "-c/--connections", "-u/--users"),
        (args.requests.is_some(), "-n/--requests", "-i/--iterations"),
        (args.duration.is_some(), "-z/--duration", "-t/--run-time"),
        (args.rate.is_some(), "-q/--rate", "--arrival-rate"),
        (args.method.is_some(), "-m/--method", "the task's request"),
        (args.body.is_some(), "-d/--body", "the task's `body:`"),
        (
            args.body_file.is_some(),
            "-D/--body-file",
            "the task's `body:`",
        ),
        (
            args.basic_auth.is_some(),
            "-a/--basic-auth",
            "credentials in `host:` (https://user:pass@…) or --header",
        ),
    ];
    match given.iter().find(|(on, _, _)| *on) {
        Some((_, flag, instead)) => Err(invalid(format!(
            "{flag} belongs to quick mode (`loadlens run URL`); with a scenario file, use {instead}"
        ))),
        None => Ok(()),
    }
}

/// `-a USER:PASSWORD` as an `Authorization: Basic …` header (the value is marked sensitive).
fn basic_auth(pair: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    if !pair.contains(':') {
        return Err(invalid(
            "-a/--basic-auth must look like USER:PASSWORD (the value is not shown)",
        ));
    }
    let text = format!("Basic {}", loadlens_core::encoding::base64(pair.as_bytes()));
    let mut value = HeaderValue::from_str(&text)
        .map_err(|_| invalid("-a/--basic-auth cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok((http::header::AUTHORIZATION, value))
}

/// `-q RATE` in quick mode: a fixed arrival rate for the whole run (oha's `-q`; open model).
/// With `-c N`, N VUs are started before the first arrival and no more are added, so at most
/// N requests are in flight; without it, the open model's defaults size the VUs.
fn quick_rate(args: &RunArgs, q: &str, mut load: LoadSettings) -> Result<LoadSettings, Failure> {
    if args.stages.is_some() {
        return Err(invalid(
            "-q/--rate is a fixed rate: for a rate that changes, give --arrival-rate with --stages",
        ));
    }
    let rate = loadlens_core::executor::profile::parse_rate(q)
        .map_err(|e| invalid(format!("-q/--rate: {e}")))?;
    if rate <= 0.0 {
        return Err(invalid("-q/--rate must be above 0"));
    }
    let (pre, max) = match args.connections.or(args.users) {
        Some(c) => (Some(c), Some(c)),
        None => (args.pre_allocated_vus, args.max_vus),
    };
    load.arrival = Some(loadspec::arrival(rate, pre, max).map_err(invalid)?);
    Ok(load)
}

/// Build the run from a scenario file (`scenario`) or quick mode (`run URL`, `--url`): a run
/// of its own, or with `--coordinator` a worker's part of a coordinated run.
pub fn prepare(args: &RunArgs, scenario: Option<(&Scenario, &str)>) -> Result<Prepared, Failure> {
    let role = if args.coordinator.is_some() {
        Role::Requests
    } else {
        Role::Whole
    };
    prepare_as(args, scenario, role)
}

/// [`prepare`] for a process of `role` (the coordinator prepares the whole run as
/// [`Role::Run`]): the integrations keep to its part of the telemetry.
pub fn prepare_as(
    args: &RunArgs,
    scenario: Option<(&Scenario, &str)>,
    role: Role,
) -> Result<Prepared, Failure> {
    let registry = loadlens_sinks::registry();
    if let Some((s, _)) = scenario {
        integration::check_sections(s, &registry).map_err(|e| invalid(e.to_string()))?;
    }
    let run_id = args
        .run_id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(generate_run_id);
    let empty = Default::default();
    let file_tags = scenario.map_or(&empty, |(s, _)| &s.run.tags);
    let tags = identity::collect(file_tags, &args.tags).map_err(invalid)?;

    let header_name = match (
        &args.run_id_header,
        scenario.and_then(|(s, _)| s.run.run_id_header.as_ref()),
    ) {
        (Some(h), _) => Some(h.clone()),
        (None, Some(serde_json::Value::Bool(false))) => Some("none".into()),
        (None, Some(serde_json::Value::String(s))) => Some(s.clone()),
        (None, Some(other)) => {
            return Err(invalid(format!(
                "run.run_id_header must be a header name or false, got {other:?}"
            )))
        }
        (None, None) => None,
    }
    .unwrap_or_else(|| DEFAULT_RUN_ID_HEADER.into());
    let run_id_header = if matches!(
        header_name.to_ascii_lowercase().as_str(),
        "none" | "off" | "false" | ""
    ) {
        None
    } else {
        let name = HeaderName::from_bytes(header_name.as_bytes())
            .map_err(|_| invalid(format!("invalid run id header name `{header_name}`")))?;
        let value = HeaderValue::from_str(&run_id)
            .map_err(|_| invalid(format!("run id `{run_id}` cannot be sent in a header")))?;
        Some((name, value))
    };

    let mut warnings = Vec::new();
    if !args.task_tags_deprecated.is_empty() {
        if let Some(t) = args.task_tags_deprecated.iter().find(|t| t.contains('=')) {
            return Err(invalid(format!(
                "--tags `{t}`: --tags (now -T/--task-tags) picks tasks by tag; to label the run, use --tag {t}"
            )));
        }
        warnings.push(
            "--tags is now -T/--task-tags (it picks tasks by tag; --tag KEY=VALUE labels the run); the old spelling will go".to_owned(),
        );
    }
    let task_tags: Vec<String> = args
        .task_tags
        .iter()
        .chain(&args.task_tags_deprecated)
        .cloned()
        .collect();
    if scenario.is_some() {
        quick_only(args)?;
    }

    let mut extra_headers = Vec::new();
    for h in header_flags(args) {
        extra_headers.push(parse_header(&h).map_err(invalid)?);
    }

    let mut client = ClientConfig::default();
    if let Some((s, _)) = scenario {
        let c = &s.client;
        client.request_timeout = c.timeout.unwrap_or(client.request_timeout);
        client.connect_timeout = c.connect_timeout.unwrap_or(client.connect_timeout);
        client.max_redirects = c.max_redirects.unwrap_or(client.max_redirects);
        client.max_body_size = c.max_body_size.unwrap_or(client.max_body_size);
        client.insecure = c.insecure.unwrap_or(false);
        client.version = match c.http_version.as_deref() {
            Some("http1") => HttpVersion::Http1,
            Some("http2") => HttpVersion::Http2PriorKnowledge,
            _ if c.http2_streams.is_some() => HttpVersion::Http2PriorKnowledge,
            _ => HttpVersion::Auto,
        };
        client.http2_streams = c.http2_streams;
    }
    client.insecure |= args.insecure;
    client.keep_alive &= !args.disable_keepalive;
    if args.http2_streams.is_some() {
        client.http2_streams = args.http2_streams;
    }
    if args.http2 || args.http2_streams.is_some() {
        client.version = HttpVersion::Http2PriorKnowledge;
    } else if args.http1 {
        client.version = HttpVersion::Http1;
    }
    for (flag, t) in [
        ("--timeout", args.timeout),
        ("--connect-timeout", args.connect_timeout),
    ] {
        if t == Some(Duration::ZERO) {
            return Err(invalid(format!(
                "{flag} is 0: every request would time out at once; give a positive duration such as `30s`"
            )));
        }
    }
    client.request_timeout = args.timeout.unwrap_or(client.request_timeout);
    client.connect_timeout = args.connect_timeout.unwrap_or(client.connect_timeout);
    client.max_redirects = args.max_redirects.unwrap_or(client.max_redirects);
    client.max_body_size = args.max_body_size.unwrap_or(client.max_body_size);

    let picked = match scenario {
        Some((s, file)) => pick_scenarios(args, s, file)?,
        None => Vec::new(),
    };
    let (plan, load, host) = match (scenario, &args.url) {
        (Some((s, _)), _) => {
            if args.host.len() > 1 {
                return Err(invalid("-H/--host given more than once: a scenario has one host (use --header for headers)"));
            }
            let host = args.host.first().cloned().or_else(|| s.host.clone());
            if let Some(h) = &host {
                if !(h.starts_with("http://") || h.starts_with("https://")) {
                    return Err(invalid(format!(
                        "host `{}` must start with http:// or https://",
                        redact_url(h)
                    )));
                }
            }
            let opts = PlanOptions {
                host: host.clone(),
                run_id_header,
                headers: extra_headers,
                tags: task_tags.clone(),
                exclude_tags: args.exclude_tags.clone(),
            };
            let plan = Plan::compile(s, &opts).map_err(|e| invalid(e.to_string()))?;
            // One named scenario runs as a file without `scenarios:` would: the flags apply to
            // its `load:`. Several keep their own; only -t (a cap) and --stop-timeout apply.
            let load = match picked.as_slice() {
                [(name, spec)] => flagged_load(args, &spec.load, Some(&s.load))
                    .map_err(|f| invalid(format!("scenario `{name}`: {}", f.message)))?,
                _ => flagged_load(args, &s.load, None)?,
            };
            // Shown in reports and the dashboard: the password as `***` (the plan sends it as
            // basic auth).
            (plan, load, host.as_deref().map(redact_url))
        }
        (None, Some(url)) => {
            // Quick mode: -H values are headers, as in hey and oha.
            for h in &args.host {
                extra_headers.push(parse_header(h).map_err(|e| {
                    invalid(format!(
                        "{e} (in quick mode -H takes headers; the host is in --url)"
                    ))
                })?);
            }
            if let Some(auth) = &args.basic_auth {
                extra_headers.push(basic_auth(auth)?);
            }
            let method_text = args.method.as_deref().unwrap_or("GET");
            let method = http::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
                .map_err(|_| invalid(format!("invalid method `{method_text}`")))?;
            let opts = PlanOptions {
                host: None,
                run_id_header,
                headers: extra_headers,
                ..PlanOptions::default()
            };
            let users_flag = match (args.connections, args.users) {
                (Some(_), _) => Some("-c/--connections"),
                (None, Some(_)) => Some("-u/--users"),
                (None, None) => None,
            };
            if let Some(flag) = users_flag {
                if args.arrival_rate.is_some() && args.rate.is_none() {
                    return Err(invalid(format!(
                        "{flag} belongs to the closed model and does not apply with --arrival-rate: size the open model with --pre-allocated-vus/--max-vus"
                    )));
                }
                if args.stages.is_some() {
                    return Err(invalid(format!(
                        "{flag} does not apply with --stages: the stages' targets are the users"
                    )));
                }
            }
            let body: bytes::Bytes = match (&args.body, &args.body_file) {
                (Some(b), _) => b.clone().into(),
                (None, Some(f)) => std::fs::read(f)
                    .map_err(|e| invalid(format!("-D/--body-file {}: {e}", f.display())))?
                    .into(),
                (None, None) => bytes::Bytes::new(),
            };
            let plan =
                Plan::single(url, method, body, &opts).map_err(|e| invalid(e.to_string()))?;
            let load = LoadSettings {
                users: args.connections.or(args.users).unwrap_or(50),
                spawn_rate: args.spawn_rate,
                run_time: args.duration.or(args.run_time),
                iterations: args.requests.or(args.iterations),
                stop_timeout: args.stop_timeout,
                ..LoadSettings::default()
            };
            // -q without -n or -z sends 200 requests too, as hey does; --arrival-rate and
            // --stages need their end given.
            let staged = args.stages.is_some() || args.arrival_rate.is_some();
            let load = if load.run_time.is_none() && load.iterations.is_none() && !staged {
                LoadSettings {
                    iterations: Some(200),
                    ..load
                }
            } else {
                load
            };
            let load = match &args.rate {
                Some(q) => quick_rate(args, q, load)?,
                None => load_flags(args, load)?,
            };
            (plan, checked(load)?, Some(redact_url(url)))
        }
        (None, None) => return Err(invalid("give a scenario file or a URL")),
    };
    let name = scenario.map_or_else(
        || plan.name.clone(),
        |(s, file)| {
            s.name.clone().unwrap_or_else(|| {
                std::path::Path::new(file)
                    .file_stem()
                    .map_or_else(|| file.to_owned(), |f| f.to_string_lossy().into_owned())
            })
        },
    );
    let mut scenarios = Vec::new();
    let mut run_time_cap = None;
    if let Some((s, _)) = scenario {
        // Picked with --scenario, the first of them starts at once.
        let mut starts = Vec::new();
        for (sname, spec) in &picked {
            starts.push(
                spec.start()
                    .map_err(|e| invalid(format!("scenario `{sname}`: {e}")))?,
            );
        }
        let shift = if args.scenario_names.is_empty() {
            Duration::ZERO
        } else {
            starts.iter().copied().min().unwrap_or_default()
        };
        for ((sname, spec), start) in picked.iter().zip(starts) {
            let mut sub = plan.clone();
            if !spec.user_types.is_empty() {
                sub.user_types.retain(|u| spec.user_types.contains(&u.name));
            }
            let sload = if picked.len() == 1 {
                load.clone()
            } else {
                let mut l = loadspec::settings(&spec.load)
                    .map_err(|e| invalid(format!("scenario `{sname}`: {e}")))?;
                l.stop_timeout = args.stop_timeout.or(l.stop_timeout).or(s.load.stop_timeout);
                limits::check_load(&l, limits::available_memory())
                    .map_err(|e| invalid(format!("scenario `{sname}`: {e}")))?;
                l
            };
            scenarios.push(ScenarioRun {
                name: (*sname).clone(),
                plan: Arc::new(sub),
                load: sload,
                start_time: start - shift,
            });
        }
        if picked.len() > 1 {
            run_time_cap = args.run_time;
        }
    }
    let segment = crate::segment::pick(args)?;
    let (load, scenarios) = crate::segment::apply(segment, load, scenarios)?;
    let mut thresholds = Vec::new();
    if let Some((s, _)) = scenario {
        for t in &s.thresholds {
            thresholds.push(t.parse().map_err(invalid)?);
        }
    }
    for t in &args.thresholds {
        thresholds.push(
            loadlens_core::thresholds::parse(t)
                .map_err(|e| invalid(format!("--threshold: {e}")))?,
        );
    }
    // Thresholds on a named scenario that --scenario left out are skipped, not failed.
    thresholds.retain(|t| match &t.scope {
        Scope::Scenario(n)
            if !scenarios.iter().any(|s| s.name == *n)
                && scenario.is_some_and(|(s, _)| s.scenarios.contains_key(n)) =>
        {
            warnings.push(format!(
                "threshold `{}` is skipped: --scenario did not pick scenario `{n}`",
                t.expression
            ));
            false
        }
        _ => true,
    });
    let name_tags = if scenarios.is_empty() {
        NameTags::of([&plan])
    } else {
        NameTags::of(scenarios.iter().map(|s| &*s.plan))
    };
    check_scopes(
        &thresholds,
        &plan,
        &scenarios,
        &name_tags,
        scenario.map(|(s, _)| s),
        args,
    )?;
    warnings.extend(name_tags.warnings(&thresholds));
    let mut actions = crate::guard_actions::resolve(
        scenario.map_or(&[][..], |(s, _)| &s.actions),
        &load,
        &thresholds,
        args.dry_run_actions,
    )
    .map_err(invalid)?;
    if role == Role::Requests {
        // Switching a gate is the coordinator's, once for the run (checked there).
        actions = crate::guard_actions::Plan {
            dry_run: actions.dry_run,
            ..Default::default()
        };
        for t in &mut thresholds {
            t.on_fail.clear();
        }
    }
    let run = RunInfo {
        id: run_id,
        scenario: name,
        tags,
    };
    let facts = RunFacts {
        run: run.clone(),
        host: host.clone(),
        load: load.describe(),
        plan: Arc::new(plan.clone()),
        scenarios: scenarios.clone(),
        role,
    };
    let env = |k: &str| std::env::var(k).ok();
    let mut integrations = Vec::new();
    let mut on = Vec::new();
    for i in &registry {
        let input = Input {
            matches: &args.integrations,
            section: scenario.and_then(|(s, _)| Section::of(s, i.name())),
            env: &env,
            run: &facts,
        };
        if let Some(c) = i.configure(&input).map_err(|e| invalid(e.to_string()))? {
            integrations.push(c);
            on.push(i.name());
        }
    }
    // Span, service and coverage thresholds read the trace receiver's breakdown: without it
    // they could only fail for want of data, at the end of the run.
    // The coordinator joins no spans: it judges these on its workers' breakdowns, merged.
    if !on.contains(&"traces") && role != Role::Run {
        let reads_spans = |t: &&Threshold| {
            matches!(t.scope, Scope::Span(_) | Scope::Service(_))
                || t.metric == loadlens_core::thresholds::Metric::TraceCoverage
        };
        if let Some(t) = thresholds.iter().find(reads_spans) {
            return Err(invalid(format!(
                "threshold `{}` reads the service's spans: turn the trace receiver on (--trace-receiver, or a `traces:` section)",
                t.expression
            )));
        }
    }
    let lent: Vec<_> = integrations
        .iter()
        .filter_map(|c| c.gate_target())
        .collect();
    let names: Vec<&str> = lent.iter().map(|g| g.name()).collect();
    crate::guard_actions::check_targets(&actions, &thresholds, &names).map_err(invalid)?;
    let scenario_hash = crate::segment::scenario_hash(
        scenario.map(|(_, file)| file),
        &plan,
        &load,
        &scenarios,
        &thresholds,
        host.as_deref(),
    );
    let join_hash = crate::segment::scenario_hash(
        scenario.map(|(_, file)| file),
        &plan,
        &load,
        &scenarios,
        &[],
        host.as_deref(),
    );
    Ok(Prepared {
        scenario_hash,
        join_hash,
        coordinator: args.coordinator.clone(),
        actions,
        integrations,
        thresholds,
        scenarios,
        run_time_cap,
        warnings,
        run,
        plan,
        load,
        client,
        host,
    })
}

/// Every threshold scope must name something that runs: a request name, a named scenario, a
/// tag of a task that runs (after -T/-E and the scenarios' user types).
fn check_scopes(
    thresholds: &[Threshold],
    plan: &Plan,
    scenarios: &[ScenarioRun],
    name_tags: &NameTags,
    file: Option<&Scenario>,
    args: &RunArgs,
) -> Result<(), Failure> {
    let tags = name_tags.tags();
    for t in thresholds {
        if let Some(e) = unknown_request(t, plan) {
            return Err(invalid(e));
        }
        match &t.scope {
            Scope::Scenario(n) if !scenarios.iter().any(|s| s.name == *n) => {
                return Err(invalid(format!(
                    "threshold `{}`: no scenario is named `{n}` (define it under `scenarios:`)",
                    t.expression
                )));
            }
            Scope::Tag(tag) if !tags.contains(tag.as_str()) => {
                let in_file = file.is_some_and(|s| {
                    s.user_types
                        .iter()
                        .flat_map(|u| &u.tasks)
                        .any(|task| task.tags.contains(tag))
                });
                let filtered = !args.task_tags.is_empty()
                    || !args.task_tags_deprecated.is_empty()
                    || !args.exclude_tags.is_empty();
                return Err(invalid(match (in_file, filtered) {
                    (false, _) => unknown_tag(&t.expression, tag, &tags),
                    (true, true) => format!(
                        "threshold `{}`: the tasks with tag `{tag}` are left out by -T/--task-tags or -E/--exclude-task-tags",
                        t.expression
                    ),
                    (true, false) => format!(
                        "threshold `{}`: no scenario that runs has a task with tag `{tag}`",
                        t.expression
                    ),
                }));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The error for a threshold scoped on a request name that `plan` does not have (also used by
/// `validate`, which must reject what `run` rejects).
pub fn unknown_request(t: &Threshold, plan: &Plan) -> Option<String> {
    let Scope::Request(n) = &t.scope else {
        return None;
    };
    let pairs = plan.names.pairs();
    if pairs
        .iter()
        .any(|(m, r)| r == n || format!("{m} {r}") == *n)
    {
        return None;
    }
    let known: Vec<String> = pairs.iter().map(|(m, r)| format!("{m} {r}")).collect();
    Some(format!(
        "threshold `{}`: no request is named `{n}` (requests: {})",
        t.expression,
        known.join(", ")
    ))
}

/// Run to the end and write every report. Returns the exit status.
pub async fn execute(mut p: Prepared, outputs: &Outputs) -> Result<Exit, Failure> {
    crate::reports::check(outputs)?;
    let link = match &p.coordinator {
        Some(url) => {
            let token = crate::coordinator::protocol::token_from_env();
            Some(crate::coordinator::worker::Link::parse(url, token).map_err(invalid)?)
        }
        None => None,
    };
    if link.is_some() {
        // The coordinator checks the thresholds on the merged figures and aborts every worker:
        // a worker's own figures are a part of the run, and only judge its own report.
        for t in &mut p.thresholds {
            t.abort_on_fail = false;
        }
    }
    // From here on SIGTERM, like Ctrl-C, stops the run gracefully instead of ending the process.
    let mut stop_signals = StopSignals::new();
    for w in &p.warnings {
        tell!("warning: {w}");
    }
    if let Some(w) = crate::descriptors::ensure(crate::descriptors::needed(&p.load, &p.scenarios)) {
        eprintln!("warning: {w}");
    }
    let client = ClientShared::new(p.client.clone())
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    let mut web = match outputs.web.as_ref().filter(|w| w.web) {
        Some(w) => Some(start_dashboard(w, &p, !outputs.headless).await?),
        None => None,
    };
    if let Some(d) = web.as_mut().filter(|_| !outputs.headless) {
        say!("Waiting for a start from the dashboard (Ctrl-C to quit)…");
        let start = tokio::select! {
            s = d.wait_for_start() => s,
            _ = stop_signals.next() => None,
        };
        match start {
            Some(req) => p.load = req.apply(p.load),
            None => return Ok(Exit::Interrupted),
        }
    }
    let mut config = crate::resolved::config(&p);
    let names = p.plan.names.pairs().to_vec();
    let executor = if p.scenarios.is_empty() {
        Executor::new(Arc::new(p.plan), p.load.clone(), client, p.run.clone())
    } else {
        Executor::scenarios(p.scenarios.clone(), client, p.run.clone())
    }
    .thresholds(p.thresholds.clone());
    let executor = match p.run_time_cap {
        Some(cap) => executor.run_time_cap(cap),
        None => executor,
    };
    let run_time = if p.scenarios.is_empty() {
        p.load.duration()
    } else {
        let end = p
            .scenarios
            .iter()
            .map(|s| s.load.duration().map(|d| s.start_time + d))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        match (end, p.run_time_cap) {
            (Some(end), Some(cap)) => Some(end.min(cap)),
            (end, cap) => end.or(cap),
        }
    };
    // Each integration's start-up check (keys, monitors, agent, …) runs before the run: a
    // required one that fails refuses it (exit 2), any other is one line and left out.
    let mut executor = executor;
    let on = start_integrations(
        std::mem::take(&mut p.integrations),
        &p.run.id,
        p.actions.dry_run,
    )
    .await?;
    if let Some(t) = on.tracing {
        executor = executor.tracing(t);
    }
    for sink in on.sinks {
        executor = executor.sink(sink);
    }
    let (started, stdout_shared, mut gates) = (on.lines, on.stdout_shared, on.gates);
    config["integrations"] = started.clone().into();
    if let Some(h) = &outputs.html {
        gates = gates.link("report", h.display().to_string());
    }
    if let Some(d) = &web {
        gates = gates.link("dashboard", format!("http://{}/", d.addr()));
    }
    let actions = gates.build();
    let executor = executor.actions(actions.clone(), p.actions.flips.clone());
    let executor = executor.config(config);
    // A worker joins its coordinator here, after its own start-up checks, and waits for the
    // common start.
    let mut session = match link {
        Some(link) => {
            let hello = crate::coordinator::protocol::Hello {
                version: env!("CARGO_PKG_VERSION").into(),
                scenario_hash: p.join_hash.clone(),
                segment: p.load.segment.to_string(),
                run_id: p.run.id.clone(),
            };
            Some(crate::coordinator::worker::join(link, hello).await?)
        }
        None => None,
    };
    let executor = match session.as_mut() {
        Some(s) => executor.sink(s.sink()),
        None => executor,
    };
    let controls = Controls::new();
    if let Some(s) = session.as_mut() {
        s.follow(controls.clone());
    }
    let (executor, follow) = match &web {
        Some(d) => {
            d.hub.running(p.load.clone(), controls.clone());
            let follow = d.follow(executor.snapshots());
            (executor.sink(d.events_sink()), Some(follow))
        }
        None => (executor, None),
    };

    // Ctrl-C or SIGTERM: the first stops gracefully, the second at once. Reports are written
    // either way. The full-screen view counts its `q` and Ctrl-C keys (raw mode: no signal)
    // with these.
    let interrupts = crate::live::Interrupts::new(controls.clone(), outputs.console.clone());
    let signals = {
        let interrupts = interrupts.clone();
        tokio::spawn(async move {
            loop {
                let stopped_now = match stop_signals.next().await {
                    Stop::Interrupt => interrupts.request(),
                    Stop::Terminate => interrupts.terminate("SIGTERM"),
                    Stop::Hangup => interrupts.terminate("SIGHUP"),
                };
                if stopped_now {
                    break;
                }
            }
        })
    };

    let profile = if p.scenarios.is_empty() {
        p.load.describe()
    } else {
        let names: Vec<&str> = p.scenarios.iter().map(|s| s.name.as_str()).collect();
        format!("scenarios {}", names.join(", "))
    };
    say!(
        "loadlens {} · run {} · {} · {}{}",
        env!("CARGO_PKG_VERSION"),
        p.run.id,
        p.run.scenario,
        profile,
        run_time
            .map(|d| format!(" for {}", humantime::format_duration(d)))
            .unwrap_or_default()
    );
    for line in &started {
        say!("{line}");
    }
    if p.coordinator.is_some() {
        say!("A worker sends request spans only: run events, flag changes, the run span and metrics come once, from the coordinator.");
    }
    if p.actions.dry_run {
        for line in crate::guard_actions::dry_run_lines(&p.actions, &p.thresholds) {
            say!("{line}");
        }
    }
    let done = CancellationToken::new();
    let view = tokio::spawn(crate::live::show(crate::live::Feed {
        snapshots: executor.snapshots(),
        run_time,
        plain_every: outputs.progress_every,
        done: done.clone(),
        mode: crate::live::Mode::detect(outputs.no_tui, stdout_shared),
        header: crate::live::Header {
            run_id: p.run.id.clone(),
            scenario: p.run.scenario.clone(),
            profile: profile.clone(),
        },
        names,
        interrupts,
    }));
    if let Some(s) = &session {
        tokio::time::sleep_until(s.start_at).await;
    }
    let mut out = executor.run(controls).await;
    done.cancel();
    let _ = view.await;
    signals.abort();

    if let Some(f) = follow {
        let _ = f.await;
    }
    // The dashboard's sink only copies events; it has nothing to report.
    let sinks = std::mem::take(&mut out.sinks)
        .into_iter()
        .filter(|s| s.name() != crate::web::SINK_NAME)
        .collect();
    let mut summary = Summary::new(p.run, p.load, p.host, &mut out);
    summary.evaluate_thresholds(&p.thresholds);
    summary.outcome.scenario_hash = Some(p.scenario_hash.clone());
    crate::guard_actions::finish(&actions, &p.actions, &mut summary).await;
    summary.sinks = loadlens_core::sink::finish_all(sinks, &summary, Duration::from_secs(10)).await;

    let report_failed = !crate::reports::write_and_print(&summary, outputs);
    if let Some(s) = session {
        s.finish(&summary).await;
    }
    if let Some(d) = web {
        d.finish_and_serve(&summary, outputs.headless).await;
    }
    if report_failed {
        return Ok(Exit::Internal);
    }
    Ok(match summary.verdict() {
        Verdict::Passed => Exit::Passed,
        Verdict::Failed => Exit::ThresholdsFailed,
        Verdict::Aborted => Exit::Aborted,
        Verdict::Interrupted => Exit::Interrupted,
    })
}

/// The integrations that started, ready for a run.
pub struct Started {
    /// Their sinks.
    pub sinks: Vec<Box<dyn loadlens_core::sink::Sink>>,
    /// Their banner lines.
    pub lines: Vec<String>,
    /// The trace context requests carry (the first integration that traces decides).
    pub tracing: Option<loadlens_core::sample::TraceSettings>,
    /// One of them writes to stdout (`--jsonl -`).
    pub stdout_shared: bool,
    /// The gate targets they lend to guard actions (a failed one: its actions fail).
    pub gates: loadlens_core::actions::Builder,
}

/// Run each integration's start-up check: a required one that fails refuses the run (exit 2),
/// any other is one line on stderr and left out.
pub async fn start_integrations(
    list: Vec<Box<dyn Configured>>,
    run_id: &str,
    dry_run: bool,
) -> Result<Started, Failure> {
    let mut on = Started {
        sinks: Vec::new(),
        lines: Vec::new(),
        tracing: None,
        stdout_shared: false,
        gates: loadlens_core::actions::Actions::builder(run_id.to_owned(), dry_run),
    };
    for c in list {
        let line = c.describe();
        let required = c.required();
        let writes_stdout = c.writes_stdout();
        let tracing = c.tracing();
        let gate = c.gate_target();
        match c.start().await {
            Err(e) if !required && gate.is_some() => {
                if let Some(g) = gate {
                    on.gates = on.gates.unavailable(g.name(), e.to_string());
                }
                tell!("warning: {e}");
            }
            Ok(sink) => {
                if let Some(g) = gate {
                    on.gates = on.gates.target(g);
                }
                // The first integration that traces decides (the span exporter, listed before
                // the trace receiver, whose own settings only apply without it).
                if on.tracing.is_none() {
                    on.tracing = tracing;
                }
                on.lines.push(sink.describe().unwrap_or(line));
                on.sinks.push(sink);
                on.stdout_shared |= writes_stdout;
            }
            Err(e) if required => return Err(invalid(e.to_string())),
            Err(e) => tell!("warning: {e}"),
        }
    }
    Ok(on)
}

/// Bind the dashboard and say where it is; warn when it is reachable from other machines
/// without a password.
pub async fn start_dashboard(
    w: &crate::web::WebArgs,
    p: &Prepared,
    waiting: bool,
) -> Result<crate::web::Dashboard, Failure> {
    if w.web_auth.as_deref().is_some_and(|a| !a.contains(':')) {
        return Err(invalid("--web-auth must be USER:PASSWORD"));
    }
    let addr = w.addr();
    let meta = crate::web::RunMeta {
        run: p.run.clone(),
        load: p.load.clone(),
        host: p.host.clone(),
        names: p.plan.names.pairs().to_vec(),
        run_time: p.load.duration(),
    };
    let d = crate::web::Dashboard::start(w, meta, waiting)
        .await
        .map_err(|e| invalid(format!("cannot serve the dashboard on {addr}: {e}")))?;
    if crate::web::is_exposed(addr.ip()) && w.web_auth.is_none() {
        tell!(
            "warning: the dashboard on {addr} is reachable from other machines and can start and stop load; add --web-auth USER:PASSWORD"
        );
    }
    say!("dashboard: http://{}/", d.addr());
    Ok(d)
}
