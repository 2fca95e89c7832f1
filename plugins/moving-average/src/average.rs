//! The averages of the configuration: checking them, naming their output, and what each one
//! keeps per key.

use serde::{Deserialize, Serialize};
use sluice_sdk::Millis;
use sluice_sdk::state::EntryDefinition;

use crate::cumulative::CumulativeMean;
use crate::exponential::{ByAlpha, ByHalfLife};
use crate::simple::{EventTimeSpan, LastRecords};

/// One average of the configuration, such as `{ type = "simple", records = 10, as = "sma_10" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AverageConfig {
    /// The mean over the last `records` records, or over the records within `span` of the newest.
    Simple {
        records: Option<usize>,
        span: Option<Millis>,
        #[serde(rename = "as")]
        name: Option<String>,
    },
    /// An exponential average with a fixed `alpha` per record, or decaying by `half_life` of event time.
    Exponential {
        alpha: Option<f64>,
        half_life: Option<Millis>,
        #[serde(rename = "as")]
        name: Option<String>,
    },
    /// The mean of all the key's values so far.
    Cumulative {
        #[serde(rename = "as")]
        name: Option<String>,
    },
}

/// One checked average: what it averages over, and the name of its output field.
#[derive(Debug, Clone, PartialEq)]
pub struct Average {
    pub name: String,
    pub kind: AverageKind,
}

/// What an average averages over (durations in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AverageKind {
    LastRecords(usize),
    Span(i64),
    Alpha(f64),
    HalfLife(i64),
    Cumulative,
}

impl Average {
    /// What this average of `field` is, as a state records it (version 5), so that a restore
    /// under another configuration (a swap, a file edit, a restart) matches each average up by
    /// what it averages, not by its place: the averaged field and the kind of average
    /// (`price exponential-alpha`), and the kind's parameter (`0.3`, `10`, `300000ms`; none for
    /// the cumulative mean).
    pub fn definition(&self, field: &str) -> EntryDefinition {
        let (kind, parameter) = match self.kind {
            AverageKind::LastRecords(records) => ("simple-records", records.to_string()),
            AverageKind::Span(span) => ("simple-span", format!("{span}ms")),
            AverageKind::Alpha(alpha) => ("exponential-alpha", alpha.to_string()),
            AverageKind::HalfLife(half_life) => ("exponential-half-life", format!("{half_life}ms")),
            AverageKind::Cumulative => ("cumulative", String::new()),
        };
        EntryDefinition { name: self.name.clone(), family: format!("{field} {kind}"), parameters: parameter }
    }
}

impl AverageConfig {
    /// Checks the average at `position` of `averages`; `records` may not exceed `max_records`.
    pub fn check(&self, position: usize, max_records: usize) -> Result<Average, String> {
        let fail = |message: String| format!("averages[{position}]: {message}");
        let (kind, name) = match self {
            AverageConfig::Simple { records, span, name } => (simple_kind(*records, *span, max_records).map_err(fail)?, name),
            AverageConfig::Exponential { alpha, half_life, name } => (exponential_kind(*alpha, *half_life).map_err(fail)?, name),
            AverageConfig::Cumulative { name } => (AverageKind::Cumulative, name),
        };
        let name = name.clone().unwrap_or_else(|| default_name(kind));
        if name.is_empty() {
            return Err(fail("`as` must not be empty".into()));
        }
        Ok(Average { name, kind })
    }
}

fn simple_kind(records: Option<usize>, span: Option<Millis>, max_records: usize) -> Result<AverageKind, String> {
    match (records, span) {
        (Some(_), Some(_)) => Err("give `records` or `span`, not both".into()),
        (None, None) => Err("a simple average needs `records` (how many records) or `span` (a duration such as \"5m\")".into()),
        (Some(0), None) => Err("records must be at least 1".into()),
        (Some(records), None) if records > max_records => {
            Err(format!("records = {records} is more than max_records = {max_records}; raise max_records to keep that many"))
        }
        (Some(records), None) => Ok(AverageKind::LastRecords(records)),
        (None, Some(Millis(0))) => Err("span must be positive".into()),
        (None, Some(Millis(span))) => Ok(AverageKind::Span(span)),
    }
}

