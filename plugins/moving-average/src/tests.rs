//! Native tests of the operator: emission, keys, rejections, state and configuration.

mod averages;
mod batching;
mod cumulative;
mod intervals;

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::MovingAverage;

fn operator(config: Value) -> Harness<MovingAverage> {
    match Harness::<MovingAverage>::new(config.clone()) {
        Ok(harness) => harness,
        Err(error) => panic!("config {config} refused: {error}"),
    }
}

fn every_average() -> Value {
    json!({
        "field": "price",
        "group_by": ["item"],
        "averages": [
            {"type": "simple", "records": 2, "as": "sma_2"},
            {"type": "simple", "span": "10s"},
            {"type": "exponential", "alpha": 0.5, "as": "ema"},
            {"type": "exponential", "half_life": "1s"}
        ]
    })
}

fn counter(name: &str) -> u64 {
    sluice_sdk::host::native_metrics().counters.get(name).copied().unwrap_or(0)
}

#[test]
fn per_record_adds_every_average_to_the_record() {
    let mut op = operator(every_average());
    let out = op.process_json(&[
        (json!({"item": "a", "price": 2, "note": "x"}), 0),
        (json!({"item": "a", "price": 4}), 1_000),
        (json!({"item": "a", "price": 9}), 12_000),
    ]);
    assert!(out.rejected.is_empty());
    assert_eq!(
        json_values(&out.batch),
        vec![
            json!({"item": "a", "price": 2, "note": "x", "sma_2": 2, "sma_10s": 2, "ema": 2, "ema_1s": 2}),
            json!({"item": "a", "price": 4, "sma_2": 3, "sma_10s": 3, "ema": 3, "ema_1s": 3}),
            // 11 half-lives later, the old average weighs 2^-11: (1 - 2^-11) * 9 + 2^-11 * 3.
            json!({"item": "a", "price": 9, "sma_2": 6.5, "sma_10s": 9, "ema": 6, "ema_1s": 9.0 - 6.0 / 2048.0}),
        ]
    );
    assert_eq!(out.batch.iter().map(|record| record.timestamp()).collect::<Vec<_>>(), vec![0, 1_000, 12_000]);
}

