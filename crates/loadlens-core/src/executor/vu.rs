//! One virtual user: its client (connections, cookies), its random stream, and the loop that
//! picks tasks, sends requests, records samples and waits.

use std::sync::atomic::Ordering;
use std::sync::Arc;

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

    /// Run until `stop` (graceful) fires or the iteration budget is spent.
    pub async fn run(mut self, shared: Arc<Shared>, stop: CancellationToken) {
        shared.users.fetch_add(1, Ordering::Relaxed);
        let plan = shared.plan.clone();
        let ut = &plan.user_types[self.user_type];
        for step in &ut.on_start {
            self.request(&shared, step).await;
        }
        while !stop.is_cancelled() && shared.take_iteration() {
            let task = ut.pick(&mut self.rng);
            for step in &task.steps {
                self.request(&shared, step).await;
                if stop.is_cancelled() {
                    break;
                }
            }
            let wait = ut.wait.next(&mut self.rng);
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        for step in &ut.on_stop {
            self.request(&shared, step).await;
        }
        shared.users.fetch_sub(1, Ordering::Relaxed);
    }

    /// Send one request and record its sample.
    async fn request(&mut self, shared: &Shared, step: &RequestPlan) {
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
        let sample = Sample {
            name: step.name,
            started_at: out.started_at,
            total: out.total,
            schedule_delay: std::time::Duration::ZERO,
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
