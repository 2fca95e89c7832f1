//! `anomaly-detect`: flags values of a numeric field that are unusual for their key.
//!
//! ```toml
//! [operators.config]
//! field = "latency_ms"               # dotted path to the number watched
//! group_by = ["service", "region"]   # dotted paths; none = one global key
//! warm_up = 20                       # a key's first 20 values teach the learning detectors silently
//! pass_through = false               # true: every input record also goes downstream
//! alerts = "inline"                  # or "output": alerts go to the side output `alerts`
//! max_keys = 10000                   # keys remembered; the least recently seen is forgotten first
//! detectors = [
//!   { type = "zscore", alpha = 0.05, threshold = 3.0 },  # or half_life = "10m" instead of alpha
//!   { type = "mad", window = 50, threshold = 3.5 },
//!   { type = "threshold", min = 0, max = 5000 },
//!   { type = "rate-of-change", change = "relative", max_increase = 0.5, max_decrease = 0.5 },
//! ]
//! ```
//! Each detector may also take a `name` (default: its type), which alerts carry; names must differ.
//!
//! Each value is scored against what its key learnt *before* it, then learnt. Scores are signed
//! (positive above the expected range):
//! - `zscore`: z = (x − mean) / sd over an exponentially weighted mean and variance; `alpha`
//!   weighs each value, `half_life` decays by event time instead. An alerting value is learnt
//!   clipped to the edge of the expected range, so a spike does not inflate the variance and
//!   mask the next one, while a lasting shift is still learnt (unclipped after a constant series).
//! - `mad`: robust z = 0.6745 (x − median) / MAD over the key's last `window` values (when
//!   the MAD is 0, the mean absolute deviation × 1.2533 stands in). Every value is learnt.
//! - `threshold`: outside `[min, max]`; the score is the distance beyond the bound crossed.
//!   It learns nothing, so it alerts during warm-up too.
//! - `rate-of-change`: the change from the key's previous value (in arrival order),
//!   `change = "relative"` ((x − prev) / |prev|; nothing after a 0) or `"absolute"` (x − prev).
//!   It learns the previous value, so it is silent during warm-up, as `zscore` and `mad` are.
//!
//! Spreads are floored at 1e-9 of the centre's magnitude, so after a constant series any change
//! scores high but finite. For each detector that finds a value anomalous, an alert is emitted
//! after the input record (if passed through), with the input's key, headers and event time
//! (with `alerts = "output"`, on the side output `alerts`, read as `"<node>.alerts"`):
//! `{"alert": "anomaly", "detector", "group": {<group fields>}, "field", "value", "score",
//! "expected": {"low", "high"}, "timestamp", "record": <the input object>}` (`null` for an
//! unbounded side). With `pass_through`, anomalous records gain `"anomaly": {<detector>: <score>}`
//! (replacing any such field) and the others pass untouched. A missing or non-numeric field is
//! rejected; a null one is skipped (and passed through untouched).
//!
//! State: per key (at most `max_keys`, least recently seen forgotten first, metric
//! `keys_forgotten`) about 100 bytes, twice the key's text, and 8 bytes per `mad` window slot.
//! Metrics: counter `alerts`, gauge `keys`.

mod alert;
mod detectors;
mod keys;
mod limits;
mod mad;
mod zscore;

use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, Record, json};

pub use detectors::{Assessment, Detector, DetectorConfig, DetectorStatistics};
pub use keys::{KeyStatistics, KeyedStatistics};
pub use limits::{ChangeKind, RateOfChangeConfig, ThresholdConfig};
pub use mad::MadConfig;
pub use zscore::ZscoreConfig;

/// Most keys remembered, whatever the configuration: the state must stay bounded.
pub const MAX_KEYS: usize = 1_000_000;

/// Most `mad` window values over all keys (8 bytes each): refusing more at `init` beats
/// trapping on the memory limit once the keys have filled up.
pub const MAX_WINDOW_VALUES: usize = 10_000_000;

/// The `config` table of an anomaly-detect operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyDetectConfig {
    /// The numeric field watched.
    pub field: FieldPath,
    /// Fields whose values form the key; statistics are kept per key.
    #[serde(default)]
    pub group_by: Vec<FieldPath>,
    pub detectors: Vec<DetectorConfig>,
    /// How many values of a key the learning detectors see before they may alert.
    #[serde(default = "default_warm_up")]
    pub warm_up: u64,
    /// Whether input records are passed downstream too.
    #[serde(default)]
    pub pass_through: bool,
    /// Where alerts go: among the records (`inline`) or to the side output `alerts`.
    #[serde(default)]
    pub alerts: AlertsTo,
    /// Most keys remembered.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

