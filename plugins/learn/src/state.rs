//! The operator's whole state: the global model, the per-key models, what changed since the
//! last report, and what the state was learnt under (checked on restore).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, Settings, Task};
use crate::features::Example;
use crate::model::Model;
use crate::scaler::Welford;

/// Everything learnt, so that a restart or a hot swap continues exactly. Decoded by
/// [`crate::restore`] (the fields in this order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnState {
    /// What the models were learnt under: a state of another task, space, optimiser or
    /// standardisation is refused.
    pub header: Header,
    pub global: Model,
    /// Per key (the canonical JSON array of the key values): at most `max_models`.
    pub keyed: BTreeMap<String, Model>,
    /// Whether the global model learnt since the last report.
    pub global_changed: bool,
    /// The keys whose models learnt since the last report.
    pub changed_keys: BTreeSet<String>,
    /// The latest event time of an accepted record: the time of the reports at the end of input.
    pub latest_timestamp: Option<i64>,
}

/// What one record got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub prediction: f64,
    /// A labelled record of a new key found `max_models` models kept already.
    pub model_not_kept: bool,
    /// Features of the record its key's model did not learn, holding `max_key_weights` weights.
    pub key_weights_not_kept: u64,
}

impl LearnState {
    pub fn new(settings: &Settings) -> LearnState {
        LearnState {
            header: Header::of(settings),
            global: Model::new(settings, true),
            keyed: BTreeMap::new(),
            global_changed: false,
            changed_keys: BTreeSet::new(),
            latest_timestamp: None,
        }
    }

    /// Predicts `example` (from its key's model once that has learnt `min_key_examples`
    /// records, else from the global model), then, if it has a label, teaches it to the
    /// global model and to its key's model.
    pub fn step(&mut self, example: &Example, key: Option<&str>, settings: &Settings, features: &mut Vec<(u32, f64)>) -> Step {
        let global_prediction = self.global.predict(example, settings, features);
        let mut model_not_kept = false;
        let mut key_model = None;
        if let Some(key) = key {
            if example.label.is_some() && !self.keyed.contains_key(key) {
                if self.keyed.len() < settings.max_models {
                    self.keyed.insert(key.to_owned(), Model::new(settings, false));
                } else {
                    model_not_kept = true;
                }
            }
            key_model = self.keyed.get_mut(key);
        }
        let key_prediction = key_model.as_ref().map(|model| (model.predict(example, settings, features), model.examples));
        let prediction = match key_prediction {
            Some((prediction, examples)) if examples >= settings.min_key_examples => prediction,
            _ => global_prediction,
        };
        let mut key_weights_not_kept = 0;
        if let Some(label) = example.label {
            self.global.learn(example, label, global_prediction, settings, features, usize::MAX);
            self.global_changed = true;
            if let (Some(model), Some((own_prediction, _)), Some(key)) = (key_model, key_prediction, key) {
                key_weights_not_kept = model.learn(example, label, own_prediction, settings, features, settings.max_key_weights);
                if !self.changed_keys.contains(key) {
                    self.changed_keys.insert(key.to_owned());
                }
            }
        }
        Step { prediction, model_not_kept, key_weights_not_kept }
    }

    pub fn observe_time(&mut self, timestamp: i64) {
        self.latest_timestamp = Some(self.latest_timestamp.map_or(timestamp, |latest| latest.max(timestamp)));
    }

    /// Takes over a restored state under the current settings, once [`Header::refusal`] found
    /// nothing to refuse: checks the models against the space; follows renamed or reordered
    /// numeric features; drops the per-key models if the key changed, and those beyond
    /// `max_models`; keeps each key's `max_key_weights` largest weights.
    pub fn adopt(mut self, settings: &Settings) -> Result<LearnState, String> {
        let current = Header::of(settings);
        self.global.check(settings, true)?;
        for model in self.keyed.values() {
            model.check(settings, false)?;
        }
        self.header.standardize = current.standardize;
        self.follow_numeric(&current.numeric);
        if self.header.key != current.key {
            self.keyed.clear();
            self.changed_keys.clear();
            self.header.key = current.key;
        }
        while self.keyed.len() > settings.max_models {
            self.keyed.pop_last();
        }
        self.changed_keys.retain(|key| self.keyed.contains_key(key));
        for model in self.keyed.values_mut() {
            model.keep_largest_weights(settings.max_key_weights);
        }
        for model in std::iter::once(&mut self.global).chain(self.keyed.values_mut()) {
            model.window.truncate(settings.horizon);
        }
        Ok(self)
    }

