//! What the models learn: planted rules recovered, river's order of standardisation, FTRL's
//! sparsity, per-key models.

use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::json_batch;

use super::{Random, classifier_config, learner, planted_classification, predictions, reports, sigmoid};

/// Feeds `records` in batches of 500 and returns every prediction, in order.
fn feed(learn: &mut sluice_sdk::testing::Harness<crate::Learn>, records: &[(Value, i64)]) -> Vec<f64> {
    records.chunks(500).flat_map(|chunk| predictions(&learn.process_json(chunk).batch)).collect()
}

#[test]
fn a_planted_logistic_rule_is_learnt() {
    let mut learn = learner(classifier_config());
    feed(&mut learn, &planted_classification(6_000, 7));
    let report = reports(&learn.watermark(600_000)).remove(0);
    let (log_loss, auc, accuracy) = (report["log_loss"].as_f64(), report["auc"].as_f64(), report["accuracy"].as_f64());
    assert!(log_loss.is_some_and(|loss| loss < 0.35), "log-loss of the last 1000: {report}");
    assert!(auc.is_some_and(|auc| auc > 0.85), "{report}");
    assert!(accuracy.is_some_and(|accuracy| accuracy > 0.75), "{report}");
    assert_eq!((report["examples"].as_u64(), report["horizon"].as_u64(), report["weights"].as_u64()), (Some(6_000), Some(1_000), Some(5)));
}

#[test]
fn a_regression_recovers_planted_coefficients() {
    let mut random = Random(11);
    let records: Vec<(Value, i64)> = (0..5_000)
        .map(|n| {
            let (x1, x2) = (random.normal(), random.normal());
            (json!({"x1": x1, "x2": x2, "y": 3.0 * x1 - 2.0 * x2 + 5.0 + 0.1 * random.normal()}), n)
        })
        .collect();
    let mut learn = learner(json!({"task": "regression", "label": "y", "numeric": ["x1", "x2"]}));
    feed(&mut learn, &records);
    let probes = [json!({"x1": 0, "x2": 0}), json!({"x1": 1, "x2": 0}), json!({"x1": 0, "x2": 1})];
    let seen = predictions(&learn.process_json(&probes.iter().map(|probe| (probe.clone(), 0)).collect::<Vec<_>>()).batch);
    let (intercept, w1, w2) = (seen[0], seen[1] - seen[0], seen[2] - seen[0]);
    assert!((intercept - 5.0).abs() < 0.05 && (w1 - 3.0).abs() < 0.05 && (w2 + 2.0).abs() < 0.05, "{intercept} {w1} {w2}");
    let report = reports(&learn.watermark(5_000)).remove(0);
    assert!(report["mae"].as_f64().is_some_and(|mae| mae < 0.1) && report["rmse"].as_f64().is_some_and(|rmse| rmse < 0.15), "{report}");
}

#[test]
fn standardisation_predicts_before_the_scaler_learns_and_learns_after() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x"], "standardize": true}));
    let out = learn.process_json(&[(json!({"x": 1, "y": 1}), 0), (json!({"x": 3, "y": 1}), 1), (json!({"x": 4}), 2)]);
    let seen = predictions(&out.batch);
    // 1: no variance yet, x' = 0, p = 0.5; the intercept steps by 0.01 × 0.5.
    // 2: predicted with the statistics of record 1 alone (x' = 0); then learnt as x' = (3 − 2) / 1.
    let gradient = sigmoid(0.005) - 1.0;
    // 3: x' = (4 − 2) / 1 = 2, weight −0.01 × gradient, intercept 0.005 − 0.01 × gradient.
    let expected = [0.5, sigmoid(0.005), sigmoid(0.005 - 0.01 * gradient - 0.02 * gradient)];
    for (seen, expected) in seen.iter().zip(expected) {
        assert!((seen - expected).abs() < 1e-15, "{seen} != {expected}");
    }
}

/// Records whose label depends on `x` alone, with a noise category `id` of 400 values.
fn signal_and_noise(count: usize) -> Vec<(Value, i64)> {
    let mut random = Random(5);
    (0..count)
        .map(|n| {
            let x = random.normal();
            let id = (random.uniform() * 400.0) as u32;
            (json!({"x": x, "id": id, "y": random.uniform() < sigmoid(2.0 * x)}), n as i64)
        })
        .collect()
}

#[test]
fn ftrl_with_l1_keeps_few_weights() {
    let records = signal_and_noise(8_000);
    let weights = |config: Value| {
        let mut learn = learner(config);
        feed(&mut learn, &records);
        let report = reports(&learn.watermark(1)).remove(0);
        assert!(report["auc"].as_f64().is_some_and(|auc| auc > 0.8), "{report}");
        report["weights"].as_u64().unwrap_or(0)
    };
    let dense = weights(json!({"label": "y", "numeric": ["x"], "categorical": ["id"], "optimizer": "ftrl", "alpha": 0.5}));
    let sparse = weights(json!({"label": "y", "numeric": ["x"], "categorical": ["id"], "optimizer": "ftrl", "alpha": 0.5, "l1": 3.0}));
    assert!(dense > 350, "without l1 every id seen has a weight: {dense}");
    assert!(sparse < dense / 5, "l1 zeroes the noise weights: {sparse} of {dense}");
}

