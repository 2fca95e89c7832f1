//! Detection tests: spikes in noisy series, fixed limits, warm-up, keys, degenerate series.

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::json_values;

use super::{alert_times, alerts, calm_series, operator, records};

/// Where spikes are injected into the calm series, and by how much.
const SPIKES: [(usize, f64); 4] = [(150, 30.0), (300, -25.0), (451, 20.0), (452, 30.0)];

fn spiky_series(seed: u64) -> Vec<f64> {
    let mut values = calm_series(600, seed);
    for (position, offset) in SPIKES {
        values[position] += offset;
    }
    values
}

#[test]
fn zscore_and_mad_find_every_spike_and_nothing_else() {
    // The warm-up spans most of the sine's period (63 values): after a shorter one, the first
    // trough is lower than anything seen yet, and rightly looks anomalous.
    let config = json!({"field": "latency", "warm_up": 50, "detectors": [
        {"type": "zscore", "alpha": 0.05, "threshold": 3.0}, {"type": "mad", "window": 50, "threshold": 3.5}]});
    let expected: Vec<(String, i64)> =
        SPIKES.iter().flat_map(|(position, _)| ["zscore", "mad"].map(|detector| (detector.to_owned(), *position as i64 * 1000))).collect();
    for seed in 0..20 {
        let out = operator(config.clone()).process_json(&records("a", &spiky_series(seed), 0));
        assert!(out.rejected.is_empty());
        assert_eq!(alert_times(&json_values(&out.batch)), expected, "noise seed {seed}");
    }
}

#[test]
fn a_spike_does_not_mask_itself_or_the_next_one_and_lasting_shifts_are_learnt() {
    let config = json!({"field": "latency", "detectors": [{"type": "zscore", "alpha": 0.1}]});
    let mut op = operator(config);
    let mut values = calm_series(200, 7);
    values[100] += 1000.0;
    values[103] += 20.0;
    for value in &mut values[150..] {
        *value += 40.0;
    }
    let found = alert_times(&json_values(&op.process_json(&records("a", &values, 0)).batch));
    let positions: Vec<i64> = found.iter().map(|(_, time)| time / 1000).collect();
    assert_eq!(&positions[..2], &[100, 103], "a huge spike must not hide a small one right after it");
    assert!(positions[2..].iter().all(|position| (150..170).contains(position)), "the level shift alerts only at first: {positions:?}");
    assert!(positions.len() > 3, "the level shift is an anomaly at first: {positions:?}");
}

#[test]
fn thresholds_alert_from_the_first_value_outside_their_bounds() {
    let config = json!({"field": "latency", "warm_up": 100, "detectors": [{"type": "threshold", "min": 0, "max": 100}]});
    let mut op = operator(config);
    let out = json_values(&op.process_json(&records("a", &[-5.0, 0.0, 50.0, 100.0, 101.5], 0)).batch);
    let verdicts: Vec<(Value, Value, Value)> =
        alerts(&out).iter().map(|alert| (alert["value"].clone(), alert["score"].clone(), alert["expected"].clone())).collect();
    assert_eq!(
        verdicts,
        vec![
            (json!(-5.0), json!(-5.0), json!({"low": 0.0, "high": 100.0})),
            (json!(101.5), json!(1.5), json!({"low": 0.0, "high": 100.0}))
        ]
    );
}

#[test]
fn rate_of_change_compares_with_the_previous_value_relatively_or_absolutely() {
    let relative =
        json!({"field": "latency", "warm_up": 1, "detectors": [{"type": "rate-of-change", "max_increase": 0.5, "max_decrease": 0.5}]});
    let mut op = operator(relative);
    let out = json_values(&op.process_json(&records("a", &[100.0, 140.0, 220.0, 100.0, 0.0, 5.0, 2.0], 0)).batch);
    let verdicts: Vec<(i64, f64, Value)> = alerts(&out)
        .iter()
        .map(|alert| (alert["timestamp"].as_i64().unwrap_or(0) / 1000, alert["score"].as_f64().unwrap_or(0.0), alert["expected"].clone()))
        .collect();
    let expected_at = |previous: f64| json!({"low": previous * 0.5, "high": previous * 1.5});
    // 140 -> 220 is +57%, 220 -> 100 is -55%, 100 -> 0 is -100%; 0 -> 5 is infinitely large
    // (the score null, read here as 0); 5 -> 2 is -60%.
    let expected = vec![
        (2, 80.0 / 140.0, expected_at(140.0)),
        (3, -120.0 / 220.0, expected_at(220.0)),
        (4, -1.0, expected_at(100.0)),
        (5, 0.0, expected_at(0.0)),
        (6, -0.6, expected_at(5.0)),
    ];
    assert_eq!(verdicts, expected);

    let absolute =
        json!({"field": "latency", "warm_up": 1, "detectors": [{"type": "rate-of-change", "change": "absolute", "max_increase": 10}]});
    let mut op = operator(absolute);
    let out = json_values(&op.process_json(&records("a", &[0.0, 10.0, 21.0, -100.0], 0)).batch);
    let verdicts: Vec<(Value, Value)> = alerts(&out).iter().map(|alert| (alert["score"].clone(), alert["expected"].clone())).collect();
    assert_eq!(verdicts, vec![(json!(11.0), json!({"low": null, "high": 20.0}))], "falls are unlimited without max_decrease");
}

