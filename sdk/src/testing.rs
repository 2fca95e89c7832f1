//! Native tests of plugin logic: drive an operator as the runtime would, without Wasm.

use serde_json::Value;

use crate::glue::parse_config;
use crate::{Batch, InitContext, Operator, OperatorInfo, Output, State};

/// Runs one operator natively, through the same configuration path as the runtime.
pub struct Harness<O: Operator> {
    operator: O,
}

impl<O: Operator> Harness<O> {
    /// Initialises the operator from a JSON configuration (what the runtime passes), with
    /// one input (see [`crate::context::default_context`]).
    pub fn new(config: Value) -> Result<Self, String> {
        Self::with_context(config, crate::context::default_context())
    }

    /// Initialises the operator from a JSON configuration and the context the runtime would
    /// give it (its inputs, for an operator that reads several).
    pub fn with_context(config: Value, context: InitContext) -> Result<Self, String> {
        crate::context::set(context);
        let config: O::Config = parse_config(&config.to_string())?;
        Ok(Harness { operator: O::init(config)? })
    }

    /// What the operator declares to the runtime (side outputs, distribution, encoding).
    pub fn info(&self) -> OperatorInfo {
        crate::glue::info_of(&self.operator)
    }

    /// Calls `process` with `batch` (arrived on input 0), its records indexed as the runtime
    /// indexes them for an operator of the Rust SDK (encoding "json+fields"). The records it
    /// passed on by position are in the output's `batch`, first, as the runtime passes them.
    ///
    /// Panics where the runtime would refuse the output: more records passed by position than
    /// the batch's records times the operator's outputs.
    pub fn process(&mut self, batch: &Batch) -> Output {
        let mut indexed = batch.clone();
        crate::fields::index_batch(&mut indexed);
        let mut out = Output::for_input(&indexed);
        self.operator.process(&indexed, &mut out);
        let outputs = self.operator.side_outputs().len() + 1;
        assert!(
            out.passed.len() <= indexed.len() * outputs,
            "the operator passes {} records on by position, more than its {} input record(s) times its {outputs} output(s): \
             the runtime refuses such an output (copy the records past that into `out.batch`)",
            out.passed.len(),
            indexed.len()
        );
        out.materialized(&indexed)
    }

    /// Calls `process` with `batch` as arrived on `input` (the index of one of the
    /// operator's inputs), as the runtime does.
    pub fn process_from(&mut self, input: u32, batch: &Batch) -> Output {
        let mut marked = batch.clone();
        marked.set_port(input);
        self.process(&marked)
    }

    /// Calls `process` with JSON records, timestamps given.
    pub fn process_json(&mut self, records: &[(Value, i64)]) -> Output {
        self.process(&json_batch(records))
    }

    /// Calls `on_watermark`.
    pub fn watermark(&mut self, watermark: i64) -> Batch {
        let mut out = Batch::new();
        self.operator.on_watermark(watermark, &mut out);
        out
    }

    /// Snapshots the operator.
    pub fn snapshot(&self) -> State {
        self.operator.snapshot()
    }

    /// Builds a fresh operator with `config` and restores `state` into it.
    pub fn restored(config: Value, state: State) -> Result<Self, String> {
        let mut harness = Self::new(config)?;
        // As in a plugin: no state is not handed to the operator (`State::is_empty`).
        if !state.is_empty() {
            harness.operator.restore(state)?;
        }
        Ok(harness)
    }

    /// The operator itself.
    pub fn operator(&mut self) -> &mut O {
        &mut self.operator
    }
}

/// A batch of JSON records with the given timestamps.
pub fn json_batch(records: &[(Value, i64)]) -> Batch {
    let mut batch = Batch::new();
    for (value, timestamp) in records {
        batch.push_json(value, *timestamp);
    }
    batch
}

/// The payloads of `batch` parsed as JSON (`null` where a payload is not JSON).
pub fn json_values(batch: &Batch) -> Vec<Value> {
    batch.iter().map(|record| serde_json::from_slice(record.value()).unwrap_or(Value::Null)).collect()
}
