//! `forecast`: forecasts a numeric series per key with additive Holt-Winters (level, trend,
//! season), emitting the next forecasts with prediction intervals.
//!
//! ```toml
//! [operators.config]
//! key = ["category"]     # dotted paths; none = one series
//! carry = ["window_end"] # fields copied from each input into its output
//! value = "revenue"      # dotted path to the number forecast
//! alpha = 0.3            # level smoothing, 0–1
//! beta = 0.1             # trend smoothing, 0–1; absent (or trend = false): no trend
//! gamma = 0.2            # season smoothing, 0–1; required with a season
//! season_length = 12     # points per season; absent or 0: no season (Holt's linear method)
//! horizon = 3            # forecasts ahead per record
//! interval = 0.95        # coverage of the prediction intervals, at most 0.999999
//! step = "1m"            # points lie on a grid of event time; absent: consecutive in arrival order
//! max_keys = 10000       # keys kept; records of further new keys are dropped (counted)
//! ```
//! The model is statsmodels' `ExponentialSmoothing(trend="add" or None, seasonal="add" or None,
//! seasonal_periods=season_length)` fitted with fixed `smoothing_level`, `smoothing_trend`,
//! `smoothing_seasonal` and its simple initialisation: with a season, level = mean of the first
//! season, trend = mean((y[m..2m] − y[..m]) / m), seasonals = y[..m] − level; without, level = y₀,
//! trend = y₁ − y₀. So a key's first points (two seasons with a trend, one without; two points or
//! one without a season) are its warm-up: all but the last are absorbed, the last initialises the
//! model and the recursions run from the key's first point. From the point that completes the
//! warm-up on, each point is emitted as `{<key fields at their paths>, "value", "forecast",
//! "residual", "forecasts": [{"step", "value", "lower", "upper"}, …]}` with the input's event
//! time, key and headers: `forecast` is the one-step forecast made before
//! the point was seen (null for the point completing the warm-up), `residual` = value − forecast.
//! σ² is the mean of the key's squared residuals; the h-step interval is the forecast ± z·σ·
//! sqrt(1 + Σ_{j<h} c_j²), c_j = α(1 + jβ) + γ·[j mod m = 0] (bounds null before a residual).
//!
//! With `step`, a point's slot is ⌊event time / step⌋: missing slots advance the model by its own
//! forecast without learning (the season stays aligned), and a point not after its key's last
//! slot is dropped (`out_of_order_dropped`). Missing slots inside the warm-up are filled by linear
//! interpolation for the initial values only. A null or missing value is dropped
//! (`missing_value_dropped`); a non-numeric or non-finite one, or a record that is not an object, is
//! rejected. Distribution: by `key`. State (version 1): per key, level, trend, seasonals, the
//! warm-up points, the squared-error sum and the last slot; at most `max_keys` keys
//! (`max_keys_dropped`), each holding at most `season_length` seasonals or two seasons of
//! warm-up points; `init` refuses a `max_keys` whose keys could take more than 64 MiB at worst,
//! snapshot included (`bytes_per_key`); a key longer than 64 bytes counts its further bytes
//! twice, and a new key that would pass the bound is dropped (`key_memory_dropped`). A point that
//! makes the model or its squared-error sum overflow to infinity is emitted with no forecasts,
//! and its key warms up again (`models_reset`). Gauges `keys`, `keys_warming_up`.

mod config;
mod model;
mod normal;
mod output;
mod series;
mod state;

use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, Record, State};

pub use config::{
    ForecastConfig, KEY_BYTES, KEY_TEXT_BYTES, MAX_HORIZON, MAX_INTERVAL, MAX_KEYS, MAX_SEASON_LENGTH, STATE_BUDGET_BYTES, bytes_per_key,
    key_text_excess,
};
pub use model::{Model, Parameters};
pub use normal::inverse_normal_cdf;
pub use series::{Observed, Series, SquaredErrors, Stage};
pub use state::{ForecastState, Shape};

use config::Settings;

/// A running forecast operator.
pub struct Forecast {
    settings: Settings,
    state: ForecastState,
    /// The key being read, reused across records.
    key_text: String,
    /// The bytes the kept keys' texts take beyond what `bytes_per_key` counts (long keys).
    key_text_excess: usize,
    /// Whether the log said that `max_keys` was reached.
    warned_full: bool,
    /// Whether the log said that the keys' memory bound was reached.
    warned_long_keys: bool,
}

impl Operator for Forecast {
    type Config = ForecastConfig;

    fn init(config: ForecastConfig) -> Result<Self, String> {
        let settings = Settings::from_config(config)?;
        let state = ForecastState::new(Shape::of(&settings));
        Ok(Forecast { settings, state, key_text: String::new(), key_text_excess: 0, warned_full: false, warned_long_keys: false })
    }

    fn distribution(&self) -> Distribution {
        Distribution::grouped_by(&self.settings.key)
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        let mut counts = Counts::default();
        for record in batch.iter() {
            if let Err(reason) = self.process_record(record, out, &mut counts) {
                out.reject(record.index(), reason);
            }
        }
        counts.report();
        if counts.max_keys_dropped > 0 && !self.warned_full {
            self.warned_full = true;
            let message = format!(
                "max_keys ({}) reached: records of further new keys are dropped (counted in max_keys_dropped); raise max_keys",
                self.settings.max_keys
            );
            sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
        }
        if counts.key_memory_dropped > 0 && !self.warned_long_keys {
            self.warned_long_keys = true;
            let message = format!(
                "the keys reached the {} MiB bound of their memory before max_keys ({}): keys longer than {KEY_TEXT_BYTES} bytes \
                 count their further bytes twice; records of further new keys are dropped (counted in key_memory_dropped)",
                STATE_BUDGET_BYTES >> 20,
                self.settings.max_keys
            );
            sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
        }
    }

