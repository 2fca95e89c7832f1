//! Native tests of deduplication, expiry, policies and state.

use sluice_sdk::Batch;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::Dedupe;

/// Ten-second horizon on `id`.
fn config() -> Value {
    json!({"keys": ["id"], "horizon": "10s"})
}

fn event(id: Value, timestamp: i64) -> (Value, i64) {
    (json!({"id": id, "n": timestamp}), timestamp)
}

/// The `n` (event time) of each record that passed.
fn passed(out: &sluice_sdk::Output) -> Vec<i64> {
    json_values(&out.batch).iter().filter_map(|record| record["n"].as_i64()).collect()
}

#[test]
fn duplicates_within_the_horizon_are_dropped_and_counted() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    let before = sluice_sdk::host::native_metrics().counters.get("duplicates_dropped").copied().unwrap_or(0);
    let out = op.process_json(&[event(json!("a"), 1_000), event(json!("b"), 2_000), event(json!("a"), 11_000), event(json!("a"), 0)]);
    assert_eq!(passed(&out), vec![1_000, 2_000], "11000 is 10s after and 0 is 1s before the first a");
    assert!(out.rejected.is_empty());
    let after = sluice_sdk::host::native_metrics().counters.get("duplicates_dropped").copied().unwrap_or(0);
    assert_eq!(after - before, 2);
}

#[test]
fn records_after_the_horizon_pass_again() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    let out = op.process_json(&[event(json!("a"), 0), event(json!("a"), 10_001), event(json!("a"), -10_001)]);
    assert_eq!(passed(&out), vec![0, 10_001, -10_001]);
    let out = op.process_json(&[event(json!("a"), 5_000), event(json!("a"), 20_001)]);
    assert_eq!(passed(&out), Vec::<i64>::new(), "both are within 10s of an occurrence");
}

#[test]
fn duplicates_count_as_seen_so_a_chain_of_copies_keeps_its_first_record() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    let chain: Vec<_> = (0..6).map(|step| event(json!("a"), step * 9_000)).collect();
    assert_eq!(passed(&op.process_json(&chain)), vec![0]);
    // Out of order: 30000 and 10000 are 20s apart, then 20000 bridges them.
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    let out = op.process_json(&[event(json!("b"), 30_000), event(json!("b"), 10_000), event(json!("b"), 20_000), event(json!("b"), 0)]);
    assert_eq!(passed(&out), vec![30_000, 10_000]);
    assert_eq!(op.operator().seen().len(), 1);
}

#[test]
fn the_watermark_forgets_identities_and_bounds_the_state() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    op.process_json(&[event(json!("a"), 0), event(json!("b"), 5_000), event(json!("c"), 20_000)]);
    assert_eq!(op.operator().seen().len(), 3);
    op.watermark(15_000);
    assert_eq!(op.operator().seen().len(), 2, "a (0) is more than 10s behind 15000: forgotten; b (5000) is not");
    op.watermark(16_000);
    assert_eq!(op.operator().seen().len(), 2, "b is forgotten but not swept yet: sweeps wait for the cutoff to move 2.5s");
    op.watermark(17_500);
    assert_eq!(op.operator().seen().len(), 1, "only c is left");
    let out = op.process_json(&[event(json!("a"), 16_000), event(json!("c"), 29_000)]);
    assert_eq!(passed(&out), vec![16_000]);
    for step in 0..1_000 {
        op.process_json(&[event(json!(format!("id-{step}")), 30_000 + step * 100)]);
        op.watermark(30_000 + step * 100);
    }
    // Identities more than 10s (100 steps) behind are forgotten, swept every 2.5s: at most 125 stay.
    let remembered = op.operator().seen().len();
    assert!((100..=126).contains(&remembered), "{remembered} identities remembered");
    op.watermark(i64::MAX);
    assert!(op.operator().seen().is_empty());
}

