//! The generator's own health ([`Snapshot::health`]) as OTLP metrics, under the semantic
//! conventions' names where they have one:
//!
//! | metric | type | from |
//! |---|---|---|
//! | `process.cpu.utilization` (1) | gauge, 0–1 | `process_cpu_pct` / 100 |
//! | `process.memory.usage` (By) | gauge | `rss_bytes` (written by the encoder, which falls back on `/proc`) |
//! | `system.cpu.utilization` (1) | gauge, 0–1 | `machine_cpu_pct` / 100 |
//! | `system.network.io` (By) | counter, `network.io.direction` = `transmit`/`receive` | the per-second rates times each interval's length, summed |
//! | `loadtest.connections.open` ({connection}) | gauge | `open_connections` |
//! | `loadtest.scheduling.delay` (s) | gauge | `sched_delay_ms` / 1000 |
//!
//! Gauges carry the latest snapshot's figures; a figure the platform does not give (`None`)
//! has no point.

use loadlens_core::stats::{HealthSample, Snapshot};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint,
};

/// What the metrics need of the snapshots' health figures.
#[derive(Debug, Default)]
pub struct Health {
    latest: HealthSample,
    /// Bytes sent and received since the run started (`None` until a figure came).
    net: [Option<f64>; 2],
}

impl Health {
    /// Fold in one snapshot's health.
    pub fn fold(&mut self, s: &Snapshot) {
        let h = &s.health;
        let span = s.point.span_s;
        for (total, rate) in self
            .net
            .iter_mut()
            .zip([h.net_sent_bytes_per_s, h.net_received_bytes_per_s])
        {
            if let Some(r) = rate {
                *total = Some(total.unwrap_or(0.0) + r * span);
            }
        }
        self.latest = h.clone();
    }

    /// Resident memory in the latest snapshot.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.latest.rss_bytes
    }

    /// `system.network.io` totals: `(direction, bytes)`.
    pub fn network(&self) -> Vec<(&'static str, f64)> {
        ["transmit", "receive"]
            .into_iter()
            .zip(self.net)
            .filter_map(|(d, v)| Some((d, v?)))
            .collect()
    }

    /// The gauges, stamped `now`.
    pub fn gauges(&self, now: u64) -> Vec<Metric> {
        let h = &self.latest;
        let double = number_data_point::Value::AsDouble;
        let gauges = [
            (
                "process.cpu.utilization",
                "1",
                "CPU time of the load generator over the last interval, share of the CPUs it may use.",
                h.process_cpu_pct.map(|p| double(p / 100.0)),
            ),
            (
                "system.cpu.utilization",
                "1",
                "CPU busy time of the machine running the load generator over the last interval.",
                h.machine_cpu_pct.map(|p| double(p / 100.0)),
            ),
            (
                "loadtest.connections.open",
                "{connection}",
                "HTTP connections the load generator holds open.",
                h.open_connections
                    .map(|n| number_data_point::Value::AsInt(n as i64)),
            ),
            (
                "loadtest.scheduling.delay",
                "s",
                "How late the load generator's 1 s aggregation tick fired: its scheduling delay.",
                h.sched_delay_ms.map(|ms| double(ms / 1000.0)),
            ),
        ];
        gauges
            .into_iter()
            .filter_map(|(name, unit, desc, value)| {
                Some(Metric {
                    name: name.into(),
                    description: desc.into(),
                    unit: unit.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now,
                            value: Some(value?),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                })
            })
            .collect()
    }
}
