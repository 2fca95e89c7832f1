//! The `mad` detector: robust z-score against the median and median absolute deviation of
//! a key's most recent values.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::detectors::{Assessment, deviation_floor};

/// `{ type = "mad", window = 50, threshold = 3.5 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MadConfig {
    /// The detector's name in alerts; defaults to `mad`.
    pub name: Option<String>,
    /// How many of the key's most recent values the median and MAD are taken over.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Largest |robust z| that is not an anomaly.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
}

fn default_window() -> usize {
    50
}

fn default_threshold() -> f64 {
    3.5
}

/// Windows are bounded so that the state stays small: 8 bytes per value per key.
pub const MAX_WINDOW: usize = 10_000;

/// Iglewicz and Hoaglin's constant: makes the MAD of normal data comparable to its standard deviation.
const MAD_CONSISTENCY: f64 = 0.6745;

/// When the MAD is 0 (over half the values are equal), the mean absolute deviation stands in,
/// scaled by sqrt(pi/2) to be comparable to a standard deviation as well.
const MEAN_DEVIATION_CONSISTENCY: f64 = 1.253314;

/// A checked `mad` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Mad {
    window: usize,
    threshold: f64,
}

impl MadConfig {
    pub fn check(&self) -> Result<Mad, String> {
        if !(3..=MAX_WINDOW).contains(&self.window) {
            return Err(format!("`window` must be between 3 and {MAX_WINDOW} values, got {}", self.window));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!("`threshold` must be a positive number, got {}", self.threshold));
        }
        Ok(Mad { window: self.window, threshold: self.threshold })
    }
}

/// The most recent values of one key, oldest first; at most `window` of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentValues {
    values: VecDeque<f64>,
}

impl Mad {
    pub fn window(&self) -> usize {
        self.window
    }

    /// Scores `value` against the recent values; `None` while there are none.
    /// `scratch` is working space, reused across calls to avoid an allocation per record.
    pub fn assess(&self, recent: &RecentValues, value: f64, scratch: &mut Vec<f64>) -> Option<Assessment> {
        scratch.clear();
        scratch.extend(recent.values.iter().copied());
        let median = median_in_place(scratch)?;
        for deviation in scratch.iter_mut() {
            *deviation = (*deviation - median).abs();
        }
        let mad = median_in_place(scratch)?;
        let scale =
            if mad > 0.0 { mad / MAD_CONSISTENCY } else { MEAN_DEVIATION_CONSISTENCY * scratch.iter().sum::<f64>() / scratch.len() as f64 };
        // All values equal: the floor turns any change into a large, finite score.
        let scale = scale.max(deviation_floor(median));
        let score = (value - median) / scale;
        let reach = self.threshold * scale;
        Some(Assessment { score, low: Some(median - reach), high: Some(median + reach), anomalous: score.abs() > self.threshold })
    }

    /// Adds `value`, forgetting the oldest values beyond the window. Anomalous values enter
    /// too: the median ignores a minority of outliers, and a lasting shift is learnt once it
    /// fills half the window.
    pub fn update(&self, recent: &mut RecentValues, value: f64) {
        recent.values.push_back(value);
        while recent.values.len() > self.window {
            recent.values.pop_front();
        }
    }
}

/// The median of `values`, which it reorders; `None` if empty. Linear time (selection, not sorting).
pub fn median_in_place(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let (length, middle) = (values.len(), values.len() / 2);
    let (lower, upper, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    let upper = *upper;
    if length % 2 == 1 {
        return Some(upper);
    }
    let lower = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // Halving first keeps the mean of two huge values finite.
    Some(lower / 2.0 + upper / 2.0)
}
