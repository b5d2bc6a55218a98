//! Statsig: feature-gate and config changes on the run's timeline, and the Console API client
//! that guard actions use to turn a gate off or on.
//!
//! [`api`] is the Console API client (`https://statsigapi.net`, version `20240601`): gates
//! (read, enable, disable), dynamic configs (read) and the audit log, with Statsig's retry
//! guidance for 429 and bounded retries for 5xx. The key lives in a [`Secret`] and never
//! reaches a message.

pub mod api;
pub mod gates;

pub use api::{
    ApiError, AuditLog, AuditPage, Console, ConsoleConfig, Deadline, DynamicConfig, Gate,
    GateChange, Pagination, Secret, API_VERSION, DEFAULT_BASE_URL,
};
