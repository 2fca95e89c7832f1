//! Property tests: aggregate algebra, and results independent of batching and arrival order.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use super::config;
use crate::{Accumulator, AggregateConfig, Function, Input, WindowAggregate};

fn accumulate(function: Function, values: &[f64]) -> Accumulator {
    let config = AggregateConfig { function, field: None, name: None, q: (function == Function::Quantile).then_some(0.9), when: None };
    let mut accumulator = config.accumulator();
    for (position, x) in values.iter().enumerate() {
        let input = match function {
            Function::Distinct | Function::First | Function::Last => Input::Value(x.to_string().into()),
            _ => Input::Number(*x),
        };
        accumulator.add(&input, position as i64);
    }
    accumulator
}

fn function() -> impl Strategy<Value = Function> {
    prop_oneof![
        Just(Function::Count),
        Just(Function::Sum),
        Just(Function::Mean),
        Just(Function::Min),
        Just(Function::Max),
        Just(Function::Variance),
        Just(Function::Stddev),
        Just(Function::Median),
        Just(Function::Quantile),
        Just(Function::Distinct),
        Just(Function::First),
        Just(Function::Last),
    ]
}

/// Equal to the last bit: sums and moments are exact, sketches merge exactly, and first/last
/// break ties in event time by value, so no result depends on order.
fn close(p: &Value, q: &Value) -> bool {
    p == q
}

/// Records with unique event times, each up to `DISORDER` ms earlier than its position
/// implies (30 · (i − k) + i mod 30 with k ≤ 13 never repeats), three categories.
fn records(seed: u64, shuffle: bool) -> Vec<(Value, i64)> {
    (0..1500i64)
        .map(|i| {
            let n = (i as u64).wrapping_mul(6364136223846793005).wrapping_add(seed);
            let category = ["a", "b", "c"][(n % 3) as usize];
            let back = if shuffle { (n >> 33) as i64 % 14 } else { 0 };
            let timestamp = 30 * (i - back) + i % 30;
            (json!({"category": category, "price": (n % 1000) as f64 / 100.0, "user": format!("u{}", n % 97)}), timestamp)
        })
        .collect()
}

/// Largest shift of a record's event time behind its position in `records`.
const DISORDER: i64 = 13 * 30 + 29;

/// The same results, in any order of emission.
fn same_results(mut left: Vec<Value>, mut right: Vec<Value>) -> Result<(), String> {
    let key = |value: &Value| (value["window_start"].as_i64(), value["window_end"].as_i64(), value["category"].to_string());
    left.sort_by_key(key);
    right.sort_by_key(key);
    if left.len() != right.len() {
        return Err(format!("{} results against {}", left.len(), right.len()));
    }
    for (l, r) in left.iter().zip(&right) {
        let (Some(l_fields), Some(r_fields)) = (l.as_object(), r.as_object()) else { return Err(format!("not objects: {l} {r}")) };
        let equal = l_fields.len() == r_fields.len()
            && l_fields.iter().all(|(name, value)| r_fields.get(name).is_some_and(|other| close(value, other)));
        if !equal {
            return Err(format!("{l} differs from {r}"));
        }
    }
    Ok(())
}

fn statistics_config(window: Value) -> Value {
    json!({"window": window, "group_by": ["category"], "aggregates": [
        {"function": "count"}, {"function": "sum", "field": "price"}, {"function": "variance", "field": "price"},
        {"function": "median", "field": "price"}, {"function": "distinct", "field": "user"}, {"function": "first", "field": "price"}]})
}

/// Runs `records` in batches of `size`, with the watermark trailing the newest event time
/// by `disorder` after every batch, as the runtime does.
fn run(config: &Value, records: &[(Value, i64)], size: usize, disorder: i64) -> Vec<Value> {
    let mut op = Harness::<WindowAggregate>::new(config.clone()).unwrap();
    run_on(&mut op, records, size, disorder, true)
}

/// `run` on `op`, to the end of the input if `to_the_end`; late records are counted, not
/// refused.
fn run_on(op: &mut Harness<WindowAggregate>, records: &[(Value, i64)], size: usize, disorder: i64, to_the_end: bool) -> Vec<Value> {
    let mut results = Vec::new();
    let mut newest = i64::MIN;
    for chunk in records.chunks(size) {
        let out = op.process_json(chunk);
        assert!(out.rejected.is_empty(), "{:?}", out.rejected.first());
        newest = chunk.iter().map(|(_, t)| *t).fold(newest, i64::max);
        results.extend(json_values(&op.watermark(newest - disorder)));
    }
    if to_the_end {
        results.extend(json_values(&op.watermark(i64::MAX)));
    }
    results
}

/// A window-aggregate of `config`, its hopping windows aggregated by panes or each on its own.
fn operator(config: &Value, by_panes: bool) -> Harness<WindowAggregate> {
    let mut op = Harness::<WindowAggregate>::new(config.clone()).unwrap();
    match by_panes {
        true => assert!(op.operator().windows.pane_shape().is_some(), "{config} is aggregated by panes"),
        false => op.operator().windows.use_panes(None),
    }
    op
}

