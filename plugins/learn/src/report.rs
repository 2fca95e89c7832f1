//! The quality reports of the side output `report`: one record per model that learnt since
//! the last watermark.

use sluice_sdk::json::number;
use sluice_sdk::serde_json::{Map, Value};
use sluice_sdk::{FieldPath, serde_json};

use crate::config::{Settings, Task};
use crate::model::Model;
use crate::state::LearnState;

/// Sends to the side output (port 1), with event time `time`, the report of every model that
/// learnt since the last reports: the global model first, then keys in order.
pub fn emit(state: &LearnState, settings: &Settings, time: i64, out: &mut sluice_sdk::Batch) {
    if state.global_changed {
        out.push_json_to(1, &report(&state.global, Value::from("global"), settings.task), time);
    }
    for key in &state.changed_keys {
        if let Some(model) = state.keyed.get(key) {
            out.push_json_to(1, &report(model, key_name(&settings.key, key), settings.task), time);
        }
    }
}

/// `{"model", "examples", "horizon", <metrics>, "weights"}` for `model`, named `name`.
fn report(model: &Model, name: Value, task: Task) -> Value {
    let window = &model.window;
    let mut fields = Map::new();
    fields.insert("model".into(), name);
    fields.insert("examples".into(), Value::from(model.examples));
    fields.insert("horizon".into(), Value::from(window.len()));
    match task {
        Task::Classification => {
            fields.insert("log_loss".into(), number(window.log_loss()));
            fields.insert("accuracy".into(), number(window.accuracy()));
            fields.insert("auc".into(), window.auc().map_or(Value::Null, number));
        }
        Task::Regression => {
            fields.insert("mae".into(), number(window.mean_absolute_error()));
            fields.insert("rmse".into(), number(window.root_mean_squared_error()));
        }
    }
    fields.insert("weights".into(), Value::from(model.nonzero_weights()));
    Value::Object(fields)
}

/// The name of a key's model: `{<key path>: <value>, ...}` from the key's canonical text.
fn key_name(key_paths: &[FieldPath], key: &str) -> Value {
    let values: Vec<Value> = serde_json::from_str(key).unwrap_or_default();
    let fields =
        key_paths.iter().enumerate().map(|(position, path)| (path.to_string(), values.get(position).cloned().unwrap_or(Value::Null)));
    Value::Object(fields.collect())
}
