//! `learn`: learns a model online from the stream (logistic or linear regression) and
//! predicts each record, test-then-train.
//!
//! ```toml
//! [operators.config]
//! task = "classification"          # logistic regression of a true/false or 0/1 label; or "regression"
//! label = "converted"              # dotted path; missing or null: the record is only predicted
//! numeric = ["price", "quantity"]  # numbers; missing or null counts as absent (0)
//! categorical = ["category"]       # one-hot, hashed from "category=<value>"
//! crosses = [["category", "campaign"]]  # one-hot of the combination
//! hash_bits = 20                   # 2^20 weights (8 MiB per dense vector)
//! standardize = true               # numeric features by running mean and variance
//! optimizer = "sgd"                # learning_rate = 0.01, schedule = "constant", l2 = 0
//! # optimizer = "ftrl"             # alpha = 0.05, beta = 1.0, l1 = 0, l2 = 0
//! prediction_field = "prediction"  # added to every record: the probability, or the value
//! key = ["category"]               # optional per-key models, besides the global one
//! max_models = 1000                # per-key models kept; later keys use the global model
//! max_key_weights = 2000           # weights a key's model keeps; then its new features count for nothing
//! min_key_examples = 50            # a key's model predicts once it has learnt this many
//! horizon = 1000                   # labelled records in each model's rolling quality
//! report = true                    # quality reports on the side output `report`, which must then be read
//! ```
//! Each labelled record is first predicted by the model as it is, then learnt (progressive
//! validation, river's `predict_one` then `learn_one`): with the defaults and
//! `standardize = true` the predictions are those of river's `StandardScaler() |
//! LogisticRegression()` (or `LinearRegression()`). Every accepted record passes on with
//! `prediction_field` added and nothing else changed. Features are hashed into `2^hash_bits`
//! weights per model (FNV-1a 64, see `features`); the global model holds them in one dense
//! block (SGD: a weight per slot; FTRL: a weight and its `z`, `n` accumulators), per-key
//! models in sparse maps. On each watermark after labelled records, every model that learnt reports its
//! rolling quality on the side output `report`: `{"model": "global" | {<key fields>},
//! "examples", "horizon", "log_loss", "accuracy", "auc", "weights"}` (regression: `"mae",
//! "rmse"`), with the watermark as event time (at the end of input, the latest record's).
//! Records that are not objects, invalid labels (`"yes"`, `2`) and non-numeric numeric
//! features are rejected, and nothing is learnt from them. Distribution: single (one global
//! model). State: everything learnt (version 2; version 1 is read); a state of another task,
//! `hash_bits`, optimiser or `standardize` is refused. Memory: `2^hash_bits` × 8 bytes (SGD)
//! or × 24 bytes (FTRL) for the global model; a snapshot or a restore needs that block and the
//! snapshot's bytes besides (at most 8 or 24 bytes a slot), and decodes the stored weights
//! straight into the block; per-key models within `max_models` × `max_key_weights` weights
//! (at most 64 MiB), windows, and the details as documented in the operator reference.

mod config;
mod features;
mod model;
mod optimizer;
mod quality;
mod report;
mod restore;
mod scaler;
mod state;
mod vector;

use sluice_sdk::edit::RawObject;
use sluice_sdk::serde_json::Value;
use sluice_sdk::{Batch, Distribution, Operator, Output, Record, State, json, serde_json};

pub use config::{LearnConfig, OptimizerKind, ScheduleKind, Settings, Task};
pub use features::{Example, fnv};
pub use model::Model;
pub use optimizer::{Optimizer, Schedule};
pub use quality::{Window, roc_auc};
pub use state::LearnState;

/// The name of the side output the quality reports go to.
pub const REPORT_OUTPUT: &str = "report";

/// A running learner.
pub struct Learn {
    settings: Settings,
    reader: features::Reader,
    state: LearnState,
    /// The record being read, its features and its key: reused from record to record.
    example: Example,
    features: Vec<(u32, f64)>,
    key: String,
    /// `"<prediction_field>":`, ready to splice into a record.
    prediction_member: Vec<u8>,
    /// The output record being written, reused.
    output: Vec<u8>,
    /// Whether the log said that predictions stopped being finite numbers.
    warned_diverged: bool,
}

impl Operator for Learn {
    type Config = LearnConfig;

    fn init(config: LearnConfig) -> Result<Self, String> {
        let settings = Settings::from_config(config)?;
        let mut prediction_member = serde_json::to_vec(settings.prediction_field.leaf()).map_err(|error| error.to_string())?;
        prediction_member.push(b':');
        Ok(Learn {
            reader: features::Reader::new(&settings),
            state: LearnState::new(&settings),
            settings,
            example: Example::default(),
            features: Vec::new(),
            key: String::new(),
            prediction_member,
            output: Vec::new(),
            warned_diverged: false,
        })
    }

    fn distribution(&self) -> Distribution {
        Distribution::Single
    }

