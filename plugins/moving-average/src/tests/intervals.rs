//! Per-interval emission: when intervals are emitted, what they hold, and late records.

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use super::{counter, operator};
use crate::MovingAverage;

fn config() -> Value {
    json!({
        "field": "x",
        "group_by": ["k"],
        "averages": [{"type": "simple", "records": 10, "as": "sma"}, {"type": "exponential", "alpha": 0.5, "as": "ema"}],
        "emit": "per-interval",
        "interval": 1000
    })
}

fn record(key: &str, x: f64, timestamp: i64) -> (Value, i64) {
    (json!({"k": key, "x": x}), timestamp)
}

#[test]
fn an_interval_is_emitted_once_the_watermark_passes_its_end() {
    let mut op = operator(config());
    let out = op.process_json(&[record("a", 1.0, 100), record("b", 10.0, 500), record("a", 3.0, 900), record("a", 5.0, 1500)]);
    assert!(out.batch.is_empty() && out.rejected.is_empty(), "nothing is emitted per record");
    assert!(op.watermark(999).is_empty(), "the interval [0, 1000) is not over before watermark 1000");
    let first = op.watermark(1000);
    assert_eq!(
        json_values(&first),
        vec![
            json!({"interval_end": 1000, "k": "a", "sma": 2, "ema": 2, "count": 2}),
            json!({"interval_end": 1000, "k": "b", "sma": 10, "ema": 10, "count": 1}),
        ]
    );
    assert!(first.iter().all(|record| record.timestamp() == 999));
    let second = op.watermark(3000);
    assert_eq!(json_values(&second), vec![json!({"interval_end": 2000, "k": "a", "sma": 3, "ema": 3.5, "count": 1})]);
    assert!(op.watermark(i64::MAX).is_empty(), "keys without records in an interval emit nothing");
}

#[test]
fn values_are_applied_in_event_time_order_whatever_their_arrival() {
    let sorted = [record("a", 1.0, 100), record("a", 9.0, 200), record("a", 7.0, 200), record("a", 5.0, 300), record("a", 2.0, 1200)];
    let shuffled = [sorted[4].clone(), sorted[3].clone(), sorted[1].clone(), sorted[0].clone(), sorted[2].clone()];
    let run = |records: &[(Value, i64)]| {
        let mut op = operator(config());
        op.process_json(records);
        json_values(&op.watermark(i64::MAX))
    };
    let expected = vec![
        // ema: 1, then 9 and 7 (same time, in arrival order) give 5 and 6, then 5 gives 5.5.
        json!({"interval_end": 1000, "k": "a", "sma": 5.5, "ema": 5.5, "count": 4}),
        json!({"interval_end": 2000, "k": "a", "sma": 4.8, "ema": 3.75, "count": 1}),
    ];
    assert_eq!(run(&sorted), expected);
    assert_eq!(run(&shuffled), expected);
}

#[test]
fn intervals_are_ordered_by_end_then_key_and_hold_only_their_past() {
    let mut op = operator(config());
    op.process_json(&[record("a", 1.0, 100), record("b", 4.0, 1100), record("a", 3.0, 2100), record("b", 2.0, 50)]);
    let out = json_values(&op.watermark(5000));
    let summary: Vec<(Value, Value, Value)> =
        out.iter().map(|record| (record["interval_end"].clone(), record["k"].clone(), record["sma"].clone())).collect();
    assert_eq!(
        summary,
        vec![
            (json!(1000), json!("a"), json!(1)),
            (json!(1000), json!("b"), json!(2)),
            (json!(2000), json!("b"), json!(3)),
            (json!(3000), json!("a"), json!(2)),
        ]
    );
}

#[test]
fn records_of_emitted_intervals_are_dropped_or_rejected() {
    let mut op = operator(config());
    op.process_json(&[record("a", 1.0, 100)]);
    op.watermark(1500);
    let out = op.process_json(&[record("a", 100.0, 999), record("a", 3.0, 1200), record("a", 5.0, -1)]);
    assert!(out.rejected.is_empty());
    assert_eq!(counter("late_dropped"), 2);
    let emitted = json_values(&op.watermark(2000));
    assert_eq!(
        emitted,
        vec![json!({"interval_end": 2000, "k": "a", "sma": 2, "ema": 2, "count": 1})],
        "behind the watermark but in an open interval: counted"
    );

    let mut rejecting = config();
    rejecting["late"] = json!("reject");
    let mut op = operator(rejecting);
    op.watermark(1000);
    let out = op.process_json(&[record("a", 1.0, 1000), record("a", 1.0, 999)]);
    let reasons: Vec<(u32, &str)> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![(1, "late record: event time 999 belongs to the interval ending at 1000, which the watermark 1000 has passed")]
    );
}

