//! Dead letters: records that could not be processed, with where they came from and why.

use std::sync::Arc;

use serde_json::Value;

use crate::sink::record_json;
use crate::wasm::Batch;

/// The `timestamp` of a dead letter whose record has no event time (its time could not be
/// read): Kafka's mark for a record without one.
pub const NO_EVENT_TIME: i64 = -1;

/// A record that left the pipeline through the dead-letter sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub reason: String,
    /// The reason's class, a label of the `sluice_dead_letters_total` metric: refused, trap,
    /// deadline, memory, invalid-output, instantiate, disabled (operators), late, decode
    /// (sources), route (exchanges), sink (too large for a Kafka sink).
    pub class: &'static str,
    /// The operator that refused or failed on the record; none for source problems.
    pub operator: Option<String>,
    pub plugin_digest: Option<String>,
    pub source: String,
    /// Topic and partition of a Kafka source's record.
    pub partition: Option<(Arc<str>, i32)>,
    /// Position in the source (line, sequence number, offset), when the source produced it.
    pub position: Option<u64>,
    /// The record, alone in its batch.
    pub record: Batch,
}

impl DeadLetter {
    /// A record its source could not read.
    pub fn from_source(source: &str, position: u64, record: Batch, reason: String, class: &'static str) -> DeadLetter {
        DeadLetter {
            reason,
            class,
            operator: None,
            plugin_digest: None,
            source: source.to_owned(),
            partition: None,
            position: Some(position),
            record,
        }
    }

    /// The same dead letter, from `partition` of a Kafka topic.
    pub fn with_partition(self, partition: Option<(Arc<str>, i32)>) -> DeadLetter {
        DeadLetter { partition, ..self }
    }

    /// The node the record left the pipeline at: its operator, or its source.
    pub fn node(&self) -> &str {
        self.operator.as_deref().unwrap_or(&self.source)
    }

    /// The JSON line written for this dead letter.
    pub fn to_json(&self, pipeline: &str) -> Value {
        let mut object = self.record.get(0).map(record_json).unwrap_or_default();
        object.insert("pipeline".into(), pipeline.into());
        object.insert("source".into(), self.source.clone().into());
        if let Some((topic, partition)) = &self.partition {
            object.insert("topic".into(), topic.to_string().into());
            object.insert("partition".into(), (*partition).into());
        }
        if let Some(position) = self.position {
            object.insert("position".into(), position.into());
        }
        if let Some(operator) = &self.operator {
            object.insert("operator".into(), operator.clone().into());
        }
        if let Some(digest) = &self.plugin_digest {
            object.insert("plugin_digest".into(), digest.clone().into());
        }
        object.insert("reason".into(), self.reason.clone().into());
        Value::Object(object)
    }
}
