//! Records as JSON objects, for envelopes and dead letters. Bytes that are not UTF-8 are
//! written in base64 under a `_base64` key, so that nothing is lost.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::wasm::Record;

/// `{"key", "value", "timestamp", "headers"}` for `record`.
pub fn record_json(record: Record<'_>) -> Map<String, Value> {
    let mut object = Map::new();
    if let Some(key) = record.key() {
        insert_bytes(&mut object, "key", key);
    }
    insert_bytes(&mut object, "value", record.value());
    object.insert("timestamp".into(), record.timestamp().into());
    let headers: Vec<Value> = record
        .headers()
        .map(|(name, value)| {
            let mut pair = Map::new();
            insert_bytes(&mut pair, "name", name);
            insert_bytes(&mut pair, "value", value);
            Value::Object(pair)
        })
        .collect();
    if !headers.is_empty() {
        object.insert("headers".into(), Value::Array(headers));
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
    use crate::wasm::Batch;

    #[test]
    fn utf8_is_text_and_other_bytes_are_base64() {
        let mut batch = Batch::new();
        batch.push(Some(&[0xff, 0x00]), br#"{"a":1}"#, 5, [(&b"h"[..], &b"v"[..])]);
        let json = Value::Object(record_json(batch.get(0).unwrap()));
        assert_eq!(
            json,
            serde_json::json!({"key_base64": "/wA=", "value": "{\"a\":1}", "timestamp": 5, "headers": [{"name": "h", "value": "v"}]})
        );
    }
}
