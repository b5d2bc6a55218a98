//! The bounded writer: the sink's hooks hand lines to a queue of fixed size, and a thread of
//! its own writes them out. A hook never waits on the file: when the queue is full (a slow
//! disk, a pipe nobody reads) the line is dropped and counted.
//!
//! A thread rather than a tokio task because writes to a file or a pipe block, and a blocked
//! task would hold a runtime worker that the virtual users need.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Lines the queue holds: about a minute of a run with a hundred request names.
pub const DEFAULT_CAPACITY: usize = 8192;

/// What the writer did, for the sink's report.
#[derive(Debug, Default)]
struct Counts {
    offered: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    error: Mutex<Option<String>>,
}

impl Counts {
    fn fail(&self, n: u64, e: &std::io::Error) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        let mut first = self.error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| format!("cannot write: {e}"));
    }

    /// Lines buffered since the last flush are written once the flush succeeds.
    fn settle(&self, pending: &mut u64, flushed: std::io::Result<()>) {
        match flushed {
            Ok(()) => {
                self.written.fetch_add(*pending, Ordering::Relaxed);
            }
            Err(e) => self.fail(*pending, &e),
        }
        *pending = 0;
    }
}

/// The sending end; dropping it (or [`Writer::close`]) lets the thread end once it wrote all.
#[derive(Debug)]
pub struct Writer {
    tx: Option<SyncSender<String>>,
    counts: Arc<Counts>,
    done: Option<oneshot::Receiver<()>>,
}

/// The writer's figures once it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// Lines written.
    pub written: u64,
    /// Lines that could not be written (an I/O error).
    pub failed: u64,
    /// Lines dropped because the queue was full, or not written by the deadline.
    pub dropped: u64,
    /// The first I/O error, or why lines were not written by the deadline.
    pub error: Option<String>,
}

impl Writer {
    /// A writer thread writing lines to `out`, behind a queue of `capacity` lines. Each line
    /// and its newline go to `out` in one `write_all`, so that on stdout (whose lock is taken
    /// per call) another writer never splits a line; give a file behind a `BufWriter`.
    pub fn spawn(out: Box<dyn Write + Send>, capacity: usize) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<String>(capacity.max(1));
        let counts = Arc::new(Counts::default());
        let (done_tx, done) = oneshot::channel();
        let c = counts.clone();
        std::thread::Builder::new()
            .name("loadlens-jsonl".into())
            .spawn(move || {
                let mut out = out;
                let mut pending = 0u64;
                // Flush whenever the queue is empty, so that a reader tailing the file sees
                // each interval's lines as they come.
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(mut line) = next {
                        line.push('\n');
                        match out.write_all(line.as_bytes()) {
                            Ok(()) => pending += 1,
                            Err(e) => c.fail(1, &e),
                        }
                        next = rx.try_recv().ok();
                    }
                    c.settle(&mut pending, out.flush());
                }
                c.settle(&mut pending, out.flush());
                let _ = done_tx.send(());
            })?;
        Ok(Writer {
            tx: Some(tx),
            counts,
            done: Some(done),
        })
    }

    /// Queue a line; never waits. A full queue drops it (counted).
    pub fn offer(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        self.counts.offered.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Queue a last line, waiting up to `limit` for room (the end of the run may wait on its
    /// telemetry, bounded; the request path never does).
    pub async fn offer_last(&self, line: String, limit: Duration) {
        let Some(tx) = &self.tx else { return };
        self.counts.offered.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + limit;
        let mut line = line;
        loop {
            match tx.try_send(line) {
                Ok(()) => return,
                Err(TrySendError::Full(l)) if tokio::time::Instant::now() < deadline => {
                    line = l;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => {
                    self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Close the queue and wait up to `limit` for the thread to write what it holds. Lines
    /// still queued then are counted as dropped (the thread is left to end on its own: a
    /// write blocked on a pipe cannot be interrupted).
    pub async fn close(mut self, limit: Duration) -> Closed {
        drop(self.tx.take());
        let finished = match self.done.take() {
            Some(done) => tokio::time::timeout(limit, done).await.is_ok(),
            None => true,
        };
        let c = &self.counts;
        let mut error = c.error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let written = c.written.load(Ordering::Relaxed);
        let failed = c.failed.load(Ordering::Relaxed);
        let mut dropped = c.dropped.load(Ordering::Relaxed);
        if !finished {
            // Offered lines not accounted for yet are those the thread still holds.
            let offered = self.offered();
            let stuck = offered.saturating_sub(written + failed + dropped);
            dropped += stuck;
            error.get_or_insert_with(|| {
                format!(
                    "the output did not take {stuck} lines within {}",
                    humantime::format_duration(limit)
                )
            });
        }
        Closed {
            written,
            failed,
            dropped,
            error,
        }
    }

    fn offered(&self) -> u64 {
        self.counts.offered.load(Ordering::Relaxed)
    }
}
