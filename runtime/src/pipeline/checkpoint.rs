//! Checkpoints of one task: its operators' state and watermark at a source position, how
//! they are encoded, and where they are kept (the Kafka checkpoint topic, `crate::kafka`, or
//! a local state directory, `crate::state_dir`).
//!
//! A task checkpoints at a barrier that its source puts in its queue: everything before the
//! barrier has been processed, so the operators' state matches the position exactly. The task
//! then waits until its sinks and the dead-letter sink hold everything emitted so far, writes
//! the checkpoint, and only then may the source commit the position (at-least-once).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::wasm::State;

/// Version of the stored format.
const FORMAT: u32 = 1;

/// What a task saves at a barrier.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCheckpoint {
    /// The source position of the first record after the barrier (where a restart resumes).
    pub next_position: u64,
    /// The last watermark the operators were given.
    pub watermark: Option<i64>,
    pub operators: Vec<OperatorCheckpoint>,
}

/// One operator's state in a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCheckpoint {
    pub name: String,
    /// The plugin version that wrote the state (for the operator's own migrations and logs).
    pub digest: String,
    pub state: State,
}

impl TaskCheckpoint {
    /// The saved state of operator `name`, if it was checkpointed.
    pub fn operator_state(&self, name: &str) -> Option<&State> {
        self.operators.iter().find(|operator| operator.name == name).map(|operator| &operator.state)
    }

    /// The stored form: JSON, each operator's opaque state in base64.
    pub fn encode(&self) -> Vec<u8> {
        let stored = StoredCheckpoint {
            format: FORMAT,
            next_position: self.next_position,
            watermark: self.watermark,
            operators: self
                .operators
                .iter()
                .map(|operator| StoredOperator {
                    name: operator.name.clone(),
                    digest: operator.digest.clone(),
                    state_version: operator.state.version,
                    state: base64::engine::general_purpose::STANDARD.encode(&operator.state.bytes),
                })
                .collect(),
            written_at_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64),
        };
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Reads the stored form back, or says why it cannot.
    pub fn decode(bytes: &[u8]) -> Result<TaskCheckpoint, String> {
        let stored: StoredCheckpoint = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        if stored.format != FORMAT {
            return Err(format!("format {} is not {FORMAT}: written by another version of Sluice", stored.format));
        }
        let operators = stored
            .operators
            .into_iter()
            .map(|operator| {
                let bytes = base64::engine::general_purpose::STANDARD.decode(&operator.state).map_err(|error| error.to_string())?;
                let state = State { version: operator.state_version, bytes };
                Ok(OperatorCheckpoint { name: operator.name, digest: operator.digest, state })
            })
            .collect::<Result<_, String>>()?;
        Ok(TaskCheckpoint { next_position: stored.next_position, watermark: stored.watermark, operators })
    }
}

#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    format: u32,
    /// Named `next_offset` in the Kafka checkpoint topic, where it is an offset.
    #[serde(rename = "next_offset")]
    next_position: u64,
    watermark: Option<i64>,
    operators: Vec<StoredOperator>,
    written_at_unix_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredOperator {
    name: String,
    digest: String,
    state_version: u32,
    /// Base64 of the plugin's opaque state bytes.
    state: String,
}

/// Where a task's checkpoints go; after `save` returns, the checkpoint is durable and the
/// position may be committed.
pub trait CheckpointTarget: Send {
    fn save(&mut self, checkpoint: &TaskCheckpoint) -> Result<(), String>;

    /// The task could not take the checkpoint at its barrier (an operator's state could not
    /// be read): nothing is saved, and its position is not committed.
    fn skipped(&mut self, _reason: &str) {}

    /// The task's input ended and all its output is durable: the stream is finished, and a
    /// later run starts from the beginning (nothing to resume).
    fn finished(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_encoding() {
        let checkpoint = TaskCheckpoint {
            next_position: 42,
            watermark: Some(-5),
            operators: vec![OperatorCheckpoint {
                name: "count".into(),
                digest: "ab".into(),
                state: State { version: 3, bytes: vec![0, 1, 255] },
            }],
        };
        assert_eq!(TaskCheckpoint::decode(&checkpoint.encode()).unwrap(), checkpoint);
        assert!(TaskCheckpoint::decode(b"{}").is_err());
        assert!(
            TaskCheckpoint::decode(br#"{"format": 9, "next_offset": 1, "watermark": null, "operators": [], "written_at_unix_ms": 0}"#)
                .is_err()
        );
    }
}
