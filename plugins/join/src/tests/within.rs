//! `within`: pairs only inside each left record's interval, and left records kept until the
//! watermark passes its end.

use sluice_sdk::serde_json::json;
use sluice_sdk::testing::json_batch;

use super::{join, pairs};

fn counter(name: &str) -> u64 {
    sluice_sdk::host::native_metrics().counters.get(name).copied().unwrap_or(0)
}

fn interval_join() -> sluice_sdk::testing::Harness<crate::Join> {
    join(json!({"key": ["k"], "within": {"from": "start", "to": "end"}}))
}

#[test]
fn both_bounds_of_the_interval_are_included_whichever_side_comes_first() {
    let left = json!({"k": 1, "start": 100, "end": 200});
    let rights: Vec<_> = [99, 100, 150, 200, 201].iter().map(|time| (json!({"k": 1, "t": time}), *time)).collect();

    let mut left_first = interval_join();
    left_first.process_from(0, &json_batch(&[(left.clone(), 50)]));
    let out = left_first.process_from(1, &json_batch(&rights));
    let matched: Vec<_> = pairs(&out.batch).into_iter().map(|(_, right)| right["t"].clone()).collect();
    assert_eq!(matched, vec![json!(100), json!(150), json!(200)]);
    assert_eq!(out.batch.iter().map(|record| record.timestamp()).collect::<Vec<_>>(), vec![100, 150, 200], "the later event time");

    let mut right_first = interval_join();
    right_first.process_from(1, &json_batch(&rights));
    let out = right_first.process_from(0, &json_batch(&[(left, 50)]));
    let matched: Vec<_> = pairs(&out.batch).into_iter().map(|(_, right)| right["t"].clone()).collect();
    assert_eq!(matched, vec![json!(100), json!(150), json!(200)]);
}

#[test]
fn fractional_bounds_are_rounded_inward() {
    let mut join = interval_join();
    join.process_from(0, &json_batch(&[(json!({"k": 1, "start": 99.5, "end": 200.5}), 0)]));
    let rights: Vec<_> = [99, 100, 200, 201].iter().map(|time| (json!({"k": 1, "t": time}), *time)).collect();
    let out = join.process_from(1, &json_batch(&rights));
    let matched: Vec<_> = pairs(&out.batch).into_iter().map(|(_, right)| right["t"].clone()).collect();
    assert_eq!(matched, vec![json!(100), json!(200)]);
}

#[test]
fn a_left_record_stays_until_the_watermark_passes_its_end_whatever_the_retention() {
    let mut join = join(json!({"key": ["k"], "within": {"from": "start", "to": "end"}, "retention": 10}));
    join.process_from(0, &json_batch(&[(json!({"k": 1, "start": 0, "end": 10_000}), 0)]));
    join.process_from(1, &json_batch(&[(json!({"k": 1, "n": "early"}), 100)]));
    join.watermark(10_000);
    assert_eq!(join.operator().kept().len(), 1, "the right record is 9.9 s behind; the left record's end is not passed");
    let out = join.process_from(1, &json_batch(&[(json!({"k": 1, "n": "at the end"}), 10_000)]));
    assert_eq!(out.batch.len(), 1);
    join.watermark(10_001);
    assert_eq!(
        join.operator().kept().partners(&sluice_sdk::KeyText::from("[1]"), crate::Side::Right).len(),
        0,
        "the left record is forgotten"
    );
    assert_eq!(join.operator().kept().len(), 1, "the right record at 10 s is within retention");
    let out = join.process_from(1, &json_batch(&[(json!({"k": 1, "n": "late"}), 10_000)]));
    assert!(out.batch.is_empty(), "a late right record finds the left record gone");
}

#[test]
fn a_left_record_whose_interval_is_over_is_joined_but_not_kept() {
    let mut join = interval_join();
    join.process_from(1, &json_batch(&[(json!({"k": 1}), 500)]));
    join.watermark(2_000);
    let out = join.process_from(0, &json_batch(&[(json!({"k": 1, "start": 0, "end": 1_000}), 0)]));
    assert_eq!(out.batch.len(), 1, "joined with the kept right record");
    assert_eq!(join.operator().kept().len(), 1, "only the right record is kept");
}

