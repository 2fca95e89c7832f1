//! Property tests: outputs do not depend on batch boundaries or watermarks, and match a model.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::Dedupe;

const HORIZON: i64 = 3_000;
/// How far behind the newest record a record may be: the watermark lags by as much.
const DISORDER: i64 = 2_000;

/// `count` records with ids from a pool of `ids` (as integers or floats: the same identity),
/// event times rising by `step` per record with up to `DISORDER` of disorder.
fn records(count: usize, ids: u64, step: i64, seed: u64) -> Vec<(Value, i64)> {
    (0..count)
        .map(|position| {
            let n = (position as u64 ^ seed).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) >> 17;
            let id = n % ids;
            let id = if n.is_multiple_of(2) { json!(id) } else { json!(id as f64) };
            let timestamp = position as i64 * step + (n % DISORDER as u64) as i64;
            (json!({"id": id, "position": position}), timestamp)
        })
        .collect()
}

/// What a run produced: positions of the records passed, and of those rejected with reasons.
#[derive(Debug, PartialEq)]
struct Outcome {
    passed: Vec<u64>,
    rejected: Vec<(usize, String)>,
}

/// Feeds `records` in batches of `batch_size`; with `watermarks`, after each batch the
/// watermark is the newest event time minus `DISORDER`, so that no record is ever late.
fn run(records: &[(Value, i64)], batch_size: usize, reject: bool, watermarks: bool) -> Outcome {
    let duplicates = if reject { "reject" } else { "drop" };
    let mut op = Harness::<Dedupe>::new(json!({"keys": ["id"], "horizon": HORIZON, "duplicates": duplicates})).unwrap();
    let mut outcome = Outcome { passed: Vec::new(), rejected: Vec::new() };
    let mut newest = i64::MIN;
    for (number, chunk) in records.chunks(batch_size).enumerate() {
        let out = op.process_json(chunk);
        outcome.passed.extend(json_values(&out.batch).iter().filter_map(|record| record["position"].as_u64()));
        let offset = number * batch_size;
        outcome.rejected.extend(out.rejected.into_iter().map(|r| (offset + r.index as usize, r.reason)));
        newest = chunk.iter().map(|(_, timestamp)| *timestamp).fold(newest, i64::max);
        if watermarks {
            op.watermark(newest - DISORDER);
        }
    }
    outcome
}

/// The definition, by brute force: a record passes unless an earlier record with the same id
/// has an event time within `HORIZON` of its own.
fn model(records: &[(Value, i64)]) -> Vec<u64> {
    let id = |record: &Value| record["id"].as_f64();
    (0..records.len())
        .filter(|&position| {
            let (record, timestamp) = &records[position];
            !records[..position].iter().any(|(earlier, time)| id(earlier) == id(record) && (time - timestamp).abs() <= HORIZON)
        })
        .map(|position| position as u64)
        .collect()
}

proptest! {
    #[test]
    fn outputs_do_not_depend_on_batches_or_watermarks(
        batch_size in 1usize..60,
        ids in 1u64..25,
        step in 0i64..1_500,
        seed in 0u64..10_000,
        reject in any::<bool>(),
    ) {
        let records = records(300, ids, step, seed);
        let whole = run(&records, records.len(), reject, false);
        prop_assert_eq!(&run(&records, batch_size, reject, true), &whole);
        prop_assert_eq!(&whole.passed, &model(&records));
        let expected_rejected = if reject { records.len() - whole.passed.len() } else { 0 };
        prop_assert_eq!(whole.rejected.len(), expected_rejected);
    }
}
