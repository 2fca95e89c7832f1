//! Aggregate functions and their accumulators: mergeable, serialisable state per window and group.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sluice_sdk::FieldPath;
use sluice_sdk::json::{self, number};
use sluice_sdk::numeric::{CompensatedSum, ExactMoments, ExactSum};
use sluice_sdk::serde_json::Value;

use crate::sketch::{Distinct, Quantiles};

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
    /// For `quantile`: which one, between 0 and 1.
    pub q: Option<f64>,
    /// Only records whose `when.field` equals `when.equals` count in this aggregate.
    pub when: Option<Condition>,
}

/// A condition on a record for one aggregate: `when = { field = "event_type", equals = "view" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: FieldPath,
    pub equals: Value,
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
    /// Sample variance (n − 1), from exact sums of the values and their squares.
    Variance,
    /// Sample standard deviation.
    Stddev,
    /// The median, from a DDSketch (1% relative error).
    Median,
    /// Quantile `q`, from a DDSketch (1% relative error).
    Quantile,
    /// Number of distinct values, from HyperLogLog++ (about 0.8% standard error).
    Distinct,
    /// The value of the record with the earliest event time (of those with the same time,
    /// the least value in canonical JSON text, so that arrival order does not decide).
    First,
    /// The value of the record with the latest event time (of those with the same time, the
    /// greatest value in canonical JSON text).
    Last,
}

impl Function {
    /// Whether it takes any JSON value, not only numbers: such a function skips a record
    /// whose field is missing, as it skips a null.
    fn reads_any_value(self) -> bool {
        matches!(self, Function::Count | Function::Distinct | Function::First | Function::Last)
    }
}

/// What one record contributes to one aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'v> {
    /// The record counts (count without a field).
    Record,
    Number(f64),
    /// Any JSON value (distinct, first, last), as canonical text.
    Value(Cow<'v, str>),
}

impl AggregateConfig {
    /// Refuses aggregates whose settings do not fit their function.
    /// What this aggregate computes, whatever its output name: `count`, `sum(price)`,
    /// `quantile(price, q = 0.9)`, `count when event_type = "view"`.
    pub fn describe(&self) -> String {
        let function = format!("{:?}", self.function).to_lowercase();
        let mut text = match (&self.field, self.q) {
            (None, _) => function,
            (Some(field), None) => format!("{function}({field})"),
            (Some(field), Some(q)) => format!("{function}({field}, q = {q})"),
        };
        if let Some(when) = &self.when {
            text.push_str(&format!(" when {} = ", when.field));
            json::write_canonical_value(&mut text, &when.equals);
        }
        text
    }

    pub fn check(&self) -> Result<(), String> {
        let function = format!("{:?}", self.function).to_lowercase();
        match (self.function, &self.field, self.q) {
            (Function::Count, _, None) => Ok(()),
            (_, None, _) => Err(format!("aggregate {function} needs a `field`")),
            (Function::Quantile, _, Some(q)) if (0.0..=1.0).contains(&q) => Ok(()),
            (Function::Quantile, _, _) => Err("aggregate quantile needs `q` between 0 and 1".into()),
            (_, _, Some(_)) => Err(format!("`q` applies to quantile, not to {function}")),
            (_, Some(_), None) => Ok(()),
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
            Function::Sum => Accumulator::Sum(ExactSum::default()),
            Function::Mean => Accumulator::Mean(ExactSum::default(), 0),
            Function::Min => Accumulator::Min(None),
            Function::Max => Accumulator::Max(None),
            Function::Variance => Accumulator::Variance(ExactMoments::default()),
            Function::Stddev => Accumulator::Stddev(ExactMoments::default()),
            Function::Median => Accumulator::Quantile(0.5, Quantiles::default()),
            Function::Quantile => Accumulator::Quantile(self.q.unwrap_or(0.5), Quantiles::default()),
            Function::Distinct => Accumulator::Distinct(Distinct::default()),
            Function::First => Accumulator::First(None),
            Function::Last => Accumulator::Last(None),
        }
    }

    /// Whether the record counts in this aggregate (its `when` condition holds).
    pub fn applies(&self, condition: Option<&[u8]>) -> bool {
        let Some(when) = &self.when else { return true };
        match (condition, &when.equals) {
            (Some(text), Value::String(wanted)) if json::text_plain_str(text).is_some() => {
                json::text_plain_str(text) == Some(wanted.as_str())
            }
            (Some(text), Value::Number(number)) => matches!(json::text_number(text), Ok(Some(x)) if Some(x) == number.as_f64()),
            (Some(text), other) => sluice_sdk::serde_json::from_slice::<Value>(text).is_ok_and(|value| value == *other),
            (None, _) => false,
        }
    }

