//! Seeding the centroids from the buffered points: greedy k-means++, then Lloyd iterations.

use serde::{Deserialize, Serialize};

/// At most this many Lloyd iterations refine the seeds (fewer when the assignment settles).
pub const LLOYD_ITERATIONS: usize = 10;

/// How many candidates greedy k-means++ draws for each next seed: 2 + ⌊ln k⌋, as scikit-learn.
pub fn candidates(k: usize) -> usize {
    2 + (k as f64).ln() as usize
}

/// The most passes the seeding makes that compare every held point with k centroids (or
/// candidates): per seed, one per candidate and one updating the distances (k-means++), then an
/// assignment before and one in each Lloyd iteration; 14 + ⌊ln k⌋.
pub fn passes(k: usize) -> usize {
    candidates(k) + 1 + 1 + LLOYD_ITERATIONS
}

/// The SplitMix64 generator: small, fast, and its whole state is one number kept in the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    pub state: u64,
}

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Centroids seeded from points, and where each point ended up.
#[derive(Debug, Clone, PartialEq)]
pub struct Seeding {
    /// k × d, row-major.
    pub centroids: Vec<f64>,
    /// The points assigned to each centroid.
    pub counts: Vec<f64>,
    /// Each point's centroid.
    pub assignment: Vec<usize>,
}

/// Seeds `k` centroids from `points` (n × `d`, row-major); `None` when they hold fewer than
/// `k` distinct points.
pub fn seed(points: &[f64], d: usize, k: usize, rng: &mut SplitMix64) -> Option<Seeding> {
    let mut centroids = k_means_plus_plus(points, d, k, rng)?;
    let mut assignment = vec![0; points.len() / d];
    assign(points, &centroids, d, &mut assignment);
    for _ in 0..LLOYD_ITERATIONS {
        move_to_means(points, &assignment, d, &mut centroids);
        if !assign(points, &centroids, d, &mut assignment) {
            break;
        }
    }
    let mut counts = vec![0.0; k];
    for &segment in &assignment {
        counts[segment] += 1.0;
    }
    Some(Seeding { centroids, counts, assignment })
}

/// The nearest of `centroids` (k × d) to `point`, and the Euclidean distance to it; ties go to
/// the lower index. Squares are summed as they are (as river does) unless the nearest's
/// overflows a double: then every distance is taken again scaled (see `scaled_nearest`), so
/// that points far apart but within a double's range are still told apart.
pub fn nearest(centroids: &[f64], point: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (index, centroid) in centroids.chunks_exact(point.len()).enumerate() {
        let distance = squared_distance_below(centroid, point, best.1);
        if distance < best.1 {
            best = (index, distance);
        }
    }
    match best.1.is_finite() {
        true => (best.0, best.1.sqrt()),
        false => scaled_nearest(centroids, point),
    }
}

/// The Euclidean distance between two points, scaled as `nearest` does when its squares overflow.
pub fn distance(left: &[f64], right: &[f64]) -> f64 {
    let squared = squared_distance(left, right);
    match squared.is_finite() {
        true => squared.sqrt(),
        false => scaled_nearest(left, right).1,
    }
}

/// `nearest` with every coordinate divided by a power of two at most the largest magnitude (so
/// exactly, and differences stay below 4): the squares cannot overflow. A distance beyond the
/// largest double is still infinite.
fn scaled_nearest(centroids: &[f64], point: &[f64]) -> (usize, f64) {
    let largest = centroids.iter().chain(point).filter(|value| value.is_finite()).fold(0.0_f64, |largest, value| largest.max(value.abs()));
    let scale = if largest > 1.0 { 2.0_f64.powi(largest.log2().floor() as i32) } else { 1.0 };
    let mut best = (0, f64::INFINITY);
    for (index, centroid) in centroids.chunks_exact(point.len()).enumerate() {
        let squared: f64 = centroid.iter().zip(point).map(|(a, b)| (a / scale - b / scale) * (a / scale - b / scale)).sum();
        if squared < best.1 {
            best = (index, squared);
        }
    }
    (best.0, best.1.sqrt() * scale)
}

/// The squared distance, or a partial sum ≥ `bound` as soon as it reaches it.
fn squared_distance_below(left: &[f64], right: &[f64], bound: f64) -> f64 {
    let mut sum = 0.0;
    for (a, b) in left.iter().zip(right) {
        sum += (a - b) * (a - b);
        if sum >= bound {
            break;
        }
    }
    sum
}

