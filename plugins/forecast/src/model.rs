//! Additive Holt-Winters: the smoothing parameters, the simple initialisation and the recursions,
//! written as statsmodels' `ExponentialSmoothing` computes them.

use serde::{Deserialize, Serialize};

/// The checked smoothing parameters and the shape of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameters {
    /// Level smoothing, in [0, 1].
    pub alpha: f64,
    /// Trend smoothing (statsmodels' `smoothing_trend`, FPP's β*); `None`: no trend.
    pub beta: Option<f64>,
    /// Season smoothing, in [0, 1]; unused without a season.
    pub gamma: f64,
    /// Points per season; 0: no season.
    pub season_length: usize,
}

impl Parameters {
    /// How many points the simple initialisation needs: two seasons with a trend, one season
    /// without, and without a season two points with a trend, one without.
    pub fn warm_up_length(&self) -> usize {
        match (self.season_length, self.beta.is_some()) {
            (0, true) => 2,
            (0, false) => 1,
            (m, true) => 2 * m,
            (m, false) => m,
        }
    }

    /// The factor of the one-step variance in the variance of the `h`-step forecast error, for
    /// h = 1..=`horizon`: 1 + Σ_{j=1}^{h-1} c_j², c_j = α(1 + jβ*) + γ·[j mod m = 0]
    /// (Hyndman & Athanasopoulos, FPP3, table of ETS(A,A,A) variances, whose β is α·β*).
    pub fn variance_factors(&self, horizon: usize) -> Vec<f64> {
        let beta = self.beta.unwrap_or(0.0);
        let mut factors = Vec::with_capacity(horizon);
        let mut factor = 1.0;
        for h in 1..=horizon {
            factors.push(factor);
            let j = h as f64;
            let seasonal = if self.season_length > 0 && h % self.season_length == 0 { self.gamma } else { 0.0 };
            let c = self.alpha * (1.0 + j * beta) + seasonal;
            factor += c * c;
        }
        factors
    }
}

/// The state of one series: level, trend and the latest seasonal of each phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub level: f64,
    /// 0 without a trend.
    pub trend: f64,
    /// One per phase of the season (empty without a season).
    pub seasonals: Vec<f64>,
    /// The phase of the next point: `seasonals[phase]` is its seasonal.
    pub phase: usize,
}

impl Model {
    /// statsmodels' "simple" initialisation from the first `warm_up_length` points: with a season
    /// of m, level = mean(y[..m]), trend = mean((y[m..2m] - y[..m]) / m), seasonals =
    /// y[..m] - level; without, level = y0 and trend = y1 - y0. The recursions then run from y0.
    pub fn initial(points: &[f64], parameters: &Parameters) -> Model {
        let m = parameters.season_length;
        let has_trend = parameters.beta.is_some();
        let point = |index: usize| points.get(index).copied().unwrap_or(0.0);
        if m == 0 {
            let trend = if has_trend { point(1) - point(0) } else { 0.0 };
            return Model { level: point(0), trend, seasonals: Vec::new(), phase: 0 };
        }
        let level = mean((0..m).map(point));
        let trend = if has_trend { mean((0..m).map(|i| (point(m + i) - point(i)) / m as f64)) } else { 0.0 };
        let seasonals = (0..m).map(|i| point(i) - level).collect();
        Model { level, trend, seasonals, phase: 0 }
    }

    /// The forecast of the point `h` steps ahead (h ≥ 1): level + h·trend + the latest seasonal
    /// of that point's phase.
    pub fn forecast(&self, h: usize) -> f64 {
        self.level + h as f64 * self.trend + self.seasonal(h - 1)
    }

    /// Learns the next point, as statsmodels' `_predict` does (same operations, same order):
    /// ℓ = α·y − α·s + (1 − α)(ℓ₋ + b₋); b = β(ℓ − ℓ₋) + (1 − β)b₋;
    /// s = γ·y − γ(ℓ₋ + b₋) + (1 − γ)s₋ₘ.
    pub fn learn(&mut self, y: f64, parameters: &Parameters) {
        let Parameters { alpha, beta, gamma, .. } = *parameters;
        let seasonal = self.seasonal(0);
        let base = self.level + self.trend;
        let level = alpha * y - alpha * seasonal + (1.0 - alpha) * base;
        if let Some(beta) = beta {
            self.trend = beta * (level - self.level) + (1.0 - beta) * self.trend;
        }
        let m = self.seasonals.len();
        if m > 0 {
            let phase = self.phase % m;
            self.seasonals[phase] = gamma * y - gamma * base + (1.0 - gamma) * seasonal;
            self.phase = (phase + 1) % m;
        }
        self.level = level;
    }

    /// Advances `steps` points without learning: what learning each point's own forecast would
    /// do (the error is 0, so the level moves by the trend and the seasonals stay), in O(1).
    pub fn skip(&mut self, steps: u64) {
        self.level += steps as f64 * self.trend;
        let m = self.seasonals.len() as u64;
        if m > 0 {
            self.phase = ((self.phase as u64 + steps % m) % m) as usize;
        }
    }

    /// Whether every component is a finite number.
    pub fn is_finite(&self) -> bool {
        self.level.is_finite() && self.trend.is_finite() && self.seasonals.iter().all(|seasonal| seasonal.is_finite())
    }

    /// The seasonal of the point `ahead` steps after the next one; 0 without a season.
    fn seasonal(&self, ahead: usize) -> f64 {
        match self.seasonals.len() {
            0 => 0.0,
            m => self.seasonals[(self.phase + ahead % m) % m],
        }
    }
}

fn mean(values: impl ExactSizeIterator<Item = f64>) -> f64 {
    let count = values.len().max(1) as f64;
    values.sum::<f64>() / count
}
