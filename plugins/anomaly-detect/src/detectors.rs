//! The configured detectors: their configuration, what each learns per key, and how a value is scored.

use serde::{Deserialize, Serialize};
use sluice_sdk::state::EntryDefinition;

use crate::limits::{RateOfChange, RateOfChangeConfig, Threshold, ThresholdConfig};
use crate::mad::{Mad, MadConfig, RecentValues};
use crate::zscore::{WeightedMoments, Zscore, ZscoreConfig};

/// One entry of `detectors`, chosen by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DetectorConfig {
    Zscore(ZscoreConfig),
    Mad(MadConfig),
    Threshold(ThresholdConfig),
    RateOfChange(RateOfChangeConfig),
}

/// A checked detector with its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    pub name: String,
    kind: DetectorKind,
}

#[derive(Debug, Clone, PartialEq)]
enum DetectorKind {
    Zscore(Zscore),
    Mad(Mad),
    Threshold(Threshold),
    RateOfChange(RateOfChange),
}

/// What one detector has learnt about one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DetectorStatistics {
    Zscore(WeightedMoments),
    Mad(RecentValues),
    /// Fixed bounds learn nothing.
    Threshold,
    /// The key's previous value.
    RateOfChange(Option<f64>),
}

/// A detector's verdict on one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// The detector's measure of the value (see each detector); signed: positive above the range.
    pub score: f64,
    /// The range of values that would not have been anomalies (`None`: unbounded on that side).
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub anomalous: bool,
}

/// The smallest spread a detector divides by: 1e-9 of the centre's magnitude (with a tiny
/// absolute minimum), so that a constant series gives a large, finite score to any change.
pub fn deviation_floor(center: f64) -> f64 {
    1e-9 * center.abs().max(1e-9)
}

/// Checks every detector, and that their names (which alerts carry) are distinct.
pub fn check_all(configs: &[DetectorConfig]) -> Result<Vec<Detector>, String> {
    if configs.is_empty() {
        return Err("`detectors` is empty: name at least one, such as { type = \"zscore\" }".into());
    }
    let mut detectors: Vec<Detector> = Vec::with_capacity(configs.len());
    for (position, config) in configs.iter().enumerate() {
        // The path first, so that `sluice validate` points at the detector in the file.
        let detector = config.check().map_err(|reason| format!("detectors[{position}]: {reason}"))?;
        if let Some(first) = detectors.iter().position(|other| other.name == detector.name) {
            return Err(format!(
                "detectors[{position}]: the name {:?} is already used by detectors[{first}]: give each a distinct `name`",
                detector.name
            ));
        }
        detectors.push(detector);
    }
    Ok(detectors)
}

impl DetectorConfig {
    fn check(&self) -> Result<Detector, String> {
        let (name, kind) = match self {
            DetectorConfig::Zscore(config) => (named(&config.name, "zscore"), config.check().map(DetectorKind::Zscore)),
            DetectorConfig::Mad(config) => (named(&config.name, "mad"), config.check().map(DetectorKind::Mad)),
            DetectorConfig::Threshold(config) => (named(&config.name, "threshold"), config.check().map(DetectorKind::Threshold)),
            DetectorConfig::RateOfChange(config) => (named(&config.name, "rate-of-change"), config.check().map(DetectorKind::RateOfChange)),
        };
        if name.is_empty() {
            return Err("a detector's `name` must not be empty".into());
        }
        let kind = kind.map_err(|reason| format!("detector {name:?}: {reason}"))?;
        Ok(Detector { name, kind })
    }
}

fn named(name: &Option<String>, default: &str) -> String {
    name.clone().unwrap_or_else(|| default.to_owned())
}

