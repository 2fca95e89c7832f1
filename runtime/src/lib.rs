//! Sluice: a stream-processing runtime whose operators are sandboxed WebAssembly components.
//!
//! Reading order: [`config`] (pipeline files), [`graph`] (what reads what, and the stages
//! keyed exchanges cut it into), [`wasm`] (the sandbox), [`pipeline`] (tasks, supervised
//! operators, event time, checkpoints), [`source`], [`sink`] and [`kafka`] (connectors),
//! [`topology`] (how a pipeline's threads are wired and drained), and [`commands`] (what the
//! `sluice` binary does).

pub mod admin;
pub mod allocator;
pub mod bounded_read;
pub mod commands;
pub mod config;
pub mod develop;
pub mod event_time;
pub mod graph;
pub mod kafka;
pub mod monitor;
pub mod open_files;
pub mod pipeline;
pub mod reload;
pub mod sink;
pub mod source;
pub mod state_dir;
pub mod topology;
pub mod wasm;
