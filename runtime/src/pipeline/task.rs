//! A task: one source's (or one Kafka partition's) records through its own instances of the
//! operator chain, to the sinks; it checkpoints at the barriers its source sends.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::checkpoint::{CheckpointTarget, OperatorCheckpoint, TaskCheckpoint};
use super::operator::{DeadRecord, Operator, OperatorSpec};
use super::{DeadLetter, SourceBatch, WatermarkTracker};
use crate::config::LateRecords;
use crate::wasm::Batch;

/// How often an idle task checks whether its watermark should advance.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// A batch of output records, shared by every sink.
pub type OutputBatch = Arc<Batch>;

/// What a task receives, in order: batches from its source, swap requests, checkpoint
/// barriers, the end.
pub enum TaskMessage {
    Batch(SourceBatch),
    /// Replace an operator at this batch boundary.
    Swap(SwapRequest),
    /// A checkpoint barrier: `next_position` is the source position of the next record.
    Checkpoint {
        next_position: u64,
    },
    /// Checkpoint and stop without closing event time: the stream goes on elsewhere or later
    /// (a partition revoked, the process stopping).
    Suspend {
        next_position: u64,
    },
    /// Stop at once and save nothing: the partition already belongs to another process.
    Abandon,
    /// The source has no more records.
    End,
}

/// What a sink receives: output batches, and requests to make everything so far durable.
pub enum SinkMessage {
    Batch(OutputBatch),
    /// Answer on the channel once everything received before is durable (dropped on failure).
    Flush(Sender<()>),
}

/// What the dead-letter sink receives.
pub enum DeadLetterMessage {
    Letter(DeadLetter),
    /// Answer once every dead letter received before is durable (dropped on failure).
    Flush(Sender<()>),
}

/// Which records a task processes: a source's, or one partition of a Kafka source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOrigin {
    pub source: Arc<str>,
    /// Topic and partition, for a Kafka source's task.
    pub partition: Option<(Arc<str>, i32)>,
}

impl TaskOrigin {
    pub fn source(source: Arc<str>) -> TaskOrigin {
        TaskOrigin { source, partition: None }
    }
}

impl fmt::Display for TaskOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.partition {
            Some((topic, partition)) => write!(f, "{}[{topic}/{partition}]", self.source),
            None => f.write_str(&self.source),
        }
    }
}

/// Replace operator `operator` with `spec`, in two phases: the task prepares the new operator
/// and answers `Prepared`; it switches if `decision` says so (true), else keeps the old one;
/// then it answers `Finished` with the time its records waited.
pub struct SwapRequest {
    pub operator: String,
    pub spec: OperatorSpec,
    pub reply: Sender<SwapStep>,
    pub decision: Receiver<bool>,
}

/// A task's answers to a swap request.
pub enum SwapStep {
    /// The new operator is ready (or why it could not be made).
    Prepared(Result<(), String>),
    /// The swap is over (switched or not): how long the task's records waited.
    Finished { switched: bool, stall: Duration },
}

/// The task could not deliver its output.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task of source \"{task}\": a sink stopped taking records")]
    SinkClosed { task: String },
    #[error("task of source \"{task}\": the dead-letter sink stopped taking records")]
    DeadLetterClosed { task: String },
    #[error("task \"{task}\" panicked")]
    Panicked { task: String },
    #[error(
        "task \"{task}\": {failures} checkpoints in a row failed (more than [pipeline] tolerated_checkpoint_failures), the last: {reason}"
    )]
    Checkpoints { task: String, failures: u32, reason: String },
}

/// What a task did, for the summary at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskStats {
    pub source: String,
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub late_dropped: u64,
    pub checkpoints: u64,
    pub checkpoints_failed: u64,
    pub disabled_operators: Vec<(String, String)>,
}

/// How a record given to an operator relates to its source position.
enum Lineage<'a> {
    /// The records are the source's batch: record i is at `positions[i]`.
    Positions(&'a [u64]),
    /// The records came out of earlier operators: one equal to a source record (key, value,
    /// event time) is that record.
    Content { records: &'a Batch, positions: &'a [u64] },
    /// Emitted on a watermark: no source record.
    Unknown,
}

