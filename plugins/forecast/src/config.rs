//! The operator's configuration, and its checked form: what `init` accepts or refuses.

use serde::Deserialize;
use sluice_sdk::{FieldPath, Millis};

use crate::model::Parameters;
use crate::normal::inverse_normal_cdf;
use crate::output::OUTPUT_FIELDS;

/// Most keys kept, whatever the configuration: the state must stay bounded.
pub const MAX_KEYS: usize = 1_000_000;

/// Most points per season.
pub const MAX_SEASON_LENGTH: usize = 10_000;

/// Most forecasts per record.
pub const MAX_HORIZON: usize = 1_000;

/// Most bytes the keys may take at worst, snapshot included: half the default `memory_limit`
/// (128 MiB), the rest left for the batches in and out, the allocator's slack and the program.
/// Refusing more at `init` beats trapping on the memory limit once the keys have filled up.
pub const STATE_BUDGET_BYTES: usize = 64 << 20;

/// A key's bytes besides its numbers: its text (up to about 64 bytes) and its entry in the map,
/// in memory and in the snapshot (about 250 bytes measured with keys of 18 bytes).
pub const KEY_BYTES: usize = 384;

/// The length of a key's text that [`KEY_BYTES`] covers; a longer key costs its further bytes
/// twice (in memory and in a snapshot), counted against [`STATE_BUDGET_BYTES`] as keys come.
pub const KEY_TEXT_BYTES: usize = 64;

/// The bytes a key's text takes beyond what [`bytes_per_key`] counts for it.
pub fn key_text_excess(key: &str) -> usize {
    2 * key.len().saturating_sub(KEY_TEXT_BYTES)
}

/// The widest prediction interval: beyond it the normal quantile runs into the rounding of
/// (1 + interval) / 2, and such a bound says nothing the model's normality can back.
pub const MAX_INTERVAL: f64 = 0.999_999;

/// The `config` table of a forecast operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    /// The fields whose values form a series' key; none: one series.
    #[serde(default)]
    pub key: Vec<FieldPath>,
    /// Fields of each input copied into its output as they are (such as `window_end`).
    #[serde(default)]
    pub carry: Vec<FieldPath>,
    /// The number forecast.
    pub value: FieldPath,
    /// Level smoothing.
    pub alpha: f64,
    /// Trend smoothing; absent: no trend.
    pub beta: Option<f64>,
    /// Whether the model has a trend; defaults to whether `beta` is set.
    pub trend: Option<bool>,
    /// Season smoothing; required with a season.
    pub gamma: Option<f64>,
    /// Points per season; absent or 0: no season.
    pub season_length: Option<usize>,
    /// How many points ahead each record forecasts.
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// The coverage of the prediction intervals.
    #[serde(default = "default_interval")]
    pub interval: f64,
    /// Most keys kept; records of further new keys are dropped.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// The distance between consecutive points in event time; absent: arrival order.
    pub step: Option<Millis>,
}

fn default_horizon() -> usize {
    1
}

fn default_interval() -> f64 {
    0.95
}

fn default_max_keys() -> usize {
    10_000
}

/// The checked configuration.
#[derive(Debug)]
pub struct Settings {
    pub key: Vec<FieldPath>,
    /// Fields copied from each input into its output.
    pub carry: Vec<FieldPath>,
    pub value: FieldPath,
    pub parameters: Parameters,
    pub horizon: usize,
    /// The normal quantile for the interval's coverage: half-width = z·σₕ.
    pub z: f64,
    /// Per step h, the h-step forecast variance divided by the one-step variance.
    pub variance_factors: Vec<f64>,
    pub max_keys: usize,
    /// `step` in milliseconds.
    pub step: Option<i64>,
    /// Every field read from a record, in one pass: the key fields, the carried ones, then the value.
    pub lookups: sluice_sdk::FieldLookup,
}

impl Settings {
    pub fn from_config(config: ForecastConfig) -> Result<Settings, String> {
        let parameters = parameters(&config)?;
        check_range("horizon", config.horizon, 1, MAX_HORIZON)?;
        if !(config.interval > 0.0 && config.interval <= MAX_INTERVAL) {
            return Err(format!(
                "`interval` is the coverage of the prediction intervals, above 0 and at most {MAX_INTERVAL} (such as 0.95), got {}",
                config.interval
            ));
        }
        check_range("max_keys", config.max_keys, 1, MAX_KEYS)?;
        check_memory(config.max_keys, &parameters)?;
        let step = match config.step {
            Some(Millis(0)) => return Err("`step` must be positive, such as step = \"1m\"".into()),
            step => step.map(|step| step.0),
        };
        let copied: Vec<FieldPath> = config.key.iter().chain(&config.carry).cloned().collect();
        check_copied_fields(&copied)?;
        let lookups = sluice_sdk::FieldLookup::new(copied.into_iter().chain([config.value.clone()]).collect());
        Ok(Settings {
            // The upper (1 + interval) / 2 quantile, as minus the lower one: 1 − interval is exact
            // for an interval of 0.5 or more, where 0.5 + interval / 2 would round towards 1.
            z: -inverse_normal_cdf((1.0 - config.interval) / 2.0),
            variance_factors: parameters.variance_factors(config.horizon),
            key: config.key,
            carry: config.carry,
            value: config.value,
            parameters,
            horizon: config.horizon,
            max_keys: config.max_keys,
            step,
            lookups,
        })
    }
}

