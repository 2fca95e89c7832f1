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