/// An operator keeping at most 2 records per key and average.
fn keeping_two() -> Harness<MovingAverage> {
    operator(op_config_keeping_two())
}

fn op_config_keeping_two() -> Value {
    let mut bounded = config();
    bounded["max_records"] = json!(2);
    bounded["averages"][0]["records"] = json!(2);
    bounded
}

#[test]
fn a_key_holds_at_most_max_records_records_for_the_watermark() {
    let mut op = keeping_two();
    let out = op.process_json(&[record("a", 1.0, 10), record("a", 2.0, 20), record("a", 3.0, 30), record("b", 4.0, 40)]);
    assert!(out.rejected.is_empty(), "a batch brings as many as it has: {:?}", out.rejected);
    assert!(op.watermark(5).is_empty(), "the watermark lags: three records of a still wait past it");
    let out = op.process_json(&[record("a", 5.0, 50), record("b", 6.0, 60)]);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].index, 0);
    assert!(out.rejected[0].reason.contains("lower the pipeline's out_of_orderness or raise max_records"), "{}", out.rejected[0].reason);
    let counts: Vec<Value> = json_values(&op.watermark(1000)).iter().map(|record| record["count"].clone()).collect();
    assert_eq!(counts, vec![json!(3), json!(2)]);
}

#[test]
fn nulls_are_not_counted_and_forgotten_keys_emit_at_once() {
    let mut limited = config();
    limited["max_keys"] = json!(1);
    let mut op = operator(limited);
    let out = op.process_json(&[(json!({"k": "a", "x": null}), 5), record("a", 2.0, 100), record("b", 4.0, 200)]);
    assert_eq!(json_values(&out.batch), vec![json!({"interval_end": 1000, "k": "a", "sma": 2, "ema": 2, "count": 1})]);
    assert_eq!(out.batch.get(0).map(|record| record.timestamp()), Some(999));
    assert_eq!((counter("null_skipped"), counter("keys_evicted")), (1, 1));
    assert_eq!(json_values(&op.watermark(1000)), vec![json!({"interval_end": 1000, "k": "b", "sma": 4, "ema": 4, "count": 1})]);
}

#[test]
fn intervals_are_aligned_on_the_epoch_for_negative_times_too() {
    let mut op = operator(config());
    op.process_json(&[record("a", 1.0, -1), record("a", 2.0, -1000)]);
    let ends: Vec<Value> = json_values(&op.watermark(0)).iter().map(|record| record["interval_end"].clone()).collect();
    assert_eq!(ends, vec![json!(0)]);
}

#[test]
fn restored_state_keeps_waiting_records_and_open_intervals() {
    let records: Vec<(Value, i64)> = (0..30).map(|i| record(["a", "b", "c"][i % 3], (i * 5 % 7) as f64, (i as i64) * 170)).collect();
    let mut op = operator(config());
    op.process_json(&records[..20]);
    op.watermark(2000);
    let mut restored = Harness::<MovingAverage>::restored(config(), op.snapshot()).unwrap();
    for harness in [&mut op, &mut restored] {
        harness.process_json(&records[20..]);
    }
    assert_eq!(json_values(&restored.watermark(4000)), json_values(&op.watermark(4000)));
    assert_eq!(json_values(&restored.watermark(i64::MAX)), json_values(&op.watermark(i64::MAX)));
}

#[test]
fn per_interval_configuration_errors_are_explained() {
    let refuse = |changes: Value| {
        let mut config = config();
        if let (Some(config), Some(changes)) = (config.as_object_mut(), changes.as_object()) {
            config.extend(changes.clone());
        }
        Harness::<MovingAverage>::new(config).err().unwrap_or_default()
    };
    assert_eq!(refuse(json!({"interval": null})), "emit = \"per-interval\" needs `interval`, such as interval = \"1m\"");
    assert_eq!(refuse(json!({"interval": "0s"})), "interval: must be positive");
    assert_eq!(refuse(json!({"into": "averages"})), "`into` applies only to emit = \"per-record\"");
    assert_eq!(refuse(json!({"emit": "per-record"})), "`interval` applies only to emit = \"per-interval\"");
    assert_eq!(refuse(json!({"emit": "per-record", "interval": null, "late": "drop"})), "`late` applies only to emit = \"per-interval\"");
    assert_eq!(
        refuse(json!({"averages": [{"type": "exponential", "alpha": 0.5, "as": "count"}]})),
        "averages[0]: the name \"count\" is already a field of the interval records; choose another `as`"
    );
    assert!(refuse(json!({"averages": [{"type": "simple", "records": 2, "as": "k"}]})).contains("the name \"k\" is already a field"));
}

