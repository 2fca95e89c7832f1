//! The operator's configuration, and its checked form: what `init` accepts or refuses.

use serde::{Deserialize, Serialize};
use sluice_sdk::FieldPath;

use crate::features::{self, fold};
use crate::optimizer::{Optimizer, Schedule};

/// Fewest and most bits of the hashed feature space (16 to 16 777 216 weights per model).
pub const HASH_BITS: std::ops::RangeInclusive<u32> = 4..=24;

/// Most `max_models` × `horizon` (prediction, label) pairs kept in the rolling windows, 16 bytes each.
pub const MAX_WINDOW_PAIRS: usize = 4_000_000;

/// Most bytes the weights of the per-key models may take together: `max_models` ×
/// `max_key_weights` × [`key_weight_bytes`].
pub const KEY_WEIGHTS_BUDGET: usize = 64 << 20;

/// `max_key_weights` when not given, if `max_models` keys of it fit in [`KEY_WEIGHTS_BUDGET`].
pub const DEFAULT_MAX_KEY_WEIGHTS: usize = 10_000;

/// The most bytes one weight of a per-key model takes: an entry of a B-tree whose nodes are at
/// least about half full, with the allocator's overhead (measured: about 21 bytes with `sgd` and
/// 45 with `ftrl`, whose slot is a weight and two accumulators, for hashed indices; 28 and 57
/// for ascending ones).
pub fn key_weight_bytes(ftrl: bool) -> usize {
    if ftrl { 72 } else { 32 }
}

/// The `config` table of a learn operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnConfig {
    #[serde(default)]
    pub task: Task,
    /// The field holding the label (the target).
    pub label: FieldPath,
    #[serde(default)]
    pub numeric: Vec<FieldPath>,
    #[serde(default)]
    pub categorical: Vec<FieldPath>,
    /// Each entry: fields whose combination of values is one one-hot feature.
    #[serde(default)]
    pub crosses: Vec<Vec<FieldPath>>,
    #[serde(default = "default_hash_bits")]
    pub hash_bits: u32,
    #[serde(default)]
    pub standardize: bool,
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// `sgd`: the step size.
    pub learning_rate: Option<f64>,
    /// `sgd`: how the step size changes with the updates.
    pub schedule: Option<ScheduleKind>,
    /// `sgd` with `schedule = "inverse-scaling"`: the exponent.
    pub power_t: Option<f64>,
    /// `ftrl`: the per-coordinate learning rate's scale.
    pub alpha: Option<f64>,
    /// `ftrl`: the per-coordinate learning rate's smoothing.
    pub beta: Option<f64>,
    /// `ftrl`: the L1 penalty, which sets weights to exactly 0.
    pub l1: Option<f64>,
    #[serde(default)]
    pub l2: f64,
    #[serde(default = "default_prediction_field")]
    pub prediction_field: FieldPath,
    /// Fields whose values select a model of their own, besides the global one.
    #[serde(default)]
    pub key: Vec<FieldPath>,
    pub max_models: Option<usize>,
    /// Weights a key's model keeps at most; then it learns no new feature.
    pub max_key_weights: Option<usize>,
    pub min_key_examples: Option<u64>,
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// Whether the side output `report` exists (a pipeline must then read it).
    #[serde(default = "default_report")]
    pub report: bool,
}

fn default_report() -> bool {
    true
}

fn default_hash_bits() -> u32 {
    20
}

fn default_prediction_field() -> FieldPath {
    FieldPath::parse("prediction").unwrap_or_else(|_| unreachable!("a valid literal path"))
}

fn default_horizon() -> usize {
    1_000
}

/// What is learnt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Logistic regression of a binary label; the prediction is the probability of `true` / 1.
    #[default]
    Classification,
    /// Linear regression with squared loss; the prediction is the value.
    Regression,
}

impl Task {
    /// The task's name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

/// The optimiser's name in the configuration.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Ftrl,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Ftrl => "ftrl",
        }
    }
}

/// The SGD step-size schedule's name in the configuration.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    #[default]
    Constant,
    InverseScaling,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Settings {
    pub task: Task,
    pub label: FieldPath,
    pub numeric: Vec<FieldPath>,
    pub categorical: Vec<FieldPath>,
    pub crosses: Vec<Vec<FieldPath>>,
    pub hash_bits: u32,
    pub standardize: bool,
    pub optimizer: Optimizer,
    pub prediction_field: FieldPath,
    pub key: Vec<FieldPath>,
    pub max_models: usize,
    /// Weights (stored slots) a key's model holds at most.
    pub max_key_weights: usize,
    pub min_key_examples: u64,
    pub horizon: usize,
    pub report: bool,
    /// The hashed index of each numeric feature, in `numeric` order.
    pub numeric_indices: Vec<u32>,
}

