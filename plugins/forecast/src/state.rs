//! The operator's state: every key's series, and the configuration they were learnt under.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use crate::config::Settings;
use crate::series::Series;

/// Every key's series, at most `max_keys` of them. Ordered, so that a snapshot of equal state is
/// equal bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastState {
    /// What the series' layout depends on: state learnt under another shape is not reused.
    pub shape: Shape,
    pub series: BTreeMap<String, Series>,
}

impl VersionedState for ForecastState {
    const VERSION: u32 = 1;
}

/// The parts of the configuration that a series' layout and slots depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub season_length: usize,
    pub trend: bool,
    pub step: Option<i64>,
}

impl Shape {
    pub fn of(settings: &Settings) -> Shape {
        Shape { season_length: settings.parameters.season_length, trend: settings.parameters.beta.is_some(), step: settings.step }
    }
}

/// In the configuration's words: `season_length = 12, beta (a trend), step = 60000 ms`.
impl std::fmt::Display for Shape {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "season_length = {}, {}, ", self.season_length, if self.trend { "a trend" } else { "no trend" })?;
        match self.step {
            Some(step) => write!(formatter, "step = {step} ms"),
            None => formatter.write_str("no step"),
        }
    }
}

impl ForecastState {
    pub fn new(shape: Shape) -> ForecastState {
        ForecastState { shape, series: BTreeMap::new() }
    }

    /// How many keys are still warming up.
    pub fn warming_up(&self) -> usize {
        self.series.values().filter(|series| series.warming_up()).count()
    }
}
