//! HTTP/2 connections shared by the users of a run (`--http2-streams N`), as h2load's
//! `-c C -m N` and oha's `--http2 -p N` do: each connection carries up to N requests at once,
//! from different users; a user takes a stream for one exchange and gives it back.
//!
//! The pool is keyed by origin and lives in [`super::ClientShared`]. It never puts more
//! streams on a connection than N or than the server's `SETTINGS_MAX_CONCURRENT_STREAMS`: when
//! every connection is full it opens another one. The server's limit is read once the
//! connection is set up and again every [`REFRESH_EVERY`] requests on it (reading it takes the
//! connection's lock, which cost 4.5 % of the CPU when done for every connection scanned); a
//! server that lowers it in between makes a few requests wait on the connection (`h2` holds
//! them until a stream closes), never exceeds it. Requests that find no free stream while connections are being
//! opened wait for those, as long as the streams they will bring cover the waiting requests,
//! so 40 users starting at once with N = 10 open 4 connections, not 40.
//!
//! A dead connection (GOAWAY, reset, closed socket) is dropped from the pool when its task
//! ends or a request on it fails as if it were closed; its requests in flight fail with
//! their own error, and the next requests open a new connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::conn::{IoCounters, Origin};
use super::h2::Handle;

/// Requests on a connection between two readings of the server's stream limit.
pub const REFRESH_EVERY: usize = 64;

/// One pooled connection.
struct Pooled {
    handle: Handle,
    counters: Arc<IoCounters>,
    /// Streams taken now (leases alive).
    in_flight: AtomicUsize,
    /// Most streams at once: the pool's N, or fewer if the server said so.
    limit: AtomicUsize,
    /// The pool's N.
    streams: usize,
    /// Streams given back so far (to refresh `limit` now and then).
    released: AtomicUsize,
    /// The connection's task: aborted when the pool lets the connection go.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Pooled {
    /// Take a stream if one is free.
    fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }
}

#[derive(Default)]
struct Entry {
    conns: Vec<Arc<Pooled>>,
    /// Connections being opened now.
    dialing: usize,
    /// Requests waiting for one of those.
    waiting: usize,
    /// Streams a new connection is expected to bring: N, or less once a server said so.
    expect: usize,
}

/// The shared HTTP/2 connections of a run.
pub struct Pool {
    streams: usize,
    origins: Mutex<HashMap<Origin, Entry>>,
    /// Signalled whenever an opening connection is ready or failed.
    dialed: Arc<Notify>,
    /// Clients alive: when the last one goes, the pool closes its connections (so that a run
    /// that ended has none open, as with connections owned by users).
    clients: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("streams", &self.streams)
            .finish()
    }
}

/// A stream taken on a pooled connection, given back when dropped.
pub struct Lease {
    conn: Arc<Pooled>,
}

impl Lease {
    /// A handle to send on.
    pub fn handle(&self) -> Handle {
        self.conn.handle.clone()
    }

    /// The connection's wire counters.
    pub fn counters(&self) -> &Arc<IoCounters> {
        &self.conn.counters
    }

    /// Stop choosing this connection (a request on it found it closed).
    pub fn discard(&self) {
        self.conn.handle.mark_closed();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let c = &self.conn;
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
        if c.released.fetch_add(1, Ordering::Relaxed) % REFRESH_EVERY == REFRESH_EVERY - 1 {
            let limit = c.streams.min(c.handle.server_max_streams()).max(1);
            c.limit.store(limit, Ordering::Relaxed);
        }
    }
}

/// What [`Pool::take`] decided.
pub enum Take {
    /// A stream on an open connection.
    Leased(Lease),
    /// Open a connection: the caller dials and then calls [`Dialing::ready`] (dropping it
    /// unfinished, on a failure or a timeout, tells the waiters).
    Dial(Dialing),
    /// Wait for a connection being opened, then ask again.
    Wait(Waiting),
}

