//! Statsig as a target of guard actions and planned flips: `disable_gate` / `enable_gate`
//! through the Console API (`PUT /console/v1/gates/{id}/disable|enable`) and the gate's state
//! (`GET /console/v1/gates/{id}`, for `restore`). The client's retries apply (429 with
//! backoff and `Retry-After`, 5xx); its errors never hold the key.

use loadlens_core::actions::{GateFuture, GateTarget};

use super::api::Console;

/// The Console API client, lent to the run's actions.
#[derive(Debug, Clone)]
pub struct Gates {
    console: Console,
}

impl Gates {
    /// Switch gates through `console`.
    pub fn new(console: Console) -> Self {
        Gates { console }
    }
}

impl GateTarget for Gates {
    fn name(&self) -> &str {
        "statsig"
    }

    fn set_gate(&self, gate: &str, enable: bool, reason: &str) -> GateFuture<String> {
        let (console, gate, reason) = (self.console.clone(), gate.to_owned(), reason.to_owned());
        Box::pin(async move {
            let changed = if enable {
                console.enable_gate(&gate, &reason).await
            } else {
                console.disable_gate(&gate, &reason).await
            };
            changed
                .map(|c| {
                    format!(
                        "Statsig: gate {} is {}",
                        c.gate.id,
                        if c.gate.is_enabled {
                            "enabled"
                        } else {
                            "disabled"
                        }
                    )
                })
                .map_err(|e| e.to_string())
        })
    }

    fn gate_enabled(&self, gate: &str) -> GateFuture<bool> {
        let (console, gate) = (self.console.clone(), gate.to_owned());
        Box::pin(async move {
            console
                .get_gate(&gate)
                .await
                .map(|g| g.is_enabled)
                .map_err(|e| e.to_string())
        })
    }
}
