//! Native tests: shared helpers, and the record-level behaviour (output, rejections,
//! configuration, reports).

mod learning;
mod restore;
mod state;

use sluice_sdk::Batch;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_batch, json_values};

use crate::{Learn, roc_auc};

fn learner(config: Value) -> Harness<Learn> {
    match Harness::<Learn>::new(config) {
        Ok(harness) => harness,
        Err(reason) => panic!("configuration refused: {reason}"),
    }
}

fn refusal(config: Value) -> String {
    match Harness::<Learn>::new(config) {
        Ok(_) => panic!("configuration accepted"),
        Err(reason) => reason,
    }
}

/// A deterministic generator (a 64-bit LCG), so that every run sees the same stream.
struct Random(u64);

impl Random {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal value (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Records whose label `y` follows a hidden logistic rule of `x1`, `x2` and `color`.
fn planted_classification(count: usize, seed: u64) -> Vec<(Value, i64)> {
    let mut random = Random(seed);
    (0..count)
        .map(|n| {
            let (x1, x2) = (random.normal(), random.normal());
            let (color, effect) = [("red", 1.5), ("green", -1.5), ("blue", 0.0)][n % 3];
            let y = random.uniform() < sigmoid(3.0 * x1 - 3.0 * x2 + effect - 0.5);
            (json!({"x1": x1, "x2": x2, "color": color, "y": y}), n as i64 * 100)
        })
        .collect()
}

fn classifier_config() -> Value {
    json!({"label": "y", "numeric": ["x1", "x2"], "categorical": ["color"], "learning_rate": 0.05})
}

/// The prediction field of each output record.
fn predictions(batch: &Batch) -> Vec<f64> {
    json_values(batch).iter().map(|value| value["prediction"].as_f64().unwrap_or(f64::NAN)).collect()
}

/// The reports of a watermark batch.
fn reports(batch: &Batch) -> Vec<Value> {
    assert!(batch.iter().all(|record| record.port() == 1), "reports go to the side output");
    json_values(batch)
}

#[test]
fn a_record_passes_on_with_only_the_prediction_added() {
    let mut learn = learner(json!({"label": "y", "numeric": ["m.x"]}));
    let mut batch = Batch::new();
    batch.push(Some(b"k1"), br#"{"id": 1, "m": {"x": 2}, "tags": ["a"], "y": true}"#, 7_000, [(&b"trace"[..], &b"t1"[..])]);
    batch.push(None, br#" { } "#, 7_001, []);
    let out = learn.process(&batch);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let values = json_values(&out.batch);
    assert_eq!(values[0], json!({"id": 1, "m": {"x": 2}, "tags": ["a"], "y": true, "prediction": 0.5}));
    // Without x, only the intercept speaks: 0.01 × 0.5 after the first record.
    assert_eq!(values[1].as_object().map(|fields| fields.len()), Some(1));
    assert!((values[1]["prediction"].as_f64().unwrap_or(0.0) - sigmoid(0.005)).abs() < 1e-15, "{}", values[1]);
    let first = out.batch.get(0).expect("emitted");
    assert_eq!((first.key(), first.timestamp(), first.header("trace")), (Some(&b"k1"[..]), 7_000, Some(&b"t1"[..])));
}

#[test]
fn an_existing_or_nested_prediction_field_is_set_in_place() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x"]}));
    let out = learn.process_json(&[(json!({"x": 1, "prediction": "old"}), 0)]);
    assert_eq!(json_values(&out.batch), vec![json!({"x": 1, "prediction": 0.5})]);
    let mut nested = learner(json!({"label": "y", "numeric": ["x"], "prediction_field": "ml.p"}));
    let out = nested.process_json(&[(json!({"x": 1, "ml": {"model": "a"}}), 0), (json!({"x": 1, "ml": 3, "y": 1}), 1)]);
    assert_eq!(json_values(&out.batch), vec![json!({"x": 1, "ml": {"model": "a", "p": 0.5}})]);
    assert_eq!(out.rejected.len(), 1, "ml is not an object, so ml.p cannot be set");
    assert_eq!(nested.operator().state().global.examples, 0, "a refused record teaches nothing");
}

#[test]
fn the_first_labelled_record_is_predicted_before_it_is_learnt() {
    let mut classifier = learner(json!({"label": "y", "numeric": ["x"]}));
    let out = classifier.process_json(&[(json!({"x": 1, "y": 1}), 0), (json!({"x": 1, "y": 1}), 1)]);
    let seen = predictions(&out.batch);
    assert_eq!(seen[0], 0.5);
    assert!(seen[1] > 0.5, "the second prediction follows the first update: {seen:?}");
    let mut regressor = learner(json!({"task": "regression", "label": "y", "numeric": ["x"]}));
    let out = regressor.process_json(&[(json!({"x": 1, "y": 10}), 0), (json!({"x": 1, "y": 10}), 1)]);
    let seen = predictions(&out.batch);
    assert_eq!(seen[0], 0.0);
    // One step of 0.01 on the gradient 2·(0 − 10), for the weight and the intercept.
    assert!((seen[1] - 0.4).abs() < 1e-12, "{seen:?}");
}

#[test]
fn unlabelled_records_are_only_predicted() {
    let mut learn = learner(classifier_config());
    learn.process_json(&planted_classification(200, 1));
    learn.watermark(1);
    let before = learn.operator().state().clone();
    let out = learn.process_json(&[(json!({"x1": 1.0, "x2": 0.0, "color": "red"}), 5), (json!({"x1": 1.0, "x2": 0.0, "y": null}), 6)]);
    assert_eq!(out.batch.len(), 2);
    assert!(predictions(&out.batch).iter().all(|p| *p > 0.5 && *p < 1.0));
    let after = learn.operator().state();
    assert_eq!((&after.global, &after.keyed), (&before.global, &before.keyed), "nothing learnt");
    assert!(learn.watermark(10).is_empty(), "no report without labelled records");
}

#[test]
fn invalid_labels_and_values_are_rejected_with_their_index() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x"]}));
    let batch = json_batch(&[
        (json!({"x": 1, "y": 1}), 0),
        (json!({"x": 1, "y": "yes"}), 1),
        (json!({"x": 1, "y": 2}), 2),
        (json!({"x": "big", "y": 0}), 3),
        (json!([1, 2]), 4),
        (json!({"x": 1, "y": false}), 5),
    ]);
    let mut with_overflow = batch.clone();
    with_overflow.push(None, br#"{"x": 1, "y": 1e999}"#, 6, []);
    let out = learn.process(&with_overflow);
    let rejected: Vec<(u32, &str)> = out.rejected.iter().map(|rejection| (rejection.index, rejection.reason.as_str())).collect();
    assert_eq!(rejected.iter().map(|(index, _)| *index).collect::<Vec<_>>(), vec![1, 2, 3, 4, 6]);
    assert!(rejected[0].1.contains("label y is \"yes\"") && rejected[0].1.contains("true, false, 0 or 1"), "{}", rejected[0].1);
    assert!(rejected[2].1.contains("numeric feature x is a string"), "{}", rejected[2].1);
    assert!(rejected[3].1.contains("not a JSON object"), "{}", rejected[3].1);
    assert_eq!(out.batch.len(), 2);
    assert_eq!(learn.operator().state().global.examples, 2);
    let mut regression = learner(json!({"task": "regression", "label": "y", "numeric": ["x"]}));
    let out = regression.process(&json_batch(&[(json!({"x": 1, "y": true}), 0), (json!({"x": 1, "y": 2.5}), 1)]));
    assert_eq!(out.rejected.iter().map(|rejection| rejection.index).collect::<Vec<_>>(), vec![0]);
}

#[test]
fn a_report_per_changed_model_at_the_watermark() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x"], "key": ["shop.id"], "min_key_examples": 1}));
    learn.process_json(&[(json!({"x": 1, "y": 1, "shop": {"id": "a"}}), 10), (json!({"x": -1, "y": 0, "shop": {"id": 7}}), 20)]);
    let out = learn.watermark(15);
    assert_eq!(out.iter().map(|record| record.timestamp()).collect::<Vec<_>>(), vec![15, 15, 15]);
    let all = reports(&out);
    assert_eq!(all[0]["model"], "global");
    assert_eq!(
        all[0].as_object().map(|fields| fields.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
        ["model", "examples", "horizon", "log_loss", "accuracy", "auc", "weights"]
    );
    assert_eq!((all[0]["examples"].as_u64(), all[0]["horizon"].as_u64(), all[0]["weights"].as_u64()), (Some(2), Some(2), Some(1)));
    assert_eq!((&all[1]["model"], &all[2]["model"]), (&json!({"shop.id": "a"}), &json!({"shop.id": 7})));
    assert!(learn.watermark(16).is_empty(), "nothing changed since");
    learn.process_json(&[(json!({"x": 1, "y": 1, "shop": {"id": 7}}), 30)]);
    let out = learn.watermark(i64::MAX);
    assert_eq!(out.iter().map(|record| record.timestamp()).collect::<Vec<_>>(), vec![30, 30], "the latest event time at the end");
    assert_eq!(reports(&out)[1]["model"], json!({"shop.id": 7}));
    let metrics = sluice_sdk::host::native_metrics();
    assert!(metrics.gauges.contains_key("global_log_loss") && metrics.gauges.get("models") == Some(&2.0), "{metrics:?}");
}

#[test]
fn a_regression_report_has_mae_and_rmse() {
    let mut learn = learner(json!({"task": "regression", "label": "y", "numeric": ["x"]}));
    learn.process_json(&[(json!({"x": 1, "y": 3}), 0), (json!({"x": 1, "y": -1}), 1)]);
    let report = reports(&learn.watermark(1)).remove(0);
    // Predictions 0, then 0.06 + 0.06 (one step of 0.01 × 2 × 3 on the weight and the intercept): errors 3 and 1.12.
    assert!((report["mae"].as_f64().unwrap_or(0.0) - 2.06).abs() < 1e-12, "{report}");
    assert!((report["rmse"].as_f64().unwrap_or(0.0) - ((9.0 + 1.12f64 * 1.12) / 2.0).sqrt()).abs() < 1e-12, "{report}");
    assert!(report.get("auc").is_none());
}

#[test]
fn auc_is_one_for_a_perfect_ranking_zero_reversed_and_ties_count_half() {
    let perfect = [(0.1, 0.0), (0.2, 0.0), (0.7, 1.0), (0.9, 1.0)];
    assert_eq!(roc_auc(perfect.into_iter()), Some(1.0));
    assert_eq!(roc_auc(perfect.iter().map(|(p, y)| (1.0 - p, *y))), Some(0.0));
    assert_eq!(roc_auc([(0.5, 0.0), (0.5, 1.0), (0.5, 1.0)].into_iter()), Some(0.5));
    // One positive above both negatives, one tied with a negative: (2 + 1.5) / 4.
    assert_eq!(roc_auc([(0.2, 0.0), (0.6, 0.0), (0.6, 1.0), (0.9, 1.0)].into_iter()), Some(0.875));
    assert_eq!(roc_auc([(0.2, 1.0)].into_iter()), None, "undefined without a negative");
}

#[test]
fn configuration_mistakes_are_refused_with_the_key_named() {
    let unknown = refusal(json!({"label": "y", "numeric": ["x"], "learning_rat": 0.1}));
    assert!(unknown.contains("unknown field `learning_rat`"), "{unknown}");
    let bits = refusal(json!({"label": "y", "numeric": ["x"], "hash_bits": 30}));
    assert!(bits.contains("`hash_bits` must be between 4 and 24, got 30"), "{bits}");
    let ftrl_only = refusal(json!({"label": "y", "numeric": ["x"], "alpha": 0.1, "l1": 1.0}));
    assert!(ftrl_only.contains("`alpha`, `l1` applies only to optimizer = \"ftrl\""), "{ftrl_only}");
    let sgd_only = refusal(json!({"label": "y", "numeric": ["x"], "optimizer": "ftrl", "learning_rate": 0.1}));
    assert!(sgd_only.contains("`learning_rate` applies only to optimizer = \"sgd\""), "{sgd_only}");
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "power_t": 0.5})).contains("inverse-scaling"));
    assert!(refusal(json!({"label": "y"})).contains("no features"));
    assert!(refusal(json!({"label": "y", "numeric": ["y"]})).contains("also a feature"));
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "key": ["y"]})).contains("also a key field"), "the label selecting the model");
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "max_models": 5})).contains("set `key`"));
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "crosses": [["a"]]})).contains("crosses[0]"));
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "learning_rate": 0})).contains("`learning_rate` must be a positive number"));
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "task": "ranking"})).contains("unknown variant `ranking`"));
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "key": ["k"], "horizon": 100000})).contains("`horizon` × (`max_models` + 1)"));
    assert!(
        refusal(json!({"label": "y", "numeric": ["x"], "max_key_weights": 5}))
            .contains("`max_key_weights` applies only with per-key models")
    );
    assert!(refusal(json!({"label": "y", "numeric": ["x"], "key": ["k"], "max_key_weights": 0})).contains("at least 1"));
    let accepted =
        Harness::<Learn>::new(json!({"label": "y", "numeric": ["x"], "schedule": "inverse-scaling", "power_t": 0.5, "l2": 0.001}));
    assert!(accepted.is_ok());
}