impl Lineage<'_> {
    fn position(&self, dead: &DeadRecord) -> Option<u64> {
        match self {
            Lineage::Positions(positions) => positions.get(dead.index).copied(),
            Lineage::Content { records, positions } => {
                let record = dead.record.get(0)?;
                let same = |source: &crate::wasm::Record<'_>| {
                    source.value() == record.value() && source.key() == record.key() && source.timestamp() == record.timestamp()
                };
                records.iter().position(|source| same(&source)).and_then(|index| positions.get(index).copied())
            }
            Lineage::Unknown => None,
        }
    }
}

/// Where a task's records go: every sink, and the dead-letter sink.
#[derive(Clone)]
pub struct TaskOutputs {
    pub sinks: Vec<SyncSender<SinkMessage>>,
    pub dead_letters: SyncSender<DeadLetterMessage>,
}

/// An output stopped taking records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputClosed {
    Sink,
    DeadLetters,
}

impl TaskOutputs {
    /// Waits until every sink and the dead-letter sink hold everything sent so far.
    pub fn flush(&self) -> Result<(), OutputClosed> {
        let (ack, acks) = mpsc::channel();
        for sink in &self.sinks {
            sink.send(SinkMessage::Flush(ack.clone())).map_err(|_| OutputClosed::Sink)?;
        }
        self.dead_letters.send(DeadLetterMessage::Flush(ack)).map_err(|_| OutputClosed::DeadLetters)?;
        for _ in 0..=self.sinks.len() {
            acks.recv().map_err(|_| OutputClosed::Sink)?;
        }
        Ok(())
    }
}

/// One source's (or partition's) pipeline instance.
pub struct Task {
    origin: TaskOrigin,
    operators: Vec<Operator>,
    watermark: WatermarkTracker,
    late: LateRecords,
    outputs: TaskOutputs,
    checkpoints: Option<Box<dyn CheckpointTarget>>,
    /// Raised to stop at once, whatever is queued (see `StartedTask::cancel`).
    cancelled: Arc<AtomicBool>,
    /// Checkpoints that may fail in a row before the task stops with the error.
    tolerated_failures: u32,
    failures_in_a_row: u32,
    stats: TaskStats,
}

impl Task {
    pub fn new(origin: TaskOrigin, operators: Vec<Operator>, watermark: WatermarkTracker, late: LateRecords, outputs: TaskOutputs) -> Task {
        let stats = TaskStats { source: origin.to_string(), ..TaskStats::default() };
        Task {
            origin,
            operators,
            watermark,
            late,
            outputs,
            checkpoints: None,
            cancelled: Arc::default(),
            tolerated_failures: 0,
            failures_in_a_row: 0,
            stats,
        }
    }

    /// The flag that stops the task at its next message, saving nothing.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// Saves checkpoints to `target` at the barriers the source sends; more than
    /// `tolerated_failures` failures in a row stop the task.
    pub fn with_checkpoints(mut self, target: Box<dyn CheckpointTarget>, tolerated_failures: u32) -> Task {
        self.checkpoints = Some(target);
        self.tolerated_failures = tolerated_failures;
        self
    }

