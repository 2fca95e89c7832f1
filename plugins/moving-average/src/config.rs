//! The operator's configuration, and its checked form: what `init` accepts or refuses.

use serde::Deserialize;
use sluice_sdk::{FieldPath, Millis};

use crate::average::{Average, AverageConfig};

/// The `config` table of a moving-average operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovingAverageConfig {
    /// The numeric field averaged.
    pub field: FieldPath,
    /// The fields whose values form a key; none: one global key.
    #[serde(default)]
    pub group_by: Vec<FieldPath>,
    pub averages: Vec<AverageConfig>,
    #[serde(default)]
    pub emit: EmitMode,
    /// `emit = "per-interval"`: the length of the intervals, aligned on the Unix epoch.
    pub interval: Option<Millis>,
    /// `emit = "per-record"`: nest the averages in an object at this path.
    pub into: Option<FieldPath>,
    /// `emit = "per-interval"`: records of intervals already emitted.
    pub late: Option<LatePolicy>,
    /// The most values a key keeps per span window, and records waiting for the watermark.
    #[serde(default = "default_max_records")]
    pub max_records: usize,
    /// The most keys kept; beyond, the least recently used is forgotten.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_records() -> usize {
    1_000
}

fn default_max_keys() -> usize {
    2_000
}

/// When averages are emitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmitMode {
    /// Each input record passes on with the averages added.
    #[default]
    PerRecord,
    /// One record per key and interval, when the watermark passes the interval's end.
    PerInterval,
}

/// What happens to a record whose interval was already emitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatePolicy {
    /// Dropped and counted in the `late_dropped` metric.
    #[default]
    Drop,
    /// Sent to the dead-letter sink with the reason.
    Reject,
}

/// The checked configuration.
#[derive(Debug)]
pub struct Settings {
    pub field: FieldPath,
    pub group_by: Vec<FieldPath>,
    pub averages: Vec<Average>,
    pub emission: Emission,
    pub max_records: usize,
    pub max_keys: usize,
    /// Every field read from a record, in one pass: the group fields, then the averaged one.
    pub lookups: sluice_sdk::FieldLookup,
}

/// The emission mode with its own settings.
#[derive(Debug)]
pub enum Emission {
    PerRecord { into: Option<FieldPath> },
    PerInterval { interval: i64, late: LatePolicy },
}

/// The fields of an interval record besides the group fields and the averages.
pub const INTERVAL_END: &str = "interval_end";
pub const INTERVAL_COUNT: &str = "count";

impl Settings {
    /// The group fields, as paths written out.
    pub fn group_by_names(&self) -> Vec<String> {
        self.group_by.iter().map(ToString::to_string).collect()
    }

    pub fn from_config(config: MovingAverageConfig) -> Result<Settings, String> {
        if config.max_records == 0 {
            return Err("max_records: must be at least 1".into());
        }
        if config.max_keys == 0 {
            return Err("max_keys: must be at least 1".into());
        }
        if config.averages.is_empty() {
            return Err("`averages` is empty: list at least one, such as { type = \"exponential\", alpha = 0.3 }".into());
        }
        let averages = config
            .averages
            .iter()
            .enumerate()
            .map(|(position, average)| average.check(position, config.max_records))
            .collect::<Result<Vec<_>, _>>()?;
        check_names_are_unique(&averages)?;
        let emission = match config.emit {
            EmitMode::PerRecord => per_record(&config, &averages)?,
            EmitMode::PerInterval => per_interval(&config, &averages)?,
        };
        let lookups = sluice_sdk::FieldLookup::new(config.group_by.iter().cloned().chain([config.field.clone()]).collect());
        Ok(Settings {
            field: config.field,
            group_by: config.group_by,
            averages,
            emission,
            max_records: config.max_records,
            max_keys: config.max_keys,
            lookups,
        })
    }
}

fn check_names_are_unique(averages: &[Average]) -> Result<(), String> {
    for (position, average) in averages.iter().enumerate() {
        if let Some(first) = averages[..position].iter().position(|earlier| earlier.name == average.name) {
            return Err(format!(
                "averages[{position}]: the name {:?} is already used by averages[{first}]; give one of them another `as`",
                average.name
            ));
        }
    }
    Ok(())
}

fn per_record(config: &MovingAverageConfig, averages: &[Average]) -> Result<Emission, String> {
    if config.interval.is_some() {
        return Err("`interval` applies only to emit = \"per-interval\"".into());
    }
    if config.late.is_some() {
        return Err("`late` applies only to emit = \"per-interval\"".into());
    }
    if let Some(into) = &config.into
        && overlaps(into, &config.field)
    {
        let (into, field) = (into.to_string(), config.field.to_string());
        return Err(match into == field {
            true => format!("`into` = {into:?} is the averaged field: the averages would overwrite it; choose another path"),
            false => format!("`into` = {into:?} overlaps the averaged field {field:?} (one holds the other); choose another path"),
        });
    }
    if config.into.is_none() {
        refuse_names_of_fields_read(config, averages)?;
    }
    Ok(Emission::PerRecord { into: config.into.clone() })
}

/// Per record, without `into`, the averages are added to the record's top level: one named as
/// the averaged field or a group field would overwrite the value it is computed from.
fn refuse_names_of_fields_read(config: &MovingAverageConfig, averages: &[Average]) -> Result<(), String> {
    let read = std::iter::once(("the averaged field", &config.field)).chain(config.group_by.iter().map(|path| ("a group_by field", path)));
    for (position, average) in averages.iter().enumerate() {
        if let Some((what, _)) = read.clone().find(|(_, path)| path.segments() == [average.name.as_str()]) {
            return Err(format!(
                "averages[{position}]: the name {:?} is {what}, which the averages added to the record would overwrite; choose \
                 another `as`, or nest the averages with `into`",
                average.name
            ));
        }
    }
    Ok(())
}

/// Whether one path is the other or holds it (writing one replaces or reaches into the other).
fn overlaps(one: &FieldPath, other: &FieldPath) -> bool {
    let (one, other) = (one.segments(), other.segments());
    one.iter().zip(other).all(|(a, b)| a == b)
}

fn per_interval(config: &MovingAverageConfig, averages: &[Average]) -> Result<Emission, String> {
    if config.into.is_some() {
        return Err("`into` applies only to emit = \"per-record\"".into());
    }
    let interval = match config.interval {
        None => return Err("emit = \"per-interval\" needs `interval`, such as interval = \"1m\"".into()),
        Some(Millis(0)) => return Err("interval: must be positive".into()),
        Some(Millis(interval)) => interval,
    };
    // Interval records hold the end, the group fields, the averages and the count side by side.
    let taken: Vec<String> =
        [INTERVAL_END.to_owned(), INTERVAL_COUNT.to_owned()].into_iter().chain(config.group_by.iter().map(FieldPath::to_string)).collect();
    for (position, average) in averages.iter().enumerate() {
        if taken.contains(&average.name) {
            return Err(format!(
                "averages[{position}]: the name {:?} is already a field of the interval records; choose another `as`",
                average.name
            ));
        }
    }
    Ok(Emission::PerInterval { interval, late: config.late.unwrap_or_default() })
}
