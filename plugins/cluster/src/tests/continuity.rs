//! A restart or a hot swap continues exactly; batch boundaries change nothing.

use proptest::prelude::*;

use super::*;

fn run_in_two(config: &Value, points: &[(Vec<f64>, usize)], split: usize) -> Vec<Value> {
    let mut first = operator(config.clone());
    let mut emitted = Vec::new();
    let records: Vec<(Value, i64)> = points.iter().enumerate().map(|(id, (point, _))| (point_record(id, point), id as i64)).collect();
    for chunk in records[..split].chunks(50) {
        emitted.extend(json_values(&first.process_json(chunk).batch));
    }
    let state = first.snapshot();
    let mut second = match Harness::<Cluster>::restored(config.clone(), state) {
        Ok(second) => second,
        Err(error) => panic!("restore refused: {error}"),
    };
    assert_eq!(second.operator().model(), first.operator().model());
    for chunk in records[split..].chunks(50) {
        emitted.extend(json_values(&second.process_json(chunk).batch));
    }
    emitted.extend(json_values(&second.watermark(i64::MAX)));
    emitted
}

#[test]
fn a_restored_snapshot_continues_exactly_as_an_uninterrupted_run() {
    let points = planted(41, 5, 4, 400);
    let config = json!({"features": feature_names(4), "k": 5, "init_points": 60, "half_life": 300, "min_rate": 0.01});
    let mut uninterrupted = operator(config.clone());
    let mut expected = segment_all_with_reports(&mut uninterrupted, &points);
    expected.retain(|record| record.get("id").is_some());
    for split in [1000, 30] {
        let mut interrupted = run_in_two(&config, &points, split);
        interrupted.retain(|record| record.get("id").is_some());
        assert_eq!(interrupted, expected, "snapshot after {split} records");
    }
}

fn segment_all_with_reports(cluster: &mut Harness<Cluster>, points: &[(Vec<f64>, usize)]) -> Vec<Value> {
    let records: Vec<(Value, i64)> = points.iter().enumerate().map(|(id, (point, _))| (point_record(id, point), id as i64)).collect();
    let mut emitted = Vec::new();
    for chunk in records.chunks(50) {
        emitted.extend(json_values(&cluster.process_json(chunk).batch));
    }
    emitted.extend(json_values(&cluster.watermark(i64::MAX)));
    emitted
}

#[test]
fn a_state_of_another_shape_is_refused() {
    let mut cluster = operator(json!({"features": ["x", "y"], "k": 2, "init_points": 2}));
    cluster.process_json(&[(json!({"x": 0, "y": 0}), 0), (json!({"x": 1, "y": 1}), 1)]);
    let state = cluster.snapshot();
    let mut other_k = operator(json!({"features": ["x", "y"], "k": 3}));
    let refused = restore(&mut other_k, state.clone()).err().unwrap_or_default();
    assert!(refused.contains("k = 2") && refused.contains("k = 3"), "{refused}");
    let mut other_features = operator(json!({"features": ["x", "z"], "k": 2}));
    assert!(restore(&mut other_features, state.clone()).is_err());
    let mut same = operator(json!({"features": ["x", "y"], "k": 2, "min_rate": 0.5}));
    assert!(restore(&mut same, state).is_ok(), "rates may change across a swap");
    let mut fresh = operator(json!({"features": ["x"], "k": 2}));
    assert!(restore(&mut fresh, sluice_sdk::State { version: 9, bytes: vec![1] }).is_err());
}

proptest! {
    /// However the records are cut into batches, each gets the same segment and distance.
    #[test]
    fn segments_do_not_depend_on_batch_boundaries(
        points in proptest::collection::vec((-50i32..50, -50i32..50), 0..150),
        init_points in 3usize..30,
        cuts in proptest::collection::vec(1usize..20, 1..20),
    ) {
        let config = json!({"features": ["x", "y"], "k": 3, "init_points": init_points, "half_life": 40});
        let records: Vec<(Value, i64)> = points.iter().enumerate().map(|(id, (x, y))| (json!({"id": id, "x": x, "y": y}), id as i64)).collect();
        let mut one_by_one = operator(config.clone());
        let mut expected = Vec::new();
        for record in &records {
            expected.extend(json_values(&one_by_one.process_json(std::slice::from_ref(record)).batch));
        }
        expected.extend(json_values(&one_by_one.watermark(i64::MAX)));
        let mut batched = operator(config);
        let mut emitted = Vec::new();
        let mut rest = records.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, remaining) = rest.split_at((*cut).min(rest.len()));
            emitted.extend(json_values(&batched.process_json(batch).batch));
            rest = remaining;
        }
        emitted.extend(json_values(&batched.watermark(i64::MAX)));
        prop_assert_eq!(emitted, expected);
    }
}
