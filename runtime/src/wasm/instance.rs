//! One running instance of a plugin: a `Store` with limits, and calls that cannot escape them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_sdk::{Batch, Distribution, InitContext, OperatorInfo, State};
use wasmtime::component::Func;
use wasmtime::{Store, Trap};

use super::bindings::Operator;
use super::boundary::{BatchArgument, BatchResult, OutputResult};
use super::convert::{FieldIndexes, context_to_wit, field_indexes_beside, info_from_wit, state_from_wit, state_to_wit};
use super::engine::WasmEngine;
use super::host::{HostState, OperatorMetrics};
use super::passed::{check_passed, output_records};
use super::plugin::Plugin;
use super::records::Records;
use crate::monitor::PluginMetrics;

/// The encoding of JSON text with each record's field index (WIT `event.fields`).
pub use sluice_sdk::fields::{ENCODING as ENCODING_WITH_FIELDS, ENCODING_INDEXES_IN};

/// The sandbox limits of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Most linear memory, in bytes.
    pub memory: usize,
    /// Longest duration of one call.
    pub call_timeout: Duration,
}

/// The least time an `init`, `on-watermark`, `snapshot` or `restore` call is given, whatever
/// `call_timeout`: they read a configuration and its granted files (an `enrich` table of
/// 1,000,000 rows), close windows of any number of groups, or encode or decode the whole
/// state, which grows with what the operator keeps (2,000,000 records of a join take seconds),
/// where `call_timeout` is sized for a batch. A loop is still stopped.
pub const STATE_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl InstanceLimits {
    /// The deadline of an `init`, `on-watermark`, `snapshot` or `restore` call.
    pub fn state_call_timeout(&self) -> Duration {
        state_deadline(self.call_timeout)
    }
}

/// The deadline of an `init`, `on-watermark`, `snapshot` or `restore` call of an operator
/// whose `call_timeout` is this: [`STATE_CALL_TIMEOUT`], or `call_timeout` if longer.
pub fn state_deadline(call_timeout: Duration) -> Duration {
    call_timeout.max(STATE_CALL_TIMEOUT)
}

/// Which deadline a call runs under.
#[derive(Clone, Copy)]
enum Deadline {
    /// `call_timeout`: `process`.
    Call,
    /// [`InstanceLimits::state_call_timeout`]: `init`, `on-watermark`, `snapshot`, `restore`.
    State,
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
    /// The plugin returned something the WIT contract does not allow: a batch whose spans
    /// point outside it, a record sent to an output it did not declare, an invalid
    /// `operator-info`.
    InvalidOutput,
}