#[test]
fn warm_up_silences_learning_detectors_for_the_first_values_of_each_key() {
    let config = |warm_up: u64| {
        json!({"field": "latency", "warm_up": warm_up, "detectors": [
            {"type": "zscore"}, {"type": "mad"}, {"type": "rate-of-change", "max_increase": 0.5}, {"type": "threshold", "max": 150}]})
    };
    let mut values = calm_series(40, 3);
    values[5] += 100.0;
    values[30] += 100.0;
    let mut op = operator(config(20));
    let found = alert_times(&json_values(&op.process_json(&records("a", &values, 0)).batch));
    let at = |seconds: i64, detectors: &[&str]| -> Vec<(String, i64)> {
        detectors.iter().map(|detector| ((*detector).to_owned(), seconds * 1000)).collect()
    };
    let expected = [at(5, &["threshold"]), at(30, &["zscore", "mad", "rate-of-change", "threshold"])].concat();
    assert_eq!(found, expected);
    let mut op = operator(config(3));
    let found = alert_times(&json_values(&op.process_json(&records("a", &values, 0)).batch));
    assert_eq!(found.iter().filter(|(_, time)| *time == 5_000).count(), 4, "after a short warm-up every detector sees the spike");
}

#[test]
fn keys_learn_apart() {
    let config = json!({"field": "latency", "group_by": ["host"], "warm_up": 50, "detectors": [{"type": "zscore"}, {"type": "mad"}]});
    let mut op = operator(config);
    let low = calm_series(100, 1);
    let high: Vec<f64> = calm_series(100, 2).iter().map(|value| value * 10.0).collect();
    let mut input: Vec<(Value, i64)> =
        records("low", &low, 0).into_iter().zip(records("high", &high, 0)).flat_map(|(a, b)| [a, b]).collect();
    input.push((json!({"host": "low", "latency": 1000.0}), 200_000));
    input.push((json!({"host": "high", "latency": 1000.0}), 200_000));
    input.push((json!({"latency": 1000.0}), 200_000));
    let out = json_values(&op.process_json(&input).batch);
    let groups: Vec<(Value, Value)> = alerts(&out).iter().map(|alert| (alert["detector"].clone(), alert["group"].clone())).collect();
    assert_eq!(
        groups,
        vec![(json!("zscore"), json!({"host": "low"})), (json!("mad"), json!({"host": "low"}))],
        "1000 is usual for `high` only"
    );
}

#[test]
fn constant_series_flag_any_change_with_a_finite_score() {
    let config = json!({"field": "latency", "warm_up": 5, "detectors": [{"type": "zscore"}, {"type": "mad"}]});
    let mut op = operator(config);
    let mut values = vec![7.0; 10];
    values.push(7.5);
    let out = json_values(&op.process_json(&records("a", &values, 0)).batch);
    assert_eq!(alerts(&out).len(), 2);
    assert!(alerts(&out).iter().all(|alert| alert["score"].as_f64().is_some_and(|score| score > 1e6)), "{out:?}");

    // Counts that are mostly equal have a MAD of 0: the mean absolute deviation stands in.
    let config = json!({"field": "latency", "warm_up": 10, "detectors": [{"type": "mad", "window": 20}]});
    let mut op = operator(config);
    let counts = [5.0, 5.0, 5.0, 6.0, 5.0, 4.0, 5.0, 5.0, 6.0, 5.0, 4.0, 5.0, 5.0, 5.0, 6.0, 4.0, 5.0, 5.0, 5.0, 5.0, 6.0, 40.0];
    let out = json_values(&op.process_json(&records("a", &counts, 0)).batch);
    assert_eq!(alert_times(&out), vec![("mad".to_owned(), 21_000)]);
}

#[test]
fn half_life_decays_by_event_time_alone() {
    let config = |half_life: &str| json!({"field": "latency", "detectors": [{"type": "zscore", "half_life": half_life}]});
    let mut values = calm_series(120, 5);
    for value in &mut values[60..] {
        *value += 30.0;
    }
    let spaced = |gap: i64| -> Vec<(Value, i64)> {
        values.iter().enumerate().map(|(position, value)| (json!({"latency": value}), position as i64 * gap)).collect()
    };
    let run = |half_life: &str, gap: i64| json_values(&operator(config(half_life)).process_json(&spaced(gap)).batch);
    let seconds = run("2s", 1_000);
    let scores = |values: Vec<Value>| -> Vec<Value> { values.into_iter().map(|alert| alert["score"].clone()).collect() };
    assert_eq!(scores(seconds.clone()), scores(run("2h", 3_600_000)), "only elapsed time / half-life matters");
    let long = run("10m", 1_000);
    let (short, long) = (alert_times(&seconds), alert_times(&long));
    let short_learnt = short.iter().all(|(_, time)| *time < 66_000);
    let long_remembers = long.iter().any(|(_, time)| *time > 75_000);
    assert!(short_learnt && long_remembers, "a short half-life forgets the old level sooner: {short:?} {long:?}");
}
