//! Aggregate functions and their accumulators (mergeable, serialisable state).

use serde::{Deserialize, Serialize};
use sluice_sdk::serde_json::Value;
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::{FieldPath, json};

/// One aggregate of the configuration: `{ function = "sum", field = "price", as = "revenue" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    pub function: Function,
    /// The field aggregated; `count` without a field counts records.
    pub field: Option<FieldPath>,
    /// The output field's name; defaults to `<function>_<field>` or `count`.
    #[serde(rename = "as")]
    pub name: Option<String>,
}

/// The aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    Count,
    Sum,
    Mean,
    Min,
    Max,
}

impl AggregateConfig {
    /// Refuses aggregates that need a field and have none.
    pub fn check(&self) -> Result<(), String> {
        match (self.function, &self.field) {
            (Function::Count, _) | (_, Some(_)) => Ok(()),
            (function, None) => Err(format!("aggregate {function:?} needs a `field`").to_lowercase()),
        }
    }

    /// The name of the aggregate's output field.
    pub fn output_name(&self) -> String {
        match (&self.name, &self.field) {
            (Some(name), _) => name.clone(),
            (None, Some(field)) => format!("{}_{}", format!("{:?}", self.function).to_lowercase(), field),
            (None, None) => "count".into(),
        }
    }

    /// A fresh accumulator for this aggregate.
    pub fn accumulator(&self) -> Accumulator {
        match self.function {
            Function::Count => Accumulator::Count(0),
            Function::Sum => Accumulator::Sum(CompensatedSum::default()),
            Function::Mean => Accumulator::Mean(CompensatedSum::default(), 0),
            Function::Min => Accumulator::Min(None),
            Function::Max => Accumulator::Max(None),
        }
    }

    /// What one record contributes: `None` when it does not count (a null field, or an
    /// absent one for `count`); an error when the field is missing or not a number.
    pub fn input(&self, value: Option<&RawValue>) -> Result<Option<f64>, String> {
        let Some(field) = &self.field else { return Ok(Some(0.0)) };
        match value.map(json::raw_number) {
            None if self.function == Function::Count => Ok(None),
            None => Err(format!("field {field} is missing")),
            Some(Ok(None)) => Ok(None),
            Some(_) if self.function == Function::Count => Ok(Some(0.0)),
            Some(Ok(Some(number))) => Ok(Some(number)),
            Some(Err(kind)) => Err(format!("field {field} is {kind}, not a number")),
        }
    }
}

/// The running state of one aggregate for one window and group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Accumulator {
    Count(u64),
    Sum(CompensatedSum),
    Mean(CompensatedSum, u64),
    Min(Option<f64>),
    Max(Option<f64>),
}

impl Accumulator {
    /// Adds one record's contribution (`None`: the record does not count).
    pub fn add(&mut self, input: Option<f64>) {
        let Some(x) = input else { return };
        match self {
            Accumulator::Count(n) => *n += 1,
            Accumulator::Sum(sum) => sum.add(x),
            Accumulator::Mean(sum, n) => {
                sum.add(x);
                *n += 1;
            }
            Accumulator::Min(min) => *min = Some(min.map_or(x, |m| m.min(x))),
            Accumulator::Max(max) => *max = Some(max.map_or(x, |m| m.max(x))),
        }
    }

    /// Combines two accumulators of the same aggregate (for parallel or partial results).
    pub fn merge(&mut self, other: &Accumulator) {
        match (self, other) {
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::Sum(a), Accumulator::Sum(b)) => a.merge(b),
            (Accumulator::Mean(a, n), Accumulator::Mean(b, m)) => {
                a.merge(b);
                *n += m;
            }
            (Accumulator::Min(a), Accumulator::Min(b)) => *a = option_fold(*a, *b, f64::min),
            (Accumulator::Max(a), Accumulator::Max(b)) => *a = option_fold(*a, *b, f64::max),
            // Accumulators of one aggregate always share a variant.
            _ => {}
        }
    }

    /// The aggregate's value; integral values are JSON integers, empty results null.
    pub fn result(&self) -> Value {
        match self {
            Accumulator::Count(n) => Value::from(*n),
            Accumulator::Sum(sum) => number(sum.value()),
            Accumulator::Mean(_, 0) => Value::Null,
            Accumulator::Mean(sum, n) => number(sum.value() / *n as f64),
            Accumulator::Min(value) | Accumulator::Max(value) => value.map_or(Value::Null, number),
        }
    }
}

fn option_fold(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

fn number(x: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if x.fract() == 0.0 && x.abs() < EXACT {
        Value::from(x as i64)
    } else {
        sluice_sdk::serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// A sum with Neumaier compensation: exact enough that `0.1 + 0.2 + ...` reads as expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    pub fn add(&mut self, x: f64) {
        let total = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - total) + x;
        } else {
            self.compensation += (x - total) + self.sum;
        }
        self.sum = total;
    }

    pub fn merge(&mut self, other: &CompensatedSum) {
        self.add(other.sum);
        self.compensation += other.compensation;
    }

    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}
