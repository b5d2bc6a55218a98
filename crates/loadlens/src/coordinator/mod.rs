//! `loadlens coordinator FILE --workers N`: one place that starts N workers together, merges
//! what they measure while they run, owns the thresholds and the run-level telemetry of the
//! whole run, and writes its reports.
//!
//! The workers are `loadlens run FILE --coordinator URL --workers N` processes (pods of a
//! Kubernetes Indexed Job, or plain machines), each running its exact segment of the load
//! (`load::segment`). The coordinator:
//!
//! 1. starts the run-level part of the integrations (`Role::Run`: Datadog events, metrics and
//!    monitors, Statsig, the OpenTelemetry run span and metrics, Prometheus, JSON lines) with
//!    their start-up checks, then listens ([`server`]) and waits until the N segments have
//!    joined, each checked for the same scenario hash and loadlens version, up to
//!    `--join-timeout`; a worker started without `--run-id` takes the coordinator's;
//! 2. gives one start, `--start-delay` ahead, relative so that clocks need not agree;
//! 3. once a second adds up the interval reports (counters and HDR histograms: exact) into a
//!    merged [`Snapshot`](loadlens_core::stats::Snapshot) for the live view, the web dashboard
//!    (`--web`) and the integrations' sinks, and checks the thresholds on it ([`live`]), those
//!    on the service's spans on the workers' latest breakdowns merged (each worker streams
//!    its trace receiver's breakdown, in the form that merges, when it changed): an abort is
//!    sent to every worker at once; guard actions and planned flips run here, once, and the
//!    reports are cut at each flip for the before/after comparison;
//! 4. notices workers that disappear (their connection closes, or they fall silent for
//!    [`protocol::SILENCE_LIMIT`]): the timeline says so, what they streamed up to their last
//!    report, its breakdown included, stays in the result ([`partial`]), and below
//!    `--min-workers` the run stops and fails;
//! 5. at the end merges the workers' final results exactly as `loadlens merge` does
//!    (`report::merge`, their breakdowns with `breakdown::merge`), evaluates the thresholds
//!    on them, finishes its integrations with the
//!    merged summary (the stop event carries the whole run's figures), and writes the same
//!    reports as `run`, with a row per worker.
//!
//! The protocol is in [`protocol`], the worker's side in [`worker`].

mod live;
mod partial;
pub mod protocol;
mod server;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Args;
use loadlens_core::executor::Controls;
use loadlens_core::report::json::ResultDoc;
use loadlens_core::report::{merge, Segment, Verdict};
use loadlens_core::run::{EventKind, StopReason};
use loadlens_core::scenario::Scenario;
use loadlens_core::sink::{Fanout, SinkContext};
use loadlens_core::stats::{Aggregator, Recorder, StatsSet};
use loadlens_core::thresholds::Guard;
use loadlens_sinks::integration::Role;
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

/// The run's stop, once decided: why, and when every worker was told.
#[derive(Default)]
struct Stopping {
    reason: Option<StopReason>,
    sent: Option<Instant>,
}

impl Stopping {
    fn decided(&self) -> bool {
        self.sent.is_some()
    }

