//! `best`: each left record emitted once, with its best match, when the watermark passes its
//! interval's end.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_batch, json_values};
use sluice_sdk::{Batch, Operator};

use super::{join, two_inputs};
use crate::Join;

fn counter(name: &str) -> u64 {
    sluice_sdk::host::native_metrics().counters.get(name).copied().unwrap_or(0)
}

fn config(keep: &str, unmatched: &str) -> Value {
    json!({
        "key": ["auction"],
        "within": {"from": "start", "to": "end"},
        "best": {"field": "price", "keep": keep},
        "unmatched": unmatched,
        "retention": "1h"
    })
}

fn auction(id: i64, start: i64, end: i64) -> (Value, i64) {
    (json!({"auction": id, "start": start, "end": end}), start)
}

fn bid(id: i64, price: f64, time: i64, tag: &str) -> (Value, i64) {
    (json!({"auction": id, "price": price, "tag": tag}), time)
}

/// (left auction id, right tag or null, event time) of each emitted record.
fn summary(batch: &Batch) -> Vec<(Value, Value, i64)> {
    json_values(batch)
        .into_iter()
        .zip(batch.iter().map(|record| record.timestamp()))
        .map(|(pair, time)| (pair["left"]["auction"].clone(), pair["right"]["tag"].clone(), time))
        .collect()
}

#[test]
fn the_highest_match_in_the_interval_is_emitted_once_at_its_end() {
    let mut join = join(config("max", "drop"));
    assert!(join.process_from(0, &json_batch(&[auction(1, 100, 200)])).batch.is_empty());
    let bids =
        [bid(1, 5.0, 120, "a"), bid(1, 9.0, 150, "b"), bid(1, 7.0, 200, "c"), bid(1, 100.0, 201, "outside"), bid(1, 50.0, 99, "before")];
    let out = join.process_from(1, &json_batch(&bids));
    assert!(out.batch.is_empty(), "nothing is emitted as bids come");
    let emitted = join.watermark(201);
    assert_eq!(summary(&emitted), vec![(json!(1), json!("b"), 200)], "emitted with the event time of the interval's end");
    assert_eq!(
        json_values(&emitted)[0],
        json!({"left": {"auction": 1, "start": 100, "end": 200}, "right": {"auction": 1, "price": 9.0, "tag": "b"}})
    );
    assert!(join.watermark(10_000).is_empty(), "emitted once, then forgotten");
    assert!(join.operator().kept().partners(&sluice_sdk::KeyText::from("[1]"), crate::Side::Right).is_empty());
}

#[test]
fn it_is_emitted_when_the_watermark_passes_the_end_not_before() {
    let mut join = join(config("max", "drop"));
    join.process_from(0, &json_batch(&[auction(1, 0, 1_000), auction(2, 0, 1_001)]));
    join.process_from(1, &json_batch(&[bid(1, 1.0, 1_000, "last ms"), bid(2, 1.0, 1_001, "last ms")]));
    assert!(join.watermark(1_000).is_empty(), "a bid at 1000 may still come while the watermark is 1000");
    assert_eq!(summary(&join.watermark(1_001)), vec![(json!(1), json!("last ms"), 1_000)]);
    assert_eq!(summary(&join.watermark(1_002)), vec![(json!(2), json!("last ms"), 1_001)]);
}

#[test]
fn min_keeps_the_lowest_and_ties_keep_the_earliest_in_event_time() {
    let mut join = join(config("min", "drop"));
    // Before the auction: kept, then scanned in arrival order.
    join.process_from(1, &json_batch(&[bid(1, 3.0, 10, "first 3"), bid(1, 3.0, 11, "second 3"), bid(2, 8.0, 10, "first 8")]));
    join.process_from(0, &json_batch(&[auction(1, 0, 100), auction(2, 0, 100)]));
    // After it: offered as they come.
    join.process_from(1, &json_batch(&[bid(1, 3.0, 12, "third 3"), bid(2, 8.0, 11, "second 8"), bid(2, 9.0, 1, "higher")]));
    assert_eq!(summary(&join.watermark(101)), vec![(json!(1), json!("first 3"), 100), (json!(2), json!("first 8"), 100)]);

    let mut max = join_with("max");
    max.process_from(0, &json_batch(&[auction(1, 0, 100)]));
    max.process_from(1, &json_batch(&[bid(1, 4.0, 10, "first 4"), bid(1, 2.0, 11, "lower"), bid(1, 4.0, 12, "second 4")]));
    assert_eq!(summary(&max.watermark(i64::MAX)), vec![(json!(1), json!("first 4"), 100)]);

    // Not by arrival: the tie that arrives last but is earliest in event time wins.
    let mut late_tie = join_with("max");
    late_tie.process_from(0, &json_batch(&[auction(1, 0, 100)]));
    late_tie.process_from(1, &json_batch(&[bid(1, 4.0, 12, "at 12"), bid(1, 4.0, 10, "at 10"), bid(1, 4.0, 11, "at 11")]));
    assert_eq!(summary(&late_tie.watermark(i64::MAX)), vec![(json!(1), json!("at 10"), 100)]);
}

