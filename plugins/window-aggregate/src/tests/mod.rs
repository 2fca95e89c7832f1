//! Native tests of windowing and aggregation logic.

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::WindowAggregate;

pub(crate) fn config() -> Value {
    json!({
        "window": {"type": "tumbling", "size": "10s"},
        "group_by": ["category"],
        "aggregates": [
            {"function": "sum", "field": "price", "as": "revenue"},
            {"function": "count", "as": "orders"},
            {"function": "mean", "field": "price"},
            {"function": "min", "field": "price"},
            {"function": "max", "field": "price"}
        ]
    })
}

pub(crate) fn record(category: &str, price: f64, timestamp: i64) -> (Value, i64) {
    (json!({"category": category, "price": price}), timestamp)
}

#[test]
fn tumbling_windows_emit_per_group_when_the_watermark_passes() {
    let mut op = Harness::<WindowAggregate>::new(config()).unwrap();
    let out = op.process_json(&[record("a", 1.0, 1_000), record("b", 4.0, 2_000), record("a", 3.0, 9_999), record("a", 10.0, 10_000)]);
    assert!(out.batch.is_empty() && out.rejected.is_empty());
    assert!(op.watermark(9_999).is_empty(), "window [0, 10000) must stay open until the watermark reaches its end");
    let closed = op.watermark(10_000);
    assert_eq!(
        json_values(&closed),
        vec![
            json!({"window_start": 0, "window_end": 10000, "category": "a", "revenue": 4, "orders": 2, "mean_price": 2, "min_price": 1, "max_price": 3}),
            json!({"window_start": 0, "window_end": 10000, "category": "b", "revenue": 4, "orders": 1, "mean_price": 4, "min_price": 4, "max_price": 4}),
        ]
    );
    assert!(closed.iter().all(|record| record.timestamp() == 9_999));
    let last = op.watermark(i64::MAX);
    assert_eq!(json_values(&last)[0]["revenue"], json!(10));
}

#[test]
fn late_records_are_dropped_or_rejected() {
    let mut op = Harness::<WindowAggregate>::new(config()).unwrap();
    op.process_json(&[record("a", 1.0, 1_000)]);
    op.watermark(10_000);
    let out = op.process_json(&[record("a", 1.0, 5_000), record("a", 1.0, 15_000)]);
    assert!(out.rejected.is_empty());
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("late_dropped"), Some(&1));

    let mut rejecting = config();
    rejecting["late"] = json!("reject");
    let mut op = Harness::<WindowAggregate>::new(rejecting).unwrap();
    op.watermark(10_000);
    let out = op.process_json(&[record("a", 1.0, 15_000), record("a", 1.0, 5_000)]);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 1);
    assert!(out.rejected[0].reason.contains("already closed by watermark 10000"), "{}", out.rejected[0].reason);
}

#[test]
fn invalid_fields_are_rejected_and_nulls_ignored() {
    let mut op = Harness::<WindowAggregate>::new(config()).unwrap();
    let out = op.process_json(&[
        (json!({"category": "a", "price": "x"}), 0),
        (json!({"category": "a"}), 0),
        (json!({"category": "a", "price": null}), 0),
    ]);
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(reasons, vec![(0, "field price is a string, not a number"), (1, "field price is missing")]);
    let results = json_values(&op.watermark(i64::MAX));
    assert_eq!(
        results,
        vec![
            json!({"window_start": 0, "window_end": 10000, "category": "a", "revenue": 0, "orders": 1, "mean_price": null, "min_price": null, "max_price": null})
        ]
    );
}

#[test]
fn functions_of_any_value_skip_a_missing_field_as_a_null_and_the_record_counts_elsewhere() {
    let config = json!({
        "window": {"type": "tumbling", "size": "10s"},
        "aggregates": [
            {"function": "count", "as": "records"},
            {"function": "first", "field": "coupon"},
            {"function": "last", "field": "coupon"},
            {"function": "distinct", "field": "coupon"}
        ]
    });
    let mut op = Harness::<WindowAggregate>::new(config).unwrap();
    let out = op.process_json(&[
        (json!({"coupon": "A"}), 1_000),
        (json!({}), 2_000),
        (json!({"coupon": null}), 3_000),
        (json!({"coupon": "B"}), 4_000),
    ]);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(
        json_values(&op.watermark(i64::MAX)),
        vec![json!({"window_start": 0, "window_end": 10000, "records": 4, "first_coupon": "A", "last_coupon": "B", "distinct_coupon": 2})]
    );
}

#[test]
fn snapshot_and_restore_continue_the_same_windows() {
    let mut op = Harness::<WindowAggregate>::new(config()).unwrap();
    op.process_json(&[record("a", 1.5, 1_000)]);
    op.watermark(500);
    let mut restored = Harness::<WindowAggregate>::restored(config(), op.snapshot()).unwrap();
    restored.process_json(&[record("a", 2.5, 2_000)]);
    op.process_json(&[record("a", 2.5, 2_000)]);
    assert_eq!(json_values(&restored.watermark(i64::MAX)), json_values(&op.watermark(i64::MAX)));
    let late = restored.process_json(&[record("a", 1.0, 0)]);
    assert!(late.batch.is_empty());
}

