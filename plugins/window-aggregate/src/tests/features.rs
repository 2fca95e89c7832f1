//! Native tests of hopping and session windows, lateness, and the statistical aggregates.

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};
use sluice_sdk::{State, VersionedState};

use std::collections::BTreeMap;

use super::record;
use crate::{Accumulator, OpenWindows, QUANTILE_RELATIVE_ERROR, WindowAggregate, WindowKey};

fn operator(config: Value) -> Harness<WindowAggregate> {
    Harness::<WindowAggregate>::new(config).unwrap()
}

fn counts_by_window(results: &[Value]) -> Vec<(i64, i64, i64)> {
    results.iter().map(|r| (r["window_start"].as_i64().unwrap(), r["window_end"].as_i64().unwrap(), r["count"].as_i64().unwrap())).collect()
}

#[test]
fn hopping_windows_count_a_record_in_every_window_that_contains_it() {
    let mut op = operator(json!({"window": {"type": "hopping", "size": "3s", "slide": "1s"}, "aggregates": [{"function": "count"}]}));
    op.process_json(&[(json!({}), 2_500), (json!({}), 3_100)]);
    let results = json_values(&op.watermark(i64::MAX));
    assert_eq!(counts_by_window(&results), vec![(0, 3000, 1), (1000, 4000, 2), (2000, 5000, 2), (3000, 6000, 1)]);
}

/// A record late for some of its hopping windows only counts in those still open; the windows
/// it missed are counted (`late_window_updates_missed`), and `late` applies only when it missed
/// them all.
#[test]
fn a_hopping_record_late_for_some_windows_counts_in_the_others_and_the_missed_are_counted() {
    let mut op = operator(json!({
        "window": {"type": "hopping", "size": "60s", "slide": "20s"}, "allowed_lateness": "10s", "aggregates": [{"function": "count"}]
    }));
    op.process_json(&[(json!({}), 0), (json!({}), 60_000)]);
    op.watermark(60_000);
    let before = sluice_sdk::host::native_metrics().counters.get("late_window_updates_missed").copied().unwrap_or(0);
    op.process_json(&[(json!({}), 39_999)]);
    let missed = sluice_sdk::host::native_metrics().counters.get("late_window_updates_missed").copied().unwrap_or(0) - before;
    assert_eq!(missed, 1, "[-20 s, 40 s) closed for good at 50 s");
    let results = counts_by_window(&json_values(&op.watermark(i64::MAX)));
    assert!(results.contains(&(0, 60_000, 2)), "{results:?}");
    assert!(results.contains(&(20_000, 80_000, 2)), "{results:?}");
}

#[test]
fn session_windows_merge_records_closer_than_the_gap_per_group() {
    let mut op = operator(
        json!({"window": {"type": "session", "gap": "10s"}, "group_by": ["user"], "aggregates": [{"function": "count"}, {"function": "sum", "field": "n", "as": "total"}]}),
    );
    let records = [
        (json!({"user": "a", "n": 1}), 0),
        (json!({"user": "a", "n": 2}), 25_000),
        (json!({"user": "b", "n": 5}), 5_000),
        (json!({"user": "a", "n": 4}), 8_000),
    ];
    op.process_json(&records);
    assert_eq!(
        json_values(&op.watermark(15_000)),
        vec![json!({"window_start": 5000, "window_end": 15000, "user": "b", "count": 1, "total": 5})]
    );
    assert!(op.watermark(17_999).is_empty(), "a's records at 0 s and 8 s share the session [0, 18 s)");
    assert_eq!(
        json_values(&op.watermark(18_000)),
        vec![json!({"window_start": 0, "window_end": 18000, "user": "a", "count": 2, "total": 5})]
    );
    let rest = json_values(&op.watermark(i64::MAX));
    assert_eq!(rest, vec![json!({"window_start": 25000, "window_end": 35000, "user": "a", "count": 1, "total": 2})]);
}

/// A session cut at the latest time holds that time, so a record there joins it, in either
/// order of arrival.
#[test]
fn a_record_at_the_latest_time_joins_the_session_cut_there() {
    let near = i64::MAX - 807;
    for records in [[(json!({}), near), (json!({}), i64::MAX)], [(json!({}), i64::MAX), (json!({}), near)]] {
        let mut op = operator(json!({"window": {"type": "session", "gap": "1h"}, "aggregates": [{"function": "count"}]}));
        op.process_json(&records);
        assert_eq!(counts_by_window(&json_values(&op.watermark(i64::MAX))), vec![(near, i64::MAX, 2)]);
    }
}

