//! `loadlens coordinator FILE --workers N`: one place that starts N workers together, merges
//! what they measure while they run, owns the thresholds of the whole run, and writes its
//! reports.
//!
//! The workers are `loadlens run FILE --coordinator URL --workers N` processes (pods of a
//! Kubernetes Indexed Job, or plain machines), each running its exact segment of the load
//! (`load::segment`). The coordinator:
//!
//! 1. listens ([`server`]) and waits until the N segments have joined, each checked for the
//!    same scenario hash and loadlens version, up to `--join-timeout`;
//! 2. gives one start, `--start-delay` ahead, relative so that clocks need not agree;
//! 3. once a second adds up the interval reports (counters and HDR histograms: exact) into a
//!    merged [`Snapshot`](loadlens_core::stats::Snapshot) for the live view, and checks the
//!    thresholds on it: an abort is sent to every worker at once;
//! 4. notices workers that disappear (their connection closes, or they fall silent for
//!    [`protocol::SILENCE_LIMIT`]): the timeline says so, and below `--min-workers` the run
//!    stops and fails;
//! 5. at the end merges the workers' final results exactly as `loadlens merge` does
//!    (`report::merge`), evaluates the thresholds on them, and writes the same reports as `run`,
//!    with a row per worker.
//!
//! The protocol is in [`protocol`], the worker's side in [`worker`].

pub mod protocol;
mod server;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use loadlens_core::executor::Controls;
use loadlens_core::report::{merge, Verdict};
use loadlens_core::run::{EventKind, StopReason, TimelineEvent};
use loadlens_core::scenario::Scenario;
use loadlens_core::stats::{Aggregator, Recorder, StatsSet};
use loadlens_core::thresholds::{Guard, Observed};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::RunArgs;
use crate::exit::{Exit, Failure};
use crate::runner::Outputs;
use crate::signals::{Stop, StopSignals};
use protocol::Command;
use server::{Board, Health, Phase};

/// `loadlens coordinator`.
#[derive(Args, Debug)]
pub struct CoordinatorArgs {
    /// Where the workers connect: `0.0.0.0:7700` in a pod behind a Service.
    #[arg(
        long,
        env = "LOADLENS_LISTEN",
        default_value = "127.0.0.1:7700",
        value_name = "ADDR"
    )]
    pub listen: String,
    /// Fewest workers the run goes on with: below it, it stops and fails (default: all of
    /// --workers). At --join-timeout, a run with at least this many joined starts without the
    /// others.
    #[arg(long, env = "LOADLENS_MIN_WORKERS", value_name = "M")]
    pub min_workers: Option<u64>,
    /// How long to wait for the workers to join before refusing to start.
    #[arg(long, env = "LOADLENS_JOIN_TIMEOUT", default_value = "5m", value_parser = crate::cli::duration)]
    pub join_timeout: Duration,
    /// How far ahead of the last join the common start is given.
    #[arg(long, env = "LOADLENS_START_DELAY", default_value = "2s", value_parser = crate::cli::duration)]
    pub start_delay: Duration,
    /// The scenario, load, threshold and report flags, as for `run`; `--workers N` is how many
    /// workers to wait for.
    #[command(flatten)]
    pub run: RunArgs,
}

fn invalid(msg: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::InvalidInput, msg.to_string())
}

/// How long after a stop the coordinator waits for the results still missing.
const RESULT_GRACE: Duration = Duration::from_secs(30);