    fn on_watermark(&mut self, _watermark: i64, _out: &mut Batch) {
        sluice_sdk::host::gauge_set("keys", self.state.series.len() as f64);
        sluice_sdk::host::gauge_set("keys_warming_up", self.state.warming_up() as f64);
    }

    fn snapshot(&self) -> State {
        State::encode(&self.state)
    }

    fn restore(&mut self, state: State) -> Result<(), String> {
        let restored: ForecastState = state.decode()?;
        if restored.shape == self.state.shape {
            self.state = restored;
            self.key_text_excess = self.state.series.keys().map(|key| key_text_excess(key)).sum();
        } else {
            let message = format!(
                "the restored series were learnt with {}; this configuration has {}: every key warms up again",
                restored.shape, self.state.shape
            );
            sluice_sdk::host::log(sluice_sdk::host::Level::Warn, &message);
        }
        Ok(())
    }
}

impl Forecast {
    /// Learns one record's point and emits its record once its key's model exists; an error
    /// rejects the record (and then nothing was learnt from it).
    fn process_record(&mut self, record: Record<'_>, out: &mut Output, counts: &mut Counts) -> Result<(), String> {
        let found = record.look_up(&self.settings.lookups)?;
        check_object(record.value())?;
        let (copied, value) = found.split_at(self.settings.key.len() + self.settings.carry.len());
        let key_values = &copied[..self.settings.key.len()];
        let Some(y) = read_value(&self.settings.value, value.first().copied().flatten())? else {
            counts.missing_value_dropped += 1;
            return Ok(());
        };
        // Built before the state changes, so that nothing is learnt from a refused record.
        let key_fields = output::key_fields(&self.settings, copied)?;
        sluice_sdk::json::write_key_texts(&mut self.key_text, key_values);
        let kept = Kept { state: &mut self.state, key_text_excess: &mut self.key_text_excess };
        let Some(series) = series_of(kept, &self.key_text, &self.settings, record.timestamp(), counts) else {
            return Ok(());
        };
        let slot = match self.settings.step {
            Some(step) => record.timestamp().div_euclid(step),
            None => series.last_slot.saturating_add(1),
        };
        if slot <= series.last_slot {
            counts.out_of_order_dropped += 1;
            return Ok(());
        }
        match series.observe(slot, y, &self.settings.parameters) {
            Observed::Absorbed => {}
            Observed::Reset { forecast } => {
                counts.models_reset += 1;
                out.emit_json_like(record, &output::record(&key_fields, &self.settings, y, forecast, None));
            }
            // Learnt by a model, which the series then has.
            Observed::Learnt { forecast } => {
                out.emit_json_like(record, &output::record(&key_fields, &self.settings, y, forecast, series.model()));
            }
        }
        Ok(())
    }

    /// The state (for tests).
    pub fn state(&self) -> &ForecastState {
        &self.state
    }
}

/// The kept series and the bytes their keys' texts take beyond what `bytes_per_key` counts.
struct Kept<'s> {
    state: &'s mut ForecastState,
    key_text_excess: &'s mut usize,
}

/// The series of `key`, created for a new key unless `max_keys` are kept already, or the keys
/// would pass their memory bound (long keys take more than `bytes_per_key` counts).
fn series_of<'s>(kept: Kept<'s>, key: &str, settings: &Settings, timestamp: i64, counts: &mut Counts) -> Option<&'s mut Series> {
    let state = kept.state;
    if !state.series.contains_key(key) {
        if state.series.len() >= settings.max_keys {
            counts.max_keys_dropped += 1;
            return None;
        }
        let excess = key_text_excess(key);
        let counted = (state.series.len() + 1).saturating_mul(bytes_per_key(&settings.parameters));
        if counted.saturating_add(*kept.key_text_excess).saturating_add(excess) > STATE_BUDGET_BYTES {
            counts.key_memory_dropped += 1;
            return None;
        }
        *kept.key_text_excess += excess;
        let first_slot = settings.step.map_or(0, |step| timestamp.div_euclid(step));
        state.series.insert(key.to_owned(), Series::new(first_slot));
    }
    state.series.get_mut(key)
}

/// Refuses a payload that is valid JSON but not an object.
fn check_object(payload: &[u8]) -> Result<(), String> {
    let kind = match payload.iter().find(|byte| !byte.is_ascii_whitespace()) {
        Some(b'{') => return Ok(()),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    Err(format!("the record is {kind}, not a JSON object"))
}

/// The point's value: `Ok(None)` when missing or null (the record is dropped), an error a user can
/// act on for anything else that is not a finite number.
fn read_value(path: &FieldPath, text: Option<&[u8]>) -> Result<Option<f64>, String> {
    text.map_or(Ok(None), |text| sluice_sdk::json::finite_text_number(path, text))
}

/// What one call counted, reported as operator metrics at its end.
#[derive(Debug, Default)]
struct Counts {
    missing_value_dropped: u64,
    out_of_order_dropped: u64,
    max_keys_dropped: u64,
    key_memory_dropped: u64,
    models_reset: u64,
}

impl Counts {
    fn report(&self) {
        sluice_sdk::host::counters_add(&[
            ("missing_value_dropped", self.missing_value_dropped),
            ("out_of_order_dropped", self.out_of_order_dropped),
            ("max_keys_dropped", self.max_keys_dropped),
            ("key_memory_dropped", self.key_memory_dropped),
            ("models_reset", self.models_reset),
        ]);
    }
}

sluice_sdk::export_operator!(Forecast);

#[cfg(test)]
mod tests;
