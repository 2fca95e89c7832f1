//! Numerically careful arithmetic for aggregates: compensated sums, and exact sums and moments
//! whose results do not depend on the order of their values.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

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

    /// Whether the sum and its compensation are finite: an addition that overflowed leaves
    /// them infinite or NaN, and no later value brings the sum back.
    pub fn is_finite(&self) -> bool {
        self.sum.is_finite() && self.compensation.is_finite()
    }

    /// Multiplies the sum by `factor`: exact for a power of two, as long as no part becomes
    /// subnormal or overflows.
    pub fn scale(&mut self, factor: f64) {
        self.sum *= factor;
        self.compensation *= factor;
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

    /// The exact sum divided by `divisor` (at least 1), correctly rounded (half to even), as
    /// Python's `statistics.fmean` of the exact values would be: `8.0 + 1.6 + 2.7` over 3 is
    /// `4.1`, where dividing the rounded sum gives `4.1000000000000005`. `None` if the sum
    /// overflowed.
    pub fn quotient(&self, divisor: u64) -> Option<f64> {
        self.divided_by(u128::from(divisor))
    }

    fn divided_by(&self, divisor: u128) -> Option<f64> {
        let estimate = self.value()? / divisor as f64;
        let Some(divisor) = ExactInteger::of(divisor) else { return Some(estimate) };
        Some(correctly_rounded(estimate, |multiple| self.sign_past(&divisor.times(multiple))))
    }

    /// The sign of this sum minus the exact sum of `parts`; `None` past the range.
    fn sign_past(&self, parts: &[f64]) -> Option<Ordering> {
        let mut difference = self.clone();
        parts.iter().for_each(|part| difference.add(-part));
        difference.value()?.partial_cmp(&0.0)
    }
}

/// A positive integer as the exact sum of two doubles, for the exact products that decide a
/// rounding.
struct ExactInteger {
    high: f64,
    low: f64,
}

impl ExactInteger {
    /// `None` from 2^106 on, where two doubles may not hold it exactly.
    fn of(n: u128) -> Option<ExactInteger> {
        let high = n as f64;
        let low = i128::try_from(n).ok()?.checked_sub(high as i128)?;
        (n < 1 << 106).then_some(ExactInteger { high, low: low as f64 })
    }

    /// The parts whose exact sum is this integer times the exact sum of `parts`.
    fn times(&self, parts: &[f64]) -> Vec<f64> {
        exact_products(parts, &[self.high, self.low])
    }
}

/// The parts whose exact sum is the product of the exact sums of `left` and `right`.
fn exact_products(left: &[f64], right: &[f64]) -> Vec<f64> {
    let mut parts = Vec::with_capacity(left.len() * right.len() * 2);
    for a in left {
        for b in right {
            let (product, error) = two_product(*a, *b);
            parts.extend([product, error]);
        }
    }
    parts
}

/// Within these magnitudes `two_product` is exact (its splitting does not overflow, its error
/// term does not fall among the subnormals), so the checks that round are exact too. Zero is
/// outside: an estimate of zero is exact (a zero sum) or an underflow left as it is.
fn products_are_exact(x: f64) -> bool {
    (1e-100..1e100).contains(&x.abs())
}

