//! Numerically careful arithmetic for aggregates: compensated sums, and exact sums and moments
//! whose results do not depend on the order of their values.

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

/// An exact sum of floating-point numbers (Shewchuk's non-overlapping partials, as Python's
/// `math.fsum`): its value is the exact sum correctly rounded, so it does not depend on the
/// order of the values or on how partial sums were merged. Results of a parallel aggregation
/// are then the same at every parallelism and batch size, to the last bit. A sum that
/// overflows on the way (beyond ±1.8e308) has no value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactSum {
    /// Non-overlapping, in increasing magnitude; their exact sum is the sum.
    partials: Vec<f64>,
    overflowed: bool,
}

impl ExactSum {
    /// Adds `x` exactly; a value that is not finite makes the sum overflow.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.overflowed = true;
        }
        if self.overflowed {
            return;
        }
        let mut x = x;
        let mut kept = 0;
        for index in 0..self.partials.len() {
            let mut y = self.partials[index];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let high = x + y;
            let low = y - (high - x);
            if low != 0.0 {
                self.partials[kept] = low;
                kept += 1;
            }
            x = high;
        }
        if !x.is_finite() {
            self.overflowed = true;
            return;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    /// Adds another exact sum (a partial result).
    pub fn merge(&mut self, other: &ExactSum) {
        self.overflowed |= other.overflowed;
        for partial in &other.partials {
            self.add(*partial);
        }
    }

    /// The parts whose exact sum is the sum; `None` if it overflowed.
    pub fn parts(&self) -> Option<&[f64]> {
        (!self.overflowed).then_some(&self.partials)
    }

    /// The exact sum, correctly rounded (round half to even); `None` if it overflowed.
    pub fn value(&self) -> Option<f64> {
        if self.overflowed {
            return None;
        }
        let partials = &self.partials;
        let Some((&last, below)) = partials.split_last() else { return Some(0.0) };
        let (mut high, mut low) = (last, 0.0);
        let mut left = below.len();
        while left > 0 {
            left -= 1;
            let (x, y) = (high, below[left]);
            high = x + y;
            low = y - (high - x);
            if low != 0.0 {
                break;
            }
        }
        // Half-way cases: the partials below decide which way the rounding goes.
        if left > 0 && ((low < 0.0 && below[left - 1] < 0.0) || (low > 0.0 && below[left - 1] > 0.0)) {
            let twice = low * 2.0;
            let rounded = high + twice;
            if twice == rounded - high {
                high = rounded;
            }
        }
        high.is_finite().then_some(high)
    }
}

/// `a × b` exactly, as the rounded product and its error (Dekker's algorithm, without a
/// fused multiply-add, which WebAssembly lacks): exact when the product is finite.
pub fn two_product(a: f64, b: f64) -> (f64, f64) {
    fn split(x: f64) -> (f64, f64) {
        let scaled = 134_217_729.0 * x; // 2^27 + 1
        let high = scaled - (scaled - x);
        (high, x - high)
    }
    let product = a * b;
    let ((a_high, a_low), (b_high, b_low)) = (split(a), split(b));
    let error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low;
    (product, error)
}

/// Count, sum and sum of squares of numbers, each exact, so that the variance is the same
/// whatever the order of the values and the merges: `n·Σx² − (Σx)²` is computed exactly and
/// rounded once. Values whose square overflows (beyond about ±1.3e154) leave no variance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactMoments {
    count: u64,
    sum: ExactSum,
    squares: ExactSum,
}