#[test]
fn left_records_without_an_interval_follow_the_missing_policy() {
    let mut dropping = interval_join();
    let out = dropping.process_from(0, &json_batch(&[(json!({"k": 1, "start": 0}), 0), (json!({"k": 1, "start": null, "end": 5}), 0)]));
    assert!(out.batch.is_empty() && out.rejected.is_empty());
    assert_eq!(counter("missing_field_dropped"), 2);
    assert!(dropping.operator().kept().is_empty());

    let mut rejecting = join(json!({"key": ["k"], "within": {"from": "start", "to": "end"}, "missing": "reject"}));
    let out = rejecting.process_from(0, &json_batch(&[(json!({"k": 1, "start": 0}), 0)]));
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].reason, "a `within` field (start, end) is missing or null");

    // A value that is not a number is an error in the record, whatever the policy.
    let mut batch = sluice_sdk::Batch::new();
    batch.push(None, br#"{"k": 1, "start": "soon", "end": 5}"#, 0, []);
    batch.push(None, br#"{"k": 1, "start": 0, "end": 1e400}"#, 0, []);
    let out = dropping.process_from(0, &batch);
    let reasons: Vec<&str> = out.rejected.iter().map(|rejection| rejection.reason.as_str()).collect();
    assert_eq!(reasons, ["field start is a string, not a number", "field end is 1e400, beyond the range of a 64-bit float"]);
}

#[test]
fn right_records_need_no_interval_fields() {
    let mut join = interval_join();
    join.process_from(1, &json_batch(&[(json!({"k": 1}), 5)]));
    let out = join.process_from(0, &json_batch(&[(json!({"k": 1, "start": 0, "end": 10}), 1)]));
    assert_eq!(pairs(&out.batch), vec![(json!({"k": 1, "start": 0, "end": 10}), json!({"k": 1}))]);
}

proptest::proptest! {
    /// Whatever the interleaving (no record late), the pairs are exactly those of equal keys
    /// with the right record's event time inside the left record's interval.
    #[test]
    fn the_pairs_are_the_equal_key_pairs_inside_the_interval(
        records in proptest::collection::vec((0u32..2, 0u8..3, 0i64..40, 0i64..20), 0..40),
    ) {
        let mut join = interval_join();
        let mut emitted = Vec::new();
        let tagged: Vec<(u32, sluice_sdk::serde_json::Value, i64)> = records
            .iter()
            .enumerate()
            .map(|(n, (side, key, time, length))| (*side, json!({"k": key, "n": n, "start": time, "end": time + length}), *time))
            .collect();
        for (side, value, time) in &tagged {
            let out = join.process_from(*side, &json_batch(&[(value.clone(), *time)]));
            emitted.extend(pairs(&out.batch).into_iter().map(|(left, right)| (left["n"].as_u64(), right["n"].as_u64())));
        }
        let mut expected = Vec::new();
        for (l, (_, left, _)) in tagged.iter().enumerate().filter(|(_, (side, _, _))| *side == 0) {
            for (r, (_, right, time)) in tagged.iter().enumerate().filter(|(_, (side, _, _))| *side == 1) {
                let inside = left["start"].as_i64() <= Some(*time) && Some(*time) <= left["end"].as_i64();
                if left["k"] == right["k"] && inside {
                    expected.push((Some(l as u64), Some(r as u64)));
                }
            }
        }
        emitted.sort();
        expected.sort();
        proptest::prop_assert_eq!(emitted, expected);
    }
}

/// Integer bounds are read exactly past 2⁵³, where a double would round 2⁵³ + 1 to 2⁵³.
#[test]
fn integer_bounds_are_exact_beyond_two_to_the_53() {
    let mut join = interval_join();
    let bound = 9_007_199_254_740_993_i64;
    join.process_from(0, &json_batch(&[(json!({"k": 1, "start": bound, "end": bound}), 0)]));
    let rights: Vec<_> = [bound - 1, bound, bound + 1].iter().map(|time| (json!({"k": 1, "t": time}), *time)).collect();
    let out = join.process_from(1, &json_batch(&rights));
    let matched: Vec<_> = pairs(&out.batch).into_iter().map(|(_, right)| right["t"].clone()).collect();
    assert_eq!(matched, vec![json!(bound)]);
}
