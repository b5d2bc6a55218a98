//! The `loadlens` binary: CLI, live views, demo target and wiring.
#![allow(dead_code)]
mod demo_target;

fn main() {}