#[test]
fn a_key_model_predicts_once_mature_and_their_number_is_bounded() {
    let mut random = Random(3);
    let records: Vec<(Value, i64)> = (0..24)
        .map(|n| {
            let (user, y) = [("a", json!(1)), ("b", json!(0)), ("c", json!(random.uniform() < 0.5))][n % 3].clone();
            (json!({"user": user, "x": random.normal(), "y": y}), n as i64)
        })
        .collect();
    let mut keyed = learner(json!({"label": "y", "numeric": ["x"], "key": ["user"], "max_models": 2, "min_key_examples": 3}));
    let mut global = learner(json!({"label": "y", "numeric": ["x"]}));
    let by_key = predictions(&keyed.process(&json_batch(&records)).batch);
    let by_global = predictions(&global.process(&json_batch(&records)).batch);
    for (n, ((keyed, global), (record, _))) in by_key.iter().zip(&by_global).zip(&records).enumerate() {
        let from_key_model = record["user"] != "c" && n / 3 >= 3;
        assert_eq!(keyed != global, from_key_model, "record {n}: {keyed} vs {global}");
    }
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("models_not_kept"), Some(&8), "every labelled record of c");
    let unlabelled_new_key = keyed.process_json(&[(json!({"user": "d", "x": 1}), 30)]);
    assert_eq!(unlabelled_new_key.batch.len(), 1);
    let models: Vec<Value> = reports(&keyed.watermark(40)).into_iter().map(|report| report["model"].clone()).collect();
    assert_eq!(models, vec![json!("global"), json!({"user": "a"}), json!({"user": "b"})]);
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("models_not_kept"), Some(&8));
}

#[test]
fn a_diverging_model_writes_null_and_says_why() {
    let mut learn = learner(json!({"task": "regression", "label": "y", "numeric": ["x"], "learning_rate": 1.0}));
    let records: Vec<(Value, i64)> = (0..200).map(|n| (json!({"x": 1e200, "y": 1.0}), n)).collect();
    let out = learn.process_json(&records);
    let last = sluice_sdk::testing::json_values(&out.batch).pop().unwrap_or_default();
    assert_eq!(last["prediction"], Value::Null, "{last}");
    assert!(sluice_sdk::host::native_metrics().counters.get("non_finite_predictions").is_some_and(|count| *count > 0));
}

/// One feature of extreme magnitude overflows the standardised model's running variance: its
/// predictions are null from then on, and so is every metric of a window holding them (the
/// accuracy and AUC were computed as if null were a prediction below 0.5).
#[test]
fn a_standardised_model_diverged_by_an_extreme_feature_reports_null_metrics() {
    let config = json!({"label": "y", "numeric": ["x1"], "standardize": true, "horizon": 10});
    let mut learn = learner(config);
    let mut records = vec![(json!({"x1": 1, "y": true}), 0), (json!({"x1": 2, "y": false}), 1), (json!({"x1": 1e200, "y": true}), 2)];
    records.extend((3..23).map(|n| (json!({"x1": n % 5, "y": n % 2 == 0}), n)));
    let out = learn.process_json(&records);
    assert_eq!(sluice_sdk::testing::json_values(&out.batch).pop().unwrap_or_default()["prediction"], Value::Null);
    let report = reports(&learn.watermark(30)).pop().unwrap_or_default();
    assert_eq!((&report["log_loss"], &report["accuracy"], &report["auc"]), (&Value::Null, &Value::Null, &Value::Null), "{report}");
}

#[test]
fn a_key_model_holding_max_key_weights_learns_no_new_feature() {
    let config = json!({"label": "y", "categorical": ["item"], "key": ["user"], "max_key_weights": 3, "min_key_examples": 1});
    let mut keyed = learner(config);
    let records: Vec<(Value, i64)> = (0..10).map(|n| (json!({"user": "a", "item": format!("i{n}"), "y": n % 2}), n)).collect();
    keyed.process_json(&records);
    let state = keyed.operator().state();
    let model = state.keyed.values().next().expect("a's model");
    assert_eq!((model.nonzero_weights(), model.examples, state.global.nonzero_weights()), (3, 10, 10), "the global model is not bounded");
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("key_weights_not_kept"), Some(&7), "one per feature not learnt");
    let probes = [json!({"user": "a", "item": "i9"}), json!({"user": "a"}), json!({"user": "a", "item": "i0"})];
    let seen = predictions(&keyed.process_json(&probes.iter().map(|probe| (probe.clone(), 20)).collect::<Vec<_>>()).batch);
    assert_eq!(seen[0], seen[1], "a feature the key's model did not keep contributes nothing to it");
    assert_ne!(seen[2], seen[1], "one it kept does");
    keyed.process_json(&[(json!({"user": "a", "item": "i0", "y": 1}), 30)]);
    assert_eq!(sluice_sdk::host::native_metrics().counters.get("key_weights_not_kept"), Some(&7), "a kept feature still learns");
}