    /// Tell every worker to stop, for `why` (the first reason is the run's).
    fn tell_all(&mut self, board: &Board, reason: StopReason, why: String) {
        board.lock().broadcast(&Command::Stop { reason: why });
        self.reason.get_or_insert(reason);
        self.sent = Some(Instant::now());
    }
}

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
    // The whole run, with the integrations keeping to its run-level part (`Role::Run`).
    let mut p = match &a.scenario {
        Some(path) => {
            let s = Scenario::from_file(path).map_err(|e| invalid(e.to_string()))?;
            crate::runner::prepare_as(&whole, Some((&s, &path.display().to_string())), Role::Run)?
        }
        None => crate::runner::prepare_as(&whole, None, Role::Run)?,
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
        web: a.web.web.then(|| a.web.clone()),
        headless: a.headless,
        no_tui: a.no_tui,
        console: console.clone(),
    };
    crate::reports::check(&outputs)?;
    for w in &p.warnings {
        tell!("warning: {w}");
    }
    // The integrations' start-up checks, before any worker waits on this coordinator.
    let on = crate::runner::start_integrations(
        std::mem::take(&mut p.integrations),
        &p.run.id,
        p.actions.dry_run,
    )
    .await?;
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
    let board = Board::new(
        workers,
        p.join_hash.clone(),
        p.run.id.clone(),
        token,
        names.clone(),
    );
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
    for line in &on.lines {
        say!("{line} (run-level: sent once, by the coordinator)");
    }
    let dashboard = match &outputs.web {
        Some(w) => Some(crate::runner::start_dashboard(w, &p, false).await?),
        None => None,
    };
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
    tokio::time::sleep_until(start).await;
    let started_at = SystemTime::now();

    // 3. The run: merged snapshots to the live views, the thresholds and the integrations;
    //    lost workers; planned flips and guard actions, once for the run.
    let controls = Controls::new();
    let mut fanout = Fanout::new(on.sinks);
    let timeline = fanout.timeline();
    if !missing_at_start.is_empty() {
        timeline.push(
            EventKind::Note,
            format!(
                "started without segment(s) {} (not joined within --join-timeout)",
                missing_at_start.join(", ")
            ),
        );
    }
    let mut gates = on.gates;
    if let Some(h) = &outputs.html {
        gates = gates.link("report", h.display().to_string());
    }
    if let Some(d) = &dashboard {
        gates = gates.link("dashboard", format!("http://{}/", d.addr()));
        fanout.push(d.events_sink());
    }
    let actions = gates.build();
    actions.attach(timeline.clone());
    {
        let actions = actions.clone();
        controls.on_action(move |cause, action| actions.guard(cause, action));
    }
    let mut flips = p.actions.flips.clone();
    flips.sort_by_key(|f| f.at);
    // The before/after comparison: the workers' reports cut at each planned flip by their own
    // run time (the board adds them up); here, when each segment began and why.
    let mut segments: Vec<Segment> = if flips.is_empty() {
        Vec::new()
    } else {
        board
            .lock()
            .plan_cuts(flips.iter().map(|f| f.at).collect(), names.len());
        vec![Segment {
            start: Duration::ZERO,
            end: Duration::ZERO,
            cause: String::new(),
            stats: StatsSet::new(0),
        }]
    };
    let mut flips = flips.into_iter().peekable();
    fanout.start(&SinkContext {
        run: p.run.clone(),
        names: names.clone(),
        controls: controls.clone(),
        timeline: timeline.clone(),
        config: crate::resolved::config(&p),
    });
    timeline.push(
        EventKind::RunStarted,
        format!(
            "run {} of {} started on {joined} workers",
            p.run.id, p.run.scenario
        ),
    );
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
    let follow = dashboard.as_ref().map(|d| {
        d.hub.running(p.load.clone(), controls.clone());
        d.follow(snap_tx.subscribe())
    });
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
    let mut live = live::Thresholds::new(&p);
    let mut guard = Guard::new(p.thresholds.clone());
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = Stopping::default();
    let mut failures = Vec::new();
    // The load the dashboard asks for, passed on to every worker.
    let mut load_target = controls.load_target();
    // Where the time went: the workers' latest breakdowns merged, once one changed.
    let mut breakdown = None;
    loop {
        let flip_due = flips.peek().map(|f| start + f.at);
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            _ = ping.tick() => false,
            _ = board.changed.notified() => false,
            _ = tokio::time::sleep_until(flip_due.unwrap_or_else(Instant::now)), if flip_due.is_some() => false,
        };
        let elapsed = start.elapsed();
        let asked = controls.load_target();
        if asked != load_target && !stopping.decided() {
            load_target = asked;
            board.lock().broadcast(&Command::Load {
                users: asked.users,
                rate_per_s: asked.rate_per_s,
            });
            let what = match (asked.users, asked.rate_per_s) {
                (_, Some(r)) => format!("{r}/s"),
                (Some(u), None) => format!("{u} users"),
                (None, None) => "the file's".into(),
            };
            timeline.push(
                EventKind::Note,
                format!("load changed to {what} on every worker (dashboard)"),
            );
        }
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
                "worker {}/{workers} lost: {why}; its {} requests up to its last report (at {:.1} s) are kept in the result, marked partial",
                i + 1,
                s.requests,
                s.streamed.elapsed.as_secs_f64()
            );
            tell!("warning: {msg}");
            timeline.push(EventKind::Note, msg);
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
            let active = || st.slots.iter().filter(|(_, s)| s.health == Health::Active);
            let health = live::worst_health(active().map(|(_, s)| &s.last_health));
            let generator = live::generator(active().filter_map(|(i, s)| {
                let m = s.generator.as_ref()?;
                Some((format!("{}/{workers}", i + 1), m))
            }));
            let n = names.len();
            live.add_scenarios(std::mem::take(&mut st.pending_scenarios));
            Some((
                std::mem::replace(&mut st.pending, StatsSet::new(n)),
                users,
                dropped,
                health,
                generator,
                st.changed_breakdowns(),
            ))
        } else {
            None
        };
        drop(st);
        if remaining < min_workers && !stopping.decided() {
            let why = format!(
                "only {remaining} of {workers} workers left, fewer than --min-workers {min_workers}"
            );
            tell!("The run stops: {why}");
            timeline.push(EventKind::StopRequested, format!("stopping the run: {why}"));
            failures.push(why.clone());
            stopping.tell_all(&board, StopReason::WorkersLost(why.clone()), why);
        }
        if let Some((interval, users, dropped, health, generator, parts)) = interval {
            if let Some(parts) = parts {
                // Decoded outside the board's lock.
                match loadlens_core::breakdown::merge::figures(&parts, &names) {
                    Ok(b) => breakdown = Some(Arc::new(b)),
                    Err(e) => tell!("warning: the workers' breakdowns cannot be merged: {e}"),
                }
            }
            let mut snap = agg.tick_with(interval, elapsed, users);
            snap.dropped_iterations = dropped;
            snap.health = health;
            snap.breakdown = breakdown.clone();
            let snap = Arc::new(snap);
            if !guard.is_empty() && running > 0 {
                let seen = guard.breaches().len();
                let (breached, abort) =
                    live.check(&mut guard, &snap, &agg, generator.as_ref(), elapsed);
                for (b, why) in guard.breaches()[seen..].iter().zip(&breached) {
                    for action in &guard.thresholds()[b.index].on_fail {
                        actions.guard(why, action);
                    }
                }
                for m in breached {
                    timeline.push(EventKind::ThresholdBreached, m);
                }
                if let Some(why) = abort.filter(|_| !stopping.decided()) {
                    tell!("The run is aborted on every worker: {why}");
                    timeline.push(
                        EventKind::ThresholdBreached,
                        format!("aborting the run on every worker: {why}"),
                    );
                    stopping.tell_all(&board, StopReason::Aborted(why.clone()), why);
                }
            }
            fanout.snapshot(&snap);
            snap_tx.send_replace(Some(snap));
        }
        while let Some(f) = flips.next_if(|f| elapsed >= f.at) {
            if let Some(seg) = segments.last_mut() {
                seg.end = elapsed;
            }
            segments.push(Segment {
                start: elapsed,
                end: elapsed,
                cause: f.cause.clone(),
                stats: StatsSet::new(0),
            });
            actions.planned(&f.cause, &f.action, f.restore);
        }
        if controls.is_stopping() && !stopping.decided() {
            // Ctrl-C, the dashboard's stop, or a guard of an integration (a monitor's abort).
            let reason = controls.reason().unwrap_or(StopReason::Interrupted);
            let why = match &reason {
                StopReason::Interrupted => "the coordinator was interrupted".to_owned(),
                other => loadlens_core::run::describe(other),
            };
            timeline.push(EventKind::StopRequested, why.clone());
            stopping.tell_all(&board, reason, why);
        }
        if all_done || controls.is_killed() {
            break;
        }
        let grace = p.load.stop_timeout.unwrap_or_default() + RESULT_GRACE;
        if stopping.sent.is_some_and(|t| t.elapsed() > grace) {
            let mut st = board.lock();
            let late: Vec<u64> = st
                .slots
                .iter()
                .filter(|(_, s)| s.health == Health::Active)
                .map(|(i, _)| *i)
                .collect();
            for i in late {
                st.lose(i, "no result after the stop".into());
                timeline.push(
                    EventKind::Note,
                    format!(
                        "worker {}/{workers} sent no result within {} s of the stop; its streamed requests are kept, marked partial",
                        i + 1,
                        grace.as_secs()
                    ),
                );
            }
            break;
        }
    }
    // The reports since the last tick (each worker's last snapshot) make the last merged one,
    // so that what the integrations sent from the snapshots adds up to the whole run.
    let last = std::mem::replace(&mut board.lock().pending, StatsSet::new(names.len()));
    let mut snap = agg.tick_with(last, start.elapsed(), 0);
    snap.breakdown = breakdown;
    let snap = Arc::new(snap);
    if let Some(seg) = segments.last_mut() {
        seg.end = snap.elapsed;
    }
    fanout.snapshot(&snap);
    snap_tx.send_replace(Some(snap));
    if let Some(d) = &dashboard {
        d.hub.stopping();
    }
    done.cancel();
    let _ = view.await;
    sig_task.abort();
    serving.cancel();
    // The integrations' last reads (a flag changed in the last interval) reach the timeline.
    fanout.stopping().await;
    actions.detach();
    drop(snap_tx);
    if let Some(f) = follow {
        let _ = f.await;
    }

    // 4. The merged result: every worker's final result, and what the lost ones streamed.
    let docs = {
        let mut st = board.lock();
        let results = std::mem::take(&mut st.results);
        let hash = results
            .values()
            .find_map(|d| d.run.scenario_hash.clone())
            .or_else(|| Some(p.scenario_hash.clone()));
        let whole = partial::Run {
            info: &p.run,
            load: &p.load,
            host: p.host.clone(),
            names: &names,
            started_at,
            scenario_hash: hash,
            scenarios: &p.scenarios,
        };
        let mut docs: Vec<(u64, PathBuf, ResultDoc)> = results
            .into_iter()
            .map(|(i, d)| (i, PathBuf::from(format!("worker {}/{workers}", i + 1)), d))
            .collect();
        // The run stopped for what stopped the workers that finished it, not for the loss of
        // one (the timeline tells that), unless the coordinator stopped it.
        if stopping.reason.is_none() && !docs.is_empty() {
            let finished: Vec<(PathBuf, ResultDoc)> = docs
                .iter()
                .map(|(_, p, d)| (p.clone(), d.clone()))
                .collect();
            stopping.reason = Some(merge::stop_reason(&finished));
        }
        for (i, s) in st.slots.iter_mut() {
            let Health::Lost(why) = &s.health else {
                continue;
            };
            if s.reports == 0 {
                continue;
            }
            let streamed = std::mem::replace(&mut s.streamed, server::Streamed::new(names.len()));
            if streamed.breakdown.is_some() {
                let msg = format!(
                    "where the time went includes worker {}/{workers}'s joins up to its last report (at {:.1} s), partial",
                    i + 1,
                    streamed.elapsed.as_secs_f64()
                );
                tell!("warning: {msg}");
                timeline.push(EventKind::Note, msg);
            }
            let health = s.generator.as_ref().map(|m| m.report(None));
            let doc = partial::lost_result(&whole, *i, workers, streamed, health, why);
            let path = format!("worker {}/{workers} (lost: partial)", i + 1);
            docs.push((*i, PathBuf::from(path), doc));
        }
        docs.sort_by_key(|(i, _, _)| *i);
        docs.into_iter()
            .map(|(_, path, d)| (path, d))
            .collect::<Vec<_>>()
    };
    if docs.is_empty() {
        return Err(Failure::new(
            Exit::Internal,
            "no worker sent its result or a report: there is nothing to report".into(),
        ));
    }
    let merged = merge::merge(&docs).map_err(|e| Failure::new(Exit::Internal, e.to_string()))?;
    for n in &merged.notes {
        tell!("warning: {n}");
    }
    let mut summary = merged.summary;
    summary.run = p.run.clone();
    summary.outcome.breaches = guard.into_breaches();
    // The tags come from the plan: the workers' results know only those of their own
    // thresholds, and a tag scope given to the coordinator alone would find no request.
    summary.outcome.name_tags = live.name_tags().reordered(&names, &summary.names);
    let cut = std::mem::take(&mut board.lock().segments);
    summary.outcome.segments = segments
        .into_iter()
        .zip(cut)
        .map(|(s, stats)| Segment {
            stats: reorder(&stats, &names, &summary.names),
            ..s
        })
        .collect();
    summary.evaluate_thresholds(&p.thresholds);
    summary.outcome.scenario_hash = Some(p.scenario_hash.clone());
    summary.outcome.failures.extend(failures);
    summary.outcome.failures.extend(controls.failures());
    if let Some(r) = stopping.reason {
        summary.stop_reason = r;
    }
    summary.timeline.extend(fanout.events_so_far());
    summary
        .timeline
        .sort_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s));
    crate::guard_actions::finish(&actions, &p.actions, &mut summary).await;
    let mut ours = fanout.finish(&summary, Duration::from_secs(10)).await;
    ours.retain(|r| r.name != crate::web::SINK_NAME);
    summary.sinks.extend(ours);

    let report_failed = !crate::reports::write_and_print(&summary, &outputs);
    if let Some(d) = dashboard {
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

/// `set`, whose requests follow `from`, in the order of `to` (names `to` lacks are left out).
fn reorder(set: &StatsSet, from: &[(String, String)], to: &[(String, String)]) -> StatsSet {
    let mut out = StatsSet::new(to.len());
    for (i, name) in to.iter().enumerate() {
        if let Some(j) = from.iter().position(|n| n == name) {
            if let Some(r) = set.requests.get(j) {
                out.requests[i] = r.clone();
            }
        }
    }
    out
}