fn join_with(keep: &str) -> Harness<Join> {
    join(config(keep, "drop"))
}

/// A right record within a kept left record's interval is still kept for left records to come:
/// each left record sees every right record of its interval, whichever came first.
#[test]
fn a_right_record_taken_by_a_left_record_is_kept_for_later_ones_too() {
    let mut join = join(config("max", "emit"));
    join.process_from(0, &json_batch(&[auction(1, 0, 100)]));
    join.process_from(1, &json_batch(&[bid(1, 5.0, 50, "in both"), bid(1, 1.0, 150, "in the second")]));
    assert_eq!(join.operator().kept().len(), 3, "the auction and both bids");
    join.process_from(0, &json_batch(&[auction(1, 0, 200), auction(1, 100, 200)]));
    assert_eq!(
        summary(&join.watermark(201)),
        vec![(json!(1), json!("in both"), 100), (json!(1), json!("in both"), 200), (json!(1), json!("in the second"), 200)]
    );
}

#[test]
fn bids_before_their_auction_count_while_retention_keeps_them() {
    let mut join = join(json!({
        "key": ["auction"], "within": {"from": "start", "to": "end"}, "best": {"field": "price", "keep": "max"}, "retention": "1s"
    }));
    join.process_from(1, &json_batch(&[bid(1, 50.0, 1_000, "kept"), bid(2, 70.0, 1_000, "forgotten")]));
    join.watermark(1_500);
    join.process_from(0, &json_batch(&[auction(1, 900, 3_000)]));
    join.watermark(2_001);
    assert_eq!(join.operator().kept().len(), 1, "the bids are 1 s behind the watermark: forgotten, the auction stays");
    join.process_from(0, &json_batch(&[auction(2, 900, 3_000)]));
    let emitted = join.watermark(3_001);
    assert_eq!(summary(&emitted), vec![(json!(1), json!("kept"), 3_000)], "auction 2 came after its bid was forgotten");
    assert_eq!(counter("unmatched_dropped"), 1);
}

#[test]
fn unmatched_left_records_are_dropped_and_counted_or_emitted_with_null() {
    let mut dropping = join(config("max", "drop"));
    dropping.process_from(0, &json_batch(&[auction(1, 0, 10), auction(2, 0, 10)]));
    dropping.process_from(1, &json_batch(&[bid(2, 1.0, 11, "too late for 2"), bid(3, 1.0, 5, "no auction")]));
    assert!(dropping.watermark(100).is_empty());
    assert_eq!(counter("unmatched_dropped"), 2);

    let mut emitting = join(config("max", "emit"));
    emitting.process_from(0, &json_batch(&[auction(1, 0, 10)]));
    let emitted = emitting.watermark(100);
    assert_eq!(json_values(&emitted), vec![json!({"left": {"auction": 1, "start": 0, "end": 10}, "right": null})]);
    assert_eq!(emitted.get(0).map(|record| record.timestamp()), Some(10));
}

#[test]
fn a_left_record_whose_interval_is_over_is_emitted_at_once() {
    let mut join = join(config("max", "emit"));
    join.process_from(1, &json_batch(&[bid(1, 6.0, 50, "kept bid")]));
    join.watermark(500);
    let out = join.process_from(0, &json_batch(&[auction(1, 0, 100), auction(2, 0, 100)]));
    assert_eq!(summary(&out.batch), vec![(json!(1), json!("kept bid"), 100), (json!(2), Value::Null, 100)]);
    assert_eq!(join.operator().kept().len(), 1, "only the bid is kept");
}

#[test]
fn right_records_without_the_best_field_follow_the_missing_policy() {
    let mut dropping = join(config("max", "drop"));
    dropping.process_from(0, &json_batch(&[auction(1, 0, 100)]));
    let out = dropping.process_from(1, &json_batch(&[(json!({"auction": 1}), 5), (json!({"auction": 1, "price": null}), 5)]));
    assert!(out.rejected.is_empty());
    assert_eq!(counter("missing_field_dropped"), 2);
    let out = dropping.process_from(1, &json_batch(&[(json!({"auction": 1, "price": "12"}), 5)]));
    assert_eq!(out.rejected[0].reason, "field price is a string, not a number");
    assert!(dropping.watermark(101).is_empty(), "no bid counted");

    let mut rejecting = config("max", "drop");
    rejecting["missing"] = json!("reject");
    let out = join(rejecting).process_from(1, &json_batch(&[(json!({"auction": 1}), 5)]));
    assert_eq!(out.rejected[0].reason, "the `best` field price is missing or null");
}

