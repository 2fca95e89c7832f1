//! Native tests: shared helpers, and the record-level behaviour (recursions, format, rejections,
//! configuration).

mod accuracy;
mod state;
mod time;

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::{Forecast, inverse_normal_cdf};

fn operator(config: Value) -> Harness<Forecast> {
    match Harness::<Forecast>::new(config) {
        Ok(harness) => harness,
        Err(reason) => panic!("configuration refused: {reason}"),
    }
}

/// Records `{"k": key, "y": value}` one second apart from `start`.
fn points(key: &str, values: &[f64], start: i64) -> Vec<(Value, i64)> {
    values.iter().enumerate().map(|(position, value)| (json!({"k": key, "y": value}), start + position as i64 * 1000)).collect()
}

/// The output of processing `records` in one batch.
fn run(harness: &mut Harness<Forecast>, records: &[(Value, i64)]) -> Vec<Value> {
    json_values(&harness.process_json(records).batch)
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

/// Uniform numbers in [0, 1) from a linear congruential generator, so every run sees the same.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal number (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The tiny series worked by hand: m = 2, α = β = γ = 0.5. Initial level (10 + 20) / 2 = 15,
/// trend ((14 − 10)/2 + (26 − 20)/2) / 2 = 2.5, seasonals [−5, 5]; replaying the four warm-up
/// points gives ℓ = 21.62890625, b = 2.208984375, s = [−4.953125, 4.37109375] (statsmodels'
/// fitted values 12.5, 23.125, 11.40625, 24.1328125 on the way).
#[test]
fn the_recursions_match_hand_computed_values() {
    let config = json!({"key": ["k"], "value": "y", "alpha": 0.5, "beta": 0.5, "gamma": 0.5, "season_length": 2, "horizon": 3});
    let mut forecast = operator(config);
    let warm_up = run(&mut forecast, &points("a", &[10.0, 20.0, 14.0], 0));
    assert!(warm_up.is_empty(), "the first warm-up points are absorbed: {warm_up:?}");
    let completed = run(&mut forecast, &points("a", &[26.0], 3000));
    assert_eq!(
        completed,
        vec![json!({"k": "a", "value": 26, "forecast": null, "residual": null, "forecasts": [
            {"step": 1, "value": 18.884765625, "lower": null, "upper": null},
            {"step": 2, "value": 30.41796875, "lower": null, "upper": null},
            {"step": 3, "value": 23.302734375, "lower": null, "upper": null},
        ]})]
    );
    let next = run(&mut forecast, &points("a", &[18.0], 4000));
    let record = &next[0];
    assert_eq!((record["forecast"].clone(), record["residual"].clone()), (json!(18.884765625), json!(-0.884765625)));
    // ℓ = 23.3955078125, b = 1.98779296875, s = [−5.3955078125, 4.37109375], next phase 1.
    let values: Vec<f64> = (0..3).map(|step| number(&record["forecasts"][step]["value"])).collect();
    assert_eq!(values, vec![29.75439453125, 21.9755859375, 33.72998046875]);
    // σ = 0.884765625; variance factors 1, 1 + 0.75², 1 + 0.75² + 1.5².
    let z = inverse_normal_cdf(0.975);
    for (step, factor) in [1.0, 1.5625, 3.8125].into_iter().enumerate() {
        let half_width = z * 0.884765625 * f64::sqrt(factor);
        let ahead = &record["forecasts"][step];
        assert!(close(number(&ahead["upper"]), values[step] + half_width, 1e-9), "{ahead}");
        assert!(close(number(&ahead["lower"]), values[step] - half_width, 1e-9), "{ahead}");
    }
}

/// Simple exponential smoothing: the first point is the level, which each point moves by α of
/// its error.
#[test]
fn without_trend_or_season_the_level_is_smoothed_from_the_first_point() {
    let mut forecast = operator(json!({"value": "y", "alpha": 0.5, "horizon": 2}));
    let out = run(&mut forecast, &[(json!({"y": 4}), 0), (json!({"y": 8}), 1), (json!({"y": 6}), 2)]);
    let summary: Vec<(Value, Value, Value)> =
        out.iter().map(|r| (r["forecast"].clone(), r["residual"].clone(), r["forecasts"][1]["value"].clone())).collect();
    assert_eq!(summary, vec![(Value::Null, Value::Null, json!(4)), (json!(4), json!(4), json!(6)), (json!(6), json!(0), json!(6))]);
}

#[test]
fn outputs_keep_the_key_fields_at_their_paths_and_the_inputs_key_time_and_headers() {
    let mut forecast = operator(json!({"key": ["shop.category", "region"], "value": "sales.total", "alpha": 0.2}));
    let mut batch = sluice_sdk::Batch::new();
    batch.push(
        Some(b"u1"),
        br#"{"shop": {"category": "books", "id": 3}, "sales": {"total": 12.5}, "other": true}"#,
        7_000,
        [(&b"h"[..], &b"v"[..])],
    );
    let out = forecast.process(&batch);
    let record = out.batch.get(0).map(|record| (record.key(), record.timestamp(), record.header("h")));
    assert_eq!(record, Some((Some(&b"u1"[..]), 7_000, Some(&b"v"[..]))));
    let values = json_values(&out.batch);
    assert_eq!(values[0]["shop"], json!({"category": "books"}));
    assert_eq!(values[0]["region"], Value::Null, "a missing key field is the null group");
    assert_eq!(values[0]["value"], json!(12.5));
}

#[test]
fn carried_fields_are_copied_into_the_output_and_may_not_overlap_the_key_or_outputs() {
    let mut forecast = operator(json!({"key": ["k"], "carry": ["window.end", "note"], "value": "y", "alpha": 0.5}));
    let out = forecast.process_json(&[(json!({"k": "a", "y": 1, "window": {"start": 0, "end": 60}, "note": "x", "other": 1}), 60)]);
    let values = json_values(&out.batch);
    assert_eq!(values[0]["window"], json!({"end": 60}));
    assert_eq!(values[0]["note"], json!("x"));
    assert!(values[0].get("other").is_none(), "only the fields named are copied");
    for config in [
        json!({"key": ["k"], "carry": ["k"], "value": "y", "alpha": 0.5}),
        json!({"carry": ["forecasts"], "value": "y", "alpha": 0.5}),
        json!({"key": ["w"], "carry": ["w.end"], "value": "y", "alpha": 0.5}),
    ] {
        let refusal = Harness::<Forecast>::new(config).err().expect("refused");
        assert!(refusal.contains("carried"), "{refusal}");
    }
}

#[test]
fn missing_values_are_dropped_and_bad_records_rejected() {
    let mut forecast = operator(json!({"key": ["k"], "value": "y", "alpha": 0.5}));
    let mut batch = sluice_sdk::Batch::new();
    for payload in [
        &br#"{"k": "a", "y": 1}"#[..],
        br#"{"k": "a"}"#,
        br#"{"k": "a", "y": null}"#,
        br#"{"k": "a", "y": "2"}"#,
        br#"{"k": "a", "y": 1e400}"#,
        br#"[1, 2]"#,
        br#"{"k": "a", "y": 2"#,
        br#"{"k": "a", "y": 3}"#,
    ] {
        batch.push(None, payload, 0, []);
    }
    let out = forecast.process(&batch);
    let reasons: Vec<(u32, &str)> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(
        reasons[..3],
        [
            (3, "field y is a string, not a number"),
            (4, "field y is 1e400, beyond the range of a 64-bit float"),
            (5, "the record is an array, not a JSON object")
        ]
    );
    assert!(reasons[3].1.starts_with("payload is not valid JSON"), "{reasons:?}");
    let values: Vec<Value> = json_values(&out.batch).iter().map(|record| record["value"].clone()).collect();
    assert_eq!(values, vec![json!(1), json!(3)], "only valid values are learnt");
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("missing_value_dropped"), Some(&2));
}