impl ExactMoments {
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum.add(x);
        let (square, error) = two_product(x, x);
        self.squares.add(square);
        self.squares.add(error);
    }

    pub fn merge(&mut self, other: &ExactMoments) {
        self.count += other.count;
        self.sum.merge(&other.sum);
        self.squares.merge(&other.squares);
    }

    /// Moments of `count` values of this `mean` and sum of squared deviations `m2` (an older
    /// state's Welford moments), as nearly as floating point has them.
    pub fn from_welford(count: u64, mean: f64, m2: f64) -> ExactMoments {
        let mut moments = ExactMoments { count, ..ExactMoments::default() };
        if count > 0 {
            let (sum, sum_error) = two_product(mean, count as f64);
            moments.sum.add(sum);
            moments.sum.add(sum_error);
            let (square, square_error) = two_product(sum, mean);
            for part in [m2, square, square_error] {
                moments.squares.add(part);
            }
        }
        moments
    }

    /// The sample variance (n − 1); `None` with fewer than two values or when it overflows.
    pub fn sample_variance(&self) -> Option<f64> {
        if self.count < 2 {
            return None;
        }
        let (sum, squares) = (self.sum.parts()?, self.squares.parts()?);
        let count = self.count as f64;
        let mut numerator = ExactSum::default();
        for square in squares {
            let (high, low) = two_product(*square, count);
            numerator.add(high);
            numerator.add(low);
        }
        for a in sum {
            for b in sum {
                let (high, low) = two_product(*a, *b);
                numerator.add(-high);
                numerator.add(-low);
            }
        }
        let numerator = numerator.value()?.max(0.0);
        let variance = numerator / count / (count - 1.0);
        variance.is_finite().then_some(variance)
    }
}

#[cfg(test)]
mod tests {
    use super::{CompensatedSum, ExactMoments, ExactSum};

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

    #[test]
    fn an_exact_sum_is_the_correctly_rounded_sum_in_any_order() {
        let values = [1e16, 1.0, -1e16, 0.1, 0.2, 1e-300, 3.0e10, -7.25, 1e100, -1e100];
        let mut forward = ExactSum::default();
        values.iter().for_each(|x| forward.add(*x));
        let mut backward = ExactSum::default();
        values.iter().rev().for_each(|x| backward.add(*x));
        assert_eq!(forward.value(), backward.value());
        assert_eq!(forward.value(), Some(1.0 + 0.1 + 0.2 + 3.0e10 - 7.25));
        let (mut left, mut right) = (ExactSum::default(), ExactSum::default());
        values[..4].iter().for_each(|x| left.add(*x));
        values[4..].iter().for_each(|x| right.add(*x));
        right.merge(&left);
        assert_eq!(right.value(), forward.value());
        // 0.1 ten times is not 1.0 in floating point, but its exact sum rounds to it.
        let mut tenths = ExactSum::default();
        (0..10).for_each(|_| tenths.add(0.1));
        assert_eq!(tenths.value(), Some(1.0));
        let mut overflow = ExactSum::default();
        overflow.add(1.7e308);
        overflow.add(1.7e308);
        assert_eq!(overflow.value(), None);
    }

    #[test]
    fn exact_moments_give_one_variance_in_any_order_and_none_past_the_range() {
        let values: Vec<f64> = (0..1000).map(|n| 1e9 + f64::from(n) * 0.25).collect();
        let mut forward = ExactMoments::default();
        values.iter().for_each(|x| forward.add(*x));
        let mut merged = ExactMoments::default();
        for chunk in values.chunks(7).rev() {
            let mut part = ExactMoments::default();
            chunk.iter().rev().for_each(|x| part.add(*x));
            merged.merge(&part);
        }
        let variance = forward.sample_variance().expect("a variance");
        assert_eq!(Some(variance), merged.sample_variance());
        // (0.25)^2 × n(n+1)/12 for 0..n−1 evenly spaced: the exact value, to the last digits.
        let expected = 0.25f64 * 0.25 * 1000.0 * 1001.0 / 12.0;
        assert!((variance - expected).abs() / expected < 1e-12, "{variance} vs {expected}");
        let mut huge = ExactMoments::default();
        huge.add(1e308);
        huge.add(-1e308);
        assert_eq!(huge.sample_variance(), None);
        let mut one = ExactMoments::default();
        one.add(5.0);
        assert_eq!(one.sample_variance(), None);
        one.add(5.0);
        assert_eq!(one.sample_variance(), Some(0.0));
    }
}
