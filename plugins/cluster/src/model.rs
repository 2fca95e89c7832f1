//! The model, which is the operator's whole state: centroids, their counts, the random
//! generator, the records held before seeding and the totals.

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use crate::config::{Rates, Settings};
use crate::held::Held;
use crate::seeding::{self, Seeding, SplitMix64};

/// What the operator learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The feature paths and `k` the model was built for: a restore with others is refused.
    pub features: Vec<String>,
    pub k: usize,
    /// k × d, row-major; empty until seeded.
    pub centroids: Vec<f64>,
    /// Each centroid's weight: the records assigned to it, decayed with `half_life`.
    pub counts: Vec<f64>,
    pub rng: SplitMix64,
    pub held: Held,
    /// Records accepted (held ones included).
    pub records: u64,
    /// The latest event time of an accepted record.
    pub latest_timestamp: Option<i64>,
    /// Whether the centroids changed since the last `centroids` record.
    pub changed: bool,
}

impl VersionedState for Model {
    const VERSION: u32 = 1;
}

impl Model {
    pub fn new(settings: &Settings) -> Model {
        Model {
            features: settings.features.iter().map(ToString::to_string).collect(),
            k: settings.k,
            centroids: Vec::new(),
            counts: Vec::new(),
            rng: SplitMix64 { state: settings.seed },
            held: Held::default(),
            records: 0,
            latest_timestamp: None,
            changed: false,
        }
    }

    /// Refuses, with the reason, a restored model built for other features or another `k`.
    pub fn check_fits(&self, settings: &Settings) -> Result<(), String> {
        let features: Vec<String> = settings.features.iter().map(ToString::to_string).collect();
        if self.features != features || self.k != settings.k {
            return Err(format!(
                "the state holds a model of k = {} over features {:?}, but the configuration asks for k = {} over {:?}: \
                 a model cannot change shape; keep the configuration or start without the state",
                self.k, self.features, settings.k, features
            ));
        }
        let d = features.len();
        let seeded_fits = self.centroids.is_empty() || (self.centroids.len() == self.k * d && self.counts.len() == self.k);
        if !seeded_fits || self.held.points.len() != self.held.len() * d {
            return Err("the state is inconsistent: its centroids or held points do not match k and the features".into());
        }
        Ok(())
    }

    pub fn is_seeded(&self) -> bool {
        !self.centroids.is_empty()
    }

    /// Counts an accepted record.
    pub fn count(&mut self, timestamp: i64) {
        self.records += 1;
        self.latest_timestamp = Some(self.latest_timestamp.map_or(timestamp, |latest| latest.max(timestamp)));
    }

    /// Seeds the centroids from the held points; `None` when they hold fewer than k distinct
    /// points (the model is then unchanged but for the generator).
    pub fn seed(&mut self) -> Option<Seeding> {
        let seeding = seeding::seed(&self.held.points, self.features.len(), self.k, &mut self.rng)?;
        self.centroids.clone_from(&seeding.centroids);
        self.counts.clone_from(&seeding.counts);
        self.changed = true;
        Some(seeding)
    }

    /// The nearest centroid to `point` and the Euclidean distance to it.
    pub fn nearest(&self, point: &[f64]) -> (usize, f64) {
        seeding::nearest(&self.centroids, point)
    }

    /// Moves centroid `segment` toward `point`: every count decays, the segment's grows by
    /// one, and the centroid moves by η = max(1 / count, min_rate) of the way.
    pub fn learn(&mut self, segment: usize, point: &[f64], rates: Rates) {
        if rates.decay < 1.0 {
            self.counts.iter_mut().for_each(|count| *count *= rates.decay);
        }
        let Some(count) = self.counts.get_mut(segment) else { return };
        *count += 1.0;
        let rate = (1.0 / *count).max(rates.min_rate);
        let d = point.len();
        for (centre, x) in self.centroids[segment * d..(segment + 1) * d].iter_mut().zip(point) {
            let moved = *centre + rate * (x - *centre);
            // x − centre overflows for far points of opposite signs; the same mean, weighted.
            *centre = if moved.is_finite() { moved } else { (1.0 - rate) * *centre + rate * x };
        }
        self.changed = true;
    }

    /// Centroid `segment`'s coordinates.
    pub fn centroid(&self, segment: usize) -> &[f64] {
        let d = self.features.len();
        &self.centroids[segment * d..(segment + 1) * d]
    }
}
