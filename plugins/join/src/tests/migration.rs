//! State version 1 (before `within` and `best`) is read by version 2, and version 2 as written
//! before records were kept as bytes.

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

/// A snapshot of state version 2 by the join before it kept records as bytes (as `String`s),
/// with key = ["auction"], `within` and `best` (max price): the left record
/// {"auction":1,"start":5,"end":100} at 5 holding its best match {"auction":1,"price":3,"tag":"é"}
/// (at 7), and the right record {"auction":2,"price":1} at 8 kept, after watermark 6.
const VERSION_2_AS_STRINGS: &[u8] = &[
    2, 3, 91, 49, 93, 1, 10, 33, 123, 34, 97, 117, 99, 116, 105, 111, 110, 34, 58, 49, 44, 34, 115, 116, 97, 114, 116, 34, 58, 53, 44, 34,
    101, 110, 100, 34, 58, 49, 48, 48, 125, 0, 1, 10, 200, 1, 1, 0, 0, 0, 0, 0, 0, 8, 64, 14, 34, 123, 34, 97, 117, 99, 116, 105, 111, 110,
    34, 58, 49, 44, 34, 112, 114, 105, 99, 101, 34, 58, 51, 44, 34, 116, 97, 103, 34, 58, 34, 195, 169, 34, 125, 0, 3, 91, 50, 93, 0, 1,
    16, 23, 123, 34, 97, 117, 99, 116, 105, 111, 110, 34, 58, 50, 44, 34, 112, 114, 105, 99, 101, 34, 58, 49, 125, 1, 0, 0, 1, 16, 3, 91,
    50, 93, 1, 200, 1, 0, 3, 91, 49, 93, 2, 2, 1, 12,
];

#[test]
fn version_2_state_of_strings_is_read_as_bytes() {
    let config =
        json!({"key": ["auction"], "within": {"from": "start", "to": "end"}, "best": {"field": "price", "keep": "max"}, "retention": "1h"});
    let mut join = join(config.clone());
    join.operator().restore(State { version: 2, bytes: VERSION_2_AS_STRINGS.to_vec() }).expect("version 2 is read");
    assert_eq!((join.operator().kept().len(), join.operator().kept().watermark), (2, Some(6)));
    let mut again = super::join(config);
    again.operator().restore(join.snapshot()).expect("its own snapshot is read");
    assert_eq!(again.operator().kept(), join.operator().kept(), "a snapshot of the bytes reads back the same");
    // The right record kept for auction 2 still matches a later left record of it.
    join.process_from(0, &json_batch(&[(json!({"auction": 2, "start": 0, "end": 50}), 9)]));
    let out = join.watermark(101);
    let emitted: Vec<(i64, String)> = sluice_sdk::testing::json_values(&out)
        .iter()
        .map(|pair| (pair["left"]["auction"].as_i64().unwrap_or(0), pair["right"]["tag"].to_string()))
        .collect();
    assert_eq!(emitted, vec![(2, "null".to_owned()), (1, "\"é\"".to_owned())]);
}

/// A kept record as the join wrote it before records were kept as bytes.
#[derive(serde::Serialize)]
struct KeptRecordAsString {
    timestamp: i64,
    value: String,
    arrival: u64,
    interval: Option<crate::Interval>,
    best: Option<Box<BestMatchAsString>>,
}

#[derive(serde::Serialize)]
struct BestMatchAsString {
    rank: f64,
    timestamp: i64,
    value: String,
}

#[test]
fn records_kept_as_bytes_are_written_as_strings_were() {
    let text = r#"{"auction":1,"tag":"é"}"#;
    let best = crate::BestMatch { rank: 3.0, timestamp: 7, value: text.as_bytes().to_vec() };
    let interval = Some(crate::Interval { from: 5, to: 100 });
    let mut record = crate::KeptRecord::new(5, text.as_bytes().to_vec(), interval, Some(best));
    record.arrival = 9;
    let best = BestMatchAsString { rank: 3.0, timestamp: 7, value: text.to_owned() };
    let as_string = KeptRecordAsString { timestamp: 5, value: text.to_owned(), arrival: 9, interval, best: Some(Box::new(best)) };
    assert_eq!(postcard::to_allocvec(&record).ok(), postcard::to_allocvec(&as_string).ok());
}

#[test]
fn unknown_versions_are_refused() {
    let mut join = join(json!({"key": ["k"]}));
    let refused = join.operator().restore(State { version: 3, bytes: vec![0] }).err().unwrap_or_default();
    assert_eq!(refused, "cannot read state version 3: this plugin reads versions 1 and 2");
}
