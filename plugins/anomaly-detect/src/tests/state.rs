//! State tests: batch-size independence, snapshot and restore, the bound on keys, extreme values.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use super::{alert_times, calm_series, operator, records};
use crate::AnomalyDetect;

fn every_detector(max_keys: usize) -> Value {
    json!({"field": "latency", "group_by": ["host"], "warm_up": 5, "pass_through": true, "max_keys": max_keys, "detectors": [
        {"type": "zscore", "half_life": "30s"}, {"type": "mad", "window": 10},
        {"type": "threshold", "max": 130}, {"type": "rate-of-change", "max_increase": 0.2, "max_decrease": 0.2}]})
}

/// Three hosts interleaved, with spikes, nulls, strings and missing fields.
fn mixed_input(seed: u64) -> Vec<(Value, i64)> {
    let hosts = ["a", "b", "c"];
    let series: Vec<Vec<f64>> = (0..3).map(|host| calm_series(120, seed + host)).collect();
    (0..360usize)
        .map(|position| {
            let (host, step) = (position % 3, position / 3);
            let value = match (position * 7 + seed as usize) % 41 {
                0 => json!(series[host][step] * 2.0),
                1 => json!(null),
                2 => json!("n/a"),
                3 => return (json!({"host": hosts[host]}), position as i64 * 250),
                _ => json!(series[host][step]),
            };
            (json!({"host": hosts[host], "latency": value}), position as i64 * 250)
        })
        .collect()
}

/// Output payloads with event times, and rejections by position in the whole input.
type Outputs = (Vec<(Value, i64)>, Vec<(usize, String)>);

fn run_in_batches(op: &mut Harness<AnomalyDetect>, input: &[(Value, i64)], offset: usize, batch_size: usize, outputs: &mut Outputs) {
    for (number, chunk) in input.chunks(batch_size).enumerate() {
        let out = op.process_json(chunk);
        let times = out.batch.iter().map(|record| record.timestamp());
        outputs.0.extend(json_values(&out.batch).into_iter().zip(times));
        let first = offset + number * batch_size;
        outputs.1.extend(out.rejected.into_iter().map(|rejection| (first + rejection.index as usize, rejection.reason)));
    }
}

proptest! {
    #[test]
    fn output_depends_neither_on_batch_size_nor_on_restarts(batch_size in 1usize..120, split in 0usize..=360, seed in 0u64..50) {
        let input = mixed_input(seed);
        let mut whole = Outputs::default();
        run_in_batches(&mut operator(every_detector(2)), &input, 0, input.len(), &mut whole);
        prop_assert!(whole.0.iter().any(|(value, _)| value["alert"] == "anomaly"), "the input must raise alerts");

        let mut batched = Outputs::default();
        let mut first = operator(every_detector(2));
        run_in_batches(&mut first, &input[..split], 0, batch_size, &mut batched);
        let mut second = match Harness::<AnomalyDetect>::restored(every_detector(2), first.snapshot()) {
            Ok(second) => second,
            Err(reason) => return Err(TestCaseError::fail(reason)),
        };
        run_in_batches(&mut second, &input[split..], split, batch_size, &mut batched);
        prop_assert_eq!(batched, whole);
    }
}

#[test]
fn the_least_recently_seen_key_is_forgotten_when_max_keys_are_kept() {
    let config = json!({"field": "latency", "group_by": ["host"], "warm_up": 3, "max_keys": 2, "detectors": [{"type": "zscore"}]});
    let mut op = operator(config);
    let calm = [10.0, 10.5, 9.5, 10.0, 10.2];
    let mut input = [records("a", &calm, 0), records("b", &calm, 0), records("a", &[10.0], 10_000), records("c", &calm, 20_000)].concat();
    // `b` was seen less recently than `a`, so `c` replaced it: 50 is a spike for `a` only.
    input.extend([(json!({"host": "a", "latency": 50}), 30_000), (json!({"host": "b", "latency": 50}), 30_000)]);
    let found = alert_times(&json_values(&op.process_json(&input).batch));
    assert_eq!(found, vec![("zscore".to_owned(), 30_000)]);
    let metrics = sluice_sdk::host::native_metrics();
    assert_eq!((metrics.counters.get("keys_forgotten"), metrics.gauges.get("keys")), (Some(&2), Some(&2.0)), "c then a were forgotten");
}

/// A detector kept in a new configuration goes on from its own statistics: with a detector
/// that learns nothing added (`threshold`), the key's warm-up is not repeated, and the spike at
/// 10 s is one for `zscore`.
#[test]
fn state_from_another_configuration_is_matched_up_by_detector_not_misread() {
    let before = json!({"field": "latency", "warm_up": 3, "detectors": [{"type": "mad"}, {"type": "zscore"}]});
    let mut op = operator(before);
    op.process_json(&records("a", &[10.0, 10.5, 9.5, 10.0, 10.2, 9.8], 0));
    let after = json!({"field": "latency", "warm_up": 3, "detectors": [{"type": "zscore"}, {"type": "threshold", "max": 100}]});
    let restored = Harness::<AnomalyDetect>::restored(after, op.snapshot());
    let Ok(mut restored) = restored else { panic!("restoring state of another configuration must work") };
    let out = restored.process_json(&records("a", &[50.0, 10.0, 10.1, 10.0, 200.0], 10_000));
    let found = alert_times(&json_values(&out.batch));
    assert_eq!(found.first(), Some(&("zscore".to_owned(), 10_000)), "{found:?}");
    assert!(found.contains(&("threshold".to_owned(), 14_000)), "{found:?}");
}