impl Settings {
    pub fn from_config(config: LearnConfig) -> Result<Settings, String> {
        check_features(&config)?;
        if !HASH_BITS.contains(&config.hash_bits) {
            return Err(format!(
                "`hash_bits` must be between {} and {}, got {}: the model has 2^hash_bits weights (20 → 1 048 576)",
                HASH_BITS.start(),
                HASH_BITS.end(),
                config.hash_bits
            ));
        }
        let optimizer = optimizer(&config)?;
        let KeySettings { max_models, max_key_weights, min_key_examples } = key_settings(&config, optimizer.is_ftrl())?;
        if config.horizon == 0 {
            return Err("`horizon` must be at least 1 (labelled records in the rolling quality window)".into());
        }
        let windows = config.horizon.saturating_mul(max_models.saturating_add(1));
        if windows > MAX_WINDOW_PAIRS {
            return Err(format!(
                "`horizon` × (`max_models` + 1) is {windows} pairs of 16 bytes; at most {MAX_WINDOW_PAIRS} fit in memory: lower one of them"
            ));
        }
        let mask = (1u32 << config.hash_bits) - 1;
        let numeric_indices = config.numeric.iter().map(|path| fold(features::fnv(path.to_string().as_bytes()), mask)).collect();
        Ok(Settings {
            task: config.task,
            label: config.label,
            numeric: config.numeric,
            categorical: config.categorical,
            crosses: config.crosses,
            hash_bits: config.hash_bits,
            standardize: config.standardize,
            optimizer,
            prediction_field: config.prediction_field,
            key: config.key,
            max_models,
            max_key_weights,
            min_key_examples,
            horizon: config.horizon,
            report: config.report,
            numeric_indices,
        })
    }

    /// The mask that keeps the low `hash_bits` bits of a hash.
    pub fn mask(&self) -> u32 {
        (1u32 << self.hash_bits) - 1
    }

    /// The number of weights of a model.
    pub fn dimensions(&self) -> usize {
        1usize << self.hash_bits
    }
}

fn check_features(config: &LearnConfig) -> Result<(), String> {
    if config.numeric.is_empty() && config.categorical.is_empty() && config.crosses.is_empty() {
        return Err("no features: list fields in `numeric`, `categorical` or `crosses`, such as numeric = [\"price\"]".into());
    }
    if let Some(position) = config.crosses.iter().position(|cross| cross.len() < 2) {
        return Err(format!(
            "crosses[{position}] names fewer than two fields: a cross combines two or more, such as [\"category\", \"campaign\"]"
        ));
    }
    for (position, cross) in config.crosses.iter().enumerate() {
        if let Some(twice) = (1..cross.len()).find(|&at| cross[..at].contains(&cross[at])) {
            return Err(format!(
                "crosses[{position}] names `{}` twice: a field crossed with itself is that field again; cross different fields",
                cross[twice]
            ));
        }
    }
    for (key, paths) in [("numeric", &config.numeric), ("categorical", &config.categorical)] {
        if let Some(position) = (1..paths.len()).find(|&position| paths[..position].contains(&paths[position])) {
            let feature = &paths[position];
            return Err(format!("`{key}` names `{feature}` twice: each feature is one input of the model, name it once"));
        }
    }
    let mut features = config.numeric.iter().chain(&config.categorical).chain(config.crosses.iter().flatten());
    if features.any(|path| *path == config.label) {
        return Err(format!("the label {} is also a feature: the model would see the answer; remove it from the features", config.label));
    }
    if config.key.contains(&config.label) {
        return Err(format!(
            "key: the label {} is also a key field: each key's model would be chosen by the answer; remove it from `key`",
            config.label
        ));
    }
    if config.prediction_field == config.label {
        return Err(format!("`prediction_field` is the label {}: choose another field for the prediction", config.label));
    }
    let read = config.numeric.iter().chain(&config.categorical).chain(config.crosses.iter().flatten()).chain(&config.key);
    if let Some(path) = read.chain([&config.label]).find(|path| overlap(path, &config.prediction_field)) {
        return Err(format!(
            "`prediction_field` {} is, or is inside or holds, the field {path} the model reads: writing the prediction there would \
             overwrite it; choose another field for the prediction",
            config.prediction_field
        ));
    }
    Ok(())
}

/// Whether one of two paths is the other or lies inside it (`x` and `x.p`).
fn overlap(one: &FieldPath, other: &FieldPath) -> bool {
    let (one, other) = (one.segments(), other.segments());
    one.starts_with(other) || other.starts_with(one)
}

