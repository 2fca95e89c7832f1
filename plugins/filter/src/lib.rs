//! `filter`: keeps the records whose JSON fields satisfy every (or any) predicate.
//!
//! ```toml
//! [operators.config]
//! field = "event_type"   # a single predicate ...
//! op = "eq"              # eq, ne, lt, le, gt, ge (a number or string value), exists, missing, in, not-in
//! value = "order"
//! # ... or several: all = [{ field = "price", op = "gt", value = 10 }, ...] / any = [...]
//! # A predicate may test an arithmetic expression of numeric fields instead of a field:
//! # { expression = "auction % 123", op = "eq", value = 0 }
//! invalid = "reject"     # payloads that are not JSON: "reject" (dead-letter) or "drop"
//! ```

mod predicate;

use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, Operator, Output, Record};

pub use predicate::{Comparison, Computed, Found, Predicate};

/// The `config` table of a filter operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Shorthand for a single predicate: the field it tests.
    pub field: Option<sluice_sdk::FieldPath>,
    /// Shorthand for a single predicate: the expression it tests, instead of a field.
    pub expression: Option<Computed>,
    /// Shorthand for a single predicate: the comparison.
    pub op: Option<Comparison>,
    /// Shorthand for a single predicate: the operand.
    pub value: Option<sluice_sdk::serde_json::Value>,
    /// Predicates that must all hold.
    #[serde(default)]
    pub all: Vec<Predicate>,
    /// Predicates of which at least one must hold (when not empty).
    #[serde(default)]
    pub any: Vec<Predicate>,
    /// What to do with payloads that are not JSON.
    #[serde(default)]
    pub invalid: InvalidPayload,
}

/// What the filter does with a record whose payload is not JSON.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidPayload {
    /// Send it to the dead-letter sink.
    #[default]
    Reject,
    /// Drop it silently (counted in the `invalid_dropped` metric).
    Drop,
}

/// A running filter.
pub struct Filter {
    all: Vec<Predicate>,
    any: Vec<Predicate>,
    /// The fields every predicate reads, `all` first: read in one pass per record.
    fields: sluice_sdk::FieldLookup,
    /// Where each predicate's fields start in `fields`, and one more: where they end.
    starts: Vec<usize>,
    invalid: InvalidPayload,
}

impl Operator for Filter {
    type Config = FilterConfig;

    fn init(config: FilterConfig) -> Result<Self, String> {
        let mut all = config.all;
        for (position, predicate) in all.iter().enumerate() {
            predicate.check().map_err(|error| format!("all[{position}]: {error}"))?;
        }
        for (position, predicate) in config.any.iter().enumerate() {
            predicate.check().map_err(|error| format!("any[{position}]: {error}"))?;
        }
        // The top-level predicate, if any, is tested after those of `all`.
        match (config.field, config.expression, config.op) {
            (field @ Some(_), expression, Some(op)) | (field, expression @ Some(_), Some(op)) => {
                all.push(Predicate::new(field, expression, op, config.value)?)
            }
            (None, None, None) if config.value.is_none() => {}
            _ => return Err("a single predicate needs `field` (or `expression`) and `op` (and `value` for comparisons)".into()),
        }
        if all.is_empty() && config.any.is_empty() {
            return Err("no predicate: set `field` and `op`, or `all` / `any`".into());
        }
        let (mut fields, mut starts) = (Vec::new(), vec![0]);
        for predicate in all.iter().chain(&config.any) {
            fields.extend(predicate.reads());
            starts.push(fields.len());
        }
        Ok(Filter { all, any: config.any, fields: sluice_sdk::FieldLookup::new(fields), starts, invalid: config.invalid })
    }

    fn distribution(&self) -> Distribution {
        Distribution::Any
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let (mut filtered_out, mut dropped_invalid) = (0, 0);
        let mut texts = Vec::new();
        for record in batch.iter() {
            match self.matches(record, &mut texts) {
                Ok(true) => out.emit(record),
                Ok(false) => filtered_out += 1,
                Err(reason) => match self.invalid {
                    InvalidPayload::Reject => out.reject(record.index(), reason),
                    InvalidPayload::Drop => dropped_invalid += 1,
                },
            }
        }
        // So that a run's summary adds up: records in = passed + filtered out + dropped + dead letters.
        sluice_sdk::host::counters_add(&[("filtered_out", filtered_out), ("invalid_dropped", dropped_invalid)]);
    }
}

impl Filter {
    /// Whether `record` passes; an error when its payload is not JSON. `texts` is room for
    /// the fields' texts, reused from record to record.
    pub fn matches<'a>(&self, record: Record<'a>, texts: &mut Vec<Option<&'a [u8]>>) -> Result<bool, String> {
        record.look_up_into(&self.fields, texts)?;
        let holds = |(position, predicate): (usize, &Predicate)| {
            let reads = texts.get(self.starts[position]..self.starts[position + 1]).unwrap_or_default();
            predicate.holds_for(reads)
        };
        let all = self.all.iter().enumerate().all(holds);
        let any = self.any.is_empty()
            || self.any.iter().enumerate().map(|(position, predicate)| (self.all.len() + position, predicate)).any(holds);
        Ok(all && any)
    }
}

sluice_sdk::export_operator!(Filter);

#[cfg(test)]
mod tests;
