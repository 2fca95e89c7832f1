//! Reading a record's averaged number and group in place, and writing numbers back as JSON.

use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::serde_json::{self, Value};
use sluice_sdk::{FieldPath, json};

/// The number at `field` (its JSON text, if present): `Ok(None)` for null, which the operator
/// skips; an error a user can act on for anything else that is not a finite number.
pub fn read_number(field: &FieldPath, text: Option<&[u8]>) -> Result<Option<f64>, String> {
    let Some(text) = text else { return Err(format!("field {field} is missing")) };
    json::finite_text_number(field, text)
}

/// The group-field values of a key written by `sluice_sdk::json::write_key`, in `group_by`
/// order: their canonical texts, exact (a number past a double keeps its digits).
pub fn group_values(key: &str) -> Vec<&RawValue> {
    serde_json::from_str(key).unwrap_or_default()
}

/// An average as JSON: integral values as integers (as window-aggregate writes them), no
/// value (an empty window) or a non-finite one as null.
pub fn number(x: Option<f64>) -> Value {
    x.map_or(Value::Null, sluice_sdk::json::number)
}
