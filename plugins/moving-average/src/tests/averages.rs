//! Each average against a straightforward reference computation.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};

use super::operator;

/// Runs one average over one key: (event time, value) per record, its outputs in order.
fn run(average: Value, records: &[(i64, f64)]) -> Vec<f64> {
    let mut op = operator(json!({"field": "x", "averages": [average], "max_records": 100_000}));
    let input: Vec<(Value, i64)> = records.iter().map(|(timestamp, x)| (json!({"x": x}), *timestamp)).collect();
    let out = op.process_json(&input);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    sluice_sdk::testing::json_values(&out.batch).iter().map(|record| record["avg"].as_f64().unwrap_or(f64::NAN)).collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn reference_last_records(values: &[f64], records: usize) -> Vec<f64> {
    (0..values.len()).map(|i| mean(&values[(i + 1).saturating_sub(records)..=i])).collect()
}

fn reference_span(records: &[(i64, f64)], span: i64) -> Vec<f64> {
    (0..records.len())
        .map(|i| {
            let newest = records[..=i].iter().map(|(timestamp, _)| *timestamp).max().unwrap_or(0);
            let inside: Vec<f64> = records[..=i].iter().filter(|(timestamp, _)| *timestamp > newest - span).map(|(_, x)| *x).collect();
            mean(&inside)
        })
        .collect()
}

fn reference_alpha(values: &[f64], alpha: f64) -> Vec<f64> {
    let mut ema = values[0];
    values
        .iter()
        .map(|x| {
            ema += alpha * (x - ema);
            ema
        })
        .collect()
}

/// The textbook irregular-time EMA, for strictly increasing event times.
fn reference_half_life(records: &[(i64, f64)], half_life: f64) -> Vec<f64> {
    let (mut previous, mut ema) = records[0];
    records
        .iter()
        .map(|(timestamp, x)| {
            let alpha = 1.0 - 2f64.powf(-((timestamp - previous) as f64) / half_life);
            ema += alpha * (x - ema);
            previous = *timestamp;
            ema
        })
        .collect()
}

fn assert_close(actual: &[f64], expected: &[f64], scale: f64) {
    assert_eq!(actual.len(), expected.len());
    for (position, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= 1e-9 * scale.max(1.0), "output {position}: {a} but the reference gives {e}");
    }
}

/// Equal but for the last bit or two: JSON output is read back by serde_json, whose float
/// parser is not always correctly rounded.
fn assert_equal_but_for_rounding(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (position, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= 4.0 * f64::EPSILON * e.abs(), "output {position}: {a} but the reference gives {e}");
    }
}

fn largest(records: &[(i64, f64)]) -> f64 {
    records.iter().map(|(_, x)| x.abs()).fold(0.0, f64::max)
}

