//! The `Operator` trait a plugin implements, and the `Output` it fills.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::sluice::plugin::types::Output as WitOutput;
use crate::{Batch, Distribution, Record, Rejection, State};

/// An operator: turns batches of records into records, keeping any state it needs.
///
/// `init`, `process` and `distribution` are required. The other defaults suit stateless
/// operators: no side outputs, `on_watermark` emits nothing, `snapshot` returns an empty
/// state and `restore` accepts only an empty state.
pub trait Operator: Sized + 'static {
    /// The operator's `config` table from the pipeline file. Use
    /// `#[serde(deny_unknown_fields)]` so that typos are reported to the user.
    type Config: DeserializeOwned;

    /// Builds the operator from its configuration; an error refuses the configuration.
    fn init(config: Self::Config) -> Result<Self, String>;

    /// Processes one batch in order: emit records and reject the ones that are invalid.
    /// [`Record::port`] says which of the operator's inputs a record arrived on.
    fn process(&mut self, batch: &Batch, out: &mut Output);

    /// How records must be spread over the operator's parallel instances (one per partition
    /// or core): [`Distribution::Any`] for stateless operators,
    /// `Distribution::Key(fields)` for state kept per group (the runtime then routes records
    /// with equal values at `fields` to one instance), [`Distribution::Single`] for state over
    /// the whole stream. Required, so that no operator's state is split by accident.
    fn distribution(&self) -> Distribution;

    /// Names of the operator's side outputs; [`Output::emit_to`] with port `i + 1` sends a
    /// record to `side_outputs()[i]` (port 0 is the main output). A pipeline reads them as
    /// `"node.name"`.
    fn side_outputs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Event time reached `watermark`: emit what is complete. The end of a bounded input
    /// passes `i64::MAX`.
    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        let _ = (watermark, out);
    }

    /// The whole state of the operator; see [`State::encode`].
    fn snapshot(&self) -> State {
        State::empty()
    }

    /// Replaces the state of a freshly initialised operator; see [`State::decode`].
    fn restore(&mut self, state: State) -> Result<(), String> {
        if state.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("this operator keeps no state but was given {} bytes of state version {}", state.bytes.len(), state.version))
        }
    }
}

/// Records produced by one `process` call, and the input records refused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Records to pass downstream, in order.
    pub batch: Batch,
    /// Input records refused, by position in the batch.
    pub rejected: Vec<Rejection>,
}

impl Output {
    /// Passes a copy of `record` downstream.
    pub fn emit(&mut self, record: Record<'_>) {
        self.batch.push_record(record);
    }

    /// Sends a copy of `record` to output `port` (0: the main output; `i + 1`: side output
    /// `i`, see [`Operator::side_outputs`]).
    pub fn emit_to(&mut self, port: u32, record: Record<'_>) {
        self.batch.push_record_to(port, record);
    }

    /// Sends `record` with its payload replaced by `value` as JSON to output `port`.
    pub fn emit_json_like_to(&mut self, port: u32, record: Record<'_>, value: &impl Serialize) {
        self.batch.push_json_like_to(port, record, value);
    }

    /// Sends a record whose payload is `value` as JSON to output `port`.
    pub fn emit_json_to(&mut self, port: u32, value: &impl Serialize, timestamp: i64) {
        self.batch.push_json_to(port, value, timestamp);
    }

    /// Passes downstream a record whose payload is `value` as JSON, with event time `timestamp`.
    pub fn emit_json(&mut self, value: &impl Serialize, timestamp: i64) {
        self.batch.push_json(value, timestamp);
    }

    /// Passes `record` downstream with its payload replaced by `value` as JSON.
    pub fn emit_json_like(&mut self, record: Record<'_>, value: &impl Serialize) {
        self.batch.push_json_like(record, value);
    }

    /// Refuses the input record at `index`: the runtime sends it to the dead-letter sink.
    pub fn reject(&mut self, index: usize, reason: impl Into<String>) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        self.rejected.push(Rejection { index, reason: reason.into() });
    }
}

impl From<Output> for WitOutput {
    fn from(output: Output) -> Self {
        WitOutput { batch: output.batch, rejected: output.rejected }
    }
}

impl Distribution {
    /// The distribution of state kept per group of `group_by` values: keyed by them, or, with
    /// no fields (one global group), a single instance.
    pub fn grouped_by(group_by: &[crate::FieldPath]) -> Distribution {
        if group_by.is_empty() { Distribution::Single } else { Distribution::Key(group_by.iter().map(ToString::to_string).collect()) }
    }
}