    /// What one record contributes: `None` when it does not count (a null field, or an
    /// absent one for the functions of any value: `count`, `distinct`, `first`, `last`); an
    /// error when a numeric function's field is missing or of the wrong kind.
    pub fn input<'v>(&self, value: Option<&'v [u8]>) -> Result<Option<Input<'v>>, String> {
        let Some(field) = &self.field else { return Ok(Some(Input::Record)) };
        let Some(text) = value else {
            return if self.function.reads_any_value() { Ok(None) } else { Err(format!("field {field} is missing")) };
        };
        if text == b"null" {
            return Ok(None);
        }
        match self.function {
            Function::Count => Ok(Some(Input::Record)),
            Function::Distinct | Function::First | Function::Last => Ok(Some(Input::Value(crate::canonical_text(text)))),
            _ => match json::text_number(text) {
                Ok(Some(number)) if !number.is_finite() => Err(format!("field {field} is a number beyond the range of a 64-bit float")),
                Ok(Some(number)) => Ok(Some(Input::Number(number))),
                Ok(None) => Ok(None),
                Err(kind) => Err(format!("field {field} is {kind}, not a number")),
            },
        }
    }
}

/// The running state of one aggregate for one window and group.
///
/// Sums, means, variances and first/last values do not depend on the order records arrive
/// in, nor on how partial results merge: results are the same at every parallelism and batch
/// size. The variants marked "state version 3" are what earlier versions saved; a restored
/// state is [`Accumulator::upgrade`]d to the others before use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Accumulator {
    Count(u64),
    /// State version 3.
    SumV3(CompensatedSum),
    /// State version 3.
    MeanV3(CompensatedSum, u64),
    Min(Option<f64>),
    Max(Option<f64>),
    /// State version 3.
    VarianceV3(Moments),
    /// State version 3.
    StddevV3(Moments),
    Quantile(f64, Quantiles),
    Distinct(Distinct),
    /// State version 3: (event time, arrival sequence, JSON text).
    FirstV3(Option<(i64, u64, String)>),
    /// State version 3: (event time, arrival sequence, JSON text).
    LastV3(Option<(i64, u64, String)>),
    Sum(ExactSum),
    Mean(ExactSum, u64),
    Variance(ExactMoments),
    Stddev(ExactMoments),
    /// (event time, canonical JSON text) of the earliest record.
    First(Option<(i64, String)>),
    /// (event time, canonical JSON text) of the latest record.
    Last(Option<(i64, String)>),
    /// An aggregate that a configuration change added while its window was open: it saw
    /// only the records after the change, so the window gives it no value (null).
    Incomplete,
}

impl Accumulator {
    /// Adds one record's contribution at event time `timestamp`.
    pub fn add(&mut self, input: &Input<'_>, timestamp: i64) {
        match (self, input) {
            (Accumulator::Count(n), _) => *n += 1,
            (Accumulator::Sum(sum), Input::Number(x)) => sum.add(*x),
            (Accumulator::Mean(sum, n), Input::Number(x)) => {
                sum.add(*x);
                *n += 1;
            }
            (Accumulator::Min(min), Input::Number(x)) => *min = Some(min.map_or(*x, |m| m.min(*x))),
            (Accumulator::Max(max), Input::Number(x)) => *max = Some(max.map_or(*x, |m| m.max(*x))),
            (Accumulator::Variance(moments) | Accumulator::Stddev(moments), Input::Number(x)) => moments.add(*x),
            (Accumulator::Quantile(_, sketch), Input::Number(x)) => sketch.add(*x),
            (Accumulator::Distinct(set), Input::Value(text)) => set.add(text),
            (Accumulator::First(first), Input::Value(text)) => keep(first, (timestamp, text), |new, old| new < old),
            (Accumulator::Last(last), Input::Value(text)) => keep(last, (timestamp, text), |new, old| new > old),
            // Inputs always match their aggregate's accumulator (see `AggregateConfig::input`),
            // and state of version 3 is upgraded when it is restored.
            _ => {}
        }
    }

