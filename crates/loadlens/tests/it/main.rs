//! End-to-end tests of the `loadlens` binary: real processes, real servers on 127.0.0.1:0.

mod cli;
mod demo;
mod schema;
mod support;
