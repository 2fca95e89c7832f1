//! Identities: the canonical text of a record's key values, so that equal values match.
//!
//! Two records have the same identity when every key field holds the same JSON value, however
//! it is spelled: `1` and `1.0`, `"a"` and `"\u0061"`, or objects with their keys in another
//! order. The identity is a JSON array of the canonical values, which cannot be ambiguous.

/// Writes the identity of `values` (the JSON text of each key field) into `identity`,
/// replacing its text.
///
/// Returns the position of the first key whose value is absent or null: such a record has
/// no identity (a null id is a missing id, not one shared by every record without it).
pub fn write_identity(identity: &mut String, values: &[Option<&[u8]>]) -> Result<(), usize> {
    identity.clear();
    identity.push('[');
    for (position, value) in values.iter().enumerate() {
        let text = value.filter(|text| text.trim_ascii() != b"null").ok_or(position)?;
        if position > 0 {
            identity.push(',');
        }
        sluice_sdk::json::write_canonical_text(identity, text);
    }
    identity.push(']');
    Ok(())
}