/// A learning detector added starts afresh, and its first values are not scored against a
/// spread of nothing: every key warms up again (before, the new `rate-of-change` or a new
/// `zscore` alerted on the key's next changed value).
#[test]
fn a_learning_detector_added_warms_up_before_it_alerts() {
    let before = json!({"field": "latency", "warm_up": 3, "detectors": [{"type": "mad"}]});
    let mut op = operator(before);
    op.process_json(&records("a", &[10.0, 10.5, 9.5, 10.0, 10.2, 9.8], 0));
    let after = json!({"field": "latency", "warm_up": 3, "detectors": [{"type": "mad"}, {"type": "zscore"}]});
    let mut restored = Harness::<AnomalyDetect>::restored(after, op.snapshot()).expect("restores");
    let out = restored.process_json(&records("a", &[10.0, 10.4, 10.1, 10.0, 200.0], 10_000));
    let found = alert_times(&json_values(&out.batch));
    assert!(found.iter().all(|(_, time)| *time == 14_000), "nothing during the warm-up: {found:?}");
    assert!(found.contains(&("zscore".to_owned(), 14_000)) && found.contains(&("mad".to_owned(), 14_000)), "{found:?}");
}

/// Detectors listed in another order (a swap, a file edit, a restart) each go on from their
/// own statistics: before, statistics were taken by place, so `fast` ran on `slow`'s moments
/// and `m40` on `m10`'s window.
#[test]
fn detectors_listed_in_another_order_continue_each_from_its_own_statistics() {
    let detectors = [
        json!({"type": "zscore", "alpha": 0.05, "threshold": 1.2, "name": "slow"}),
        json!({"type": "zscore", "alpha": 0.6, "threshold": 1.2, "name": "fast"}),
        json!({"type": "mad", "window": 10, "threshold": 1.0, "name": "m10"}),
        json!({"type": "mad", "window": 40, "threshold": 1.0, "name": "m40"}),
    ];
    let config = |order: [usize; 4]| json!({"field": "latency", "group_by": ["host"], "warm_up": 5, "pass_through": true, "detectors": order.map(|at| detectors[at].clone())});
    let input = mixed_input(3);
    let mut unchanged = operator(config([0, 1, 2, 3]));
    unchanged.process_json(&input[..180]);
    let mut reordered = Harness::<AnomalyDetect>::restored(config([1, 0, 3, 2]), unchanged.snapshot()).expect("restores");
    let expected = json_values(&unchanged.process_json(&input[180..]).batch);
    let got = json_values(&reordered.process_json(&input[180..]).batch);
    let alerts = |values: &[Value]| {
        let mut found: Vec<String> = values.iter().filter(|value| value["alert"] == "anomaly").map(ToString::to_string).collect();
        found.sort();
        found
    };
    assert!(!alerts(&expected).is_empty(), "the input must raise alerts");
    assert_eq!(alerts(&got), alerts(&expected));
}

#[test]
fn extreme_values_neither_panic_nor_poison_the_statistics() {
    let config = json!({"field": "latency", "warm_up": 2, "detectors": [
        {"type": "zscore"}, {"type": "mad", "window": 4}, {"type": "rate-of-change", "max_increase": 1, "max_decrease": 1}]});
    let mut op = operator(config.clone());
    let extremes = [1e308, -1e308, 1.7e308, -1.7e308, 5e-324, 0.0, 1e308];
    let out = op.process_json(&records("a", &extremes, 0));
    assert!(out.rejected.is_empty());
    assert!(json_values(&out.batch).iter().all(|alert| alert["alert"] == "anomaly"), "every output is valid JSON");
    // The zscore statistics restarted rather than carrying infinities: calm values score as
    // usual. The mad window holds the same calm values as a fresh operator's, so agrees with it.
    let calm = records("a", &calm_series(60, 9), 10_000);
    let late = |op: &mut Harness<AnomalyDetect>| -> Vec<(String, i64)> {
        alert_times(&json_values(&op.process_json(&calm).batch)).into_iter().filter(|(_, time)| *time > 40_000).collect()
    };
    let mut fresh = operator(config);
    let late_mad: Vec<_> = late(&mut fresh).into_iter().filter(|(detector, _)| detector == "mad").collect();
    assert_eq!(late(&mut op), late_mad);
}

/// Two detectors with the same settings, one added later, keep each its own statistics when
/// they are listed the other way round: before, the first in the list took the first's
/// statistics, so `old` scored with `new`'s and alerted on a value usual for it.
#[test]
fn twin_detectors_keep_each_its_own_statistics_whatever_their_order() {
    let zscore = |name: &str| json!({"type": "zscore", "alpha": 0.05, "threshold": 1.0, "name": name});
    let config =
        |names: &[&str]| json!({"field": "latency", "warm_up": 3, "detectors": names.iter().map(|name| zscore(name)).collect::<Vec<_>>()});
    let mut op = operator(config(&["old"]));
    op.process_json(&records("a", &calm_series(30, 4), 0));
    let mut both = Harness::<AnomalyDetect>::restored(config(&["old", "new"]), op.snapshot()).expect("restores");
    both.process_json(&records("a", &[500.0, 501.0, 499.0, 500.0, 502.0], 30_000));
    let after = records("a", &[500.5, 100.0], 40_000);
    let alerts = |names: &[&str]| {
        let mut restored = Harness::<AnomalyDetect>::restored(config(names), both.snapshot()).expect("restores");
        let mut found: Vec<String> = json_values(&restored.process_json(&after).batch)
            .iter()
            .map(|alert| format!("{} {} {}", alert["detector"], alert["timestamp"], alert["score"]))
            .collect();
        found.sort();
        found
    };
    assert!(!alerts(&["old", "new"]).is_empty(), "the input must raise alerts");
    assert_eq!(alerts(&["new", "old"]), alerts(&["old", "new"]));
}
