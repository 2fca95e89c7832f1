//! Helpers on records: JSON payloads, headers, construction.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::json::{self, FieldPath};
use crate::{Event, Header};

impl Event {
    /// A record with a JSON payload, no key and no headers.
    pub fn from_json(value: &impl Serialize, timestamp: i64) -> Event {
        // Serialising to a Vec fails only for maps with non-string keys: a plugin bug.
        // The panic traps the call, and the runtime isolates the record with this message.
        let value = match serde_json::to_vec(value) {
            Ok(bytes) => bytes,
            Err(error) => panic!("cannot serialise an output record as JSON: {error}"),
        };
        Event { key: None, value, timestamp, headers: Vec::new() }
    }

    /// The same record with another payload (key, timestamp and headers are kept).
    pub fn with_json(&self, value: &impl Serialize) -> Event {
        let mut event = Event::from_json(value, self.timestamp);
        event.key.clone_from(&self.key);
        event.headers.clone_from(&self.headers);
        event
    }

    /// Parses the payload as JSON into `T`.
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.value).map_err(|error| format!("payload is not valid JSON for this operator: {error}"))
    }

    /// Parses the payload as a JSON object.
    pub fn json_object(&self) -> Result<Map<String, Value>, String> {
        match serde_json::from_slice::<Value>(&self.value) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("payload is JSON {} but an object was expected", json::kind(&other))),
            Err(error) => Err(format!("payload is not valid JSON: {error}")),
        }
    }

    /// The value at `path` in the JSON payload, without parsing the rest of it.
    /// `Ok(None)` when the payload has no such field.
    pub fn field(&self, path: &FieldPath) -> Result<Option<Value>, String> {
        json::lookup(&self.value, path)
    }

    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|header| header.name == name).map(|header| header.value.as_slice())
    }
}

/// A header from a name and a value.
pub fn header(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Header {
    Header { name: name.into(), value: value.into() }
}
