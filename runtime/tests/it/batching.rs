//! Window results through the real Wasm operators do not depend on how records are batched,
//! and equal a straightforward batch computation of the same input.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{Scratch, run};

const RECORDS: usize = 3000;
const WINDOW_MS: i64 = 1000;

/// Records with integer prices (exact sums) and event times up to 500 ms out of order.
fn input() -> String {
    (0..RECORDS)
        .map(|n| {
            let ts = n as i64 * 7 - ((n * 7919) % 500) as i64;
            let category = ["books", "garden", "toys", "health"][(n * 31) % 4];
            format!("{}\n", json!({"category": category, "price": ((n * 13) % 97) as i64, "ts": ts}))
        })
        .collect()
}

/// Ground truth: sum and count of price per (window start, category).
fn expected(input: &str) -> BTreeMap<(i64, String), (i64, i64)> {
    let mut groups = BTreeMap::new();
    for line in input.lines() {
        let record: Value = serde_json::from_str(line).expect("input is JSON");
        let ts = record["ts"].as_i64().expect("ts");
        let start = ts - ts.rem_euclid(WINDOW_MS);
        let entry = groups.entry((start, record["category"].as_str().expect("category").to_owned())).or_insert((0, 0));
        entry.0 += record["price"].as_i64().expect("price");
        entry.1 += 1;
    }
    groups
}

fn run_with_batch_size(batch_size: usize) -> BTreeMap<(i64, String), (i64, i64)> {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", &input());
    let path = scratch.pipeline(&format!(
        r#"
[pipeline]
name = "batching"
batch_size = {batch_size}
out_of_orderness = "500ms"

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "sums"
plugin = "{{plugins}}/window-aggregate.wasm"
[operators.config]
window = {{ type = "tumbling", size = "{WINDOW_MS}ms" }}
group_by = ["category"]
aggregates = [{{ function = "sum", field = "price", as = "revenue" }}, {{ function = "count", as = "orders" }}]
late = "reject"

[[sinks]]
type = "file"
path = "out.jsonl"
"#
    ));
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 0, "no record is late with 500 ms of allowed disorder");
    scratch
        .json_lines("out.jsonl")
        .iter()
        .map(|record| {
            let key = (record["window_start"].as_i64().expect("start"), record["category"].as_str().expect("category").to_owned());
            (key, (record["revenue"].as_i64().expect("revenue"), record["orders"].as_i64().expect("orders")))
        })
        .collect()
}

#[test]
fn window_results_equal_a_batch_computation() {
    assert_eq!(run_with_batch_size(256), expected(&input()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn window_results_do_not_depend_on_batch_size(batch_size in 1usize..1000) {
        prop_assert_eq!(run_with_batch_size(batch_size), expected(&input()));
    }
}

/// Records of which about one in eight jumps back further than the out-of-orderness allows:
/// late, some within the allowed lateness of their window and some past it.
fn input_with_late_records() -> String {
    (0..600)
        .map(|n: i64| {
            let back = if n % 8 == 5 { 150 + (n * 7919) % 1400 } else { (n * 31) % 90 };
            let (ts, category) = (200 + n * 11 - back, ["books", "toys"][(n % 2) as usize]);
            format!("{}\n", json!({"category": category, "price": n % 13, "ts": ts}))
        })
        .collect()
}

const OUT_OF_ORDERNESS_MS: i64 = 100;
const ALLOWED_LATENESS_MS: i64 = 300;

/// Ground truth, one record at a time: each record meets the watermark the records before it
/// make (newest event time − out-of-orderness); it is rejected if its window's end plus the
/// allowed lateness is at or behind that watermark, and counted otherwise. Returns the sums
/// per (window start, category) and the 1-based lines of the rejected records.
fn expected_with_late_records(input: &str) -> (BTreeMap<(i64, String), i64>, Vec<u64>) {
    let (mut sums, mut rejected, mut newest) = (BTreeMap::new(), Vec::new(), None::<i64>);
    for (line, record) in input.lines().enumerate() {
        let record: Value = serde_json::from_str(record).expect("input is JSON");
        let ts = record["ts"].as_i64().expect("ts");
        let start = ts - ts.rem_euclid(WINDOW_MS);
        let watermark = newest.map(|newest| newest - OUT_OF_ORDERNESS_MS);
        if watermark.is_some_and(|watermark| start + WINDOW_MS + ALLOWED_LATENESS_MS <= watermark) {
            rejected.push(line as u64 + 1);
        } else {
            *sums.entry((start, record["category"].as_str().expect("category").to_owned())).or_insert(0) +=
                record["price"].as_i64().expect("price");
        }
        newest = Some(newest.map_or(ts, |newest| newest.max(ts)));
    }
    (sums, rejected)
}

/// The latest revision of each window's sum, and the lines of the dead letters.
fn run_late_records_with_batch_size(batch_size: usize) -> (BTreeMap<(i64, String), i64>, Vec<u64>) {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", &input_with_late_records());
    let path = scratch.pipeline_to_files(&format!(
        r#"
[pipeline]
name = "late-batching"
batch_size = {batch_size}
out_of_orderness = "{OUT_OF_ORDERNESS_MS}ms"

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "sums"
plugin = "{{plugins}}/window-aggregate.wasm"
[operators.config]
window = {{ type = "tumbling", size = "{WINDOW_MS}ms" }}
allowed_lateness = "{ALLOWED_LATENESS_MS}ms"
group_by = ["category"]
aggregates = [{{ function = "sum", field = "price", as = "revenue" }}]
late = "reject"
"#
    ));
    run(&path).expect("pipeline runs");
    let mut latest = BTreeMap::new();
    for record in scratch.json_lines("out.jsonl") {
        let key = (record["window_start"].as_i64().expect("start"), record["category"].as_str().expect("category").to_owned());
        let revision = record.get("revision").and_then(Value::as_i64).unwrap_or(0);
        let revenue = record["revenue"].as_i64().expect("revenue");
        if latest.get(&key).is_none_or(|&(known, _)| known < revision) {
            latest.insert(key, (revision, revenue));
        }
    }
    let mut rejected: Vec<u64> =
        scratch.json_lines("dead.jsonl").iter().map(|letter| letter["position"].as_u64().expect("a dead letter's line")).collect();
    rejected.sort_unstable();
    (latest.into_iter().map(|(key, (_, revenue))| (key, revenue)).collect(), rejected)
}

/// A late record meets the watermark of the records before it, as one record at a time would,
/// even when they share its batch: the windows it may still update and those it may not are
/// the same at every batch size.
#[test]
fn late_records_meet_the_watermark_of_the_records_before_them_at_any_batch_size() {
    let expected = expected_with_late_records(&input_with_late_records());
    assert!(expected.1.len() > 20, "the input has records past the allowed lateness: {}", expected.1.len());
    for batch_size in [1, 7, 64, 1024] {
        assert_eq!(run_late_records_with_batch_size(batch_size), expected, "batch size {batch_size}");
    }
}
