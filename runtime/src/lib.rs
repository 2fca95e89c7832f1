//! Sluice: a stream-processing runtime whose operators are sandboxed WebAssembly components.
//!
//! Reading order: [`config`] (pipeline files), [`wasm`] (the sandbox), [`source`] and
//! [`sink`] (connectors), [`pipeline`] (tasks, supervised operators, watermarks), and
//! [`commands`] (what the `sluice` binary does).

pub mod admin;
pub mod commands;
pub mod config;
pub mod develop;
pub mod kafka;
pub mod pipeline;
pub mod reload;
pub mod sink;
pub mod source;
pub mod state_dir;
pub mod wasm;