#[test]
fn past_max_keys_records_of_new_keys_are_dropped_and_counted() {
    let mut forecast = operator(json!({"key": ["k"], "value": "y", "alpha": 0.5, "max_keys": 2}));
    let records =
        [(json!({"k": "a", "y": 1}), 0), (json!({"k": "b", "y": 1}), 0), (json!({"k": "c", "y": 1}), 0), (json!({"k": "a", "y": 2}), 1)];
    let out = run(&mut forecast, &records);
    assert_eq!(out.iter().map(|record| record["k"].clone()).collect::<Vec<_>>(), vec![json!("a"), json!("b"), json!("a")]);
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("max_keys_dropped"), Some(&1));
    forecast.watermark(10);
    assert_eq!(sluice_sdk::host::native_metrics().gauges.get("keys"), Some(&2.0));
}

/// A model that overflows on a point still emits that point (with the forecast it was given,
/// and no forecasts after it); its key warms up again from the next point.
#[test]
fn a_point_that_makes_the_model_overflow_is_emitted_and_its_key_warms_up_again() {
    let mut forecast = operator(json!({"key": ["k"], "value": "y", "alpha": 0.5, "beta": 0.5}));
    let out = run(&mut forecast, &points("b", &[1.0, 2.0, 3.0, 1.7e308, 1.7e308, 1.7e308, 5.0, 6.0, 7.0], 0));
    let values: Vec<f64> = out.iter().map(|record| number(&record["value"])).collect();
    // The first 1.7e308 squares its residual past the largest double: reset, emitted without
    // forecasts. The second starts a new warm-up, which the third completes; 5.0 overflows the
    // squared residuals again; 6.0 starts another warm-up, which 7.0 completes.
    assert_eq!(values, vec![2.0, 3.0, 1.7e308, 1.7e308, 5.0, 7.0], "every point but the warm-ups' first ones");
    for reset in [&out[2], &out[4]] {
        assert_eq!(reset["forecasts"], json!([]), "{out:#?}");
        assert!(reset["forecast"].is_number() && reset["residual"].is_number(), "{reset}");
    }
    assert_eq!(out[5]["forecast"], Value::Null, "the last warm-up ends at 7: {}", out[5]);
    assert!(out[5]["forecasts"][0]["value"].is_number(), "{}", out[5]);
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("models_reset"), Some(&2));
}

