//! The live view of a run, fed by the snapshot stream, in one of three forms:
//!
//! - full screen ([`tui`]) when stdout and stdin are terminals and `TERM` is not `dumb`: header,
//!   stats table, sparklines of req/s and p95, recent errors; `q` or Ctrl-C stops the run;
//! - one self-updating line on a terminal with `--no-tui` (or without a usable `TERM`);
//! - periodic plain lines when stdout is not a terminal (CI logs).
//!
//! Whatever else wants to tell the person at the terminal something during the run (the stop
//! notices, `tracing` warnings of sinks) goes through the [`Console`], which puts it inside the
//! full-screen view while that is up instead of writing over it.

mod console;
mod tui;
mod view;

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadlens_core::duration::ms;
use loadlens_core::executor::{Controls, StopReason};
use loadlens_core::stats::Snapshot;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use console::Console;

/// How the live view is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The full-screen terminal view.
    FullScreen,
    /// One self-updating line.
    Line,
    /// A plain line every `--progress-interval`.
    Plain,
}

impl Mode {
    /// The mode for this process: full screen on a terminal unless `no_tui`; plain lines when
    /// `stdout_shared` (an integration writes its own lines to stdout).
    pub fn detect(no_tui: bool, stdout_shared: bool) -> Mode {
        Mode::choose(
            no_tui,
            std::io::stdout().is_terminal() && !stdout_shared,
            std::io::stdin().is_terminal() && in_foreground(),
            std::env::var("TERM").ok().as_deref(),
        )
    }

    /// Full screen needs both ends of a terminal (keys are read from stdin) and a terminal that
    /// understands escape sequences; an unset `TERM` counts as one that may not.
    fn choose(no_tui: bool, stdout_tty: bool, stdin_tty: bool, term: Option<&str>) -> Mode {
        let capable = term.is_some_and(|t| !t.is_empty() && t != "dumb");
        match (stdout_tty, stdin_tty && capable && !no_tui) {
            (false, _) => Mode::Plain,
            (true, true) => Mode::FullScreen,
            (true, false) => Mode::Line,
        }
    }
}

/// Whether this process belongs to its terminal's foreground job. A run started with `&` does
/// not: taking the terminal into raw mode would get it stopped (SIGTTOU), and the keys typed
/// are the shell's, so it keeps to the one updating line.
#[cfg(unix)]
fn in_foreground() -> bool {
    rustix::termios::tcgetpgrp(std::io::stdin())
        .is_ok_and(|foreground| foreground == rustix::process::getpgrp())
}

#[cfg(not(unix))]
fn in_foreground() -> bool {
    true
}

/// What the full-screen view names at its top.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Run id.
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Load profile in words (`5 users`, `200 arrivals/s (20–200 VUs)`).
    pub profile: String,
}

/// Everything the live view needs.
pub struct Feed {
    /// The latest snapshot.
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// Planned length of the run, if known.
    pub run_time: Option<Duration>,
    /// Seconds between plain lines.
    pub plain_every: Duration,
    /// Fires when the run is over.
    pub done: CancellationToken,
    /// How to show it.
    pub mode: Mode,
    /// Run id, scenario, profile.
    pub header: Header,
    /// `(method, name)` of every request, in `NameId` order (names of the error catalogue).
    pub names: Vec<(String, String)>,
    /// Stop requests from the keyboard.
    pub interrupts: Interrupts,
}

/// The stop requests — SIGINT, SIGTERM, or `q`/Ctrl-C typed into the full-screen view, where
/// Ctrl-C is a key and not a signal — counted together: the first stops gracefully (as
/// [`StopReason::Interrupted`], the reason of Ctrl-C: exit 130), the next stops at once.
#[derive(Debug, Clone)]
pub struct Interrupts {
    controls: Controls,
    console: Console,
    count: Arc<AtomicUsize>,
}

impl Interrupts {
    /// Stop requests go to `controls`; what they do is said through `console`.
    pub fn new(controls: Controls, console: Console) -> Self {
        Interrupts {
            controls,
            console,
            count: Arc::default(),
        }
    }

    /// One stop request. Returns true once the run was stopped at once (nothing more to do).
    pub fn request(&self) -> bool {
        self.stop("\nStopping: in-flight requests get to finish (Ctrl-C again to stop now)…")
    }

