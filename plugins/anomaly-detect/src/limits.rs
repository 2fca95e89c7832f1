//! The fixed-limit detectors: `threshold` (bounds on the value) and `rate-of-change` (bounds
//! on the change from the key's previous value).

use serde::Deserialize;

use crate::detectors::Assessment;

/// `{ type = "threshold", min = 0, max = 100 }`: either bound or both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// The detector's name in alerts; defaults to `threshold`.
    pub name: Option<String>,
    /// Values below this are anomalies.
    pub min: Option<f64>,
    /// Values above this are anomalies.
    pub max: Option<f64>,
}

/// A checked `threshold` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    min: Option<f64>,
    max: Option<f64>,
}

impl ThresholdConfig {
    pub fn check(&self) -> Result<Threshold, String> {
        let (min, max) = (self.min, self.max);
        if min.is_none() && max.is_none() {
            return Err("set `min`, `max` or both".into());
        }
        check_finite("min", min)?;
        check_finite("max", max)?;
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(format!("`min` ({min}) is greater than `max` ({max})"));
        }
        Ok(Threshold { min, max })
    }
}

impl Threshold {
    /// The score is how far the value lies beyond the bound it crosses (negative below `min`), else 0.
    pub fn assess(&self, value: f64) -> Assessment {
        let above = self.max.filter(|max| value > *max).map(|max| value - max);
        let below = self.min.filter(|min| value < *min).map(|min| value - min);
        let score = above.or(below).unwrap_or(0.0);
        Assessment { score, low: self.min, high: self.max, anomalous: above.is_some() || below.is_some() }
    }
}

/// `{ type = "rate-of-change", change = "relative", max_increase = 0.5, max_decrease = 0.5 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOfChangeConfig {
    /// The detector's name in alerts; defaults to `rate-of-change`.
    pub name: Option<String>,
    /// How the change from the previous value is measured.
    #[serde(default)]
    pub change: ChangeKind,
    /// Largest rise that is not an anomaly (a fraction of |previous| for `relative`).
    pub max_increase: Option<f64>,
    /// Largest fall that is not an anomaly, as a positive number.
    pub max_decrease: Option<f64>,
}

/// How a change is measured.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// `(value - previous) / |previous|`: 0.5 is a 50% rise. After a previous 0, any change is
    /// infinitely large.
    #[default]
    Relative,
    /// `value - previous`, in the field's own unit.
    Absolute,
}

/// A checked `rate-of-change` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RateOfChange {
    change: ChangeKind,
    max_increase: Option<f64>,
    max_decrease: Option<f64>,
}

impl RateOfChangeConfig {
    pub fn check(&self) -> Result<RateOfChange, String> {
        if self.max_increase.is_none() && self.max_decrease.is_none() {
            return Err("set `max_increase`, `max_decrease` or both".into());
        }
        for (name, limit) in [("max_increase", self.max_increase), ("max_decrease", self.max_decrease)] {
            check_finite(name, limit)?;
            if limit.is_some_and(|limit| limit < 0.0) {
                return Err(format!("`{name}` must not be negative: write a fall as a positive `max_decrease`"));
            }
        }
        Ok(RateOfChange { change: self.change, max_increase: self.max_increase, max_decrease: self.max_decrease })
    }
}

impl RateOfChange {
    /// The score is the signed change (`None` without a previous value): infinite for a
    /// relative change from 0 (any change from 0 passes every limit; none is 0), and for a
    /// change too large for a double (`1e308` to `-1e308`).
    pub fn assess(&self, previous: Option<f64>, value: f64) -> Option<Assessment> {
        let previous = previous?;
        let unit = match self.change {
            ChangeKind::Relative => previous.abs(),
            ChangeKind::Absolute => 1.0,
        };
        let score = if value == previous { 0.0 } else { (value - previous) / unit };
        let rose_too_much = self.max_increase.is_some_and(|limit| score > limit);
        let fell_too_much = self.max_decrease.is_some_and(|limit| -score > limit);
        Some(Assessment {
            score,
            low: self.max_decrease.map(|limit| previous - limit * unit),
            high: self.max_increase.map(|limit| previous + limit * unit),
            anomalous: rose_too_much || fell_too_much,
        })
    }
}

fn check_finite(name: &str, limit: Option<f64>) -> Result<(), String> {
    match limit {
        Some(limit) if !limit.is_finite() => Err(format!("`{name}` must be a finite number, got {limit}")),
        _ => Ok(()),
    }
}
