//! The engine of loadlens: scenario model and parsing, the compiled [`plan`], the HTTP
//! [`client`] with phase timings, the [`executor`] and its virtual users, HDR [`stats`], the
//! [`sink`] contract, and the end-of-run [`report`]s.
//!
//! Data flows as DESIGN.md draws it: a [`scenario::Scenario`] compiles into a [`plan::Plan`];
//! the [`executor::Executor`] runs virtual users that send requests through their own
//! [`client::Client`] and record one [`sample::Sample`] each into per-thread shards; once a
//! second the aggregator builds a [`stats::Snapshot`] for live views and sinks; at the end a
//! [`report::Summary`] feeds every report.
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

pub mod client;
pub mod duration;
pub mod encoding;
pub mod executor;
pub mod feeder;
pub mod inspect;
pub mod jsonpath;
pub mod limits;
pub mod loadspec;
pub mod plan;
pub mod report;
pub mod run;
pub mod sample;
pub mod scenario;
pub mod sink;
pub mod stats;
pub mod template;
pub mod thresholds;

#[cfg(test)]
pub(crate) mod testutil;