proptest! {
    #[test]
    fn merge_is_associative_and_matches_one_pass(
        function in function(),
        a in prop::collection::vec(-1e6f64..1e6, 0..20),
        b in prop::collection::vec(-1e6f64..1e6, 0..20),
        c in prop::collection::vec(-1e6f64..1e6, 0..20),
    ) {
        // First/last order by event time, which is the position in each part: give each
        // part its own range so that the one-pass run sees the same order.
        let (x, y, z) = (accumulate(function, &a), accumulate(function, &b), accumulate(function, &c));
        let mut left = x.clone();
        left.merge(&y);
        left.merge(&z);
        let mut inner = y.clone();
        inner.merge(&z);
        let mut right = x.clone();
        right.merge(&inner);
        prop_assert!(close(&left.result(), &right.result()), "{:?} vs {:?}", left.result(), right.result());
        if !matches!(function, Function::First | Function::Last) {
            let one_pass = accumulate(function, &[a, b, c].concat());
            prop_assert!(close(&left.result(), &one_pass.result()), "{:?} vs {:?}", left.result(), one_pass.result());
        }
    }

    /// Records that share event times, in any order: the same results to the last bit, first
    /// and last included (ties go to the least and greatest value).
    #[test]
    fn results_do_not_depend_on_the_order_of_records_with_one_event_time(seed in 0u64..1000, batch_size in 1usize..300) {
        let config = statistics_config(json!({"type": "tumbling", "size": "1s"}));
        let mut records: Vec<(Value, i64)> = records(seed, false).into_iter().map(|(value, time)| (value, time / 200 * 200)).collect();
        let in_order = run(&config, &records, records.len(), 0);
        // A fixed shuffle by the seed, kept within each event time (the watermark trails by 1 ms).
        records.sort_by_key(|(value, time)| (*time, (value.to_string().len() as u64).wrapping_mul(seed | 1) % 7, value["user"].to_string()));
        let outcome = same_results(run(&config, &records, batch_size, 1), in_order);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    #[test]
    fn tumbling_results_do_not_depend_on_batch_size(batch_size in 1usize..1000, seed in 0u64..1000) {
        let records = records(seed, false);
        prop_assert_eq!(run(&config(), &records, batch_size, 0), run(&config(), &records, records.len(), 0));
    }

    #[test]
    fn results_do_not_depend_on_arrival_order_within_the_disorder(seed in 0u64..1000, batch_size in 1usize..300, window in 0usize..3) {
        let window = [json!({"type": "tumbling", "size": "1s"}), json!({"type": "hopping", "size": "3s", "slide": "1s"}), json!({"type": "session", "gap": "200ms"})][window].clone();
        let config = statistics_config(window);
        let shuffled = records(seed, true);
        let mut ordered = shuffled.clone();
        ordered.sort_by_key(|(_, timestamp)| *timestamp);
        let outcome = same_results(run(&config, &shuffled, batch_size, DISORDER), run(&config, &ordered, ordered.len(), DISORDER));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    /// Panes give each hopping window the results of updating it record by record, also with
    /// late records, revisions within the allowed lateness and records dropped as too late.
    #[test]
    fn hopping_windows_by_panes_give_the_results_of_each_window(
        seed in 0u64..1000,
        batch_size in 1usize..300,
        slides in 1usize..5,
        lateness in 0usize..3,
        behind in 0i64..500,
    ) {
        let window = json!({"type": "hopping", "size": format!("{}ms", 300 * slides), "slide": "300ms"});
        let mut config = statistics_config(window);
        config["allowed_lateness"] = json!(["0s", "200ms", "1s"][lateness]);
        let records = records(seed, true);
        let by_panes = run_on(&mut operator(&config, true), &records, batch_size, behind, true);
        let each_window = run_on(&mut operator(&config, false), &records, batch_size, behind, true);
        let outcome = same_results(by_panes, each_window);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }

    /// A state with panes restored under the same window configuration, or another (another
    /// slide, or tumbling windows), loses no record: panes of another shape become the
    /// windows they were for.
    #[test]
    fn panes_restored_under_any_window_keep_every_record(seed in 0u64..1000, batch_size in 1usize..300, then in 0usize..3) {
        let hopping = json!({"type": "hopping", "size": "1200ms", "slide": "300ms"});
        let before = statistics_config(hopping.clone());
        let after = statistics_config([hopping, json!({"type": "hopping", "size": "1s", "slide": "500ms"}), json!({"type": "tumbling", "size": "1s"})][then].clone());
        let records = records(seed, true);
        let (first, rest) = records.split_at(700);
        let mut outcomes = Vec::new();
        for by_panes in [true, false] {
            let mut op = operator(&before, by_panes);
            let mut results = run_on(&mut op, first, batch_size, DISORDER, false);
            let mut restored = Harness::<WindowAggregate>::restored(after.clone(), op.snapshot()).unwrap();
            if !by_panes {
                restored.operator().windows.use_panes(None);
            }
            results.extend(run_on(&mut restored, rest, batch_size, DISORDER, true));
            outcomes.push(results);
        }
        let each_window = outcomes.pop().expect("the run updating each window");
        let outcome = same_results(outcomes.pop().expect("the run by panes"), each_window);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
