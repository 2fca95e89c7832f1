//! The quality of the segmentation: planted clusters recovered, determinism, and drift followed.

use super::*;

#[test]
fn planted_well_separated_gaussian_clusters_are_recovered() {
    for (clusters, dimensions, seed) in [(4, 2, 11), (5, 3, 12), (5, 4, 13), (6, 5, 14)] {
        let points = planted(seed, clusters, dimensions, 600);
        let mut cluster = operator(json!({"features": feature_names(dimensions), "k": clusters}));
        let emitted = segment_all(&mut cluster, &points, 256);
        assert_eq!(emitted.len(), points.len());
        let planted_labels: Vec<usize> = points.iter().map(|(_, label)| *label).collect();
        let ari = adjusted_rand_index(&segments(&emitted), &planted_labels);
        assert!(ari >= 0.9, "{clusters} clusters in {dimensions} dimensions: adjusted Rand index {ari}");
        assert!(emitted.iter().all(|record| record["distance"].as_f64().is_some_and(|distance| distance >= 0.0)));
    }
}

#[test]
fn a_seed_gives_the_same_segments_every_time() {
    let points = planted(21, 5, 3, 300);
    let config = json!({"features": feature_names(3), "k": 5, "seed": 42, "half_life": 500});
    let first = segment_all(&mut operator(config.clone()), &points, 100);
    let second = segment_all(&mut operator(config), &points, 100);
    assert_eq!(first, second);
    let other_seed = segment_all(&mut operator(json!({"features": feature_names(3), "k": 5, "seed": 7})), &points, 100);
    let labels: Vec<usize> = points.iter().map(|(_, label)| *label).collect();
    assert!(adjusted_rand_index(&segments(&other_seed), &labels) >= 0.9, "another seed finds the clusters too");
}

/// Two clusters at x = 0 and x = 10; the second then moves to x = 13. Returns the centroid
/// that followed it (its x).
fn moved_cluster_centroid(config: Value) -> f64 {
    let mut rng = SplitMix64 { state: 5 };
    let mut cluster = operator(config);
    for (phase, moved_to) in [(0, 10.0), (1, 13.0)] {
        let records: Vec<(Value, i64)> = (0..2000)
            .map(|n| {
                let x = if n % 2 == 0 { 0.0 } else { moved_to } + 0.5 * normal(&mut rng);
                (json!({"x": x, "y": 0.5 * normal(&mut rng)}), phase * 2000 + n)
            })
            .collect();
        assert!(cluster.process_json(&records).rejected.is_empty());
    }
    let model = cluster.operator().model();
    (0..2).map(|segment| model.centroid(segment)[0]).fold(f64::MIN, f64::max)
}

#[test]
fn decay_lets_a_centroid_follow_a_cluster_that_moved() {
    let following = moved_cluster_centroid(json!({"features": ["x", "y"], "k": 2, "min_rate": 0, "half_life": 100}));
    assert!((following - 13.0).abs() < 0.3, "with a half-life of 100 records the centroid is at {following}");
    let stuck = moved_cluster_centroid(json!({"features": ["x", "y"], "k": 2, "min_rate": 0}));
    assert!((stuck - 11.5).abs() < 0.3, "without decay the centroid is the mean of old and new: {stuck}");
    let floored = moved_cluster_centroid(json!({"features": ["x", "y"], "k": 2, "min_rate": 0.05}));
    assert!((floored - 13.0).abs() < 0.5, "the rate floor alone follows too: {floored}");
}

#[test]
fn without_decay_a_centroid_is_the_mean_of_its_points_and_counts_add_up() {
    let mut cluster = operator(json!({"features": ["x"], "k": 2, "init_points": 2, "min_rate": 0}));
    cluster.process_json(&[(json!({"x": 0}), 0), (json!({"x": 100}), 1), (json!({"x": 2}), 2), (json!({"x": 4}), 3)]);
    let model = cluster.operator().model();
    let low = if model.centroid(0)[0] < 50.0 { 0 } else { 1 };
    assert!((model.centroid(low)[0] - 2.0).abs() < 1e-12);
    assert_eq!(model.counts[low], 3.0);
    assert_eq!(model.counts.iter().sum::<f64>(), model.records as f64);
}