/// 7 ms divides 2^63 − 1: the interval holding the latest time would start at it and be empty.
/// A record there belongs to the windows ending at it instead (before, a tumbling window of
/// no length held it, and hopping ones lost it).
#[test]
fn a_record_at_the_latest_time_is_in_the_windows_ending_there_when_their_length_divides_it() {
    let last = i64::MAX - 7;
    let records = [(json!({}), i64::MAX - 1), (json!({}), i64::MAX)];
    let tumbling = json!({"type": "tumbling", "size": "7ms"});
    let (panes, hopping) =
        (json!({"type": "hopping", "size": "14ms", "slide": "7ms"}), json!({"type": "hopping", "size": "10ms", "slide": "7ms"}));
    for (window, expected) in [
        (tumbling, vec![(last, i64::MAX, 2)]),
        (json!({"type": "hopping", "size": "7ms", "slide": "7ms"}), vec![(last, i64::MAX, 2)]),
        (panes, vec![(last - 7, i64::MAX, 2), (last, i64::MAX, 2)]),
        (hopping, vec![(last, i64::MAX, 2)]),
    ] {
        let mut op = operator(json!({"window": window, "aggregates": [{"function": "count"}]}));
        op.process_json(&records);
        assert_eq!(counts_by_window(&json_values(&op.watermark(i64::MAX))), expected, "{window}");
    }
}

#[test]
fn a_record_bridging_two_sessions_merges_them() {
    let mut op = operator(json!({"window": {"type": "session", "gap": "10s"}, "aggregates": [{"function": "count"}]}));
    op.process_json(&[(json!({}), 0), (json!({}), 15_000)]);
    op.process_json(&[(json!({}), 8_000)]);
    assert_eq!(counts_by_window(&json_values(&op.watermark(i64::MAX))), vec![(0, 25_000, 3)]);
}

/// Lateness is judged on the session a record makes: one whose own gap has passed the
/// watermark, but which joins a session still open, extends it; one that joins none is late.
#[test]
fn a_record_before_an_open_session_extends_it_and_only_one_joining_none_is_late() {
    let config = json!({
        "window": {"type": "session", "gap": "2s"}, "group_by": ["g"], "aggregates": [{"function": "count", "as": "n"}], "late": "reject"
    });
    let mut op = operator(config);
    op.process_json(&[(json!({"g": "a"}), 11_000), (json!({"g": "b"}), 12_500)]);
    assert!(op.watermark(12_500).is_empty());
    let out = op.process_json(&[(json!({"g": "a"}), 10_000), (json!({"g": "b"}), 9_000)]);
    assert_eq!(out.rejected.len(), 1, "b's session [12.5 s, 14.5 s) is out of reach of 9 s: {:?}", out.rejected);
    assert!(out.rejected[0].reason.contains("event time 9000"), "{}", out.rejected[0].reason);
    let results = json_values(&op.watermark(i64::MAX));
    assert_eq!(
        results,
        vec![
            json!({"window_start": 10000, "window_end": 13000, "g": "a", "n": 2}),
            json!({"window_start": 12500, "window_end": 14500, "g": "b", "n": 1})
        ]
    );
}

/// No window starts at the latest time: a session of a record there alone starts a
/// millisecond before.
#[test]
fn a_session_of_a_record_at_the_latest_time_alone_starts_before_it() {
    let mut op = operator(json!({"window": {"type": "session", "gap": "1s"}, "aggregates": [{"function": "count"}]}));
    op.process_json(&[(json!({}), i64::MAX)]);
    assert_eq!(counts_by_window(&json_values(&op.watermark(i64::MAX))), vec![(i64::MAX - 1, i64::MAX, 1)]);
}

