//! Native tests of plugin logic: drive an operator as the runtime would, without Wasm.

use serde_json::Value;

use crate::glue::parse_config;
use crate::{Event, Operator, Output, State};

/// Runs one operator natively, through the same configuration path as the runtime.
pub struct Harness<O: Operator> {
    operator: O,
}

impl<O: Operator> Harness<O> {
    /// Initialises the operator from a JSON configuration (what the runtime passes).
    pub fn new(config: Value) -> Result<Self, String> {
        let config: O::Config = parse_config(&config.to_string())?;
        Ok(Harness { operator: O::init(config)? })
    }

    /// Calls `process` with `batch`.
    pub fn process(&mut self, batch: Vec<Event>) -> Output {
        let mut out = Output::default();
        self.operator.process(batch, &mut out);
        out
    }

    /// Calls `process` with JSON records, timestamps given.
    pub fn process_json(&mut self, records: &[(Value, i64)]) -> Output {
        self.process(records.iter().map(|(value, timestamp)| Event::from_json(value, *timestamp)).collect())
    }

    /// Calls `on_watermark`.
    pub fn watermark(&mut self, watermark: i64) -> Vec<Event> {
        let mut out = Vec::new();
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
        harness.operator.restore(state)?;
        Ok(harness)
    }

    /// The operator itself.
    pub fn operator(&mut self) -> &mut O {
        &mut self.operator
    }
}

/// The payloads of `events` parsed as JSON.
pub fn json_values(events: &[Event]) -> Vec<Value> {
    events.iter().map(|event| serde_json::from_slice(&event.value).unwrap_or(Value::Null)).collect()
}
