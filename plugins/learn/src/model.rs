//! One linear model over the hashed features: its weights and intercept, its scaler, and its
//! rolling quality. Predicting never changes it; learning follows river's order (the scaler
//! learns the record, then the weights learn the record as the updated scaler transforms it).

use std::fmt;

use serde::de::{DeserializeSeed, EnumAccess, Error as _, SeqAccess, VariantAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{Settings, Task};
use crate::features::Example;
use crate::optimizer::{CLIP_GRADIENT, FtrlCoordinate, FtrlSettings, Optimizer, sgd_rate};
use crate::quality::Window;
use crate::scaler::Welford;
use crate::vector::{Slot, Target, Vector, VectorSeed};

/// A model (the global one, or one key's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    coefficients: Coefficients,
    /// The running statistics of each numeric feature, in configuration order (used with `standardize`).
    pub scaler: Vec<Welford>,
    /// Labelled records learnt.
    pub examples: u64,
    /// The last `horizon` (prediction of this model, label) pairs.
    pub window: Window,
}

/// A model's weights and intercept, taken out of it.
pub struct Weights(Coefficients);

/// The weights and intercept, with what the optimiser keeps beside them.
#[derive(Debug, Clone, PartialEq, Serialize)]
enum Coefficients {
    Sgd { weights: Vector<f64>, intercept: f64 },
    Ftrl { weights: Vector<FtrlCoordinate>, intercept: FtrlCoordinate },
}

impl Model {
    /// An untrained model: dense (the global model) or sparse (a key's).
    pub fn new(settings: &Settings, dense: bool) -> Model {
        let coefficients = match (settings.optimizer.is_ftrl(), dense) {
            (false, true) => Coefficients::Sgd { weights: Vector::dense(settings.dimensions()), intercept: 0.0 },
            (false, false) => Coefficients::Sgd { weights: Vector::sparse(), intercept: 0.0 },
            (true, true) => Coefficients::Ftrl { weights: Vector::dense(settings.dimensions()), intercept: FtrlCoordinate::default() },
            (true, false) => Coefficients::Ftrl { weights: Vector::sparse(), intercept: FtrlCoordinate::default() },
        };
        Model { coefficients, scaler: vec![Welford::default(); settings.numeric.len()], examples: 0, window: Window::default() }
    }

    /// The prediction for `example`: a probability, or a value.
    pub fn predict(&self, example: &Example, settings: &Settings, features: &mut Vec<(u32, f64)>) -> f64 {
        self.features(example, settings, features);
        settings.task.prediction(self.raw(features))
    }

    /// Learns a labelled example; `prediction` is what this model predicted for it, for the
    /// window. A sparse model holding `max_weights` weights takes no new one (see
    /// [`Vector::update_within`]): returns how many features were not learnt for that reason.
    pub fn learn(
        &mut self,
        example: &Example,
        label: f64,
        prediction: f64,
        settings: &Settings,
        features: &mut Vec<(u32, f64)>,
        max_weights: usize,
    ) -> u64 {
        if settings.standardize {
            for (statistics, value) in self.scaler.iter_mut().zip(&example.numeric) {
                if let Some(value) = value {
                    statistics.learn(*value);
                }
            }
        }
        self.features(example, settings, features);
        let raw = self.raw(features);
        let gradient = settings.task.loss_gradient(raw, label).clamp(-CLIP_GRADIENT, CLIP_GRADIENT);
        let mut not_kept = 0;
        match (&mut self.coefficients, settings.optimizer) {
            (Coefficients::Sgd { weights, intercept }, Optimizer::Sgd { learning_rate, schedule, l2 }) => {
                // river's intercept_lr: a constant step, whatever the schedule.
                *intercept -= learning_rate * gradient;
                let rate = sgd_rate(learning_rate, schedule, self.examples);
                for &(index, x) in features.iter() {
                    not_kept +=
                        u64::from(!weights.update_within(index, max_weights, |weight| *weight -= rate * (gradient * x + l2 * *weight)));
                }
            }
            (Coefficients::Ftrl { weights, intercept }, Optimizer::Ftrl { alpha, beta, l1, l2 }) => {
                let ftrl = FtrlSettings { alpha, beta, l1, l2 };
                // The intercept is a coordinate like the others, but not penalised.
                intercept.step(gradient, FtrlSettings { l1: 0.0, l2: 0.0, ..ftrl });
                for &(index, x) in features.iter() {
                    not_kept += u64::from(!weights.update_within(index, max_weights, |slot| slot.step(gradient * x, ftrl)));
                }
            }
            // A restore refuses a state of the other optimiser, so the two always agree.
            _ => {}
        }
        self.examples += 1;
        self.window.push(prediction, label, settings.horizon);
        not_kept
    }

    /// How many weights are not 0 (the intercept not counted).
    pub fn nonzero_weights(&self) -> usize {
        match &self.coefficients {
            Coefficients::Sgd { weights, .. } => weights.nonzero_weights(),
            Coefficients::Ftrl { weights, .. } => weights.nonzero_weights(),
        }
    }

