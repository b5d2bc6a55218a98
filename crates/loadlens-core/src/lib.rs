//! The engine of loadlens: scenario model and parsing, the compiled [`plan`], the HTTP
//! [`client`] with phase timings, the [`executor`] and its virtual users, HDR [`stats`], the
//! [`sink`] contract, and the end-of-run [`report`]s.
//!
//! Data flows as `docs/architecture.md` draws it: a [`scenario::Scenario`] compiles into a [`plan::Plan`];
//! the [`executor::Executor`] runs virtual users that send requests through their own
//! [`client::Client`] and record one [`sample::Sample`] each into per-thread shards; once a
//! second the aggregator builds a [`stats::Snapshot`] for live views and sinks; at the end a
//! [`report::Summary`] feeds every report.
//!
//! # Layers
//!
//! The modules form layers, listed bottom to top. A module imports from its own layer and the
//! layers below, never from a higher one (the test in `layers_tests.rs` reads this list and
//! checks every `crate::` path in the modules' code, tests aside):
//!
//! 1. [`duration`], [`encoding`], [`jsonpath`], [`feeder`], [`yaml`], [`wall`], [`prefetch`]:
//!    small shared helpers.
//! 2. [`run`], [`sample`], [`action`]: the run's identity, timeline and controls; one request's
//!    measurement; the model of guard actions and planned flips.
//! 3. [`stats`], [`breakdown`], [`client`]: HDR statistics and snapshots; where the time went
//!    (joined service spans); the HTTP client.
//! 4. [`health`], [`load`], [`template`]: the generator's own health; the load model; templates.
//! 5. [`inspect`], [`limits`], [`thresholds`]: checks and captures; load limits; thresholds.
//! 6. [`scenario`], [`loadspec`]: the scenario file's model (`loadspec` holds its load and
//!    thresholds sections, whose types and the scenario's nest in each other).
//! 7. [`plan`]: the compiled scenario.
//! 8. [`report`]: the summary and the reports.
//! 9. [`sink`], [`actions`]: the sink contract (sinks finish with the summary); the runner of
//!    guard actions and planned flips.
//! 10. [`executor`]: runs the plan, aggregates, feeds the sinks; re-exports the load and run
//!     types its callers use.
//!
//! ```no_run
//! use std::sync::Arc;
//! use loadlens_core::{client, executor, plan, report, run};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let plan = plan::Plan::single("http://127.0.0.1:8080/", http::Method::GET, Default::default(),
//!     &plan::PlanOptions::default())?;
//! let client = client::ClientShared::new(client::ClientConfig::default())?;
//! let info = run::RunInfo { id: run::generate_run_id(), scenario: plan.name.clone(), tags: Default::default() };
//! let load = executor::LoadSettings { users: 10,
//!     run_time: Some(std::time::Duration::from_secs(5)), ..Default::default() };
//! let mut out = executor::Executor::new(Arc::new(plan), load.clone(), client, info.clone())
//!     .run(executor::Controls::new()).await;
//! let summary = report::Summary::new(info, load, None, &mut out);
//! println!("{}", report::text::render(&summary));
//! # Ok(()) }
//! ```

pub mod action;
pub mod actions;
pub mod breakdown;
pub mod client;
pub mod duration;
pub mod encoding;
pub mod executor;
pub mod feeder;
pub mod health;
pub mod inspect;
pub mod jsonpath;
pub mod limits;
pub mod load;
pub mod loadspec;
pub mod plan;
pub mod prefetch;
pub mod report;
pub mod run;
pub mod sample;
pub mod scenario;
pub mod sink;
pub mod stats;
pub mod template;
pub mod thresholds;
pub mod wall;
pub mod yaml;

#[cfg(test)]
mod layers_tests;
#[cfg(test)]
pub(crate) mod testutil;
