use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn path(text: &str) -> FieldPath {
    FieldPath::parse(text).expect("path")
}

fn written(object: &RawObject<'_>) -> String {
    let mut out = Vec::new();
    object.write_to(&mut out);
    String::from_utf8(out).expect("UTF-8")
}

fn text_at(object: &RawObject<'_>, at: &str) -> Option<String> {
    object.get(&path(at)).map(|text| text.get().to_owned())
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("JSON")
}

#[test]
fn members_no_edit_reaches_keep_their_exact_text() {
    let text = r#"{"id":18446744073709551617,"zero":-0,"price":1.50,"name":"\u00e9\/","nested":{"big":123456789012345678901234567890, "x":[1e2, -0.0]}}"#;
    let mut object = RawObject::parse(text).expect("JSON").expect("object");
    object.set(&path("tag"), raw("true")).expect("set");
    object.set(&path("nested.added"), raw("1")).expect("set");
    assert_eq!(
        written(&object),
        r#"{"id":18446744073709551617,"zero":-0,"price":1.50,"name":"\u00e9\/","nested":{"big":123456789012345678901234567890,"x":[1e2, -0.0],"added":1},"tag":true}"#
    );
}

#[test]
fn a_repeated_name_keeps_its_first_value_and_place_and_the_later_ones_are_left_out() {
    let text = r#"{"a":1,"b":{"c":1,"c":[2]},"a":2,"d":[{"e":"x","e":"y"}]}"#;
    let mut object = RawObject::parse(text).expect("JSON").expect("object");
    assert_eq!(text_at(&object, "a").as_deref(), Some("1"));
    object.set(&path("b.z"), raw("0")).expect("set");
    object.set(&path("d.0.f"), raw("0")).expect("set");
    assert_eq!(written(&object), r#"{"a":1,"b":{"c":1,"z":0},"d":[{"e":"x","f":0}]}"#);
    assert_eq!(text_at(&object, "d.0.e").as_deref(), Some(r#""x""#));
}

#[test]
fn many_members_find_repeated_names_through_a_set() {
    let members: Vec<String> = (0..100).map(|n| format!(r#""m{n}":{n}"#)).collect();
    let text = format!("{{{},\"m7\":\"again\",\"m99\":\"again\"}}", members.join(","));
    let object = RawObject::parse(&text).expect("JSON").expect("object");
    assert_eq!(object.names().count(), 100);
    assert_eq!(text_at(&object, "m99").as_deref(), Some("99"));
}

#[test]
fn values_are_read_at_their_paths_through_objects_and_arrays() {
    let object = RawObject::parse(r#"{"a":{"b":[10,{"c":"deep"}]},"n":null}"#).expect("JSON").expect("object");
    assert_eq!(text_at(&object, "a.b.1.c").as_deref(), Some(r#""deep""#));
    assert_eq!(text_at(&object, "a.b.0").as_deref(), Some("10"));
    assert_eq!(text_at(&object, "n").as_deref(), Some("null"));
    assert_eq!(text_at(&object, "a.b.2"), None);
    assert_eq!(text_at(&object, "a.b.x"), None);
    assert_eq!(text_at(&object, "n.x"), None);
}

#[test]
fn edits_inside_values_an_edit_wrote_and_removals_return_the_value() {
    let mut object = RawObject::new();
    object.set_value(&path("a"), &json!({"b": [1, 2]})).expect("set");
    object.set(&path("a.b.1"), raw("12345678901234567890123")).expect("set");
    let removed = object.remove(&path("a.b.0")).expect("removed");
    assert_eq!(removed.to_json(), "1");
    let moved = object.remove(&path("a")).expect("removed");
    object.set_node(&path("moved"), moved).expect("set");
    assert_eq!(written(&object), r#"{"moved":{"b":[12345678901234567890123]}}"#);
}

#[test]
fn an_object_serialised_is_its_text() {
    let text = r#"{"big":18446744073709551617,"nested":{"z":-0}}"#;
    let mut object = RawObject::parse(text).expect("JSON").expect("object");
    assert_eq!(serde_json::to_string(&object).expect("JSON"), text);
    object.set_member_value("added", &json!([1.5])).expect("set");
    assert!(object.has_member("added") && !object.has_member("nested.z"));
    assert_eq!(serde_json::to_string(&object).expect("JSON"), written(&object));
    assert_eq!(object.to_string(), written(&object));
}

/// serde_json reads numbers correctly rounded (its `float_roundtrip` feature): without it,
/// these shortest texts of doubles read back one unit in the last place off, so a record
/// parsed and written again changed `922.1800000000001` into `922.18`.
#[test]
fn serde_json_reads_the_shortest_text_of_a_double_back_to_that_double() {
    for text in ["922.1800000000001", "15479.045014862473", "190.59009225587582", "53210.700000000004"] {
        let number: f64 = serde_json::from_str(text).expect("number");
        assert_eq!(number.to_string(), text);
        assert_eq!(serde_json::from_str::<Value>(text).expect("number").to_string(), text);
    }
}

#[test]
fn text_of_another_kind_is_not_an_object() {
    assert!(RawObject::parse("[1]").expect("JSON").is_none());
    assert!(RawObject::parse(" 42 ").expect("JSON").is_none());
    assert!(RawObject::parse(r#"{"a":1"#).is_err());
    assert!(RawObject::parse(r#"{"a":1} x"#).is_err());
}

proptest! {
    /// On values a double holds, `set` and `remove` give what `FieldPath::set` and `remove`
    /// give on a `Map`, errors included.
    #[test]
    fn edits_agree_with_the_map_s(
        value in json_object(),
        edits in prop::collection::vec((edit_path(), prop::option::of(json_value())), 1..6),
    ) {
        let text = serde_json::to_string(&value).expect("JSON");
        let mut map = value.clone();
        let mut object = RawObject::parse(&text).expect("JSON").expect("object");
        for (path, edit) in &edits {
            match edit {
                Some(new) => {
                    let expected = path.set(&mut map, new.clone());
                    let got = object.set_value(path, new);
                    prop_assert_eq!(got, expected);
                }
                None => {
                    let expected = path.remove(&mut map);
                    let got = object.remove(path).map(|node| serde_json::from_str::<Value>(&node.to_json()).expect("JSON"));
                    prop_assert_eq!(got, expected);
                }
            }
            let written: Value = serde_json::from_str(&written(&object)).expect("JSON");
            prop_assert_eq!(&written, &Value::Object(map.clone()));
            prop_assert_eq!(written.to_string(), Value::Object(map.clone()).to_string(), "same order");
        }
    }

    /// Whatever is read at a path is the map's value there.
    #[test]
    fn reads_agree_with_the_map_s(value in json_object(), path in edit_path()) {
        let text = serde_json::to_string(&value).expect("JSON");
        let object = RawObject::parse(&text).expect("JSON").expect("object");
        let got = object.get(&path).map(|text| serde_json::from_str::<Value>(text.get()).expect("JSON"));
        prop_assert_eq!(got.as_ref(), path.get(&value));
    }
}

fn edit_path() -> impl Strategy<Value = FieldPath> {
    prop::collection::vec(prop_oneof!["[a-c]", "[0-2]"], 1..4).prop_map(|segments| path(&segments.join(".")))
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-c0-2]", json_value(), 0..4).prop_map(|entries| entries.into_iter().collect())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), "[a-z\"\\\\é]{0,4}".prop_map(Value::String)];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c0-2]", inner, 0..4).prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}
