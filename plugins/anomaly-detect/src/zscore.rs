//! The `zscore` detector: distance from an exponentially weighted mean, in standard deviations.

use serde::{Deserialize, Serialize};
use sluice_sdk::Millis;

use crate::detectors::{Assessment, deviation_floor};

/// `{ type = "zscore", alpha = 0.05, threshold = 3.0 }`, or `half_life = "10m"` instead of `alpha`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZscoreConfig {
    /// The detector's name in alerts; defaults to `zscore`.
    pub name: Option<String>,
    /// Weight of each new value, between 0 and 1 exclusive; 0.05 when neither this nor
    /// `half_life` is set.
    pub alpha: Option<f64>,
    /// Event time after which a value's weight has halved; an alternative to `alpha`.
    pub half_life: Option<Millis>,
    /// Largest |z| that is not an anomaly.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
}

fn default_threshold() -> f64 {
    3.0
}

const DEFAULT_ALPHA: f64 = 0.05;

/// How older values lose weight.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Decay {
    /// Each new value keeps `1 - alpha` of the weight of those before it.
    PerValue { alpha: f64 },
    /// Weights halve every `half_life_ms` of event time.
    HalfLife { half_life_ms: f64 },
}

/// A checked `zscore` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Zscore {
    decay: Decay,
    threshold: f64,
}

impl ZscoreConfig {
    pub fn check(&self) -> Result<Zscore, String> {
        let decay = match (self.alpha, self.half_life) {
            (Some(_), Some(_)) => return Err("set either `alpha` or `half_life`, not both".into()),
            (Some(alpha), None) if alpha > 0.0 && alpha < 1.0 => Decay::PerValue { alpha },
            (Some(alpha), None) => return Err(format!("`alpha` must be between 0 and 1 (exclusive), got {alpha}")),
            (None, Some(half_life)) if half_life.0 > 0 => Decay::HalfLife { half_life_ms: half_life.0 as f64 },
            (None, Some(_)) => return Err("`half_life` must be positive".into()),
            (None, None) => Decay::PerValue { alpha: DEFAULT_ALPHA },
        };
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(format!("`threshold` must be a positive number, got {}", self.threshold));
        }
        Ok(Zscore { decay, threshold: self.threshold })
    }
}

/// Exponentially weighted mean and variance of one key's values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightedMoments {
    /// Total weight of the values seen, after decay; 0 before the first value.
    weight: f64,
    mean: f64,
    variance: f64,
    /// Newest event time seen, from which half-life decay is measured.
    newest_timestamp: i64,
}

impl Zscore {
    /// Scores `value` against the moments learnt so far; `None` before the first value.
    pub fn assess(&self, moments: &WeightedMoments, value: f64) -> Option<Assessment> {
        if moments.weight <= 0.0 {
            return None;
        }
        // A constant series has no spread: the floor turns any change into a large, finite score.
        let deviation = moments.variance.sqrt().max(deviation_floor(moments.mean));
        let score = (value - moments.mean) / deviation;
        let reach = self.threshold * deviation;
        Some(Assessment {
            score,
            low: Some(moments.mean - reach),
            high: Some(moments.mean + reach),
            anomalous: score.abs() > self.threshold,
        })
    }

    /// Adds `value` to the moments (West's weighted update, free of the cancellation of
    /// sum-of-squares formulas).
    pub fn update(&self, moments: &mut WeightedMoments, value: f64, timestamp: i64, assessment: Option<&Assessment>) {
        // An alerting value enters clipped to the edge of the expected range: a lone spike
        // barely moves the statistics, yet a lasting level shift is learnt, a bounded step at
        // a time. Not so after values without spread (a constant series): the range has no
        // width then, and clipping to it would never let a new level be learnt.
        let spread = moments.variance.sqrt() > deviation_floor(moments.mean);
        let value = match assessment {
            Some(assessment) if assessment.anomalous && spread => clip(value, assessment),
            _ => value,
        };
        let first = moments.weight <= 0.0;
        moments.weight = moments.weight * self.retained_weight(moments, timestamp) + 1.0;
        // Dividing by the total weight rather than using `alpha` directly makes the first
        // values weigh alike, so early statistics are not biased towards the first value.
        let share = 1.0 / moments.weight;
        let difference = value - moments.mean;
        let increment = share * difference;
        moments.mean += increment;
        moments.variance = (1.0 - share) * (moments.variance + difference * increment);
        moments.newest_timestamp = if first { timestamp } else { moments.newest_timestamp.max(timestamp) };
        // Values near the limits of f64 can overflow the moments: start again from this value
        // rather than carry infinities or NaN forever.
        if !(moments.weight.is_finite() && moments.mean.is_finite() && moments.variance.is_finite()) {
            *moments = WeightedMoments { weight: 1.0, mean: value, variance: 0.0, newest_timestamp: timestamp };
        }
    }

    /// The fraction of the accumulated weight that remains when a value at `timestamp` arrives.
    fn retained_weight(&self, moments: &WeightedMoments, timestamp: i64) -> f64 {
        match self.decay {
            Decay::PerValue { alpha } => 1.0 - alpha,
            Decay::HalfLife { half_life_ms } => {
                // Out-of-order values decay nothing: they count as arriving at the newest time.
                let elapsed = timestamp.saturating_sub(moments.newest_timestamp).max(0) as f64;
                (-elapsed / half_life_ms).exp2()
            }
        }
    }
}

fn clip(value: f64, assessment: &Assessment) -> f64 {
    let value = assessment.low.map_or(value, |low| value.max(low));
    assessment.high.map_or(value, |high| value.min(high))
}