#[test]
fn late_records_within_allowed_lateness_update_the_result_with_a_revision() {
    let mut op = operator(
        json!({"window": {"type": "tumbling", "size": "10s"}, "aggregates": [{"function": "count"}], "allowed_lateness": "5s", "late": "reject"}),
    );
    op.process_json(&[(json!({}), 1_000)]);
    assert_eq!(json_values(&op.watermark(10_000)), vec![json!({"window_start": 0, "window_end": 10000, "count": 1})]);
    op.process_json(&[(json!({}), 2_000)]);
    assert_eq!(json_values(&op.watermark(12_000)), vec![json!({"window_start": 0, "window_end": 10000, "count": 2, "revision": 1})]);
    assert!(op.watermark(13_000).is_empty(), "no change, no new result");
    op.watermark(15_000);
    let out = op.process_json(&[(json!({}), 3_000)]);
    assert_eq!(out.rejected.len(), 1, "past the allowed lateness the window is purged");
    assert!(out.rejected[0].reason.contains("allowed lateness 5000 ms"), "{}", out.rejected[0].reason);
}

#[test]
fn late_records_can_go_to_a_side_output() {
    let mut op =
        operator(json!({"window": {"type": "tumbling", "size": "10s"}, "aggregates": [{"function": "count"}], "late": "side-output"}));
    op.watermark(10_000);
    assert_eq!(op.info().outputs, vec!["late".to_owned()]);
    let out = op.process_json(&[(json!({"id": 7}), 3_000), (json!({"id": 8}), 12_000)]);
    assert!(out.rejected.is_empty());
    assert_eq!(json_values(&out.batch), vec![json!({"id": 7})], "the late record, unchanged");
    let late = out.batch.get(0).unwrap();
    assert_eq!((late.timestamp(), late.port()), (3_000, 1), "on the side output `late`");
}

#[test]
fn variance_and_stddev_match_a_direct_computation() {
    let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
    let mut op = operator(
        json!({"window": {"type": "tumbling", "size": "1h"}, "aggregates": [{"function": "variance", "field": "x"}, {"function": "stddev", "field": "x"}]}),
    );
    op.process_json(&values.iter().map(|x| (json!({"x": x}), 0)).collect::<Vec<_>>());
    let result = &json_values(&op.watermark(i64::MAX))[0];
    let mean = values.iter().sum::<f64>() / 8.0;
    let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 7.0;
    assert!((result["variance_x"].as_f64().unwrap() - variance).abs() < 1e-12);
    assert!((result["stddev_x"].as_f64().unwrap() - variance.sqrt()).abs() < 1e-12);
}

#[test]
fn quantiles_are_within_the_stated_relative_error() {
    let values: Vec<f64> = (1..=10_000).map(|i| ((i * 7919) % 10_007) as f64 / 3.0 + 1.0).collect();
    let mut op = operator(json!({"window": {"type": "tumbling", "size": "1h"}, "aggregates": [
        {"function": "median", "field": "x"}, {"function": "quantile", "field": "x", "q": 0.95, "as": "p95"}, {"function": "quantile", "field": "x", "q": 0.01, "as": "p01"}]}));
    op.process_json(&values.iter().map(|x| (json!({"x": x}), 0)).collect::<Vec<_>>());
    let result = &json_values(&op.watermark(i64::MAX))[0];
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    for (name, q) in [("median_x", 0.5), ("p95", 0.95), ("p01", 0.01)] {
        let exact = sorted[((q * (sorted.len() - 1) as f64).floor()) as usize];
        let estimate = result[name].as_f64().unwrap();
        assert!((estimate - exact).abs() <= QUANTILE_RELATIVE_ERROR * exact * 1.01, "{name}: {estimate} vs {exact}");
    }
}

/// An estimate never leaves the values seen: the median of one value is that value, and of
/// values all equal, that value too.
#[test]
fn quantiles_stay_within_the_values_seen() {
    let mut op = operator(json!({"window": {"type": "tumbling", "size": "1h"}, "group_by": ["g"], "aggregates": [
        {"function": "median", "field": "x"}, {"function": "quantile", "field": "x", "q": 0.9, "as": "p90"}]}));
    op.process_json(&[(json!({"g": "one", "x": 4}), 0), (json!({"g": "same", "x": 7.3}), 0), (json!({"g": "same", "x": 7.3}), 1)]);
    let results = json_values(&op.watermark(i64::MAX));
    let of = |group: &str| results.iter().find(|result| result["g"] == group).cloned().unwrap();
    assert_eq!((of("one")["median_x"].as_f64(), of("one")["p90"].as_f64()), (Some(4.0), Some(4.0)));
    assert_eq!((of("same")["median_x"].as_f64(), of("same")["p90"].as_f64()), (Some(7.3), Some(7.3)));
}

