//! Rolling quality of a model: its last `horizon` (prediction, label) pairs, and the metrics
//! computed from them when a report is due.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Probabilities are clipped to `[EPSILON, 1 − EPSILON]` before the log-loss (as scikit-learn).
pub const EPSILON: f64 = 1e-15;

/// The most recent (prediction, label) pairs of one model, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pairs: VecDeque<(f64, f64)>,
}

impl Window {
    /// Adds a pair, forgetting the oldest beyond `horizon`.
    pub fn push(&mut self, prediction: f64, label: f64, horizon: usize) {
        while self.pairs.len() >= horizon.max(1) {
            self.pairs.pop_front();
        }
        self.pairs.push_back((prediction, label));
    }

    /// Forgets the oldest pairs beyond `horizon` (after a restore with a smaller one).
    pub fn truncate(&mut self, horizon: usize) {
        while self.pairs.len() > horizon {
            self.pairs.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn pairs(&self) -> impl ExactSizeIterator<Item = (f64, f64)> + '_ {
        self.pairs.iter().copied()
    }

    /// Mean log-loss of the probabilities (labels 0 or 1).
    pub fn log_loss(&self) -> f64 {
        self.mean(|(p, y)| {
            let p = p.clamp(EPSILON, 1.0 - EPSILON);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
    }

    /// Share of pairs whose class at threshold 0.5 (positive when p ≥ 0.5) is the label; not a
    /// number (written null) when a prediction in the window is not one (a diverged model), as
    /// log-loss is.
    pub fn accuracy(&self) -> f64 {
        self.mean(|(p, y)| match p.is_nan() {
            true => f64::NAN,
            false => f64::from(u8::from((p >= 0.5) == (y == 1.0))),
        })
    }

    pub fn mean_absolute_error(&self) -> f64 {
        self.mean(|(prediction, y)| (prediction - y).abs())
    }

    pub fn root_mean_squared_error(&self) -> f64 {
        self.mean(|(prediction, y)| (prediction - y) * (prediction - y)).sqrt()
    }

    /// ROC AUC of the window (see [`roc_auc`]); `None` when a prediction in it is not a number.
    pub fn auc(&self) -> Option<f64> {
        if self.pairs.iter().any(|(prediction, _)| prediction.is_nan()) {
            return None;
        }
        roc_auc(self.pairs.iter().copied())
    }

    fn mean(&self, term: impl Fn((f64, f64)) -> f64) -> f64 {
        if self.pairs.is_empty() {
            return f64::NAN;
        }
        self.pairs.iter().copied().map(term).sum::<f64>() / self.pairs.len() as f64
    }
}

/// The exact area under the ROC curve of (score, label) pairs, labels 0 or 1: the probability
/// that a random positive scores above a random negative, ties counting one half (the
/// Mann–Whitney statistic with average ranks). `None` without both a positive and a negative.
pub fn roc_auc(pairs: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let mut sorted: Vec<(f64, f64)> = pairs.collect();
    sorted.sort_by(|left, right| left.0.total_cmp(&right.0));
    let positives = sorted.iter().filter(|(_, label)| *label == 1.0).count();
    let negatives = sorted.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < sorted.len() {
        let end = start + sorted[start..].iter().take_while(|(score, _)| score.total_cmp(&sorted[start].0).is_eq()).count();
        // Ranks start + 1 ..= end share their mean.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        positive_rank_sum += average_rank * sorted[start..end].iter().filter(|(_, label)| *label == 1.0).count() as f64;
        start = end;
    }
    let (positives, negatives) = (positives as f64, negatives as f64);
    Some((positive_rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}