#[test]
fn past_max_records_a_left_record_is_not_kept_and_counted() {
    let mut small = config("max", "emit");
    small["max_records"] = json!(1);
    let mut join = join(small);
    join.process_from(0, &json_batch(&[auction(1, 0, 10), auction(2, 0, 10)]));
    assert_eq!(counter("records_not_kept"), 1);
    join.process_from(1, &json_batch(&[bid(1, 1.0, 5, "x"), bid(2, 1.0, 5, "y")]));
    assert_eq!(counter("records_not_kept"), 3, "the bids find no room (bid x still counts for its auction)");
    assert_eq!(summary(&join.watermark(11)), vec![(json!(1), json!("x"), 10)]);
}

#[test]
fn a_snapshot_mid_way_continues_exactly() {
    let steps = nexmark_like_steps(60);
    let config = config("max", "emit");
    let mut whole = join(config.clone());
    let expected = run(&mut whole, &steps, 4);
    for cut in [10, 30, 45] {
        let mut first = join(config.clone());
        let mut outputs = run(&mut first, &steps[..cut], 4);
        let mut second = Harness::<Join>::with_context(config.clone(), two_inputs()).expect("valid configuration");
        second.operator().restore(first.snapshot()).expect("restores");
        outputs.extend(run(&mut second, &steps[cut..], 4));
        assert_eq!(outputs, expected, "cut at step {cut}");
        assert_eq!(second.snapshot(), whole.snapshot());
    }
}

#[test]
fn best_needs_within_and_retention_and_knows_its_keys() {
    let refuse = |config: Value| Harness::<Join>::with_context(config, two_inputs()).err().unwrap_or_default();
    let best = json!({"field": "price", "keep": "max"});
    assert_eq!(
        refuse(json!({"key": ["k"], "best": best, "retention": "1s"})),
        "best: needs `within`: the best match is chosen among the right records within each left record's interval, such as \
         within = { from = \"start\", to = \"end\" }"
    );
    assert!(refuse(json!({"key": ["k"], "best": best, "within": {"from": "a", "to": "b"}})).starts_with("best: needs `retention`"));
    assert!(refuse(json!({"key": ["k"], "unmatched": "emit"})).starts_with("unmatched: applies only with `best`"));
    let within = json!({"from": "a", "to": "b"});
    assert!(
        refuse(json!({"key": ["k"], "within": within, "retention": 0, "best": {"field": "p", "keep": "median"}}))
            .contains("unknown variant `median`")
    );
    assert!(refuse(json!({"key": ["k"], "within": within, "retention": 0, "best": {"field": "p"}})).contains("missing field `keep`"));
    assert!(refuse(json!({"key": ["k"], "within": {"from": "a"}})).contains("missing field `to`"));
    assert!(refuse(json!({"key": ["k"], "within": {"from": "a", "to": "b", "sluice_docs_probe": 1}})).contains("expected `from` or `to`"));
    assert!(
        refuse(json!({"key": ["k"], "within": within, "retention": 0, "best": {"field": "p", "keep": "max", "sluice_docs_probe": 1}}))
            .contains("expected `field` or `keep`")
    );
    assert!(
        refuse(json!({"key": ["k"], "within": within, "retention": 0, "best": best, "unmatched": "keep"}))
            .contains("unknown variant `keep`")
    );
    assert!(Harness::<Join>::with_context(json!({"key": ["k"], "within": within, "retention": 0, "best": best}), two_inputs()).is_ok());
}

/// One input event: a left or right record, or a watermark.
#[derive(Debug, Clone)]
enum Step {
    Record(u32, Value, i64),
    Watermark(i64),
}

/// Runs `steps`, records in batches of up to `batch_size` (inputs mixed in a batch), and
/// returns every emitted record with its event time.
fn run(join: &mut Harness<Join>, steps: &[Step], batch_size: usize) -> Vec<(Value, i64)> {
    let mut emitted = Vec::new();
    let mut collect = |batch: &Batch| emitted.extend(json_values(batch).into_iter().zip(batch.iter().map(|record| record.timestamp())));
    let mut pending = Batch::new();
    for step in steps {
        match step {
            Step::Record(port, value, time) => {
                let single = json_batch(&[(value.clone(), *time)]);
                if let Some(record) = single.get(0) {
                    pending.push_record_to(*port, record);
                }
                if pending.len() >= batch_size {
                    collect(&join.process(&std::mem::take(&mut pending)).batch);
                }
            }
            Step::Watermark(watermark) => {
                collect(&join.process(&std::mem::take(&mut pending)).batch);
                collect(&join.watermark(*watermark));
            }
        }
    }
    collect(&join.process(&pending).batch);
    emitted
}