    /// Processes batches until the source closes, then flushes with the final watermark (or,
    /// suspended, checkpoints and leaves event time open).
    pub fn run(mut self, input: Receiver<TaskMessage>) -> Result<TaskStats, TaskError> {
        loop {
            let message = input.recv_timeout(IDLE_CHECK);
            if self.cancelled.load(Ordering::SeqCst) {
                return Ok(self.finish_stats());
            }
            match message {
                Ok(TaskMessage::Batch(batch)) => {
                    self.watermark.received();
                    self.on_batch(batch)?;
                }
                Ok(TaskMessage::Swap(request)) => self.swap(request),
                Ok(TaskMessage::Checkpoint { next_position }) => self.checkpoint(next_position)?,
                Ok(TaskMessage::Suspend { next_position }) => {
                    self.checkpoint(next_position)?;
                    return Ok(self.finish_stats());
                }
                Ok(TaskMessage::Abandon) => return Ok(self.finish_stats()),
                Ok(TaskMessage::End) => {
                    self.close_event_time()?;
                    self.finish_checkpoints()?;
                    return Ok(self.finish_stats());
                }
                // The source went away without a word: close event time, but keep the last
                // checkpoint (nothing says the input was read to its end).
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(watermark) = self.watermark.advance_idle() {
                        self.propagate_watermark(watermark)?;
                    }
                }
            }
        }
        self.close_event_time()?;
        Ok(self.finish_stats())
    }

    /// The input ended: the final watermark closes every window.
    fn close_event_time(&mut self) -> Result<(), TaskError> {
        match self.watermark.finish() {
            Some(watermark) => self.propagate_watermark(watermark),
            None => Ok(()),
        }
    }

    /// The input was read to its end: once the outputs are durable, the checkpoints are no
    /// longer needed (the next run starts afresh).
    fn finish_checkpoints(&mut self) -> Result<(), TaskError> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        self.flush_outputs()?;
        if let Some(Err(reason)) = self.checkpoints.as_mut().map(|target| target.finished()) {
            tracing::warn!(task = %self.origin, "the input ended, but its checkpoint stays: {reason}");
        }
        Ok(())
    }

    fn finish_stats(mut self) -> TaskStats {
        self.stats.disabled_operators = self
            .operators
            .iter()
            .filter_map(|operator| Some((operator.name().to_owned(), operator.disabled_because()?.to_owned())))
            .collect();
        self.stats
    }

    /// At a barrier: snapshot the operators, wait until every output so far is durable, save
    /// the checkpoint. A checkpoint that cannot be taken is skipped (its position is not
    /// committed, so a restart replays from the previous one: nothing is lost); more than
    /// `tolerated_failures` in a row stop the task with the error.
    fn checkpoint(&mut self, next_position: u64) -> Result<(), TaskError> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        let operators = match self.operator_states() {
            Ok(operators) => operators,
            Err(reason) => {
                if let Some(target) = self.checkpoints.as_mut() {
                    target.skipped(&reason);
                }
                return self.checkpoint_failed(reason);
            }
        };
        self.flush_outputs()?;
        let checkpoint = TaskCheckpoint { next_position, watermark: self.watermark.current(), operators };
        let saved = self.checkpoints.as_mut().map_or(Ok(()), |target| target.save(&checkpoint));
        match saved {
            Ok(()) => {
                self.stats.checkpoints += 1;
                self.failures_in_a_row = 0;
                Ok(())
            }
            Err(reason) => self.checkpoint_failed(reason),
        }
    }

    fn checkpoint_failed(&mut self, reason: String) -> Result<(), TaskError> {
        self.stats.checkpoints_failed += 1;
        self.failures_in_a_row += 1;
        if self.failures_in_a_row > self.tolerated_failures {
            return Err(TaskError::Checkpoints { task: self.origin.to_string(), failures: self.failures_in_a_row, reason });
        }
        tracing::warn!(task = %self.origin, "checkpoint skipped, its position is not committed: {reason}");
        Ok(())
    }

    fn operator_states(&mut self) -> Result<Vec<OperatorCheckpoint>, String> {
        self.operators
            .iter_mut()
            .map(|operator| {
                let state = operator.checkpoint_state().map_err(|failure| format!("operator \"{}\": {failure}", operator.name()))?;
                Ok(OperatorCheckpoint { name: operator.name().to_owned(), digest: operator.plugin().digest().to_string(), state })
            })
            .collect()
    }

    /// Waits until every sink and the dead-letter sink hold everything sent so far.
    fn flush_outputs(&mut self) -> Result<(), TaskError> {
        self.outputs.flush().map_err(|closed| match closed {
            OutputClosed::Sink => self.sink_closed(),
            OutputClosed::DeadLetters => self.dead_letter_closed(),
        })
    }

    fn sink_closed(&self) -> TaskError {
        TaskError::SinkClosed { task: self.origin.to_string() }
    }

    fn dead_letter_closed(&self) -> TaskError {
        TaskError::DeadLetterClosed { task: self.origin.to_string() }
    }

    /// Swaps an operator between two batches, in two phases (see `SwapRequest`).
    fn swap(&mut self, request: SwapRequest) {
        let started = Instant::now();
        let Some(index) = self.operators.iter().position(|operator| operator.name() == request.operator) else {
            let _ = request.reply.send(SwapStep::Prepared(Err(format!("no operator named \"{}\"", request.operator))));
            return;
        };
        let prepared = self.operators[index].prepare_swap(request.spec).map_err(|error| error.to_string());
        let ready = prepared.as_ref().map(drop).map_err(Clone::clone);
        // The requester may have given up; a missing decision means "keep the old one".
        let _ = request.reply.send(SwapStep::Prepared(ready));
        let switched = match prepared {
            Ok(replacement) if request.decision.recv() == Ok(true) => {
                self.operators[index] = replacement;
                true
            }
            _ => false,
        };
        let _ = request.reply.send(SwapStep::Finished { switched, stall: started.elapsed() });
    }

    fn on_batch(&mut self, batch: SourceBatch) -> Result<(), TaskError> {
        self.stats.records_in += batch.len() as u64;
        let SourceBatch { mut records, positions } = self.screen_late(batch)?;
        for record in records.iter() {
            self.watermark.observe(record.timestamp());
        }
        // Dead letters of later operators are traced back to the source by content.
        let source_records = (self.operators.len() > 1).then(|| records.clone());
        for index in 0..self.operators.len() {
            if records.is_empty() {
                break;
            }
            let lineage = match &source_records {
                _ if index == 0 => Lineage::Positions(&positions),
                Some(source) => Lineage::Content { records: source, positions: &positions },
                None => Lineage::Unknown,
            };
            records = self.process_at(index, records, lineage)?;
        }
        self.emit(records)?;
        self.advance_watermark()
    }

    /// Applies the late-record policy to records behind the watermark.
    fn screen_late(&mut self, batch: SourceBatch) -> Result<SourceBatch, TaskError> {
        if self.late == LateRecords::Pass || !batch.records.iter().any(|record| self.watermark.is_late(record.timestamp())) {
            return Ok(batch);
        }
        let mut on_time = SourceBatch::default();
        for (record, position) in batch.records.iter().zip(batch.positions) {
            if !self.watermark.is_late(record.timestamp()) {
                on_time.records.push_record(record);
                on_time.positions.push(position);
            } else if self.late == LateRecords::Drop {
                self.stats.late_dropped += 1;
            } else {
                let watermark = self.watermark.current().unwrap_or(i64::MIN);
                let reason = format!("late record: event time {} is behind the watermark {watermark}", record.timestamp());
                let letter = DeadLetter::from_source(&self.origin.source, position, batch.records.single(record.index()), reason);
                self.dead_letter(letter.with_partition(self.origin.partition.clone()))?;
            }
        }
        Ok(on_time)
    }

    /// Runs `events` through the operator at `index`; its refused records become dead letters.
    fn process_at(&mut self, index: usize, records: Batch, lineage: Lineage<'_>) -> Result<Batch, TaskError> {
        let processed = self.operators[index].process(records);
        for dead in processed.dead {
            let position = lineage.position(&dead);
            let letter = self.operator_dead_letter(index, dead, position);
            self.dead_letter(letter)?;
        }
        Ok(processed.batch)
    }

    fn operator_dead_letter(&self, index: usize, dead: DeadRecord, position: Option<u64>) -> DeadLetter {
        let operator = &self.operators[index];
        DeadLetter {
            reason: dead.reason,
            operator: Some(operator.name().to_owned()),
            plugin_digest: Some(operator.plugin().digest().to_string()),
            source: self.origin.source.to_string(),
            partition: self.origin.partition.clone(),
            position,
            record: dead.record,
        }
    }

    fn advance_watermark(&mut self) -> Result<(), TaskError> {
        match self.watermark.advance() {
            Some(watermark) => self.propagate_watermark(watermark),
            None => Ok(()),
        }
    }

    /// Tells each operator in turn; what one emits is processed by the next before it is told.
    fn propagate_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        let mut carried = Batch::new();
        for index in 0..self.operators.len() {
            if !carried.is_empty() {
                carried = self.process_at(index, carried, Lineage::Unknown)?;
            }
            let emitted = self.operators[index].on_watermark(watermark);
            if carried.is_empty() {
                carried = emitted;
            } else {
                emitted.iter().for_each(|record| carried.push_record(record));
            }
        }
        self.emit(carried)
    }

    fn emit(&mut self, records: Batch) -> Result<(), TaskError> {
        if records.is_empty() {
            return Ok(());
        }
        self.stats.records_out += records.len() as u64;
        let batch = Arc::new(records);
        for sink in &self.outputs.sinks {
            sink.send(SinkMessage::Batch(batch.clone())).map_err(|_| self.sink_closed())?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, letter: DeadLetter) -> Result<(), TaskError> {
        self.stats.dead_letters += 1;
        self.outputs.dead_letters.send(DeadLetterMessage::Letter(letter)).map_err(|_| self.dead_letter_closed())
    }
}
