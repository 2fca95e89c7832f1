//! Native tests of the projection's logic and its expressions.

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::{Expression, Project};

fn evaluate(text: &str, record: Value) -> Result<Value, String> {
    Expression::parse(text)?.evaluate(record.as_object().unwrap())
}

#[test]
fn expressions_follow_precedence_and_functions() {
    let record = json!({"a": 2, "b": 3, "o": {"c": 10}});
    assert_eq!(evaluate("a + b * 4", record.clone()), Ok(json!(14)));
    assert_eq!(evaluate("(a + b) * 4", record.clone()), Ok(json!(20)));
    assert_eq!(evaluate("-a + o.c / 4", record.clone()), Ok(json!(0.5)));
    assert_eq!(evaluate("max(a, b) - min(a, b)", record.clone()), Ok(json!(1)));
    assert_eq!(evaluate("round(o.c / 3, 2)", record.clone()), Ok(json!(3.33)));
    assert_eq!(evaluate("abs(a - b)", record), Ok(json!(1)));
}

#[test]
fn expression_errors_name_the_problem() {
    assert!(Expression::parse("a +").unwrap_err().contains("expected a number"));
    assert!(Expression::parse("(a").unwrap_err().contains("expected ')'"));
    assert!(Expression::parse("sqrt(a)").unwrap_err().contains("unknown function"));
    assert!(Expression::parse("min(a)").unwrap_err().contains("takes"));
    assert!(Expression::parse("a b").unwrap_err().contains("unexpected text"));
    assert!(evaluate("a / b", json!({"a": 1, "b": 0})).unwrap_err().contains("division by zero"));
    assert!(evaluate("a * 2", json!({"a": "x"})).unwrap_err().contains("not a number"));
    assert!(evaluate("z", json!({})).unwrap_err().contains("missing"));
}

#[test]
fn compute_keep_drop_rename_in_order() {
    let config = json!({
        "compute": {"revenue": "price * quantity"},
        "keep": ["user", "price", "meta"],
        "drop": ["meta.debug"],
        "rename": {"user": "customer.id"}
    });
    let mut project = Harness::<Project>::new(config).unwrap();
    let record = json!({"user": "u1", "price": 2.5, "quantity": 4, "noise": 1, "meta": {"debug": true, "v": 1}});
    let out = project.process_json(&[(record, 7)]);
    assert_eq!(out.batch.get(0).unwrap().timestamp(), 7);
    assert_eq!(json_values(&out.batch), vec![json!({"customer": {"id": "u1"}, "price": 2.5, "revenue": 10, "meta": {"v": 1}})]);
}

/// A dotted path with nothing nested there reads the top-level field spelt like it (as
/// window-aggregate writes its group fields): computed from, kept as it is, renamed, dropped;
/// with `keep` naming an array element (the map path) as with the text path.
#[test]
fn dotted_paths_reach_top_level_fields_spelt_like_them() {
    let record = json!({"shop.category": "books", "o.n": 4, "d.e": 1, "items": [1, 2]});
    for keep in [json!(["shop.category", "o.n", "d.e", "m"]), json!(["shop.category", "o.n", "d.e", "m", "items.1"])] {
        let config = json!({"compute": {"m": "o.n * 2"}, "keep": keep, "drop": ["d.e"], "rename": {"shop.category": "category"}});
        let mut project = Harness::<Project>::new(config).unwrap();
        let out = project.process_json(&[(record.clone(), 1)]);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let value = &json_values(&out.batch)[0];
        assert_eq!((&value["category"], &value["o.n"], &value["m"]), (&json!("books"), &json!(4), &json!(8)), "{value}");
        assert!(value.get("shop.category").is_none() && value.get("d.e").is_none() && value.get("shop").is_none(), "{value}");
    }
}

/// Each computed field sees those computed before it in name order, with `keep` as without.
#[test]
fn computed_fields_see_the_fields_computed_before_them_with_keep_too() {
    for config in
        [json!({"compute": {"b": "a + 1", "c": "b * 2"}, "keep": ["a"]}), json!({"compute": {"b": "a + 1", "c": "b * 2"}, "drop": ["x"]})]
    {
        let mut project = Harness::<Project>::new(config).unwrap();
        let out = project.process_json(&[(json!({"a": 7, "x": 0}), 1)]);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        assert_eq!(json_values(&out.batch), vec![json!({"a": 7, "b": 8, "c": 16})]);
    }
    // A field computed from its own former value keeps the fast path (Nexmark q1).
    let mut own = Harness::<Project>::new(json!({"compute": {"price": "2 * price"}, "keep": ["id"]})).unwrap();
    assert!(own.operator().flat.is_some());
    let mut chained = Harness::<Project>::new(json!({"compute": {"b": "a + 1", "c": "b * 2"}, "keep": ["a"]})).unwrap();
    assert!(chained.operator().flat.is_none());
}

