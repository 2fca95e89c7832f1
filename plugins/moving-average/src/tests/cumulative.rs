//! The cumulative average, per record and per interval, and state of version 1.

use proptest::prelude::*;
use sluice_sdk::State;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use super::{every_average, operator};
use crate::MovingAverage;

fn cumulative(emit: Value) -> Value {
    let mut config = json!({"field": "x", "group_by": ["k"], "averages": [{"type": "cumulative"}, {"type": "simple", "records": 2}]});
    if let (Some(config), Some(emit)) = (config.as_object_mut(), emit.as_object()) {
        config.extend(emit.clone());
    }
    config
}

fn record(key: &str, x: f64, timestamp: i64) -> (Value, i64) {
    (json!({"k": key, "x": x}), timestamp)
}

#[test]
fn per_record_it_is_the_mean_of_all_the_keys_values_so_far() {
    let mut op = operator(cumulative(json!({})));
    let out = op.process_json(&[record("a", 2.0, 0), record("b", 10.0, 0), record("a", 4.0, 1), record("a", 9.0, 2), record("b", 20.0, 3)]);
    let averages: Vec<(Value, Value)> =
        json_values(&out.batch).iter().map(|record| (record["cma"].clone(), record["sma_2"].clone())).collect();
    assert_eq!(
        averages,
        vec![(json!(2), json!(2)), (json!(10), json!(10)), (json!(3), json!(3)), (json!(5), json!(6.5)), (json!(15), json!(15))],
        "named cma by default"
    );
    let named = operator(json!({"field": "x", "averages": [{"type": "cumulative", "as": "mean"}]})).process_json(&[record("a", 1.0, 0)]);
    assert_eq!(json_values(&named.batch)[0]["mean"], json!(1));
}

#[test]
fn per_interval_it_is_the_mean_up_to_the_end_of_the_interval() {
    let mut op = operator(cumulative(json!({"emit": "per-interval", "interval": 1000})));
    op.process_json(&[record("a", 1.0, 100), record("a", 3.0, 900), record("a", 8.0, 1500), record("a", 100.0, 2500)]);
    assert_eq!(
        json_values(&op.watermark(2000)),
        vec![
            json!({"interval_end": 1000, "k": "a", "cma": 2, "sma_2": 2, "count": 2}),
            json!({"interval_end": 2000, "k": "a", "cma": 4, "sma_2": 5.5, "count": 1}),
        ]
    );
}

#[test]
fn it_does_not_overflow_near_the_largest_floats() {
    let mut op = operator(json!({"field": "x", "averages": [{"type": "cumulative"}]}));
    let out = op.process_json(&[record("a", 1e308, 0), record("a", 1e308, 1), record("a", 1e308, 2)]);
    let means: Vec<f64> = json_values(&out.batch).iter().filter_map(|record| record["cma"].as_f64()).collect();
    assert_eq!(means.len(), 3);
    assert!(means.iter().all(|mean| (mean / 1e308 - 1.0).abs() < 1e-12), "{means:?}");
}

#[test]
fn snapshot_and_restore_continue_identically() {
    let records: Vec<(Value, i64)> = (0..30).map(|i| record(["a", "b"][i % 2], (i * 7 % 11) as f64, i as i64)).collect();
    let mut op = operator(cumulative(json!({})));
    op.process_json(&records[..17]);
    let mut restored = Harness::<MovingAverage>::restored(cumulative(json!({})), op.snapshot()).unwrap();
    assert_eq!(json_values(&restored.process_json(&records[17..]).batch), json_values(&op.process_json(&records[17..]).batch));
}

#[test]
fn a_cumulative_average_takes_no_window() {
    let refused = Harness::<MovingAverage>::new(json!({"field": "x", "averages": [{"type": "cumulative", "records": 3}]})).err();
    assert!(refused.unwrap_or_default().contains("unknown field `records`, expected `as`"));
    let clash = json!({"field": "x", "emit": "per-interval", "interval": 10, "averages": [{"type": "cumulative", "as": "count"}]});
    assert!(Harness::<MovingAverage>::new(clash).err().unwrap_or_default().contains("already a field of the interval records"));
}

/// A snapshot by the plugin of state version 1 (before `cumulative`), with `every_average()`,
/// after `version_1_records()[..12]`.
const VERSION_1: &[u8] = &[
    2, 5, 91, 34, 97, 34, 93, 10, 4, 0, 2, 0, 0, 0, 0, 0, 0, 208, 63, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 244, 63, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 240, 21, 0, 0, 0, 0, 0, 0, 232, 63, 224, 43, 0, 0, 0, 0, 0, 0, 248, 63, 208, 65, 0, 0, 0,
    0, 0, 0, 2, 64, 192, 87, 0, 0, 0, 0, 0, 0, 208, 63, 176, 109, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 23, 64, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1, 176, 109, 2, 1, 0, 0, 0, 0, 0, 192, 238, 63, 3, 1, 176, 109, 1, 164, 252, 54, 230, 53, 1, 235, 63, 210, 168, 38, 254, 207,
    223, 227, 63, 0, 0, 0, 0, 0, 0, 240, 63, 1, 0, 0, 5, 91, 34, 98, 34, 93, 11, 4, 0, 2, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 248, 10, 0, 0, 0, 0, 0, 0, 252, 63, 232, 32, 0, 0, 0, 0, 0, 0, 4, 64, 216,
    54, 0, 0, 0, 0, 0, 0, 224, 63, 200, 76, 0, 0, 0, 0, 0, 0, 244, 63, 184, 98, 0, 0, 0, 0, 0, 0, 0, 64, 168, 120, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 32, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 168, 120, 2, 1, 0, 0, 0, 0, 0, 64, 234, 63, 3, 1, 168, 120, 1, 204, 139, 95,
    11, 55, 57, 251, 63, 210, 168, 38, 254, 207, 223, 227, 63, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 10, 5, 91, 34, 97, 34, 93, 11, 5, 91,
    34, 98, 34, 93, 12, 0,
];

