//! The quality reports of the side output `report`: one record per model that learnt since
//! the last watermark.

use serde::Serialize;
use sluice_sdk::FieldPath;
use sluice_sdk::edit::RawObject;
use sluice_sdk::json::number;
use sluice_sdk::serde_json::Value;
use sluice_sdk::serde_json::value::RawValue;

use crate::config::{Settings, Task};
use crate::model::Model;
use crate::state::LearnState;

/// Sends to the side output (port 1), with event time `time`, the report of every model that
/// learnt since the last reports: the global model first, then keys in order.
pub fn emit(state: &LearnState, settings: &Settings, time: i64, out: &mut sluice_sdk::Batch) {
    if state.global_changed {
        out.push_json_to(1, &report(&state.global, &"global", settings.task), time);
    }
    for key in &state.changed_keys {
        if let Some(model) = state.keyed.get(key) {
            out.push_json_to(1, &report(model, &key_name(&settings.key, key), settings.task), time);
        }
    }
}

/// `{"model", "examples", "horizon", <metrics>, "weights"}` for `model`, named `name`.
fn report<'n>(model: &Model, name: &(impl Serialize + ?Sized), task: Task) -> RawObject<'n> {
    let window = &model.window;
    let mut fields: Vec<(&str, Value)> = vec![("examples", Value::from(model.examples)), ("horizon", Value::from(window.len()))];
    match task {
        Task::Classification => {
            fields.push(("log_loss", number(window.log_loss())));
            fields.push(("accuracy", number(window.accuracy())));
            fields.push(("auc", window.auc().map_or(Value::Null, number)));
        }
        Task::Regression => {
            fields.push(("mae", number(window.mean_absolute_error())));
            fields.push(("rmse", number(window.root_mean_squared_error())));
        }
    }
    fields.push(("weights", Value::from(model.nonzero_weights())));
    let mut report = RawObject::new();
    // Names, numbers and JSON texts are always written.
    let _ = report.set_member_value("model", name);
    for (name, value) in fields {
        let _ = report.set_member_value(name, &value);
    }
    report
}

/// The name of a key's model: `{<key path>: <value>, ...}` from the key's canonical text (so a
/// number past a double keeps its digits).
fn key_name<'k>(key_paths: &[FieldPath], key: &'k str) -> RawObject<'k> {
    let values = sluice_sdk::json::key_values(key).unwrap_or_default();
    let mut name = RawObject::new();
    for (position, path) in key_paths.iter().enumerate() {
        let value = values.get(position).copied().unwrap_or(RawValue::NULL);
        name.set_member(&path.to_string(), value.to_owned());
    }
    name
}
