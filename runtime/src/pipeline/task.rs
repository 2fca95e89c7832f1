//! A task: one source's records through its own instances of the operator chain, to the sinks.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::operator::{DeadRecord, Operator, OperatorSpec};
use super::{DeadLetter, SourceBatch, WatermarkTracker};
use crate::config::LateRecords;
use crate::wasm::Batch;

/// How often an idle task checks whether its watermark should advance.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// A batch of output records, shared by every sink.
pub type OutputBatch = Arc<Batch>;

/// What a task receives, in order: batches from its source, swap requests, the end.
pub enum TaskMessage {
    Batch(SourceBatch),
    /// Replace an operator at this batch boundary.
    Swap(SwapRequest),
    /// The source has no more records.
    End,
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
}

/// What a task did, for the summary at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskStats {
    pub source: String,
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub late_dropped: u64,
    pub disabled_operators: Vec<(String, String)>,
}

/// Where a task's records go: every sink, and the dead-letter sink.
#[derive(Clone)]
pub struct TaskOutputs {
    pub sinks: Vec<SyncSender<OutputBatch>>,
    pub dead_letters: SyncSender<DeadLetter>,
}

/// One source's pipeline instance.
pub struct Task {
    source: Arc<str>,
    operators: Vec<Operator>,
    watermark: WatermarkTracker,
    late: LateRecords,
    outputs: TaskOutputs,
    stats: TaskStats,
}

impl Task {
    pub fn new(source: Arc<str>, operators: Vec<Operator>, watermark: WatermarkTracker, late: LateRecords, outputs: TaskOutputs) -> Task {
        let stats = TaskStats { source: source.to_string(), ..TaskStats::default() };
        Task { source, operators, watermark, late, outputs, stats }
    }

    /// Processes batches until the source closes, then flushes with the final watermark.
    pub fn run(mut self, input: Receiver<TaskMessage>) -> Result<TaskStats, TaskError> {
        loop {
            let message = input.recv_timeout(IDLE_CHECK);
            if message.is_ok() {
                self.watermark.received();
            }
            match message {
                Ok(TaskMessage::Batch(batch)) => self.on_batch(batch)?,
                Ok(TaskMessage::Swap(request)) => self.swap(request),
                Ok(TaskMessage::End) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(watermark) = self.watermark.advance_idle() {
                        self.propagate_watermark(watermark)?;
                    }
                }
            }
        }
        if let Some(watermark) = self.watermark.finish() {
            self.propagate_watermark(watermark)?;
        }
        self.stats.disabled_operators = self
            .operators
            .iter()
            .filter_map(|operator| Some((operator.name().to_owned(), operator.disabled_because()?.to_owned())))
            .collect();
        Ok(self.stats)
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
        for index in 0..self.operators.len() {
            if records.is_empty() {
                break;
            }
            let positions = (index == 0).then_some(positions.as_slice());
            records = self.process_at(index, records, positions)?;
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
                self.dead_letter(DeadLetter::from_source(&self.source, position, batch.records.single(record.index()), reason))?;
            }
        }
        Ok(on_time)
    }

    /// Runs `events` through the operator at `index`; its refused records become dead letters.
    fn process_at(&mut self, index: usize, records: Batch, positions: Option<&[u64]>) -> Result<Batch, TaskError> {
        let processed = self.operators[index].process(records);
        for dead in processed.dead {
            let position = positions.and_then(|positions| positions.get(dead.index).copied());
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
            source: self.source.to_string(),
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
                carried = self.process_at(index, carried, None)?;
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
            sink.send(batch.clone()).map_err(|_| TaskError::SinkClosed { task: self.source.to_string() })?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, letter: DeadLetter) -> Result<(), TaskError> {
        self.stats.dead_letters += 1;
        self.outputs.dead_letters.send(letter).map_err(|_| TaskError::DeadLetterClosed { task: self.source.to_string() })
    }
}