    fn side_outputs(&self) -> Vec<String> {
        if self.settings.report { vec![REPORT_OUTPUT.into()] } else { Vec::new() }
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let (mut models_not_kept, mut key_weights_not_kept, mut diverged) = (0, 0, 0);
        for record in batch.iter() {
            match self.handle(record, out) {
                Ok(step) => {
                    models_not_kept += u64::from(step.model_not_kept);
                    key_weights_not_kept += step.key_weights_not_kept;
                    diverged += u64::from(!step.prediction.is_finite());
                }
                Err(reason) => out.reject(record.index(), reason),
            }
        }
        sluice_sdk::host::counters_add(&[("models_not_kept", models_not_kept), ("key_weights_not_kept", key_weights_not_kept)]);
        if diverged > 0 {
            self.warn_diverged(diverged);
        }
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) {
        let state = &mut self.state;
        if state.global_changed {
            let (gauge, quality) = match self.settings.task {
                Task::Classification => ("global_log_loss", state.global.window.log_loss()),
                Task::Regression => ("global_mae", state.global.window.mean_absolute_error()),
            };
            sluice_sdk::host::gauge_set(gauge, quality);
        }
        if self.settings.report {
            let time = if watermark == i64::MAX { state.latest_timestamp.unwrap_or(watermark) } else { watermark };
            report::emit(state, &self.settings, time, out);
        }
        state.global_changed = false;
        state.changed_keys.clear();
        if !self.settings.key.is_empty() {
            sluice_sdk::host::gauge_set("models", state.keyed.len() as f64);
        }
    }

    fn snapshot(&self) -> State {
        State::encode(&self.state)
    }

    fn restore(&mut self, state: State) -> Result<(), String> {
        // The stored global weights are decoded straight into the dense block of the current
        // global model (see `restore`), which a sparse stand-in replaces meanwhile.
        let replaced = std::mem::replace(&mut self.state.global, Model::new(&self.settings, false));
        match restore::restore(&state, &self.settings, replaced) {
            Ok(restored) => {
                let room = state.bytes.len();
                drop(state);
                self.state = restored;
                self.state.relocate(room);
                Ok(())
            }
            Err(reason) => {
                // The block is gone, or half written: back to the state `init` gave.
                self.state = LearnState::new(&self.settings);
                Err(reason)
            }
        }
    }
}

impl Learn {
    /// Reads, predicts, learns (if labelled) and emits one record; an error rejects it, and
    /// then nothing was learnt from it.
    fn handle(&mut self, record: Record<'_>, out: &mut Output) -> Result<state::Step, String> {
        let has_prediction_field = self.reader.read(record, &mut self.example, &mut self.key)?;
        let spliced = has_prediction_field == Some(false) && record.value().trim_ascii_end().ends_with(b"}");
        // Parsed (and the field tried) before learning, so that a record refused teaches nothing.
        let mut object = if spliced { None } else { Some(self.object_with_room(record)?) };
        let key = if self.settings.key.is_empty() { None } else { Some(self.key.as_str()) };
        let step = self.state.step(&self.example, key, &self.settings, &mut self.features);
        self.state.observe_time(record.timestamp());
        match &mut object {
            None => self.emit_spliced(record, step.prediction, out),
            Some(object) => {
                object.set_value(&self.settings.prediction_field, &json::number(step.prediction))?;
                out.emit_json_like(record, object);
            }
        }
        Ok(step)
    }

    /// The record as an object in which the prediction field can be set (its other fields
    /// keep their exact text).
    fn object_with_room<'r>(&self, record: Record<'r>) -> Result<RawObject<'r>, String> {
        let mut object = record.raw_object()?;
        object.set_value(&self.settings.prediction_field, &Value::Null)?;
        Ok(object)
    }

    /// Emits the record with `"<field>":<prediction>` appended to its top-level object, the rest
    /// of its text untouched (the record has no such field yet, so no name repeats).
    fn emit_spliced(&mut self, record: Record<'_>, prediction: f64, out: &mut Output) {
        let text = record.value().trim_ascii_end();
        let body = &text[..text.len().saturating_sub(1)];
        self.output.clear();
        self.output.extend_from_slice(body);
        if !body.trim_ascii_end().ends_with(b"{") {
            self.output.push(b',');
        }
        self.output.extend_from_slice(&self.prediction_member);
        if serde_json::to_writer(&mut self.output, &json::number(prediction)).is_err() {
            self.output.extend_from_slice(b"null");
        }
        self.output.push(b'}');
        out.batch.push(record.key(), &self.output, record.timestamp(), record.headers());
    }

    /// Counts predictions that are not finite numbers (written as null), and says why once.
    fn warn_diverged(&mut self, count: u64) {
        sluice_sdk::host::counter_add("non_finite_predictions", count);
        if !self.warned_diverged {
            self.warned_diverged = true;
            let remedy = match self.settings.standardize {
                false => "set standardize = true for features of large scale, or lower learning_rate",
                true => {
                    "a feature or label of extreme magnitude (its square beyond the largest double, about 1.3e154) overflows \
                         the running variance or the weights: keep such records from learn, or lower learning_rate"
                }
            };
            let message = format!(
                "a prediction is not a finite number (written as null, and its report's metrics too): a feature times \
                 its weight overflowed, or the model diverged; {remedy}; once its weights or running variance overflow, \
                 the model stays so: swap with --discard-state to start it afresh"
            );
            sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
        }
    }

    /// The learnt state (for tests and tools).
    pub fn state(&self) -> &LearnState {
        &self.state
    }
}

sluice_sdk::export_operator!(Learn);

#[cfg(test)]
mod tests;