#[test]
fn a_feature_named_twice_is_refused() {
    assert_eq!(
        refusal(json!({"label": "y", "numeric": ["x", "z", "x"]})),
        "`numeric` names `x` twice: each feature is one input of the model, name it once"
    );
    assert!(refusal(json!({"label": "y", "categorical": ["c", "c"]})).starts_with("`categorical` names `c` twice"));
    assert!(refusal(json!({"label": "y", "crosses": [["a", "b"], ["c", "d", "c"]]})).starts_with("crosses[1] names `c` twice"));
}

#[test]
fn per_key_weights_are_bounded_by_a_budget_named_in_the_refusal() {
    let max_key_weights = |config: Value| {
        let config = sluice_sdk::serde_json::from_value(config).map_err(|error| error.to_string());
        config.and_then(crate::Settings::from_config).map(|settings| settings.max_key_weights)
    };
    // 64 MiB / (1000 models × 32 bytes) = 2097; × 72 bytes with ftrl: 932.
    assert_eq!(max_key_weights(json!({"label": "y", "numeric": ["x"], "key": ["k"]})), Ok(2_097));
    assert_eq!(max_key_weights(json!({"label": "y", "numeric": ["x"], "key": ["k"], "optimizer": "ftrl"})), Ok(932));
    assert_eq!(max_key_weights(json!({"label": "y", "numeric": ["x"], "key": ["k"], "max_models": 100})), Ok(10_000));
    assert_eq!(max_key_weights(json!({"label": "y", "numeric": ["x"], "key": ["k"], "max_key_weights": 2_097})), Ok(2_097));
    let over = refusal(json!({"label": "y", "numeric": ["x"], "key": ["k"], "max_key_weights": 10_000}));
    assert!(
        over.contains("`max_models` × `max_key_weights` = 1000 × 10000 weights of up to 32 bytes (sgd) would take 305.18 MiB"),
        "{over}"
    );
    assert!(
        over.contains("more than the 64 MiB")
            && over.contains("lower `max_key_weights` (at most 2097 with max_models = 1000) or `max_models`")
    );
    let ftrl =
        refusal(json!({"label": "y", "numeric": ["x"], "key": ["k"], "optimizer": "ftrl", "max_models": 10, "max_key_weights": 100_000}));
    assert!(ftrl.contains("72 bytes (ftrl)") && ftrl.contains("at most 93206 with max_models = 10"), "{ftrl}");
    let crowded = refusal(json!({"label": "y", "numeric": ["x"], "key": ["k"], "max_models": 3_000_000, "horizon": 1}));
    assert!(crowded.contains("`max_models` = 3000000 leaves no room for weights") && crowded.contains("at most 2097152"), "{crowded}");
}

