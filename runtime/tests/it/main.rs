//! Integration tests of the runtime with real plugin components, files and processes.

mod batching;
mod cli;
mod containment;
mod golden;
mod invalid;
mod languages;
mod operators;
mod support;
mod swap;
