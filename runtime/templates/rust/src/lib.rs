//! {{name}}: keeps the records whose numeric `field` is at least `min`; records without a
//! numeric `field` are rejected (they go to the dead-letter output with the reason).

use serde::Deserialize;
use sluice_sdk::{Batch, Distribution, FieldPath, Operator, Output, State, VersionedState};

/// The operator's `config` table in the pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    field: FieldPath,
    min: f64,
}

/// What survives restarts and hot swaps.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
pub struct Counts {
    kept: u64,
}

impl VersionedState for Counts {
    const VERSION: u32 = 1;
}

pub struct Threshold {
    config: Config,
    counts: Counts,
}

impl Operator for Threshold {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        Ok(Threshold { config, counts: Counts::default() })
    }

    /// Any instance may judge any record: the counts are per instance, which is all they
    /// claim to be. An operator keeping state per group returns `Distribution::Key(fields)`.
    fn distribution(&self) -> Distribution {
        Distribution::Any
    }

    fn process(&mut self, batch: &Batch, out: &mut Output) {
        for record in batch.iter() {
            match record.field(&self.config.field) {
                Ok(Some(value)) if value.is_number() => {
                    if value.as_f64().is_some_and(|number| number >= self.config.min) {
                        self.counts.kept += 1;
                        out.emit(record);
                    }
                }
                Ok(_) => out.reject(record.index(), format!("no numeric \"{}\"", self.config.field.leaf())),
                Err(reason) => out.reject(record.index(), reason),
            }
        }
    }

    fn snapshot(&self) -> State {
        State::encode(&self.counts)
    }

    fn restore(&mut self, state: State) -> Result<(), String> {
        self.counts = state.decode()?;
        Ok(())
    }
}

sluice_sdk::export_operator!(Threshold);

#[cfg(test)]
mod tests {
    use sluice_sdk::serde_json::json;
    use sluice_sdk::testing::{Harness, json_values};

    use super::Threshold;

    #[test]
    fn keeps_records_at_or_above_the_threshold_and_rejects_the_rest() {
        let mut harness = Harness::<Threshold>::new(json!({ "field": "price", "min": 100 })).expect("valid config");
        let output = harness.process_json(&[
            (json!({ "price": 99.5 }), 1),
            (json!({ "price": 100 }), 2),
            (json!({ "item": "no price" }), 3),
        ]);
        assert_eq!(json_values(&output.batch), vec![json!({ "price": 100 })]);
        assert_eq!(output.rejected.len(), 1);
        assert_eq!(output.rejected[0].index, 2);
    }
}