#[test]
fn missing_group_fields_form_a_null_group_and_no_group_by_is_global() {
    let mut op =
        Harness::<WindowAggregate>::new(json!({"window": {"type": "tumbling", "size": 1000}, "aggregates": [{"function": "count"}]}))
            .unwrap();
    op.process_json(&[record("a", 1.0, 0), record("b", 1.0, 1)]);
    assert_eq!(json_values(&op.watermark(1000)), vec![json!({"window_start": 0, "window_end": 1000, "count": 2})]);
    let mut op = Harness::<WindowAggregate>::new(config()).unwrap();
    op.process_json(&[(json!({"price": 1}), 0)]);
    assert_eq!(json_values(&op.watermark(i64::MAX))[0]["category"], Value::Null);
}

#[test]
fn equal_group_values_in_different_spellings_share_a_group() {
    let mut op = Harness::<WindowAggregate>::new(
        json!({"window": {"type": "tumbling", "size": 1000}, "group_by": ["k"], "aggregates": [{"function": "count"}]}),
    )
    .unwrap();
    let mut batch = sluice_sdk::Batch::new();
    for payload in
        [&br#"{"k": 1}"#[..], br#"{"k": 1.0}"#, br#"{"k": "b"}"#, br#"{"k": "b"}"#, br#"{"k": {"x": [1, 2]}}"#, br#"{"k":{"x":[1,2]}}"#]
    {
        batch.push(None, payload, 0, []);
    }
    op.process(&batch);
    let counts: Vec<(Value, Value)> = json_values(&op.watermark(1000)).into_iter().map(|r| (r["k"].clone(), r["count"].clone())).collect();
    assert_eq!(counts, vec![(json!("b"), json!(2)), (json!(1), json!(2)), (json!({"x": [1, 2]}), json!(2))]);
}

#[test]
fn negative_timestamps_fall_into_aligned_windows() {
    let mut op = Harness::<WindowAggregate>::new(config()).unwrap();
    op.process_json(&[record("a", 1.0, -1)]);
    let out = json_values(&op.watermark(0));
    assert_eq!((out[0]["window_start"].clone(), out[0]["window_end"].clone()), (json!(-10000), json!(0)));
}

#[test]
fn configuration_errors_are_explained() {
    let refuse = |config: Value| Harness::<WindowAggregate>::new(config).err().unwrap();
    assert!(refuse(json!({"window": {"type": "tumbling", "size": "0s"}, "aggregates": [{"function": "count"}]})).contains("positive"));
    assert!(refuse(json!({"window": {"type": "tumbling", "size": "10s"}, "aggregates": []})).contains("empty"));
    assert!(
        refuse(json!({"window": {"type": "tumbling", "size": "10s"}, "aggregates": [{"function": "sum"}]})).contains("needs a `field`")
    );
    assert!(
        refuse(json!({"window": {"type": "tumbling", "size": "ten"}, "aggregates": [{"function": "count"}]})).contains("invalid duration")
    );
    assert!(
        refuse(json!({"window": {"type": "sliding", "size": "1s"}, "aggregates": [{"function": "count"}]})).contains("unknown variant")
    );
}

#[test]
fn result_names_that_collide_are_refused() {
    let refuse = |group_by: Value, aggregates: Value, compute: Value| {
        let config =
            json!({"window": {"type": "tumbling", "size": "1m"}, "group_by": group_by, "aggregates": aggregates, "compute": compute});
        Harness::<WindowAggregate>::new(config).err()
    };
    let count_as = |name: &str| json!([{"function": "count", "as": name}]);
    assert_eq!(
        refuse(json!(["k"]), count_as("k"), json!({})).as_deref(),
        Some("aggregates[0]: the name \"k\" is already a field of the results; choose another `as`")
    );
    for reserved in ["window_start", "window_end", "revision"] {
        let refusal = refuse(json!([]), count_as(reserved), json!({})).unwrap_or_default();
        assert!(refusal.contains(&format!("the name \"{reserved}\" is already a field")), "{reserved}: {refusal}");
    }
    assert_eq!(
        refuse(json!([]), count_as(""), json!({})).as_deref(),
        Some("aggregates[0]: the result's field name is empty; choose another `as`")
    );
    assert!(refuse(json!([]), count_as("n"), json!({" ": "1"})).unwrap_or_default().contains("is empty"));
    let twice = json!([{"function": "sum", "field": "x", "as": "total"}, {"function": "count", "as": "total"}]);
    assert!(refuse(json!([]), twice, json!({})).unwrap_or_default().starts_with("aggregates[1]: the name \"total\""));
    // Unnamed aggregates default to `<function>_<field>`: two sums of one field collide too.
    let defaults = json!([{"function": "sum", "field": "x"}, {"function": "sum", "field": "x", "when": {"field": "y", "equals": 1}}]);
    assert!(refuse(json!([]), defaults, json!({})).unwrap_or_default().contains("\"sum_x\""));
    assert_eq!(
        refuse(json!(["k"]), count_as("n"), json!({"n": "n * 2"})).as_deref(),
        Some("compute.n: the name \"n\" is already a field of the results; choose another name")
    );
    assert!(refuse(json!(["k"]), count_as("n"), json!({"k": "n * 2"})).unwrap_or_default().starts_with("compute.k:"));
    assert!(refuse(json!(["window_end"]), count_as("n"), json!({})).unwrap_or_default().starts_with("group_by[0]:"));
    assert!(refuse(json!(["k", "k"]), count_as("n"), json!({})).unwrap_or_default().starts_with("group_by[1]:"));
    assert_eq!(refuse(json!(["k"]), count_as("n"), json!({"rate": "n * 2"})), None);
}

mod features;
mod properties;