#[test]
fn intervals_near_the_earliest_time_end_where_they_are_aligned() {
    let mut op =
        operator(json!({"field": "x", "averages": [{"type": "cumulative", "as": "cma"}], "emit": "per-interval", "interval": "1m"}));
    // i64::MIN lies 4,192 ms after the start of its minute (which is not representable).
    let offset = i64::MIN.rem_euclid(60_000);
    let next_minute = i64::MIN + (60_000 - offset);
    let out = op.process_json(&[(json!({"x": 1}), i64::MIN), (json!({"x": 3}), next_minute - 1), (json!({"x": 5}), next_minute)]);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let ends: Vec<_> =
        json_values(&op.watermark(i64::MAX)).iter().map(|result| (result["interval_end"].as_i64(), result["count"].as_i64())).collect();
    assert_eq!(ends, [(Some(next_minute), Some(2)), (Some(next_minute + 60_000), Some(1))]);
    assert_eq!(crate::keys::interval_end(i64::MAX - 1, 60_000), i64::MAX, "ends past the latest time saturate");
}

/// `max_records` bounds the records a key holds from before the latest watermark: a batch
/// brings as many as it has (watermarks come between batches), so in-order records are never
/// refused whatever the batch size, while a watermark that lags is still noticed.
#[test]
fn max_records_counts_the_records_waiting_from_before_the_latest_watermark_not_a_batch() {
    let mut op = keeping_two();
    let in_order = [record("a", 1.0, 100), record("a", 2.0, 200), record("a", 3.0, 1500), record("a", 4.0, 2500)];
    let out = op.process_json(&in_order);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let counts: Vec<Value> = json_values(&op.watermark(2500)).iter().map(|result| result["count"].clone()).collect();
    assert_eq!(counts, vec![json!(2), json!(1)], "intervals ending at 1000 and 2000");
    // The watermark stays at 2500: three records held after it wait, then the fourth and
    // fifth, from a batch after the next watermark offered, find two waiting from before it.
    op.process_json(&[record("a", 5.0, 2600), record("a", 6.0, 2700)]);
    assert!(op.watermark(2500).is_empty());
    let lagging = op.process_json(&[record("a", 7.0, 2800), record("a", 8.0, 2900)]);
    assert_eq!(lagging.rejected.len(), 2, "{:?}", lagging.rejected);
    assert!(lagging.rejected[0].reason.contains("already wait for the watermark"), "{}", lagging.rejected[0].reason);
}

/// While no watermark comes at all, an instance holds at most `max_keys` × `max_records`
/// records, all keys together, and says why it refuses the next.
#[test]
fn records_held_while_no_watermark_comes_are_bounded_per_instance() {
    let mut bounded = config();
    (bounded["max_keys"], bounded["max_records"]) = (json!(3), json!(10));
    let mut op = operator(bounded);
    let records: Vec<(Value, i64)> = (0..31).map(|n| record(["a", "b", "c"][n % 3], 1.0, 0)).collect();
    let out = op.process_json(&records);
    assert_eq!(out.rejected.len(), 1, "the 31st");
    assert_eq!(out.rejected[0].index, 30);
    assert!(out.rejected[0].reason.starts_with("30 records (max_keys × max_records) wait for a watermark"), "{}", out.rejected[0].reason);
    assert!(op.watermark(1000).len() == 3 && op.process_json(&records[..1]).rejected.is_empty(), "a watermark frees the bound");
}

/// State of version 3 (without the count of records held since the watermark) is read.
#[test]
fn version_3_state_is_read() {
    let mut op = keeping_two();
    op.process_json(&[record("a", 1.0, 10), record("b", 2.0, 20), record("a", 3.0, 1500)]);
    assert_eq!(op.watermark(1000).len(), 2);
    let current = op.snapshot();
    assert_eq!(current.version, 5);
    // Version 4 appends the count (0 after a watermark, one byte) to version 3's encoding.
    let version_4 = current.decode::<crate::AveragesByKey>().expect("decodes").version_4_bytes();
    assert_eq!(version_4.last(), Some(&0));
    let version_3 = sluice_sdk::State { version: 3, bytes: version_4[..version_4.len() - 1].to_vec() };
    let mut restored = Harness::<MovingAverage>::restored(op_config_keeping_two(), version_3).expect("version 3 is read");
    assert_eq!(restored.snapshot().bytes, current.bytes);
    assert_eq!(json_values(&restored.watermark(2000)), json_values(&op.watermark(2000)));
}
