//! Native tests of the filter's logic.

use sluice_sdk::Batch;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::Filter;

fn run(config: Value, records: &[Value]) -> Vec<Value> {
    let mut filter = Harness::<Filter>::new(config).unwrap();
    let out = filter.process_json(&records.iter().map(|r| (r.clone(), 0)).collect::<Vec<_>>());
    assert!(out.rejected.is_empty());
    json_values(&out.batch)
}

#[test]
fn eq_keeps_matching_records_only() {
    let records = [json!({"t": "order"}), json!({"t": "view"}), json!({"u": 1})];
    assert_eq!(run(json!({"field": "t", "op": "eq", "value": "order"}), &records), vec![json!({"t": "order"})]);
}

#[test]
fn ordering_comparisons_on_numbers_and_strings() {
    let records = [json!({"p": 5}), json!({"p": 10.0}), json!({"p": 20}), json!({"p": "x"})];
    assert_eq!(run(json!({"field": "p", "op": "gt", "value": 5}), &records), vec![json!({"p": 10.0}), json!({"p": 20})]);
    assert_eq!(run(json!({"field": "p", "op": "le", "value": 10}), &records), vec![json!({"p": 5}), json!({"p": 10.0})]);
    assert_eq!(run(json!({"field": "p", "op": "lt", "value": "y"}), &records), vec![json!({"p": "x"})]);
}

/// Integers compare exactly, past 2⁵³ too, where doubles cannot tell neighbours apart; an
/// integer still equals the same number written with a fraction.
#[test]
fn integers_beyond_two_to_the_53_compare_exactly() {
    let records = [json!({"id": 9_007_199_254_740_992_u64}), json!({"id": 9_007_199_254_740_993_u64}), json!({"id": 5.0})];
    let only = |record: &Value| vec![record.clone()];
    assert_eq!(run(json!({"field": "id", "op": "eq", "value": 9_007_199_254_740_993_u64}), &records), only(&records[1]));
    assert_eq!(run(json!({"field": "id", "op": "gt", "value": 9_007_199_254_740_992_u64}), &records), only(&records[1]));
    assert_eq!(run(json!({"field": "id", "op": "in", "value": [9_007_199_254_740_992_u64]}), &records), only(&records[0]));
    assert_eq!(run(json!({"field": "id", "op": "eq", "value": 5}), &records), only(&records[2]));
    assert_eq!(run(json!({"field": "id", "op": "lt", "value": u64::MAX}), &records), records.to_vec());
}

