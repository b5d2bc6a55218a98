//! Wiring of a run: merge the scenario with flags into a plan and settings, run the executor
//! with Ctrl-C handling and the live view, then write every report — also when interrupted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::header::{HeaderName, HeaderValue};
use loadlens_core::client::{parse_header, ClientConfig, ClientShared, HttpVersion};
use loadlens_core::executor::{Controls, Executor, LoadSettings, StopReason};
use loadlens_core::plan::{Plan, PlanOptions};
use loadlens_core::report::{self, json::ResultDoc, Summary, Verdict};
use loadlens_core::run::{generate_run_id, RunInfo};
use loadlens_core::scenario::Scenario;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::exit::{Exit, Failure};
use crate::identity;

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
}

/// Where reports go.
#[derive(Debug, Default, Clone)]
pub struct Outputs {
    /// `--json`.
    pub json: Option<PathBuf>,
    /// `--csv`.
    pub csv: Option<PathBuf>,
    /// Seconds between plain progress lines.
    pub progress_every: Duration,
}

fn invalid(msg: impl Into<String>) -> Failure {
    Failure::new(Exit::InvalidInput, msg.into())
}

/// Build the run from a scenario file (`scenario`) or quick mode (`--url`).
pub fn prepare(args: &RunArgs, scenario: Option<(&Scenario, &str)>) -> Result<Prepared, Failure> {
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
        (None, Some(serde_yaml::Value::Bool(false))) => Some("none".into()),
        (None, Some(serde_yaml::Value::String(s))) => Some(s.clone()),
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

    let mut extra_headers = Vec::new();
    for h in &args.headers {
        extra_headers.push(parse_header(h).map_err(invalid)?);
    }

    let mut client = ClientConfig::default();
    if let Some((s, _)) = scenario {
        let c = &s.client;
        client.request_timeout = c.timeout.unwrap_or(client.request_timeout);
        client.connect_timeout = c.connect_timeout.unwrap_or(client.connect_timeout);
        client.max_redirects = c.max_redirects.unwrap_or(client.max_redirects);
        client.insecure = c.insecure.unwrap_or(false);
        client.version = match c.http_version.as_deref() {
            Some("http1") => HttpVersion::Http1,
            Some("http2") => HttpVersion::Http2PriorKnowledge,
            _ => HttpVersion::Auto,
        };
    }
    client.insecure |= args.insecure;
    if args.http2 {
        client.version = HttpVersion::Http2PriorKnowledge;
    } else if args.http1 {
        client.version = HttpVersion::Http1;
    }
    client.request_timeout = args.timeout.unwrap_or(client.request_timeout);
    client.connect_timeout = args.connect_timeout.unwrap_or(client.connect_timeout);
    client.max_redirects = args.max_redirects.unwrap_or(client.max_redirects);

    let (plan, load, host) = match (scenario, &args.url) {
        (Some((s, _)), _) => {
            if args.host.len() > 1 {
                return Err(invalid("-H/--host given more than once: a scenario has one host (use --header for headers)"));
            }
            let host = args.host.first().cloned().or_else(|| s.host.clone());
            if let Some(h) = &host {
                if !(h.starts_with("http://") || h.starts_with("https://")) {
                    return Err(invalid(format!(
                        "host `{h}` must start with http:// or https://"
                    )));
                }
            }
            let opts = PlanOptions {
                host: host.clone(),
                run_id_header,
                headers: extra_headers,
            };
            let plan = Plan::compile(s, &opts).map_err(|e| invalid(e.to_string()))?;
            let load = LoadSettings {
                users: args.users.or(s.load.users).unwrap_or(1),
                spawn_rate: args.spawn_rate.or(s.load.spawn_rate),
                run_time: args.run_time.or(s.load.run_time),
                iterations: args.iterations.or(s.load.iterations),
                stop_timeout: args.stop_timeout.or(s.load.stop_timeout),
            };
            (plan, load, host)
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
            let method = http::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| invalid(format!("invalid method `{}`", args.method)))?;
            let opts = PlanOptions {
                host: None,
                run_id_header,
                headers: extra_headers,
            };
            let body = args.body.clone().unwrap_or_default();
            let plan = Plan::single(url, method, body.into(), &opts)
                .map_err(|e| invalid(e.to_string()))?;
            let load = LoadSettings {
                users: args.connections.or(args.users).unwrap_or(50),
                spawn_rate: args.spawn_rate,
                run_time: args.duration.or(args.run_time),
                iterations: args.requests.or(args.iterations),
                stop_timeout: args.stop_timeout,
            };
            let load = if load.run_time.is_none() && load.iterations.is_none() {
                LoadSettings {
                    iterations: Some(200),
                    ..load
                }
            } else {
                load
            };
            (plan, load, Some(url.clone()))
        }
        (None, None) => return Err(invalid("give a scenario file or --url")),
    };
    if load.users == 0 {
        return Err(invalid("users must be at least 1"));
    }
    if let Some(r) = load.spawn_rate {
        if !(r > 0.0 && r.is_finite()) {
            return Err(invalid(format!(
                "spawn rate must be a positive number, got {r}"
            )));
        }
    }
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
    Ok(Prepared {
        run: RunInfo {
            id: run_id,
            scenario: name,
            tags,
        },
        plan,
        load,
        client,
        host,
    })
}

