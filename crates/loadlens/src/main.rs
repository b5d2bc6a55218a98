//! The `loadlens` binary: CLI, live view, demo target and wiring.

#[macro_use]
mod say;
mod cli;
mod compare;
mod convert;
mod coordinator;
mod demo;
mod demo_target;
mod descriptors;
mod exit;
mod guard_actions;
mod identity;
mod live;
mod loadflags;
mod manual;
mod merge_cmd;
mod report_cmd;
mod reports;
mod resolved;
mod runner;
mod segment;
mod signals;
mod web;

use std::process::ExitCode;

/// mimalloc: every request allocates a few small buffers (header maps, hyper's dispatch), and
/// glibc's allocator measured as a tenth of the user-space instructions per request.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use loadlens_core::scenario::Scenario;

use cli::Command;

/// The commented starter scenario written by `loadlens init`.
const STARTER: &str = include_str!("assets/starter.yaml");
/// The scenario JSON Schema, written beside the starter (its `$schema` link points there, so
/// an editor finds it without a network).
const SCENARIO_SCHEMA: &str = include_str!("../../../schemas/scenario.schema.json");
/// The name the starter's `$schema` link gives the schema, beside the scenario.
const SCHEMA_FILE: &str = "loadlens-scenario.schema.json";
use exit::{Exit, Failure};

fn main() -> ExitCode {
    let cli = cli::parse();
    // Log lines go through the console, so that they land inside the full-screen view while it
    // owns the terminal instead of writing over it.
    let console = live::Console::default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOADLENS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(console.clone())
        .init();
    // On one CPU (e.g. `taskset -c 1`), the single-threaded scheduler: no work stealing, no
    // parking and waking of a second thread (measured: more requests per CPU-second).
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tell!("error: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Internal.code());
        }
    };
    let result = runtime.block_on(dispatch(cli.command, console));
    // Don't wait for lingering connection tasks of abandoned users.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(f) => {
            tell!("error: {}", f.message);
            ExitCode::from(f.exit.code())
        }
    }
}

/// A scenario path that does not exist but looks like a URL without its scheme (`localhost:8080`,
/// `example.com/x`, `ftp://…`): say how quick mode tells a URL from a file.
fn not_a_url_hint(path: &std::path::Path, message: String) -> String {
    let text = path.to_string_lossy();
    let looks_like_url = text.contains("://")
        || text.starts_with("www.")
        || text.split(['/', '?']).next().is_some_and(|host| {
            host.rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        });
    if !path.exists() && looks_like_url {
        format!("{message} (quick mode takes a URL starting with http:// or https://)")
    } else {
        message
    }
}

async fn dispatch(command: Command, console: live::Console) -> Result<Exit, Failure> {
    match command {
        Command::Run(mut args) => {
            // A worker started without --run-id takes its coordinator's.
            if let (Some(url), None) = (&args.coordinator, &args.run_id) {
                let token = coordinator::protocol::token_from_env();
                let link = coordinator::worker::Link::parse(url, token)
                    .map_err(|e| Failure::new(Exit::InvalidInput, e))?;
                args.run_id = Some(coordinator::worker::run_id(&link).await?);
            }
            let outputs = runner::Outputs {
                json: args.json.clone(),
                csv: args.csv.clone(),
                html: args.html.clone(),
                junit: args.junit.clone(),
                summary_md: args.summary_md.clone(),
                step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                    .filter(|v| !v.is_empty())
                    .map(Into::into),
                progress_every: args.progress_interval,
                web: Some(args.web.clone()),
                headless: args.headless,
                no_tui: args.no_tui,
                console,
            };
            let prepared = match &args.scenario {
                Some(path) => {
                    let scenario = Scenario::from_file(path).map_err(|e| {
                        Failure::new(Exit::InvalidInput, not_a_url_hint(path, e.to_string()))
                    })?;
                    runner::prepare(&args, Some((&scenario, &path.display().to_string())))?
                }
                None => runner::prepare(&args, None)?,
            };
            runner::execute(prepared, &outputs).await
        }
        Command::Demo(args) => demo::run(args, console).await,
        Command::DemoTarget(args) => demo_target::run(args)
            .await
            .map(|()| Exit::Passed)
            .map_err(|e| Failure::new(Exit::InvalidInput, format!("{e:#}"))),
        Command::Report(args) => report_cmd::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Convert(args) => convert::run(args),
        Command::Merge(args) => merge_cmd::run(&args),
        Command::Completions(args) => manual::completions(&args),
        Command::Man(args) => manual::man(&args),
        Command::Coordinator(args) => coordinator::run(*args, console).await,
        Command::Validate(args) => {
            let invalid = |e: String| Failure::new(Exit::InvalidInput, e);
            let s = Scenario::from_file(&args.scenario).map_err(|e| invalid(e.to_string()))?;
            loadlens_sinks::integration::check_sections(&s, &loadlens_sinks::registry())
                .map_err(|e| invalid(e.to_string()))?;
            // Compile too: templates, variables, checks, captures and feeder files are checked
            // here, before any run. A scenario without a host gets a placeholder one.
            let opts = loadlens_core::plan::PlanOptions {
                host: s.host.is_none().then(|| "http://host.invalid".to_owned()),
                ..Default::default()
            };
            let plan = loadlens_core::plan::Plan::compile(&s, &opts)
                .map_err(|e| invalid(e.to_string()))?;
            // The file's thresholds parsed when it was read; what is left are warnings.
            let thresholds: Vec<_> = s.thresholds.iter().filter_map(|t| t.parse().ok()).collect();
            if let Some(e) = thresholds
                .iter()
                .find_map(|t| runner::unknown_request(t, &plan))
            {
                // Located like the file's other errors, at the threshold's text.
                let at = s
                    .source
                    .error(e.split('`').nth(1).unwrap_or_default(), e.clone());
                return Err(invalid(at.to_string()));
            }
            for w in loadlens_core::thresholds::NameTags::of([&plan]).warnings(&thresholds) {
                tell!("warning: {w}");
            }
            let tasks: usize = plan.user_types.iter().map(|u| u.tasks.len()).sum();
            say!(
                "{}: ok ({} user types, {} tasks, {} request names)",
                args.scenario.display(),
                plan.user_types.len(),
                tasks,
                plan.names.len()
            );
            Ok(Exit::Passed)
        }
        Command::Init(args) => {
            if args.file.exists() && !args.force {
                return Err(Failure::new(
                    Exit::InvalidInput,
                    format!(
                        "{} exists; pass --force to overwrite it",
                        args.file.display()
                    ),
                ));
            }
            std::fs::write(&args.file, STARTER).map_err(|e| {
                Failure::new(
                    Exit::Internal,
                    format!("cannot write {}: {e}", args.file.display()),
                )
            })?;
            // The schema the starter's first line links to, unless one is there already.
            let schema = args.file.with_file_name(SCHEMA_FILE);
            if args.force || !schema.exists() {
                std::fs::write(&schema, SCENARIO_SCHEMA).map_err(|e| {
                    Failure::new(
                        Exit::Internal,
                        format!("cannot write {}: {e}", schema.display()),
                    )
                })?;
            }
            say!(
                "wrote {} (and {}, its JSON Schema for editors) — edit it, then: loadlens validate {0}",
                args.file.display(),
                schema.display()
            );
            Ok(Exit::Passed)
        }
    }
}
