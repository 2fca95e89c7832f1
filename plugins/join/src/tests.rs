//! Native tests of the join: pairs, keys, retention, bounds, state and configuration; the
//! interval and best-match modes in their own modules.

mod best;
mod migration;
mod within;

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_batch, json_values};
use sluice_sdk::{InitContext, Operator};

use super::*;

fn two_inputs() -> InitContext {
    InitContext { operator: "join".into(), inputs: vec!["left".into(), "right".into()], ..sluice_sdk::context::default_context() }
}

fn join(config: Value) -> Harness<Join> {
    Harness::with_context(config, two_inputs()).expect("valid configuration")
}

fn pairs(batch: &sluice_sdk::Batch) -> Vec<(Value, Value)> {
    json_values(batch).into_iter().map(|pair| (pair["left"].clone(), pair["right"].clone())).collect()
}

#[test]
fn each_pair_is_emitted_once_whichever_side_comes_first() {
    let mut join = join(json!({"key": ["user"]}));
    let out = join.process_from(0, &json_batch(&[(json!({"user": "a", "n": 1}), 10), (json!({"user": "b", "n": 2}), 11)]));
    assert!(out.batch.is_empty(), "nothing to match yet");
    let out = join.process_from(1, &json_batch(&[(json!({"user": "a", "m": 3}), 20), (json!({"user": "c", "m": 4}), 21)]));
    assert_eq!(pairs(&out.batch), vec![(json!({"user": "a", "n": 1}), json!({"user": "a", "m": 3}))]);
    assert_eq!(out.batch.iter().map(|record| record.timestamp()).collect::<Vec<_>>(), vec![20], "the later event time");
    let out = join.process_from(0, &json_batch(&[(json!({"user": "a", "n": 5}), 30)]));
    assert_eq!(pairs(&out.batch), vec![(json!({"user": "a", "n": 5}), json!({"user": "a", "m": 3}))]);
}

#[test]
fn keys_compare_canonically_and_missing_keys_follow_the_policy() {
    let mut join = join(json!({"key": ["id"], "missing": "reject"}));
    join.process_from(0, &json_batch(&[(json!({"id": 7}), 1)]));
    let out = join.process_from(1, &json_batch(&[(json!({"id": 7.0}), 2), (json!({"other": 1}), 3), (json!({"id": null}), 4)]));
    assert_eq!(out.batch.len(), 1, "7 and 7.0 are one key");
    assert_eq!(out.rejected.iter().map(|rejection| rejection.index).collect::<Vec<_>>(), vec![1, 2]);
    let mut dropping = join_dropping();
    let out = dropping.process_from(1, &json_batch(&[(json!({"other": 1}), 3)]));
    assert!(out.rejected.is_empty() && out.batch.is_empty());
}

fn join_dropping() -> Harness<Join> {
    join(json!({"key": ["id"]}))
}

#[test]
fn retention_forgets_records_behind_the_watermark_and_does_not_keep_late_ones() {
    let mut join = join(json!({"key": ["k"], "retention": "10s"}));
    join.process_from(0, &json_batch(&[(json!({"k": 1}), 1_000), (json!({"k": 2}), 20_000)]));
    join.watermark(15_000);
    assert_eq!(join.operator().kept().len(), 1, "the record at 1 s is 14 s behind the watermark");
    let out = join.process_from(1, &json_batch(&[(json!({"k": 1}), 30_000), (json!({"k": 2}), 30_000), (json!({"k": 3}), 6_000)]));
    assert_eq!(out.batch.len(), 1, "only k = 2 is still kept on the left");
    // A record already behind watermark - retention is joined with what is kept but not kept.
    let out = join.process_from(0, &json_batch(&[(json!({"k": 3}), 4_000)]));
    assert_eq!(out.batch.len(), 1);
    assert_eq!(join.operator().kept().len(), 4);
}

