use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output};

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
            match record.json_object() {
                Ok(mut object) => {
                    if let Some(value) = self.0.field.get(&object).and_then(|v| v.as_f64()) {
                        let _ = self.0.field.set(&mut object, self.0.limit.min(value).into());
                    }
                    out.emit_json_like(record, &object);
                }
                Err(reason) => out.reject(record.index(), reason),
            }
        }
    }
}

sluice_sdk::export_operator!(Cap);