/// The optimiser, with its own keys checked and the other optimiser's keys refused.
fn optimizer(config: &LearnConfig) -> Result<Optimizer, String> {
    let sgd_keys =
        [("learning_rate", config.learning_rate.is_some()), ("schedule", config.schedule.is_some()), ("power_t", config.power_t.is_some())];
    let ftrl_keys = [("alpha", config.alpha.is_some()), ("beta", config.beta.is_some()), ("l1", config.l1.is_some())];
    let (name, foreign) = match config.optimizer {
        OptimizerKind::Sgd => ("sgd", ftrl_keys),
        OptimizerKind::Ftrl => ("ftrl", sgd_keys),
    };
    let foreign: Vec<String> = foreign.iter().filter(|(_, given)| *given).map(|(key, _)| format!("`{key}`")).collect();
    if !foreign.is_empty() {
        let other = if name == "sgd" { "ftrl" } else { "sgd" };
        return Err(format!(
            "{} applies only to optimizer = \"{other}\", but the optimizer is \"{name}\": remove it or set optimizer = \"{other}\"",
            foreign.join(", ")
        ));
    }
    let l2 = non_negative("l2", config.l2)?;
    match config.optimizer {
        OptimizerKind::Sgd => {
            let learning_rate = positive("learning_rate", config.learning_rate.unwrap_or(0.01))?;
            let schedule = match (config.schedule.unwrap_or_default(), config.power_t) {
                (ScheduleKind::Constant, Some(_)) => {
                    return Err("`power_t` applies only to schedule = \"inverse-scaling\"".into());
                }
                (ScheduleKind::Constant, None) => Schedule::Constant,
                (ScheduleKind::InverseScaling, power_t) => {
                    Schedule::InverseScaling { power_t: non_negative("power_t", power_t.unwrap_or(0.25))? }
                }
            };
            Ok(Optimizer::Sgd { learning_rate, schedule, l2 })
        }
        OptimizerKind::Ftrl => Ok(Optimizer::Ftrl {
            alpha: positive("alpha", config.alpha.unwrap_or(0.05))?,
            beta: non_negative("beta", config.beta.unwrap_or(1.0))?,
            l1: non_negative("l1", config.l1.unwrap_or(0.0))?,
            l2,
        }),
    }
}

/// The bounds of the per-key models, which only apply with a `key`.
struct KeySettings {
    max_models: usize,
    max_key_weights: usize,
    min_key_examples: u64,
}

fn key_settings(config: &LearnConfig, ftrl: bool) -> Result<KeySettings, String> {
    if config.key.is_empty() {
        let given = [
            ("max_models", config.max_models.is_some()),
            ("max_key_weights", config.max_key_weights.is_some()),
            ("min_key_examples", config.min_key_examples.is_some()),
        ];
        if let Some((name, _)) = given.iter().find(|(_, given)| *given) {
            return Err(format!("`{name}` applies only with per-key models: set `key`, such as key = [\"user_id\"], or remove `{name}`"));
        }
        return Ok(KeySettings { max_models: 0, max_key_weights: 0, min_key_examples: 0 });
    }
    let max_models = config.max_models.unwrap_or(1_000);
    if max_models == 0 {
        return Err("`max_models` must be at least 1; to keep no per-key models, remove `key`".into());
    }
    let entry = key_weight_bytes(ftrl);
    let optimizer = if ftrl { "ftrl" } else { "sgd" };
    let room = KEY_WEIGHTS_BUDGET / entry / max_models;
    let max_key_weights = match config.max_key_weights {
        Some(0) => return Err("`max_key_weights` must be at least 1 (the weights a key's model keeps)".into()),
        Some(given) if given > room => {
            let bytes = max_models.saturating_mul(given).saturating_mul(entry);
            return Err(format!(
                "`max_models` × `max_key_weights` = {max_models} × {given} weights of up to {entry} bytes ({optimizer}) would take {:.2} MiB, \
                 more than the {} MiB the per-key models may take: lower `max_key_weights` (at most {room} with max_models = {max_models}) \
                 or `max_models`",
                bytes as f64 / f64::from(1 << 20),
                KEY_WEIGHTS_BUDGET >> 20
            ));
        }
        Some(given) => given,
        None if room == 0 => {
            return Err(format!(
                "`max_models` = {max_models} leaves no room for weights: per-key models may take {} MiB, {entry} bytes per weight \
                 ({optimizer}); lower `max_models` (at most {})",
                KEY_WEIGHTS_BUDGET >> 20,
                KEY_WEIGHTS_BUDGET / entry
            ));
        }
        None => room.min(DEFAULT_MAX_KEY_WEIGHTS),
    };
    Ok(KeySettings { max_models, max_key_weights, min_key_examples: config.min_key_examples.unwrap_or(50) })
}

fn positive(name: &str, value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 { Ok(value) } else { Err(format!("`{name}` must be a positive number, got {value}")) }
}

fn non_negative(name: &str, value: f64) -> Result<f64, String> {
    if value.is_finite() && value >= 0.0 { Ok(value) } else { Err(format!("`{name}` must be a number ≥ 0, got {value}")) }
}
