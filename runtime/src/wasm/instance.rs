//! One running instance of a plugin: a `Store` with limits, and calls that cannot escape them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_sdk::{Batch, State};
use wasmtime::{Store, Trap};

use super::bindings::Operator;
use super::convert::{batch_from_wit, batch_to_wit, state_from_wit, state_to_wit};
use super::engine::WasmEngine;
use super::host::{HostState, OperatorMetrics};
use super::plugin::Plugin;

/// The sandbox limits of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Most linear memory, in bytes.
    pub memory: usize,
    /// Longest duration of one call.
    pub call_timeout: Duration,
}

/// A call that did not return normally. The instance must not be used again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// The class of a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin trapped (a panic, an invalid operation).
    Trap,
    /// The call ran past its deadline.
    Deadline,
    /// The plugin needed more memory than its limit.
    MemoryLimit,
    /// The instance could not be created.
    Instantiate,
    /// The plugin returned a batch whose spans point outside it.
    InvalidOutput,
}

/// What `process` returned: records to pass on, and input records refused (index, reason).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PluginOutput {
    pub batch: Batch,
    pub rejected: Vec<(u32, String)>,
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An instantiated plugin with its own store, memory limit and call deadline.
pub struct PluginInstance {
    store: Store<HostState>,
    operator: Operator,
    limits: InstanceLimits,
    deadline_ticks: u64,
}

impl PluginInstance {
    /// Instantiates `plugin` for the operator `name` (not yet initialised).
    pub fn new(
        plugin: &Plugin,
        name: Arc<str>,
        limits: InstanceLimits,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<PluginInstance, CallFailure> {
        let host = HostState::new(name, limits.memory, metrics);
        let mut store = Store::new(plugin.engine.engine(), host);
        store.limiter(|state| state);
        store.epoch_deadline_trap();
        let deadline_ticks = WasmEngine::deadline_ticks(limits.call_timeout);
        store.set_epoch_deadline(deadline_ticks);
        let operator = plugin.pre.instantiate(&mut store).map_err(|error| CallFailure {
            kind: FailureKind::Instantiate,
            message: format!("cannot instantiate the plugin: {}", super::plugin::root_cause(&error)),
        })?;
        Ok(PluginInstance { store, operator, limits, deadline_ticks })
    }

    /// While muted, the plugin's counters and gauges are not recorded (replayed calls).
    pub fn mute_metrics(&mut self, muted: bool) {
        self.store.data_mut().muted = muted;
    }

    /// Calls `init`; the inner error is the plugin refusing its configuration.
    pub fn init(&mut self, config_json: &str) -> Result<Result<(), String>, CallFailure> {
        self.call(|operator, store| operator.call_init(store, config_json))
    }

    /// Calls `process` on a batch.
    pub fn process(&mut self, batch: &Batch) -> Result<PluginOutput, CallFailure> {
        let input = batch_to_wit(batch);
        let output = self.call(|operator, store| operator.call_process(store, &input))?;
        let rejected = output.rejected.into_iter().map(|rejection| (rejection.index, rejection.reason)).collect();
        Ok(PluginOutput { batch: checked(batch_from_wit(output.batch))?, rejected })
    }

    /// Calls `on-watermark`.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<Batch, CallFailure> {
        let output = self.call(|operator, store| operator.call_on_watermark(store, watermark))?;
        checked(batch_from_wit(output))
    }

    /// Calls `snapshot`.
    pub fn snapshot(&mut self) -> Result<State, CallFailure> {
        self.call(|operator, store| operator.call_snapshot(store)).map(state_from_wit)
    }

    /// Calls `restore`; the inner error is the plugin refusing the state.
    pub fn restore(&mut self, state: &State) -> Result<Result<(), String>, CallFailure> {
        let state = state_to_wit(state);
        self.call(|operator, store| operator.call_restore(store, &state))
    }

    fn call<R>(&mut self, call: impl FnOnce(&Operator, &mut Store<HostState>) -> wasmtime::Result<R>) -> Result<R, CallFailure> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let state = self.store.data_mut();
        state.memory_refused = None;
        state.last_panic = None;
        call(&self.operator, &mut self.store).map_err(|error| self.classify(&error))
    }

    fn classify(&self, error: &wasmtime::Error) -> CallFailure {
        let state = self.store.data();
        if let Some(desired) = state.memory_refused {
            let message =
                format!("memory limit exceeded: the plugin asked for {} bytes, its limit is {} bytes", desired, self.limits.memory);
            return CallFailure { kind: FailureKind::MemoryLimit, message };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            let message = format!("deadline exceeded: the call ran longer than {:?}", self.limits.call_timeout);
            return CallFailure { kind: FailureKind::Deadline, message };
        }
        let trap = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => super::plugin::root_cause(error),
        };
        let message = match &state.last_panic {
            Some(panic) => format!("plugin trapped: {trap} ({panic})"),
            None => format!("plugin trapped: {trap}"),
        };
        CallFailure { kind: FailureKind::Trap, message }
    }
}

/// A batch from a plugin, refused if any span points outside it.
fn checked(batch: Batch) -> Result<Batch, CallFailure> {
    match batch.check() {
        Ok(()) => Ok(batch),
        Err(problem) => {
            Err(CallFailure { kind: FailureKind::InvalidOutput, message: format!("the plugin returned an invalid batch: {problem}") })
        }
    }
}