    /// About how many bytes this model takes beside a dense block: its sparse weights (see
    /// [`crate::config::key_weight_bytes`]), scaler and window.
    pub fn sparse_bytes(&self) -> usize {
        let (ftrl, stored) = match &self.coefficients {
            Coefficients::Sgd { weights, .. } => (false, weights.stored()),
            Coefficients::Ftrl { weights, .. } => (true, weights.stored()),
        };
        let sparse = if self.dense() { 0 } else { stored * crate::config::key_weight_bytes(ftrl) };
        sparse + self.scaler.len() * std::mem::size_of::<Welford>() + self.window.len() * 16
    }

    fn dense(&self) -> bool {
        match &self.coefficients {
            Coefficients::Sgd { weights, .. } => weights.dense_len().is_some(),
            Coefficients::Ftrl { weights, .. } => weights.dense_len().is_some(),
        }
    }

    /// Why this model (from a restored state) cannot serve under `settings`, if it cannot.
    pub fn check(&self, settings: &Settings, dense: bool) -> Result<(), String> {
        let (ftrl, dense_len, largest) = match &self.coefficients {
            Coefficients::Sgd { weights, .. } => (false, weights.dense_len(), weights.largest_index()),
            Coefficients::Ftrl { weights, .. } => (true, weights.dense_len(), weights.largest_index()),
        };
        let fits = ftrl == settings.optimizer.is_ftrl()
            && dense_len.is_some() == dense
            && dense_len.is_none_or(|len| len == settings.dimensions())
            && largest.is_none_or(|index| (index as usize) < settings.dimensions());
        if fits { Ok(()) } else { Err("the state is corrupt: a model does not fit its own optimizer and hash_bits".into()) }
    }

    /// Where a dense model's block of weights lies (to show that a restore reuses it).
    #[cfg(test)]
    pub fn block_address(&self) -> Option<usize> {
        match &self.coefficients {
            Coefficients::Sgd { weights, .. } => weights.block_address(),
            Coefficients::Ftrl { weights, .. } => weights.block_address(),
        }
    }

    /// The non-zero weights, by index.
    #[cfg(test)]
    pub fn weights(&self) -> Vec<(u32, f64)> {
        match &self.coefficients {
            Coefficients::Sgd { weights, .. } => weights.weights(),
            Coefficients::Ftrl { weights, .. } => weights.weights(),
        }
    }

    /// Takes this model's weights and intercept out, leaving none (see [`crate::state::LearnState::relocate`]).
    pub fn take_weights(&mut self) -> Weights {
        Weights(std::mem::replace(&mut self.coefficients, Coefficients::Sgd { weights: Vector::sparse(), intercept: 0.0 }))
    }

    /// Puts back what [`Model::take_weights`] took.
    pub fn put_weights(&mut self, weights: Weights) {
        self.coefficients = weights.0;
    }

    /// Keeps a sparse model's `max_weights` weights of largest magnitude (after a restore under
    /// a lower `max_key_weights`).
    pub fn keep_largest_weights(&mut self, max_weights: usize) {
        match &mut self.coefficients {
            Coefficients::Sgd { weights, .. } => weights.keep_largest(max_weights),
            Coefficients::Ftrl { weights, .. } => weights.keep_largest(max_weights),
        }
    }

    /// The (index, value) pairs of `example` under this model's scaler, one pair per index.
    fn features(&self, example: &Example, settings: &Settings, features: &mut Vec<(u32, f64)>) {
        features.clear();
        for ((index, value), statistics) in settings.numeric_indices.iter().zip(&example.numeric).zip(&self.scaler) {
            if let Some(value) = value {
                let x = if settings.standardize { statistics.standardize(*value) } else { *value };
                features.push((*index, x));
            }
        }
        features.extend(example.one_hot.iter().map(|index| (*index, 1.0)));
        merge_collisions(features);
    }

    /// The linear score: weights · features + intercept.
    fn raw(&self, features: &[(u32, f64)]) -> f64 {
        match &self.coefficients {
            Coefficients::Sgd { weights, intercept } => features.iter().map(|(index, x)| weights.get(*index) * x).sum::<f64>() + intercept,
            Coefficients::Ftrl { weights, intercept } => {
                features.iter().map(|(index, x)| weights.get(*index).weight * x).sum::<f64>() + intercept.weight
            }
        }
    }
}

/// Sorts by index and adds up the values of features that hash to the same index, so that each
/// coordinate is updated once with its whole gradient.
fn merge_collisions(features: &mut Vec<(u32, f64)>) {
    features.sort_unstable_by_key(|(index, _)| *index);
    let mut kept = 0;
    for position in 0..features.len() {
        let (index, value) = features[position];
        if kept > 0 && features[kept - 1].0 == index {
            features[kept - 1].1 += value;
        } else {
            features[kept] = (index, value);
            kept += 1;
        }
    }
    features.truncate(kept);
}

