//! Points on a grid of event time: gaps, gaps inside the warm-up, and points out of order.

use sluice_sdk::serde_json::{Value, json};

use super::{close, number, operator, run};

/// `{"y": value}` at `second` seconds, for each (second, value).
fn at_seconds(points: &[(i64, f64)]) -> Vec<(Value, i64)> {
    points.iter().map(|(second, value)| (json!({"y": value}), second * 1000)).collect()
}

/// A trend and a season of 4 learnt for 60 seasons, then 5 points missing: with `step`, the
/// model advances over the gap and the season stays aligned; in arrival order it does not.
#[test]
fn gaps_advance_the_model_and_keep_the_season_aligned() {
    let pattern = [10.0, -20.0, 30.0, -20.0];
    let truth = |t: i64| 100.0 + 0.5 * t as f64 + pattern[(t % 4) as usize];
    let slots: Vec<(i64, f64)> = (0..240).chain(245..250).map(|t| (t, truth(t))).collect();
    let mut on_grid = operator(json!({"value": "y", "alpha": 0.5, "beta": 0.3, "gamma": 0.5, "season_length": 4, "step": "1s"}));
    let out = run(&mut on_grid, &at_seconds(&slots));
    let after_gap = &out[out.len() - 5];
    assert_eq!(number(&after_gap["value"]), truth(245));
    assert!(close(number(&after_gap["forecast"]), truth(245), 1e-6), "{after_gap}");
    let before_gap = &out[out.len() - 6];
    assert!(close(number(&before_gap["forecasts"][0]["value"]), truth(240), 1e-6), "the forecast for the missing point");
    let mut in_order = operator(json!({"value": "y", "alpha": 0.5, "beta": 0.3, "gamma": 0.5, "season_length": 4}));
    let out = run(&mut in_order, &at_seconds(&slots));
    let after_gap = &out[out.len() - 5];
    assert!((number(&after_gap["forecast"]) - truth(245)).abs() > 10.0, "arrival order takes the point for the next one");
}

/// Holt's warm-up (two points) with the second point five slots after the first: the missing
/// slot 1 is filled on the line for the initial trend (2), y₀ = 3 is replayed, and slots 1–4 are
/// skipped: ℓ = 0.8·3 + 0.2·5 = 3.4, b = 0.5·0.4 + 0.5·2 = 1.2; four skips make ℓ = 8.2; the
/// forecast for slot 5 is 9.4.
#[test]
fn a_gap_at_the_end_of_the_warm_up_is_filled_for_the_initial_values_only() {
    let mut forecast = operator(json!({"value": "y", "alpha": 0.8, "beta": 0.5, "step": "1s"}));
    let out = run(&mut forecast, &at_seconds(&[(0, 3.0), (5, 13.0)]));
    assert_eq!(out.len(), 1);
    assert!(close(number(&out[0]["forecast"]), 9.4, 1e-12) && close(number(&out[0]["residual"]), 3.6, 1e-12), "{}", out[0]);
    assert!(out[0]["forecasts"][0]["lower"].is_number(), "the point had a forecast, so σ² has one error");
}

#[test]
fn a_gap_inside_the_warm_up_still_completes_it_at_its_last_slot() {
    let mut forecast = operator(json!({"value": "y", "alpha": 0.5, "gamma": 0.5, "season_length": 4, "step": "1m"}));
    let out = run(&mut forecast, &[(json!({"y": 1}), 0), (json!({"y": 2}), 60_000), (json!({"y": 4}), 180_000)]);
    assert_eq!(out.len(), 1, "slot 2 is missing, slot 3 completes the warm-up");
    assert_eq!(out[0]["forecast"], Value::Null);
    // Initial level: mean(1, 2, 3 (interpolated), 4) = 2.5; seasonals −1.5, −0.5, 0.5, 1.5; the
    // replay learns 1, 2, skips slot 2 and learns 4: every point is on its forecast.
    assert!(close(number(&out[0]["forecasts"][0]["value"]), 1.0, 1e-12), "{}", out[0]);
}

#[test]
fn points_not_after_the_last_slot_are_dropped_as_out_of_order() {
    let mut forecast = operator(json!({"value": "y", "alpha": 0.5, "step": "1s"}));
    let records =
        [(json!({"y": 1}), 0), (json!({"y": 2}), 1_000), (json!({"y": 9}), 1_500), (json!({"y": 9}), 500), (json!({"y": 3}), 2_000)];
    let out = run(&mut forecast, &records);
    assert_eq!(out.iter().map(|record| record["value"].clone()).collect::<Vec<_>>(), vec![json!(1), json!(2), json!(3)]);
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("out_of_order_dropped"), Some(&2));
    let mut in_arrival_order = operator(json!({"value": "y", "alpha": 0.5}));
    assert_eq!(run(&mut in_arrival_order, &records).len(), 5, "without `step`, event time plays no part");
}
