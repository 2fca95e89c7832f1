//! State: a restored learner continues exactly; restores that cannot fit are refused; batch
//! boundaries change nothing.

use proptest::prelude::*;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_batch};
use sluice_sdk::{Operator, State};

use super::{learner, planted_classification, predictions, reports};
use crate::Learn;

/// Records of `planted_classification` with a user (for per-key models), some unlabelled.
pub(super) fn stream(count: usize) -> Vec<(Value, i64)> {
    planted_classification(count, 13)
        .into_iter()
        .enumerate()
        .map(|(n, (mut record, time))| {
            record["user"] = json!(format!("u{}", n % 4));
            if n % 7 == 0 {
                record["y"] = Value::Null;
            }
            (record, time)
        })
        .collect()
}

/// Predictions and reports of a run over `records` in batches, with a watermark after each.
pub(super) fn run(learn: &mut Harness<Learn>, records: &[(Value, i64)]) -> (Vec<f64>, Vec<Value>) {
    let (mut seen, mut reported) = (Vec::new(), Vec::new());
    for chunk in records.chunks(97) {
        seen.extend(predictions(&learn.process_json(chunk).batch));
        reported.extend(reports(&learn.watermark(chunk[chunk.len() - 1].1)));
    }
    (seen, reported)
}

fn assert_restore_continues_exactly(config: Value) {
    let records = stream(2_000);
    let (first_half, second_half) = records.split_at(1_000);
    let mut uninterrupted = learner(config.clone());
    run(&mut uninterrupted, first_half);
    let (expected, expected_reports) = run(&mut uninterrupted, second_half);
    let mut interrupted = learner(config.clone());
    run(&mut interrupted, first_half);
    let state = interrupted.snapshot();
    let mut restored = Harness::<Learn>::restored(config, state).expect("restores");
    let (seen, seen_reports) = run(&mut restored, second_half);
    assert_eq!(seen, expected, "predictions after the restore");
    assert_eq!(seen_reports, expected_reports);
    assert_eq!(restored.operator().state(), uninterrupted.operator().state());
}

#[test]
fn a_restored_sgd_learner_continues_exactly() {
    assert_restore_continues_exactly(json!({
        "label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "crosses": [["color", "user"]], "standardize": true,
        "schedule": "inverse-scaling", "l2": 0.001, "key": ["user"], "min_key_examples": 20, "max_models": 3, "horizon": 300,
    }));
}

#[test]
fn a_restored_ftrl_learner_continues_exactly() {
    assert_restore_continues_exactly(json!({
        "label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "optimizer": "ftrl", "l1": 0.5, "l2": 0.1,
        "key": ["user"], "hash_bits": 12,
    }));
}

#[test]
fn a_state_of_another_task_space_optimiser_or_version_is_refused() {
    let config = json!({"label": "y", "numeric": ["x1", "x2"], "hash_bits": 16});
    let mut learn = learner(config.clone());
    learn.process_json(&planted_classification(50, 1));
    let state = learn.snapshot();
    let refused = |changes: Value| {
        let mut other = config.clone();
        other.as_object_mut().into_iter().for_each(|fields| fields.extend(changes.as_object().cloned().unwrap_or_default()));
        Harness::<Learn>::restored(other, state.clone()).err().unwrap_or_default()
    };
    assert!(refused(json!({"hash_bits": 18})).contains("learnt with hash_bits = 16 but the configuration says 18"));
    assert!(refused(json!({"task": "regression"})).contains("task = \"classification\" but the configuration says \"regression\""));
    assert!(refused(json!({"optimizer": "ftrl"})).contains("optimizer = \"sgd\""));
    let future = State { version: 3, bytes: state.bytes.clone() };
    let refusal = Harness::<Learn>::restored(config.clone(), future).err().unwrap_or_default();
    assert!(refusal.contains("state version 3") && refusal.contains("reads version 2 (and version 1)"), "{refusal}");
    let corrupt = State { version: 2, bytes: vec![9; 12] };
    assert!(Harness::<Learn>::restored(config.clone(), corrupt).is_err());
    let truncated = State { version: 2, bytes: state.bytes[..state.bytes.len() / 2].to_vec() };
    let mut learn = learner(config.clone());
    assert!(learn.operator().restore(truncated).is_err());
    assert_eq!(learn.operator().state(), learner(config).operator().state(), "a refused restore leaves the state init gave");
}

#[test]
fn a_restore_follows_the_numeric_features_by_name() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x1", "x2"], "standardize": true}));
    learn.process_json(&planted_classification(100, 2));
    let learnt = learn.operator().state().global.scaler.clone();
    let restored = Harness::<Learn>::restored(json!({"label": "y", "numeric": ["x2", "x3"], "standardize": true}), learn.snapshot());
    let mut restored = restored.expect("a changed feature list is followed");
    assert_eq!(restored.operator().state().global.scaler, vec![learnt[1], Default::default()]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// However the stream is cut into batches, and wherever watermarks fall, every record gets
    /// the same prediction.
    #[test]
    fn predictions_do_not_depend_on_batch_boundaries(cuts in proptest::collection::vec(1usize..40, 1..20)) {
        let config = json!({"label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "standardize": true, "key": ["user"], "min_key_examples": 5});
        let records = stream(300);
        let mut whole = learner(config.clone());
        let expected = predictions(&whole.process(&json_batch(&records)).batch);
        let mut cut = learner(config);
        let mut seen = Vec::new();
        let mut rest = &records[..];
        for size in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, after) = rest.split_at((*size).min(rest.len()));
            seen.extend(predictions(&cut.process(&json_batch(batch)).batch));
            cut.watermark(batch[batch.len() - 1].1);
            rest = after;
        }
        prop_assert_eq!(seen, expected);
    }
}