/// Coordinate a run to its end and write the reports.
pub async fn run(args: CoordinatorArgs, console: crate::live::Console) -> Result<Exit, Failure> {
    let a = &args.run;
    let Some(workers) = a.workers.filter(|n| *n > 0) else {
        return Err(invalid(
            "--workers N: how many workers the coordinator waits for (at least 1)",
        ));
    };
    if a.worker_index.is_some() || a.segment.is_some() || a.coordinator.is_some() {
        return Err(invalid(
            "--worker-index, --segment and --coordinator are the workers' flags, not the coordinator's",
        ));
    }
    let min_workers = args.min_workers.unwrap_or(workers);
    if min_workers == 0 || min_workers > workers {
        return Err(invalid(format!(
            "--min-workers {min_workers} must be from 1 to --workers {workers}"
        )));
    }
    let whole = RunArgs {
        workers: None,
        ..a.clone()
    };
    let p = match &a.scenario {
        Some(path) => {
            let s = Scenario::from_file(path).map_err(|e| invalid(e.to_string()))?;
            crate::runner::prepare(&whole, Some((&s, &path.display().to_string())))?
        }
        None => crate::runner::prepare(&whole, None)?,
    };
    let outputs = Outputs {
        json: a.json.clone(),
        csv: a.csv.clone(),
        html: a.html.clone(),
        junit: a.junit.clone(),
        summary_md: a.summary_md.clone(),
        step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|v| !v.is_empty())
            .map(Into::into),
        progress_every: a.progress_interval,
        web: None,
        headless: true,
        no_tui: a.no_tui,
        console: console.clone(),
    };
    crate::reports::check(&outputs)?;
    for w in &p.warnings {
        tell!("warning: {w}");
    }
    let token = protocol::token_from_env();
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| invalid(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| invalid(format!("cannot listen on {}: {e}", args.listen)))?;
    if !addr.ip().is_loopback() && token.is_none() {
        tell!(
            "warning: the coordinator on {addr} is reachable from other machines without a token: set {} on it and on every worker",
            protocol::TOKEN_ENV
        );
    }
    let names = p.plan.names.pairs().to_vec();
    let board = Board::new(workers, p.join_hash.clone(), token, names.clone());
    let serving = CancellationToken::new();
    tokio::spawn(server::serve(listener, board.clone(), serving.clone()));
    // First, alone on its line: where the workers connect (scripts and tests read it).
    say!("listening on http://{addr}");
    say!(
        "loadlens {} coordinator · run {} · {} · waiting up to {} for {workers} workers",
        env!("CARGO_PKG_VERSION"),
        p.run.id,
        p.run.scenario,
        humantime::format_duration(args.join_timeout)
    );
    let mut signals = StopSignals::new();

    // 1. Joins.
    let deadline = Instant::now() + args.join_timeout;
    let mut ping = tokio::time::interval(protocol::PING_EVERY);
    let mut missing_at_start = Vec::new();
    loop {
        let timed_out = {
            let mut st = board.lock();
            for i in st.broadcast(&Command::Ping) {
                say!("segment {}/{workers} left before the start", i + 1);
            }
            if st.joined() == workers {
                break;
            }
            Instant::now() >= deadline
        };
        if timed_out {
            let refused = {
                let mut st = board.lock();
                let joined = st.joined();
                if joined >= min_workers {
                    missing_at_start = (0..workers)
                        .filter(|i| !st.slots.get(i).is_some_and(|s| s.health == Health::Active))
                        .map(|i| format!("{}/{workers}", i + 1))
                        .collect();
                    st.slots.retain(|_, s| s.health == Health::Active);
                    None
                } else {
                    let why = format!(
                        "only {joined} of {workers} workers joined within {} (--join-timeout); the run did not start",
                        humantime::format_duration(args.join_timeout)
                    );
                    st.broadcast(&Command::Stop {
                        reason: why.clone(),
                    });
                    Some(why)
                }
            };
            let Some(why) = refused else { break };
            // Let the streams carry the stop before the process ends.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Err(Failure::new(Exit::Aborted, why));
        }
        tokio::select! {
            _ = board.changed.notified() => {}
            _ = ping.tick() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = signals.next() => {
                board.lock().broadcast(&Command::Stop { reason: "the coordinator was interrupted before the start".into() });
                tokio::time::sleep(Duration::from_millis(300)).await;
                return Ok(Exit::Interrupted);
            }
        }
    }

    // 2. The start.
    let start = Instant::now() + args.start_delay;
    {
        let mut st = board.lock();
        st.phase = Phase::Running { start };
        for s in st.slots.values_mut() {
            s.last_heard = start;
        }
        st.broadcast(&Command::Start {
            in_ms: args.start_delay.as_millis() as u64,
            run_id: p.run.id.clone(),
        });
    }
    let joined = board.lock().joined();
    say!(
        "{joined} of {workers} workers in: the load starts in {}",
        humantime::format_duration(args.start_delay)
    );
    let mut timeline = Vec::new();
    let at = |elapsed: Duration, kind, msg: String| TimelineEvent::now(elapsed, kind, msg);
    if !missing_at_start.is_empty() {
        timeline.push(at(
            Duration::ZERO,
            EventKind::Note,
            format!(
                "started without segment(s) {} (not joined within --join-timeout)",
                missing_at_start.join(", ")
            ),
        ));
    }
    tokio::time::sleep_until(start).await;

    // 3. The run: merged snapshots, thresholds, lost workers.
    let controls = Controls::new();
    let interrupts = crate::live::Interrupts::new(controls.clone(), console.clone());
    let sig_task = {
        let interrupts = interrupts.clone();
        tokio::spawn(async move {
            loop {
                let now = match signals.next().await {
                    Stop::Interrupt => interrupts.request(),
                    Stop::Terminate => interrupts.terminate("SIGTERM"),
                    Stop::Hangup => interrupts.terminate("SIGHUP"),
                };
                if now {
                    break;
                }
            }
        })
    };
    let (snap_tx, snap_rx) = watch::channel(None);
    let done = CancellationToken::new();
    let run_time = p.load.duration();
    let view = tokio::spawn(crate::live::show(crate::live::Feed {
        snapshots: snap_rx,
        run_time,
        plain_every: a.progress_interval,
        done: done.clone(),
        mode: crate::live::Mode::detect(a.no_tui, false),
        header: crate::live::Header {
            run_id: p.run.id.clone(),
            scenario: p.run.scenario.clone(),
            profile: format!("{} over {joined} workers", p.load.describe()),
        },
        names: names.clone(),
        interrupts,
    }));
    let mut agg = Aggregator::new(Recorder::new(names.len()), names.clone());
    let mut guard = Guard::new(p.thresholds.clone());
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop_reason: Option<StopReason> = None;
    let mut failures = Vec::new();
    let mut stop_sent: Option<Instant> = None;
    loop {
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            _ = ping.tick() => false,
            _ = board.changed.notified() => false,
        };
        let elapsed = start.elapsed();
        let mut st = board.lock();
        let mut lost = st.broadcast(&Command::Ping);
        let silent: Vec<u64> = st
            .slots
            .iter()
            .filter(|(_, s)| {
                s.health == Health::Active && s.last_heard.elapsed() > protocol::SILENCE_LIMIT
            })
            .map(|(i, _)| *i)
            .collect();
        for i in silent {
            let why = format!("no report for {} s", protocol::SILENCE_LIMIT.as_secs());
            if st.lose(i, why) {
                lost.push(i);
            }
        }
        for i in &lost {
            let s = &st.slots[i];
            let why = match &s.health {
                Health::Lost(w) => w.clone(),
                _ => String::new(),
            };
            let msg = format!(
                "worker {}/{workers} lost: {why}; it had reported {} requests, which are not in the final result",
                i + 1,
                s.requests
            );
            tell!("warning: {msg}");
            timeline.push(at(elapsed, EventKind::Note, msg));
        }
        let running = st
            .slots
            .values()
            .filter(|s| s.health != Health::Finished)
            .count() as u64;
        let remaining = st
            .slots
            .values()
            .filter(|s| !matches!(s.health, Health::Lost(_)))
            .count() as u64;
        if remaining < min_workers && stop_sent.is_none() {
            let why = format!(
                "only {remaining} of {workers} workers left, fewer than --min-workers {min_workers}"
            );
            tell!("The run stops: {why}");
            timeline.push(at(
                elapsed,
                EventKind::StopRequested,
                format!("stopping the run: {why}"),
            ));
            st.broadcast(&Command::Stop {
                reason: why.clone(),
            });
            failures.push(why.clone());
            stop_reason.get_or_insert(StopReason::WorkersLost(why));
            stop_sent = Some(Instant::now());
        }
        let all_done = st.slots.values().all(|s| s.health != Health::Active);
        let interval = if ticked {
            let users = st
                .slots
                .values()
                .filter(|s| s.health == Health::Active)
                .map(|s| s.users)
                .sum();
            let dropped = st
                .slots
                .values()
                .filter_map(|s| s.dropped)
                .reduce(|a, b| a + b);
            let n = names.len();
            Some((
                std::mem::replace(&mut st.pending, StatsSet::new(n)),
                users,
                dropped,
            ))
        } else {
            None
        };
        drop(st);
        if let Some((interval, users, dropped)) = interval {
            let mut snap = agg.tick_with(interval, elapsed, users);
            snap.dropped_iterations = dropped;
            let snap = Arc::new(snap);
            if !guard.is_empty() && running > 0 {
                let observed = Observed {
                    aggregate: &snap.total,
                    requests: &snap.requests,
                    scenarios: &[],
                    tags: &[],
                    dropped_iterations: snap.dropped_iterations.unwrap_or(0),
                    generator: None,
                    breakdown: None,
                };
                let (breached, abort) = guard.check(&observed, elapsed);
                for m in breached {
                    timeline.push(at(elapsed, EventKind::ThresholdBreached, m));
                }
                if let Some(why) = abort.filter(|_| stop_sent.is_none()) {
                    tell!("The run is aborted on every worker: {why}");
                    timeline.push(at(
                        elapsed,
                        EventKind::ThresholdBreached,
                        format!("aborting the run on every worker: {why}"),
                    ));
                    board.lock().broadcast(&Command::Stop {
                        reason: why.clone(),
                    });
                    stop_reason.get_or_insert(StopReason::Aborted(why));
                    stop_sent = Some(Instant::now());
                }
            }
            snap_tx.send_replace(Some(snap));
        }
        if controls.is_stopping() && stop_sent.is_none() {
            let why = "the coordinator was interrupted".to_owned();
            timeline.push(at(elapsed, EventKind::StopRequested, why.clone()));
            board.lock().broadcast(&Command::Stop { reason: why });
            stop_reason.get_or_insert(StopReason::Interrupted);
            stop_sent = Some(Instant::now());
        }
        if all_done || controls.is_killed() {
            break;
        }
        let grace = p.load.stop_timeout.unwrap_or_default() + RESULT_GRACE;
        if stop_sent.is_some_and(|t| t.elapsed() > grace) {
            let mut st = board.lock();
            let late: Vec<u64> = st
                .slots
                .iter()
                .filter(|(_, s)| s.health == Health::Active)
                .map(|(i, _)| *i)
                .collect();
            for i in late {
                st.lose(i, "no result after the stop".into());
                timeline.push(at(
                    start.elapsed(),
                    EventKind::Note,
                    format!(
                        "worker {}/{workers} sent no result within {} s of the stop",
                        i + 1,
                        grace.as_secs()
                    ),
                ));
            }
            break;
        }
    }
    done.cancel();
    let _ = view.await;
    sig_task.abort();
    serving.cancel();

    // 4. The merged result.
    let results = std::mem::take(&mut board.lock().results);
    if results.is_empty() {
        return Err(Failure::new(
            Exit::Internal,
            "no worker sent its result: there is nothing to report".into(),
        ));
    }
    let docs: Vec<(PathBuf, _)> = results
        .into_iter()
        .map(|(i, d)| (PathBuf::from(format!("worker {}/{workers}", i + 1)), d))
        .collect();
    let merged = merge::merge(&docs).map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    for n in &merged.notes {
        tell!("warning: {n}");
    }
    let mut summary = merged.summary;
    summary.run = p.run.clone();
    summary.outcome.breaches = guard.into_breaches();
    summary.evaluate_thresholds(&p.thresholds);
    summary.outcome.scenario_hash = Some(p.scenario_hash.clone());
    summary.outcome.failures.extend(failures);
    if let Some(r) = stop_reason {
        summary.stop_reason = r;
    }
    summary.timeline.extend(timeline);
    summary
        .timeline
        .sort_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s));

    let report_failed = !crate::reports::write_and_print(&summary, &outputs);
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
