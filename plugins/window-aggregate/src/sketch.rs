//! Mergeable sketches: quantiles (DDSketch, 1% relative error) and distinct counts (HLL++).

use std::hash::{BuildHasher, Hasher};

use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// Relative error of quantiles: a reported value is within 1% of a true quantile value.
pub const QUANTILE_RELATIVE_ERROR: f64 = 0.01;
/// HyperLogLog++ precision: 2^14 registers, standard error 1.04 / 2^7 ≈ 0.8%.
pub const DISTINCT_PRECISION: u8 = 14;

/// Values of one window and group, summarised for quantile queries.
#[derive(Clone, Serialize, Deserialize)]
pub struct Quantiles(DDSketch);

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles(DDSketch::new(Config::new(QUANTILE_RELATIVE_ERROR, 2048, 1.0e-9)))
    }
}

impl Quantiles {
    pub fn add(&mut self, x: f64) {
        self.0.add(x);
    }

    pub fn merge(&mut self, other: &Quantiles) {
        // Sketches made by `default` share their configuration, so merging cannot fail.
        let _ = self.0.merge(&other.0);
    }

    /// The `q` quantile, `None` for an empty sketch. Within the values seen: the sketch's
    /// estimate (1% relative error) may fall just outside them, and the median of the single
    /// value 4 is 4, not 4.01.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let estimate = self.0.quantile(q).ok().flatten()?;
        Some(match (self.0.min(), self.0.max()) {
            (Some(least), Some(most)) => estimate.max(least).min(most),
            _ => estimate,
        })
    }
}

impl std::fmt::Debug for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Quantiles({} values)", self.0.count())
    }
}

/// Distinct values of one window and group, estimated with HyperLogLog++.
///
/// `None` until the first value: an empty sketch costs nothing in the state.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Distinct(Option<HyperLogLogPlus<String, StableHashing>>);

impl Distinct {
    pub fn add(&mut self, value: &str) {
        if let Some(sketch) = self.sketch() {
            sketch.insert(value);
        }
    }

    pub fn merge(&mut self, other: &Distinct) {
        if let (Some(sketch), Some(other)) = (self.sketch(), &other.0) {
            // Same precision on both sides: merging cannot fail.
            let _ = sketch.merge(other);
        }
    }

    /// The estimated number of distinct values.
    pub fn count(&self) -> u64 {
        self.0.clone().map_or(0, |mut sketch| sketch.count().round() as u64)
    }

    fn sketch(&mut self) -> Option<&mut HyperLogLogPlus<String, StableHashing>> {
        if self.0.is_none() {
            self.0 = HyperLogLogPlus::new(DISTINCT_PRECISION, StableHashing).ok();
        }
        self.0.as_mut()
    }
}

impl std::fmt::Debug for Distinct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Distinct(~{})", self.count())
    }
}

/// A hash that never changes between runs, builds or Rust versions, so that a sketch in a
/// snapshot stays valid: FNV-1a over the bytes, then the SplitMix64 finaliser to spread them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct StableHashing;

impl BuildHasher for StableHashing {
    type Hasher = StableHasher;
    fn build_hasher(&self) -> StableHasher {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

pub struct StableHasher(u64);

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut x = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}
