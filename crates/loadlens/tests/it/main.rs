//! End-to-end tests of the `loadlens` binary: real processes, real servers on 127.0.0.1:0.

mod browser;
mod cli;
mod credentials;
mod dashboard;
mod datadog;
mod demo;
mod ends_on_time;
mod faults;
mod headers;
mod integrations;
mod jsonl;
mod load_input;
mod named_scenarios;
mod otel;
mod otel_wire;
mod outputs;
mod profiles;
mod prometheus;
mod report;
mod scenario;
mod schema;
mod support;
mod traces;
mod tui;
mod web;
mod web_security;