/// The smoothing parameters, with trend and season each on or off as a whole.
fn parameters(config: &ForecastConfig) -> Result<Parameters, String> {
    let alpha = smoothing("alpha", config.alpha)?;
    let beta = match (config.trend, config.beta) {
        (Some(true), None) => return Err("trend = true needs `beta`, the trend's smoothing parameter, such as beta = 0.1".into()),
        (Some(false), Some(_)) => {
            return Err("`beta` is set but trend = false: remove `beta` for a model without trend, or remove `trend`".into());
        }
        (_, beta) => beta.map(|beta| smoothing("beta", beta)).transpose()?,
    };
    let season_length = config.season_length.unwrap_or(0);
    let gamma = match (season_length, config.gamma) {
        (0, None) => 0.0,
        (0, Some(_)) => {
            return Err(
                "`gamma` smooths the season, but there is none: set `season_length` (points per season, such as 12) or remove `gamma`"
                    .into(),
            );
        }
        (1, _) => return Err("`season_length` must be at least 2 points per season (or 0 for no season), got 1".into()),
        (m, _) if m > MAX_SEASON_LENGTH => return Err(format!("`season_length` must be at most {MAX_SEASON_LENGTH}, got {m}")),
        (m, None) => return Err(format!("season_length = {m} needs `gamma`, the season's smoothing parameter, such as gamma = 0.1")),
        (_, Some(gamma)) => smoothing("gamma", gamma)?,
    };
    Ok(Parameters { alpha, beta, gamma, season_length })
}

fn smoothing(name: &str, value: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("`{name}` is a smoothing parameter and must be between 0 and 1, got {value}"))
    }
}

fn check_range(name: &str, value: usize, low: usize, high: usize) -> Result<(), String> {
    if (low..=high).contains(&value) { Ok(()) } else { Err(format!("`{name}` must be between {low} and {high}, got {value}")) }
}

/// Refuses `max_keys` keys that could take more than [`STATE_BUDGET_BYTES`] at worst.
fn check_memory(max_keys: usize, parameters: &Parameters) -> Result<(), String> {
    let per_key = bytes_per_key(parameters);
    let bytes = max_keys.saturating_mul(per_key);
    if bytes > STATE_BUDGET_BYTES {
        let mebibytes = |bytes: usize| bytes as f64 / f64::from(1 << 20);
        return Err(format!(
            "`max_keys` = {max_keys} keys of up to {per_key} bytes each (season_length = {}, warm-up and snapshot included) \
             need {bytes} bytes ({:.2} MiB), above the {STATE_BUDGET_BYTES} bytes ({:.0} MiB) the state may take within the \
             default 128 MiB memory_limit: lower `max_keys` to at most {} or lower `season_length`",
            parameters.season_length,
            mebibytes(bytes),
            mebibytes(STATE_BUDGET_BYTES),
            STATE_BUDGET_BYTES / per_key
        ));
    }
    Ok(())
}

/// The most bytes one key takes, in memory and in a snapshot taken then. A key holds either its
/// warm-up points (all but the last of [`Parameters::warm_up_length`], in a buffer of exactly
/// that many numbers: 8 bytes each, 9 in the snapshot) or its seasonals (8 bytes each in both),
/// never both: the warm-up's buffer is freed when the model is built from it.
pub fn bytes_per_key(parameters: &Parameters) -> usize {
    let warm_up = parameters.warm_up_length() - 1;
    let seasonals = parameters.season_length;
    let in_memory = 8 * warm_up.max(seasonals);
    let in_snapshot = (9 * warm_up).max(8 * seasonals);
    in_memory + in_snapshot + KEY_BYTES
}

/// Key and carried fields are written back at their paths beside the output fields: none may
/// hide another.
fn check_copied_fields(copied: &[FieldPath]) -> Result<(), String> {
    for (position, path) in copied.iter().enumerate() {
        let first = path.segments().first().map_or("", String::as_str);
        if OUTPUT_FIELDS.contains(&first) {
            return Err(format!(
                "key or carried field `{path}` would clash with the output field `{first}`; rename it upstream (e.g. with `project`)"
            ));
        }
        let inside = |outer: &FieldPath, inner: &FieldPath| inner.segments().starts_with(outer.segments());
        if let Some(other) = copied[..position].iter().find(|other| inside(other, path) || inside(path, other)) {
            return Err(format!(
                "key or carried fields `{other}` and `{path}` overlap: list each field once (in `key` or `carry`), and not a field and one inside it"
            ));
        }
    }
    Ok(())
}
