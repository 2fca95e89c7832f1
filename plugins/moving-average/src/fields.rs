//! Reading a record's averaged number and group in place, and writing numbers back as JSON.

use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::serde_json::{self, Number, Value};
use sluice_sdk::{FieldPath, json};

/// The number at `field` (its JSON text `raw`, if present): `Ok(None)` for null, which the
/// operator skips; an error a user can act on for anything else that is not a finite number.
pub fn read_number(field: &FieldPath, raw: Option<&RawValue>) -> Result<Option<f64>, String> {
    let Some(raw) = raw else { return Err(format!("field {field} is missing")) };
    match json::raw_number(raw) {
        Ok(None) => Ok(None),
        Ok(Some(number)) if number.is_finite() => Ok(Some(number)),
        // `1e400` parses as infinity: refused here, as it would turn every average into null.
        Ok(Some(_)) | Err("a number out of range") => {
            Err(format!("field {field} is {}, beyond the range of 64-bit floating point", raw.get()))
        }
        Err(kind) => Err(format!("field {field} is {kind}, not a number")),
    }
}

/// Writes the group of a record into `key`: its group-field values as a JSON array (absent
/// fields are null). Values are canonical, so that `1.0` and `1`, or an escaped and a plain
/// spelling of a string, fall into the same group.
pub fn write_group_key(key: &mut String, values: &[Option<&RawValue>]) {
    key.clear();
    key.push('[');
    for (position, value) in values.iter().enumerate() {
        if position > 0 {
            key.push(',');
        }
        match value {
            Some(raw) if json::raw_plain_str(raw).is_some() => key.push_str(raw.get()),
            Some(raw) => key.push_str(&canonical(raw)),
            None => key.push_str("null"),
        }
    }
    key.push(']');
}

/// The group-field values of a key written by [`write_group_key`], in `group_by` order.
pub fn group_values(key: &str) -> Vec<Value> {
    serde_json::from_str(key).unwrap_or_default()
}

fn canonical(raw: &RawValue) -> String {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Number(number)) => match number.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => (x as i64).to_string(),
            _ => number.to_string(),
        },
        Ok(value) => value.to_string(),
        Err(_) => raw.get().to_owned(),
    }
}

/// An average as JSON: integral values as integers (as window-aggregate writes them), no
/// value (an empty window) or a non-finite one as null.
pub fn number(x: Option<f64>) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match x {
        Some(x) if x.fract() == 0.0 && x.abs() < EXACT => Value::from(x as i64),
        Some(x) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        None => Value::Null,
    }
}
