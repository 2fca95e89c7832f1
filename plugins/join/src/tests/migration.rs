//! State version 1 (before `within` and `best`) is read by version 2.

use sluice_sdk::serde_json::json;
use sluice_sdk::testing::json_batch;
use sluice_sdk::{Operator, State};

use super::{join, pairs};

/// A snapshot by the join of state version 1, with key = ["k"], of a left record
/// {"k":"x","n":1} at 5 and a right record {"k":"y","m":2} at 7, after watermark 6.
const VERSION_1: &[u8] = &[
    2, 5, 91, 34, 120, 34, 93, 1, 10, 15, 123, 34, 107, 34, 58, 34, 120, 34, 44, 34, 110, 34, 58, 49, 125, 0, 5, 91, 34, 121, 34, 93, 0, 1,
    14, 15, 123, 34, 107, 34, 58, 34, 121, 34, 44, 34, 109, 34, 58, 50, 125, 2, 10, 5, 91, 34, 120, 34, 93, 14, 5, 91, 34, 121, 34, 93, 2,
    1, 12,
];

#[test]
fn version_1_state_is_migrated_and_keeps_matching() {
    let mut join = join(json!({"key": ["k"], "retention": "1m"}));
    join.operator().restore(State { version: 1, bytes: VERSION_1.to_vec() }).expect("version 1 is read");
    assert_eq!((join.operator().kept().len(), join.operator().kept().watermark), (2, Some(6)));
    let out = join.process_from(1, &json_batch(&[(json!({"k": "x", "m": 3}), 8)]));
    assert_eq!(pairs(&out.batch), vec![(json!({"k": "x", "n": 1}), json!({"k": "x", "m": 3}))]);
    let out = join.process_from(0, &json_batch(&[(json!({"k": "y", "n": 4}), 9)]));
    assert_eq!(pairs(&out.batch), vec![(json!({"k": "y", "n": 4}), json!({"k": "y", "m": 2}))]);
    // Forgetting by event time still finds the migrated records.
    join.watermark(8 + 60_000);
    assert_eq!(join.operator().kept().len(), 2, "the records at 5 and 7 are forgotten, those at 8 and 9 are left");
    assert_eq!(join.snapshot().version, 2);
}

#[test]
fn unknown_versions_are_refused() {
    let mut join = join(json!({"key": ["k"]}));
    let refused = join.operator().restore(State { version: 3, bytes: vec![0] }).err().unwrap_or_default();
    assert_eq!(refused, "cannot read state version 3: this plugin reads versions 1 and 2");
}
