//! Where a JSON-lines record's event time comes from: the time it was read, or a top-level
//! field of the record.

use serde_json::Value;
use sluice_sdk::fields::Field;

use crate::event_time::{now_millis, parse_rfc3339_millis};

/// Where a record's event time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampField {
    /// The time the record was read.
    Ingestion,
    /// A top-level JSON field: milliseconds since the epoch, or an RFC 3339 string.
    Field(String),
}

impl TimestampField {
    pub fn new(field: Option<&str>) -> TimestampField {
        field.map_or(TimestampField::Ingestion, |field| TimestampField::Field(field.to_owned()))
    }

    /// Whether the time is read from the record (its fields are needed).
    pub fn reads_record(&self) -> bool {
        matches!(self, TimestampField::Field(_))
    }

    /// The event time of `line`, or why it has none. `fields` are the line's top-level fields
    /// when a scan found it to be an indexable object; otherwise the line is parsed here, and
    /// its errors are serde_json's. A field named twice counts by its first value, as operators
    /// and keyed exchanges read it.
    pub fn extract(&self, line: &[u8], fields: Option<&[Field]>) -> Result<i64, String> {
        let TimestampField::Field(name) = self else { return Ok(now_millis()) };
        let Some(fields) = fields else { return from_parsed(line, name) };
        let text_of = |(offset, length): (usize, usize)| line.get(offset..offset + length).unwrap_or_default();
        match fields.iter().find(|field| text_of(field.name) == name.as_bytes()) {
            Some(field) => from_text(text_of(field.value), name),
            None => Err(missing(name)),
        }
    }
}

/// Why a line has no time: the field is missing (a dotted name is a top-level field's whole
/// name, which the reason says, since other settings read dotted paths).
fn missing(name: &str) -> String {
    match name.contains('.') {
        true => format!("timestamp field {name:?} is missing (timestamp_field names a top-level field; nested ones are not read)"),
        false => format!("timestamp field {name:?} is missing"),
    }
}

/// The time in field `name` of `line`, parsed whole.
fn from_parsed(line: &[u8], name: &str) -> Result<i64, String> {
    let record =
        sluice_sdk::json::parse_first_wins(line).map_err(|error| format!("line is not a JSON object: {}", json_error_on_a_line(&error)))?;
    let Value::Object(record) = record else { return Err("line is not a JSON object".to_owned()) };
    match record.get(name) {
        Some(Value::Number(number)) => number.as_i64().ok_or_else(|| not_an_integer(name)),
        Some(Value::String(text)) => from_rfc3339(text, name),
        Some(_) => Err(neither(name)),
        None => Err(missing(name)),
    }
}

/// The time in the JSON text `value` of field `name` (a scanned, valid JSON value).
fn from_text(value: &[u8], name: &str) -> Result<i64, String> {
    match value.first() {
        Some(b'"') => {
            let text: String = serde_json::from_slice(value).map_err(|error| format!("timestamp field {name:?}: {error}"))?;
            from_rfc3339(&text, name)
        }
        // An integer within i64, as serde_json's `as_i64` takes it (no fraction, no exponent;
        // `-0` is the float -0.0 to serde_json).
        Some(b'-' | b'0'..=b'9') if value != b"-0" => {
            std::str::from_utf8(value).ok().and_then(|text| text.parse::<i64>().ok()).ok_or_else(|| not_an_integer(name))
        }
        Some(b'-') => Err(not_an_integer(name)),
        _ => Err(neither(name)),
    }
}

fn from_rfc3339(text: &str, name: &str) -> Result<i64, String> {
    parse_rfc3339_millis(text).map_err(|error| format!("timestamp field {name:?}: {error}"))
}

/// serde_json's reason for refusing one line, without its "line 1" (the line is the record's,
/// named before): "expected value at column 7", or the nesting limit in words.
fn json_error_on_a_line(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let reason = text.rfind(" at line ").map_or(text.as_str(), |at| &text[..at]);
    match reason {
        "recursion limit exceeded" => "it nests arrays and objects 128 levels deep or more (the limit is 127), which is not read".into(),
        _ if error.column() > 0 => format!("{reason} at column {}", error.column()),
        _ => reason.into(),
    }
}