#[test]
fn the_operator_declares_a_single_instance_and_the_report_output() {
    let learn = learner(json!({"label": "y", "categorical": ["c"], "key": ["k"]}));
    let info = learn.info();
    assert_eq!(info.outputs, vec!["report".to_string()]);
    assert_eq!(info.distribution, sluice_sdk::Distribution::Single);
}

#[test]
fn without_reports_there_is_no_side_output_but_the_gauge_is_set() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x"], "report": false}));
    assert!(learn.info().outputs.is_empty());
    learn.process_json(&[(json!({"x": 1, "y": 1}), 0)]);
    assert!(learn.watermark(1).is_empty());
    assert!(sluice_sdk::host::native_metrics().gauges.contains_key("global_log_loss"));
}

/// A record whose prediction field must be set inside it (nested, or already there) keeps the
/// exact text of its other fields.
#[test]
fn a_prediction_set_inside_the_record_leaves_its_other_fields_exact() {
    let mut learn = learner(json!({"label": "y", "numeric": ["x"], "prediction_field": "ml.p"}));
    let mut batch = Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "z": -0, "x": 1.50, "ml": {"model": "a"}}"#, 0, []);
    let out = learn.process(&batch);
    let written: Vec<&[u8]> = out.batch.iter().map(|record| record.value()).collect();
    assert_eq!(written, [br#"{"id":18446744073709551617,"z":-0,"x":1.50,"ml":{"model":"a","p":0.5}}"#.as_slice()]);
    let mut keyed = learner(json!({"label": "y", "numeric": ["x"], "key": ["id"]}));
    let mut batch = Batch::new();
    batch.push(None, br#"{"id": 18446744073709551617, "x": 1, "y": 1}"#, 0, []);
    keyed.process(&batch);
    let out = keyed.watermark(1);
    let models: Vec<String> = out.iter().map(|record| String::from_utf8_lossy(record.value()).into_owned()).collect();
    assert!(models[1].starts_with(r#"{"model":{"id":18446744073709551617},"examples":1,"#), "{models:?}");
}

/// The prediction cannot be written over a field the model reads, nor inside or around one:
/// it overwrote the feature in every record, or (inside a number) dead-lettered every record.
#[test]
fn a_prediction_field_on_a_field_the_model_reads_is_refused() {
    for (prediction, numeric, key) in [("x", "x", "k"), ("x.p", "x", "k"), ("x", "x.a", "k"), ("k.p", "x", "k")] {
        let reason = refusal(json!({"label": "y", "numeric": [numeric], "key": [key], "prediction_field": prediction}));
        assert!(reason.contains("`prediction_field`") && reason.contains("overwrite"), "{prediction}: {reason}");
    }
    learner(json!({"label": "y", "numeric": ["x"], "prediction_field": "x_hat"}));
}
