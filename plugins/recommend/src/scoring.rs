//! Scoring item pairs with Dunning's log-likelihood ratio, and picking an item's best partners.

use crate::Cooccurrences;

/// `x · ln x`, with `0 · ln 0 = 0` (its limit), so that empty cells contribute nothing.
fn x_log_x(x: f64) -> f64 {
    if x <= 0.0 { 0.0 } else { x * x.ln() }
}

/// Unnormalised Shannon entropy of counts: `N · H(counts / N)`. Written as differences of
/// `x ln x` rather than with ratios, which stays accurate for very unequal counts.
fn entropy(counts: &[f64]) -> f64 {
    x_log_x(counts.iter().sum()) - counts.iter().copied().map(x_log_x).sum::<f64>()
}

/// Dunning's log-likelihood ratio (G² statistic) of a 2×2 contingency table: `k11` both
/// events, `k12` the first without the second, `k21` the second without the first, `k22`
/// neither. Zero for independent events; large when the events are associated (either way).
pub fn llr(k11: u64, k12: u64, k21: u64, k22: u64) -> f64 {
    let [k11, k12, k21, k22] = [k11, k12, k21, k22].map(|k| k as f64);
    let row_entropy = entropy(&[k11 + k12, k21 + k22]);
    let column_entropy = entropy(&[k11 + k21, k12 + k22]);
    let matrix_entropy = entropy(&[k11, k12, k21, k22]);
    // Rounding can make an independent table's statistic slightly negative.
    (2.0 * (row_entropy + column_entropy - matrix_entropy)).max(0.0)
}

/// Whether the events occur together more often than independence predicts. The ratio is
/// also large for pairs that avoid each other; those make poor recommendations.
pub fn positively_associated(k11: u64, k12: u64, k21: u64, k22: u64) -> bool {
    u128::from(k11) * u128::from(k22) > u128::from(k12) * u128::from(k21)
}

/// An item related to another, with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Related {
    pub partner: u32,
    pub score: f64,
    pub cooccurrences: u32,
}

/// The `top_n` partners of `item` seen together at least `min_cooccurrence` times and
/// positively associated, best score first, ties by item id. Work is bounded by the row cap.
pub fn top_related(matrix: &Cooccurrences, item: u32, top_n: usize, min_cooccurrence: u32) -> Vec<Related> {
    let row_observations = matrix.observations(item);
    let total = matrix.total();
    let mut candidates: Vec<Related> = matrix
        .partners(item)
        .iter()
        .filter(|cell| cell.count >= min_cooccurrence && cell.partner != item)
        .filter_map(|cell| {
            let k11 = u64::from(cell.count);
            let k12 = row_observations.saturating_sub(k11);
            let partner_observations = matrix.observations(cell.partner);
            let k21 = partner_observations.saturating_sub(k11);
            let k22 = total.saturating_sub(row_observations).saturating_sub(partner_observations).saturating_add(k11);
            positively_associated(k11, k12, k21, k22).then(|| Related {
                partner: cell.partner,
                score: llr(k11, k12, k21, k22),
                cooccurrences: cell.count,
            })
        })
        .collect();
    let best_first = |a: &Related, b: &Related| b.score.total_cmp(&a.score).then_with(|| matrix.id(a.partner).cmp(matrix.id(b.partner)));
    // Partial selection first: a row may hold hundreds of partners for a handful of results.
    if candidates.len() > top_n {
        candidates.select_nth_unstable_by(top_n, best_first);
        candidates.truncate(top_n);
    }
    candidates.sort_by(best_first);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn llr_matches_known_values() {
        assert!(close(llr(1, 0, 0, 1), 2.7725887, 1e-6), "{}", llr(1, 0, 0, 1));
        assert!(close(llr(10, 0, 0, 10), 27.725887, 1e-5), "{}", llr(10, 0, 0, 10));
        // Reference values of Mahout's LogLikelihoodTest, checked against 2·Σ O·ln(O/E).
        assert!(close(llr(5, 1995, 0, 100_000), 39.33052, 1e-5));
        assert!(close(llr(1000, 1995, 1000, 100_000), 4730.737, 1e-3));
        assert!(close(llr(1000, 1000, 1000, 100_000), 5734.343, 1e-3));
        assert!(close(llr(1000, 1000, 1000, 99_000), 5714.932, 1e-3));
        assert!(close(llr(2, 1, 2, 5), 1.2653741, 1e-6));
    }

    #[test]
    fn llr_is_zero_for_independent_and_empty_tables() {
        assert_eq!(llr(1, 1, 1, 1), 0.0);
        assert!(close(llr(2, 4, 3, 6), 0.0, 1e-12));
        assert_eq!(llr(0, 0, 0, 0), 0.0);
        assert_eq!(llr(0, 5, 0, 7), 0.0);
    }

    #[test]
    fn association_direction_is_told_apart() {
        assert!(positively_associated(10, 0, 0, 10));
        assert!(!positively_associated(0, 10, 10, 0), "avoiding pairs score high but are not related");
        assert!(close(llr(0, 10, 10, 0), llr(10, 0, 0, 10), 1e-9));
        assert!(!positively_associated(1, 1, 1, 1));
    }

    proptest! {
        #[test]
        fn llr_is_finite_non_negative_and_symmetric(k11 in 0u64..5000, k12 in 0u64..5000, k21 in 0u64..5000, k22 in 0u64..100_000) {
            let score = llr(k11, k12, k21, k22);
            prop_assert!(score.is_finite() && score >= 0.0);
            let tolerance = 1e-9 * (1.0 + score);
            // Swapping the two events transposes the table; swapping "yes" and "no" mirrors it.
            prop_assert!(close(llr(k11, k21, k12, k22), score, tolerance));
            prop_assert!(close(llr(k22, k21, k12, k11), score, tolerance));
            prop_assert!(close(llr(k12, k11, k22, k21), score, tolerance));
        }
    }
}
