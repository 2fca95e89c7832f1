//! Integration tests of the runtime with real plugin components, files and processes.

mod batching;
mod broker;
mod cli;
mod containment;
mod deploy;
mod docs;
mod exactly_once;
mod exchange;
mod fuzz;
mod golden;
mod hardening;
mod invalid;
mod kafka;
mod languages;
mod learning;
mod monitoring;
mod nexmark;
mod operators;
mod resume;
mod soak;
mod support;
mod swap;