#[test]
fn distinct_counts_are_close_and_first_last_follow_event_time() {
    let records: Vec<(Value, i64)> =
        (0..20_000).map(|i| (json!({"user": format!("u{}", i % 5_000), "step": i}), 100_000 - i as i64)).collect();
    let mut op = operator(json!({"window": {"type": "tumbling", "size": "1h"}, "aggregates": [
        {"function": "distinct", "field": "user", "as": "users"}, {"function": "first", "field": "step"}, {"function": "last", "field": "step"}]}));
    op.process_json(&records);
    let result = &json_values(&op.watermark(i64::MAX))[0];
    let users = result["users"].as_f64().unwrap();
    assert!((users - 5_000.0).abs() / 5_000.0 < 0.03, "{users}");
    assert_eq!((result["first_step"].clone(), result["last_step"].clone()), (json!(19_999), json!(0)), "earliest and latest by event time");
}

/// `first` and `last` give the value as it was written: a number past a double or past 64
/// bits keeps its digits (it came out null, or rounded through a double).
#[test]
fn first_and_last_keep_numbers_no_double_holds() {
    let mut op = operator(json!({"window": {"type": "tumbling", "size": "1h"}, "aggregates": [
        {"function": "first", "field": "p"}, {"function": "last", "field": "p"}, {"function": "count", "field": "p"}]}));
    let mut batch = sluice_sdk::Batch::new();
    for (text, timestamp) in [(r#"{"p":18446744073709551617}"#, 1), (r#"{"p":5}"#, 2), (r#"{"p":1e400}"#, 3)] {
        batch.push(None, text.as_bytes(), timestamp, []);
    }
    assert!(op.process(&batch).rejected.is_empty());
    let results = op.watermark(i64::MAX);
    let text = std::str::from_utf8(results.iter().next().expect("one result").value()).unwrap().to_owned();
    assert!(text.contains(r#""first_p":18446744073709551617"#) && text.contains(r#""count_p":3"#), "{text}");
    let last: String = text.split(r#""last_p":"#).nth(1).unwrap().chars().take_while(|c| *c != ',' && *c != '}').collect();
    assert_eq!(sluice_sdk::json::text_number(last.as_bytes()), Ok(Some(f64::INFINITY)), "{text}");
    assert!(last.contains("e400") || last.contains("E400"), "{text}");
}

#[test]
fn when_conditions_count_only_matching_records() {
    let mut op = operator(json!({"window": {"type": "tumbling", "size": "1m"}, "group_by": ["campaign"], "aggregates": [
        {"function": "count", "as": "views", "when": {"field": "event_type", "equals": "view"}},
        {"function": "count", "as": "orders", "when": {"field": "event_type", "equals": "order"}},
        {"function": "sum", "field": "price", "as": "revenue", "when": {"field": "event_type", "equals": "order"}}]}));
    op.process_json(&[
        (json!({"campaign": "c", "event_type": "view", "price": 3}), 0),
        (json!({"campaign": "c", "event_type": "view", "price": 3}), 1),
        (json!({"campaign": "c", "event_type": "order", "price": 3}), 2),
    ]);
    assert_eq!(
        json_values(&op.watermark(i64::MAX)),
        vec![json!({"window_start": 0, "window_end": 60000, "campaign": "c", "views": 2, "orders": 1, "revenue": 3})]
    );
}

/// The state layout of version 1 of the plugin, written as version 1 wrote it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateV1 {
    windows: BTreeMap<WindowKey, BTreeMap<String, Vec<Accumulator>>>,
    watermark: Option<i64>,
}

impl VersionedState for StateV1 {
    const VERSION: u32 = 1;
}

#[test]
fn state_of_version_1_is_migrated() {
    let group = BTreeMap::from([("[\"a\"]".to_owned(), vec![Accumulator::Count(4)])]);
    let old = StateV1 { windows: BTreeMap::from([(WindowKey { start: 0, end: 10_000 }, group)]), watermark: Some(500) };
    let restored: OpenWindows = State::encode(&old).decode().unwrap();
    assert_eq!(restored.len(), 1);
    let config = json!({"window": {"type": "tumbling", "size": "10s"}, "group_by": ["category"], "aggregates": [{"function": "count"}]});
    let mut op = Harness::<WindowAggregate>::restored(config, State::encode(&restored)).unwrap();
    op.process_json(&[record("a", 1.0, 1_000)]);
    assert_eq!(json_values(&op.watermark(i64::MAX))[0]["count"], json!(5));
    assert!(State { version: 7, bytes: Vec::new() }.decode::<OpenWindows>().unwrap_err().contains("versions 1 to 6"));
}

/// Two aggregates that compute alike, one added while a window was open, keep each its own
/// accumulators when listed the other way round (by their output names): before, the first
/// in the list took the first's, so the whole count went to the one added late.
#[test]
fn twin_aggregates_keep_each_its_own_accumulators_whatever_their_order() {
    let config = |names: &[&str]| json!({"window": {"type": "tumbling", "size": "10s"}, "aggregates": names.iter().map(|name| json!({"function": "count", "as": name})).collect::<Vec<_>>()});
    let mut op = operator(config(&["n1"]));
    op.process_json(&[(json!({"k": "a"}), 1_000), (json!({"k": "a"}), 2_000)]);
    let mut both = Harness::<WindowAggregate>::restored(config(&["n1", "n2"]), op.snapshot()).expect("restores");
    both.process_json(&[(json!({"k": "a"}), 3_000)]);
    let mut reordered = Harness::<WindowAggregate>::restored(config(&["n2", "n1"]), both.snapshot()).expect("restores");
    assert_eq!(
        json_values(&reordered.watermark(i64::MAX)),
        vec![json!({"window_start": 0, "window_end": 10_000, "n2": null, "n1": 3})],
        "n1 saw the whole window, n2 only part of it"
    );
}

/// A restore under other aggregates matches the open windows' accumulators up by what they
/// compute: kept ones go on (moved, renamed), removed ones go, and an added one is null in the
/// windows open at the change, which it saw only part of (a swap that changed `count` into
/// `max` under one name wrote counts as the maximum). Other group fields cannot be matched
/// up: refused while windows are open, taken once they have closed.
#[test]
fn a_restore_under_other_aggregates_matches_them_up_and_other_groups_are_refused() {
    let counting = json!({"window": {"type": "tumbling", "size": "10s"}, "group_by": ["k"], "aggregates": [
        {"function": "count", "as": "n"}, {"function": "sum", "field": "q", "as": "total"}]});
    let mut op = operator(counting);
    op.process_json(&[(json!({"k": "a", "q": 3}), 1_000), (json!({"k": "b", "q": 5}), 12_000)]);
    op.watermark(10_000);
    let open = op.snapshot();
    let changed = json!({"window": {"type": "tumbling", "size": "10s"}, "group_by": ["k"], "aggregates": [
        {"function": "max", "field": "q", "as": "n"}, {"function": "count", "as": "cnt"}]});
    let mut changed = Harness::<WindowAggregate>::restored(changed, open.clone()).expect("aggregates are matched up");
    changed.process_json(&[(json!({"k": "b", "q": 9}), 13_000), (json!({"k": "c", "q": 1}), 14_000), (json!({"k": "d", "q": 2}), 25_000)]);
    assert_eq!(
        json_values(&changed.watermark(i64::MAX)),
        vec![
            json!({"window_start": 10_000, "window_end": 20_000, "k": "b", "n": null, "cnt": 2}),
            json!({"window_start": 10_000, "window_end": 20_000, "k": "c", "n": 1, "cnt": 1}),
            json!({"window_start": 20_000, "window_end": 30_000, "k": "d", "n": 2, "cnt": 1}),
        ],
        "b's window was open at the change: its new max is null, its count goes on; c's group and later windows are whole"
    );
    let regrouped =
        json!({"window": {"type": "tumbling", "size": "10s"}, "group_by": ["q"], "aggregates": [{"function": "count", "as": "n"}]});
    let error = Harness::<WindowAggregate>::restored(regrouped.clone(), open).err().expect("refused");
    assert!(error.contains("the state holds 1 open window(s) grouped by [k], and this configuration groups by [q]"), "{error}");
    op.watermark(i64::MAX);
    let mut regrouped = Harness::<WindowAggregate>::restored(regrouped, op.snapshot()).expect("no window open");
    regrouped.process_json(&[(json!({"k": "a", "q": 7}), i64::MAX)]);
    assert!(regrouped.watermark(i64::MAX).is_empty(), "the watermark had passed");
}

/// An aggregate added while session windows were open stays null in a session merged from
/// one of them, and hopping windows aggregated by panes keep their matched-up accumulators.
#[test]
fn an_aggregate_added_while_windows_were_open_is_null_in_every_window_they_make() {
    let before = |window: Value| json!({"window": window, "aggregates": [{"function": "count"}]});
    let after = |window: Value| json!({"window": window, "aggregates": [{"function": "count"}, {"function": "max", "field": "q"}]});
    let session = json!({"type": "session", "gap": "10s"});
    let mut op = operator(before(session.clone()));
    op.process_json(&[(json!({"q": 1}), 0)]);
    let mut op = Harness::<WindowAggregate>::restored(after(session), op.snapshot()).unwrap();
    op.process_json(&[(json!({"q": 5}), 30_000), (json!({"q": 4}), 8_000)]);
    let results = json_values(&op.watermark(i64::MAX));
    assert_eq!(results[0], json!({"window_start": 0, "window_end": 18_000, "count": 2, "max_q": null}), "merged with the open one");
    assert_eq!(results[1], json!({"window_start": 30_000, "window_end": 40_000, "count": 1, "max_q": 5}));
    let hopping = json!({"type": "hopping", "size": "20s", "slide": "10s"});
    let mut op = operator(before(hopping.clone()));
    op.process_json(&[(json!({"q": 1}), 15_000)]);
    let mut op = Harness::<WindowAggregate>::restored(after(hopping), op.snapshot()).unwrap();
    op.process_json(&[(json!({"q": 2}), 16_000)]);
    let results = json_values(&op.watermark(i64::MAX));
    let pairs: Vec<(Value, Value)> = results.iter().map(|result| (result["count"].clone(), result["max_q"].clone())).collect();
    assert_eq!(pairs, vec![(json!(2), json!(null)), (json!(2), json!(null))]);
}

/// The state layout of version 4: no definition of the aggregates.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateV4 {
    windows: BTreeMap<WindowKey, BTreeMap<String, crate::windows::GroupState>>,
    sessions: BTreeMap<String, std::collections::BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    panes: crate::panes::Panes,
}

impl VersionedState for StateV4 {
    const VERSION: u32 = 4;
}

#[test]
fn state_of_version_4_is_migrated_and_restored_as_it_is() {
    let group = crate::windows::GroupState { accumulators: vec![Accumulator::Count(4)], revisions: 0, dirty: false };
    let windows = BTreeMap::from([(WindowKey { start: 0, end: 10_000 }, BTreeMap::from([("[\"a\"]".to_owned(), group)]))]);
    let old = StateV4 { windows, sessions: BTreeMap::new(), watermark: Some(500), panes: crate::panes::Panes::default() };
    let config =
        json!({"window": {"type": "tumbling", "size": "10s"}, "group_by": ["k"], "aggregates": [{"function": "count", "as": "c"}]});
    let mut op = Harness::<WindowAggregate>::restored(config, State::encode(&old)).unwrap();
    op.process_json(&[(json!({"k": "a"}), 1_000)]);
    assert_eq!(json_values(&op.watermark(i64::MAX))[0]["c"], json!(5), "a version 4 state says nothing of its aggregates: taken as it is");
}

/// The state layout of version 3: an arrival sequence, compensated sums.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateV3 {
    windows: BTreeMap<WindowKey, BTreeMap<String, crate::windows::GroupState>>,
    sessions: BTreeMap<String, std::collections::BTreeSet<WindowKey>>,
    watermark: Option<i64>,
    sequence: u64,
    panes: crate::panes::Panes,
}

impl VersionedState for StateV3 {
    const VERSION: u32 = 3;
}

#[test]
fn state_of_version_3_is_migrated_to_exact_sums_and_first_and_last_by_value() {
    let mut sum = sluice_sdk::numeric::CompensatedSum::default();
    sum.add(1.5);
    sum.add(2.0);
    let accumulators = vec![
        Accumulator::SumV3(sum),
        Accumulator::MeanV3(sum, 2),
        Accumulator::FirstV3(Some((1_000, 9, "\"z\"".into()))),
        Accumulator::LastV3(Some((2_000, 3, "\"m\"".into()))),
    ];
    let group = crate::windows::GroupState { accumulators, revisions: 0, dirty: false };
    let windows = BTreeMap::from([(WindowKey { start: 0, end: 10_000 }, BTreeMap::from([("[\"a\"]".to_owned(), group)]))]);
    let old = StateV3 { windows, sessions: BTreeMap::new(), watermark: Some(500), sequence: 12, panes: crate::panes::Panes::default() };
    let config = json!({"window": {"type": "tumbling", "size": "10s"}, "group_by": ["k"], "aggregates": [
        {"function": "sum", "field": "x", "as": "s"}, {"function": "mean", "field": "x", "as": "m"},
        {"function": "first", "field": "v", "as": "f"}, {"function": "last", "field": "v", "as": "l"}]});
    let mut op = Harness::<WindowAggregate>::restored(config, State::encode(&old)).unwrap();
    // Ties in event time with the restored first and last: the least and greatest value win.
    op.process_json(&[(json!({"k": "a", "x": 0.5, "v": "a"}), 1_000), (json!({"k": "a", "x": 0, "v": "b"}), 2_000)]);
    let result = &json_values(&op.watermark(i64::MAX))[0];
    assert_eq!((&result["s"], &result["m"], &result["f"], &result["l"]), (&json!(4), &json!(1), &json!("a"), &json!("m")));
}

#[test]
fn computed_fields_and_pass_through_make_roll_ups_in_one_chain() {
    let mut op = operator(json!({"window": {"type": "tumbling", "size": "1m"}, "aggregates": [
        {"function": "count", "as": "views", "when": {"field": "t", "equals": "view"}},
        {"function": "count", "as": "orders", "when": {"field": "t", "equals": "order"}}],
        "compute": {"rate": "round(orders / max(views, 1), 2)", "broken": "orders / 0"},
        "pass_through": true}));
    let out =
        op.process_json(&[(json!({"t": "view"}), 0), (json!({"t": "view"}), 1), (json!({"t": "view"}), 2), (json!({"t": "order"}), 3)]);
    assert_eq!(out.batch.len(), 4, "inputs pass through");
    let result = &json_values(&op.watermark(i64::MAX))[0];
    assert_eq!((result["rate"].clone(), result["broken"].clone()), (json!(0.33), Value::Null));
    assert!(
        Harness::<WindowAggregate>::new(
            json!({"window": {"type": "tumbling", "size": "1m"}, "aggregates": [{"function": "count"}], "compute": {"x": "1 +"}})
        )
        .err()
        .unwrap()
        .contains("compute.x")
    );
}

/// A snapshot of state version 2 (before panes) of hopping windows of 10 s every 2 s with an
/// allowed lateness of 4 s, counting and summing `x` by `k`: after {"k":"a","x":1} at 1000,
/// {"k":"a","x":2} at 3000, {"k":"b","x":4} at 5000 and watermark 2500 (window [-8000, 2000)
/// fired and is kept for its lateness).
const VERSION_2: &[u8] = &[
    7, 255, 124, 160, 31, 1, 5, 91, 34, 97, 34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 223, 93, 192, 62,
    1, 5, 91, 34, 97, 34, 93, 2, 0, 2, 1, 0, 0, 0, 0, 0, 0, 8, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 191, 62, 224, 93, 2, 5, 91, 34, 97, 34,
    93, 2, 0, 2, 1, 0, 0, 0, 0, 0, 0, 8, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 91, 34, 98, 34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 16, 64, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 159, 31, 128, 125, 2, 5, 91, 34, 97, 34, 93, 2, 0, 2, 1, 0, 0, 0, 0, 0, 0, 8, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 5, 91, 34, 98, 34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 16, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 160, 156, 1, 2, 5, 91, 34, 97, 34, 93,
    2, 0, 2, 1, 0, 0, 0, 0, 0, 0, 8, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 91, 34, 98, 34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 16, 64, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 160, 31, 192, 187, 1, 2, 5, 91, 34, 97, 34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 5, 91, 34, 98, 34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 16, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 62, 224, 218, 1, 1, 5, 91, 34, 98,
    34, 93, 2, 0, 1, 1, 0, 0, 0, 0, 0, 0, 16, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 136, 39, 3,
];

#[test]
fn state_of_version_2_is_migrated_to_panes() {
    let config = json!({"window": {"type": "hopping", "size": "10s", "slide": "2s"}, "group_by": ["k"],
        "aggregates": [{"function": "count", "as": "n"}, {"function": "sum", "field": "x", "as": "s"}], "allowed_lateness": "4s"});
    let first = [(json!({"k": "a", "x": 1}), 1_000), (json!({"k": "a", "x": 2}), 3_000), (json!({"k": "b", "x": 4}), 5_000)];
    // Later: a record for a window that fired (a revision) and for windows still to fire, and one more.
    let then = [(json!({"k": "a", "x": 8}), 1_500), (json!({"k": "b", "x": 16}), 9_500)];
    let mut uninterrupted = Harness::<WindowAggregate>::new(config.clone()).unwrap();
    uninterrupted.process_json(&first);
    uninterrupted.watermark(2_500);
    let mut restored = Harness::<WindowAggregate>::restored(config, State { version: 2, bytes: VERSION_2.to_vec() }).unwrap();
    assert_eq!(restored.operator().windows.len(), 7, "the seven windows of version 2, no panes");
    let mut results = Vec::new();
    for op in [&mut uninterrupted, &mut restored] {
        op.process_json(&then);
        let mut emitted = json_values(&op.watermark(6_000));
        emitted.extend(json_values(&op.watermark(i64::MAX)));
        results.push(emitted);
    }
    assert_eq!(results[1], results[0]);
    assert_eq!(results[0][0], json!({"window_start": -8000, "window_end": 2000, "k": "a", "n": 2, "s": 9, "revision": 1}));
    assert_eq!(results[0].len(), 13, "the revision, then the groups of the eight windows still to fire");
    assert_eq!(results[0][12], json!({"window_start": 8000, "window_end": 18000, "k": "b", "n": 1, "s": 16}));
}

#[test]
fn records_at_the_extremes_of_time_count_once_in_each_window() {
    assert_eq!(WindowKey::hopping(i64::MIN + 5, 10, 2).count(), 3, "the windows starting at MIN + 4, + 2 and MIN");
    assert_eq!(WindowKey::hopping(i64::MAX - 1, 10, 2).count(), 5);
    assert_eq!(WindowKey::hopping(i64::MAX, 10, 2).count(), 5, "the latest time is in the windows cut at it");
    let config = json!({"window": {"type": "hopping", "size": "10ms", "slide": "2ms"}, "aggregates": [{"function": "count"}]});
    let records = [(json!({}), i64::MIN + 5), (json!({}), i64::MIN), (json!({}), i64::MAX - 1), (json!({}), i64::MAX)];
    let mut outputs = Vec::new();
    for by_panes in [true, false] {
        let mut op = Harness::<WindowAggregate>::new(config.clone()).unwrap();
        if !by_panes {
            op.operator().windows.use_panes(None);
        }
        assert!(op.process_json(&records).rejected.is_empty(), "every record has its windows");
        outputs.push(json_values(&op.watermark(i64::MAX)));
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0][0], json!({"window_start": i64::MIN, "window_end": i64::MIN + 10, "count": 2}));
}