    /// Copies everything but the global model's weights anew and frees the originals, if the
    /// copies fit in `room` bytes. Called after a restore, once the snapshot's bytes (`room`) are
    /// freed: the copies then take the memory the bytes left, and nothing decoded stays above it
    /// to keep it apart from the free memory at the top of the heap. The next snapshot then
    /// finds both as one (the allocator grows the memory by a whole request that does not fit).
    pub fn relocate(&mut self, room: usize) {
        let keyed: usize = self.keyed.iter().map(|(key, model)| key.len() + model.sparse_bytes()).sum();
        if keyed + self.global.sparse_bytes() > room {
            return;
        }
        let weights = self.global.take_weights();
        let copy = self.clone();
        *self = copy;
        self.global.put_weights(weights);
    }

    /// Reorders every model's scaler to `numeric`: a feature keeps its statistics by path, a
    /// new one starts afresh.
    fn follow_numeric(&mut self, numeric: &[String]) {
        if self.header.numeric == numeric {
            return;
        }
        let old = std::mem::take(&mut self.header.numeric);
        for model in std::iter::once(&mut self.global).chain(self.keyed.values_mut()) {
            let statistics = std::mem::take(&mut model.scaler);
            model.scaler = numeric
                .iter()
                .map(|path| old.iter().position(|old_path| old_path == path).and_then(|at| statistics.get(at).copied()).unwrap_or_default())
                .collect::<Vec<Welford>>();
        }
        self.header.numeric = numeric.to_vec();
    }
}

/// What a state records about the settings it was learnt under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub task: Task,
    pub hash_bits: u32,
    pub optimizer: OptimizerKind,
    /// The numeric paths the scalers follow, in order.
    pub numeric: Vec<String>,
    /// The key paths the per-key models are selected by.
    pub key: Vec<String>,
    /// Whether the numeric features were standardised; `None` in a state of version 1, which
    /// did not record it (then the current setting is taken on trust).
    pub standardize: Option<bool>,
}

impl Header {
    pub fn of(settings: &Settings) -> Header {
        Header {
            task: settings.task,
            hash_bits: settings.hash_bits,
            optimizer: if settings.optimizer.is_ftrl() { OptimizerKind::Ftrl } else { OptimizerKind::Sgd },
            numeric: settings.numeric.iter().map(ToString::to_string).collect(),
            key: settings.key.iter().map(ToString::to_string).collect(),
            standardize: Some(settings.standardize),
        }
    }

    /// Why a state learnt under this header cannot serve under `current`: another task,
    /// space, optimiser or standardisation (both values named).
    pub fn refusal(&self, current: &Header) -> Option<String> {
        if self.task != current.task {
            return Some(format!(
                "the state was learnt for task = \"{}\" but the configuration says \"{}\": a model cannot change task; \
                 start afresh (without the state) or keep the task",
                self.task.name(),
                current.task.name()
            ));
        }
        if self.hash_bits != current.hash_bits {
            return Some(format!(
                "the state was learnt with hash_bits = {} but the configuration says {}: the weights would land on other features; \
                 keep hash_bits = {} or start afresh",
                self.hash_bits, current.hash_bits, self.hash_bits
            ));
        }
        if self.optimizer != current.optimizer {
            return Some(format!(
                "the state was learnt with optimizer = \"{}\" but the configuration says \"{}\": their accumulators differ; \
                 keep the optimizer or start afresh",
                self.optimizer.name(),
                current.optimizer.name()
            ));
        }
        match (self.standardize, current.standardize) {
            (Some(learnt), Some(now)) if learnt != now => Some(format!(
                "the state was learnt with standardize = {learnt} but the configuration says {now}: the weights of the numeric \
                 features were learnt for {} values; keep standardize = {learnt} or start afresh",
                if learnt { "standardised" } else { "raw" }
            )),
            _ => None,
        }
    }
}
