//! Native tests of the operator: quality on planted clusters, buffering, state and configuration.

mod buffering;
mod continuity;
mod quality;

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_batch, json_values};
use sluice_sdk::{Batch, Distribution, Operator};

use crate::{Cluster, SplitMix64};

fn operator(config: Value) -> Harness<Cluster> {
    match Harness::<Cluster>::new(config.clone()) {
        Ok(harness) => harness,
        Err(error) => panic!("config {config} refused: {error}"),
    }
}

fn refusal(config: Value) -> String {
    match Harness::<Cluster>::new(config.clone()) {
        Ok(_) => panic!("config {config} accepted"),
        Err(error) => error,
    }
}

/// `["x0", "x1", ...]`.
fn feature_names(dimensions: usize) -> Vec<String> {
    (0..dimensions).map(|dimension| format!("x{dimension}")).collect()
}

/// `{"id": id, "x0": .., "x1": ..}`.
fn point_record(id: usize, point: &[f64]) -> Value {
    let mut record = json!({ "id": id });
    for (dimension, x) in point.iter().enumerate() {
        record[format!("x{dimension}")] = json!(x);
    }
    record
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u = 1.0 - rng.next_f64();
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `clusters` Gaussian clusters (sd 1) of `per_cluster` points in `dimensions`, centres at
/// least 10 apart in [-30, 30]^d, shuffled: (point, planted label).
fn planted(seed: u64, clusters: usize, dimensions: usize, per_cluster: usize) -> Vec<(Vec<f64>, usize)> {
    let mut rng = SplitMix64 { state: seed };
    let mut centres: Vec<Vec<f64>> = Vec::new();
    while centres.len() < clusters {
        let centre: Vec<f64> = (0..dimensions).map(|_| rng.next_f64() * 60.0 - 30.0).collect();
        if centres.iter().all(|other| crate::seeding::squared_distance(other, &centre) >= 100.0) {
            centres.push(centre);
        }
    }
    let mut points: Vec<(Vec<f64>, usize)> =
        (0..clusters * per_cluster).map(|n| (centres[n % clusters].iter().map(|c| c + normal(&mut rng)).collect(), n % clusters)).collect();
    for index in (1..points.len()).rev() {
        points.swap(index, rng.below(index + 1));
    }
    points
}

/// Every record of `points`, in batches of `batch_size`, then the end of input: the
/// main-output payloads in order.
fn segment_all(cluster: &mut Harness<Cluster>, points: &[(Vec<f64>, usize)], batch_size: usize) -> Vec<Value> {
    let mut emitted = Vec::new();
    let records: Vec<(Value, i64)> = points.iter().enumerate().map(|(id, (point, _))| (point_record(id, point), id as i64)).collect();
    for chunk in records.chunks(batch_size) {
        let out = cluster.process_json(chunk);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        emitted.extend(json_values(&out.batch));
    }
    emitted.extend(json_values(&main_output(&cluster.watermark(i64::MAX))));
    emitted
}

/// The records of `batch` on the main output.
fn main_output(batch: &Batch) -> Batch {
    on_port(batch, 0)
}

fn on_port(batch: &Batch, port: u32) -> Batch {
    let mut selected = Batch::new();
    batch.iter().filter(|record| record.port() == port).for_each(|record| selected.push_record(record));
    selected
}

/// Each record's segment (`usize::MAX` for null).
fn segments(emitted: &[Value]) -> Vec<usize> {
    emitted.iter().map(|record| record["segment"].as_u64().map_or(usize::MAX, |segment| segment as usize)).collect()
}

/// The adjusted Rand index of two labellings (Hubert and Arabie).
fn adjusted_rand_index(left: &[usize], right: &[usize]) -> f64 {
    use std::collections::HashMap;
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: HashMap<(usize, usize), f64> = HashMap::new();
    let (mut rows, mut columns): (HashMap<usize, f64>, HashMap<usize, f64>) = Default::default();
    for (&a, &b) in left.iter().zip(right) {
        *table.entry((a, b)).or_default() += 1.0;
        *rows.entry(a).or_default() += 1.0;
        *columns.entry(b).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| pairs(n)).sum();
    let row_pairs: f64 = rows.values().map(|&n| pairs(n)).sum();
    let column_pairs: f64 = columns.values().map(|&n| pairs(n)).sum();
    let expected = row_pairs * column_pairs / pairs(left.len() as f64);
    let maximum = (row_pairs + column_pairs) / 2.0;
    if maximum == expected { 1.0 } else { (index - expected) / (maximum - expected) }
}

#[test]
fn the_adjusted_rand_index_is_one_for_a_relabelling_and_near_zero_for_noise() {
    assert!((adjusted_rand_index(&[0, 0, 1, 1, 2, 2], &[5, 5, 3, 3, 9, 9]) - 1.0).abs() < 1e-12);
    // scikit-learn: adjusted_rand_score([0, 0, 1, 1], [0, 0, 1, 2]) = 0.5714285714285715.
    assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.571_428_571_428_571_5).abs() < 1e-12);
    let mut rng = SplitMix64 { state: 3 };
    let noise: Vec<usize> = (0..2000).map(|_| rng.below(4)).collect();
    let other: Vec<usize> = (0..2000).map(|_| rng.below(4)).collect();
    assert!(adjusted_rand_index(&noise, &other).abs() < 0.02);
}