#[test]
fn a_record_whose_window_would_start_before_the_earliest_time_is_rejected() {
    let windows = [
        json!({"type": "tumbling", "size": "1m"}),
        json!({"type": "hopping", "size": "3ms", "slide": "3ms"}),
        json!({"type": "hopping", "size": "10ms", "slide": "3ms"}),
    ];
    for window in windows {
        let config = json!({"window": window, "group_by": ["k"], "aggregates": [{"function": "count"}]});
        let mut op = Harness::<WindowAggregate>::new(config).unwrap();
        let out = op.process_json(&[(json!({"k": "b"}), i64::MIN), (json!({"k": "b"}), 60_000)]);
        let reasons: Vec<_> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
        let reason = "event time -9223372036854775808 has no window that can be represented: \
                      its window would start before the earliest time (-9223372036854775808 ms)";
        assert_eq!(reasons, [(0, reason)], "{window}");
        let results = json_values(&op.watermark(i64::MAX));
        assert!(results.iter().all(|result| result["window_start"].as_i64().is_some_and(|start| start <= 60_000)), "{results:?}");
        assert_eq!(results.iter().map(|result| result["count"].as_i64()).sum::<Option<i64>>(), Some(results.len() as i64), "{window}");
    }
    // The earliest time itself starts a window when it is a whole number of slides.
    assert_eq!(WindowKey::containing(i64::MIN, 2), Some(WindowKey { start: i64::MIN, end: i64::MIN + 2 }));
    assert_eq!(WindowKey::containing(i64::MIN, 60_000), None);
}
