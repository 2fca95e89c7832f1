//! Reading user ids, item ids and interaction kinds from records.
//!
//! Ids are strings or integers, kept as canonical JSON text: `"a"` and `"\u0061"` are one id,
//! `7` and `7.0` another, and the output repeats each id with its JSON type.

use std::borrow::Cow;

use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::serde_json::{self, Number, Value};
use sluice_sdk::{FieldPath, json};

/// The longest id accepted, in bytes of canonical JSON text: ids are stored, so their size
/// is part of the memory bound.
pub const MAX_ID_BYTES: usize = 128;

/// The canonical JSON text of the id at `path`, or why the record has no usable id.
pub fn read_id<'a>(path: &FieldPath, raw: Option<&'a RawValue>) -> Result<Cow<'a, str>, String> {
    let raw = raw.ok_or_else(|| format!("field {path} is missing"))?;
    // A string without escapes is already canonical: borrow it, quotes included.
    let text = match json::raw_plain_str(raw) {
        Some(_) => Cow::Borrowed(raw.get()),
        None => Cow::Owned(canonical_id(path, raw)?),
    };
    if text == "\"\"" {
        return Err(format!("field {path} is an empty string"));
    }
    if text.len() > MAX_ID_BYTES {
        return Err(format!("field {path} is longer than {MAX_ID_BYTES} bytes"));
    }
    Ok(text)
}

fn canonical_id(path: &FieldPath, raw: &RawValue) -> Result<String, String> {
    let value: Value = serde_json::from_str(raw.get()).map_err(|error| format!("field {path} is not valid JSON: {error}"))?;
    match value {
        Value::String(text) => serde_json::to_string(&text).map_err(|error| format!("field {path} cannot be read: {error}")),
        Value::Number(number) => integer_text(&number).ok_or_else(|| format!("field {path} is a number but not an integer")),
        other => Err(format!("field {path} is {}, expected a string or an integer", json::kind(&other))),
    }
}

/// Decimal text of an integral number (`7.0` reads as `7`); `None` for fractions.
fn integer_text(number: &Number) -> Option<String> {
    if let Some(integer) = number.as_i64() {
        return Some(integer.to_string());
    }
    if let Some(integer) = number.as_u64() {
        return Some(integer.to_string());
    }
    // Beyond 2^53 a float no longer names one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let float = number.as_f64()?;
    (float.fract() == 0.0 && float.abs() < EXACT).then(|| (float as i64).to_string())
}

/// The interaction kind at the kind field, if it is a string.
pub fn read_kind(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?;
    match json::raw_plain_str(raw) {
        Some(text) => Some(Cow::Borrowed(text)),
        None => serde_json::from_str::<String>(raw.get()).ok().map(Cow::Owned),
    }
}

/// Canonical id text as a JSON value for output (`None`, written as null, only if the text
/// is not JSON, which ids read by [`read_id`] always are).
pub fn id_json(text: &str) -> Option<&RawValue> {
    serde_json::from_str(text).ok()
}
