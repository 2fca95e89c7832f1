//! `filter`: keeps the records whose JSON fields satisfy every (or any) predicate.
//!
//! ```toml
//! [operators.config]
//! field = "event_type"   # a single predicate ...
//! op = "eq"              # eq, ne, lt, le, gt, ge, exists, missing, in, not-in
//! value = "order"
//! # ... or several: all = [{ field = "price", op = "gt", value = 10 }, ...] / any = [...]
//! invalid = "reject"     # payloads that are not JSON: "reject" (dead-letter) or "drop"
//! ```

mod predicate;

use serde::Deserialize;
use sluice_sdk::{Event, Operator, Output};

pub use predicate::{Comparison, Predicate};

/// The `config` table of a filter operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Shorthand for a single predicate: the field it tests.
    pub field: Option<sluice_sdk::FieldPath>,
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
    invalid: InvalidPayload,
}

impl Operator for Filter {
    type Config = FilterConfig;

    fn init(config: FilterConfig) -> Result<Self, String> {
        let mut all = config.all;
        match (config.field, config.op) {
            (Some(field), Some(op)) => all.push(Predicate::new(field, op, config.value)?),
            (None, None) if config.value.is_none() => {}
            _ => return Err("a single predicate needs both `field` and `op` (and `value` for comparisons)".into()),
        }
        for predicate in all.iter().chain(&config.any) {
            predicate.check()?;
        }
        if all.is_empty() && config.any.is_empty() {
            return Err("no predicate: set `field` and `op`, or `all` / `any`".into());
        }
        Ok(Filter { all, any: config.any, invalid: config.invalid })
    }

    fn process(&mut self, batch: Vec<Event>, out: &mut Output) {
        let mut dropped_invalid = 0;
        for (index, event) in batch.into_iter().enumerate() {
            match self.matches(&event) {
                Ok(true) => out.emit(event),
                Ok(false) => {}
                Err(reason) => match self.invalid {
                    InvalidPayload::Reject => out.reject(index, reason),
                    InvalidPayload::Drop => dropped_invalid += 1,
                },
            }
        }
        if dropped_invalid > 0 {
            sluice_sdk::host::counter_add("invalid_dropped", dropped_invalid);
        }
    }
}

impl Filter {
    /// Whether `event` passes; an error when its payload is not JSON.
    pub fn matches(&self, event: &Event) -> Result<bool, String> {
        for predicate in &self.all {
            if !predicate.matches(event)? {
                return Ok(false);
            }
        }
        if self.any.is_empty() {
            return Ok(true);
        }
        for predicate in &self.any {
            if predicate.matches(event)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

sluice_sdk::export_operator!(Filter);

#[cfg(test)]
mod tests;
