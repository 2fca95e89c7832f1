//! Numerically careful arithmetic for aggregates.

use serde::{Deserialize, Serialize};

/// A sum with Neumaier compensation: exact enough that `0.1 + 0.2 + ...` reads as expected,
/// and accurate when values of very different magnitudes cancel. Mergeable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    pub fn add(&mut self, x: f64) {
        let total = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - total) + x;
        } else {
            self.compensation += (x - total) + self.sum;
        }
        self.sum = total;
    }

    /// Adds another sum (a partial result).
    pub fn merge(&mut self, other: &CompensatedSum) {
        self.add(other.sum);
        self.compensation += other.compensation;
    }

    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[cfg(test)]
mod tests {
    use super::CompensatedSum;

    #[test]
    fn compensation_keeps_small_values_that_a_plain_sum_loses() {
        let mut sum = CompensatedSum::default();
        for x in [1e16, 1.0, -1e16, 0.1, 0.2] {
            sum.add(x);
        }
        assert!((sum.value() - 1.3).abs() < 1e-12, "{}", sum.value());
        let mut merged = CompensatedSum::default();
        merged.add(0.1);
        merged.merge(&sum);
        assert!((merged.value() - 1.4).abs() < 1e-12);
    }
}
