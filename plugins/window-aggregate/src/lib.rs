//! `window-aggregate`: aggregates JSON records per event-time window and group.
//!
//! ```toml
//! [operators.config]
//! window = { type = "tumbling", size = "10s" }
//! group_by = ["category"]                       # dotted paths; none = one global group
//! aggregates = [
//!   { function = "sum", field = "price", as = "revenue" },
//!   { function = "count", as = "orders" },
//! ]
//! late = "drop"                                 # records for closed windows: "drop" or "reject"
//! ```
//! A window's results are emitted once, when the watermark passes its end, as one record
//! per group: `{"window_start", "window_end", <group fields>, <aggregates>}` with event time
//! `window_end - 1`, in order of window start, then group.

mod aggregate;
mod windows;

use serde::Deserialize;
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::{Batch, FieldPath, Millis, Operator, Output, Record};

pub use aggregate::{Accumulator, AggregateConfig, Function};
pub use windows::{OpenWindows, WindowKey};

/// The `config` table of a window-aggregate operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowAggregateConfig {
    pub window: WindowConfig,
    #[serde(default)]
    pub group_by: Vec<FieldPath>,
    pub aggregates: Vec<AggregateConfig>,
    #[serde(default)]
    pub late: LatePolicy,
}

/// The window shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WindowConfig {
    /// Fixed-size, non-overlapping windows aligned on the Unix epoch.
    Tumbling { size: Millis },
}

/// What happens to a record whose window was already emitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatePolicy {
    /// Dropped and counted in the `late_dropped` metric.
    #[default]
    Drop,
    /// Sent to the dead-letter sink with the reason.
    Reject,
}

/// A running window aggregation.
pub struct WindowAggregate {
    size: i64,
    group_by: Vec<FieldPath>,
    aggregates: Vec<AggregateConfig>,
    /// Every field to read from a record: group fields first, then aggregate fields.
    lookups: Vec<FieldPath>,
    late: LatePolicy,
    windows: OpenWindows,
    /// The group key being built, reused across records.
    group: String,
}

impl Operator for WindowAggregate {
    type Config = WindowAggregateConfig;

    fn init(config: WindowAggregateConfig) -> Result<Self, String> {
        let WindowConfig::Tumbling { size } = config.window;
        if size.0 <= 0 {
            return Err("window.size must be positive".into());
        }
        if config.aggregates.is_empty() {
            return Err("`aggregates` is empty: name at least one, such as { function = \"count\" }".into());
        }
        for aggregate in &config.aggregates {
            aggregate.check()?;
        }
        let lookups = config.group_by.iter().cloned().chain(config.aggregates.iter().filter_map(|a| a.field.clone())).collect();
        Ok(WindowAggregate {
            size: size.0,
            group_by: config.group_by,
            aggregates: config.aggregates,
            lookups,
            late: config.late,
            windows: OpenWindows::default(),
            group: String::new(),
        })
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut late_dropped = 0;
        for record in batch.iter() {
            match self.add(record) {
                Ok(()) => {}
                Err(Refusal::Late(_)) if self.late == LatePolicy::Drop => late_dropped += 1,
                Err(Refusal::Late(reason) | Refusal::Invalid(reason)) => out.reject(record.index(), reason),
            }
        }
        if late_dropped > 0 {
            sluice_sdk::host::counter_add("late_dropped", late_dropped);
        }
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        for (key, groups) in self.windows.close_until(watermark) {
            for (group, accumulators) in groups {
                out.push_json(&self.result(&key, &group, &accumulators), key.end - 1);
            }
        }
        sluice_sdk::host::gauge_set("open_windows", self.windows.len() as f64);
    }

    sluice_sdk::state_in!(windows);
}

enum Refusal {
    Late(String),
    Invalid(String),
}

impl WindowAggregate {
    fn add(&mut self, record: Record<'_>) -> Result<(), Refusal> {
        let key = WindowKey::containing(record.timestamp(), self.size);
        if let Some(closed_at) = self.windows.closed_for(&key) {
            return Err(Refusal::Late(format!(
                "late record: event time {} belongs to window [{}, {}) already closed by watermark {closed_at}",
                record.timestamp(),
                key.start,
                key.end
            )));
        }
        let values = record.raw_fields(&self.lookups).map_err(Refusal::Invalid)?;
        let (group_values, field_values) = values.split_at(self.group_by.len());
        let mut fields = field_values.iter();
        let mut inputs = Vec::with_capacity(self.aggregates.len());
        for aggregate in &self.aggregates {
            let value = if aggregate.field.is_some() { fields.next().copied().flatten() } else { None };
            inputs.push(aggregate.input(value).map_err(Refusal::Invalid)?);
        }
        let mut group = std::mem::take(&mut self.group);
        write_group_key(&mut group, group_values);
        let aggregates = &self.aggregates;
        let accumulators = self.windows.group(key, &group, || aggregates.iter().map(AggregateConfig::accumulator).collect());
        for (accumulator, input) in accumulators.iter_mut().zip(inputs) {
            accumulator.add(input);
        }
        self.group = group;
        Ok(())
    }

    /// The result record of one group in one window.
    fn result(
        &self,
        key: &WindowKey,
        group: &str,
        accumulators: &[Accumulator],
    ) -> sluice_sdk::serde_json::Map<String, sluice_sdk::serde_json::Value> {
        let mut record = sluice_sdk::serde_json::Map::new();
        record.insert("window_start".into(), key.start.into());
        record.insert("window_end".into(), key.end.into());
        let group_values: Vec<sluice_sdk::serde_json::Value> = sluice_sdk::serde_json::from_str(group).unwrap_or_default();
        for (path, value) in self.group_by.iter().zip(group_values) {
            record.insert(path.to_string(), value);
        }
        for (aggregate, accumulator) in self.aggregates.iter().zip(accumulators) {
            record.insert(aggregate.output_name(), accumulator.result());
        }
        record
    }
}

/// Writes the group of a record into `key`: its group-field values as a JSON array
/// (absent fields are null). Values are canonical, so that `1.0` and `1`, or an escaped and
/// a plain spelling of a string, fall into the same group.
fn write_group_key(key: &mut String, values: &[Option<&RawValue>]) {
    key.clear();
    key.push('[');
    for (position, value) in values.iter().enumerate() {
        if position > 0 {
            key.push(',');
        }
        match value {
            Some(raw) if sluice_sdk::json::raw_plain_str(raw).is_some() => key.push_str(raw.get()),
            Some(raw) => key.push_str(&canonical(raw)),
            None => key.push_str("null"),
        }
    }
    key.push(']');
}

fn canonical(raw: &RawValue) -> String {
    match sluice_sdk::serde_json::from_str::<sluice_sdk::serde_json::Value>(raw.get()) {
        Ok(sluice_sdk::serde_json::Value::Number(number)) => match number.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => (x as i64).to_string(),
            _ => number.to_string(),
        },
        Ok(value) => value.to_string(),
        Err(_) => raw.get().to_owned(),
    }
}

sluice_sdk::export_operator!(WindowAggregate);

#[cfg(test)]
mod tests;
