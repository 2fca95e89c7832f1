//! The records held before seeding, the end of the input, and the `centroids` side output.

use super::*;

fn ids(emitted: &[Value]) -> Vec<u64> {
    emitted.iter().filter_map(|record| record["id"].as_u64()).collect()
}

#[test]
fn held_records_are_emitted_once_in_order_when_the_centroids_are_seeded() {
    let points = planted(31, 3, 2, 40);
    let mut cluster = operator(json!({"features": feature_names(2), "k": 3, "init_points": 40}));
    let records: Vec<(Value, i64)> = points.iter().enumerate().map(|(id, (point, _))| (point_record(id, point), id as i64)).collect();
    let (mut emitted, mut times) = (Vec::new(), Vec::new());
    for (number, chunk) in records.chunks(7).enumerate() {
        let out = cluster.process_json(chunk);
        if number < 5 {
            assert!(out.batch.is_empty(), "batch {number} comes before the 40th record");
        }
        if number == 5 {
            assert_eq!(out.batch.len(), 42, "the 40 held records and the 2 after them");
        }
        emitted.extend(json_values(&out.batch));
        times.extend(out.batch.iter().map(|record| record.timestamp()));
    }
    assert_eq!(ids(&emitted), (0..120).collect::<Vec<u64>>());
    assert!(segments(&emitted).iter().all(|segment| *segment < 3));
    assert_eq!(times, (0..120).collect::<Vec<i64>>(), "each with its own event time");
    assert!(main_output(&cluster.watermark(i64::MAX)).is_empty(), "nothing is held any more");
}

#[test]
fn the_end_of_the_input_seeds_from_what_is_held() {
    let points = planted(32, 3, 2, 10);
    let mut cluster = operator(json!({"features": feature_names(2), "k": 3, "init_points": 100}));
    let records: Vec<(Value, i64)> =
        points.iter().enumerate().map(|(id, (point, _))| (point_record(id, point), 1_000 + id as i64)).collect();
    assert!(cluster.process_json(&records).batch.is_empty());
    assert!(cluster.watermark(5_000).is_empty(), "a watermark before the end neither seeds nor reports");
    let out = cluster.watermark(i64::MAX);
    let emitted = json_values(&main_output(&out));
    assert_eq!(ids(&emitted), (0..30).collect::<Vec<u64>>());
    let times: Vec<i64> = main_output(&out).iter().map(|record| record.timestamp()).collect();
    assert_eq!(times, (1_000..1_030).collect::<Vec<i64>>(), "held records keep their event times");
    let labels: Vec<usize> = points.iter().map(|(_, label)| *label).collect();
    assert!(adjusted_rand_index(&segments(&emitted), &labels) >= 0.9);
    let reports = on_port(&out, 1);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports.get(0).map(|record| record.timestamp()), Some(1_029), "the latest record's event time");
}

#[test]
fn too_few_distinct_points_are_emitted_unsegmented_and_buffering_starts_again() {
    let mut cluster = operator(json!({"features": ["x"], "k": 3, "init_points": 4}));
    let before = sluice_sdk::host::native_metrics().counters.get("unsegmented").copied().unwrap_or(0);
    let out = cluster.process_json(&[(json!({"x": 1}), 0), (json!({"x": 1}), 1), (json!({"x": 2}), 2), (json!({"x": 1.0}), 3)]);
    let emitted = json_values(&out.batch);
    assert_eq!(emitted[0], json!({"x": 1, "segment": null, "distance": null}));
    assert_eq!(segments(&emitted), vec![usize::MAX; 4]);
    assert!(!cluster.operator().model().is_seeded());
    let out = cluster.process_json(&[(json!({"x": 1}), 4), (json!({"x": 5}), 5), (json!({"x": 9}), 6), (json!({"x": 9}), 7)]);
    assert!(segments(&json_values(&out.batch)).iter().all(|segment| *segment < 3), "the second buffer seeds");
    let mut ending = operator(json!({"features": ["x"], "k": 3}));
    ending.process_json(&[(json!({"x": 1}), 0), (json!({"x": 2}), 1)]);
    let out = ending.watermark(i64::MAX);
    assert_eq!(segments(&json_values(&out)), vec![usize::MAX; 2]);
    assert!(on_port(&out, 1).is_empty(), "no centroids to report");
    let after = sluice_sdk::host::native_metrics().counters.get("unsegmented").copied().unwrap_or(0);
    assert_eq!(after - before, 6);
}

#[test]
fn a_watermark_after_the_centroids_changed_reports_them_on_the_side_output() {
    let mut cluster = operator(json!({"features": ["a", "b.c"], "k": 2, "init_points": 2}));
    cluster.process_json(&[
        (json!({"a": 0, "b": {"c": 0}}), 10),
        (json!({"a": 10, "b": {"c": 4}}), 20),
        (json!({"a": 9, "b": {"c": 4}}), 30),
    ]);
    let out = cluster.watermark(25);
    assert!(main_output(&out).is_empty());
    let reports = on_port(&out, 1);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports.get(0).map(|record| record.timestamp()), Some(25));
    let report = &json_values(&reports)[0];
    let mut centroids = report["centroids"].as_array().cloned().unwrap_or_default();
    centroids.sort_by(|left, right| {
        left["center"]["a"].as_f64().partial_cmp(&right["center"]["a"].as_f64()).unwrap_or(std::cmp::Ordering::Equal)
    });
    assert_eq!(report["records"], json!(3));
    assert_eq!(centroids[0]["center"], json!({"a": 0, "b.c": 0}));
    assert_eq!(centroids[0]["count"], json!(1));
    assert_eq!(centroids[1]["center"], json!({"a": 9.5, "b.c": 4}));
    assert_eq!(centroids[1]["count"], json!(2));
    let segment_numbers: Vec<u64> = centroids.iter().filter_map(|centroid| centroid["segment"].as_u64()).collect();
    assert!(segment_numbers == vec![0, 1] || segment_numbers == vec![1, 0]);
    assert!(cluster.watermark(40).is_empty(), "nothing changed since");
    cluster.process_json(&[(json!({"a": 1, "b": {"c": 0}}), 50)]);
    assert_eq!(on_port(&cluster.watermark(60), 1).len(), 1);
}