/// With a retention, records further apart in event time are not paired, whether or not the
/// watermark forgot the first when the second came: the pairs do not depend on the batching.
#[test]
fn records_further_apart_than_the_retention_are_not_paired() {
    let mut join = join(json!({"key": ["k"], "retention": "100ms"}));
    join.process_from(0, &json_batch(&[(json!({"k": 1, "n": "left at 0"}), 0)]));
    let out =
        join.process_from(1, &json_batch(&[(json!({"k": 1, "n": "right at 100"}), 100), (json!({"k": 1, "n": "right at 101"}), 101)]));
    assert_eq!(pairs(&out.batch).iter().map(|(_, right)| right["n"].clone()).collect::<Vec<_>>(), vec![json!("right at 100")]);
    let out = join.process_from(0, &json_batch(&[(json!({"k": 1, "n": "left at 250"}), 250)]));
    assert!(out.batch.is_empty(), "the right records are 149 and 150 ms before it");
    let out = join.process_from(0, &json_batch(&[(json!({"k": 1, "n": "left at 201"}), 201)]));
    assert_eq!(pairs(&out.batch).iter().map(|(_, right)| right["n"].clone()).collect::<Vec<_>>(), vec![json!("right at 101")]);
}

#[test]
fn past_max_records_new_records_are_joined_but_not_kept() {
    let mut join = join(json!({"key": ["k"], "max_records": 2}));
    join.process_from(0, &json_batch(&[(json!({"k": 1}), 1), (json!({"k": 1}), 2), (json!({"k": 1}), 3)]));
    assert_eq!(join.operator().kept().len(), 2);
    let out = join.process_from(1, &json_batch(&[(json!({"k": 1}), 4)]));
    assert_eq!(out.batch.len(), 2, "matches the two kept");
}

/// The kept records' memory is bounded by a third of `memory_limit` as well as by
/// `max_records` (a join of larger records ran out of memory in its snapshot at the default
/// limit), and counted again after a restore.
#[test]
fn past_a_third_of_the_memory_limit_new_records_are_joined_but_not_kept() {
    let small = InitContext { memory_limit: 3 << 20, ..two_inputs() };
    let mut join = Harness::<Join>::with_context(json!({"key": ["k"]}), small.clone()).expect("valid");
    let padding = "x".repeat(10_000);
    let records: Vec<(Value, i64)> = (0..200).map(|n| (json!({"k": 1, "n": n, "pad": padding}), n)).collect();
    join.process_from(0, &json_batch(&records));
    let kept = join.operator().kept().len();
    // A third of 3 MiB is 1 MiB: about 104 records of 10 KB.
    assert!((100..=105).contains(&kept), "{kept} kept");
    let out = join.process_from(1, &json_batch(&[(json!({"k": 1}), 300)]));
    assert_eq!(out.batch.len(), kept, "the right record meets every kept one");
    // The small right record fitted still.
    let saved = join.operator().kept().len();
    assert_eq!(saved, kept + 1);
    let mut restored = Harness::<Join>::with_context(json!({"key": ["k"]}), small).expect("valid");
    restored.operator().restore(join.snapshot()).expect("restores");
    restored.process_from(0, &json_batch(&records[..10]));
    assert_eq!(restored.operator().kept().len(), saved, "the restored records' memory is counted again");
}

#[test]
fn the_state_survives_a_snapshot_and_a_restore() {
    let mut first = join(json!({"key": ["k"], "retention": "1m"}));
    first.process_from(0, &json_batch(&[(json!({"k": "x", "side": "l"}), 5)]));
    first.watermark(6);
    let state = first.snapshot();
    let mut second = join(json!({"key": ["k"], "retention": "1m"}));
    second.operator().restore(state).expect("restores");
    let out = second.process_from(1, &json_batch(&[(json!({"k": "x", "side": "r"}), 7)]));
    assert_eq!(pairs(&out.batch), vec![(json!({"k": "x", "side": "l"}), json!({"k": "x", "side": "r"}))]);
    assert_eq!(second.operator().kept().watermark, Some(6));
}

