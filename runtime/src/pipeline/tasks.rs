//! Starting the tasks of a stage: each runs the operator versions current at its start (swaps
//! included), restored from a checkpoint when there is one, and is known to the control
//! until it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

use super::checkpoint::{CheckpointTarget, TaskCheckpoint};
use super::control::{PipelineControl, TaskId};
use super::exchange::ExchangeOutput;
use super::stop::StopSignal;
use super::task::{
    DeadLetterMessage, OutputClosed, SinkMessage, Task, TaskError, TaskMessage, TaskOrigin, TaskOutputs, TaskParts, TaskStats, flush_sinks,
};
use super::upstreams::Upstreams;
use super::{Operator, OperatorError};
use crate::graph::{Entry, Stage, Target};
use crate::wasm::FieldIndexes;

/// Batches queued in front of a task: bounded, so a slow task slows its upstreams. A Kafka
/// source pauses a partition whose queue is full, and librdkafka then drops what it
/// prefetched for it: a deeper queue pauses less often (4 held throughput to ~70 % of a raw
/// passthrough in `benches/kafka.rs`, 16 gives ~94 %).
pub const TASK_QUEUE: usize = 16;

/// Why a task could not start.
#[derive(Debug, thiserror::Error)]
pub enum TaskStartError {
    #[error("operator \"{operator}\": {error}")]
    Operator { operator: String, error: OperatorError },
    #[error("task \"{task}\": {reason}")]
    Checkpoint { task: String, reason: String },
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Builds the exchange outputs of a new task of a stage (one per exchange it sends through,
/// indexed by the plan's exchange index).
pub trait ExchangeWiring: Send + Sync {
    fn outputs(&self, origin: &TaskOrigin, instance: usize) -> Vec<Option<Box<dyn ExchangeOutput>>>;
}

/// A stage that sends through no exchange.
pub struct NoExchanges;

impl ExchangeWiring for NoExchanges {
    fn outputs(&self, _origin: &TaskOrigin, _instance: usize) -> Vec<Option<Box<dyn ExchangeOutput>>> {
        Vec::new()
    }
}

/// Where every task's records go: the sinks (by the graph's sink index) and the dead letters.
#[derive(Clone)]
pub struct SharedOutputs {
    pub sinks: Vec<SyncSender<SinkMessage>>,
    pub dead_letters: SyncSender<DeadLetterMessage>,
    /// Per sink, the largest record it can write (a Kafka sink's `message.max.bytes`); a
    /// larger one is dead-lettered by the task rather than failing the sink, run after run.
    pub record_limits: Arc<Vec<Option<usize>>>,
}

impl SharedOutputs {
    /// Waits until every sink and the dead-letter sink hold everything any task sent.
    pub fn flush(&self) -> Result<(), OutputClosed> {
        flush_sinks(&self.sinks, &self.dead_letters)
    }
}

/// The pipeline's settings every task of a stage runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// Checkpoints a task may fail in a row before it stops with the error.
    pub tolerated_checkpoint_failures: u32,
    /// The most records of one batch given to an operator (`batch_size`): what an operator
    /// emits beyond it goes on in batches of this size.
    pub batch_size: usize,
    /// The event-time settings that decide which records a source lets through (late ones
    /// dropped or dead-lettered), for the sender digest of a source's stage.
    pub entry_settings: Arc<str>,
}

impl TaskSettings {
    /// The settings of `pipeline`'s `[pipeline]` table.
    pub fn of(pipeline: &crate::config::PipelineConfig) -> TaskSettings {
        // Spelt out, not debug-formatted: the digest must not change with the toolchain.
        let late_records = match pipeline.late_records {
            crate::config::LateRecords::Pass => "pass",
            crate::config::LateRecords::Drop => "drop",
            crate::config::LateRecords::DeadLetter => "dead-letter",
        };
        let entry_settings = format!(
            "out_of_orderness={}ms idle_timeout={}ms late_records={late_records}",
            pipeline.out_of_orderness.millis(),
            pipeline.idle_timeout.millis()
        );
        TaskSettings {
            tolerated_checkpoint_failures: pipeline.tolerated_checkpoint_failures,
            batch_size: *pipeline.batch_size.get_ref(),
            entry_settings: entry_settings.into(),
        }
    }
}

/// Starts the tasks of one stage.
#[derive(Clone)]
pub struct TaskFactory {
    control: PipelineControl,
    stage: Arc<Stage>,
    outputs: SharedOutputs,
    exchanges: Arc<dyn ExchangeWiring>,
    settings: TaskSettings,
    /// The pipeline's stop, raised when a task stops with an error: the rest of the pipeline
    /// (sources that feed other tasks, unbounded ones included) stops too, rather than run on
    /// without checkpoints.
    stop: StopSignal,
}

/// One task to start.
pub struct TaskStart<'a> {
    pub origin: TaskOrigin,
    /// Its index among the stage's tasks in this process (0 for a partition's task).
    pub instance: usize,
    pub upstreams: Upstreams,
    /// Its operators' state, event time and position to continue from.
    pub restored: Option<&'a TaskCheckpoint>,
    /// Where it saves checkpoints at its barriers.
    pub checkpoints: Option<Box<dyn CheckpointTarget>>,
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
    pub fn new(
        control: PipelineControl,
        stage: Arc<Stage>,
        outputs: SharedOutputs,
        exchanges: Arc<dyn ExchangeWiring>,
        settings: TaskSettings,
        stop: StopSignal,
    ) -> TaskFactory {
        TaskFactory { control, stage, outputs, exchanges, settings, stop }
    }

    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// Whether an operator the stage's records go to first reads field indexes (it chose the
    /// encoding "json+fields"): a source feeding the stage then keeps the fields it finds in a
    /// record as its index (`SourceOutput::keeping_scanned_fields`). Decided when the source
    /// starts; after a swap, an operator that reads indexes still gets them built for the
    /// records that lack one, and one that does not drops them.
    pub fn entry_reads_field_indexes(&self) -> bool {
        let specs = self.control.current_specs();
        entry_reads_field_indexes(&self.stage, |operator| {
            specs.get(operator).is_some_and(|spec| FieldIndexes::of_encoding(&spec.info.encoding).read())
        })
    }