/// Rounds a real number `x` to the nearest double, half to even, from an `estimate` an ulp or
/// two away and `sign_past(m)`, the sign of `x − m` for `m` the exact sum of one or two
/// doubles. An estimate past the range where the checks are exact is returned as it is.
fn correctly_rounded(estimate: f64, sign_past: impl Fn(&[f64]) -> Option<Ordering>) -> f64 {
    if !products_are_exact(estimate) {
        return estimate;
    }
    let mut rounded = estimate;
    for _ in 0..4 {
        let Some(side) = sign_past(&[rounded]) else { return estimate };
        let neighbour = match side {
            Ordering::Equal => return rounded,
            Ordering::Greater => rounded.next_up(),
            Ordering::Less => rounded.next_down(),
        };
        // Adjacent doubles differ by a power of two, so the half-way point is exact.
        let half = (neighbour - rounded) / 2.0;
        match sign_past(&[rounded, half]) {
            None => return estimate,
            Some(Ordering::Equal) if rounded.to_bits() & 1 == 0 => return rounded,
            Some(Ordering::Equal) => return neighbour,
            Some(past) if past == side => rounded = neighbour,
            Some(_) => return rounded,
        }
    }
    rounded
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

    /// The sample variance (n − 1), correctly rounded; `None` with fewer than two values or
    /// when it overflows.
    pub fn sample_variance(&self) -> Option<f64> {
        let (numerator, pairs) = self.variance_terms()?;
        let variance = numerator.divided_by(pairs)?;
        variance.is_finite().then_some(variance.max(0.0))
    }

    /// The sample standard deviation, the square root of the exact sample variance correctly
    /// rounded (not the rounded variance's root, which may be an ulp away); `None` as for
    /// [`ExactMoments::sample_variance`].
    pub fn sample_stddev(&self) -> Option<f64> {
        let (numerator, pairs) = self.variance_terms()?;
        let estimate = numerator.divided_by(pairs)?.max(0.0).sqrt();
        if !estimate.is_finite() {
            return None;
        }
        let Some(pairs) = ExactInteger::of(pairs) else { return Some(estimate) };
        // x = √(numerator / pairs) against m ≥ 0: the sign of numerator − m² · pairs.
        Some(correctly_rounded(estimate, |root| numerator.sign_past(&pairs.times(&exact_products(root, root)))))
    }

    /// `n·Σx² − (Σx)²` exactly, and `n·(n − 1)`: the variance is their quotient.
    fn variance_terms(&self) -> Option<(ExactSum, u128)> {
        if self.count < 2 {
            return None;
        }
        let (sum, squares) = (self.sum.parts()?, self.squares.parts()?);
        let count = self.count as f64;
        let mut numerator = ExactSum::default();
        exact_products(squares, &[count]).into_iter().for_each(|part| numerator.add(part));
        exact_products(sum, sum).into_iter().for_each(|part| numerator.add(-part));
        Some((numerator, u128::from(self.count) * u128::from(self.count - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::{CompensatedSum, ExactMoments, ExactSum};
    use proptest::prelude::*;

    /// `numerator / denominator` correctly rounded (half to even), by integer long division:
    /// the independent computation the rounding of quotients is checked against.
    fn ratio_rounded(numerator: u128, denominator: u128) -> f64 {
        if numerator == 0 {
            return 0.0;
        }
        // A quotient of 54 bits: 53 kept, one to round with, and whether anything is left.
        let mut shift = 53 + denominator.ilog2() as i32 - numerator.ilog2() as i32;
        let (quotient, exact) = loop {
            let (top, bottom) = if shift >= 0 { (numerator << shift, denominator) } else { (numerator, denominator << -shift) };
            match top / bottom {
                quotient if quotient < 1 << 53 => shift += 1,
                quotient if quotient >= 1 << 54 => shift -= 1,
                quotient => break (quotient, top.is_multiple_of(bottom)),
            }
        };
        finish_rounding(quotient, exact, 1 - shift)
    }

    /// `√(numerator / denominator)` correctly rounded, by an integer square root.
    fn root_rounded(numerator: u128, denominator: u128) -> f64 {
        if numerator == 0 {
            return 0.0;
        }
        let mut half_shift = (107 + denominator.ilog2() as i32 - numerator.ilog2() as i32) / 2;
        let (root, exact) = loop {
            let scaled = numerator << (2 * half_shift);
            match (scaled / denominator).isqrt() {
                root if root < 1 << 53 => half_shift += 1,
                root if root >= 1 << 54 => half_shift -= 1,
                root => break (root, scaled.is_multiple_of(denominator) && root * root == scaled / denominator),
            }
        };
        finish_rounding(root, exact, 1 - half_shift)
    }

    /// The double of a 54-bit `value` × 2^(exponent − 1), its last bit and `exact` deciding.
    fn finish_rounding(value: u128, exact: bool, exponent: i32) -> f64 {
        let (mut kept, round) = (value >> 1, value & 1 == 1);
        if round && (!exact || kept & 1 == 1) {
            kept += 1;
        }
        kept as f64 * 2f64.powi(exponent)
    }

    proptest! {
        /// Means, variances and standard deviations are the exact values correctly rounded:
        /// values of sixteenths, so that the exact values are ratios of integers.
        #[test]
        fn means_variances_and_deviations_are_rounded_once(sixteenths in prop::collection::vec(-(1i64 << 36)..(1i64 << 36), 2..40)) {
            let mut moments = ExactMoments::default();
            let mut sum = ExactSum::default();
            for value in &sixteenths {
                moments.add(*value as f64 / 16.0);
                sum.add(*value as f64 / 16.0);
            }
            let n = sixteenths.len() as i128;
            let total: i128 = sixteenths.iter().map(|value| i128::from(*value)).sum();
            let squares: i128 = sixteenths.iter().map(|value| i128::from(*value).pow(2)).sum();
            let mean = ratio_rounded(total.unsigned_abs(), 16 * n as u128).copysign(total as f64);
            prop_assert_eq!(sum.quotient(n as u64), Some(if total == 0 { 0.0 } else { mean }));
            let (numerator, denominator) = ((n * squares - total * total) as u128, 256 * (n * (n - 1)) as u128);
            prop_assert_eq!(moments.sample_variance(), Some(ratio_rounded(numerator, denominator)));
            prop_assert_eq!(moments.sample_stddev(), Some(root_rounded(numerator, denominator)));
        }
    }

    #[test]
    fn a_mean_or_variance_rounds_once_where_dividing_the_rounded_sum_would_not() {
        let mut mean = ExactSum::default();
        [8.0, 1.6, 2.7].iter().for_each(|x| mean.add(*x));
        assert_eq!((mean.value().unwrap() / 3.0, mean.quotient(3)), (4.1000000000000005, Some(4.1)));
        let mut moments = ExactMoments::default();
        [8.0, 7.0, 2.6].iter().for_each(|x| moments.add(*x));
        assert_eq!(moments.sample_variance(), Some(8.253333333333334));
        // Half-way between two doubles: to the even one, 2^53 rather than 2^53 + 2, and
        // 2^53 + 4 rather than 2^53 + 2.
        for (odd, expected) in [(2.0, 9_007_199_254_740_992.0), (6.0, 9_007_199_254_740_996.0)] {
            let mut tie = ExactSum::default();
            [18_014_398_509_481_984.0, odd].iter().for_each(|x| tie.add(*x));
            assert_eq!(tie.quotient(2), Some(expected));
        }
        // Past the range where the checks are exact, the quotient is the rounded sum's.
        let mut huge = ExactSum::default();
        [1e300, 2e300].iter().for_each(|x| huge.add(*x));
        assert_eq!(huge.quotient(3), Some(3e300 / 3.0));
    }

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