/// Auctions and bids in event-time order with watermarks 20 ms behind, as a Nexmark source
/// makes them.
fn nexmark_like_steps(count: i64) -> Vec<Step> {
    let mut steps = Vec::new();
    for n in 0..count {
        let time = n * 10;
        if n % 5 == 0 {
            steps.push(Step::Record(0, json!({"auction": n / 5, "start": time, "end": time + 30 + n % 7 * 10}), time));
        } else {
            steps.push(Step::Record(1, json!({"auction": n / 5 - n % 2, "price": (n * 37 % 11), "n": n}), time));
        }
        if n % 3 == 0 {
            steps.push(Step::Watermark(time - 20));
        }
    }
    steps.push(Step::Watermark(i64::MAX));
    steps
}

fn arbitrary_steps() -> impl Strategy<Value = Vec<Step>> {
    let record = prop_oneof![
        (0i64..3, 0i64..40, 0i64..30).prop_map(|(key, start, length)| Step::Record(
            0,
            json!({"auction": key, "start": start, "end": start + length}),
            start
        )),
        (0i64..3, 0u8..4, 0i64..80).prop_map(|(key, price, time)| Step::Record(1, json!({"auction": key, "price": price}), time)),
    ];
    proptest::collection::vec(record, 0..40)
}

fn holds(left: &Value, time: i64) -> bool {
    left["start"].as_i64().is_some_and(|start| start <= time) && left["end"].as_i64().is_some_and(|end| time <= end)
}

/// Each left record's best right record (ties: the earliest in event time), by (end, order):
/// among the right records of its key in its interval, whichever came first (the retention of
/// the tests keeps them all).
fn reference(steps: &[Step]) -> Vec<(Value, i64)> {
    let records: Vec<(u32, &Value, i64)> = steps
        .iter()
        .filter_map(|step| if let Step::Record(port, value, time) = step { Some((*port, value, *time)) } else { None })
        .collect();
    let same_key = |a: &Value, b: &Value| a["auction"] == b["auction"];
    let mut expected: Vec<(i64, usize, Value)> = Vec::new();
    for (order, (_, left, _)) in records.iter().enumerate().filter(|(_, (port, _, _))| *port == 0) {
        let end = left["end"].as_i64().unwrap_or(0);
        let mut best: Option<(&Value, i64)> = None;
        for (_, right, time) in records.iter().filter(|(port, right, _)| *port == 1 && same_key(left, right)) {
            let price = right["price"].as_u64();
            let better = best
                .is_none_or(|(best, best_time)| price > best["price"].as_u64() || (price == best["price"].as_u64() && *time < best_time));
            if holds(left, *time) && better {
                best = Some((right, *time));
            }
        }
        expected.push((end, order, json!({"left": left, "right": best.map(|(right, _)| right)})));
    }
    expected.sort_by_key(|(end, order, _)| (*end, *order));
    expected.into_iter().map(|(end, _, pair)| (pair, end)).collect()
}

proptest! {
    /// Whatever the interleaving and the batch sizes, each left record comes out once with the
    /// best right record of its key in its interval, in the order of the ends.
    #[test]
    fn the_best_matches_are_those_of_a_direct_computation(steps in arbitrary_steps(), batch_size in 1usize..8) {
        let mut join = join(config("max", "emit"));
        let mut all = steps.clone();
        all.push(Step::Watermark(i64::MAX));
        prop_assert_eq!(run(&mut join, &all, batch_size), reference(&steps));
    }

    /// With watermarks in between (so that some records come late), the output does not depend
    /// on how the records are batched.
    #[test]
    fn the_output_does_not_depend_on_batch_boundaries(
        steps in arbitrary_steps(),
        watermarks in proptest::collection::vec((0usize..40, 0i64..100), 0..6),
        batch_size in 2usize..8,
    ) {
        let mut steps = steps;
        let mut watermarks = watermarks;
        watermarks.sort();
        let mut rising = 0;
        for (offset, (position, watermark)) in watermarks.into_iter().enumerate() {
            rising = rising.max(watermark);
            steps.insert((position + offset).min(steps.len()), Step::Watermark(rising));
        }
        steps.push(Step::Watermark(i64::MAX));
        let one_by_one = run(&mut join(config("max", "emit")), &steps, 1);
        prop_assert_eq!(run(&mut join(config("max", "emit")), &steps, batch_size), one_by_one);
    }
}