/// Records with event times moving forward in steps of 0–`step` ms, or jumping back by up to `disorder`.
fn records(step: i64, disorder: i64, values: impl Strategy<Value = f64>) -> impl Strategy<Value = Vec<(i64, f64)>> {
    prop::collection::vec((0..=step, any::<bool>(), 0..=disorder, values), 1..200).prop_map(|steps| {
        let mut time = 0;
        steps
            .into_iter()
            .map(|(forward, jump_back, back, x)| {
                time += forward;
                (if jump_back { time - back } else { time }, x)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn last_records_is_exactly_the_mean_of_the_last_n(records in records(10, 0, (-1_000_000i32..1_000_000).prop_map(f64::from)), n in 1usize..30) {
        // Integer values: every sum is exact, so the result must be the naive one.
        let values: Vec<f64> = records.iter().map(|(_, x)| *x).collect();
        assert_equal_but_for_rounding(&run(json!({"type": "simple", "records": n, "as": "avg"}), &records), &reference_last_records(&values, n));
    }

    #[test]
    fn last_records_matches_the_naive_mean(records in records(10, 0, -1e6f64..1e6), n in 1usize..30) {
        let values: Vec<f64> = records.iter().map(|(_, x)| *x).collect();
        let expected = reference_last_records(&values, n);
        assert_close(&run(json!({"type": "simple", "records": n, "as": "avg"}), &records), &expected, largest(&records));
    }

    #[test]
    fn span_is_the_mean_of_the_records_within_span_of_the_newest(
        records in records(400, 3_000, (-1_000_000i32..1_000_000).prop_map(f64::from)),
        span in 1i64..5_000,
    ) {
        assert_equal_but_for_rounding(&run(json!({"type": "simple", "span": span, "as": "avg"}), &records), &reference_span(&records, span));
    }

    #[test]
    fn alpha_matches_the_textbook_recurrence(records in records(10, 0, -1e6f64..1e6), alpha in 0.001f64..=1.0) {
        let values: Vec<f64> = records.iter().map(|(_, x)| *x).collect();
        let expected = reference_alpha(&values, alpha);
        assert_close(&run(json!({"type": "exponential", "alpha": alpha, "as": "avg"}), &records), &expected, largest(&records));
    }

    #[test]
    fn half_life_matches_the_textbook_recurrence(records in records(5_000, 0, -1e6f64..1e6), half_life in 1i64..100_000) {
        let mut records = records;
        records.dedup_by_key(|(timestamp, _)| *timestamp);
        let expected = reference_half_life(&records, half_life as f64);
        let actual = run(json!({"type": "exponential", "half_life": half_life, "as": "avg"}), &records);
        assert_close(&actual, &expected, largest(&records));
    }
}

#[test]
fn a_half_life_later_the_old_average_weighs_one_half() {
    let average = json!({"type": "exponential", "half_life": "1m", "as": "avg"});
    assert_eq!(run(average.clone(), &[(0, 0.0), (60_000, 10.0), (180_000, 20.0)]), vec![0.0, 5.0, 16.25]);
    // 1 - 2^(-1/3600000) to 40 digits is 1.925408649528789793679...e-7.
    assert!(
        (crate::exponential::step_weight(1, 3_600_000) / 1.925_408_649_528_79e-7 - 1.0).abs() < 1e-15,
        "short steps keep their precision"
    );
}

#[test]
fn values_of_one_event_time_form_one_step_with_their_mean() {
    let average = json!({"type": "exponential", "half_life": "1s", "as": "avg"});
    let first = run(average.clone(), &[(0, 0.0), (1_000, 2.0), (1_000, 6.0), (1_000, 4.0)]);
    let second = run(average.clone(), &[(0, 0.0), (1_000, 4.0), (1_000, 2.0), (1_000, 6.0)]);
    assert_eq!(first, vec![0.0, 1.0, 2.0, 2.0], "one half-life after 0, the step's mean 4 weighs one half");
    assert_eq!(second.last(), first.last(), "arrival order within an event time does not matter");
    // A record older than the newest counts as if it had the newest time.
    assert_eq!(run(average, &[(0, 0.0), (1_000, 2.0), (500, 6.0)]), vec![0.0, 1.0, 2.0]);
}

#[test]
fn simple_averages_recover_exactly_after_huge_values_leave() {
    let average = json!({"type": "simple", "records": 2, "as": "avg"});
    let outputs = run(average, &[(0, 1e16), (0, 1.0), (0, 1.0), (0, 3.0), (0, 1e308), (0, 1e308), (0, 0.5), (0, 0.25), (0, 0.125)]);
    assert_eq!(outputs[2..4], [1.0, 2.0], "no trace of 1e16 is left in the sum");
    assert_eq!(outputs[5], 1e308, "the mean of two values near f64::MAX does not overflow");
    assert_eq!(outputs[7..], [0.375, 0.1875]);
    let spans =
        run(json!({"type": "simple", "span": 10, "as": "avg"}), &[(0, 1e16), (5, 0.1), (20, 0.2), (21, 0.3), (22, 1e308), (40, 0.1)]);
    assert_eq!((spans[3], spans[5]), (0.25, 0.1));
}

#[test]
fn span_windows_keep_at_most_max_records_values() {
    let mut op = operator(json!({"field": "x", "max_records": 3, "averages": [{"type": "simple", "span": "1h", "as": "avg"}]}));
    let out = op.process_json(&(1..=5).map(|x| (json!({"x": x}), x)).collect::<Vec<_>>());
    let averages: Vec<Value> = sluice_sdk::testing::json_values(&out.batch).iter().map(|record| record["avg"].clone()).collect();
    assert_eq!(averages, vec![json!(1), json!(1.5), json!(2), json!(3), json!(4)]);
    assert_eq!(super::counter("span_truncated"), 2);
}