#[test]
fn records_that_cannot_be_placed_are_rejected_with_the_reason_and_teach_nothing() {
    let mut cluster = operator(json!({"features": ["a", "b.c"], "k": 2}));
    let mut batch = json_batch(&[
        (json!({"a": 1, "b": {"c": 2}}), 1),
        (json!({"b": {"c": 2}}), 2),
        (json!({"a": "1", "b": {"c": 2}}), 3),
        (json!({"a": null, "b": {"c": 2}}), 4),
        (json!({"a": true, "b": {"c": 2}}), 5),
        (json!([1, 2]), 6),
        (json!("text"), 7),
    ]);
    batch.push(None, b"{\"a\": 1e400, \"b\": {\"c\": 2}}", 8, []);
    batch.push(None, b"{\"a\": 1, \"b\": ", 9, []);
    let out = cluster.process(&batch);
    let reasons: Vec<(u32, String)> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.clone())).collect();
    assert_eq!(reasons.iter().map(|(index, _)| *index).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(reasons[0].1, "feature a is missing");
    assert_eq!(reasons[1].1, "feature a is a string, not a number");
    assert_eq!(reasons[2].1, "feature a is null, not a number");
    assert_eq!(reasons[3].1, "feature a is a boolean, not a number");
    assert!(reasons[4].1.contains("not a JSON object"), "{}", reasons[4].1);
    assert!(reasons[6].1.contains("beyond the range"), "{}", reasons[6].1);
    assert!(reasons[7].1.contains("not valid JSON"), "{}", reasons[7].1);
    assert_eq!(cluster.operator().model().records, 1);
}

/// Features far beyond the square root of the largest double are placed by their distance, as
/// nearer ones are (their squares overflow: the distances are taken scaled), and the centroids
/// stay finite.
#[test]
fn far_points_within_a_doubles_range_are_placed_by_their_distance() {
    let mut cluster = operator(json!({"features": ["x"], "k": 2, "init_points": 2, "seed": 1}));
    let records: Vec<(Value, i64)> =
        [1e200, 0.0, 2e200, -1e150, 1.7e308, -1.7e308].iter().enumerate().map(|(index, x)| (json!({"x": x}), index as i64)).collect();
    let out = json_values(&main_output(&cluster.process_json(&records).batch));
    let placed: Vec<(f64, f64)> =
        out.iter().map(|record| (record["x"].as_f64().unwrap_or(f64::NAN), record["distance"].as_f64().unwrap_or(f64::NAN))).collect();
    let segment_of = |x: f64| out.iter().find(|record| record["x"].as_f64() == Some(x)).map(|record| record["segment"].clone());
    assert_eq!(segment_of(2e200), segment_of(1e200), "2e200 is nearer 1e200 than 0: {out:?}");
    assert_eq!(segment_of(-1e150), segment_of(0.0), "-1e150 is nearer 0: {out:?}");
    assert!(placed.iter().all(|(_, distance)| distance.is_finite()), "{placed:?}");
    assert!(cluster.operator().model().centroids.iter().all(|centre| centre.is_finite()), "{:?}", cluster.operator().model().centroids);
}

#[test]
fn output_fields_replace_existing_ones_nest_and_keep_key_and_headers() {
    let mut cluster = operator(json!({"features": ["x"], "k": 2, "init_points": 2}));
    let mut batch = json_batch(&[(json!({"x": 0, "segment": "old"}), 1)]);
    batch.push(Some(b"user-7"), b" { \"x\" : 10 }  ", 2, [(&b"trace"[..], &b"t1"[..])]);
    batch.push(Some(b"user-8"), b"{\"x\":9.5}", 3, [(&b"trace"[..], &b"t2"[..])]);
    let out = cluster.process(&batch);
    // With seed 1, k-means++ draws x = 10 first: it is segment 0.
    assert_eq!(
        json_values(&out.batch),
        vec![
            json!({"x": 0, "segment": 1, "distance": 0}),
            json!({"x": 10, "segment": 0, "distance": 0}),
            json!({"x": 9.5, "segment": 0, "distance": 0.5}),
        ]
    );
    let keys: Vec<_> = out.batch.iter().map(|record| (record.key(), record.header("trace"))).collect();
    assert_eq!(keys, vec![(None, None), (Some(&b"user-7"[..]), Some(&b"t1"[..])), (Some(&b"user-8"[..]), Some(&b"t2"[..]))]);
    assert_eq!(
        String::from_utf8_lossy(out.batch.get(2).map(|record| record.value()).unwrap_or_default()),
        r#"{"x":9.5,"segment":0,"distance":0.5}"#
    );

    let config = json!({"features": ["x"], "k": 2, "init_points": 2, "segment_field": "cluster.id", "distance_field": "cluster.distance"});
    let mut nested = operator(config);
    let out = nested.process_json(&[(json!({"x": 0}), 1), (json!({"x": 1, "cluster": "not an object"}), 2), (json!({"x": 4}), 3)]);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        json_values(&out.batch),
        vec![json!({"x": 0, "cluster": {"id": 1, "distance": 0}}), json!({"x": 4, "cluster": {"id": 0, "distance": 0}})]
    );
}