/// What `process` returned: records to pass on, and input records refused (index, reason).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PluginOutput {
    pub batch: Records,
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
    /// `process` and `on-watermark`, called with the runtime's batches (see `boundary`).
    process: Func,
    on_watermark: Func,
    limits: InstanceLimits,
    deadline_ticks: u64,
    state_deadline_ticks: u64,
    /// How many side outputs `init` declared: output ports above this are invalid.
    side_outputs: u32,
    /// Whether the plugin reads records' field indexes (it chose "json+fields" at `init`).
    indexes: FieldIndexes,
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
        // What one call hands back is lifted into the host under wasmtime's "hostcall fuel"
        // (128 MiB by default), which refused results that a larger memory_limit allows: it
        // follows the memory the instance may use instead, twice over, since wasmtime charges
        // the host's size of each lifted element, not the guest's bytes.
        let fuel = limits.memory.saturating_mul(2).max(store.hostcall_fuel());
        store.set_hostcall_fuel(fuel);
        store.epoch_deadline_trap();
        let deadline_ticks = WasmEngine::deadline_ticks(limits.call_timeout);
        store.set_epoch_deadline(deadline_ticks);
        let cannot = |error: wasmtime::Error| CallFailure {
            kind: FailureKind::Instantiate,
            message: format!("cannot instantiate the plugin: {}", super::plugin::root_cause(&error)),
        };
        let instance = plugin.pre.instance_pre().instantiate(&mut store).map_err(|error| match store.data().memory_refused {
            // Its initial memory alone is over the limit: say so in the pipeline's terms.
            Some(needed) => CallFailure {
                kind: FailureKind::Instantiate,
                message: format!(
                    "cannot instantiate the plugin: its memory_limit ({}) is below the {} its memory starts with: raise memory_limit",
                    mebibytes(limits.memory),
                    mebibytes(needed)
                ),
            },
            None => cannot(error),
        })?;
        let operator = Operator::new(&mut store, &instance).map_err(cannot)?;
        let mut export =
            |name: &str| instance.get_func(&mut store, name).ok_or_else(|| cannot(wasmtime::format_err!("it exports no `{name}`")));
        let (process, on_watermark) = (export("process")?, export("on-watermark")?);
        Ok(PluginInstance {
            store,
            operator,
            process,
            on_watermark,
            limits,
            deadline_ticks,
            state_deadline_ticks: WasmEngine::deadline_ticks(limits.state_call_timeout()),
            side_outputs: 0,
            indexes: FieldIndexes::Absent,
        })
    }

    /// Warns of the plugin's log lines dropped and not yet counted, in the current second too:
    /// the operator's last instance ends (its task ends, a swap replaces it, its circuit opens).
    pub fn say_dropped_log_lines(&self) {
        self.store.data().say_dropped_log_lines(true);
    }

    /// The linear memory the instance holds (the most it ever needed), in bytes.
    pub fn memory_in_use(&self) -> usize {
        self.store.data().memory_in_use
    }

    /// While muted, the plugin's counters and gauges are not recorded (replayed calls).
    pub fn mute_metrics(&mut self, muted: bool) {
        self.store.data_mut().muted = muted;
    }

    /// While replaying (the journal, after a recovery), the plugin's counters and gauges are
    /// not recorded and its log lines not written: the calls did both the first time.
    pub fn replaying(&mut self, replaying: bool) {
        self.mute_metrics(replaying);
        self.store.data_mut().replaying = replaying;
    }

    /// Also reports the plugin's counters and gauges to `metrics` (one series per task).
    pub fn report_to(&mut self, metrics: PluginMetrics) {
        self.store.data_mut().task_metrics = Some(metrics);
    }

    /// Calls `init`; the inner error is the plugin refusing its configuration. What the
    /// plugin declares about itself is checked against the contract.
    pub fn init(&mut self, config_json: &str, context: &InitContext) -> Result<Result<OperatorInfo, String>, CallFailure> {
        let result = self.init_call(config_json, context);
        self.settled(result)
    }

    fn init_call(&mut self, config_json: &str, context: &InitContext) -> Result<Result<OperatorInfo, String>, CallFailure> {
        let context_wit = context_to_wit(context);
        // Like a restore, an init may read much (a table of a million rows from a granted file).
        let answer = self.call_within(Deadline::State, |operator, store| operator.call_init(store, config_json, &context_wit))?;
        let Ok(info) = answer else { return Ok(answer.map(info_from_wit)) };
        let info = checked_info(info_from_wit(info), context)?;
        self.side_outputs = u32::try_from(info.outputs.len()).unwrap_or(u32::MAX);
        self.indexes = FieldIndexes::of_encoding(&info.encoding);
        Ok(Ok(info))
    }

    /// Calls `process` on a batch that arrived on `input`.
    pub fn process(&mut self, input: u32, records: &Records) -> Result<PluginOutput, CallFailure> {
        let result = self.process_call(input, records);
        self.settled(result)
    }

    fn process_call(&mut self, input: u32, records: &Records) -> Result<PluginOutput, CallFailure> {
        let lacks_indexes = self.indexes.read() && records.events().iter().any(|event| event.fields.is_none());
        // Indexes are built beside a whole batch: a selection lacking them is copied first.
        let copied;
        let records = match records {
            Records::Selected { .. } if lacks_indexes => {
                copied = Records::Whole(records.to_batch());
                &copied
            }
            _ => records,
        };
        let indexes = lacks_indexes.then(|| field_indexes_beside(records.base()));
        let argument = match &indexes {
            Some(indexes) => BatchArgument::indexed(records.base(), indexes),
            None => BatchArgument::of_records(records.base(), records.events(), self.indexes.read()),
        };
        let process = self.process;
        let (output,) =
            self.call(|_, store| process.typed::<(u32, BatchArgument<'_>), (OutputResult,)>(&*store)?.call(store, (input, argument)))?;
        let rejected: Vec<(u32, String)> =
            output.rejected.into_iter().map(|rejection| (rejection.index, super::host::truncate(rejection.reason))).collect();
        checked_rejections(&rejected, records.len())?;
        let returned = self.checked(self.returned(output.batch))?;
        check_passed(&output.passed, records.len(), self.side_outputs, &rejected).map_err(invalid_batch)?;
        Ok(PluginOutput { batch: output_records(records, indexes.as_ref(), &output.passed, returned), rejected })
    }

    /// Calls `on-watermark`.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<Batch, CallFailure> {
        let result = self.on_watermark_call(watermark);
        self.settled(result)
    }

    fn on_watermark_call(&mut self, watermark: i64) -> Result<Batch, CallFailure> {
        let on_watermark = self.on_watermark;
        // A watermark may close a window of millions of groups at once: its work grows with
        // the state, as a snapshot's does.
        let (output,) =
            self.call_within(Deadline::State, |_, store| on_watermark.typed::<(i64,), (BatchResult,)>(&*store)?.call(store, (watermark,)))?;
        self.checked(self.returned(output))
    }

    /// A batch the plugin returned, as the runtime's: its indexes dropped unless the plugin
    /// writes them.
    fn returned(&self, batch: BatchResult) -> Batch {
        batch.into_batch(self.indexes == FieldIndexes::Built)
    }

    /// A batch from the plugin, refused if any span points outside it or a record goes to an
    /// output the plugin did not declare.
    fn checked(&self, batch: Batch) -> Result<Batch, CallFailure> {
        batch.check().map_err(invalid_batch)?;
        match batch.events.iter().position(|event| event.port > self.side_outputs) {
            Some(index) => Err(invalid_batch(format!(
                "record {index} goes to output {}, but the plugin declared {} side output(s)",
                batch.events[index].port, self.side_outputs
            ))),
            None => Ok(batch),
        }
    }

    /// Calls `snapshot`.
    pub fn snapshot(&mut self) -> Result<State, CallFailure> {
        let result = self.snapshot_call();
        self.settled(result)
    }

    fn snapshot_call(&mut self) -> Result<State, CallFailure> {
        self.call_within(Deadline::State, |operator, store| operator.call_snapshot(store)).map(state_from_wit)
    }

    /// Calls `restore`; the inner error is the plugin refusing the state.
    pub fn restore(&mut self, state: &State) -> Result<Result<(), String>, CallFailure> {
        let result = self.restore_call(state);
        self.settled(result)
    }

    fn restore_call(&mut self, state: &State) -> Result<Result<(), String>, CallFailure> {
        let state = state_to_wit(state);
        self.call_within(Deadline::State, |operator, store| operator.call_restore(store, &state))
    }

    /// A call's result, its counter additions recorded if it succeeded (and checked).
    fn settled<R>(&mut self, result: Result<R, CallFailure>) -> Result<R, CallFailure> {
        self.store.data_mut().settle_counters(result.is_ok());
        result
    }

    fn call<R>(&mut self, call: impl FnOnce(&Operator, &mut Store<HostState>) -> wasmtime::Result<R>) -> Result<R, CallFailure> {
        self.call_within(Deadline::Call, call)
    }

    fn call_within<R>(
        &mut self,
        deadline: Deadline,
        call: impl FnOnce(&Operator, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        self.store.set_epoch_deadline(match deadline {
            Deadline::Call => self.deadline_ticks,
            Deadline::State => self.state_deadline_ticks,
        });
        let state = self.store.data_mut();
        state.memory_refused = None;
        state.last_panic = None;
        call(&self.operator, &mut self.store).map_err(|error| self.classify(&error, deadline))
    }

    fn classify(&self, error: &wasmtime::Error, deadline: Deadline) -> CallFailure {
        let state = self.store.data();
        if let Some(desired) = state.memory_refused {
            let message = format!(
                "memory limit exceeded: the plugin asked for {desired} bytes, its limit is {} bytes (the operator's memory_limit)",
                self.limits.memory
            );
            return CallFailure { kind: FailureKind::MemoryLimit, message };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            let limit = match deadline {
                Deadline::Call => self.limits.call_timeout,
                Deadline::State => self.limits.state_call_timeout(),
            };
            let message = format!("deadline exceeded: the call ran longer than {limit:?}");
            return CallFailure { kind: FailureKind::Deadline, message };
        }
        let trap = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => super::plugin::root_cause(error),
        };
        let message = match &state.last_panic {
            Some(panic) => format!("plugin trapped: {trap} ({panic})"),
            // The guest said nothing before it stopped: say what usually does that.
            None if error.downcast_ref::<Trap>() == Some(&Trap::UnreachableCodeReached) => format!(
                "plugin trapped: {trap} (without a message: in Python or JavaScript often a function that returned nothing, or \
                 a value of another shape than the WIT's, or in Python a module imported after the build, inside a function or \
                 on first use (docs/languages.md, \"The sandbox stays closed\"); in Rust or C an abort)"
            ),
            None => format!("plugin trapped: {trap}"),
        };
        CallFailure { kind: FailureKind::Trap, message }
    }
}