#[test]
fn a_projection_without_keep_keeps_every_other_field_and_the_key() {
    let mut project = Harness::<Project>::new(json!({"drop": ["noise"], "rename": {"a": "b"}})).unwrap();
    let mut batch = sluice_sdk::Batch::new();
    batch.push(Some(b"key"), br#"{"a": 1, "noise": 2, "c": [3]}"#, 5, [(&b"h"[..], &b"v"[..])]);
    let out = project.process(&batch);
    let record = out.batch.get(0).unwrap();
    assert_eq!((record.key(), record.timestamp(), record.header("h")), (Some(&b"key"[..]), 5, Some(&b"v"[..])));
    assert_eq!(json_values(&out.batch), vec![json!({"c": [3], "b": 1})]);
}

#[test]
fn the_flat_path_and_the_general_path_agree() {
    let records = [
        (json!({"user": "u1", "price": 2.5, "qty": 4, "noise": {"x": 1}}), 1),
        (json!({"price": 3, "qty": 1, "user": "u\"2"}), 2),
        (json!({"qty": 2, "price": 1, "extra": [1, 2]}), 3),
    ];
    // Top-level only: the flat path. The same with a nested kept field: the general path.
    let flat = json!({"compute": {"total": "price * qty"}, "keep": ["user", "total", "price"], "rename": {"price": "unit_price"}});
    let general = json!({"compute": {"total": "price * qty"}, "keep": ["user", "total", "price", "noise.x"], "drop": ["noise"], "rename": {"price": "unit_price"}});
    let mut flat_project = Harness::<Project>::new(flat).unwrap();
    let mut general_project = Harness::<Project>::new(general).unwrap();
    assert!(flat_project.operator().flat.is_some() && general_project.operator().flat.is_none());
    let flat_out = json_values(&flat_project.process_json(&records).batch);
    assert_eq!(flat_out, json_values(&general_project.process_json(&records).batch));
    assert_eq!(flat_out[0], json!({"user": "u1", "total": 10, "unit_price": 2.5}));
    assert_eq!(flat_out[2], json!({"total": 2, "unit_price": 1}));
    let rejected = flat_project.process_json(&[(json!({"price": "x", "qty": 1}), 0)]).rejected;
    assert_eq!(rejected[0].reason, "compute total: field price is a string, not a number");
}

#[test]
fn records_that_cannot_be_computed_are_rejected_by_index() {
    let mut project = Harness::<Project>::new(json!({"compute": {"total": "price * quantity"}})).unwrap();
    let out = project.process_json(&[(json!({"price": 1, "quantity": 2}), 0), (json!({"price": 1}), 0)]);
    assert_eq!(out.batch.len(), 1);
    assert_eq!(out.rejected[0].index, 1);
    assert_eq!(out.rejected[0].reason, "compute total: field quantity is missing");
}

#[test]
fn empty_or_invalid_configurations_are_refused() {
    assert!(Harness::<Project>::new(json!({})).err().unwrap().contains("nothing to do"));
    assert!(Harness::<Project>::new(json!({"compute": {"x": "1 +"}})).err().unwrap().contains("compute.x"));
    assert!(Harness::<Project>::new(json!({"keep": ["a..b"]})).err().unwrap().contains("invalid field path"));
}

#[test]
fn renames_happen_at_once_with_or_without_keep() {
    let swap = json!({"a": "b", "b": "a", "c": "d"});
    let mut general = Harness::<Project>::new(json!({"rename": swap})).unwrap();
    let mut flat = Harness::<Project>::new(json!({"keep": ["a", "b", "c"], "rename": swap})).unwrap();
    let records = [(json!({"a": 1, "b": 2, "c": 3}), 0)];
    assert!(flat.operator().flat.is_some());
    let general = json_values(&general.process_json(&records).batch);
    assert_eq!(general, vec![json!({"a": 2, "b": 1, "d": 3})]);
    assert_eq!(json_values(&flat.process_json(&records).batch), general);
    let nested = Harness::<Project>::new(json!({"rename": {"user": "customer", "user.id": "id"}})).err();
    assert_eq!(nested.as_deref(), Some("rename: user.id is inside user, which is renamed too; rename one of them"));
}

#[test]
fn numeric_segments_keep_drop_and_rename_array_elements() {
    let record = [(json!({"n": {"x": 1, "y": [10, {"z": 20, "w": 0}, 30]}}), 0)];
    let project = |config: Value| json_values(&Harness::<Project>::new(config).unwrap().process_json(&record).batch);
    assert_eq!(project(json!({"keep": ["n.y.1.z"]})), vec![json!({"n": {"y": [null, {"z": 20}]}})]);
    assert_eq!(project(json!({"keep": ["n.y.2", "n.y.0", "n.x"]})), vec![json!({"n": {"y": [10, null, 30], "x": 1}})]);
    assert_eq!(project(json!({"keep": ["n.y.7"]})), vec![json!({})]);
    assert_eq!(project(json!({"drop": ["n.y.0"]})), vec![json!({"n": {"x": 1, "y": [{"z": 20, "w": 0}, 30]}})]);
    assert_eq!(project(json!({"rename": {"n.y.2": "last"}})), vec![json!({"n": {"x": 1, "y": [10, {"z": 20, "w": 0}]}, "last": 30})]);
}

#[test]
fn two_renames_to_one_name_are_refused() {
    let refusal = Harness::<Project>::new(json!({"rename": {"a": "b", "c": "b"}})).err();
    assert_eq!(refusal.as_deref(), Some("rename: a and c are both renamed to b; give each its own name"));
    assert!(Harness::<Project>::new(json!({"rename": {"a": "b", "c": "d"}})).is_ok());
}

#[test]
fn keep_rejects_records_that_are_not_objects_as_drop_does() {
    let records = [(json!([1, 2]), 0), (json!("str"), 0), (json!(42), 0), (json!({"p": 1, "q": 2}), 0)];
    // The flat path (top-level keep), the general path (a nested keep) and no keep at all.
    for config in [json!({"keep": ["p"]}), json!({"keep": ["p", "o.x"]}), json!({"drop": ["q"]})] {
        let out = Harness::<Project>::new(config.clone()).unwrap().process_json(&records);
        assert_eq!(json_values(&out.batch), vec![json!({"p": 1})], "{config}");
        let reasons: Vec<_> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (0, "payload is a JSON array, but an object was expected"),
                (1, "payload is a JSON string, but an object was expected"),
                (2, "payload is a JSON number, but an object was expected"),
            ],
            "{config}"
        );
    }
}

