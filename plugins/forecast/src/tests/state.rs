//! State: a restart continues exactly, and results depend neither on batch boundaries nor on
//! other keys.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};
use sluice_sdk::{State, VersionedState};

use super::{Noise, operator};
use crate::{Forecast, KEY_BYTES, STATE_BUDGET_BYTES, Shape, Stage};

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
    let wrong_version = sluice_sdk::State { version: 9, bytes: Vec::new() };
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

/// The brief's case: a season of 1000 with a trend warms up on 1999 points per key, 17 bytes
/// each at worst (8 in memory, 9 in the snapshot): 3333 keys would need 108 MiB and trapped at
/// the default memory limit, so `init` refuses them and says how many fit.
#[test]
fn max_keys_is_refused_when_the_keys_could_outgrow_the_memory_budget() {
    let config = |max_keys: usize| json!({"key": ["k"], "value": "y", "alpha": 0.3, "beta": 0.1, "gamma": 0.1, "season_length": 1000, "max_keys": max_keys});
    let per_key = 17 * 1999 + KEY_BYTES;
    let fitting = STATE_BUDGET_BYTES / per_key;
    assert_eq!(fitting, 1952);
    let refusal = Harness::<Forecast>::new(config(3333)).err().unwrap_or_default();
    assert!(refusal.starts_with("`max_keys` = 3333 keys of up to 34367 bytes each (season_length = 1000,"), "{refusal}");
    assert!(refusal.ends_with("lower `max_keys` to at most 1952 or lower `season_length`"), "{refusal}");
    assert!(Harness::<Forecast>::new(config(fitting + 1)).is_err());
    assert!(Harness::<Forecast>::new(config(fitting)).is_ok());
    // The figures of docs/operators.md: keys that fit with a season of 12 and of 168, with a trend.
    for (season_length, fitting) in [(12, 86_592), (168, 11_039)] {
        let parameters = crate::Parameters { alpha: 0.3, beta: Some(0.1), gamma: 0.1, season_length };
        assert_eq!(STATE_BUDGET_BYTES / crate::bytes_per_key(&parameters), fitting);
    }
    let one_series = json!({"value": "y", "alpha": 0.3, "max_keys": 1_000_000});
    let refusal = Harness::<Forecast>::new(one_series).err().unwrap_or_default();
    assert!(refusal.contains("lower `max_keys` to at most 174762"), "even without a season a key takes {KEY_BYTES} bytes: {refusal}");
}

/// What the memory bound counts: the warm-up buffer holds exactly the warm-up's points (no
/// doubling), also after a restore, and the snapshot takes at most 9 bytes per point besides
/// each key's own bytes.
#[test]
fn a_warm_up_takes_one_buffer_of_its_exact_size_and_9_bytes_a_point_in_a_snapshot() {
    let config = json!({"key": ["k"], "value": "y", "alpha": 0.3, "beta": 0.1, "gamma": 0.1, "season_length": 100});
    let capacity = |forecast: &mut Harness<Forecast>| match forecast.operator().state().series.values().next().map(|series| &series.stage) {
        Some(Stage::WarmingUp { points, .. }) => points.capacity(),
        _ => 0,
    };
    let mut forecast = operator(config.clone());
    let records: Vec<(Value, i64)> = (0..150).map(|n| (json!({"k": "a", "y": n}), n)).collect();
    forecast.process_json(&records[..1]);
    assert_eq!(capacity(&mut forecast), 199, "all but the last of the 200 warm-up points");
    forecast.process_json(&records[1..100]);
    let mut restored = Harness::<Forecast>::restored(config, forecast.snapshot()).unwrap_or_else(|reason| panic!("{reason}"));
    restored.process_json(&records[100..150]);
    assert_eq!(capacity(&mut restored), 199, "a restored warm-up grows to its exact size once");
    let snapshot = restored.snapshot().bytes.len();
    assert!(snapshot <= 150 * 9 + KEY_BYTES, "{snapshot} bytes");
}

/// The warm-up points, now numbers with NaN for an empty slot, are written as state version 1
/// always wrote them (optional numbers): old snapshots restore, and an older build reads new ones.
#[test]
fn the_state_keeps_its_version_1_format() {
    #[derive(Serialize, Deserialize)]
    struct StateV1 {
        shape: Shape,
        series: BTreeMap<String, SeriesV1>,
    }
    #[derive(Serialize, Deserialize)]
    struct SeriesV1 {
        last_slot: i64,
        stage: StageV1,
    }
    #[derive(Serialize, Deserialize)]
    enum StageV1 {
        WarmingUp { first_slot: i64, points: Vec<Option<f64>> },
    }
    impl VersionedState for StateV1 {
        const VERSION: u32 = 1;
    }
    let mut forecast = operator(config());
    forecast.process_json(&[(json!({"k": "a", "y": 1.5}), 7_000), (json!({"k": "a", "y": 3.5}), 9_000)]);
    let key = forecast.operator().state().series.keys().next().cloned().unwrap_or_default();
    let points = vec![Some(1.5), None, Some(3.5)];
    let series = SeriesV1 { last_slot: 9, stage: StageV1::WarmingUp { first_slot: 7, points } };
    let shape = Shape { season_length: 3, trend: true, step: Some(1000) };
    let old: State = State::encode(&StateV1 { shape, series: BTreeMap::from([(key, series)]) });
    assert_eq!(forecast.snapshot(), old, "the same bytes, version 1");
    let mut restored = Harness::<Forecast>::restored(config(), old).unwrap_or_else(|reason| panic!("{reason}"));
    let rest = [(json!({"k": "a", "y": 2.5}), 10_000), (json!({"k": "a", "y": 5.0}), 12_000)];
    assert_eq!(json_values(&restored.process_json(&rest).batch), json_values(&forecast.process_json(&rest).batch));
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
