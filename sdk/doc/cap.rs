use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config { field: FieldPath, limit: f64 }

pub struct Cap(Config);

impl Operator for Cap {
    type Config = Config;
    fn init(config: Config) -> Result<Self, String> { Ok(Cap(config)) }
    fn distribution(&self) -> Distribution { Distribution::Any } // stateless: any instance
    fn process(&mut self, batch: &Batch, out: &mut Output) {
        for record in batch.iter() {
            // raw_object: the fields not set keep their exact text (numbers past a double too).
            match record.raw_object() {
                Ok(mut object) => {
                    let value = object.get(&self.0.field).and_then(|text| json::raw_number(&text).ok().flatten());
                    if value.is_some_and(|value| value > self.0.limit) {
                        let _ = object.set_value(&self.0.field, &self.0.limit);
                    }
                    out.emit_json_like(record, &object);
                }
                Err(reason) => out.reject(record.index(), reason),
            }
        }
    }
}

sluice_sdk::export_operator!(Cap);
