//! The join's configuration, and its checked form: what `init` accepts or refuses.

use serde::Deserialize;
use sluice_sdk::{FieldPath, Millis};

/// The join's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The fields whose values, together, must be equal on both sides.
    pub key: Vec<FieldPath>,
    /// How long records stay after the watermark passed their event time; absent: always.
    /// With `within`, it applies to right records only.
    pub retention: Option<Millis>,
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    #[serde(default)]
    pub missing: MissingKeyPolicy,
    /// A right record matches a left record only if its event time is within the left
    /// record's interval.
    pub within: Option<WithinConfig>,
    /// Each left record is emitted once, with its best match, when its interval is over.
    pub best: Option<BestConfig>,
    /// With `best`: what happens to a left record without a match.
    pub unmatched: Option<UnmatchedPolicy>,
}

fn default_max_records() -> usize {
    100_000
}

/// `within = { from = "start", to = "end" }`: the left record's fields (epoch milliseconds)
/// that bound the event time of the right records it matches, both included.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithinConfig {
    pub from: FieldPath,
    pub to: FieldPath,
}

/// `best = { field = "price", keep = "max" }`: which right record is a left record's best match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestConfig {
    /// The right records' number compared.
    pub field: FieldPath,
    pub keep: Keep,
}

/// Whether the best match is the highest or the lowest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    Max,
    Min,
}

impl Keep {
    /// Whether `candidate` beats `current`: strictly, so that of equal values the earliest
    /// arrived stays.
    pub fn beats(self, candidate: f64, current: f64) -> bool {
        match self {
            Keep::Max => candidate > current,
            Keep::Min => candidate < current,
        }
    }

    /// Whether a right record (its rank, event time and text) is a better match than
    /// `current`: a rank that beats it; of equal ranks, the earlier event time, then the lesser
    /// text, so that the choice never depends on the order records arrive in.
    pub fn prefers(self, (rank, timestamp, text): (f64, i64, &[u8]), current: &crate::BestMatch) -> bool {
        if self.beats(rank, current.rank) || self.beats(current.rank, rank) {
            return self.beats(rank, current.rank);
        }
        (timestamp, text) < (current.timestamp, current.value.as_slice())
    }
}

/// What happens to a record without a value at one of the key fields (or, with `within` and
/// `best`, at the fields they name).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingKeyPolicy {
    /// Dropped and counted in the `missing_key_dropped` (or `missing_field_dropped`) metric.
    #[default]
    Drop,
    /// Sent to the dead-letter sink.
    Reject,
}

/// With `best`: what happens to a left record that no right record matched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnmatchedPolicy {
    /// Forgotten and counted in the `unmatched_dropped` metric.
    #[default]
    Drop,
    /// Emitted with `"right": null`.
    Emit,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Settings {
    pub key: Vec<FieldPath>,
    pub retention: Option<i64>,
    pub max_records: usize,
    pub missing: MissingKeyPolicy,
    pub within: Option<WithinConfig>,
    pub best: Option<BestSettings>,
    /// The fields read from a left record in one pass: the key, then `within`'s `from` and `to`.
    pub left_lookups: sluice_sdk::FieldLookup,
    /// The fields read from a right record in one pass: the key, then `best`'s `field`.
    pub right_lookups: sluice_sdk::FieldLookup,
}

/// `best` with the `unmatched` policy that goes with it.
#[derive(Debug)]
pub struct BestSettings {
    pub field: FieldPath,
    pub keep: Keep,
    pub unmatched: UnmatchedPolicy,
}

impl Settings {
    /// With `retention`, whether a left record of event time `left` and a right one of event
    /// time `right` are close enough to pair: at most `retention` apart, or, with `within` (a
    /// left record waits until its interval's end), the right one at most `retention` before
    /// the left one. Each is kept that long, so a pair never depends on whether the watermark
    /// had already forgotten one of its records when the other came: the same pairs at any
    /// batch size and parallelism.
    pub fn close_enough(&self, left: i64, right: i64) -> bool {
        let Some(retention) = self.retention else { return true };
        right >= self.earliest_right_for(left) && (self.within.is_some() || left >= right.saturating_sub(retention))
    }

    /// The earliest event time of a right record a left record of event time `left` pairs with
    /// (with `within`).
    pub fn earliest_right_for(&self, left: i64) -> i64 {
        self.retention.map_or(i64::MIN, |retention| left.saturating_sub(retention))
    }

    pub fn from_config(config: JoinConfig) -> Result<Settings, String> {
        if config.key.is_empty() {
            return Err("key: is empty: name the fields both inputs share, such as key = [\"user_id\"]".into());
        }
        let inputs = sluice_sdk::init_context().inputs;
        if inputs.len() != 2 {
            return Err(format!(
                "inputs: a join reads two inputs (left, then right), but this operator reads {}: {inputs:?}",
                inputs.len()
            ));
        }
        if let Some(twice) = config.key.iter().enumerate().find_map(|(at, path)| config.key[..at].contains(path).then_some(path)) {
            return Err(format!("key: names {twice} twice: list each field once"));
        }
        if config.max_records == 0 {
            return Err("max_records: must be at least 1".into());
        }
        let best = best_settings(&config)?;
        let left_lookups = config.key.iter().chain(config.within.iter().flat_map(|within| [&within.from, &within.to])).cloned().collect();
        let right_lookups = config.key.iter().chain(best.iter().map(|best| &best.field)).cloned().collect();
        Ok(Settings {
            key: config.key,
            retention: config.retention.map(|retention| retention.0),
            max_records: config.max_records,
            missing: config.missing,
            within: config.within,
            best,
            left_lookups: sluice_sdk::FieldLookup::new(left_lookups),
            right_lookups: sluice_sdk::FieldLookup::new(right_lookups),
        })
    }
}

fn best_settings(config: &JoinConfig) -> Result<Option<BestSettings>, String> {
    let Some(best) = &config.best else {
        if config.unmatched.is_some() {
            return Err("unmatched: applies only with `best`: remove it, or add best = { field = \"price\", keep = \"max\" }".into());
        }
        return Ok(None);
    };
    if config.within.is_none() {
        return Err("best: needs `within`: the best match is chosen among the right records within each left record's interval, \
                    such as within = { from = \"start\", to = \"end\" }"
            .into());
    }
    if config.retention.is_none() {
        return Err("best: needs `retention`: how long a right record waits for a left record that comes after it, such as \
                    retention = \"10s\" (\"0s\" when a left record always comes before the watermark passes its `from`)"
            .into());
    }
    Ok(Some(BestSettings { field: best.field.clone(), keep: best.keep, unmatched: config.unmatched.unwrap_or_default() }))
}
