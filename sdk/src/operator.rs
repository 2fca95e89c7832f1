//! The `Operator` trait a plugin implements, and the `Output` it fills.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::sluice::plugin::types::Output as WitOutput;
use crate::{Batch, Distribution, Passed, Record, Rejection, State};

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
///
/// Records of the batch being processed that an operator passes on unchanged
/// ([`Output::emit`], [`Output::emit_to`]) are named by position in `passed` rather than copied
/// into `batch`, as long as nothing was added to `batch` before them: the runtime then takes
/// them from its own copy of the input, and they do not cross the sandbox's boundary again.
/// Downstream, the records of `passed` come first, then those of `batch`, so the order in which
/// they were emitted is kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Records to pass downstream, in order, after those of `passed`.
    pub batch: Batch,
    /// Input records refused, by position in the batch.
    pub rejected: Vec<Rejection>,
    /// Input records passed on unchanged, by position, before those of `batch`.
    pub passed: Vec<Passed>,
    /// The address of the batch being processed (0: none), to tell its records from others.
    input: usize,
    /// Its number of records: at most as many are passed by position (the runtime refuses
    /// more than its records times the operator's outputs); further emissions are copied.
    input_records: usize,
}

impl Output {
    /// The output of processing `input`: room for as many records and bytes as it holds (bytes
    /// up to [`crate::batch::RESERVED_BYTES_AT_MOST`]), and its records passed by position.
    pub fn for_input(input: &Batch) -> Output {
        Output {
            batch: Batch::with_room_of(input),
            rejected: Vec::new(),
            passed: Vec::new(),
            input: std::ptr::from_ref(input) as usize,
            input_records: input.len(),
        }
    }

    /// The same output with its passed records copied out of `input` (the batch processed)
    /// into `batch`, before the records already there: what the runtime makes of it.
    pub fn materialized(self, input: &Batch) -> Output {
        if self.passed.is_empty() {
            return Output { input: 0, input_records: 0, ..self };
        }
        let mut batch = Batch::new();
        for passed in &self.passed {
            if let Some(record) = input.get(passed.index as usize) {
                batch.push_record_to(passed.port, record);
            }
        }
        for record in self.batch.iter() {
            batch.push_record_to(record.port(), record);
        }
        Output { batch, rejected: self.rejected, passed: Vec::new(), input: 0, input_records: 0 }
    }

    /// Passes `record` downstream unchanged.
    pub fn emit(&mut self, record: Record<'_>) {
        self.emit_to(0, record);
    }

    /// Sends `record` unchanged to output `port` (0: the main output; `i + 1`: side output
    /// `i`, see [`Operator::side_outputs`]). A record of the batch being processed is passed
    /// by position while `batch` is empty and fewer records than the batch holds were passed
    /// (a record emitted twice, or to two outputs, may exceed that); any other is copied into
    /// `batch`, after them, so the order of emission is kept.
    pub fn emit_to(&mut self, port: u32, record: Record<'_>) {
        let passable =
            self.batch.is_empty() && self.input != 0 && record.batch_address() == self.input && self.passed.len() < self.input_records;
        match u32::try_from(record.index()) {
            Ok(index) if passable => self.passed.push(Passed { index, port }),
            _ => self.batch.push_record_to(port, record),
        }
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
        WitOutput { batch: output.batch, rejected: output.rejected, passed: output.passed }
    }
}

impl Distribution {
    /// The distribution of state kept per group of `group_by` values: keyed by them, or, with
    /// no fields (one global group), a single instance.
    pub fn grouped_by(group_by: &[crate::FieldPath]) -> Distribution {
        if group_by.is_empty() { Distribution::Single } else { Distribution::Key(group_by.iter().map(ToString::to_string).collect()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(values: &[&str]) -> Batch {
        let mut batch = Batch::new();
        for (time, value) in values.iter().enumerate() {
            batch.push(Some(b"k"), value.as_bytes(), time as i64, [(&b"h"[..], value.as_bytes())]);
        }
        batch
    }

    fn values(batch: &Batch) -> Vec<(u32, String)> {
        batch.iter().map(|record| (record.port(), String::from_utf8_lossy(record.value()).into_owned())).collect()
    }

    /// Records of the batch processed are passed by position until the operator adds a record
    /// of its own; from then on they are copied, so that the output keeps the order they were
    /// emitted in. Records of another batch are always copied.
    #[test]
    fn input_records_are_passed_by_position_while_nothing_was_added() {
        let input = batch_of(&["a", "b", "c"]);
        let other = batch_of(&["x"]);
        let mut out = Output::for_input(&input);
        out.emit(input.get(2).unwrap());
        out.emit_to(1, input.get(0).unwrap());
        out.emit(input.get(2).unwrap());
        assert_eq!(out.passed, vec![Passed { index: 2, port: 0 }, Passed { index: 0, port: 1 }, Passed { index: 2, port: 0 }]);
        assert!(out.batch.is_empty());
        out.emit(other.get(0).unwrap());
        out.emit(input.get(1).unwrap());
        assert_eq!(out.passed.len(), 3, "after a record of its own, input records are copied");
        let materialized = out.materialized(&input);
        assert!(materialized.passed.is_empty());
        let expected = [(0, "c"), (1, "a"), (0, "c"), (0, "x"), (0, "b")].map(|(port, value)| (port, value.to_owned()));
        assert_eq!(values(&materialized.batch), expected);
        let first = materialized.batch.get(1).unwrap();
        assert_eq!((first.key(), first.timestamp(), first.header("h")), (Some(&b"k"[..]), 0, Some(&b"a"[..])));

        let mut unattached = Output::default();
        unattached.emit(input.get(0).unwrap());
        assert!(unattached.passed.is_empty(), "an output not made for a batch copies every record");
        assert_eq!(values(&unattached.batch), vec![(0, "a".to_owned())]);
    }

    /// The runtime takes at most the batch's records times the operator's outputs by
    /// position: an operator that emits each record twice has the batch's worth passed and the
    /// rest copied, in the order emitted.
    #[test]
    fn no_more_records_are_passed_than_the_batch_holds() {
        let input = batch_of(&["a", "b", "c"]);
        let mut out = Output::for_input(&input);
        for record in input.iter() {
            out.emit(record);
            out.emit(record);
        }
        assert_eq!(out.passed.len(), 3, "as many as the batch holds");
        let expected = ["a", "a", "b", "b", "c", "c"].map(|value| (0, value.to_owned()));
        assert_eq!(values(&out.materialized(&input).batch), expected);
    }
}