#[test]
fn a_join_needs_two_inputs_a_key_and_room() {
    let one = InitContext { operator: "join".into(), inputs: vec!["only".into()], ..sluice_sdk::context::default_context() };
    let refused = Harness::<Join>::with_context(json!({"key": ["k"]}), one).err().expect("refused");
    assert!(refused.contains("two inputs"), "{refused}");
    assert!(Harness::<Join>::with_context(json!({"key": []}), two_inputs()).is_err());
    assert!(Harness::<Join>::with_context(json!({"key": ["k"], "max_records": 0}), two_inputs()).is_err());
    let twice = Harness::<Join>::with_context(json!({"key": ["k", "j", "k"]}), two_inputs()).err();
    assert_eq!(twice.as_deref(), Some("key: names k twice: list each field once"));
    assert!(Harness::<Join>::with_context(json!({"key": ["k"], "sluice_docs_probe": 1}), two_inputs()).is_err());
}

proptest! {
    /// Whatever the interleaving of the two inputs and the batch sizes, the pairs emitted are
    /// exactly the pairs of records with equal keys.
    #[test]
    fn the_pairs_are_the_equal_key_pairs_whatever_the_order(
        records in proptest::collection::vec((0u32..2, 0u8..4), 0..40),
        batch_size in 1usize..6,
    ) {
        let mut join = join(json!({"key": ["k"]}));
        let mut emitted = Vec::new();
        let tagged: Vec<(u32, Value)> = records.iter().enumerate().map(|(n, (side, key))| (*side, json!({"k": key, "n": n}))).collect();
        for chunk in tagged.chunks(batch_size) {
            for (side, value) in chunk {
                let out = join.process_from(*side, &json_batch(&[(value.clone(), 0)]));
                emitted.extend(pairs(&out.batch).into_iter().map(|(left, right)| (left["n"].as_u64(), right["n"].as_u64())));
            }
        }
        let mut expected = Vec::new();
        for (l, (left_side, left)) in tagged.iter().enumerate() {
            for (r, (right_side, right)) in tagged.iter().enumerate() {
                if *left_side == 0 && *right_side == 1 && left["k"] == right["k"] {
                    expected.push((Some(l as u64), Some(r as u64)));
                }
            }
        }
        emitted.sort();
        expected.sort();
        prop_assert_eq!(emitted, expected);
    }
}

proptest! {
    /// With a retention and watermarks that lag the records (none late), the pairs are the
    /// pairs of equal keys at most `retention` apart in event time, whether a watermark comes
    /// after every record or only after batches of them.
    #[test]
    fn with_a_retention_the_pairs_do_not_depend_on_when_watermarks_come(
        records in proptest::collection::vec((0u32..2, 0u8..3, 0i64..30), 0..60),
        batch_size in 2usize..20,
    ) {
        let timed: Vec<(u32, Value, i64)> =
            records.iter().enumerate().map(|(n, (side, key, jitter))| (*side, json!({"k": key, "n": n}), n as i64 * 10 + jitter)).collect();
        let run = |batch_size: usize| {
            let mut join = join(json!({"key": ["k"], "retention": "50ms"}));
            let (mut emitted, mut newest) = (Vec::new(), i64::MIN);
            for chunk in timed.chunks(batch_size) {
                for (side, value, time) in chunk {
                    let out = join.process_from(*side, &json_batch(&[(value.clone(), *time)]));
                    emitted.extend(pairs(&out.batch).into_iter().map(|(left, right)| (left["n"].as_u64(), right["n"].as_u64())));
                    newest = newest.max(*time);
                }
                join.watermark(newest - 30);
            }
            emitted.sort();
            emitted
        };
        let mut expected = Vec::new();
        for (l, (left_side, left, left_time)) in timed.iter().enumerate() {
            for (r, (right_side, right, right_time)) in timed.iter().enumerate() {
                if *left_side == 0 && *right_side == 1 && left["k"] == right["k"] && left_time.abs_diff(*right_time) <= 50 {
                    expected.push((Some(l as u64), Some(r as u64)));
                }
            }
        }
        expected.sort();
        prop_assert_eq!(run(1), expected);
        prop_assert_eq!(run(batch_size), run(1));
    }
}