pub fn squared_distance(left: &[f64], right: &[f64]) -> f64 {
    left.iter().zip(right).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// Greedy k-means++ (as scikit-learn): each next seed is the best, by the potential it leaves,
/// of 2 + ln k candidates drawn with probability proportional to D², the squared distance to
/// the nearest seed so far.
fn k_means_plus_plus(points: &[f64], d: usize, k: usize, rng: &mut SplitMix64) -> Option<Vec<f64>> {
    let n = points.len() / d;
    if n == 0 {
        return None;
    }
    let point = |index: usize| &points[index * d..(index + 1) * d];
    let first = point(rng.below(n));
    let mut centroids = first.to_vec();
    let mut nearest: Vec<f64> = (0..n).map(|index| squared_distance(point(index), first)).collect();
    let trials = candidates(k);
    for _ in 1..k {
        let total: f64 = nearest.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut best: Option<(f64, usize)> = None;
        for _ in 0..trials {
            let candidate = draw(&nearest, total, rng);
            let potential: f64 = (0..n).map(|index| nearest[index].min(squared_distance(point(index), point(candidate)))).sum();
            if best.is_none_or(|(lowest, _)| potential < lowest) {
                best = Some((potential, candidate));
            }
        }
        let chosen = point(best.map_or(0, |(_, candidate)| candidate));
        for (index, distance) in nearest.iter_mut().enumerate() {
            *distance = distance.min(squared_distance(point(index), chosen));
        }
        centroids.extend_from_slice(chosen);
    }
    Some(centroids)
}

/// An index drawn with probability `weights[i] / total`; only a positive weight is drawn.
/// When the weights overflowed (`total` infinite), the heaviest.
fn draw(weights: &[f64], total: f64, rng: &mut SplitMix64) -> usize {
    let heaviest = || weights.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(index, _)| index);
    if !total.is_finite() {
        return heaviest();
    }
    let target = rng.next_f64() * total;
    let mut cumulative = 0.0;
    let mut last_positive = None;
    for (index, &weight) in weights.iter().enumerate() {
        if weight > 0.0 {
            cumulative += weight;
            last_positive = Some(index);
            if cumulative > target {
                return index;
            }
        }
    }
    // Rounding left the target beyond the sum: the last point that may be drawn.
    last_positive.unwrap_or_else(heaviest)
}

/// Assigns each point to its nearest centroid; whether any assignment changed.
fn assign(points: &[f64], centroids: &[f64], d: usize, assignment: &mut [usize]) -> bool {
    let mut changed = false;
    for (point, segment) in points.chunks_exact(d).zip(assignment.iter_mut()) {
        let (nearest, _) = nearest(centroids, point);
        changed |= nearest != *segment;
        *segment = nearest;
    }
    changed
}

/// Moves each centroid to the mean of its points; one without points stays.
fn move_to_means(points: &[f64], assignment: &[usize], d: usize, centroids: &mut [f64]) {
    let k = centroids.len() / d;
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0usize; k];
    for (point, &segment) in points.chunks_exact(d).zip(assignment) {
        counts[segment] += 1;
        for (sum, x) in sums[segment * d..(segment + 1) * d].iter_mut().zip(point) {
            *sum += x;
        }
    }
    for (segment, &count) in counts.iter().enumerate().filter(|(_, count)| **count > 0) {
        for (centroid, sum) in centroids[segment * d..(segment + 1) * d].iter_mut().zip(&sums[segment * d..(segment + 1) * d]) {
            *centroid = sum / count as f64;
        }
    }
    // A sum that overflowed: those means are taken again from the points divided by their count.
    if sums.iter().any(|sum| !sum.is_finite()) {
        for (segment, &count) in counts.iter().enumerate().filter(|(_, count)| **count > 0) {
            for dimension in (0..d).filter(|dimension| !sums[segment * d + dimension].is_finite()) {
                let members = points.chunks_exact(d).zip(assignment).filter(|(_, assigned)| **assigned == segment);
                centroids[segment * d + dimension] = members.map(|(point, _)| point[dimension] / count as f64).sum();
            }
        }
    }
}
