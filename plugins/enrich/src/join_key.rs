//! Join keys: the text a record's key value, or a file row's key value, is looked up by.
//!
//! Table keys are strings. A string joins as it is; a number joins by its canonical text, so
//! that `7`, `7.0` and `7e0` all find the row keyed `"7"`. Other kinds of values never join.

use sluice_sdk::serde_json;

/// Writes the join text of a record's key value (its JSON text) into `out`, replacing its text.
///
/// `Ok(false)` when the value is absent or null: the record has no key and cannot match.
/// An error names the kind of value that cannot be a key (a boolean, an array, an object).
pub fn write_record_key(text: Option<&[u8]>, out: &mut String) -> Result<bool, &'static str> {
    out.clear();
    let Some(text) = text else { return Ok(false) };
    // Most keys are plain strings: no parsing, no allocation.
    if let Some(plain) = sluice_sdk::json::text_plain_str(text) {
        out.push_str(plain);
        return Ok(true);
    }
    match text.first() {
        Some(b'n') => Ok(false),
        // A number by its exact value, not by a double's: 18446744073709551617 is not
        // 18446744073709551616.
        Some(b'-' | b'0'..=b'9') => {
            sluice_sdk::json::write_canonical_text(out, text);
            Ok(true)
        }
        Some(b'"') => match serde_json::from_slice::<String>(text) {
            Ok(string) => {
                out.push_str(&string);
                Ok(true)
            }
            // The lookup validated the payload already; should it not have, nothing can match.
            Err(_) => Err("not valid JSON"),
        },
        Some(b't' | b'f') => Err("a boolean"),
        Some(b'[') => Err("an array"),
        _ => Err("an object"),
    }
}