/// Where an anomaly-detect operator sends its alerts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertsTo {
    /// On the main output, after the record that caused them.
    #[default]
    Inline,
    /// On the side output `alerts`.
    Output,
}

/// The name of the side output alerts go to with `alerts = "output"`.
pub const ALERTS_OUTPUT: &str = "alerts";

fn default_warm_up() -> u64 {
    20
}

fn default_max_keys() -> usize {
    10_000
}

/// A running anomaly detector.
pub struct AnomalyDetect {
    field: FieldPath,
    group_by: Vec<FieldPath>,
    /// Every field to read from a record, in one pass: group fields first, then the watched field.
    lookups: sluice_sdk::FieldLookup,
    detectors: Vec<Detector>,
    warm_up: u64,
    pass_through: bool,
    alerts: AlertsTo,
    max_keys: usize,
    statistics: KeyedStatistics,
    /// The key of the record being examined, reused across records.
    group: String,
    /// Working space of the `mad` detectors, reused across records.
    scratch: Vec<f64>,
}

/// The memory one key's statistics take at most, with their share of a snapshot, over keys of
/// a few dozen bytes (measured: about 290 bytes for a key such as `u1234567` with a `zscore`
/// and a `rate-of-change` detector): its name twice (the map and the recency order), the
/// maps' entries, each detector's statistics, and a `mad` window's values twice.
fn bytes_per_key(detectors: &[Detector]) -> u64 {
    150 + detectors.iter().map(|detector| 70 + 16 * detector.window() as u64).sum::<u64>()
}

/// Refuses `max_keys` keys whose statistics could take more than four fifths of the instance's
/// `memory_limit` (the rest is for the batches and the program): reached at run time, the
/// limit would stop the operator and lose every key's statistics.
fn check_memory(max_keys: usize, detectors: &[Detector], memory_limit: u64) -> Result<(), String> {
    let per_key = bytes_per_key(detectors);
    let budget = memory_limit / 5 * 4;
    let fits = budget / per_key;
    if max_keys as u64 <= fits {
        return Ok(());
    }
    let mebibytes = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    Err(format!(
        "`max_keys` = {max_keys} keys of up to about {per_key} bytes each (their statistics and snapshot) need {:.0} MiB, more \
         than the {:.0} MiB that four fifths of memory_limit ({:.0} MiB) allow: lower `max_keys` to at most {fits} or raise the \
         operator's memory_limit",
        mebibytes(per_key * max_keys as u64),
        mebibytes(budget),
        mebibytes(memory_limit)
    ))
}

impl Operator for AnomalyDetect {
    type Config = AnomalyDetectConfig;

    fn init(config: AnomalyDetectConfig) -> Result<Self, String> {
        let detectors = detectors::check_all(&config.detectors)?;
        if !(1..=MAX_KEYS).contains(&config.max_keys) {
            return Err(format!("`max_keys` must be between 1 and {MAX_KEYS}, got {}", config.max_keys));
        }
        let window_values = config.max_keys.saturating_mul(detectors.iter().map(Detector::window).sum());
        if window_values > MAX_WINDOW_VALUES {
            return Err(format!(
                "`max_keys` × the `mad` windows is {window_values} values; at most {MAX_WINDOW_VALUES} fit in memory: lower `max_keys` or `window`"
            ));
        }
        check_memory(config.max_keys, &detectors, sluice_sdk::init_context().memory_limit)?;
        let lookups = sluice_sdk::FieldLookup::new(config.group_by.iter().cloned().chain([config.field.clone()]).collect());
        let mut statistics = KeyedStatistics::default();
        statistics.redefine(&config.field.to_string(), &detectors);
        Ok(AnomalyDetect {
            field: config.field,
            group_by: config.group_by,
            lookups,
            detectors,
            warm_up: config.warm_up,
            pass_through: config.pass_through,
            alerts: config.alerts,
            max_keys: config.max_keys,
            statistics,
            group: String::new(),
            scratch: Vec::new(),
        })
    }

    fn distribution(&self) -> Distribution {
        Distribution::grouped_by(&self.group_by)
    }