fn exponential_kind(alpha: Option<f64>, half_life: Option<Millis>) -> Result<AverageKind, String> {
    match (alpha, half_life) {
        (Some(_), Some(_)) => Err("give `alpha` or `half_life`, not both".into()),
        (None, None) => Err("an exponential average needs `alpha` (0 < alpha <= 1) or `half_life` (a duration such as \"1m\")".into()),
        (Some(alpha), None) if alpha > 0.0 && alpha <= 1.0 => Ok(AverageKind::Alpha(alpha)),
        (Some(alpha), None) => Err(format!("alpha must be greater than 0 and at most 1, got {alpha}")),
        (None, Some(Millis(0))) => Err("half_life must be positive".into()),
        (None, Some(Millis(half_life))) => Ok(AverageKind::HalfLife(half_life)),
    }
}

/// `sma_10`, `sma_5m`, `ema_0_3` (no dot: other operators read dots as paths), `ema_1m`, and
/// `cma` (the cumulative moving average, which has no parameter).
fn default_name(kind: AverageKind) -> String {
    match kind {
        AverageKind::LastRecords(records) => format!("sma_{records}"),
        AverageKind::Span(span) => format!("sma_{}", compact_duration(span)),
        AverageKind::Alpha(alpha) => format!("ema_{}", alpha.to_string().replace('.', "_")),
        AverageKind::HalfLife(half_life) => format!("ema_{}", compact_duration(half_life)),
        AverageKind::Cumulative => "cma".to_owned(),
    }
}

/// `300000` as `5m`, `1500` as `1500ms`: the largest unit that divides the duration.
fn compact_duration(millis: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    match UNITS.iter().find(|(unit, _)| millis % unit == 0) {
        Some((unit, suffix)) => format!("{}{suffix}", millis / unit),
        None => format!("{millis}ms"),
    }
}

/// What one average keeps for one key. New kinds go last: the encoding numbers the variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AverageState {
    LastRecords(LastRecords),
    Span(EventTimeSpan),
    Alpha(ByAlpha),
    HalfLife(ByHalfLife),
    Cumulative(CumulativeMean),
}

impl AverageState {
    pub fn fresh(kind: AverageKind) -> AverageState {
        match kind {
            AverageKind::LastRecords(_) => AverageState::LastRecords(LastRecords::default()),
            AverageKind::Span(_) => AverageState::Span(EventTimeSpan::default()),
            AverageKind::Alpha(_) => AverageState::Alpha(ByAlpha::default()),
            AverageKind::HalfLife(_) => AverageState::HalfLife(ByHalfLife::default()),
            AverageKind::Cumulative => AverageState::Cumulative(CumulativeMean::default()),
        }
    }

    /// Adds a value; returns how many values a span window dropped early (`max_records`).
    ///
    /// State restored from a configuration with another kind of average at this position
    /// starts afresh rather than being misread.
    pub fn add(&mut self, kind: AverageKind, timestamp: i64, x: f64, max_records: usize) -> u64 {
        match (&mut *self, kind) {
            (AverageState::LastRecords(state), AverageKind::LastRecords(records)) => state.add(x, records),
            (AverageState::Span(state), AverageKind::Span(span)) => return state.add(timestamp, x, span, max_records),
            (AverageState::Alpha(state), AverageKind::Alpha(alpha)) => state.add(x, alpha),
            (AverageState::HalfLife(state), AverageKind::HalfLife(half_life)) => state.add(timestamp, x, half_life),
            (AverageState::Cumulative(state), AverageKind::Cumulative) => state.add(x),
            _ => {
                *self = AverageState::fresh(kind);
                return self.add(kind, timestamp, x, max_records);
            }
        }
        0
    }

    /// The average's value; `None` before any value.
    pub fn value(&self) -> Option<f64> {
        match self {
            AverageState::LastRecords(state) => state.mean(),
            AverageState::Span(state) => state.mean(),
            AverageState::Alpha(state) => state.value(),
            AverageState::HalfLife(state) => state.value(),
            AverageState::Cumulative(state) => state.mean(),
        }
    }
}
