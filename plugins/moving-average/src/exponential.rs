//! Exponential moving averages: a fixed weight per record (`alpha`), or a weight that grows
//! with the event time elapsed since the previous record (`half_life`).

use serde::{Deserialize, Serialize};

/// `ema = alpha * x + (1 - alpha) * ema` per record, in arrival order; the first record
/// starts the average at its value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByAlpha {
    value: Option<f64>,
}

impl ByAlpha {
    pub fn add(&mut self, x: f64, alpha: f64) {
        // This form (rather than `ema + alpha * (x - ema)`) cannot overflow for finite values.
        self.value = Some(self.value.map_or(x, |ema| alpha * x + (1.0 - alpha) * ema));
    }

    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

/// `ema = a * x + (1 - a) * ema` with `a = 1 - 2^(-Δt / half_life)`, Δt the event time since
/// the key's newest record: after one half-life, the old average weighs one half.
///
/// Records of the same event time count as one step with their mean, whatever their arrival
/// order (a step of Δt = 0 would otherwise give the later ones no weight at all). A record
/// older than the newest one counts as if it had that newest time: the average cannot be
/// rewound, and such a record is not lost either.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByHalfLife {
    newest: Option<NewestStep>,
}

/// The step of the newest event time: kept open, as more records of that time may arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NewestStep {
    timestamp: i64,
    /// The average before this step; `None` when this step is the key's first.
    before: Option<f64>,
    /// The weight `a` of this step.
    weight: f64,
    /// The mean of the values of this time, and how many there are.
    mean: f64,
    count: u64,
}

impl ByHalfLife {
    pub fn add(&mut self, timestamp: i64, x: f64, half_life: i64) {
        if let Some(step) = &mut self.newest
            && timestamp <= step.timestamp
        {
            step.add_simultaneous(x);
            return;
        }
        let weight = self.newest.as_ref().map_or(1.0, |step| step_weight(timestamp.saturating_sub(step.timestamp), half_life));
        let before = self.value();
        self.newest = Some(NewestStep { timestamp, before, weight, mean: x, count: 1 });
    }

    pub fn value(&self) -> Option<f64> {
        let step = self.newest.as_ref()?;
        Some(step.before.map_or(step.mean, |before| step.weight * step.mean + (1.0 - step.weight) * before))
    }
}

impl NewestStep {
    fn add_simultaneous(&mut self, x: f64) {
        self.count += 1;
        let count = self.count as f64;
        // A running mean rather than a sum, so that it cannot overflow; and in the form that
        // is exact for equal values, unless the difference overflows (values near f64::MAX).
        let mean = self.mean + (x - self.mean) / count;
        self.mean = if mean.is_finite() { mean } else { self.mean * ((count - 1.0) / count) + x / count };
    }
}

/// `1 - 2^(-gap / half_life)`, accurate for gaps much shorter than the half-life too.
pub fn step_weight(gap: i64, half_life: i64) -> f64 {
    let half_lives = gap as f64 / half_life as f64;
    -(-half_lives * std::f64::consts::LN_2).exp_m1()
}
