//! Starting tasks: each runs the operator versions current at its start (swaps included),
//! restored from a checkpoint when there is one, and is known to the control until it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::checkpoint::{CheckpointTarget, TaskCheckpoint};
use super::control::{PipelineControl, TaskId};
use super::running::{StartError, spawn};
use super::task::{OutputClosed, Task, TaskError, TaskMessage, TaskOrigin, TaskOutputs, TaskStats};
use super::{Operator, WatermarkTracker};
use crate::config::{LateRecords, PipelineConfig};

/// Batches queued between a source and its task: bounded, so a slow task slows the source. A
/// Kafka source pauses a partition whose queue is full, and librdkafka then drops what it
/// prefetched for it: a deeper queue pauses less often (4 held throughput to ~70 % of a raw
/// passthrough in `benches/kafka.rs`, 16 gives ~94 %).
const TASK_QUEUE: usize = 16;

/// Event-time settings every task shares.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub out_of_orderness: i64,
    pub idle_timeout: Duration,
    pub late: LateRecords,
    /// Checkpoints a task may fail in a row before it stops with the error.
    pub tolerated_checkpoint_failures: u32,
}

impl TaskSettings {
    pub fn of(pipeline: &PipelineConfig) -> TaskSettings {
        TaskSettings {
            out_of_orderness: pipeline.out_of_orderness.millis(),
            idle_timeout: pipeline.idle_timeout.duration(),
            late: pipeline.late_records,
            tolerated_checkpoint_failures: pipeline.tolerated_checkpoint_failures,
        }
    }
}

/// Starts the pipeline's tasks (for each source, or for each partition a Kafka source owns).
#[derive(Clone)]
pub struct TaskFactory {
    control: PipelineControl,
    outputs: TaskOutputs,
    settings: TaskSettings,
}

/// A running task: its input queue and its thread.
pub struct StartedTask {
    origin: TaskOrigin,
    input: SyncSender<TaskMessage>,
    /// Taken by `join`; still here when the handle is dropped without it.
    thread: Option<JoinHandle<Result<TaskStats, TaskError>>>,
    id: TaskId,
    control: PipelineControl,
    cancelled: Arc<AtomicBool>,
}

impl TaskFactory {
    pub fn new(control: PipelineControl, outputs: TaskOutputs, settings: TaskSettings) -> TaskFactory {
        TaskFactory { control, outputs, settings }
    }

    /// Starts a task for `origin`; with a checkpoint, its operators and watermark continue
    /// from it; with a target, it saves checkpoints at its source's barriers.
    pub fn start(
        &self,
        origin: TaskOrigin,
        restored: Option<&TaskCheckpoint>,
        checkpoints: Option<Box<dyn CheckpointTarget>>,
    ) -> Result<StartedTask, StartError> {
        let (id, (input, thread, cancelled)) = self.control.register_task(|specs| {
            let operators = specs
                .into_iter()
                .map(|spec| {
                    let name = spec.name.to_string();
                    let state = restored.and_then(|checkpoint| checkpoint.operator_state(&name)).cloned();
                    Operator::start(spec, state).map_err(|error| StartError::Operator { operator: name, error })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut watermark = WatermarkTracker::new(self.settings.out_of_orderness, self.settings.idle_timeout);
            watermark.resume_at(restored.and_then(|checkpoint| checkpoint.watermark));
            let mut task = Task::new(origin.clone(), operators, watermark, self.settings.late, self.outputs.clone());
            if let Some(target) = checkpoints {
                task = task.with_checkpoints(target, self.settings.tolerated_checkpoint_failures);
            }
            let cancelled = task.cancel_flag();
            let (input, queue) = mpsc::sync_channel(TASK_QUEUE);
            let thread = spawn(&format!("task-{origin}"), move || task.run(queue))?;
            Ok::<_, StartError>((input.clone(), (input, thread, cancelled)))
        })?;
        Ok(StartedTask { origin, input, thread: Some(thread), id, control: self.control.clone(), cancelled })
    }
}

impl TaskFactory {
    /// The dead-letter queue, for sources that refuse records themselves.
    pub fn dead_letters(&self) -> SyncSender<super::DeadLetterMessage> {
        self.outputs.dead_letters.clone()
    }

    /// Keeps swaps out while the guard lives (see `PipelineControl::hold_swaps`).
    pub fn hold_swaps(&self) -> std::sync::MutexGuard<'_, ()> {
        self.control.hold_swaps()
    }

    /// Waits until every sink and the dead-letter sink hold everything any task sent.
    pub fn flush_outputs(&self) -> Result<(), OutputClosed> {
        self.outputs.flush()
    }
}

impl StartedTask {
    pub fn origin(&self) -> &TaskOrigin {
        &self.origin
    }

    /// The task's queue (batches, barriers, the end).
    pub fn input(&self) -> &SyncSender<TaskMessage> {
        &self.input
    }

    /// Stops the task at its next message (or within the idle check), whatever is queued
    /// and without saving anything; then `join` it.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the task's thread has ended (`join` then returns at once).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the task to end (its source sent the end, a suspension, or was cancelled).
    pub fn join(mut self) -> Result<TaskStats, TaskError> {
        let result = self.thread.take().map(JoinHandle::join);
        self.control.unregister_task(self.id);
        match result {
            Some(Ok(result)) => result,
            _ => Err(TaskError::Panicked { task: self.origin.to_string() }),
        }
    }
}

impl Drop for StartedTask {
    /// A task nobody will join (its source thread panicked) must not run on: it is cancelled,
    /// and no longer offered swaps.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.cancel();
            self.control.unregister_task(self.id);
        }
    }
}
