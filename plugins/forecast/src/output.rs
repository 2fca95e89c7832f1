//! The record emitted for a point: its key, its value, the forecast it was given, and the next
//! forecasts with their prediction intervals.

use std::borrow::Cow;

use serde::Serialize;
use sluice_sdk::FieldPath;
use sluice_sdk::edit::{RawNode, RawObject};
use sluice_sdk::json::number;
use sluice_sdk::serde_json::value::RawValue;
use sluice_sdk::serde_json::{self, Value};

use crate::config::Settings;
use crate::model::Model;
use crate::series::SquaredErrors;

/// The fields of an output record besides the key fields.
pub const OUTPUT_FIELDS: [&str; 4] = ["value", "forecast", "residual", "forecasts"];

/// The key fields and the carried fields as the input had them (their exact text), at their
/// paths (null where one was missing): the start of an output record. `copied` holds their
/// values in that order.
pub fn key_fields<'r>(settings: &Settings, copied: &[Option<&'r [u8]>]) -> Result<RawObject<'r>, String> {
    let mut record = RawObject::new();
    for (path, text) in settings.key.iter().chain(&settings.carry).zip(copied) {
        set_key_field(&mut record, path, *text)?;
    }
    Ok(record)
}

/// An output record: `{<key and carried fields>, "value", "forecast", "residual", "forecasts": [...]}`.
#[derive(Debug, Serialize)]
pub struct Emitted<'k, 'r> {
    #[serde(flatten)]
    key: &'k RawObject<'r>,
    value: Value,
    forecast: Value,
    residual: Value,
    forecasts: Vec<Ahead>,
}

/// One forecast ahead: `{"step", "value", "lower", "upper"}`.
#[derive(Debug, Serialize)]
struct Ahead {
    step: usize,
    value: Value,
    lower: Value,
    upper: Value,
}

/// The record of a point `y` given `forecast` before it was seen, with the forecasts of the
/// key's model after it (none when the point made the model overflow and it was reset); the
/// bounds are null until the key has a one-step error to estimate σ² from.
pub fn record<'k, 'r>(
    key: &'k RawObject<'r>,
    settings: &Settings,
    y: f64,
    forecast: Option<f64>,
    model: Option<(&Model, &SquaredErrors)>,
) -> Emitted<'k, 'r> {
    Emitted {
        key,
        value: number(y),
        forecast: forecast.map_or(Value::Null, number),
        residual: forecast.map_or(Value::Null, |forecast| number(y - forecast)),
        forecasts: model.map_or_else(Vec::new, |(model, errors)| forecasts(settings, model, errors)),
    }
}

/// A key field as the input had it (null where it was missing).
fn set_key_field<'r>(record: &mut RawObject<'r>, path: &FieldPath, text: Option<&'r [u8]>) -> Result<(), String> {
    let value: &'r RawValue = match text {
        Some(text) => serde_json::from_slice(text).map_err(|error| format!("key field {path} is not valid JSON: {error}"))?,
        None => RawValue::NULL,
    };
    record.set_node(path, RawNode::Text(Cow::Borrowed(value)))
}

/// The forecasts for steps 1..=horizon.
fn forecasts(settings: &Settings, model: &Model, errors: &SquaredErrors) -> Vec<Ahead> {
    let variance = errors.variance();
    let ahead = (1..=settings.horizon).zip(&settings.variance_factors).map(|(step, factor)| {
        let value = model.forecast(step);
        let half_width = variance.map(|variance| settings.z * (variance * factor).sqrt());
        let bound = |sign: f64| half_width.map_or(Value::Null, |half_width| number(value + sign * half_width));
        Ahead { step, value: number(value), lower: bound(-1.0), upper: bound(1.0) }
    });
    ahead.collect()
}
