//! The cumulative mean: the mean of all of a key's values so far, in constant state.

use serde::{Deserialize, Serialize};
use sluice_sdk::numeric::CompensatedSum;

/// The sum and count of a key's values, and their running mean for when the sum overflows
/// (values near `f64::MAX`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CumulativeMean {
    sum: CompensatedSum,
    count: u64,
    running: f64,
}

impl CumulativeMean {
    pub fn add(&mut self, x: f64) {
        self.sum.add(x);
        self.count += 1;
        let count = self.count as f64;
        // In the form that is exact for equal values, unless the difference overflows.
        let running = self.running + (x - self.running) / count;
        self.running = if running.is_finite() { running } else { self.running * ((count - 1.0) / count) + x / count };
    }

    /// The mean; `None` before any value.
    pub fn mean(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The compensated sum is the more accurate while it fits.
        let mean = self.sum.value() / self.count as f64;
        Some(if mean.is_finite() { mean } else { self.running })
    }
}
