//! One virtual user: its client (connections, cookies), its random stream, and the steps of its
//! life — start (`on_start`), iterations (one task each), think time, stop (`on_stop`). The
//! closed model drives them in a loop ([`Vu::run`]); other load models call the steps directly.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::client::Client;
use crate::plan::RequestPlan;
use crate::sample::{ErrorKind, Failure, Sample};

/// A virtual user.
pub(super) struct Vu {
    pub user_type: usize,
    pub client: Client,
    pub rng: fastrand::Rng,
}

impl Vu {
    pub fn new(shared: &Shared, id: u64) -> Self {
        Vu {
            user_type: shared.plan.user_type_for(id),
            client: Client::new(shared.client.clone()),
            rng: fastrand::Rng::with_seed(shared.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        }
    }

    /// Closed model: start, iterate with think time until `stop` fires or the iteration budget
    /// is spent, then stop.
    pub async fn run(mut self, shared: Arc<Shared>, stop: CancellationToken) {
        shared.users.fetch_add(1, Ordering::Relaxed);
        self.start(&shared).await;
        while !stop.is_cancelled() && shared.take_iteration() {
            self.iteration(&shared, None, &stop).await;
            if !self.think(&shared, &stop).await {
                break;
            }
        }
        self.stop(&shared).await;
        shared.users.fetch_sub(1, Ordering::Relaxed);
    }

    /// Run the user type's `on_start` steps.
    pub async fn start(&mut self, shared: &Shared) {
        let plan = shared.plan.clone();
        for step in &plan.user_types[self.user_type].on_start {
            self.request(shared, step, None).await;
        }
    }

    /// Run the user type's `on_stop` steps.
    pub async fn stop(&mut self, shared: &Shared) {
        let plan = shared.plan.clone();
        for step in &plan.user_types[self.user_type].on_stop {
            self.request(shared, step, None).await;
        }
    }

    /// One iteration: pick a task by weight and run its steps. `intended` is the time the
    /// iteration was scheduled for (open model): the first request's latency is measured from
    /// it, so queueing in the generator is not hidden (coordinated omission).
    pub async fn iteration(
        &mut self,
        shared: &Shared,
        intended: Option<Instant>,
        stop: &CancellationToken,
    ) {
        let plan = shared.plan.clone();
        let task = plan.user_types[self.user_type].pick(&mut self.rng);
        let mut intended = intended;
        for step in &task.steps {
            self.request(shared, step, intended.take()).await;
            if stop.is_cancelled() {
                break;
            }
        }
    }

    /// Think time between iterations; false when `stop` fired while waiting.
    pub async fn think(&mut self, shared: &Shared, stop: &CancellationToken) -> bool {
        let wait = shared.plan.user_types[self.user_type]
            .wait
            .next(&mut self.rng);
        if wait.is_zero() {
            return !stop.is_cancelled();
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = stop.cancelled() => false,
        }
    }

    /// Send one request and record its sample.
    async fn request(&mut self, shared: &Shared, step: &RequestPlan, intended: Option<Instant>) {
        let out = self.client.send(&step.request).await;
        let (status, failure) = match &out.result {
            Ok(r) => {
                let code = r.status.as_u16();
                let failure = (code >= 400).then(|| {
                    Failure::new(
                        ErrorKind::Status,
                        format!(
                            "HTTP {} {}",
                            code,
                            r.status.canonical_reason().unwrap_or("")
                        )
                        .trim_end()
                        .to_owned(),
                    )
                });
                (Some(code), failure)
            }
            Err(f) => (None, Some(f.clone())),
        };
        // Open model: the wait between the intended and the actual start counts as latency.
        let schedule_delay = intended.map_or(std::time::Duration::ZERO, |t| {
            out.started.saturating_duration_since(t)
        });
        let sample = Sample {
            name: step.name,
            started_at: out.started_at,
            total: out.total + schedule_delay,
            schedule_delay,
            phases: out.phases,
            status,
            bytes_sent: out.bytes_sent,
            bytes_received: out.bytes_received,
            content_length: out.content_length,
            new_connection: out.new_connection,
            failure,
            trace: None,
        };
        shared.recorder.record(&sample);
        for tap in &shared.taps {
            tap.offer(&sample);
        }
    }
}