#[test]
fn forgetting_is_exact_even_between_sweeps() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    op.watermark(10_000);
    op.process_json(&[event(json!("a"), 1_000)]);
    op.watermark(12_000);
    // Not swept yet (the cutoff moved 2s, less than 2.5s), but forgotten all the same.
    assert_eq!(op.operator().seen().len(), 1);
    assert_eq!(passed(&op.process_json(&[event(json!("a"), 1_500)])), vec![1_500], "a late copy of a forgotten identity");
    assert_eq!(passed(&op.process_json(&[event(json!("a"), 1_600)])), vec![1_600], "a record behind the cutoff is not remembered");
}

#[test]
fn reject_mode_names_the_first_occurrence() {
    let mut op = Harness::<Dedupe>::new(json!({"keys": ["id", "user.id"], "horizon": 5000, "duplicates": "reject"})).unwrap();
    let out = op.process_json(&[
        (json!({"id": 1, "user": {"id": "u"}}), 100),
        (json!({"id": 1, "user": {"id": "v"}}), 200),
        (json!({"id": 1, "user": {"id": "u"}}), 50),
    ]);
    assert_eq!(out.batch.len(), 2);
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(reasons, vec![(2, "duplicate of the record at event time 100: same id, user.id within the horizon of 5000ms")]);
}

#[test]
fn a_duplicate_beyond_the_horizon_of_the_first_names_the_copy_that_kept_it_alive() {
    let mut op = Harness::<Dedupe>::new(json!({"keys": ["id"], "horizon": "3s", "duplicates": "reject"})).unwrap();
    let times = [10_000, 12_500, 15_000, 17_600];
    let out = op.process_json(&times.map(|time| (json!({"id": "x"}), time)));
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    let first = "duplicate of the record at event time 10000: same id";
    let through = |near: i64| {
        format!("{first}, through a copy at event time {near} within the horizon of 3000ms (each duplicate extends the horizon)")
    };
    assert_eq!(
        reasons,
        [(1, format!("{first} within the horizon of 3000ms").as_str()), (2, through(12_500).as_str()), (3, through(15_000).as_str()),]
    );
    // A record between copies far from each of the run's ends and from the first.
    let mut op = Harness::<Dedupe>::new(json!({"keys": ["id"], "horizon": "3s", "duplicates": "reject"})).unwrap();
    let out = op.process_json(&[0, 3_000, 6_000, 9_000, 12_000, 6_500].map(|time| (json!({"id": "x"}), time)));
    let last = out.rejected.last().map(|r| r.reason.clone()).unwrap_or_default();
    assert_eq!(
        last,
        "duplicate of the record at event time 0: same id, through copies between event times 0 and 12000, \
         each within the horizon of 3000ms of another (each duplicate extends the horizon)"
    );
}

#[test]
fn missing_keys_pass_and_are_counted_or_are_rejected() {
    let records = [(json!({"id": null}), 0), (json!({"other": 1}), 0), (json!({"other": 1}), 0), (json!({"id": "x"}), 0)];
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    let before = sluice_sdk::host::native_metrics().counters.get("missing_key_passed").copied().unwrap_or(0);
    let out = op.process_json(&records);
    assert_eq!((out.batch.len(), out.rejected.len()), (4, 0), "records without an id are never duplicates of each other");
    let after = sluice_sdk::host::native_metrics().counters.get("missing_key_passed").copied().unwrap_or(0);
    assert_eq!(after - before, 3);

    let mut op = Harness::<Dedupe>::new(json!({"keys": ["id"], "horizon": "1s", "missing": "reject"})).unwrap();
    let out = op.process_json(&records);
    assert_eq!(json_values(&out.batch), vec![json!({"id": "x"})]);
    let reasons: Vec<_> = out.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![(0, "key field id is missing or null"), (1, "key field id is missing or null"), (2, "key field id is missing or null")]
    );
}

#[test]
fn payloads_that_are_not_json_are_rejected() {
    let mut batch = Batch::new();
    batch.push(None, b"{\"id\": ", 0, []);
    batch.push_json(&json!({"id": 1}), 0);
    let out = Harness::<Dedupe>::new(config()).unwrap().process(&batch);
    assert_eq!((out.batch.len(), out.rejected.len(), out.rejected[0].index), (1, 1, 0));
    assert!(out.rejected[0].reason.contains("not valid JSON"), "{}", out.rejected[0].reason);
}