/// Decodes a stored model; its weights go where [`ModelTarget`] says.
pub struct ModelSeed {
    pub target: ModelTarget,
}

/// Where a stored model's weights are decoded to.
pub enum ModelTarget {
    /// Into the dense block of this model (of the same optimiser and space), which it replaces.
    Block(Model),
    /// Sparse weights only (a key's model).
    Sparse,
    /// Either; dense weights into a new block.
    Any,
}

impl<'de> DeserializeSeed<'de> for ModelSeed {
    type Value = Model;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Model, D::Error> {
        deserializer.deserialize_struct("Model", &["coefficients", "scaler", "examples", "window"], self)
    }
}

impl<'de> Visitor<'de> for ModelSeed {
    type Value = Model;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a model")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Model, A::Error> {
        let coefficients =
            sequence.next_element_seed(CoefficientsSeed { target: self.target })?.ok_or_else(|| A::Error::invalid_length(0, &"a model"))?;
        let scaler = sequence.next_element()?.ok_or_else(|| A::Error::invalid_length(1, &"a model"))?;
        let examples = sequence.next_element()?.ok_or_else(|| A::Error::invalid_length(2, &"a model"))?;
        let window = sequence.next_element()?.ok_or_else(|| A::Error::invalid_length(3, &"a model"))?;
        Ok(Model { coefficients, scaler, examples, window })
    }
}

struct CoefficientsSeed {
    target: ModelTarget,
}

/// The variants of [`Coefficients`], by index.
#[derive(Deserialize)]
#[serde(variant_identifier)]
enum CoefficientsKind {
    Sgd,
    Ftrl,
}

impl<'de> DeserializeSeed<'de> for CoefficientsSeed {
    type Value = Coefficients;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Coefficients, D::Error> {
        deserializer.deserialize_enum("Coefficients", &["Sgd", "Ftrl"], self)
    }
}

impl<'de> Visitor<'de> for CoefficientsSeed {
    type Value = Coefficients;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a model's coefficients")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Coefficients, A::Error> {
        const FIELDS: &[&str] = &["weights", "intercept"];
        let (sgd_target, ftrl_target) = match self.target {
            ModelTarget::Block(Model { coefficients: Coefficients::Sgd { weights, .. }, .. }) => (Some(Target::Block(weights)), None),
            ModelTarget::Block(Model { coefficients: Coefficients::Ftrl { weights, .. }, .. }) => (None, Some(Target::Block(weights))),
            ModelTarget::Sparse => (Some(Target::Sparse), Some(Target::Sparse)),
            ModelTarget::Any => (Some(Target::Any), Some(Target::Any)),
        };
        let refused = || A::Error::custom("a model of another optimiser than the one it replaces");
        match data.variant()? {
            (CoefficientsKind::Sgd, variant) => {
                let target = sgd_target.ok_or_else(refused)?;
                let (weights, intercept) = variant.struct_variant(FIELDS, WeightsVisitor { target })?;
                Ok(Coefficients::Sgd { weights, intercept })
            }
            (CoefficientsKind::Ftrl, variant) => {
                let target = ftrl_target.ok_or_else(refused)?;
                let (weights, intercept) = variant.struct_variant(FIELDS, WeightsVisitor { target })?;
                Ok(Coefficients::Ftrl { weights, intercept })
            }
        }
    }
}

/// The weights (into their target) and the intercept, a slot of the same kind.
struct WeightsVisitor<T> {
    target: Target<T>,
}

impl<'de, T: Slot> Visitor<'de> for WeightsVisitor<T> {
    type Value = (Vector<T>, T);

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("weights and an intercept")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(Vector<T>, T), A::Error> {
        let weights =
            sequence.next_element_seed(VectorSeed { target: self.target })?.ok_or_else(|| A::Error::invalid_length(0, &"weights"))?;
        let intercept = sequence.next_element()?.ok_or_else(|| A::Error::invalid_length(1, &"an intercept"))?;
        Ok((weights, intercept))
    }
}

impl Task {
    /// The prediction from the linear score: the logistic function's probability, or the score.
    pub fn prediction(self, raw: f64) -> f64 {
        match self {
            Task::Classification if raw >= 0.0 => 1.0 / (1.0 + (-raw).exp()),
            Task::Classification => raw.exp() / (1.0 + raw.exp()),
            Task::Regression => raw,
        }
    }

    /// The loss's derivative by the score: `p − y` for the log-loss, `2 (ŷ − y)` for the
    /// squared loss `(ŷ − y)²` (river's `optim.losses.Squared`).
    pub fn loss_gradient(self, raw: f64, label: f64) -> f64 {
        match self {
            Task::Classification => self.prediction(raw) - label,
            Task::Regression => 2.0 * (raw - label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_collisions;

    #[test]
    fn colliding_features_are_added_up() {
        let mut features = vec![(7, 1.0), (2, 0.5), (7, 2.0), (3, 1.0)];
        merge_collisions(&mut features);
        assert_eq!(features, vec![(2, 0.5), (3, 1.0), (7, 3.0)]);
    }
}