    /// Starts a task; with a checkpoint, its operators, upstreams and event time continue
    /// from it.
    pub fn start(&self, start: TaskStart<'_>) -> Result<StartedTask, TaskStartError> {
        let TaskStart { origin, instance, mut upstreams, restored, checkpoints } = start;
        if let Some(checkpoint) = restored {
            self.check_checkpoint(&origin, checkpoint)?;
            upstreams.resume(&checkpoint.upstream_names, &checkpoint.upstream_watermarks, &checkpoint.applied);
        }
        let metrics = &self.control.monitor().metrics;
        let (pipeline, task) = (self.control.pipeline(), origin.to_string());
        let (id, (input, thread, cancelled)) = self.control.register_task(&self.stage.operators, |specs| {
            let operators = self
                .stage
                .operators
                .iter()
                .map(|operator| {
                    let spec = specs[*operator].clone();
                    let name = spec.name.to_string();
                    let saved = restored.and_then(|checkpoint| checkpoint.operator(&name)).filter(|saved| {
                        let discarded = self.control.state_discarded(&name, &saved.digest);
                        if discarded {
                            tracing::warn!(
                                operator = name,
                                task = %origin,
                                digest = saved.digest,
                                "starting without the checkpoint's state of the operator: it was written by a version a swap \
                                 discarded the state of (--discard-state)"
                            );
                        }
                        !discarded
                    });
                    let running = spec.plugin.digest().to_string();
                    let mut started = Operator::start(spec, saved.map(|saved| saved.state.clone())).map_err(|error| match error {
                        OperatorError::StateRefused(reason) if let Some(saved) = saved.filter(|saved| saved.digest != running) => {
                            TaskStartError::Operator {
                                operator: name.clone(),
                                error: OperatorError::StateRefused(another_version(reason, saved, &running)),
                            }
                        }
                        error => TaskStartError::Operator { operator: name.clone(), error },
                    })?;
                    started.observe(metrics.operator(pipeline, &name, &task, started.spec().limits.memory));
                    Ok(started)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let source_flow = match &self.stage.entry {
                Entry::Source(_) => metrics.source(pipeline, &origin.source, &task),
                Entry::Exchange(_) => None,
            };
            let outputs = TaskOutputs {
                sinks: self.outputs.sinks.clone(),
                dead_letters: self.outputs.dead_letters.clone(),
                exchanges: self.exchanges.outputs(&origin, instance),
                record_limits: Arc::clone(&self.outputs.record_limits),
            };
            if let Some(checkpoint) = restored {
                Self::check_sent_streams(&origin, checkpoint, &outputs)?;
            }
            let parts = TaskParts {
                origin: origin.clone(),
                stage: self.stage.clone(),
                operators,
                upstreams,
                outputs,
                watermark: restored.and_then(|checkpoint| checkpoint.watermark),
                sent: restored.map(|checkpoint| checkpoint.sent.clone()).unwrap_or_default(),
                sent_by: restored.and_then(|checkpoint| checkpoint.sent_by),
                restart_point: restored.map_or(0, TaskCheckpoint::restart_point),
                held: restored.map(|checkpoint| checkpoint.held.clone()).unwrap_or_default(),
                metrics: metrics.task(pipeline, &task),
                source_flow,
                batch_size: self.settings.batch_size,
                entry_settings: Arc::clone(&self.settings.entry_settings),
            };
            let mut task = Task::new(parts);
            if let Some(target) = checkpoints {
                task = task.with_checkpoints(target, self.settings.tolerated_checkpoint_failures);
            }
            let cancelled = task.cancel_flag();
            let (input, queue) = mpsc::sync_channel(TASK_QUEUE);
            let stop = self.stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sluice-task-{origin}"))
                .spawn(move || {
                    let result = task.run(queue);
                    if result.is_err() {
                        stop.raise();
                    }
                    result
                })
                .map_err(TaskStartError::Thread)?;
            Ok::<_, TaskStartError>((input.clone(), (input, thread, cancelled)))
        })?;
        Ok(StartedTask { origin, input, thread: Some(thread), id, control: self.control.clone(), cancelled })
    }

    /// A checkpoint holds the state of this stage's operators only: state of an operator that
    /// now runs elsewhere (behind an exchange added since) cannot be moved there.
    fn check_checkpoint(&self, origin: &TaskOrigin, checkpoint: &TaskCheckpoint) -> Result<(), TaskStartError> {
        let specs = self.control.current_specs();
        let ours: Vec<&str> = self.stage.operators.iter().map(|operator| &*specs[*operator].name).collect();
        let Some(stray) = checkpoint.operators.iter().find(|saved| !ours.contains(&saved.name.as_str())) else { return Ok(()) };
        let change = if specs.iter().any(|spec| *spec.name == stray.name) {
            "which this task no longer runs (the pipeline's graph changed: the operator runs in another stage now)"
        } else {
            "which the pipeline no longer has (removed or renamed)"
        };
        Err(TaskStartError::Checkpoint {
            task: origin.to_string(),
            reason: format!(
                "its checkpoint holds the state of operator \"{}\", {change}; that state cannot be moved: start over with a new \
                 consumer `group` or state directory, or restore the previous pipeline",
                stray.name
            ),
        })
    }

    /// A checkpoint of a task that sent records into repartition topics names them: one it no
    /// longer sends into (the operator behind it renamed or removed, or another put between
    /// them) still holds records sent into it that nothing would read, or a reader waiting for
    /// this task's event time, and its operator's state would be left behind.
    fn check_sent_streams(origin: &TaskOrigin, checkpoint: &TaskCheckpoint, outputs: &TaskOutputs) -> Result<(), TaskStartError> {
        let ours: Vec<&str> = outputs.exchanges.iter().flatten().map(|output| output.stream()).collect();
        let streams = checkpoint.sent.streams();
        let Some((gone, _, _)) = streams.iter().find(|(topic, _, _)| !ours.contains(&topic.as_str())) else { return Ok(()) };
        Err(TaskStartError::Checkpoint {
            task: origin.to_string(),
            reason: format!(
                "its checkpoint was taken while it sent records into the repartition topic {gone}, which it no longer sends \
                 into (the operator behind it was renamed or removed, or another operator now stands between them): the records \
                 still in that topic would never be read, or its reader would wait for this task's event time for ever, and \
                 that operator's state would be lost; restore the previous pipeline, or start over with a new consumer `group`"
            ),
        })
    }

    /// The outputs every task of the pipeline shares.
    pub fn shared_outputs(&self) -> &SharedOutputs {
        &self.outputs
    }

    /// Keeps swaps out while the guard lives (see `PipelineControl::hold_swaps`).
    pub fn hold_swaps(&self) -> std::sync::MutexGuard<'_, ()> {
        self.control.hold_swaps()
    }
}

/// Whether an operator `stage`'s records go to first reads field indexes, `reads` saying it of
/// each graph operator.
fn entry_reads_field_indexes(stage: &Stage, reads: impl Fn(usize) -> bool) -> bool {
    let reads_at = |position: usize| stage.operators.get(position).is_some_and(|operator| reads(*operator));
    match stage.entry {
        Entry::Source(_) => {
            stage.entry_targets.iter().any(|target| matches!(target, Target::Operator { position, .. } if reads_at(*position)))
        }
        Entry::Exchange(_) => reads_at(0),
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

    /// Waits for the task to end (its upstreams ended, a suspension, or it was cancelled).
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

/// A restored state refused by another version of the plugin than the one that wrote it: says
/// so, and what to do.
fn another_version(reason: String, saved: &super::checkpoint::OperatorCheckpoint, running: &str) -> String {
    format!(
        "{reason} (the checkpoint was written by {}, this pipeline runs {running}: the pipeline file now names another \
         build of the plugin, or a version was swapped in while the last run ran — through the admin API or `sluice swap` \
         — which the pipeline file does not keep; run with the file of the version that wrote the checkpoint, or start \
         without the checkpoint: move the state directory aside, or with Kafka give the source another \
         `checkpoint_topic`)",
        saved.digest
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(entry: Entry, operators: Vec<usize>, entry_targets: Vec<Target>) -> Stage {
        Stage { name: "s".into(), entry, operators, entry_targets, output_targets: Vec::new(), single: false, event_time_order: false }
    }

    #[test]
    fn a_source_indexes_for_the_operators_its_records_reach_first() {
        // Graph operators 7 and 9 read indexes; 8 does not.
        let reads = |operator: usize| operator == 7 || operator == 9;
        let first = |position| Target::Operator { position, input: 0 };
        let to_sink_and_reader = stage(Entry::Source(0), vec![8, 7], vec![Target::Sink(0), first(1)]);
        assert!(entry_reads_field_indexes(&to_sink_and_reader, reads));
        // Operator 9 reads indexes but comes after operator 8, which does not.
        let behind_a_json_reader = stage(Entry::Source(0), vec![8, 9], vec![first(0)]);
        assert!(!entry_reads_field_indexes(&behind_a_json_reader, reads));
        let only_routes = stage(Entry::Source(0), Vec::new(), vec![Target::Exchange { exchange: 0, input: 0 }, Target::Sink(0)]);
        assert!(!entry_reads_field_indexes(&only_routes, reads));
        assert!(entry_reads_field_indexes(&stage(Entry::Exchange(0), vec![9, 8], Vec::new()), reads));
        assert!(!entry_reads_field_indexes(&stage(Entry::Exchange(0), vec![8, 9], Vec::new()), reads));
    }
}