fn not_an_integer(name: &str) -> String {
    format!(
        "timestamp field {name:?} is not an integer of milliseconds (no fraction or exponent, from -9223372036854775808 to \
         9223372036854775807)"
    )
}

fn neither(name: &str) -> String {
    format!("timestamp field {name:?} is neither milliseconds nor an RFC 3339 string")
}

#[cfg(test)]
mod tests {
    use sluice_sdk::fields::Indexer;

    use super::TimestampField;

    /// The time of `line` read through its scanned fields, checked against the line parsed.
    fn extract(field: &TimestampField, line: &[u8]) -> Result<i64, String> {
        let mut indexer = Indexer::default();
        let scanned = field.extract(line, indexer.scan(line));
        assert_eq!(scanned, field.extract(line, None), "scanned and parsed agree on {:?}", String::from_utf8_lossy(line));
        scanned
    }

    #[test]
    fn timestamps_come_from_milliseconds_or_rfc3339_fields() {
        let field = TimestampField::new(Some("ts"));
        assert_eq!(extract(&field, br#"{"ts": 1500}"#), Ok(1500));
        assert_eq!(extract(&field, br#"{"ts": -7, "a": [1, {"ts": 3}]}"#), Ok(-7));
        assert_eq!(extract(&field, br#"{"ts": "1970-01-01T00:00:02Z"}"#), Ok(2000));
        assert_eq!(extract(&field, br#"{"ts": "1970-01-01T00:00:02\u005a"}"#), Ok(2000));
        assert_eq!(extract(&field, br#"{"ts": 1, "ts": 2}"#), Ok(1), "the first value, as keyed exchanges read it");
        assert!(extract(&field, br#"{"other": 1}"#).unwrap_err().contains("missing"));
        assert!(extract(&field, b"nope").unwrap_err().contains("not a JSON object"));
        assert!(extract(&field, br#"{"ts": true}"#).unwrap_err().contains("neither"));
        assert!(extract(&field, br#"{"ts": null}"#).unwrap_err().contains("neither"));
        assert!(extract(&field, br#"{"ts": {"ms": 1}}"#).unwrap_err().contains("neither"));
        for not_integer in [&br#"{"ts": 1.5}"#[..], br#"{"ts": 1e3}"#, br#"{"ts": 99999999999999999999}"#, br#"{"ts": -0}"#] {
            assert!(extract(&field, not_integer).unwrap_err().contains("not an integer"));
        }
        assert!(extract(&field, br#"{"ts": "yesterday"}"#).unwrap_err().contains("RFC 3339"));
        let dotted = TimestampField::new(Some("meta.ts"));
        assert!(extract(&dotted, br#"{"meta": {"ts": 1}}"#).unwrap_err().contains("nested ones are not read"));
        assert_eq!(extract(&dotted, br#"{"meta.ts": 5}"#), Ok(5));
    }

    /// A line's JSON error names the column only (the line is the record's, named before it),
    /// and the nesting limit in words.
    #[test]
    fn a_line_that_is_not_json_is_told_by_column_and_deep_nesting_in_words() {
        let field = TimestampField::new(Some("ts"));
        let error = extract(&field, br#"{"ts": 4, "a": tru}"#).unwrap_err();
        assert_eq!(error, "line is not a JSON object: expected ident at column 19");
        let deep = format!("{{\"ts\": 1, \"a\": {}{}}}", "[".repeat(200), "]".repeat(200));
        let error = extract(&field, deep.as_bytes()).unwrap_err();
        assert!(error.contains("128 levels deep or more (the limit is 127)"), "{error}");
        assert_eq!(extract(&field, br#"{"ts": -9223372036854775808}"#), Ok(i64::MIN));
        let nested = |levels: usize| format!("{{\"ts\": 1, \"a\": {}{}}}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        assert_eq!(extract(&field, nested(127).as_bytes()), Ok(1), "127 levels, the object's included, are read");
        assert!(extract(&field, nested(128).as_bytes()).is_err());
    }

    #[test]
    fn ingestion_time_reads_nothing_of_the_record() {
        let ingestion = TimestampField::new(None);
        assert!(!ingestion.reads_record());
        assert!(ingestion.extract(b"not json", None).is_ok_and(|time| time > 0));
    }
}