/// An integer and a double compare by their exact values: the double 2⁵³ is not 2⁵³ + 1.
#[test]
fn integers_and_doubles_compare_exactly() {
    let records: Vec<Value> =
        [r#"{"a": 9007199254740992.0}"#, r#"{"a": 9007199254740993}"#, r#"{"a": 2.5}"#, r#"{"a": -2.5}"#, r#"{"a": 1e300}"#]
            .iter()
            .map(|text| sluice_sdk::serde_json::from_str(text).unwrap())
            .collect();
    let kept = |config: Value| run(config, &records).iter().map(|record| record["a"].to_string()).collect::<Vec<_>>();
    assert_eq!(kept(json!({"field": "a", "op": "eq", "value": 9_007_199_254_740_993_u64})), vec!["9007199254740993"]);
    assert_eq!(kept(json!({"field": "a", "op": "lt", "value": 9_007_199_254_740_993_u64})), vec!["9007199254740992.0", "2.5", "-2.5"]);
    assert_eq!(kept(json!({"field": "a", "op": "gt", "value": 2})), vec!["9007199254740992.0", "9007199254740993", "2.5", "1e+300"]);
    assert_eq!(kept(json!({"field": "a", "op": "le", "value": -3})), Vec::<String>::new());
    assert_eq!(kept(json!({"field": "a", "op": "ge", "value": 2.5})), vec!["9007199254740992.0", "9007199254740993", "2.5", "1e+300"]);
}

/// Integers of up to 18 digits are read as 64-bit numbers and those within ±2⁵³ compared with
/// doubles as doubles; the numbers either side of those limits compare as exactly.
#[test]
fn integers_either_side_of_the_fast_paths_compare_exactly() {
    let texts = [
        r#"{"a": -7}"#,
        r#"{"a": 999999999999999999}"#,
        r#"{"a": 1000000000000000000}"#,
        r#"{"a": -999999999999999999}"#,
        r#"{"a": 9007199254740992}"#,
        r#"{"a": 9007199254740993}"#,
        r#"{"a": -9007199254740993}"#,
    ];
    let records: Vec<Value> = texts.iter().map(|text| sluice_sdk::serde_json::from_str(text).unwrap()).collect();
    let kept = |config: Value| run(config, &records).iter().map(|record| record["a"].to_string()).collect::<Vec<_>>();
    assert_eq!(kept(json!({"field": "a", "op": "lt", "value": -6.5})), vec!["-7", "-999999999999999999", "-9007199254740993"]);
    assert_eq!(kept(json!({"field": "a", "op": "eq", "value": 999_999_999_999_999_999_i64})), vec!["999999999999999999"]);
    assert_eq!(kept(json!({"field": "a", "op": "gt", "value": 999_999_999_999_999_999_i64})), vec!["1000000000000000000"]);
    assert_eq!(kept(json!({"field": "a", "op": "eq", "value": 9_007_199_254_740_992.0})), vec!["9007199254740992"]);
    assert_eq!(
        kept(json!({"field": "a", "op": "lt", "value": -9_007_199_254_740_992.0})),
        vec!["-999999999999999999", "-9007199254740993"]
    );
    assert_eq!(
        kept(json!({"field": "a", "op": "gt", "value": 9_007_199_254_740_992.0})),
        vec!["999999999999999999", "1000000000000000000", "9007199254740993"]
    );
}

/// Numbers inside arrays and objects compare by value too, and objects whatever the order of
/// their members: `{"b": 1, "a": 2}` equals `{"a": 2.0, "b": 1}`, `[1, 2]` equals `[1, 2.0]`.
#[test]
fn arrays_and_objects_compare_their_numbers_by_value() {
    let records: Vec<Value> =
        [r#"{"a": {"b": 1, "a": 2}}"#, r#"{"a": {"a": 2.0, "b": 1}}"#, r#"{"a": 1}"#, r#"{"a": [1, 2]}"#, r#"{"a": [1, 2, 3]}"#]
            .iter()
            .map(|text| sluice_sdk::serde_json::from_str(text).unwrap())
            .collect();
    let kept = |config: Value| run(config, &records).iter().map(|record| record["a"].to_string()).collect::<Vec<_>>();
    let objects = vec![r#"{"b":1,"a":2}"#, r#"{"a":2.0,"b":1}"#];
    assert_eq!(kept(json!({"field": "a", "op": "eq", "value": {"a": 2, "b": 1}})), objects);
    assert_eq!(kept(json!({"field": "a", "op": "in", "value": [1.0, [1, 2.0]]})), vec!["1", "[1,2]"]);
    assert_eq!(kept(json!({"field": "a", "op": "ne", "value": {"a": 2.0, "b": 1}})), vec!["1", "[1,2]", "[1,2,3]"]);
    assert_eq!(kept(json!({"field": "a", "op": "eq", "value": {"a": 2, "b": 1, "c": 3}})), Vec::<String>::new());
}

#[test]
fn exists_missing_in_and_not_in() {
    let records = [json!({"c": "a"}), json!({"c": "b"}), json!({"d": 1})];
    assert_eq!(run(json!({"field": "c", "op": "exists"}), &records).len(), 2);
    assert_eq!(run(json!({"field": "c", "op": "missing"}), &records), vec![json!({"d": 1})]);
    assert_eq!(run(json!({"field": "c", "op": "in", "value": ["a", "z"]}), &records), vec![json!({"c": "a"})]);
    assert_eq!(run(json!({"field": "c", "op": "not-in", "value": ["a"]}), &records), vec![json!({"c": "b"}), json!({"d": 1})]);
    assert_eq!(run(json!({"field": "c", "op": "ne", "value": "a"}), &records), vec![json!({"c": "b"}), json!({"d": 1})]);
}

#[test]
fn nested_fields_and_all_any_combinations() {
    let records = [json!({"o": {"p": 3}, "k": 1}), json!({"o": {"p": 30}, "k": 2}), json!({"o": {"p": 300}, "k": 3})];
    let all = json!({"all": [{"field": "o.p", "op": "gt", "value": 5}, {"field": "k", "op": "lt", "value": 3}]});
    assert_eq!(run(all, &records), vec![records[1].clone()]);
    let any = json!({"any": [{"field": "o.p", "op": "eq", "value": 3}, {"field": "k", "op": "eq", "value": 3}]});
    assert_eq!(run(any, &records), vec![records[0].clone(), records[2].clone()]);
}

#[test]
fn invalid_payloads_are_rejected_with_their_index_or_dropped() {
    let mut batch = Batch::new();
    batch.push_json(&json!({"t": "order"}), 0);
    batch.push(None, b"not json", 0, []);
    // Invalid UTF-8 in a field the filter does not read is not JSON either.
    batch.push(None, b"{\"t\": \"order\", \"w\": \"\xff\"}", 0, []);
    let mut filter = Harness::<Filter>::new(json!({"field": "t", "op": "exists"})).unwrap();
    let out = filter.process(&batch);
    assert_eq!(out.batch.len(), 1);
    let rejected: Vec<(u32, &str)> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, 1);
    assert!(rejected[0].1.contains("not valid JSON"), "{}", rejected[0].1);
    assert_eq!(rejected[1], (2, "payload is not valid JSON: invalid UTF-8 at byte 21"));
    let mut dropping = Harness::<Filter>::new(json!({"field": "t", "op": "exists", "invalid": "drop"})).unwrap();
    let out = dropping.process(&batch);
    assert_eq!((out.batch.len(), out.rejected.len()), (1, 0));
}

#[test]
fn ordering_comparisons_with_a_value_that_cannot_be_ordered_are_refused() {
    let refuse = |op: &str, value: Value| Harness::<Filter>::new(json!({"field": "a", "op": op, "value": value})).err();
    for op in ["gt", "lt", "ge", "le"] {
        for (value, kind) in [(json!([1, 2]), "an array"), (json!({"x": 1}), "an object"), (json!(true), "a boolean")] {
            let expected = format!("predicate on a: `{op}` orders numbers or strings, not {kind}; it could never hold");
            assert_eq!(refuse(op, value).as_deref(), Some(expected.as_str()));
        }
        assert_eq!(refuse(op, json!(3)), None);
        assert_eq!(refuse(op, json!("m")), None);
    }
    let listed = Harness::<Filter>::new(json!({"all": [{"field": "b", "op": "gt", "value": [1]}]})).err().unwrap_or_default();
    assert!(listed.starts_with("all[0]: predicate on b: `gt` orders numbers or strings"), "{listed}");
}

/// An expression computes a number: compared with a string (or a list holding one) it could
/// never hold as meant (`gt "x"` never, `ne "x"` always).
#[test]
fn an_expression_compared_with_anything_but_numbers_is_refused() {
    let refuse = |op: &str, value: Value| Harness::<Filter>::new(json!({"expression": "a * 2", "op": op, "value": value})).err();
    for (op, value) in [("gt", json!("x")), ("eq", json!("x")), ("ne", json!(true)), ("in", json!([1, "x"])), ("not-in", json!(["x"]))] {
        let refusal = refuse(op, value.clone()).unwrap_or_default();
        assert!(refusal.contains("an expression computes a number") && refusal.contains(&format!("`{op}`")), "{op} {value}: {refusal}");
    }
    // The shape of the operand is told first.
    assert!(refuse("exists", json!("x")).unwrap_or_default().contains("takes no `value`"));
    assert!(refuse("in", json!("x")).unwrap_or_default().contains("need an array"));
    assert_eq!(refuse("gt", json!(3)), None);
    assert_eq!(refuse("in", json!([1, 2.5])), None);
}

#[test]
fn bad_configurations_are_refused_with_a_reason() {
    let refuse = |config: Value| Harness::<Filter>::new(config).err().unwrap();
    assert!(refuse(json!({})).contains("no predicate"));
    assert!(refuse(json!({"field": "a", "op": "in", "value": 1})).contains("array"));
    assert!(refuse(json!({"field": "a", "op": "gt"})).contains("needs a `value`"));
    assert!(refuse(json!({"field": "a", "op": "between", "value": 1})).contains("unknown variant"));
    assert!(refuse(json!({"field": "a", "op": "eq", "value": 1, "colour": 2})).contains("unknown field"));
    assert!(refuse(json!({"field": "a"})).contains("`field` (or `expression`) and `op`"));
    let neither = refuse(json!({"all": [{"field": "a", "op": "exists"}, {"op": "exists"}]}));
    assert_eq!(neither, "all[1]: a predicate tests either a `field` or an `expression` (exactly one of them)");
    assert!(refuse(json!({"any": [{"field": "a", "expression": "a * 2", "op": "exists"}]})).starts_with("any[0]: "));
    let unparsable = refuse(json!({"expression": "a %", "op": "eq", "value": 0}));
    assert!(
        unparsable.starts_with("expression: ") && unparsable.contains("of \"a %\"") && unparsable.matches("a %").count() == 1,
        "{unparsable}"
    );
    let no_value = refuse(json!({"expression": "Price * 2", "op": "gt"}));
    assert_eq!(no_value, "predicate on \"Price * 2\": this comparison needs a `value`");
}

#[test]
fn expressions_of_fields_are_compared_as_fields_are() {
    let records = [json!({"a": 3}), json!({"a": 4}), json!({"a": "x"}), json!({"b": 1}), json!({"a": 6.0}), json!({"a": null})];
    let multiple_of_three = json!({"expression": "a % 3", "op": "eq", "value": 0});
    assert_eq!(run(multiple_of_three, &records), vec![json!({"a": 3}), json!({"a": 6.0})]);
    // An expression that cannot be computed (a field missing, null or not a number) is absent.
    let absent = json!({"expression": "a % 3", "op": "missing"});
    assert_eq!(run(absent, &records), vec![json!({"a": "x"}), json!({"b": 1}), json!({"a": null})]);
    let not_in = json!({"expression": "a * 2", "op": "not-in", "value": [6, 8]});
    assert_eq!(run(not_in, &records), vec![json!({"a": "x"}), json!({"b": 1}), json!({"a": 6.0}), json!({"a": null})]);
    let orders = [json!({"price": 2.5, "qty": 4}), json!({"price": 3, "qty": 3}), json!({"price": 1, "qty": 0})];
    let over_nine = json!({"expression": "price * qty", "op": "gt", "value": 9});
    assert_eq!(run(over_nine, &orders), vec![json!({"price": 2.5, "qty": 4})]);
    let division_by_zero = json!({"expression": "price / qty", "op": "ge", "value": 0});
    assert_eq!(run(division_by_zero, &orders).len(), 2, "a result that is not finite is absent");
}

#[test]
fn expressions_combine_with_field_predicates() {
    // Nexmark q2's selection: bids whose auction is a multiple of 123.
    let events = [json!({"type": "bid", "auction": 246}), json!({"type": "bid", "auction": 247}), json!({"type": "auction", "id": 123})];
    let config = json!({"all": [{"field": "type", "op": "eq", "value": "bid"}, {"expression": "auction % 123", "op": "eq", "value": 0}]});
    assert_eq!(run(config, &events), vec![events[0].clone()]);
    let any = json!({"any": [{"expression": "auction % 123", "op": "eq", "value": 1}, {"field": "id", "op": "exists"}]});
    assert_eq!(run(any, &events), vec![events[1].clone(), events[2].clone()]);
}

#[test]
fn predicates_of_every_kind_read_their_own_fields() {
    // The top-level predicate, `all` with a field, a two-field expression naming one twice and a
    // constant expression, and `any`: each predicate must see its own fields among those read
    // in one pass.
    let config = json!({
        "field": "kind", "op": "eq", "value": "order",
        "all": [{"field": "qty", "op": "ge", "value": 1}, {"expression": "price * qty + price", "op": "gt", "value": 10}, {"expression": "2 * 3", "op": "eq", "value": 6}],
        "any": [{"field": "vip", "op": "exists"}, {"expression": "qty % 2", "op": "eq", "value": 0}],
    });
    let records = [
        json!({"kind": "order", "price": 3, "qty": 3}),
        json!({"kind": "order", "price": 4, "qty": 2}),
        json!({"kind": "order", "price": 1, "qty": 2}),
        json!({"kind": "view", "price": 3, "qty": 4}),
        json!({"kind": "order", "price": 2, "qty": 5, "vip": true}),
    ];
    assert_eq!(run(config, &records), vec![records[1].clone(), records[4].clone()]);
}
