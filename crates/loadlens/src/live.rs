//! The live progress view, fed by the snapshot stream: one self-updating line on a terminal,
//! periodic plain lines otherwise (CI logs).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use loadlens_core::report::text::ms;
use loadlens_core::stats::Snapshot;
use tokio::sync::watch;

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

/// Print progress until the channel closes or `done` fires.
pub async fn show(
    mut rx: watch::Receiver<Option<Arc<Snapshot>>>,
    run_time: Option<Duration>,
    plain_every: Duration,
    done: tokio_util::sync::CancellationToken,
) {
    let tty = std::io::stdout().is_terminal();
    let mut last_plain = std::time::Instant::now();
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = done.cancelled() => break,
        }
        let Some(snap) = rx.borrow_and_update().clone() else {
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
