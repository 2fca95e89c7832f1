//! Writing a record with its segment and distance added.
//!
//! The usual case, top-level output fields the record does not have yet, splices the two
//! members before the object's closing brace without parsing it; otherwise the record is
//! parsed, the fields set (replacing what was there), and written again.

use std::io::Write as _;

use sluice_sdk::FieldPath;
use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::{self, Value};

/// A record's place in the model: its segment and its Euclidean distance to the centroid;
/// `None` when the model could not be seeded.
pub type Assignment = Option<(usize, f64)>;

/// The two fields added to every record.
#[derive(Debug)]
pub struct OutputFields {
    segment: FieldPath,
    distance: FieldPath,
    /// `"segment":`, the member's name as JSON, for splicing.
    segment_member: Vec<u8>,
    distance_member: Vec<u8>,
}

impl OutputFields {
    pub fn new(segment: FieldPath, distance: FieldPath) -> Result<OutputFields, String> {
        if overlaps(&segment, &distance) {
            return Err(format!(
                "`segment_field` ({segment}) and `distance_field` ({distance}) must be different fields, neither inside the other"
            ));
        }
        let member = |path: &FieldPath| format!("{}:", Value::String(path.to_string())).into_bytes();
        Ok(OutputFields { segment_member: member(&segment), distance_member: member(&distance), segment, distance })
    }

    /// The path of the segment field, for messages.
    pub fn segment_name(&self) -> &FieldPath {
        &self.segment
    }

    /// Whether writing the fields would replace or enter `path`.
    pub fn writes_into(&self, path: &FieldPath) -> bool {
        overlaps(path, &self.segment) || overlaps(path, &self.distance)
    }

    /// The top-level names of the two fields: a record having either is parsed to write them.
    pub fn lookups(&self) -> [FieldPath; 2] {
        [top_level(&self.segment), top_level(&self.distance)]
    }

    /// Whether writing into a record must parse it: the fields are nested, or the record has
    /// their top-level names already (`present`: what [`OutputFields::lookups`] found).
    pub fn needs_parsing(&self, present: &[Option<&[u8]>]) -> bool {
        self.segment.segments().len() > 1 || self.distance.segments().len() > 1 || present.iter().any(Option::is_some)
    }

    /// Refuses, with the reason, a record the fields cannot be written into (a value on
    /// their path that is not an object); `value` is a JSON object.
    pub fn check(&self, value: &[u8]) -> Result<(), String> {
        self.parsed_with(value, None).map(drop)
    }

    /// Writes `value` (a JSON object) with the fields added into `into` (emptied first).
    pub fn write(&self, value: &[u8], parse: bool, assignment: Assignment, into: &mut Vec<u8>) -> Result<(), String> {
        into.clear();
        if parse {
            self.parsed_with(value, assignment)?.write_to(into);
            Ok(())
        } else {
            self.splice(value, assignment, into);
            Ok(())
        }
    }

    /// The object `value` with the fields set (to null without an assignment); its other
    /// fields keep their exact text.
    fn parsed_with<'v>(&self, value: &'v [u8], assignment: Assignment) -> Result<RawObject<'v>, String> {
        let text = std::str::from_utf8(value).map_err(|error| format!("the record is not a JSON object: {error}"))?;
        let mut object = match RawObject::parse(text) {
            Ok(Some(object)) => object,
            Ok(None) => return Err("the record is not a JSON object".to_owned()),
            Err(error) => return Err(format!("the record is not a JSON object: {error}")),
        };
        let (segment, distance) = match assignment {
            Some((segment, distance)) => (Value::from(segment), sluice_sdk::json::number(distance)),
            None => (Value::Null, Value::Null),
        };
        object.set_value(&self.segment, &segment)?;
        object.set_value(&self.distance, &distance)?;
        Ok(object)
    }

    /// Appends the two members before the closing brace of `value`.
    fn splice(&self, value: &[u8], assignment: Assignment, into: &mut Vec<u8>) {
        let end = value.iter().rposition(|byte| !byte.is_ascii_whitespace()).unwrap_or(0);
        let body = &value[..end];
        let empty = body.iter().skip_while(|byte| byte.is_ascii_whitespace()).skip(1).all(u8::is_ascii_whitespace);
        into.extend_from_slice(body);
        if !empty {
            into.push(b',');
        }
        into.extend_from_slice(&self.segment_member);
        // Writing into a Vec cannot fail.
        let _ = match assignment {
            Some((segment, _)) => write!(into, "{segment}"),
            None => into.write_all(b"null"),
        };
        into.push(b',');
        into.extend_from_slice(&self.distance_member);
        let distance = assignment.map_or(Value::Null, |(_, distance)| sluice_sdk::json::number(distance));
        let _ = serde_json::to_writer(&mut *into, &distance);
        into.push(b'}');
    }
}

/// Whether one path equals the other or lies inside it.
fn overlaps(one: &FieldPath, other: &FieldPath) -> bool {
    let (one, other) = (one.segments(), other.segments());
    one.iter().zip(other).all(|(left, right)| left == right)
}

fn top_level(path: &FieldPath) -> FieldPath {
    let first = path.segments().first().map_or("", String::as_str);
    FieldPath::parse(first).unwrap_or_else(|_| path.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written into a record that must be parsed (a nested field), the record's other values
    /// keep their exact text.
    #[test]
    fn fields_written_into_a_parsed_record_leave_its_other_values_exact() {
        let path = |text: &str| FieldPath::parse(text).expect("path");
        let fields = OutputFields::new(path("ml.segment"), path("ml.distance")).expect("fields");
        let mut written = Vec::new();
        let record = br#"{"id": 18446744073709551617, "z": -0, "ml": {"model": "a"}}"#;
        fields.write(record, true, Some((2, 0.5)), &mut written).expect("written");
        assert_eq!(
            String::from_utf8(written).expect("UTF-8"),
            r#"{"id":18446744073709551617,"z":-0,"ml":{"model":"a","segment":2,"distance":0.5}}"#
        );
        assert!(fields.check(br#"{"ml": 3}"#).is_err(), "a value on the path that is not an object");
    }
}