/// Squared residuals that overflow would leave the key's bounds null for good: the key warms up
/// again instead, and its later intervals are finite.
#[test]
fn residuals_that_overflow_reset_the_key_and_later_bounds_are_finite() {
    let mut forecast = operator(json!({"key": ["k"], "value": "y", "alpha": 0.5}));
    let out = run(&mut forecast, &points("b", &[1e308, -1e308, 5.0, 6.0, 7.0, 8.0], 0));
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("models_reset"), Some(&1));
    let last = out.last().expect("records");
    assert_eq!(last["value"], json!(8), "{out:?}");
    assert!(last["forecasts"][0]["lower"].is_number() && last["forecasts"][0]["upper"].is_number(), "{last}");
}

/// Keys longer than `bytes_per_key` counts take their further bytes from the memory bound: new
/// keys are dropped (and counted) once it is reached, well before `max_keys`.
#[test]
fn long_keys_count_against_the_memory_bound() {
    let mut forecast = operator(json!({"key": ["k"], "value": "y", "alpha": 0.5}));
    let long = "x".repeat(50_000);
    let records: Vec<(Value, i64)> = (0..1_000).map(|index| (json!({"k": format!("{index}{long}"), "y": 1.0}), index)).collect();
    for chunk in records.chunks(100) {
        run(&mut forecast, chunk);
    }
    let kept = forecast.operator().state().series.len();
    let per_key = crate::bytes_per_key(&crate::Parameters { alpha: 0.5, beta: None, gamma: 0.0, season_length: 0 });
    let taken: usize = forecast.operator().state().series.keys().map(|key| crate::key_text_excess(key) + per_key).sum();
    assert!(kept > 100 && kept < 1_000 && taken <= crate::STATE_BUDGET_BYTES, "{kept} keys, {taken} bytes");
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("key_memory_dropped"), Some(&(1_000 - kept as u64)));
}

#[test]
fn configuration_errors_are_explained() {
    let refuse = |config: Value| match Harness::<Forecast>::new(config.clone()) {
        Ok(_) => panic!("configuration accepted: {config}"),
        Err(reason) => reason,
    };
    let with = |extra: Value| {
        let mut config = json!({"value": "y", "alpha": 0.3});
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        refuse(config)
    };
    assert_eq!(with(json!({"alpha": 1.5})), "`alpha` is a smoothing parameter and must be between 0 and 1, got 1.5");
    assert!(with(json!({"beta": -0.1})).contains("`beta` is a smoothing parameter"));
    assert!(with(json!({"trend": true})).contains("trend = true needs `beta`"));
    assert!(with(json!({"trend": false, "beta": 0.1})).contains("`beta` is set but trend = false"));
    assert!(with(json!({"gamma": 0.1})).contains("set `season_length`"));
    assert!(with(json!({"season_length": 12})).contains("season_length = 12 needs `gamma`"));
    assert!(with(json!({"season_length": 1, "gamma": 0.1})).contains("at least 2"));
    assert!(with(json!({"season_length": 12, "gamma": 2})).contains("`gamma` is a smoothing parameter"));
    assert!(with(json!({"horizon": 0})).contains("`horizon` must be between 1 and 1000"));
    assert!(with(json!({"interval": 95})).contains("above 0 and at most 0.999999 (such as 0.95), got 95"));
    assert!(with(json!({"interval": 1.0})).contains("`interval`"));
    assert!(with(json!({"interval": 0.0})).contains("`interval`"));
    assert!(with(json!({"max_keys": 0})).contains("`max_keys` must be between 1"));
    assert!(with(json!({"season_length": 5000, "gamma": 0.1, "beta": 0.1})).contains("lower `max_keys` to at most 393"));
    assert!(with(json!({"step": "0s"})).contains("`step` must be positive"));
    assert!(with(json!({"step": "soon"})).contains("invalid duration"));
    assert!(with(json!({"key": ["forecast"]})).contains("clash with the output field `forecast`"));
    assert!(with(json!({"key": ["a", "a.b"]})).contains("overlap"));
    assert!(with(json!({"seasonality": 12})).contains("unknown field `seasonality`"));
    assert!(refuse(json!({"alpha": 0.3})).contains("missing field `value`"));
    assert!(refuse(json!({"value": "y"})).contains("missing field `alpha`"));
    assert!(
        Harness::<Forecast>::new(json!({"value": "y", "alpha": 0, "beta": 1, "gamma": 0, "season_length": 2})).is_ok(),
        "bounds are allowed"
    );
}