    fn side_outputs(&self) -> Vec<String> {
        match self.alerts {
            AlertsTo::Inline => Vec::new(),
            AlertsTo::Output => vec![ALERTS_OUTPUT.into()],
        }
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut tally = Tally::default();
        for record in batch.iter() {
            if let Err(reason) = self.examine(record, out, &mut tally) {
                out.reject(record.index(), reason);
            }
        }
        if tally.alerts > 0 {
            sluice_sdk::host::counter_add("alerts", tally.alerts);
        }
        if tally.forgotten_keys > 0 {
            sluice_sdk::host::counter_add("keys_forgotten", tally.forgotten_keys);
        }
        sluice_sdk::host::gauge_set("keys", self.statistics.len() as f64);
    }

    fn snapshot(&self) -> sluice_sdk::State {
        sluice_sdk::State::encode(&self.statistics)
    }

    fn restore(&mut self, state: sluice_sdk::State) -> Result<(), String> {
        let mut statistics: KeyedStatistics = state.decode()?;
        statistics.redefine(&self.field.to_string(), &self.detectors);
        self.statistics = statistics;
        Ok(())
    }
}

/// Counts for the metrics of one batch.
#[derive(Default)]
struct Tally {
    alerts: u64,
    forgotten_keys: u64,
}

impl AnomalyDetect {
    /// Scores one record, learns its value and emits what it causes; an error rejects it
    /// (and then nothing was learnt from it).
    fn examine(&mut self, record: Record<'_>, out: &mut Output, tally: &mut Tally) -> Result<(), String> {
        let Some(value) = self.read(record)? else {
            if self.pass_through {
                out.emit(record);
            }
            return Ok(());
        };
        let assessments = self.assess(value);
        let findings: Vec<alert::Finding<'_>> = self
            .detectors
            .iter()
            .zip(&assessments)
            .filter_map(|(detector, assessment)| assessment.as_ref().map(|assessment| (detector, assessment)))
            .filter(|(_, assessment)| assessment.anomalous)
            .map(|(detector, assessment)| alert::Finding { detector: &detector.name, assessment })
            .collect();
        // Parsed only for anomalies, and before learning, so that a refusal teaches nothing.
        let original = if findings.is_empty() { None } else { Some(record.raw_object()?) };
        if let Some(original) = &original {
            let anomaly = alert::Anomaly { field: &self.field, group_by: &self.group_by, value, findings: &findings };
            let alerts_port = if self.alerts == AlertsTo::Output { 1 } else { 0 };
            anomaly.emit(out, record, original, self.pass_through, alerts_port);
            tally.alerts += findings.len() as u64;
        } else if self.pass_through {
            out.emit(record);
        }
        tally.forgotten_keys += self.learn(value, record.timestamp(), &assessments);
        Ok(())
    }

    /// The watched value of `record` (`None` when null), and its key into `self.group`.
    fn read(&mut self, record: Record<'_>) -> Result<Option<f64>, String> {
        let values = record.look_up(&self.lookups)?;
        let (group_values, field_value) = values.split_at(self.group_by.len());
        let text = field_value.first().copied().flatten().ok_or_else(|| format!("field {} is missing", self.field))?;
        let Some(value) = json::finite_text_number(&self.field, text)? else { return Ok(None) };
        sluice_sdk::json::write_key_texts(&mut self.group, group_values);
        Ok(Some(value))
    }

    /// Each detector's verdict on `value` against its key's history, warm-up applied.
    fn assess(&mut self, value: f64) -> Vec<Option<Assessment>> {
        let history = self.statistics.get(&self.group).filter(|key| key.fit(&self.detectors));
        let warming_up = history.map_or(0, |key| key.seen) < self.warm_up;
        let scratch = &mut self.scratch;
        let mut assessments = Vec::with_capacity(self.detectors.len());
        for (position, detector) in self.detectors.iter().enumerate() {
            let statistics = history.and_then(|key| key.detectors.get(position));
            let mut assessment = detector.assess(statistics, value, scratch);
            if let Some(assessment) = &mut assessment {
                assessment.anomalous &= !(warming_up && detector.learns());
            }
            assessments.push(assessment);
        }
        assessments
    }

    /// Teaches `value` to every detector of the current key; returns how many keys were forgotten.
    fn learn(&mut self, value: f64, timestamp: i64, assessments: &[Option<Assessment>]) -> u64 {
        let detectors = &self.detectors;
        self.statistics.learn(&self.group, self.max_keys, detectors, |key| {
            if !key.fit(detectors) {
                key.reset(detectors);
            }
            key.seen = key.seen.saturating_add(1);
            for ((detector, statistics), assessment) in detectors.iter().zip(&mut key.detectors).zip(assessments) {
                detector.update(statistics, value, timestamp, assessment.as_ref());
            }
        })
    }
}

sluice_sdk::export_operator!(AnomalyDetect);

#[cfg(test)]
mod tests;