/// The fields no step computes keep their exact text on the general path (nested paths), with
/// and without `keep`.
#[test]
fn fields_no_step_computes_keep_their_exact_text() {
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "z": -0, "n": {"p": 1.50, "q": 2, "debug": 1}}"#, 0, []);
    let written = |config: Value| {
        let out = Harness::<Project>::new(config).unwrap().process(&batch);
        out.batch.iter().map(|record| String::from_utf8_lossy(record.value()).into_owned()).collect::<Vec<_>>()
    };
    let general = json!({"compute": {"n.total": "n.p * n.q"}, "drop": ["n.debug"], "rename": {"z": "zero"}});
    assert_eq!(written(general), [r#"{"id":18446744073709551617,"n":{"p":1.50,"q":2,"total":3},"zero":-0}"#]);
    let kept = json!({"keep": ["n.p", "id"], "compute": {"n.total": "n.p * n.q"}});
    assert_eq!(written(kept), [r#"{"n":{"p":1.50,"total":3},"id":18446744073709551617}"#]);
}

/// `compute` reads only the fields its expressions name: a number beyond a double's range
/// elsewhere in the record passes with its text, as with `rename` and `drop`.
#[test]
fn compute_passes_fields_it_does_not_read_whatever_they_hold() {
    let mut op = Harness::<Project>::new(json!({"compute": {"t": "id + 1"}})).unwrap();
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"id":1,"n":{"x":1e400}}"#, 0, []);
    batch.push(None, br#"{"id":1,"x":-1e999}"#, 0, []);
    batch.push(None, br#"{"id":1e400}"#, 0, []);
    let out = op.process(&batch);
    let written: Vec<&[u8]> = out.batch.iter().map(|record| record.value()).collect();
    assert_eq!(written, vec![&br#"{"id":1,"n":{"x":1e400},"t":2}"#[..], br#"{"id":1,"x":-1e999,"t":2}"#]);
    assert_eq!(out.rejected.len(), 1, "the field it reads is no double: {:?}", out.rejected);
    assert_eq!(out.rejected[0].index, 2);
}

/// Several elements of one array are dropped or renamed as the record had them, whatever the
/// order they are listed in.
#[test]
fn several_elements_of_one_array_are_removed_as_they_were() {
    let records = [(json!({"items": ["x", "y", "z"]}), 0)];
    let mut dropped = Harness::<Project>::new(json!({"drop": ["items.0", "items.1"]})).unwrap();
    assert_eq!(json_values(&dropped.process_json(&records).batch), vec![json!({"items": ["z"]})]);
    let mut renamed = Harness::<Project>::new(json!({"rename": {"items.0": "first", "items.1": "second"}})).unwrap();
    assert_eq!(json_values(&renamed.process_json(&records).batch), vec![json!({"items": ["z"], "first": "x", "second": "y"})]);
}

/// Renamed values are written shallowest first, so one renamed into another lands inside it;
/// a mix of index and name segments is removed in a consistent order.
#[test]
fn renames_into_a_renamed_field_land_inside_it() {
    let mut op = Harness::<Project>::new(json!({"rename": {"user": "account", "name": "account.name"}})).unwrap();
    let out = op.process_json(&[(json!({"user": {"id": 1}, "name": "Ann"}), 0)]);
    assert_eq!(json_values(&out.batch), vec![json!({"account": {"id": 1, "name": "Ann"}})]);
    let mut mixed = Harness::<Project>::new(json!({"drop": ["items.1", "items.1b", "items.2"]})).unwrap();
    let out = mixed.process_json(&[(json!({"items": ["a", "b", "c", "d"]}), 0)]);
    assert_eq!(json_values(&out.batch), vec![json!({"items": ["a", "d"]})]);
}