fn version_1_records() -> Vec<(Value, i64)> {
    let record = |i: usize| {
        let item = ["a", "b"][i % 2];
        (json!({"item": item, "price": (i * 7 % 11) as f64 / 4.0}), (i as i64) * 700)
    };
    (0..20).map(record).collect()
}

#[test]
fn version_1_state_is_read_and_continues_exactly() {
    let records = version_1_records();
    let mut uninterrupted = operator(every_average());
    uninterrupted.process_json(&records[..12]);
    let old = State { version: 1, bytes: VERSION_1.to_vec() };
    let mut restored = Harness::<MovingAverage>::restored(every_average(), old.clone()).expect("version 1 is read");
    assert_eq!(restored.snapshot().bytes, uninterrupted.snapshot().bytes, "the same state");
    assert_eq!(restored.snapshot().version, 5);
    assert_eq!(json_values(&restored.process_json(&records[12..]).batch), json_values(&uninterrupted.process_json(&records[12..]).batch));

    // A cumulative average added to the configuration starts with the next record.
    let mut added = every_average();
    if let Some(averages) = added["averages"].as_array_mut() {
        averages.push(json!({"type": "cumulative"}));
    }
    let mut restored = Harness::<MovingAverage>::restored(added, old).expect("version 1 is read");
    let out = json_values(&restored.process_json(&[(json!({"item": "a", "price": 6}), 20_000)]).batch);
    assert_eq!(out[0]["cma"], json!(6));
    let refused = Harness::<MovingAverage>::restored(every_average(), State { version: 6, bytes: vec![] }).err();
    assert_eq!(refused.unwrap_or_default(), "cannot read state version 6: this plugin reads versions 1 to 5");
}

proptest! {
    /// The cumulative average after each record is the mean of the key's values so far.
    #[test]
    fn it_is_the_mean_of_the_prefix(values in proptest::collection::vec(-1e6f64..1e6, 1..60)) {
        let mut op = operator(json!({"field": "x", "averages": [{"type": "cumulative"}]}));
        let input: Vec<(Value, i64)> = values.iter().map(|x| (json!({"x": x}), 0)).collect();
        let out = json_values(&op.process_json(&input).batch);
        for (position, record) in out.iter().enumerate() {
            let expected = values[..=position].iter().sum::<f64>() / (position + 1) as f64;
            let actual = record["cma"].as_f64().unwrap_or(f64::NAN);
            prop_assert!((actual - expected).abs() <= 1e-9 * expected.abs().max(1.0), "record {}: {} vs {}", position, actual, expected);
        }
    }
}

/// Values near the largest double whose sum overflows, then cancels: the mean is still the
/// mean (a running mean gave 2.49e291 for 0.5 here).
#[test]
fn a_sum_beyond_the_largest_double_that_cancels_later_gives_the_mean() {
    let mut op = operator(cumulative(json!({})));
    let values = [1.0, 2.0, 1e308, 1e308, -1e308, -1e308];
    let records: Vec<_> = values.iter().enumerate().map(|(i, x)| record("a", *x, i as i64)).collect();
    let means: Vec<f64> = json_values(&op.process_json(&records).batch).iter().map(|record| record["cma"].as_f64().unwrap()).collect();
    assert_eq!(means[..2], [1.0, 1.5]);
    assert!((means[3] / 5e307 - 1.0).abs() < 1e-15, "{means:?}");
    assert_eq!(means[5], 0.5, "{means:?}");
}

#[test]
fn a_version_2_mean_whose_sum_had_overflowed_continues_from_its_running_mean() {
    use sluice_sdk::numeric::CompensatedSum;
    let mut finite = CompensatedSum::default();
    finite.add(6.0);
    let kept = crate::cumulative::CumulativeMean::from_version_2(finite, 3, 2.0);
    assert_eq!(kept.mean(), Some(2.0));
    let mut overflowed = CompensatedSum::default();
    overflowed.add(f64::MAX);
    overflowed.add(f64::MAX);
    let mut rebuilt = crate::cumulative::CumulativeMean::from_version_2(overflowed, 2, f64::MAX);
    assert_eq!(rebuilt.mean(), Some(f64::MAX));
    rebuilt.add(-f64::MAX);
    rebuilt.add(-f64::MAX);
    assert_eq!(rebuilt.mean(), Some(0.0));
}