#[test]
fn the_configuration_is_checked_with_sentences_that_name_the_key() {
    assert!(refusal(json!({"features": [], "k": 2})).contains("`features` is empty"));
    assert!(refusal(json!({"features": ["a", "a"], "k": 2})).contains("twice"));
    assert!(refusal(json!({"features": ["a"], "k": 1})).contains("`k` must be between 2 and 256"));
    assert!(refusal(json!({"features": ["a"], "k": 257})).contains("`k`"));
    assert!(refusal(json!({"features": ["a"], "k": 5, "init_points": 4})).contains("`init_points` must be at least `k`"));
    assert!(refusal(json!({"features": ["a"], "k": 5, "init_points": 100_001})).contains("`init_points`"));
    assert!(refusal(json!({"features": ["a"], "k": 2, "min_rate": 1.5})).contains("`min_rate`"));
    assert!(refusal(json!({"features": ["a"], "k": 2, "min_rate": -0.1})).contains("`min_rate`"));
    assert!(refusal(json!({"features": ["a"], "k": 2, "half_life": 0})).contains("`half_life`"));
    assert!(refusal(json!({"features": ["a"], "k": 2, "segment_field": "s", "distance_field": "s"})).contains("must be different"));
    assert!(refusal(json!({"features": ["a"], "k": 2, "segment_field": "out", "distance_field": "out.d"})).contains("must be different"));
    assert!(refusal(json!({"features": ["segment"], "k": 2})).contains("feature `segment` would be overwritten"));
    assert!(refusal(json!({"features": ["a"]})).contains("missing field `k`"));
    assert!(refusal(json!({"features": ["a"], "k": 2, "sluice_docs_probe": 1})).contains("unknown field"));
    let cluster = operator(json!({"features": ["a"], "k": 2}));
    assert_eq!(cluster.info().outputs, vec!["centroids".to_owned()]);
    assert_eq!(cluster.info().distribution, Distribution::Single);
    let mut unreported = operator(json!({"features": ["a"], "k": 2, "init_points": 2, "report_centroids": false}));
    assert!(unreported.info().outputs.is_empty());
    assert_eq!(unreported.process_json(&[(json!({"a": 1}), 1), (json!({"a": 2}), 2)]).batch.len(), 2);
    assert!(unreported.watermark(3).is_empty(), "no centroids without the side output");
}

/// Seeding runs within one call: a configuration whose seeding could outlast the call timeout
/// (the operator would be disabled with its held records stuck) is refused, naming what to lower.
#[test]
fn a_seeding_too_costly_for_one_call_is_refused() {
    let config = |k: usize, dimensions: usize, init_points: Option<usize>| {
        let mut config = json!({"features": feature_names(dimensions), "k": k});
        if let Some(init_points) = init_points {
            config["init_points"] = json!(init_points);
        }
        config
    };
    let largest = refusal(config(256, 1024, Some(100_000)));
    assert!(largest.starts_with("seeding k = 256 centroids from `init_points` = 100000 records of 1024 features takes up to"), "{largest}");
    assert!(
        largest.ends_with(
            "than the 250 million that finish well within the default 1 s `call_timeout`: lower `k` or the number of `features`"
        )
    );
    // 10 features, k = 256: 256 × 12 × 19 = 58368 per point, so 4283 points fit.
    assert_eq!(crate::seeding_work(1, 256, 10), 58_368);
    let refused = refusal(config(256, 10, Some(4284)));
    assert!(refused.ends_with("lower `init_points` to at most 4283, or lower `k` or the number of `features`"), "{refused}");
    operator(config(256, 10, Some(4283)));
    operator(config(256, 10, None));
    let defaulted = refusal(config(256, 20, None));
    assert!(defaulted.contains("`init_points` = 2560 (10 × k by default) records of 20 features"), "{defaulted}");
    assert!(crate::seeding_work(crate::MAX_INIT_POINTS, 2, 1) <= crate::MAX_SEEDING_WORK, "one feature and k = 2 seed any init_points");
}

#[test]
fn default_init_points_is_ten_per_segment() {
    let mut cluster = operator(json!({"features": ["x"], "k": 3}));
    let records: Vec<(Value, i64)> = (0..29).map(|n| (json!({"x": n}), n)).collect();
    assert!(cluster.process_json(&records).batch.is_empty());
    assert_eq!(cluster.process_json(&[(json!({"x": 29}), 29)]).batch.len(), 30);
}

/// Keeps `Operator` in use for `restore` calls in the submodules.
fn restore(cluster: &mut Harness<Cluster>, state: sluice_sdk::State) -> Result<(), String> {
    cluster.operator().restore(state)
}