impl Detector {
    /// What this detector of `field` is, as a state records it (version 2), so that a restore
    /// under another configuration (a swap, a file edit, a restart) matches each detector up
    /// by what it is, not by its place: the watched field and its type (`latency_ms mad`), and
    /// its settings (a window, a decay, a threshold).
    pub fn definition(&self, field: &str) -> EntryDefinition {
        let (family, parameters) = match &self.kind {
            DetectorKind::Zscore(zscore) => ("zscore", format!("{zscore:?}")),
            DetectorKind::Mad(mad) => ("mad", format!("{mad:?}")),
            DetectorKind::Threshold(threshold) => ("threshold", format!("{threshold:?}")),
            DetectorKind::RateOfChange(rate) => ("rate-of-change", format!("{rate:?}")),
        };
        EntryDefinition { name: self.name.clone(), family: format!("{field} {family}"), parameters }
    }

    /// Whether the detector learns from the key's values, and so stays silent during warm-up.
    pub fn learns(&self) -> bool {
        !matches!(self.kind, DetectorKind::Threshold(_))
    }

    /// How many values the detector keeps per key (its window; 0 for the others).
    pub fn window(&self) -> usize {
        match &self.kind {
            DetectorKind::Mad(mad) => mad.window(),
            _ => 0,
        }
    }

    /// What the detector knows of a key never seen.
    pub fn fresh_statistics(&self) -> DetectorStatistics {
        match self.kind {
            DetectorKind::Zscore(_) => DetectorStatistics::Zscore(WeightedMoments::default()),
            DetectorKind::Mad(_) => DetectorStatistics::Mad(RecentValues::default()),
            DetectorKind::Threshold(_) => DetectorStatistics::Threshold,
            DetectorKind::RateOfChange(_) => DetectorStatistics::RateOfChange(None),
        }
    }

    /// Whether `statistics` were learnt by a detector of this type (state restored under
    /// another configuration may not be).
    pub fn fits(&self, statistics: &DetectorStatistics) -> bool {
        matches!(
            (&self.kind, statistics),
            (DetectorKind::Zscore(_), DetectorStatistics::Zscore(_))
                | (DetectorKind::Mad(_), DetectorStatistics::Mad(_))
                | (DetectorKind::Threshold(_), DetectorStatistics::Threshold)
                | (DetectorKind::RateOfChange(_), DetectorStatistics::RateOfChange(_))
        )
    }

    /// Scores `value` against what was learnt before it; `None` when the detector cannot
    /// score yet (no history). `statistics` is `None` for a key never seen.
    pub fn assess(&self, statistics: Option<&DetectorStatistics>, value: f64, scratch: &mut Vec<f64>) -> Option<Assessment> {
        match (&self.kind, statistics) {
            (DetectorKind::Threshold(threshold), _) => Some(threshold.assess(value)),
            (DetectorKind::Zscore(zscore), Some(DetectorStatistics::Zscore(moments))) => zscore.assess(moments, value),
            (DetectorKind::Mad(mad), Some(DetectorStatistics::Mad(recent))) => mad.assess(recent, value, scratch),
            (DetectorKind::RateOfChange(rate), Some(DetectorStatistics::RateOfChange(previous))) => rate.assess(*previous, value),
            _ => None,
        }
    }

    /// Learns `value`, given the verdict `assess` gave it (after warm-up).
    pub fn update(&self, statistics: &mut DetectorStatistics, value: f64, timestamp: i64, assessment: Option<&Assessment>) {
        match (&self.kind, statistics) {
            (DetectorKind::Zscore(zscore), DetectorStatistics::Zscore(moments)) => zscore.update(moments, value, timestamp, assessment),
            (DetectorKind::Mad(mad), DetectorStatistics::Mad(recent)) => mad.update(recent, value),
            // The previous value is the real one, anomalous or not: after a step, the next
            // values are compared with the new level.
            (DetectorKind::RateOfChange(_), DetectorStatistics::RateOfChange(previous)) => *previous = Some(value),
            // Mismatched statistics are replaced by the caller before updating.
            _ => {}
        }
    }
}
