//! Results do not depend on how records are split into batches, nor on a snapshot and restore
//! in between: what the runtime's recovery (replay, record-by-record retry) relies on.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::MovingAverage;

fn config(emit: &str) -> Value {
    let mut config = json!({
        "field": "x",
        "group_by": ["k"],
        "averages": [
            {"type": "simple", "records": 3},
            {"type": "simple", "span": 700},
            {"type": "exponential", "alpha": 0.25},
            {"type": "exponential", "half_life": 300}
        ],
        "max_keys": 3,
        "max_records": 4,
        "emit": emit
    });
    if emit == "per-interval" {
        config["interval"] = json!(1000);
    }
    config
}

/// What a run produced: output records with their event times, and (record, reason) rejections.
type Produced = (Vec<(Value, i64)>, Vec<(usize, String)>);

/// Runs `records`, a watermark (newest event time - 500) after every `WATERMARK_EVERY` records,
/// in batches of at most `batch_size`, restoring from a snapshot at the batch boundary at or
/// after `restore_at`.
fn run(emit: &str, records: &[(Value, i64)], batch_size: usize, restore_at: usize) -> Produced {
    const WATERMARK_EVERY: usize = 25;
    let mut op = Harness::<MovingAverage>::new(config(emit)).unwrap();
    let (mut outputs, mut rejected) = (Vec::new(), Vec::new());
    let mut keep = |batch: &sluice_sdk::Batch| {
        let times = batch.iter().map(|record| record.timestamp());
        outputs.extend(json_values(batch).into_iter().zip(times));
    };
    let (mut start, mut restored) = (0, false);
    while start < records.len() {
        if !restored && start >= restore_at {
            op = Harness::<MovingAverage>::restored(config(emit), op.snapshot()).unwrap();
            restored = true;
        }
        let next_watermark = (start / WATERMARK_EVERY + 1) * WATERMARK_EVERY;
        let end = (start + batch_size).min(next_watermark).min(records.len());
        let out = op.process_json(&records[start..end]);
        keep(&out.batch);
        rejected.extend(out.rejected.into_iter().map(|rejection| (start + rejection.index as usize, rejection.reason)));
        if end.is_multiple_of(WATERMARK_EVERY) {
            let newest = records[..end].iter().map(|(_, timestamp)| *timestamp).max().unwrap_or(0);
            keep(&op.watermark(newest - 500));
        }
        start = end;
    }
    keep(&op.watermark(i64::MAX));
    (outputs, rejected)
}

/// Records of five keys (more than `max_keys`), some null or invalid, arriving out of order.
fn records() -> impl Strategy<Value = Vec<(Value, i64)>> {
    let value = prop_oneof![
        8 => (-1000i32..1000).prop_map(|x| json!(f64::from(x) / 8.0)),
        1 => Just(Value::Null),
        1 => Just(json!("n/a")),
    ];
    prop::collection::vec((0usize..5, value, 0i64..120, -400i64..=0), 1..150).prop_map(|steps| {
        let mut time = 0;
        steps
            .into_iter()
            .map(|(key, x, forward, disorder)| {
                time += forward;
                let key = ["a", "b", "c", "d", "e"][key];
                (json!({"k": key, "x": x}), time + disorder)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn per_record_results_do_not_depend_on_batching_or_restores(
        records in records(),
        batch_size in 1usize..40,
        restore_at in 0usize..150,
    ) {
        let whole = run("per-record", &records, records.len(), usize::MAX);
        prop_assert_eq!(whole.0.len() + whole.1.len(), records.len(), "every record is emitted or rejected");
        prop_assert_eq!(run("per-record", &records, batch_size, restore_at), whole);
    }

    #[test]
    fn per_interval_results_do_not_depend_on_batching_or_restores(
        records in records(),
        batch_size in 1usize..40,
        restore_at in 0usize..150,
    ) {
        let whole = run("per-interval", &records, records.len(), usize::MAX);
        prop_assert_eq!(run("per-interval", &records, batch_size, restore_at), whole);
    }
}