#[test]
fn into_nests_the_averages_and_records_keep_key_and_headers() {
    let mut config = every_average();
    config["into"] = json!("stats.moving");
    let mut op = operator(config);
    let mut batch = sluice_sdk::Batch::new();
    batch.push(Some(b"k"), br#"{"item": "a", "price": 1, "stats": {"other": true}}"#, 7, [(&b"h"[..], &b"v"[..])]);
    let out = op.process(&batch);
    let record = out.batch.get(0).map(|record| (record.key(), record.timestamp(), record.header("h")));
    assert_eq!(record, Some((Some(&b"k"[..]), 7, Some(&b"v"[..]))));
    assert_eq!(
        json_values(&out.batch),
        vec![json!({"item": "a", "price": 1, "stats": {"other": true, "moving": {"sma_2": 1, "sma_10s": 1, "ema": 1, "ema_1s": 1}}})]
    );
    let blocked = op.process_json(&[(json!({"item": "a", "price": 100, "stats": 5}), 8), (json!({"item": "a", "price": 3}), 9)]);
    assert_eq!(blocked.rejected.len(), 1);
    assert!(blocked.rejected[0].reason.contains("\"stats\" is not an object"), "{}", blocked.rejected[0].reason);
    assert_eq!(json_values(&blocked.batch)[0]["stats"]["moving"]["sma_2"], json!(2), "the rejected record does not count");
}

#[test]
fn keys_are_averaged_separately() {
    let mut config = every_average();
    config["group_by"] = json!(["shop.id", "item"]);
    let mut op = operator(config);
    let out = op.process_json(&[
        (json!({"shop": {"id": 1}, "item": "a", "price": 10}), 0),
        (json!({"shop": {"id": 1}, "item": "b", "price": 20}), 0),
        (json!({"shop": {"id": 2}, "item": "a", "price": 30}), 0),
        (json!({"shop": {"id": 1.0}, "item": "a", "price": 20}), 1),
        (json!({"item": "a", "price": 40}), 1),
    ]);
    let sma: Vec<Value> = json_values(&out.batch).iter().map(|record| record["sma_2"].clone()).collect();
    assert_eq!(sma, vec![json!(10), json!(20), json!(30), json!(15), json!(40)], "1 and 1.0 are one shop; a missing shop is its own key");

    let mut global = operator(json!({"field": "price", "averages": [{"type": "simple", "records": 3}]}));
    let out = global.process_json(&[(json!({"item": "a", "price": 1}), 0), (json!({"item": "b", "price": 2}), 0)]);
    assert_eq!(json_values(&out.batch)[1]["sma_3"], json!(1.5));
}

#[test]
fn null_values_pass_unchanged_and_are_counted() {
    let mut op = operator(every_average());
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"item":"a", "price": null}"#, 0, []);
    batch.push(None, br#"{"item": "a", "price": 5}"#, 1, []);
    let out = op.process(&batch);
    assert!(out.rejected.is_empty());
    assert_eq!(out.batch.get(0).map(|record| record.value()), Some(&br#"{"item":"a", "price": null}"#[..]));
    assert_eq!(json_values(&out.batch)[1]["sma_2"], json!(5), "the null does not count");
    assert_eq!(counter("null_skipped"), 1);
}

#[test]
fn records_without_a_usable_number_are_rejected_with_the_reason() {
    let mut op = operator(every_average());
    let mut batch = sluice_sdk::Batch::new();
    for payload in [
        &br#"{"item": "a"}"#[..],
        br#"{"item": "a", "price": "12"}"#,
        br#"{"item": "a", "price": true}"#,
        br#"{"item": "a", "price": {"amount": 1}}"#,
        br#"{"item": "a", "price": 1e400}"#,
        br#"[1, 2]"#,
        br#"{"item": "a", "price": 1"#,
        br#"{"item": "a", "price": 8}"#,
    ] {
        batch.push(None, payload, 0, []);
    }
    let out = op.process(&batch);
    let reasons: Vec<(u32, &str)> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(
        reasons[..6],
        [
            (0, "field price is missing"),
            (1, "field price is a string, not a number"),
            (2, "field price is a boolean, not a number"),
            (3, "field price is an object, not a number"),
            (4, "field price is 1e400, beyond the range of a 64-bit float"),
            (5, "field price is missing"),
        ]
    );
    assert_eq!(reasons[6].0, 6);
    assert!(reasons[6].1.starts_with("payload is not valid JSON"), "{}", reasons[6].1);
    assert_eq!(json_values(&out.batch), vec![json!({"item": "a", "price": 8, "sma_2": 8, "sma_10s": 8, "ema": 8, "ema_1s": 8})]);
}

#[test]
fn the_least_recently_used_key_is_forgotten_beyond_max_keys() {
    let mut op = operator(json!({"field": "x", "group_by": ["k"], "max_keys": 2, "averages": [{"type": "simple", "records": 5}]}));
    let record = |key: &str, x: i64| (json!({"k": key, "x": x}), 0);
    let out = op.process_json(&[record("a", 1), record("b", 10), record("a", 3), record("c", 100), record("b", 20), record("a", 5)]);
    let sma: Vec<Value> = json_values(&out.batch).iter().map(|record| record["sma_5"].clone()).collect();
    // "c" forgets "b" (least recently used), then "b" forgets "a": both start afresh.
    assert_eq!(sma, vec![json!(1), json!(10), json!(2), json!(100), json!(20), json!(5)]);
    assert_eq!(counter("keys_evicted"), 3);
    op.watermark(0);
    assert_eq!(sluice_sdk::host::native_metrics().gauges.get("keys"), Some(&2.0));
}

#[test]
fn snapshot_and_restore_continue_identically() {
    let record = |i: usize| {
        let item = ["a", "b"][i % 2];
        (json!({"item": item, "price": (i * 7 % 11) as f64 / 4.0}), (i as i64) * 700)
    };
    let records: Vec<(Value, i64)> = (0..40).map(record).collect();
    let mut op = operator(every_average());
    op.process_json(&records[..25]);
    let mut restored = Harness::<MovingAverage>::restored(every_average(), op.snapshot()).unwrap();
    assert_eq!(json_values(&restored.process_json(&records[25..]).batch), json_values(&op.process_json(&records[25..]).batch));
    assert_eq!(restored.snapshot(), op.snapshot());
}

#[test]
fn state_of_other_averages_is_matched_up_after_a_configuration_change() {
    let mut op = operator(every_average());
    op.process_json(&[(json!({"item": "a", "price": 4}), 0), (json!({"item": "a", "price": 8}), 0)]);
    let changed = json!({"field": "price", "group_by": ["item"], "averages": [
        {"type": "exponential", "alpha": 1, "as": "sma_2"},
        {"type": "simple", "span": "10s"},
        {"type": "simple", "records": 3},
    ]});
    let mut restored = Harness::<MovingAverage>::restored(changed, op.snapshot()).unwrap();
    let out = json_values(&restored.process_json(&[(json!({"item": "a", "price": 0}), 0)]).batch);
    assert_eq!(out, vec![json!({"item": "a", "price": 0, "sma_2": 0, "sma_10s": 4, "sma_3": 0})]);
}

/// A reorder (a swap, a file edit, a restart with the averages listed in another order) gives
/// each average its own state back: before, states were taken by place, so `e9` went on from
/// `e3`'s value.
#[test]
fn averages_listed_in_another_order_continue_each_from_its_own_state() {
    const ITEMS: [&str; 3] = ["a", "b", "c"];
    let config = |order: [usize; 4]| {
        let averages = [
            json!({"type": "exponential", "alpha": 0.3, "as": "e3"}),
            json!({"type": "exponential", "alpha": 0.9, "as": "e9"}),
            json!({"type": "simple", "span": "3s", "as": "sp3"}),
            json!({"type": "cumulative", "as": "c"}),
        ];
        json!({"field": "price", "group_by": ["item"], "averages": order.map(|at| averages[at].clone())})
    };
    let records: Vec<(Value, i64)> =
        (0..60).map(|i| (json!({"item": ITEMS[i % 3], "price": (i * 37 % 23) as f64}), i as i64 * 300)).collect();
    let mut unchanged = operator(config([0, 1, 2, 3]));
    unchanged.process_json(&records[..30]);
    let mut reordered = Harness::<MovingAverage>::restored(config([3, 1, 0, 2]), unchanged.snapshot()).unwrap();
    let expected = json_values(&unchanged.process_json(&records[30..]).batch);
    let got = json_values(&reordered.process_json(&records[30..]).batch);
    assert_eq!(got.len(), expected.len());
    for (got, expected) in got.iter().zip(&expected) {
        for name in ["e3", "e9", "sp3", "c"] {
            assert_eq!(got[name], expected[name], "{name} in {got}");
        }
    }
}

#[test]
fn an_average_whose_parameter_changed_goes_on_under_its_name_and_another_field_starts_afresh() {
    let config = |field: &str, alpha: f64| json!({"field": field, "averages": [{"type": "exponential", "alpha": alpha, "as": "ema"}]});
    let mut op = operator(config("price", 0.5));
    op.process_json(&[(json!({"price": 10, "qty": 1}), 0)]);
    let mut retuned = Harness::<MovingAverage>::restored(config("price", 0.25), op.snapshot()).unwrap();
    let out = json_values(&retuned.process_json(&[(json!({"price": 2, "qty": 1}), 0)]).batch);
    assert_eq!(out[0]["ema"], json!(8), "0.25 * 2 + 0.75 * 10");
    let mut other_field = Harness::<MovingAverage>::restored(config("qty", 0.5), op.snapshot()).unwrap();
    let out = json_values(&other_field.process_json(&[(json!({"price": 2, "qty": 1}), 0)]).batch);
    assert_eq!(out[0]["ema"], json!(1), "the average of qty starts afresh");
}

#[test]
fn default_names_describe_the_average() {
    let mut op = operator(json!({"field": "x", "averages": [
        {"type": "simple", "records": 10}, {"type": "simple", "span": "5m"}, {"type": "simple", "span": 1500},
        {"type": "exponential", "alpha": 0.3}, {"type": "exponential", "half_life": "2h"}
    ]}));
    let out = json_values(&op.process_json(&[(json!({"x": 1}), 0)]).batch);
    let names: Vec<&String> = out[0].as_object().map(|object| object.keys().collect()).unwrap_or_default();
    assert_eq!(names, ["x", "sma_10", "sma_5m", "sma_1500ms", "ema_0_3", "ema_2h"]);
}

#[test]
fn configuration_errors_are_explained() {
    let refuse = |averages: Value, extra: Value| {
        let mut config = json!({"field": "x", "averages": averages});
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        Harness::<MovingAverage>::new(config).err().unwrap_or_default()
    };
    let none = json!({});
    let alpha = |alpha: f64| json!([{"type": "exponential", "alpha": alpha}]);
    assert_eq!(refuse(alpha(0.0), none.clone()), "averages[0]: alpha must be greater than 0 and at most 1, got 0");
    assert_eq!(refuse(alpha(1.5), none.clone()), "averages[0]: alpha must be greater than 0 and at most 1, got 1.5");
    assert_eq!(
        refuse(json!([{"type": "simple", "records": 1}, {"type": "exponential", "alpha": 0.5, "half_life": "1m"}]), none.clone()),
        "averages[1]: give `alpha` or `half_life`, not both"
    );
    assert!(refuse(json!([{"type": "exponential"}]), none.clone()).contains("needs `alpha` (0 < alpha <= 1) or `half_life`"));
    assert!(refuse(json!([{"type": "simple"}]), none.clone()).contains("needs `records` (how many records) or `span`"));
    assert_eq!(
        refuse(json!([{"type": "simple", "records": 3, "span": "1m"}]), none.clone()),
        "averages[0]: give `records` or `span`, not both"
    );
    assert_eq!(refuse(json!([{"type": "simple", "records": 0}]), none.clone()), "averages[0]: records must be at least 1");
    assert_eq!(refuse(json!([{"type": "simple", "span": "0s"}]), none.clone()), "averages[0]: span must be positive");
    assert_eq!(refuse(json!([{"type": "exponential", "half_life": 0}]), none.clone()), "averages[0]: half_life must be positive");
    assert!(refuse(json!([{"type": "simple", "records": 20}]), json!({"max_records": 10})).contains("raise max_records"));
    assert!(refuse(json!([{"type": "simple", "records": 2, "alpha": 0.1}]), none.clone()).contains("unknown field `alpha`"));
    assert!(refuse(alpha(0.5), json!({"window": "1m"})).contains("unknown field `window`"));
    assert!(refuse(json!([{"type": "median", "records": 2}]), none.clone()).contains("unknown variant `median`"));
    assert!(refuse(json!([{"type": "simple", "span": "soon"}]), none.clone()).contains("invalid duration"));
    assert!(refuse(json!([]), none.clone()).contains("`averages` is empty"));
    assert!(refuse(json!([{"type": "simple", "records": 2, "as": ""}]), none.clone()).contains("`as` must not be empty"));
    assert_eq!(
        refuse(json!([{"type": "exponential", "alpha": 0.3}, {"type": "exponential", "alpha": 0.3}]), none.clone()),
        "averages[1]: the name \"ema_0_3\" is already used by averages[0]; give one of them another `as`"
    );
    assert!(refuse(alpha(0.5), json!({"max_keys": 0})).contains("max_keys: must be at least 1"));
    assert!(refuse(alpha(0.5), json!({"max_records": 0})).contains("max_records: must be at least 1"));
    assert!(refuse(alpha(0.5), json!({"emit": "per-window"})).contains("unknown variant `per-window`"));
}

#[test]
fn into_may_not_be_or_overlap_the_averaged_field() {
    let refuse = |field: &str, into: &str| {
        let config = json!({"field": field, "into": into, "averages": [{"type": "cumulative"}]});
        Harness::<MovingAverage>::new(config).err()
    };
    assert_eq!(
        refuse("x", "x").as_deref(),
        Some("`into` = \"x\" is the averaged field: the averages would overwrite it; choose another path")
    );
    assert_eq!(
        refuse("price.value", "price").as_deref(),
        Some("`into` = \"price\" overlaps the averaged field \"price.value\" (one holds the other); choose another path")
    );
    assert!(refuse("price", "price.average").is_some_and(|refusal| refusal.contains("overlaps")));
    assert_eq!(refuse("price", "price_average"), None);
    assert_eq!(refuse("price.value", "price.average"), None);
}

#[test]
fn an_average_may_not_be_named_as_a_field_it_is_computed_from() {
    let refuse = |averages: Value, into: Option<&str>| {
        let mut config = json!({"field": "price", "group_by": ["user"], "averages": averages});
        if let Some(into) = into {
            config["into"] = json!(into);
        }
        Harness::<MovingAverage>::new(config).err()
    };
    assert_eq!(
        refuse(json!([{"type": "cumulative", "as": "price"}]), None).as_deref(),
        Some(
            "averages[0]: the name \"price\" is the averaged field, which the averages added to the record would overwrite; \
             choose another `as`, or nest the averages with `into`"
        )
    );
    let on_the_key = refuse(json!([{"type": "cumulative"}, {"type": "exponential", "alpha": 0.5, "as": "user"}]), None);
    assert!(on_the_key.is_some_and(|refusal| refusal.starts_with("averages[1]: the name \"user\" is a group_by field")));
    assert_eq!(refuse(json!([{"type": "cumulative", "as": "price"}]), Some("averages")), None, "nested: nothing overwritten");
}

/// The record's own fields pass with their exact text, and a group's value is written exactly
/// in per-interval records.
#[test]
fn records_and_groups_keep_the_exact_text_of_their_values() {
    let mut op = operator(json!({"field": "price", "group_by": ["id"], "averages": [{"type": "simple", "records": 2, "as": "sma_2"}]}));
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "z": -0, "price": 1.50}"#, 0, []);
    let out = op.process(&batch);
    let written: Vec<&[u8]> = out.batch.iter().map(|record| record.value()).collect();
    assert_eq!(written, [br#"{"id":18446744073709551617,"z":-0,"price":1.50,"sma_2":1.5}"#.as_slice()]);

    let config = json!({"field": "price", "group_by": ["id"], "emit": "per-interval", "interval": "1s",
        "averages": [{"type": "simple", "records": 5, "as": "mean"}]});
    let mut op = operator(config);
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "price": 2}"#, 0, []);
    batch.push(None, br#"{"id": 18446744073709551618, "price": 4}"#, 0, []);
    op.process(&batch);
    let out = op.watermark(1_000);
    let mut written: Vec<String> = out.iter().map(|record| String::from_utf8_lossy(record.value()).into_owned()).collect();
    written.sort();
    assert_eq!(
        written,
        [
            r#"{"interval_end":1000,"id":18446744073709551617,"mean":2,"count":1}"#,
            r#"{"interval_end":1000,"id":18446744073709551618,"mean":4,"count":1}"#
        ]
    );
}

/// Two averages alike, one added later, keep each its own state when listed the other way
/// round (by their `as`).
#[test]
fn twin_averages_keep_each_its_own_state_whatever_their_order() {
    let config = |names: &[&str]| json!({"field": "price", "averages": names.iter().map(|name| json!({"type": "exponential", "alpha": 0.5, "as": name})).collect::<Vec<_>>()});
    let mut op = operator(config(&["old"]));
    op.process_json(&[(json!({"price": 100}), 0), (json!({"price": 100}), 1)]);
    let mut both = Harness::<MovingAverage>::restored(config(&["old", "new"]), op.snapshot()).unwrap();
    both.process_json(&[(json!({"price": 0}), 2)]);
    let mut reordered = Harness::<MovingAverage>::restored(config(&["new", "old"]), both.snapshot()).unwrap();
    let out = json_values(&reordered.process_json(&[(json!({"price": 0}), 3)]).batch);
    assert_eq!((out[0]["old"].clone(), out[0]["new"].clone()), (json!(25), json!(0)), "{}", out[0]);
}

/// Keys are values of the `group_by` fields: under another `group_by` they would name other
/// groups (item 5's averages carried on as seller 5's), so every key is forgotten.
#[test]
fn another_group_by_forgets_every_key() {
    let config = |group: &str| json!({"field": "price", "group_by": [group], "averages": [{"type": "cumulative", "as": "mean"}]});
    let mut op = operator(config("item"));
    op.process_json(&[(json!({"item": 5, "seller": 5, "price": 100}), 0)]);
    let mut regrouped = Harness::<MovingAverage>::restored(config("seller"), op.snapshot()).unwrap();
    let out = json_values(&regrouped.process_json(&[(json!({"item": 7, "seller": 5, "price": 2}), 1)]).batch);
    assert_eq!(out[0]["mean"], json!(2), "seller 5 starts afresh: {}", out[0]);
    let mut same = Harness::<MovingAverage>::restored(config("item"), op.snapshot()).unwrap();
    let out = json_values(&same.process_json(&[(json!({"item": 5, "seller": 9, "price": 2}), 1)]).batch);
    assert_eq!(out[0]["mean"], json!(51), "the same group_by goes on: {}", out[0]);
}