/// Run to the end and write every report. Returns the exit status.
pub async fn execute(p: Prepared, outputs: &Outputs) -> Result<Exit, Failure> {
    let client = ClientShared::new(p.client.clone())
        .map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    let executor = Executor::new(Arc::new(p.plan), p.load.clone(), client, p.run.clone());
    let controls = Controls::new();

    // Ctrl-C: first stops gracefully, second stops at once. Reports are written either way.
    let signals = {
        let controls = controls.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            eprintln!("\nStopping: in-flight requests get to finish (Ctrl-C again to stop now)…");
            controls.stop(StopReason::Interrupted);
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("Stopping now.");
                controls.kill();
            }
        })
    };

    println!(
        "loadlens {} · run {} · {} · {} users{}",
        env!("CARGO_PKG_VERSION"),
        p.run.id,
        p.run.scenario,
        p.load.users,
        p.load
            .run_time
            .map(|d| format!(" for {}", humantime::format_duration(d)))
            .unwrap_or_default()
    );
    let done = CancellationToken::new();
    let view = tokio::spawn(crate::live::show(
        executor.snapshots(),
        p.load.run_time,
        outputs.progress_every,
        done.clone(),
    ));
    let mut out = executor.run(controls).await;
    done.cancel();
    let _ = view.await;
    signals.abort();

    let sinks = std::mem::take(&mut out.sinks);
    let mut summary = Summary::new(p.run, p.load, p.host, &mut out);
    summary.sinks = loadlens_core::sink::finish_all(sinks, &summary, Duration::from_secs(10)).await;

    println!("\n{}\n", report::text::header(&summary));
    print!("{}", report::text::render(&summary));
    let written = write_reports(&summary, outputs);
    let mut report_failed = false;
    for w in &written {
        match w {
            Ok(path) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                report_failed = true;
            }
        }
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

/// Write every requested report; each result is independent, so one failure loses nothing else.
pub fn write_reports(summary: &Summary, outputs: &Outputs) -> Vec<anyhow::Result<PathBuf>> {
    let mut results = Vec::new();
    if let Some(path) = &outputs.json {
        results.push(
            ResultDoc::of(summary)
                .write(path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map(|_| path.clone()),
        );
    }
    if let Some(prefix) = &outputs.csv {
        match report::csv::write(summary, prefix) {
            Ok(paths) => results.extend(paths.into_iter().map(Ok)),
            Err(e) => results.push(Err(anyhow::anyhow!(
                "cannot write CSV files {}_*.csv: {e}",
                prefix.display()
            ))),
        }
    }
    results
}