/// An interval so close to 1 that 0.5 + interval / 2 rounds to 1 would make z infinite and the
/// bounds null: it is refused, and the widest accepted one has finite bounds at its quantile.
#[test]
fn intervals_next_to_1_are_refused_and_the_widest_accepted_has_finite_bounds() {
    let config = |interval: f64| json!({"value": "y", "alpha": 0.5, "interval": interval});
    for interval in [0.999_999_9, 0.999_999_999_999_999_9, f64::from_bits(1.0f64.to_bits() - 1)] {
        let refusal = Harness::<Forecast>::new(config(interval)).err().unwrap_or_default();
        assert!(refusal.starts_with("`interval` is the coverage of the prediction intervals, above 0 and at most 0.999999"), "{refusal}");
    }
    let mut widest = operator(config(0.999_999));
    let out = run(&mut widest, &[(json!({"y": 4}), 0), (json!({"y": 6}), 1)]);
    // σ = 2 (the one residual); z = the 0.9999995 quantile, 4.891638475698591 (scipy's norm.isf(5e-7)).
    let ahead = &out[1]["forecasts"][0];
    assert!(close(number(&ahead["upper"]) - number(&ahead["value"]), 2.0 * 4.891_638_475_698_591, 1e-7), "{ahead}");
    assert!(close(number(&ahead["value"]) - number(&ahead["lower"]), 2.0 * 4.891_638_475_698_591, 1e-7), "{ahead}");
}

/// Quantiles of the standard normal distribution (scipy's `norm.ppf`), in the centre, at the
/// edge of the tail approximation (0.02425) and far out.
#[test]
fn the_inverse_normal_cdf_matches_known_quantiles() {
    let known = [
        (0.5, 0.0),
        (0.975, 1.959_963_984_540_054),
        (0.95, 1.644_853_626_951_472_2),
        (0.995, 2.575_829_303_548_900_4),
        (0.9, 1.281_551_565_544_600_9),
        (0.8, 0.841_621_233_572_914_3),
        (0.01, -2.326_347_874_040_841),
        (0.001, -3.090_232_306_167_813_5),
        (1e-10, -6.361_340_902_404_056),
        (0.02425, -1.972_961_051_311_885),
    ];
    for (p, quantile) in known {
        let z = inverse_normal_cdf(p);
        assert!(close(z, quantile, 1.2e-9 * quantile.abs().max(1.0)), "p = {p}: {z} instead of {quantile}");
        if p >= 1e-3 {
            assert!(close(inverse_normal_cdf(1.0 - p), -quantile, 1.2e-9 * quantile.abs().max(1.0)), "symmetric at p = {p}");
        }
    }
    assert!(inverse_normal_cdf(0.0).is_nan() && inverse_normal_cdf(1.0).is_nan());
}

/// Key and carried fields are copied with their exact text.
#[test]
fn key_and_carried_fields_are_copied_exactly() {
    let mut forecast = operator(json!({"key": ["id"], "carry": ["z"], "value": "v", "alpha": 0.2}));
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "z": -0, "v": 2}"#, 7_000, []);
    let out = forecast.process(&batch);
    let written = out.batch.get(0).map(|record| String::from_utf8_lossy(record.value()).into_owned()).unwrap_or_default();
    assert!(written.starts_with(r#"{"id":18446744073709551617,"z":-0,"value":2,"#), "{written}");
}
