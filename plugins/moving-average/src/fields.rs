//! Reading a record's averaged number and group in place, and writing numbers back as JSON.

use sluice_sdk::serde_json::Value;
use sluice_sdk::{FieldPath, json};

/// The number at `field` (its JSON text, if present): `Ok(None)` for null, which the operator
/// skips; an error a user can act on for anything else that is not a finite number.
pub fn read_number(field: &FieldPath, text: Option<&[u8]>) -> Result<Option<f64>, String> {
    let Some(text) = text else { return Err(format!("field {field} is missing")) };
    json::finite_text_number(field, text)
}

/// An average as JSON: integral values as integers (as window-aggregate writes them), no
/// value (an empty window) or a non-finite one as null.
pub fn number(x: Option<f64>) -> Value {
    x.map_or(Value::Null, sluice_sdk::json::number)
}
