//! Online standardisation of a numeric feature: running mean and population variance by
//! Welford's method, updated exactly as river's `preprocessing.StandardScaler`.

use serde::{Deserialize, Serialize};

/// The running statistics of one numeric feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Welford {
    pub count: u64,
    pub mean: f64,
    /// The population variance (divided by `count`).
    pub variance: f64,
}

impl Welford {
    /// Learns `x` (river's `learn_one`, term for term, so that rounding agrees too).
    pub fn learn(&mut self, x: f64) {
        self.count += 1;
        let old_mean = self.mean;
        self.mean += (x - old_mean) / self.count as f64;
        self.variance += ((x - old_mean) * (x - self.mean) - self.variance) / self.count as f64;
    }

    /// `(x − mean) / sd`, or 0 while the variance is 0 (river's `transform_one`).
    pub fn standardize(&self, x: f64) -> f64 {
        if self.variance != 0.0 { (x - self.mean) / self.variance.sqrt() } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::Welford;

    #[test]
    fn mean_and_population_variance_match_the_direct_formulas() {
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut welford = Welford::default();
        assert_eq!(welford.standardize(3.0), 0.0, "no variance yet");
        values.iter().for_each(|x| welford.learn(*x));
        assert!((welford.mean - 5.0).abs() < 1e-12 && (welford.variance - 4.0).abs() < 1e-12, "{welford:?}");
        assert!((welford.standardize(9.0) - 2.0).abs() < 1e-12);
    }
}
