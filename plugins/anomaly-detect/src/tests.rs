//! Native tests: shared helpers, and the record-level behaviour (format, rejections, configuration).

mod detection;
mod state;

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::AnomalyDetect;

/// A calm series: a slow sine plus uniform noise in [-1, 1) from a linear congruential
/// generator, so that every run sees the same values.
fn calm_series(length: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..length)
        .map(|position| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            100.0 + 5.0 * (position as f64 / 10.0).sin() + noise
        })
        .collect()
}

/// Records `{"host": host, "latency": value}`, one second apart from `start`.
fn records(host: &str, values: &[f64], start: i64) -> Vec<(Value, i64)> {
    values.iter().enumerate().map(|(position, value)| (json!({"host": host, "latency": value}), start + position as i64 * 1000)).collect()
}

fn operator(config: Value) -> Harness<AnomalyDetect> {
    match Harness::<AnomalyDetect>::new(config) {
        Ok(harness) => harness,
        Err(reason) => panic!("configuration refused: {reason}"),
    }
}

/// The alerts among output values.
fn alerts(values: &[Value]) -> Vec<&Value> {
    values.iter().filter(|value| value["alert"] == "anomaly").collect()
}

/// (detector, event time) of each alert.
fn alert_times(values: &[Value]) -> Vec<(String, i64)> {
    alerts(values)
        .iter()
        .map(|alert| (alert["detector"].as_str().unwrap_or("").to_owned(), alert["timestamp"].as_i64().unwrap_or(-1)))
        .collect()
}

#[test]
fn an_alert_names_detector_group_value_score_range_and_record() {
    let mut op = operator(json!({"field": "m.latency", "group_by": ["host"], "detectors": [{"type": "threshold", "max": 10}]}));
    let mut batch = sluice_sdk::Batch::new();
    batch.push(Some(b"k1"), br#"{"host": "a", "m": {"latency": 12.5}}"#, 7_000, [(&b"trace"[..], &b"t1"[..])]);
    let out = op.process(&batch);
    assert_eq!(
        json_values(&out.batch),
        vec![json!({
            "alert": "anomaly", "detector": "threshold", "group": {"host": "a"}, "field": "m.latency", "value": 12.5,
            "score": 2.5, "expected": {"low": null, "high": 10.0}, "timestamp": 7000,
            "record": {"host": "a", "m": {"latency": 12.5}}
        })]
    );
    let alert = out.batch.get(0).map(|record| (record.key(), record.timestamp(), record.header("trace")));
    assert_eq!(alert, Some((Some(&b"k1"[..]), 7_000, Some(&b"t1"[..]))), "alerts keep key, event time and headers");
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("alerts"), Some(&1));
}

#[test]
fn pass_through_annotates_anomalous_records_and_alerts_follow_them() {
    let config = json!({"field": "latency", "pass_through": true, "detectors": [
        {"type": "threshold", "name": "ceiling", "max": 10}, {"type": "threshold", "name": "floor", "min": 0}]});
    let mut op = operator(config);
    let mut batch = sluice_sdk::Batch::new();
    for payload in [&br#"{"latency":  5, "anomaly": "kept"}"#[..], br#"{"latency": 20, "anomaly": "replaced"}"#, br#"{"latency": null}"#] {
        batch.push(None, payload, 1, []);
    }
    let out = op.process(&batch);
    assert_eq!(out.batch.get(0).map(|record| record.value()), batch.get(0).map(|record| record.value()), "calm records pass untouched");
    let values = json_values(&out.batch);
    assert_eq!(values.len(), 4);
    assert_eq!(values[1], json!({"latency": 20, "anomaly": {"ceiling": 10.0}}));
    assert_eq!(
        (values[2]["detector"].clone(), values[2]["record"].clone()),
        (json!("ceiling"), json!({"latency": 20, "anomaly": "replaced"}))
    );
    assert_eq!(values[3], json!({"latency": null}), "null values are skipped but still pass through");
}

/// From 0, a relative change is infinitely large: any rise or fall alerts (its score is null,
/// JSON having no infinity), and 0 again does not.
#[test]
fn a_relative_change_from_zero_alerts_with_a_null_score() {
    let config = json!({"field": "x", "warm_up": 1, "detectors": [{"type": "rate-of-change", "max_increase": 0.5, "max_decrease": 0.5}]});
    let mut op = operator(config);
    let values = [0.0, 100.0, 0.0, 0.0, -100.0, 1e308, -1e308];
    let out = op.process_json(&values.iter().enumerate().map(|(at, x)| (json!({"x": x}), at as i64)).collect::<Vec<_>>());
    let found = json_values(&out.batch);
    let alerted: Vec<(i64, Value)> =
        alerts(&found).iter().map(|alert| (alert["timestamp"].as_i64().unwrap_or(-1), alert["score"].clone())).collect();
    assert_eq!(alerted, vec![(1, Value::Null), (2, json!(-1.0)), (4, Value::Null), (5, json!(1e306)), (6, Value::Null)]);
}