/// Rejections refused unless each names a record of the input batch, once: a rejection
/// outside the batch would otherwise vanish, and one given twice would dead-letter a record twice.
/// The failure of a call that returned a batch the contract does not allow, and why.
fn invalid_batch(problem: String) -> CallFailure {
    CallFailure { kind: FailureKind::InvalidOutput, message: format!("the plugin returned an invalid batch: {problem}") }
}

fn checked_rejections(rejected: &[(u32, String)], batch_len: usize) -> Result<(), CallFailure> {
    let mut seen = std::collections::HashSet::new();
    for (index, _) in rejected {
        let problem = if *index as usize >= batch_len {
            format!("it rejected record {index}, but the batch it was given has {batch_len} record(s)")
        } else if !seen.insert(*index) {
            format!("it rejected record {index} twice")
        } else {
            continue;
        };
        let message = format!("the plugin returned an invalid result from process: {problem}");
        return Err(CallFailure { kind: FailureKind::InvalidOutput, message });
    }
    Ok(())
}

/// What `init` declared, refused unless it keeps to the contract: side outputs named like
/// nodes and distinct, key fields that are field paths, an encoding the runtime offered.
fn checked_info(info: OperatorInfo, context: &InitContext) -> Result<OperatorInfo, CallFailure> {
    let problem = info_problem(&info, context);
    match problem {
        None => Ok(info),
        Some(problem) => {
            Err(CallFailure { kind: FailureKind::InvalidOutput, message: format!("init returned an invalid operator-info: {problem}") })
        }
    }
}

fn info_problem(info: &OperatorInfo, context: &InitContext) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for output in &info.outputs {
        if let Err(problem) = crate::config::Name::try_from(output.clone()) {
            return Some(format!("side output {problem}"));
        }
        if !seen.insert(output) {
            return Some(format!("side output \"{output}\" is declared twice"));
        }
    }
    if let Distribution::Key(fields) = &info.distribution {
        if fields.is_empty() {
            return Some("a key distribution needs at least one field (use `single` for state over the whole stream)".into());
        }
        if let Some(problem) = fields.iter().find_map(|field| sluice_sdk::FieldPath::parse(field).err()) {
            return Some(format!("key {problem}"));
        }
    }
    if !context.encodings.contains(&info.encoding) {
        return Some(format!("encoding {:?} was not offered (offered: {})", info.encoding, context.encodings.join(", ")));
    }
    None
}

/// `bytes` for messages: `12.4 MiB`, or `64 KiB` below a MiB.
fn mebibytes(bytes: usize) -> String {
    match bytes {
        0..0x10_0000 => format!("{} KiB", bytes.div_ceil(1024)),
        _ => format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20)),
    }
}
