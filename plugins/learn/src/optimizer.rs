//! The optimisers: plain SGD (as river's `optim.SGD` inside `LogisticRegression` /
//! `LinearRegression`) and per-coordinate FTRL-proximal (McMahan et al., "Ad click prediction:
//! a view from the trenches", KDD 2013, algorithm 1).

use serde::{Deserialize, Serialize};

/// The largest absolute loss gradient applied (river's `clip_gradient` default).
pub const CLIP_GRADIENT: f64 = 1e12;

/// A checked optimiser configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `w ← w − η_t (g·x + l2·w)` for each feature present; the intercept steps by `learning_rate`.
    Sgd { learning_rate: f64, schedule: Schedule, l2: f64 },
    /// Per coordinate: `σ = (√(n + g²) − √n) / α`, `z ← z + g − σ·w`, `n ← n + g²`,
    /// `w = 0` if `|z| ≤ l1`, else `−(z − sign(z)·l1) / ((β + √n) / α + l2)`.
    Ftrl { alpha: f64, beta: f64, l1: f64, l2: f64 },
}

/// How SGD's step size changes with the number of updates `t` (0 for the first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// `η_t = learning_rate`.
    Constant,
    /// `η_t = learning_rate / (t + 1)^power_t` (river's `optim.schedulers.InverseScaling`).
    InverseScaling { power_t: f64 },
}

impl Optimizer {
    pub fn is_ftrl(&self) -> bool {
        matches!(self, Optimizer::Ftrl { .. })
    }
}

/// SGD's step size for the update numbered `t` from 0.
pub fn sgd_rate(learning_rate: f64, schedule: Schedule, t: u64) -> f64 {
    match schedule {
        Schedule::Constant => learning_rate,
        Schedule::InverseScaling { power_t } => learning_rate / ((t as f64) + 1.0).powf(power_t),
    }
}

/// One FTRL coordinate's accumulators, and the weight they give.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FtrlCoordinate {
    pub weight: f64,
    pub z: f64,
    pub n: f64,
}

/// The FTRL settings of one update.
#[derive(Debug, Clone, Copy)]
pub struct FtrlSettings {
    pub alpha: f64,
    pub beta: f64,
    pub l1: f64,
    pub l2: f64,
}

impl FtrlCoordinate {
    /// Applies the gradient `g` of this coordinate, then recomputes its weight: the weight the
    /// paper computes lazily before the next prediction.
    pub fn step(&mut self, g: f64, settings: FtrlSettings) {
        let sigma = ((self.n + g * g).sqrt() - self.n.sqrt()) / settings.alpha;
        self.z += g - sigma * self.weight;
        self.n += g * g;
        self.weight = if self.z.abs() <= settings.l1 {
            0.0
        } else {
            -(self.z - self.z.signum() * settings.l1) / ((settings.beta + self.n.sqrt()) / settings.alpha + settings.l2)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_scaling_divides_by_a_power_of_the_update_count() {
        assert_eq!(sgd_rate(0.1, Schedule::Constant, 99), 0.1);
        assert_eq!(sgd_rate(0.1, Schedule::InverseScaling { power_t: 0.5 }, 0), 0.1);
        assert!((sgd_rate(0.1, Schedule::InverseScaling { power_t: 0.5 }, 3) - 0.05).abs() < 1e-15);
    }

    #[test]
    fn an_ftrl_step_follows_the_closed_form() {
        let settings = FtrlSettings { alpha: 0.5, beta: 1.0, l1: 0.0, l2: 0.0 };
        let mut coordinate = FtrlCoordinate::default();
        coordinate.step(0.8, settings);
        // σ = 0.8 / 0.5, z = 0.8, n = 0.64, w = −0.8 / ((1 + 0.8) / 0.5)
        assert!((coordinate.weight + 0.8 / 3.6).abs() < 1e-15, "{coordinate:?}");
        let mut sparse = FtrlCoordinate::default();
        sparse.step(0.8, FtrlSettings { l1: 1.0, ..settings });
        assert_eq!(sparse.weight, 0.0, "|z| ≤ l1 keeps the weight at exactly 0");
    }
}
