//! Everything that touches wasmtime: the engine, plugins, instances and their host functions.
//!
//! Nothing outside this module names a wasmtime type, so the sandbox has one boundary.

mod bindings;
mod boundary;
mod compiled_cache;
mod convert;
mod engine;
mod host;
mod inspect;
mod instance;
mod passed;
mod plugin;
mod records;

pub use convert::FieldIndexes;
pub use engine::{EPOCH_TICK, WasmEngine};
pub use host::{OperatorMetrics, log_escapes_control_characters, on_one_line};
pub use inspect::{ComponentDescription, describe_component};
pub use instance::{
    CallFailure, ENCODING_INDEXES_IN, ENCODING_WITH_FIELDS, FailureKind, InstanceLimits, PluginInstance, PluginOutput, state_deadline,
};
pub use plugin::{Digest, MAX_PLUGIN_BYTES, Plugin, PluginError, PluginRegistry, file_digest, read_plugin_file};
pub use records::{Records, batch_bytes_held};
pub use sluice_sdk::{Batch, Record, State};
