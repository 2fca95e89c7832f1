//! The cumulative mean: the mean of all of a key's values so far, in constant state.

use serde::{Deserialize, Serialize};
use sluice_sdk::numeric::CompensatedSum;

/// The sum and count of a key's values. The sum is kept divided by 2^`halvings`: it is halved
/// (exactly) whenever the next value would make it overflow, so that values near `f64::MAX`
/// that cancel later still give their mean (a running mean loses it to cancellation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CumulativeMean {
    sum: CompensatedSum,
    count: u64,
    halvings: i32,
}

/// The most halvings: 2^64 values of `f64::MAX` fit below 2^1024 × 2^65.
const MOST_HALVINGS: i32 = 65;

impl CumulativeMean {
    /// The state of a mean kept before version 3 (a sum, and a running mean for when the sum
    /// overflowed): the sum when it is finite, else the running mean times the count, halved
    /// until it fits.
    pub fn from_version_2(sum: CompensatedSum, count: u64, running: f64) -> CumulativeMean {
        if sum.is_finite() {
            return CumulativeMean { sum, count, halvings: 0 };
        }
        let mut halvings = 0;
        let mut scaled = running * count as f64;
        while !scaled.is_finite() && halvings < MOST_HALVINGS {
            halvings += 1;
            scaled = running * (count as f64 * 0.5f64.powi(halvings));
        }
        let mut sum = CompensatedSum::default();
        sum.add(scaled);
        CumulativeMean { sum, count, halvings }
    }

    pub fn add(&mut self, x: f64) {
        self.count += 1;
        loop {
            let mut next = self.sum;
            next.add(x * 0.5f64.powi(self.halvings));
            if next.is_finite() || self.halvings >= MOST_HALVINGS {
                self.sum = next;
                return;
            }
            self.halvings += 1;
            self.sum.scale(0.5);
        }
    }

    /// The mean; `None` before any value.
    pub fn mean(&self) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // Divided first: the mean of finite values is within range, the sum may not be.
        let mean = self.sum.value() / self.count as f64 * 2f64.powi(self.halvings);
        mean.is_finite().then_some(mean)
    }
}