    /// Combines two accumulators of the same aggregate (merged session windows, partial results).
    pub fn merge(&mut self, other: &Accumulator) {
        match (self, other) {
            // Part of the records missing from one part is missing from the whole.
            (this, Accumulator::Incomplete) => *this = Accumulator::Incomplete,
            (Accumulator::Count(a), Accumulator::Count(b)) => *a += b,
            (Accumulator::Sum(a), Accumulator::Sum(b)) => a.merge(b),
            (Accumulator::Mean(a, n), Accumulator::Mean(b, m)) => {
                a.merge(b);
                *n += m;
            }
            (Accumulator::Min(a), Accumulator::Min(b)) => *a = option_fold(*a, *b, f64::min),
            (Accumulator::Max(a), Accumulator::Max(b)) => *a = option_fold(*a, *b, f64::max),
            (Accumulator::Variance(a), Accumulator::Variance(b)) | (Accumulator::Stddev(a), Accumulator::Stddev(b)) => a.merge(b),
            (Accumulator::Quantile(_, a), Accumulator::Quantile(_, b)) => a.merge(b),
            (Accumulator::Distinct(a), Accumulator::Distinct(b)) => a.merge(b),
            (Accumulator::First(a), Accumulator::First(Some(b))) => keep(a, (b.0, &b.1), |new, old| new < old),
            (Accumulator::Last(a), Accumulator::Last(Some(b))) => keep(a, (b.0, &b.1), |new, old| new > old),
            // Accumulators of one aggregate always share a variant.
            _ => {}
        }
    }

    /// The accumulator of state version 4 that holds what this one of version 3 held: sums
    /// and moments become exact ones of the same value, first and last forget the arrival
    /// order that broke their ties.
    pub fn upgrade(&mut self) {
        let exact = |value: f64| {
            let mut sum = ExactSum::default();
            sum.add(value);
            sum
        };
        let upgraded = match self {
            Accumulator::SumV3(sum) => Accumulator::Sum(exact(sum.value())),
            Accumulator::MeanV3(sum, n) => Accumulator::Mean(exact(sum.value()), *n),
            Accumulator::VarianceV3(moments) => Accumulator::Variance(moments.exact()),
            Accumulator::StddevV3(moments) => Accumulator::Stddev(moments.exact()),
            Accumulator::FirstV3(kept) => Accumulator::First(kept.take().map(|(time, _, text)| (time, text))),
            Accumulator::LastV3(kept) => Accumulator::Last(kept.take().map(|(time, _, text)| (time, text))),
            _ => return,
        };
        *self = upgraded;
    }

    /// The result as the JSON text it was read as, for the functions that keep a value
    /// (`first`, `last`): a number past a double (`1e400`) or past 64 bits
    /// (`18446744073709551617`) is written with its digits, which [`Accumulator::result`]'s
    /// value cannot hold.
    pub fn kept_text(&self) -> Option<&str> {
        match self {
            Accumulator::First(Some((_, text))) | Accumulator::Last(Some((_, text))) => Some(text),
            _ => None,
        }
    }

    /// The aggregate's value; integral numbers are JSON integers, empty results null.
    pub fn result(&self) -> Value {
        match self {
            Accumulator::Count(n) => Value::from(*n),
            Accumulator::Sum(sum) => sum.value().map_or(Value::Null, number),
            Accumulator::Mean(_, 0) => Value::Null,
            Accumulator::Mean(sum, n) => sum.quotient(*n).map_or(Value::Null, number),
            Accumulator::Min(value) | Accumulator::Max(value) => value.map_or(Value::Null, number),
            Accumulator::Variance(moments) => moments.sample_variance().map_or(Value::Null, number),
            Accumulator::Stddev(moments) => moments.sample_stddev().map_or(Value::Null, number),
            Accumulator::Quantile(q, sketch) => sketch.quantile(*q).map_or(Value::Null, number),
            Accumulator::Distinct(set) => Value::from(set.count()),
            Accumulator::First(kept) | Accumulator::Last(kept) => {
                kept.as_ref().and_then(|(_, text)| sluice_sdk::serde_json::from_str(text).ok()).unwrap_or(Value::Null)
            }
            Accumulator::Incomplete => Value::Null,
            // Upgraded at restore; never left in a running operator.
            Accumulator::SumV3(_)
            | Accumulator::MeanV3(..)
            | Accumulator::VarianceV3(_)
            | Accumulator::StddevV3(_)
            | Accumulator::FirstV3(_)
            | Accumulator::LastV3(_) => Value::Null,
        }
    }
}

/// Replaces `slot` with `new` when empty or when `better(new, old)` on (time, text).
fn keep(slot: &mut Option<(i64, String)>, new: (i64, &str), better: fn((i64, &str), (i64, &str)) -> bool) {
    let replace = slot.as_ref().is_none_or(|old| better(new, (old.0, old.1.as_str())));
    if replace {
        *slot = Some((new.0, new.1.to_owned()));
    }
}

fn option_fold(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// Count, mean and sum of squared deviations (Welford): state version 3's variance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Exact moments of (as nearly as these hold them) the same values.
    pub fn exact(&self) -> ExactMoments {
        ExactMoments::from_welford(self.count, self.mean, self.m2)
    }
}
