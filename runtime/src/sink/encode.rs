//! Records as JSON objects, for envelopes and dead letters. Bytes that are not UTF-8 are
//! written in base64 under a `_base64` key, so that nothing is lost.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::wasm::Event;

/// `{"key", "value", "timestamp", "headers"}` for `event`.
pub fn event_json(event: &Event) -> Map<String, Value> {
    let mut object = Map::new();
    if let Some(key) = &event.key {
        insert_bytes(&mut object, "key", key);
    }
    insert_bytes(&mut object, "value", &event.value);
    object.insert("timestamp".into(), event.timestamp.into());
    if !event.headers.is_empty() {
        let headers = event.headers.iter().map(|header| {
            let mut pair = Map::new();
            pair.insert("name".into(), header.name.clone().into());
            insert_bytes(&mut pair, "value", &header.value);
            Value::Object(pair)
        });
        object.insert("headers".into(), Value::Array(headers.collect()));
    }
    object
}

/// Inserts `bytes` as text under `name`, or as base64 under `<name>_base64`.
fn insert_bytes(object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => object.insert(name.into(), text.into()),
        Err(_) => object.insert(format!("{name}_base64"), STANDARD.encode(bytes).into()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::Header;

    #[test]
    fn utf8_is_text_and_other_bytes_are_base64() {
        let event = Event {
            key: Some(vec![0xff, 0x00]),
            value: br#"{"a":1}"#.to_vec(),
            timestamp: 5,
            headers: vec![Header { name: "h".into(), value: b"v".to_vec() }],
        };
        let json = Value::Object(event_json(&event));
        assert_eq!(json, serde_json::json!({"key_base64": "/wA=", "value": "{\"a\":1}", "timestamp": 5, "headers": [{"name": "h", "value": "v"}]}));
    }
}
