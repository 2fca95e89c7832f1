//! Whole JSON payloads parsed as the SDK's lookups read them: of a name an object repeats,
//! the first value counts (serde_json alone keeps the last).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON value; objects keep the first value of a repeated name, in the
/// position it first took.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<FirstWins>(bytes).map(|FirstWins(value)| value)
}

/// A JSON value read with first-wins objects.
struct FirstWins(Value);

impl<'de> Deserialize<'de> for FirstWins {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FirstWins, D::Error> {
        deserializer.deserialize_any(FirstWinsVisitor).map(FirstWins)
    }
}

struct FirstWinsVisitor;

impl<'de> Visitor<'de> for FirstWinsVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    /// As serde_json's own `Value` reads it: a number too large for a double is null.
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(sequence.size_hint().unwrap_or(0));
        while let Some(FirstWins(value)) = sequence.next_element()? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = entries.next_key::<String>()? {
            // A repeated name's value is still read (it must be valid JSON), then set aside.
            let FirstWins(value) = entries.next_value()?;
            object.entry(name).or_insert(value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_repeated_name_keeps_its_first_value_and_place_at_every_depth() {
        let value = parse_value(br#"{"a":1,"b":{"c":1,"c":[2]},"a":2,"d":[{"e":"x","e":"y"}]}"#).expect("JSON");
        assert_eq!(value.to_string(), r#"{"a":1,"b":{"c":1},"d":[{"e":"x"}]}"#);
    }

    #[test]
    fn a_repeated_name_is_still_read_as_json() {
        assert!(parse_value(br#"{"a":1,"a":[}"#).is_err());
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them() {
        let text = br#"[0,-1,18446744073709551615,-9223372036854775808,-0.0,1.5e-300,12345678901234567890123]"#;
        assert_eq!(parse_value(text).expect("JSON"), serde_json::from_slice::<Value>(text).expect("JSON"));
        assert!(parse_value(b"[1e400]").is_err() && serde_json::from_slice::<Value>(b"[1e400]").is_err());
    }

    proptest! {
        /// Without repeated names, the value is serde_json's reading of the text.
        #[test]
        fn without_repeated_names_it_is_serde_jsons_value(value in json_value()) {
            let text = serde_json::to_vec(&value).expect("JSON");
            prop_assert_eq!(parse_value(&text).expect("JSON"), serde_json::from_slice::<Value>(&text).expect("JSON"));
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |number| number.is_finite()).prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{0,3}", inner, 0..6).prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }
}