#[test]
fn missing_and_non_numeric_fields_are_rejected_and_teach_nothing() {
    let config =
        json!({"field": "latency", "warm_up": 2, "detectors": [{"type": "rate-of-change", "change": "absolute", "max_increase": 5}]});
    let mut op = operator(config.clone());
    let out = op.process_json(&[
        (json!({"latency": 10}), 0),
        (json!({"latency": "12"}), 1),
        (json!({"other": 1}), 2),
        (json!([1, 2]), 3),
        (json!({"latency": 10}), 4),
        (json!({"latency": 11}), 5),
    ]);
    let reasons: Vec<_> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![(1, "field latency is a string, not a number"), (2, "field latency is missing"), (3, "field latency is missing")]
    );
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"latency": 1e400}"#, 6, []);
    batch.push(None, br#"{"latency": 1"#, 7, []);
    let out = op.process(&batch);
    assert_eq!(out.rejected[0].reason, "field latency is 1e400, beyond the range of a 64-bit float");
    assert!(out.rejected[1].reason.starts_with("payload is not valid JSON"), "{}", out.rejected[1].reason);
    // Only the valid values were learnt: the key is past warm-up, and 11 -> 30 alerts.
    let out = op.process_json(&[(json!({"latency": 30}), 8)]);
    assert_eq!(alert_times(&json_values(&out.batch)), vec![("rate-of-change".to_owned(), 8)]);
}

#[test]
fn configuration_errors_are_explained() {
    let refuse = |detectors: Value| match Harness::<AnomalyDetect>::new(json!({"field": "x", "detectors": detectors})) {
        Ok(_) => panic!("configuration accepted: {detectors}"),
        Err(reason) => reason,
    };
    assert!(refuse(json!([])).contains("`detectors` is empty"));
    assert_eq!(
        refuse(json!([{"type": "zscore", "alpha": 1.5}])),
        "detectors[0]: detector \"zscore\": `alpha` must be between 0 and 1 (exclusive), got 1.5"
    );
    assert!(refuse(json!([{"type": "zscore", "alpha": 0.1, "half_life": "1m"}])).contains("not both"));
    assert!(refuse(json!([{"type": "zscore", "half_life": "0s"}])).contains("`half_life` must be positive"));
    assert!(refuse(json!([{"type": "zscore", "half_life": "soon"}])).contains("invalid duration"));
    assert!(refuse(json!([{"type": "zscore", "threshold": -1}])).contains("`threshold` must be a positive number"));
    assert!(refuse(json!([{"type": "mad", "window": 2}])).contains("`window` must be between 3 and 10000"));
    assert!(refuse(json!([{"type": "threshold"}])).contains("set `min`, `max` or both"));
    assert!(refuse(json!([{"type": "threshold", "min": 5, "max": 1}])).contains("`min` (5) is greater than `max` (1)"));
    assert!(refuse(json!([{"type": "rate-of-change"}])).contains("set `max_increase`, `max_decrease` or both"));
    assert!(refuse(json!([{"type": "rate-of-change", "max_decrease": -0.5}])).contains("must not be negative"));
    assert!(refuse(json!([{"type": "rate-of-change", "max_decrease": 1, "change": "percent"}])).contains("unknown variant `percent`"));
    assert!(
        refuse(json!([{"type": "zscore"}, {"type": "zscore", "alpha": 0.2}]))
            .contains("detectors[1]: the name \"zscore\" is already used by detectors[0]")
    );
    assert!(refuse(json!([{"type": "zscore", "name": ""}])).contains("must not be empty"));
    assert!(refuse(json!([{"type": "zscore", "treshold": 3}])).contains("unknown field `treshold`"));
    assert!(refuse(json!([{"type": "iforest"}])).contains("unknown variant `iforest`"));
    let refuse_top = |config: Value| Harness::<AnomalyDetect>::new(config).err().unwrap_or_default();
    assert!(refuse_top(json!({"field": "x", "detectors": [{"type": "mad"}], "max_keys": 0})).contains("`max_keys` must be between 1"));
    assert!(refuse_top(json!({"field": "x.", "detectors": [{"type": "mad"}]})).contains("invalid field path"));
    let too_big = json!({"field": "x", "max_keys": 1_000_000, "detectors": [{"type": "mad", "window": 11}]});
    assert!(refuse_top(too_big).contains("is 11000000 values; at most 10000000 fit in memory"));
    // A million keys of two detectors do not fit the default 128 MiB: refused at init, naming
    // the largest that fits, rather than stopping the operator once the keys fill the memory.
    let many =
        json!({"field": "x", "max_keys": 1_000_000, "detectors": [{"type": "zscore"}, {"type": "rate-of-change", "max_increase": 1}]});
    let refusal = refuse_top(many.clone());
    assert!(refusal.contains("lower `max_keys` to at most 370255 or raise the operator's memory_limit"), "{refusal}");
    let larger = sluice_sdk::InitContext { memory_limit: 512 << 20, ..sluice_sdk::context::default_context() };
    assert!(Harness::<AnomalyDetect>::with_context(many, larger).is_ok(), "fits with a larger memory_limit");
    assert!(refuse_top(json!({"field": "x", "detectors": [{"type": "mad"}], "warmup": 3})).contains("unknown field `warmup`"));
    assert!(refuse_top(json!({"detectors": [{"type": "mad"}]})).contains("missing field `field`"));
}

/// Alerts and annotated records carry the record's values with their exact text.
#[test]
fn alerts_and_annotations_keep_the_exact_text_of_the_record() {
    let config = json!({"field": "latency", "group_by": ["id"], "pass_through": true, "detectors": [{"type": "threshold", "max": 1}]});
    let mut op = operator(config);
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "z": -0, "latency": 2.50}"#, 7_000, []);
    let out = op.process(&batch);
    let written: Vec<String> = out.batch.iter().map(|record| String::from_utf8_lossy(record.value()).into_owned()).collect();
    assert_eq!(written[0], r#"{"id":18446744073709551617,"z":-0,"latency":2.50,"anomaly":{"threshold":1.5}}"#);
    assert!(
        written[1].contains(r#""group":{"id":18446744073709551617},"field":"latency","value":2.50,"#)
            && written[1].ends_with(r#""record":{"id":18446744073709551617,"z":-0,"latency":2.50}}"#),
        "{}",
        written[1]
    );
}