    /// A stop request by `signal` (SIGTERM, SIGHUP): the same as Ctrl-C, said differently.
    pub fn terminate(&self, signal: &str) -> bool {
        self.stop(&format!(
            "\nStopping ({signal}): in-flight requests get to finish ({signal} or Ctrl-C again to stop now)…"
        ))
    }

    fn stop(&self, first_notice: &str) -> bool {
        match self.count.fetch_add(1, Ordering::SeqCst) {
            0 => {
                self.console.notice(first_notice);
                self.controls.stop(StopReason::Interrupted);
                false
            }
            1 => {
                self.console.notice("Stopping now.");
                self.controls.kill();
                true
            }
            _ => true,
        }
    }

    /// Where the stop notices go.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Stop requests so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// True once the run is stopping, for whatever reason (a request here, the dashboard's stop
    /// button, a guard).
    pub fn is_stopping(&self) -> bool {
        self.controls.is_stopping()
    }
}

/// One progress line.
pub fn line(s: &Snapshot, run_time: Option<Duration>) -> String {
    let elapsed = s.elapsed.as_secs();
    let time = match run_time {
        Some(rt) => format!(
            "{} elapsed, {} left",
            clock(elapsed),
            clock(rt.as_secs().saturating_sub(elapsed))
        ),
        None => format!("{} elapsed", clock(elapsed)),
    };
    format!(
        "[{time}] users {} | {:.0} req/s | {} reqs, {} failed ({:.2}%) | p95 {} ms (last second {} ms)",
        s.users,
        s.point.rps,
        s.total.request_count,
        s.total.failure_count,
        s.total.error_rate * 100.0,
        ms(s.total.latency_ms.p95),
        ms(s.point.p95_ms),
    )
}

fn clock(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Show progress until the channel closes or `done` fires. The full-screen view always gives
/// the terminal back before this returns; if it cannot start, or loses the terminal (a panic
/// elsewhere restored it), the single line takes over.
pub async fn show(mut feed: Feed) {
    if feed.mode == Mode::FullScreen {
        match tui::run(&mut feed).await {
            Ok(tui::End::Done) => return,
            Ok(tui::End::Lost) => {}
            Err(e) => {
                // Never a panic: the terminal may be gone (SIGHUP).
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: cannot use the full-screen view ({e}); showing one line"
                );
            }
        }
        feed.mode = Mode::Line;
    }
    lines(feed).await;
}

/// The single line (`Mode::Line`) or the plain periodic lines (`Mode::Plain`).
async fn lines(feed: Feed) {
    let Feed {
        mut snapshots,
        run_time,
        plain_every,
        done,
        mode,
        ..
    } = feed;
    let tty = mode != Mode::Plain;
    let mut last_plain = std::time::Instant::now();
    loop {
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { break },
            _ = done.cancelled() => break,
        }
        let Some(snap) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        let text = line(&snap, run_time);
        let mut out = std::io::stdout().lock();
        if tty {
            let _ = write!(out, "\r\x1b[2K{text}");
        } else if last_plain.elapsed() >= plain_every {
            last_plain = std::time::Instant::now();
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }
    if tty {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_screen_only_on_a_capable_terminal_at_both_ends() {
        let xterm = Some("xterm-256color");
        assert_eq!(Mode::choose(false, true, true, xterm), Mode::FullScreen);
        assert_eq!(Mode::choose(true, true, true, xterm), Mode::Line);
        assert_eq!(Mode::choose(false, true, false, xterm), Mode::Line);
        assert_eq!(Mode::choose(false, true, true, Some("dumb")), Mode::Line);
        assert_eq!(Mode::choose(false, true, true, None), Mode::Line);
        assert_eq!(Mode::choose(false, false, true, xterm), Mode::Plain);
        assert_eq!(Mode::choose(true, false, false, None), Mode::Plain);
    }

    #[test]
    fn first_request_stops_gracefully_second_kills() {
        let controls = Controls::new();
        let i = Interrupts::new(controls.clone(), Console::default());
        assert!(!i.is_stopping());
        assert!(!i.request());
        assert!(controls.is_stopping() && !controls.is_killed());
        assert!(i.request());
        assert!(controls.is_killed());
        assert_eq!(i.count(), 2);
    }
}
