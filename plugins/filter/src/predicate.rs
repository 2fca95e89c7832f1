//! One predicate on one JSON field, and how JSON values compare.

use std::cmp::Ordering;

use serde::Deserialize;
use sluice_sdk::serde_json::Value;
use sluice_sdk::{FieldPath, json};

/// A test on one field of the payload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    pub field: FieldPath,
    pub op: Comparison,
    pub value: Option<Value>,
}

/// How the field is compared with the operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The field is present (even if null).
    Exists,
    /// The field is absent.
    Missing,
    /// The field equals one of the operand's elements (an array).
    In,
    /// The field equals none of the operand's elements (an array).
    NotIn,
}

impl Predicate {
    /// A checked predicate.
    pub fn new(field: FieldPath, op: Comparison, value: Option<Value>) -> Result<Predicate, String> {
        let predicate = Predicate { field, op, value };
        predicate.check()?;
        Ok(predicate)
    }

    /// Refuses operands that cannot work with the comparison.
    pub fn check(&self) -> Result<(), String> {
        let field = &self.field;
        match (self.op, &self.value) {
            (Comparison::Exists | Comparison::Missing, Some(_)) => {
                Err(format!("predicate on {field}: `{:?}` takes no `value`", self.op).to_lowercase())
            }
            (Comparison::Exists | Comparison::Missing, None) => Ok(()),
            (Comparison::In | Comparison::NotIn, Some(Value::Array(_))) => Ok(()),
            (Comparison::In | Comparison::NotIn, _) => Err(format!("predicate on {field}: `in` and `not-in` need an array `value`")),
            (_, None) => Err(format!("predicate on {field}: this comparison needs a `value`")),
            (_, Some(_)) => Ok(()),
        }
    }

    /// Whether the predicate holds for a field's JSON text (`None`: field absent).
    pub fn holds(&self, field: Option<&[u8]>) -> bool {
        let operand = self.value.as_ref();
        match (self.op, field, operand) {
            (Comparison::Exists, field, _) => field.is_some(),
            (Comparison::Missing, field, _) => field.is_none(),
            (_, None, _) | (_, _, None) => self.op == Comparison::Ne || self.op == Comparison::NotIn,
            (Comparison::Eq, Some(field), Some(operand)) => raw_equal(field, operand),
            (Comparison::Ne, Some(field), Some(operand)) => !raw_equal(field, operand),
            (Comparison::In, Some(field), Some(operand)) => contains(operand, field),
            (Comparison::NotIn, Some(field), Some(operand)) => !contains(operand, field),
            (ordering, Some(field), Some(operand)) => raw_order(field, operand).is_some_and(|found| ordering_holds(ordering, found)),
        }
    }
}

fn ordering_holds(op: Comparison, found: Ordering) -> bool {
    match op {
        Comparison::Lt => found == Ordering::Less,
        Comparison::Le => found != Ordering::Greater,
        Comparison::Gt => found == Ordering::Greater,
        Comparison::Ge => found != Ordering::Less,
        _ => false,
    }
}

fn contains(set: &Value, field: &[u8]) -> bool {
    set.as_array().is_some_and(|items| items.iter().any(|item| raw_equal(field, item)))
}

/// Whether a field's JSON text equals `operand`; numbers compare by value (`1 == 1.0`).
/// Numbers and plain strings are compared in place, without allocating.
fn raw_equal(field: &[u8], operand: &Value) -> bool {
    match operand {
        Value::Number(number) => matches!(json::text_number(field), Ok(Some(x)) if Some(x) == number.as_f64()),
        Value::String(text) => match json::text_plain_str(field) {
            Some(plain) => plain == text,
            None => parsed(field).is_some_and(|value| value == *operand),
        },
        other => parsed(field).is_some_and(|value| json_equal(&value, other)),
    }
}

/// Order of a field against a number or string operand; other pairs are not ordered.
fn raw_order(field: &[u8], operand: &Value) -> Option<Ordering> {
    match operand {
        Value::Number(number) => json::text_number(field).ok()??.partial_cmp(&number.as_f64()?),
        Value::String(text) => match json::text_plain_str(field) {
            Some(plain) => Some(plain.cmp(text.as_str())),
            None => parsed(field).and_then(|value| json_order(&value, operand)),
        },
        _ => None,
    }
}

fn parsed(field: &[u8]) -> Option<Value> {
    sluice_sdk::serde_json::from_slice(field).ok()
}

/// Equality where numbers compare by value (`1 == 1.0`).
pub fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => left == right,
    }
}

/// Order of two numbers or two strings; other pairs are not ordered.
pub fn json_order(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}