#[test]
fn equal_values_in_different_spellings_share_an_identity() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    let mut batch = Batch::new();
    let payloads = [
        (&br#"{"id": 1}"#[..], true),
        (br#"{"id": 1.0}"#, false),
        (br#"{"id": 1e0}"#, false),
        (br#"{"id": "1"}"#, true),
        (br#"{"id": "a"}"#, true),
        (br#"{"id": "\u0061"}"#, false),
        (br#"{"id": {"x": [1, 2.0], "y": "z"}}"#, true),
        (br#"{"id":{"y":"z","x":[1.0,2]}}"#, false),
        (br#"{"id": [1, 2]}"#, true),
        (br#"{"id": true}"#, true),
        (br#"{"id": -0.0}"#, true),
        (br#"{"id": 0}"#, false),
        (br#"{"id": 18446744073709551615}"#, true),
        (br#"{"id": 1.5}"#, true),
        (br#"{"id": 15e-1}"#, false),
    ];
    for (payload, _) in payloads {
        batch.push(None, payload, 0, []);
    }
    let out = op.process(&batch);
    let expected: Vec<&[u8]> = payloads.iter().filter(|(_, first)| *first).map(|(payload, _)| *payload).collect();
    assert_eq!(out.batch.iter().map(|record| record.value()).collect::<Vec<_>>(), expected);
}

#[test]
fn snapshot_and_restore_continue_identically() {
    let mut op = Harness::<Dedupe>::new(config()).unwrap();
    op.process_json(&[event(json!("a"), 1_000), event(json!("b"), 30_000)]);
    op.watermark(12_000);
    let mut restored = Harness::<Dedupe>::restored(config(), op.snapshot()).unwrap();
    let more = [event(json!("a"), 1_500), event(json!("b"), 35_000), event(json!("c"), 36_000), event(json!("c"), 37_000)];
    let (original, copy) = (op.process_json(&more), restored.process_json(&more));
    assert_eq!(original, copy);
    assert_eq!(passed(&copy), vec![1_500, 36_000]);
    assert_eq!(op.watermark(40_000), restored.watermark(40_000));
    assert_eq!(op.snapshot(), restored.snapshot());
    assert!(Harness::<Dedupe>::restored(config(), sluice_sdk::State { version: 7, bytes: vec![] }).is_err());
}

#[test]
fn configuration_errors_are_explained() {
    let refuse = |config: Value| Harness::<Dedupe>::new(config).err().unwrap();
    assert!(refuse(json!({"keys": [], "horizon": "1m"})).contains("`keys` is empty"));
    assert!(refuse(json!({"keys": ["id"]})).contains("missing field `horizon`"));
    assert!(refuse(json!({"horizon": "1m"})).contains("missing field `keys`"));
    assert!(refuse(json!({"keys": ["id"], "horizon": "soon"})).contains("invalid duration"));
    assert!(refuse(json!({"keys": ["id"], "horizon": -5})).contains("must not be negative"));
    assert!(refuse(json!({"keys": ["a..b"], "horizon": "1m"})).contains("invalid field path"));
    assert!(refuse(json!({"keys": ["id"], "horizon": "1m", "duplicates": "keep"})).contains("unknown variant"));
    assert!(refuse(json!({"keys": ["id"], "horizon": "1m", "missing": "drop"})).contains("unknown variant"));
    assert!(refuse(json!({"keys": ["id"], "horizon": "1m", "window": "1m"})).contains("unknown field"));
}

mod properties;

#[test]
fn a_key_named_twice_is_refused() {
    let refusal = Harness::<Dedupe>::new(json!({"keys": ["k", "user.id", "k"], "horizon": "1s"})).err().unwrap_or_default();
    assert_eq!(refusal, "`keys` names k twice: list each field once");
}
