//! State: a restart continues exactly, and results depend neither on batch boundaries nor on
//! other keys.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use super::{Noise, operator};
use crate::Forecast;

fn config() -> Value {
    json!({"key": ["k"], "value": "y", "alpha": 0.4, "beta": 0.2, "gamma": 0.3, "season_length": 3, "horizon": 2, "step": "1s"})
}

/// Records of keys "a", "b", "c" from (key, value, advance): each key's slot moves on by
/// `advance` (0: the key's last slot again, which is dropped as out of order; 2 or more: a gap).
fn stream(points: &[(u8, f64, u8)]) -> Vec<(Value, i64)> {
    let mut slots = [0i64; 3];
    points
        .iter()
        .map(|(key, value, advance)| {
            let key = usize::from(*key % 3);
            slots[key] += i64::from(*advance);
            let name = ["a", "b", "c"][key];
            (json!({"k": name, "y": value}), slots[key] * 1000)
        })
        .collect()
}

fn outputs_in_batches(records: &[(Value, i64)], batch_size: usize) -> (Vec<Value>, sluice_sdk::State) {
    let mut forecast = operator(config());
    let outputs = records.chunks(batch_size.max(1)).flat_map(|chunk| json_values(&forecast.process_json(chunk).batch)).collect();
    (outputs, forecast.snapshot())
}

fn noisy_points(length: usize) -> Vec<(u8, f64, u8)> {
    let mut noise = Noise(3);
    (0..length).map(|n| ((n % 3) as u8, 10.0 * (n as f64 / 4.0).sin() + noise.gaussian(), 1 + u8::from(n % 17 == 5))).collect()
}

#[test]
fn a_restored_operator_continues_exactly() {
    let records = stream(&noisy_points(90));
    let (expected, expected_state) = outputs_in_batches(&records, records.len());
    // Cut while "c" is still warming up (its sixth point is its last of the warm-up) and later.
    for cut in [14, 40, 89] {
        let mut first = operator(config());
        let mut outputs = json_values(&first.process_json(&records[..cut]).batch);
        let state = first.snapshot();
        let mut second = match Harness::<Forecast>::restored(config(), state) {
            Ok(second) => second,
            Err(reason) => panic!("restore refused: {reason}"),
        };
        outputs.extend(json_values(&second.process_json(&records[cut..]).batch));
        assert_eq!(outputs, expected, "cut at {cut}");
        assert_eq!(second.snapshot(), expected_state, "cut at {cut}");
    }
}

#[test]
fn state_learnt_under_another_season_trend_or_step_is_not_reused() {
    let records = stream(&noisy_points(30));
    let mut first = operator(config());
    first.process_json(&records);
    let state = first.snapshot();
    let mut other_season = config();
    other_season["season_length"] = json!(4);
    let restored = Harness::<Forecast>::restored(other_season, state.clone()).map(|mut harness| harness.operator().state().series.len());
    assert_eq!(restored, Ok(0), "every key warms up again");
    let mut other_smoothing = config();
    other_smoothing["alpha"] = json!(0.9);
    let restored = Harness::<Forecast>::restored(other_smoothing, state).map(|mut harness| harness.operator().state().series.len());
    assert_eq!(restored, Ok(3), "smoothing parameters may change");
    let wrong_version = sluice_sdk::State { version: 2, bytes: Vec::new() };
    assert!(Harness::<Forecast>::restored(config(), wrong_version).is_err());
}

#[test]
fn the_gauges_count_keys_and_keys_warming_up() {
    let mut forecast = operator(config());
    forecast.process_json(&stream(&[(0, 1.0, 1), (1, 1.0, 1), (1, 2.0, 1), (1, 3.0, 1), (1, 4.0, 1), (1, 5.0, 1), (1, 6.0, 1)]));
    forecast.watermark(0);
    let gauges = sluice_sdk::host::native_metrics().gauges;
    assert_eq!((gauges.get("keys"), gauges.get("keys_warming_up")), (Some(&2.0), Some(&1.0)));
}

proptest! {
    /// However the records are cut into batches, the outputs and the state are the same.
    #[test]
    fn results_do_not_depend_on_batch_boundaries(
        points in proptest::collection::vec((0u8..3, -100.0f64..100.0, 0u8..4), 0..80),
        batch_size in 1usize..9,
    ) {
        let records = stream(&points);
        let whole = outputs_in_batches(&records, records.len());
        let cut = outputs_in_batches(&records, batch_size);
        prop_assert_eq!(whole.0, cut.0);
        prop_assert_eq!(whole.1, cut.1);
    }

    /// A key's outputs are those it would have alone: keys share nothing.
    #[test]
    fn each_key_is_forecast_as_if_alone(points in proptest::collection::vec((0u8..3, -100.0f64..100.0, 0u8..4), 0..80)) {
        let records = stream(&points);
        let (mixed, _) = outputs_in_batches(&records, records.len());
        for key in ["a", "b", "c"] {
            let alone: Vec<(Value, i64)> = records.iter().filter(|(record, _)| record["k"] == key).cloned().collect();
            let (expected, _) = outputs_in_batches(&alone, alone.len());
            let of_key: Vec<Value> = mixed.iter().filter(|record| record["k"] == key).cloned().collect();
            prop_assert_eq!(of_key, expected);
        }
    }
}
