//! Checkpoints of one task: its operators' state and watermark at a source position, and
//! where they are kept (the Kafka checkpoint topic; see `crate::kafka`).
//!
//! A task checkpoints at a barrier that its source puts in its queue: everything before the
//! barrier has been processed, so the operators' state matches the position exactly. The task
//! then waits until its sinks and the dead-letter sink hold everything emitted so far, writes
//! the checkpoint, and only then may the source commit the position (at-least-once).

use crate::wasm::State;

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
}

/// Where a task's checkpoints go; after `save` returns, the checkpoint is durable and the
/// position may be committed.
pub trait CheckpointTarget: Send {
    fn save(&mut self, checkpoint: &TaskCheckpoint) -> Result<(), String>;
}