/// The right (and duty) to open one connection to an origin.
pub struct Dialing {
    pool: Arc<Pool>,
    origin: Origin,
}

impl Dialing {
    /// Add the opened connection to the pool, with one stream taken by the caller.
    pub fn ready(
        self,
        handle: Handle,
        counters: Arc<IoCounters>,
        task: tokio::task::JoinHandle<()>,
    ) -> Lease {
        let streams = self.pool.streams;
        let limit = streams.min(handle.server_max_streams()).max(1);
        let conn = Arc::new(Pooled {
            handle,
            counters,
            in_flight: AtomicUsize::new(1),
            limit: AtomicUsize::new(limit),
            streams,
            released: AtomicUsize::new(0),
            task,
        });
        {
            let mut origins = self.pool.lock();
            let entry = origins.entry(self.origin.clone()).or_default();
            entry.expect = limit;
            entry.conns.push(conn.clone());
        }
        // `self` drops here: one fewer connection opening, and the waiters are woken.
        Lease { conn }
    }
}

impl Drop for Dialing {
    fn drop(&mut self) {
        {
            let mut origins = self.pool.lock();
            if let Some(e) = origins.get_mut(&self.origin) {
                e.dialing -= 1;
            }
        }
        self.pool.dialed.notify_waiters();
    }
}

/// A request waiting for a connection that another request is opening.
pub struct Waiting {
    pool: Arc<Pool>,
    origin: Origin,
    notified: std::pin::Pin<Box<tokio::sync::futures::OwnedNotified>>,
}

impl Waiting {
    /// Until a connection being opened is ready or failed.
    pub async fn wait(mut self) {
        self.notified.as_mut().await;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut origins = self.pool.lock();
        if let Some(e) = origins.get_mut(&self.origin) {
            e.waiting -= 1;
        }
    }
}

impl Pool {
    /// A pool that puts at most `streams` requests on a connection at once.
    pub fn new(streams: usize) -> Arc<Pool> {
        Arc::new(Pool {
            streams: streams.max(1),
            origins: Mutex::default(),
            dialed: Arc::new(Notify::new()),
            clients: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, Entry>> {
        // A panic while holding the lock leaves counts that are still consistent enough.
        self.origins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free stream to `origin`, or what to do to get one.
    pub fn take(self: &Arc<Self>, origin: &Origin) -> Take {
        let mut origins = self.lock();
        let entry = match origins.get_mut(origin) {
            Some(e) => e,
            None => origins.entry(origin.clone()).or_insert_with(|| Entry {
                expect: self.streams,
                ..Entry::default()
            }),
        };
        entry.conns.retain(|c| !c.handle.is_closed());
        if let Some(c) = entry.conns.iter().find(|c| c.try_take()) {
            return Take::Leased(Lease { conn: c.clone() });
        }
        if entry.waiting < entry.dialing * entry.expect {
            entry.waiting += 1;
            // Created under the lock: `notify_waiters` after the dial wakes it even if it
            // is first polled later.
            let notified = Box::pin(self.dialed.clone().notified_owned());
            return Take::Wait(Waiting {
                pool: self.clone(),
                origin: origin.clone(),
                notified,
            });
        }
        entry.dialing += 1;
        Take::Dial(Dialing {
            pool: self.clone(),
            origin: origin.clone(),
        })
    }

    /// Connections in the pool now (open or closing), over every origin.
    pub fn connections(&self) -> usize {
        self.lock().values().map(|e| e.conns.len()).sum()
    }

    /// A client that may use the pool was made.
    pub fn client_started(&self) {
        self.clients.fetch_add(1, Ordering::AcqRel);
    }

    /// A client went away; the last one closes the pooled connections.
    pub fn client_ended(&self) {
        if self.clients.fetch_sub(1, Ordering::AcqRel) == 1 {
            let drained: Vec<Arc<Pooled>> = self
                .lock()
                .values_mut()
                .flat_map(|e| e.conns.drain(..))
                .collect();
            drop(drained);
        }
    }
}
