//! The operator's configuration, and its checked form: what `init` accepts or refuses.

use serde::Deserialize;
use sluice_sdk::FieldPath;

use crate::annotate::OutputFields;
use crate::seeding;

/// The most segments: a record is compared with every centroid, so `k` bounds the cost per record.
pub const MAX_K: usize = 256;

/// The most features: `k` × features numbers are the model.
pub const MAX_FEATURES: usize = 1_024;

/// The most records buffered before seeding: they are held in the state, payloads and all.
pub const MAX_INIT_POINTS: usize = 100_000;

/// The most work the seeding may take, in comparisons of one feature of one held point with one
/// centroid, a distance counting 2 more for its own cost (see [`seeding_work`]). The seeding runs
/// within one call: measured in Wasm, seeding at this bound took 0.3–0.4 s (uniform points,
/// where every Lloyd iteration runs; 1, 2 and 10 features), well within the default 1 s
/// `call_timeout`.
pub const MAX_SEEDING_WORK: u64 = 250_000_000;

/// The `config` table of a cluster operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The numeric fields that place a record: one dimension each.
    pub features: Vec<FieldPath>,
    /// How many segments (centroids).
    pub k: usize,
    /// How many records are buffered to seed the centroids; default 10·k.
    pub init_points: Option<usize>,
    /// The seed of the random choices of k-means++.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The floor of the learning rate.
    #[serde(default = "default_min_rate")]
    pub min_rate: f64,
    /// After how many records a point's weight in its centroid halves; none: never.
    pub half_life: Option<u64>,
    /// Where each record gets its segment.
    #[serde(default = "default_segment_field")]
    pub segment_field: FieldPath,
    /// Where each record gets its distance to its centroid.
    #[serde(default = "default_distance_field")]
    pub distance_field: FieldPath,
    /// Whether the side output `centroids` exists (a pipeline must then read it).
    #[serde(default = "default_report_centroids")]
    pub report_centroids: bool,
}

fn default_seed() -> u64 {
    1
}

fn default_min_rate() -> f64 {
    0.001
}

fn default_report_centroids() -> bool {
    true
}

fn default_segment_field() -> FieldPath {
    FieldPath::parse("segment").unwrap_or_else(|_| unreachable!("a valid path"))
}

fn default_distance_field() -> FieldPath {
    FieldPath::parse("distance").unwrap_or_else(|_| unreachable!("a valid path"))
}

/// The checked configuration.
#[derive(Debug)]
pub struct Settings {
    pub features: Vec<FieldPath>,
    pub k: usize,
    pub init_points: usize,
    pub seed: u64,
    pub rates: Rates,
    pub output: OutputFields,
    pub report_centroids: bool,
    /// Every field read from a record, in one pass: the features, then the top-level names
    /// of the two output fields (to find whether a record has them already).
    pub lookups: sluice_sdk::FieldLookup,
}

/// How far a record moves its centroid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// The learning rate never falls below this.
    pub min_rate: f64,
    /// What every centroid's count is multiplied by per record: 2^(-1/half_life), or 1.
    pub decay: f64,
}

impl Settings {
    pub fn from_config(config: ClusterConfig) -> Result<Settings, String> {
        check_features(&config.features)?;
        if !(2..=MAX_K).contains(&config.k) {
            return Err(format!("`k` must be between 2 and {MAX_K}, got {}", config.k));
        }
        let init_points = config.init_points.unwrap_or(10 * config.k);
        if !(config.k..=MAX_INIT_POINTS).contains(&init_points) {
            return Err(format!(
                "`init_points` must be at least `k` ({}) and at most {MAX_INIT_POINTS}, got {init_points}: the first records seed k centroids",
                config.k
            ));
        }
        check_seeding_work(init_points, config.init_points.is_none(), config.k, config.features.len())?;
        let rates = Rates { min_rate: check_min_rate(config.min_rate)?, decay: decay_of(config.half_life)? };
        let output = OutputFields::new(config.segment_field, config.distance_field)?;
        if let Some(feature) = config.features.iter().find(|feature| output.writes_into(feature)) {
            return Err(format!(
                "feature `{feature}` would be overwritten by the segment or distance: rename `segment_field` or `distance_field`"
            ));
        }
        let lookups = sluice_sdk::FieldLookup::new(config.features.iter().cloned().chain(output.lookups()).collect());
        Ok(Settings {
            features: config.features,
            k: config.k,
            init_points,
            seed: config.seed,
            rates,
            output,
            report_centroids: config.report_centroids,
            lookups,
        })
    }

    /// How many numbers place a record.
    pub fn dimensions(&self) -> usize {
        self.features.len()
    }
}

fn check_features(features: &[FieldPath]) -> Result<(), String> {
    if features.is_empty() {
        return Err("`features` is empty: name the numeric fields that place a record, such as features = [\"spend\", \"visits\"]".into());
    }
    if features.len() > MAX_FEATURES {
        return Err(format!("`features` has {} paths; at most {MAX_FEATURES} are supported", features.len()));
    }
    for (position, feature) in features.iter().enumerate() {
        if features[..position].contains(feature) {
            return Err(format!("`features` names `{feature}` twice: each feature is one dimension, name it once"));
        }
    }
    Ok(())
}

/// The most work seeding `k` centroids from `init_points` points of `features` numbers takes:
/// init_points × k × (features + 2) × (14 + ⌊ln k⌋), see [`seeding::passes`].
pub fn seeding_work(init_points: usize, k: usize, features: usize) -> u64 {
    let per_pass = (init_points as u64).saturating_mul(k as u64).saturating_mul(features as u64 + 2);
    per_pass.saturating_mul(seeding::passes(k) as u64)
}

/// Refuses a seeding that could not finish within a call: the operator would be disabled with
/// its held records stuck.
fn check_seeding_work(init_points: usize, defaulted: bool, k: usize, features: usize) -> Result<(), String> {
    let work = seeding_work(init_points, k, features);
    if work <= MAX_SEEDING_WORK {
        return Ok(());
    }
    let most_points = MAX_SEEDING_WORK / seeding_work(1, k, features);
    let lower = if most_points >= k as u64 {
        format!("lower `init_points` to at most {most_points}, or lower `k` or the number of `features`")
    } else {
        "lower `k` or the number of `features`".to_owned()
    };
    let default = if defaulted { " (10 × k by default)" } else { "" };
    Err(format!(
        "seeding k = {k} centroids from `init_points` = {init_points}{default} records of {features} features takes up to {} million \
         operations (init_points × k × (features + 2) × (14 + ⌊ln k⌋)) in one call, more than the {} million that finish well \
         within the default 1 s `call_timeout`: {lower}",
        work / 1_000_000,
        MAX_SEEDING_WORK / 1_000_000
    ))
}

fn check_min_rate(min_rate: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&min_rate) {
        Ok(min_rate)
    } else {
        Err(format!("`min_rate` must be between 0 and 1 (a fraction of the distance a centroid moves), got {min_rate}"))
    }
}

fn decay_of(half_life: Option<u64>) -> Result<f64, String> {
    match half_life {
        None => Ok(1.0),
        Some(0) => Err("`half_life` must be at least 1 record (leave it out for no decay)".into()),
        Some(records) => Ok((-1.0 / records as f64).exp2()),
    }
}
