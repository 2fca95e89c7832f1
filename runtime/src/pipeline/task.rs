//! A task: one instance of one stage of a pipeline (for one share of a source, one Kafka
//! partition, or one slot of an exchange). It runs its own instances of the stage's
//! operators, moves each batch through them as the stage's wiring says, sends what comes out
//! to sinks and exchanges, follows event time as the least watermark of its upstreams, and
//! checkpoints when a barrier has come from every upstream.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use super::checkpoint::{CheckpointTarget, OperatorCheckpoint, TaskCheckpoint};
use super::event_order::{BatchSource, EventTimeOrder, HeldRecord, Released};
use super::exchange::{ExchangeOutput, SourcePositions, send_timed};
use super::lineage::{EntryIndex, EntryRecords, Lineage};
use super::operator::{DeadRecord, Operator, OperatorSpec, Processed, StateHandover};
use super::sequences::{OutputSequences, SenderEpoch, sender_digest};
use super::upstreams::Upstreams;
use super::{DeadLetter, SourceBatch};
use crate::graph::{Entry, Stage, Target};
use crate::monitor::{Flow, TaskMetrics};
use crate::wasm::{Batch, Records};

/// How often a waiting task checks whether it was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// Output records (a batch, or a selection of one that sinks read in place), shared by every
/// sink that receives them.
pub type OutputBatch = Records;

/// What a task receives, in order per sender. `from` is the sender's index among the task's
/// upstreams.
pub enum TaskMessage {
    /// Records for the stage's entry; behind an exchange, for `input` of its operator.
    Batch { from: u32, input: u32, batch: SourceBatch },
    /// Event time reached `watermark` at upstream `from`.
    Watermark { from: u32, watermark: i64 },
    /// A checkpoint barrier: everything `from` sent before it is covered by the checkpoint.
    Barrier { from: u32, barrier: Barrier },
    /// `from` sends nothing more; when every upstream has ended, the task closes event time.
    End { from: u32 },
    /// Replace an operator at this batch boundary.
    Swap(Box<SwapRequest>),
    /// Stop at once and save nothing: the partition already belongs to another process.
    Abandon,
}

/// A checkpoint barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Rounds are numbered; a task checkpoints once every upstream sent round `id`.
    pub id: u64,
    /// The source position of the first record after the barrier (a Kafka partition's
    /// offset); 0 where the checkpoint coordinator keeps the sources' positions.
    pub position: u64,
    /// Checkpoint, then stop without closing event time: the stream goes on elsewhere or
    /// later (a partition revoked, the process stopping).
    pub suspend: bool,
}

/// What a sink receives: output batches, and requests to make everything so far durable.
pub enum SinkMessage {
    Batch(OutputBatch),
    /// Answer on the channel once everything received before is durable (dropped on failure).
    Flush(Sender<()>),
}

/// What the dead-letter sink receives.
pub enum DeadLetterMessage {
    Letter(Box<DeadLetter>),
    /// Answer once every dead letter received before is durable (dropped on failure).
    Flush(Sender<()>),
}

/// Which records a task processes: a stage's, for one share, partition or slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOrigin {
    /// The stage: its source's name, or the name of the operator behind its exchange.
    pub source: Arc<str>,
    /// Topic and partition, for a task of a Kafka partition.
    pub partition: Option<(Arc<str>, i32)>,
    /// The task's index among its stage's tasks in this process, when there are several.
    pub instance: Option<usize>,
}

impl TaskOrigin {
    pub fn source(source: Arc<str>) -> TaskOrigin {
        TaskOrigin { source, partition: None, instance: None }
    }

    pub fn instance(source: Arc<str>, instance: usize) -> TaskOrigin {
        TaskOrigin { source, partition: None, instance: Some(instance) }
    }
}

impl fmt::Display for TaskOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.partition, self.instance) {
            (Some((topic, partition)), _) => write!(f, "{}[{topic}/{partition}]", self.source),
            (None, Some(instance)) => write!(f, "{}#{instance}", self.source),
            (None, None) => f.write_str(&self.source),
        }
    }
}

/// Replace operator `operator` with `spec`, in two phases: the task prepares the new operator
/// and answers `Prepared`; it switches if `decision` says so (true), else keeps the old one;
/// then it answers `Finished` with the time its records waited. A task that does not run the
/// operator answers `NotHere`.
pub struct SwapRequest {
    pub operator: String,
    pub spec: OperatorSpec,
    pub handover: StateHandover,
    pub reply: Sender<SwapStep>,
    pub decision: Receiver<bool>,
}

/// A task's answers to a swap request.
pub enum SwapStep {
    /// The new operator is ready (or why it could not be made).
    Prepared(Result<(), String>),
    /// The swap is over (switched or not): how long the task's records waited.
    Finished { switched: bool, stall: Duration },
    /// The task's stage does not run this operator.
    NotHere,
}

/// The task could not deliver its output.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task \"{task}\": a sink stopped taking records")]
    SinkClosed { task: String },
    #[error("task \"{task}\": the dead-letter sink stopped taking records")]
    DeadLetterClosed { task: String },
    #[error("task \"{task}\": the next stage stopped taking records")]
    ExchangeClosed { task: String },
    #[error("task \"{task}\" panicked")]
    Panicked { task: String },
    #[error(
        "task \"{task}\": {failures} checkpoints in a row failed (more than [pipeline] tolerated_checkpoint_failures), the last: {reason}"
    )]
    Checkpoints { task: String, failures: u32, reason: String },
    #[error(
        "task \"{task}\": operator \"{operator}\" failed, and its state went with it: {reason}. The pipeline stops rather than \
         lose the records that state held. With checkpoints (Kafka, or a state_dir) nothing after the last one is committed, \
         so a run started again once the cause is removed (a larger memory_limit or call_timeout for the operator, or a fixed \
         plugin) loses nothing; without them, run the input again from its start (standard input cannot be read again: \
         what it gave is not all in the output)"
    )]
    OperatorStateLost { task: String, operator: String, reason: String },
    #[error(
        "task \"{task}\": the input ended, but operator \"{operator}\" was disabled on the way ({reason}) while it held state \
         (open windows, pending results) that only it can emit: the run stops unfinished rather than drop it. A pipeline that \
         takes checkpoints keeps that state in its last one: give the operator what it needs (a larger memory_limit or \
         call_timeout, or a fixed plugin) and run again"
    )]
    DisabledHoldingState { task: String, operator: String, reason: String },
    #[error(
        "task \"{task}\": operator \"{operator}\" was disabled ({reason}) while it held state (open windows, pending results) \
         that the records it sends to the dead-letter output from then on would miss: the run stops unfinished rather than \
         commit a checkpoint past them. Its last checkpoint keeps that state: give the operator what it needs (a larger \
         memory_limit or call_timeout, or a fixed plugin) and run again, which processes those records"
    )]
    DisabledWithState { task: String, operator: String, reason: String },
}

/// What a task did, for the summary at the end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TaskStats {
    pub source: String,
    /// Whether the task's records come from a source (not through an exchange).
    pub reads_source: bool,
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
    pub late_dropped: u64,
    /// Records a repartition topic delivered again (an upstream replayed after a restart).
    pub duplicates_dropped: u64,
    /// Records sent to an operator output nothing reads (a main output left unread beside
    /// read side outputs).
    pub unread_dropped: u64,
    pub checkpoints: u64,
    pub checkpoints_failed: u64,
    pub disabled_operators: Vec<(String, String)>,
}

/// Why a task begins a sender epoch (`Task::begin_epoch`).
enum EpochStart {
    /// It starts, from a checkpoint's epoch and restart point if it has one (0 if not).
    Restart { restored: Option<SenderEpoch>, point: u64 },
    /// Its operators were swapped.
    Swap,
}

/// Where a task's records go: sinks (by the graph's sink index), the dead-letter sink, and
/// the exchanges its stage sends through (by the plan's exchange index).
pub struct TaskOutputs {
    pub sinks: Vec<SyncSender<SinkMessage>>,
    pub dead_letters: SyncSender<DeadLetterMessage>,
    pub exchanges: Vec<Option<Box<dyn ExchangeOutput>>>,
    /// Per sink, the largest record it can write (see `SharedOutputs::record_limits`).
    pub record_limits: Arc<Vec<Option<usize>>>,
}

/// An output stopped taking records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputClosed {
    Sink,
    DeadLetters,
    Exchange,
}

/// Waits until every sink and the dead-letter sink hold everything sent to them so far.
pub fn flush_sinks(sinks: &[SyncSender<SinkMessage>], dead_letters: &SyncSender<DeadLetterMessage>) -> Result<(), OutputClosed> {
    let (ack, acks) = mpsc::channel();
    for sink in sinks {
        sink.send(SinkMessage::Flush(ack.clone())).map_err(|_| OutputClosed::Sink)?;
    }
    dead_letters.send(DeadLetterMessage::Flush(ack)).map_err(|_| OutputClosed::DeadLetters)?;
    for _ in 0..=sinks.len() {
        acks.recv().map_err(|_| OutputClosed::Sink)?;
    }
    Ok(())
}

impl TaskOutputs {
    /// Waits until everything sent so far is durable: sinks, dead letters, repartition topics.
    pub fn flush(&mut self) -> Result<(), OutputClosed> {
        for exchange in self.exchanges.iter_mut().flatten() {
            exchange.flush()?;
        }
        flush_sinks(&self.sinks, &self.dead_letters)
    }
}

/// How a task starts: its stage, its operators, its upstreams and where its output goes.
pub struct TaskParts {
    pub origin: TaskOrigin,
    pub stage: Arc<Stage>,
    pub operators: Vec<Operator>,
    pub upstreams: Upstreams,
    pub outputs: TaskOutputs,
    /// The watermark its operators were last given (from a checkpoint).
    pub watermark: Option<i64>,
    /// The sequence numbers of the records it sends into repartition topics (from a checkpoint).
    pub sent: OutputSequences,
    /// The sender epoch of those numbers (from a checkpoint).
    pub sent_by: Option<SenderEpoch>,
    /// Where the checkpoint it starts from stands (`TaskCheckpoint::restart_point`; 0 without
    /// one): a new epoch at start begins there.
    pub restart_point: u64,
    /// Records a checkpoint held for event-time order.
    pub held: Vec<HeldRecord>,
    /// Its metrics, and the records it reads from a source (none when metrics are off).
    pub metrics: Option<TaskMetrics>,
    pub source_flow: Option<Flow>,
    /// The most records given to an operator at once (`batch_size`).
    pub batch_size: usize,
    /// See `TaskSettings::entry_settings`.
    pub entry_settings: Arc<str>,
}

/// One stage instance.
pub struct Task {
    origin: TaskOrigin,
    stage: Arc<Stage>,
    operators: Vec<Operator>,
    upstreams: Upstreams,
    /// A barrier some upstreams sent and others not yet: taken once the rest send it or end.
    awaited_barrier: Option<Barrier>,
    /// The last watermark given to the operators.
    watermark: Option<i64>,
    outputs: TaskOutputs,
    /// The last sequence number of each stream it sends into repartition topics.
    sent: OutputSequences,
    /// The sender digest its records are sent under now, and since which number.
    sent_by: SenderEpoch,
    /// See `TaskSettings::entry_settings`.
    entry_settings: Arc<str>,
    checkpoints: Option<Box<dyn CheckpointTarget>>,
    /// Raised to stop at once, whatever is queued (see `StartedTask::cancel`).
    cancelled: Arc<AtomicBool>,
    /// Checkpoints that may fail in a row before the task stops with the error.
    tolerated_failures: u32,
    failures_in_a_row: u32,
    stats: TaskStats,
    metrics: Option<TaskMetrics>,
    source_flow: Option<Flow>,
    /// Behind an exchange whose operator takes event-time order (or with records a checkpoint
    /// held for it): the records waiting for the watermark.
    event_order: Option<EventTimeOrder>,
    /// Time spent blocked on full output queues while handling the current message.
    blocked: Duration,
    /// The source the current batch's positions are in: the stage's own, or, behind an
    /// in-process exchange, the one the sending task named.
    entry_source: Arc<str>,
    /// The most records given to an operator at once: what an operator emits beyond it goes
    /// on in batches of this size.
    batch_size: usize,
}

/// How a task's run ended.
enum Ending {
    /// Every upstream ended: event time closed.
    Finished,
    /// Checkpointed at a suspending barrier; event time left open.
    Suspended,
    /// Stopped without saving anything.
    Abandoned,
}

impl Task {
    pub fn new(parts: TaskParts) -> Task {
        let reads_source = matches!(parts.stage.entry, Entry::Source(_));
        let stats = TaskStats { source: parts.origin.to_string(), reads_source, ..TaskStats::default() };
        let orders = parts.stage.event_time_order && matches!(parts.stage.entry, Entry::Exchange(_));
        let event_order =
            (orders || !parts.held.is_empty()).then(|| EventTimeOrder::restored(parts.held).releasing_at_most(parts.batch_size));
        let restart = EpochStart::Restart { restored: parts.sent_by, point: parts.restart_point };
        let mut task = Task {
            event_order,
            sent_by: SenderEpoch::default(),
            entry_settings: parts.entry_settings,
            stage: parts.stage,
            operators: parts.operators,
            upstreams: parts.upstreams,
            awaited_barrier: None,
            watermark: parts.watermark,
            outputs: parts.outputs,
            sent: parts.sent,
            checkpoints: None,
            cancelled: Arc::default(),
            tolerated_failures: 0,
            failures_in_a_row: 0,
            stats,
            metrics: parts.metrics,
            entry_source: Arc::clone(&parts.origin.source),
            batch_size: parts.batch_size.max(1),
            origin: parts.origin,
            source_flow: parts.source_flow,
            blocked: Duration::ZERO,
        };
        task.begin_epoch(restart);
        task
    }

    /// Sets the sender epoch its records carry (`sluice.by`) and tells its exchanges. At start,
    /// the checkpoint's if the operators are those of the checkpoint, so that what they send
    /// again after a crash has the numbers and epoch it had and is dropped once; with other
    /// operators (or no checkpoint), one begun at the checkpoint's restart point, the same for
    /// every restart from that checkpoint with these operators (a crash before the next one
    /// sends the same records again, dropped once too). After a swap, one drawn at random,
    /// which no reader has seen: the swapped-in operators' records are not those of any
    /// earlier epoch, whatever their numbers.
    fn begin_epoch(&mut self, start: EpochStart) {
        let digest = self.sender_digest();
        self.sent_by = match start {
            EpochStart::Restart { restored: Some(epoch), .. } if epoch.digest == digest => epoch,
            EpochStart::Restart { point, .. } => SenderEpoch { digest, start: point },
            EpochStart::Swap => SenderEpoch::new(digest),
        };
        let by = self.sent_by.by();
        for output in self.outputs.exchanges.iter_mut().flatten() {
            output.sent_by(by);
        }
    }

    /// What decides the records this task sends into repartition topics (0: it sends through
    /// none): its operators as they run now (secrets by name only), its stage's wiring, the
    /// topics and their routing, and for a source's stage the event-time settings that decide
    /// which records get through.
    fn sender_digest(&self) -> u64 {
        let streams: Vec<String> = self
            .outputs
            .exchanges
            .iter()
            .flatten()
            .filter(|output| !output.stream().is_empty())
            .map(|output| format!("{} {}", output.stream(), output.routing()))
            .collect();
        if streams.is_empty() {
            return 0;
        }
        // Where records go, with exchanges by their topic (their indexes move as the graph
        // grows elsewhere) and sinks left out (they do not change what is sent).
        let stream_of =
            |exchange: usize| self.outputs.exchanges.get(exchange).and_then(Option::as_ref).map_or("", |output| output.stream());
        let wiring: String = std::iter::once(&self.stage.entry_targets)
            .chain(self.stage.output_targets.iter().flatten())
            .map(|targets| {
                let described: Vec<String> = targets
                    .iter()
                    .filter_map(|target| match target {
                        Target::Operator { position, input } => Some(format!("operator {position}/{input}")),
                        Target::Exchange { exchange, input } => Some(format!("exchange {}/{input}", stream_of(*exchange))),
                        Target::Sink(_) => None,
                    })
                    .collect();
                described.join(",") + ";"
            })
            .collect();
        let operators = self.operators.iter().map(Operator::spec).flat_map(|spec| {
            let key_by = spec.key_by.as_ref().map(|fields| fields.join("\u{0}")).unwrap_or_default();
            [spec.name.to_string(), spec.plugin.digest().to_string(), spec.settings_digest(), key_by]
        });
        let operators: Vec<String> = operators.collect();
        let entry = if matches!(self.stage.entry, Entry::Source(_)) { &*self.entry_settings } else { "" };
        let fixed = [wiring.as_str(), entry];
        sender_digest(streams.iter().map(String::as_str).chain(fixed).chain(operators.iter().map(String::as_str)))
    }

    /// The flag that stops the task at its next message, saving nothing.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancelled.clone()
    }

    /// Saves checkpoints to `target` at the barriers its upstreams send; more than
    /// `tolerated_failures` failures in a row stop the task.
    pub fn with_checkpoints(mut self, target: Box<dyn CheckpointTarget>, tolerated_failures: u32) -> Task {
        self.checkpoints = Some(target);
        self.tolerated_failures = tolerated_failures;
        self
    }

    /// Processes messages until every upstream ended (then event time closes), a suspending
    /// barrier, or an abandon.
    pub fn run(mut self, input: Receiver<TaskMessage>) -> Result<TaskStats, TaskError> {
        crate::monitor::blocked::count_blocked_sends_on(self.metrics.as_ref().map(|metrics| metrics.blocked.clone()));
        match self.run_until_the_end(&input) {
            Ok(()) => Ok(self.finish_stats()),
            // The next stages would otherwise wait for this task's end for ever.
            Err(error) => {
                self.abandon_downstream();
                Err(error)
            }
        }
    }

    fn run_until_the_end(&mut self, input: &Receiver<TaskMessage>) -> Result<(), TaskError> {
        let mut waiting = Instant::now();
        loop {
            let message = input.recv_timeout(CANCEL_CHECK);
            let working = Instant::now();
            if self.cancelled.load(Ordering::SeqCst) {
                return Ok(());
            }
            let ending = match message {
                Ok(message) => {
                    let ending = self.on_message(message)?;
                    self.stop_if_an_operator_lost_its_state()?;
                    self.account_time(working.duration_since(waiting), working.elapsed());
                    waiting = Instant::now();
                    ending
                }
                // Every sender went away without a word: close event time, but keep the last
                // checkpoint (nothing says the input was read to its end).
                Err(RecvTimeoutError::Disconnected) => {
                    self.close_event_time()?;
                    self.stop_if_an_operator_lost_its_state()?;
                    Some(Ending::Abandoned)
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.account_time(working.duration_since(waiting), Duration::ZERO);
                    waiting = working;
                    None
                }
            };
            if let Some(ending) = ending {
                if let Ending::Finished = ending {
                    self.finish()?;
                }
                return Ok(());
            }
        }
    }

    /// An operator whose state a failure took (`Operator::lost_state`) stops the task, and so
    /// the pipeline, before another checkpoint commits positions past the records it held.
    fn stop_if_an_operator_lost_its_state(&self) -> Result<(), TaskError> {
        self.fail_on_the_first_operator(Operator::lost_state, |task, operator, reason| TaskError::OperatorStateLost {
            task,
            operator,
            reason,
        })
    }

    /// The input ended, but an operator disabled on the way still holds state it never
    /// emitted (its windows did not fire while it was off): finishing would drop that state
    /// and, with a `state_dir`, the checkpoint that keeps it.
    fn refuse_to_finish_past_a_disabled_operators_state(&self) -> Result<(), TaskError> {
        self.fail_on_the_first_operator(Operator::disabled_holding_state, |task, operator, reason| TaskError::DisabledHoldingState {
            task,
            operator,
            reason,
        })
    }

    /// An operator disabled while it holds state: that state misses the records it sends to
    /// the dead-letter output from then on, so a checkpoint past them would have a run started
    /// again emit it as if whole. The run stops; its last checkpoint is from before.
    fn refuse_to_checkpoint_past_a_disabled_operators_state(&self) -> Result<(), TaskError> {
        self.fail_on_the_first_operator(Operator::disabled_holding_state, |task, operator, reason| TaskError::DisabledWithState {
            task,
            operator,
            reason,
        })
    }

    /// The error `error` makes of (task, operator, reason) for the first operator of which
    /// `reason` says something.
    fn fail_on_the_first_operator(
        &self,
        reason: fn(&Operator) -> Option<&str>,
        error: fn(String, String, String) -> TaskError,
    ) -> Result<(), TaskError> {
        match self.operators.iter().find_map(|operator| Some((operator.name(), reason(operator)?))) {
            Some((operator, reason)) => Err(error(self.origin.to_string(), operator.to_owned(), reason.to_owned())),
            None => Ok(()),
        }
    }

    /// Splits the time of one message into idle (waiting for it), back-pressured (blocked on
    /// full outputs) and busy (the rest).
    fn account_time(&mut self, idle: Duration, handling: Duration) {
        for exchange in self.outputs.exchanges.iter_mut().flatten() {
            self.blocked += exchange.take_blocked();
        }
        let blocked = std::mem::take(&mut self.blocked).min(handling);
        // Back-pressure is credited as the sends wait (`monitor::blocked`).
        if let Some(metrics) = &self.metrics {
            metrics.idle.inc_by(idle.as_secs_f64());
            metrics.busy.inc_by((handling - blocked).as_secs_f64());
        }
    }

    fn on_message(&mut self, message: TaskMessage) -> Result<Option<Ending>, TaskError> {
        match message {
            TaskMessage::Batch { input, batch, .. } => self.on_batch(input, batch).map(|()| None),
            TaskMessage::Watermark { from, watermark } => {
                self.upstreams.watermark(from, watermark);
                self.advance_watermark().map(|()| None)
            }
            TaskMessage::Barrier { from, barrier } => {
                if !self.upstreams.barrier(from, barrier.id) {
                    self.awaited_barrier = Some(barrier);
                    return Ok(None);
                }
                self.take_barrier(barrier)
            }
            TaskMessage::End { from } => {
                self.upstreams.end(from);
                if !self.upstreams.all_ended() {
                    // The upstreams that go on may all have sent the barrier already: it is
                    // aligned now, since the one that ended sends none.
                    if let Some(barrier) = self.awaited_barrier.filter(|barrier| self.upstreams.aligned(barrier.id)) {
                        let ending = self.take_barrier(barrier)?;
                        if ending.is_some() {
                            return Ok(ending);
                        }
                    }
                    return self.advance_watermark().map(|()| None);
                }
                self.close_event_time()?;
                // A failure of the final watermark's call says so, not that a circuit was open.
                self.stop_if_an_operator_lost_its_state()?;
                self.refuse_to_finish_past_a_disabled_operators_state()?;
                Ok(Some(Ending::Finished))
            }
            TaskMessage::Swap(request) => {
                self.swap(*request);
                Ok(None)
            }
            TaskMessage::Abandon => {
                self.abandon_downstream();
                Ok(Some(Ending::Abandoned))
            }
        }
    }

    /// The run is given up: the next stages are told, so that they end too rather than wait
    /// for this task's records (before, a resumed run whose input had shrunk hung there).
    fn abandon_downstream(&mut self) {
        for exchange in self.outputs.exchanges.iter_mut().flatten() {
            let _ = exchange.abandon();
        }
    }

    /// Every upstream ended: the final watermark closes every window; the next stages are
    /// told; once the outputs are durable, the checkpoints are no longer needed.
    fn finish(&mut self) -> Result<(), TaskError> {
        for exchange in self.outputs.exchanges.iter_mut().flatten() {
            exchange.end().map_err(|_| TaskError::ExchangeClosed { task: self.origin.to_string() })?;
        }
        if self.checkpoints.is_none() {
            return Ok(());
        }
        self.flush_outputs()?;
        if let Some(Err(reason)) = self.checkpoints.as_mut().map(|target| target.finished()) {
            tracing::warn!(task = %self.origin, "the input ended, but its checkpoint stays: {reason}");
        }
        Ok(())
    }

    /// Gives the operators the final watermark.
    fn close_event_time(&mut self) -> Result<(), TaskError> {
        if self.watermark == Some(i64::MAX) {
            return Ok(());
        }
        self.give_watermark(i64::MAX)
    }

    fn finish_stats(mut self) -> TaskStats {
        // The task's gauges would otherwise show its last values for ever.
        if let Some(metrics) = &self.metrics {
            metrics.retire();
        }
        for metrics in self.operators.iter().filter_map(Operator::metrics) {
            metrics.retire();
        }
        let disabled_at_the_end =
            self.operators.iter().filter_map(|operator| Some((operator.name().to_owned(), operator.disabled_because()?.to_owned())));
        self.stats.disabled_operators.extend(disabled_at_the_end);
        self.stats
    }

    /// Checkpoints at `barrier`, which every upstream that has not ended sent; the last round
    /// (`suspend`) ends the task.
    fn take_barrier(&mut self, barrier: Barrier) -> Result<Option<Ending>, TaskError> {
        self.awaited_barrier = None;
        self.checkpoint(barrier)?;
        Ok(barrier.suspend.then_some(Ending::Suspended))
    }

    /// At an aligned barrier: snapshot the operators, pass the barrier on, wait until every
    /// output so far is durable, save the checkpoint. A checkpoint that cannot be taken is
    /// skipped (its position is not committed, so a restart replays from the previous one:
    /// nothing is lost); more than `tolerated_failures` in a row stop the task with the error.
    fn checkpoint(&mut self, barrier: Barrier) -> Result<(), TaskError> {
        let started = Instant::now();
        if self.checkpoints.is_some() {
            self.refuse_to_checkpoint_past_a_disabled_operators_state()?;
        }
        let operators = self.operator_states();
        for exchange in self.outputs.exchanges.iter_mut().flatten() {
            exchange.barrier(barrier).map_err(|_| TaskError::ExchangeClosed { task: self.origin.to_string() })?;
        }
        if self.checkpoints.is_none() {
            return Ok(());
        }
        let operators = match operators {
            Ok(operators) => operators,
            Err(reason) => {
                if let Some(target) = self.checkpoints.as_mut() {
                    target.skipped(barrier.id, &reason);
                }
                return self.checkpoint_failed(reason);
            }
        };
        self.flush_outputs()?;
        let (upstream_watermarks, applied, upstream_names) = self.upstreams.snapshot();
        let checkpoint = TaskCheckpoint {
            next_position: barrier.position,
            watermark: self.watermark,
            upstream_watermarks,
            upstream_names,
            applied,
            sent: self.sent.clone(),
            sent_by: (self.sent_by.digest != 0).then_some(self.sent_by),
            operators,
            held: self.event_order.as_ref().map(EventTimeOrder::snapshot).unwrap_or_default(),
        };
        let saved = self.checkpoints.as_mut().map_or(Ok(()), |target| target.save(barrier.id, &checkpoint));
        match saved {
            Ok(()) => {
                if let Some(metrics) = &mut self.metrics {
                    let state_bytes = checkpoint.operators.iter().map(|operator| operator.state.bytes.len()).sum();
                    metrics.checkpoint_saved(started.elapsed(), state_bytes);
                }
                self.stats.checkpoints += 1;
                self.failures_in_a_row = 0;
                Ok(())
            }
            Err(reason) => self.checkpoint_failed(reason),
        }
    }

    fn checkpoint_failed(&mut self, reason: String) -> Result<(), TaskError> {
        if let Some(metrics) = &self.metrics {
            metrics.checkpoint_failed();
        }
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

    /// Waits until every output holds everything sent so far.
    fn flush_outputs(&mut self) -> Result<(), TaskError> {
        self.outputs.flush().map_err(|closed| self.closed(closed))
    }

    fn closed(&self, output: OutputClosed) -> TaskError {
        let task = self.origin.to_string();
        match output {
            OutputClosed::Sink => TaskError::SinkClosed { task },
            OutputClosed::DeadLetters => TaskError::DeadLetterClosed { task },
            OutputClosed::Exchange => TaskError::ExchangeClosed { task },
        }
    }

    /// Swaps an operator between two batches, in two phases (see `SwapRequest`).
    fn swap(&mut self, request: SwapRequest) {
        let started = Instant::now();
        let Some(index) = self.operators.iter().position(|operator| operator.name() == request.operator) else {
            let _ = request.reply.send(SwapStep::NotHere);
            return;
        };
        let prepared = self.operators[index].prepare_swap(request.spec, request.handover);
        let ready = prepared.as_ref().map(drop).map_err(Clone::clone);
        // The requester may have given up; a missing decision means "keep the old one".
        let _ = request.reply.send(SwapStep::Prepared(ready));
        let switched = match prepared {
            Ok(mut replacement) if request.decision.recv() == Ok(true) => {
                replacement.observe(self.operators[index].metrics().cloned());
                // The run's end still reports that the operator was disabled on the way: its
                // records went to the dead-letter sink meanwhile.
                if let Some(reason) = self.operators[index].disabled_because() {
                    let reason = format!("{reason} (until a swap replaced it)");
                    self.stats.disabled_operators.push((request.operator.clone(), reason));
                }
                self.operators[index] = replacement;
                // Other operators from here on: a new epoch.
                self.begin_epoch(EpochStart::Swap);
                true
            }
            _ => false,
        };
        let _ = request.reply.send(SwapStep::Finished { switched, stall: started.elapsed() });
    }

    fn on_batch(&mut self, input: u32, batch: SourceBatch) -> Result<(), TaskError> {
        self.stats.records_in += batch.len() as u64;
        if let Some(flow) = &self.source_flow {
            flow.add_batch(&batch.records);
        }
        let batch = self.drop_duplicates(batch);
        if batch.is_empty() {
            return Ok(());
        }
        let stage = self.stage.clone();
        let SourceBatch { records, positions, source, .. } = batch;
        let source = source.unwrap_or_else(|| Arc::clone(&self.origin.source));
        match stage.entry {
            Entry::Source(_) => self.deliver_read(records, source, &positions, &stage.entry_targets),
            Entry::Exchange(_) if stage.event_time_order => {
                self.hold_for_order(input, &records, BatchSource { source: &source, positions: &positions })
            }
            Entry::Exchange(_) => self.deliver_read(records, source, &positions, &[Target::Operator { position: 0, input }]),
        }
    }

    /// Delivers records read at `positions` (one per record, or none) of `source` to `targets`,
    /// so that the dead letters of the stage's operators name where they were read.
    fn deliver_read(&mut self, records: Batch, source: Arc<str>, positions: &[u64], targets: &[Target]) -> Result<(), TaskError> {
        self.entry_source = source;
        let records = Arc::new(records);
        let lineage = if positions.is_empty() { Lineage::Unknown } else { Lineage::Positions(positions) };
        // Dead letters of later operators, and of the sinks and exchanges after any operator,
        // are traced back to the entry by content (the batch shared, not copied: that copy was
        // a fifth of the copying in a Nexmark q0 task).
        let shared = (!positions.is_empty() && !self.stage.operators.is_empty()).then(|| Arc::clone(&records));
        let index = EntryIndex::default();
        let entry = shared.as_deref().map(|records| EntryRecords { records, positions, index: &index });
        self.deliver(Records::Whole(records), targets, lineage, entry, None)
    }

    /// Behind an exchange with event-time order: holds the records until the watermark passes
    /// them, and gives the late ones (and, past the memory bound, the earliest held) at once.
    fn hold_for_order(&mut self, input: u32, records: &Batch, read: BatchSource<'_>) -> Result<(), TaskError> {
        let Some(order) = self.event_order.as_mut() else { return Ok(()) };
        let late = order.hold(input, records, Some(read), self.watermark);
        let overflow = order.release_overflow();
        self.give_released(std::iter::once(late).chain(overflow).collect())
    }

    /// Gives held records, in order, to the stage's first operator, with where they were read.
    fn give_released(&mut self, released: Vec<Released>) -> Result<(), TaskError> {
        for Released { input, batch, source, positions } in released.into_iter().filter(|released| !released.is_empty()) {
            let source = source.unwrap_or_else(|| Arc::clone(&self.origin.source));
            self.deliver_read(batch, source, &positions, &[Target::Operator { position: 0, input }])?;
        }
        Ok(())
    }

    /// Behind a repartition topic: drops records an upstream sent again after a restart
    /// (their sequence number was applied already).
    fn drop_duplicates(&mut self, batch: SourceBatch) -> SourceBatch {
        if batch.origins.is_empty() {
            return batch;
        }
        let fresh: Vec<bool> =
            batch.origins.iter().map(|origin| self.upstreams.accept(origin.upstream, origin.input, origin.by, origin.sequence)).collect();
        if fresh.iter().all(|fresh| *fresh) {
            return batch;
        }
        let mut kept = SourceBatch::default();
        for ((record, position), fresh) in batch.records.iter().zip(&batch.positions).zip(&fresh) {
            if *fresh {
                kept.records.push_record(record);
                kept.positions.push(*position);
            } else {
                self.stats.duplicates_dropped += 1;
            }
        }
        kept
    }

    /// Sends `records` to every target: operators process them (and what they emit goes on),
    /// sinks and exchanges receive them. `emitter` is the operator that emitted them (none
    /// for records as read), named by the dead letters of records an exchange cannot route.
    /// Every target shares the one batch; only an exchange takes a copy of its own when
    /// another target holds it too.
    fn deliver(
        &mut self,
        records: Records,
        targets: &[Target],
        lineage: Lineage<'_>,
        entry: Option<EntryRecords<'_>>,
        emitter: Option<usize>,
    ) -> Result<(), TaskError> {
        let last = targets.len().saturating_sub(1);
        let mut records = Some(records);
        for (index, target) in targets.iter().enumerate() {
            let batch = if index == last { records.take() } else { records.clone() }.unwrap_or_default();
            match *target {
                Target::Operator { .. } if batch.is_empty() => {}
                Target::Operator { position, input } => {
                    // A batch retried record by record comes back in parts, each passed on
                    // before the next is made: host memory holds one part, not the whole.
                    let mut processed = self.operators[position].process(input, batch);
                    loop {
                        let rest = processed.rest.take();
                        let emitted = self.send_dead_letters(position, processed, lineage)?;
                        self.emit_from(position, emitted, lineage.downstream(entry), entry)?;
                        let Some(rest) = rest else { break };
                        processed = self.operators[position].go_on_isolating(rest);
                    }
                }
                Target::Sink(sink) => {
                    let batch = self.refuse_oversized(sink, batch, lineage, emitter)?;
                    self.send_to_sink(sink, batch)?
                }
                Target::Exchange { exchange, input } => self.send_to_exchange(exchange, input, batch.into_batch(), lineage, emitter)?,
            }
        }
        Ok(())
    }

    /// Sends the records the operator at `position` refused to the dead-letter output; returns
    /// what it emitted.
    fn send_dead_letters(&mut self, position: usize, processed: Processed, lineage: Lineage<'_>) -> Result<Records, TaskError> {
        for dead in processed.dead {
            let position_in_source = lineage.position(&dead);
            let letter = self.operator_dead_letter(position, dead, position_in_source);
            self.dead_letter(letter)?;
        }
        Ok(processed.batch)
    }

    /// Sends what the operator at `position` emitted to the readers of each of its outputs.
    fn emit_from(
        &mut self,
        position: usize,
        emitted: Records,
        lineage: Lineage<'_>,
        entry: Option<EntryRecords<'_>>,
    ) -> Result<(), TaskError> {
        if emitted.is_empty() {
            return Ok(());
        }
        if emitted.len() > self.batch_size {
            // No operator is given more than `batch_size` records at once (a flat map, a
            // window's results at a watermark, a retried batch's part).
            for start in (0..emitted.len()).step_by(self.batch_size) {
                let part = emitted.part(start..(start + self.batch_size).min(emitted.len()));
                self.emit_from(position, part, lineage, entry)?;
            }
            return Ok(());
        }
        let stage = self.stage.clone();
        let outputs = &stage.output_targets[position];
        if emitted.events().iter().all(|event| event.port == 0) {
            return self.deliver_or_count(emitted, &outputs[0], lineage, entry, position);
        }
        // The runtime checked every port against the operator's declared outputs.
        for (port, records) in emitted.split_by_port(outputs.len()).into_iter().enumerate().filter(|(_, records)| !records.is_empty()) {
            self.deliver_or_count(records, &outputs[port], lineage, entry, position)?;
        }
        Ok(())
    }

    fn deliver_or_count(
        &mut self,
        records: Records,
        targets: &[Target],
        lineage: Lineage<'_>,
        entry: Option<EntryRecords<'_>>,
        emitter: usize,
    ) -> Result<(), TaskError> {
        if targets.is_empty() {
            self.stats.unread_dropped += records.len() as u64;
            return Ok(());
        }
        self.deliver(records, targets, lineage, entry, Some(emitter))
    }

    /// Dead-letters the records larger than sink `sink` can write (a Kafka sink's
    /// `message.max.bytes`): the sink would refuse them and stop the run, each time it is
    /// started again. Returns the others.
    fn refuse_oversized(
        &mut self,
        sink: usize,
        records: Records,
        lineage: Lineage<'_>,
        emitter: Option<usize>,
    ) -> Result<Records, TaskError> {
        let Some(limit) = self.outputs.record_limits.get(sink).copied().flatten() else { return Ok(records) };
        // As librdkafka counts a message (the only sinks with a limit are Kafka's).
        let size = crate::kafka::record_size;
        if records.iter().all(|record| size(&record) <= limit) {
            return Ok(records);
        }
        let mut kept = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let bytes = size(&record);
            if bytes <= limit {
                kept.push(records.events()[index]);
                continue;
            }
            let reason = format!(
                "the record is {bytes} bytes (key, value and headers), more than the Kafka sink can write (message.max.bytes = \
                 {limit}): raise the sink's message.max.bytes, and the topic's max.message.bytes, to write such records"
            );
            let dead = DeadRecord { index, record: records.single(index), reason, class: "sink" };
            let letter = self.output_dead_letter(dead, lineage, emitter);
            self.dead_letter(letter)?;
        }
        Ok(Records::selection(Arc::clone(records.base_shared()), kept))
    }

    fn send_to_sink(&mut self, sink: usize, records: Records) -> Result<(), TaskError> {
        if records.is_empty() {
            return Ok(());
        }
        self.stats.records_out += records.len() as u64;
        let (sent, blocked) = send_timed(&self.outputs.sinks[sink], SinkMessage::Batch(records));
        self.blocked += blocked;
        sent.map_err(|_| self.closed(OutputClosed::Sink))
    }

    fn send_to_exchange(
        &mut self,
        exchange: usize,
        input: u32,
        records: Batch,
        lineage: Lineage<'_>,
        emitter: Option<usize>,
    ) -> Result<(), TaskError> {
        if records.is_empty() {
            return Ok(());
        }
        let Some(Some(output)) = self.outputs.exchanges.get_mut(exchange) else {
            return Err(TaskError::ExchangeClosed { task: self.origin.to_string() });
        };
        // Records reaching the exchange as they came from the source keep their positions.
        let positions = match lineage {
            Lineage::Positions(positions) if positions.len() == records.len() => positions,
            _ => &[],
        };
        let from = SourcePositions { source: &self.entry_source, positions };
        // Each (repartition topic, input) numbers its records apart: a record's number then
        // does not depend on how batches interleaved it with records sent elsewhere.
        // An exchange in process numbers nothing: no stream is kept for it.
        let mut unnumbered = 0;
        let sequence = if output.stream().is_empty() { &mut unnumbered } else { self.sent.of(output.stream(), input) };
        let sent = output.send(input, records, from, sequence);
        for unroutable in sent.map_err(|closed| self.closed(closed))? {
            let dead = DeadRecord { index: unroutable.index, record: unroutable.record, reason: unroutable.reason, class: "route" };
            let letter = self.output_dead_letter(dead, lineage, emitter);
            self.dead_letter(letter)?;
        }
        Ok(())
    }

    /// The dead letter of a record an output could not take, named after the operator that
    /// emitted it (none: it came from the stage's entry as read).
    fn output_dead_letter(&self, dead: DeadRecord, lineage: Lineage<'_>, emitter: Option<usize>) -> DeadLetter {
        let position = lineage.position(&dead);
        match emitter {
            Some(emitter) => self.operator_dead_letter(emitter, dead, position),
            None => DeadLetter {
                reason: dead.reason,
                class: dead.class,
                operator: None,
                plugin_digest: None,
                source: self.source_of(position),
                partition: self.origin.partition.clone(),
                position,
                record: dead.record,
            },
        }
    }

    fn operator_dead_letter(&self, position: usize, dead: DeadRecord, position_in_source: Option<u64>) -> DeadLetter {
        let operator = &self.operators[position];
        DeadLetter {
            reason: dead.reason,
            class: dead.class,
            operator: Some(operator.name().to_owned()),
            plugin_digest: Some(operator.plugin().digest().to_string()),
            source: self.source_of(position_in_source),
            partition: self.origin.partition.clone(),
            position: position_in_source,
            record: dead.record,
        }
    }

    /// The source a dead letter names: the one its position is in, when it has one (behind an
    /// in-process exchange, the source the records came from), else the stage's.
    fn source_of(&self, position: Option<u64>) -> String {
        match position {
            Some(_) => self.entry_source.to_string(),
            None => self.origin.source.to_string(),
        }
    }

    /// Gives the operators the least watermark of the upstreams if it advanced.
    fn advance_watermark(&mut self) -> Result<(), TaskError> {
        match self.upstreams.least_watermark() {
            Some(watermark) if self.watermark.is_none_or(|current| watermark > current) => self.give_watermark(watermark),
            _ => Ok(()),
        }
    }

    /// Tells each operator in turn (what one emits is processed downstream before the next
    /// one is told), then the next stages.
    fn give_watermark(&mut self, watermark: i64) -> Result<(), TaskError> {
        self.watermark = Some(watermark);
        if let Some(metrics) = &mut self.metrics {
            metrics.watermark(watermark, crate::event_time::now_millis());
        }
        if let Some(released) = self.event_order.as_mut().map(|order| order.release(watermark)) {
            self.give_released(released)?;
        }
        for position in 0..self.operators.len() {
            let emitted = self.operators[position].on_watermark(watermark);
            self.emit_from(position, Records::from(emitted), Lineage::Unknown, None)?;
        }
        for exchange in self.outputs.exchanges.iter_mut().flatten() {
            exchange.watermark(watermark).map_err(|_| TaskError::ExchangeClosed { task: self.origin.to_string() })?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, letter: DeadLetter) -> Result<(), TaskError> {
        self.stats.dead_letters += 1;
        let (sent, blocked) = send_timed(&self.outputs.dead_letters, DeadLetterMessage::Letter(Box::new(letter)));
        self.blocked += blocked;
        sent.map_err(|_| self.closed(OutputClosed::DeadLetters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tells of the rounds a task saved.
    struct SavedRounds(Sender<u64>);

    impl CheckpointTarget for SavedRounds {
        fn save(&mut self, round: u64, _checkpoint: &TaskCheckpoint) -> Result<(), String> {
            self.0.send(round).map_err(|error| error.to_string())
        }
    }

    /// A task of no operators behind an exchange with `senders` upstream tasks, saving its
    /// checkpoints' rounds to the returned receiver; its dead-letter sink answers flushes.
    fn task_behind(senders: usize) -> (Task, Receiver<u64>) {
        let (dead_letters, letters) = mpsc::sync_channel(16);
        std::thread::spawn(move || {
            for message in letters {
                if let DeadLetterMessage::Flush(ack) = message {
                    let _ = ack.send(());
                }
            }
        });
        let stage = Stage {
            name: "behind".into(),
            entry: Entry::Exchange(0),
            operators: Vec::new(),
            entry_targets: Vec::new(),
            output_targets: Vec::new(),
            single: false,
            event_time_order: false,
        };
        let parts = TaskParts {
            origin: TaskOrigin { source: "behind".into(), partition: None, instance: None },
            stage: Arc::new(stage),
            operators: Vec::new(),
            upstreams: Upstreams::new(senders, senders),
            outputs: TaskOutputs { sinks: Vec::new(), dead_letters, exchanges: Vec::new(), record_limits: Arc::default() },
            watermark: None,
            sent: OutputSequences::default(),
            sent_by: None,
            restart_point: 0,
            held: Vec::new(),
            metrics: None,
            source_flow: None,
            batch_size: 100,
            entry_settings: Arc::from(""),
        };
        let (saved, rounds) = mpsc::channel();
        (Task::new(parts).with_checkpoints(Box::new(SavedRounds(saved)), 3), rounds)
    }

    /// Two upstreams send barrier 1, then the third ends without one (its input ended): the
    /// barrier is aligned then, and taken at once, not when every upstream has ended (the
    /// coordinator waited for it while the sources waited for the round: a stall).
    #[test]
    fn a_barrier_is_taken_when_the_upstream_it_still_awaited_ends_instead() {
        let (task, rounds) = task_behind(3);
        let (input, messages) = mpsc::channel();
        let barrier = Barrier { id: 1, position: 0, suspend: false };
        input.send(TaskMessage::Barrier { from: 1, barrier }).expect("task input");
        input.send(TaskMessage::Barrier { from: 2, barrier }).expect("task input");
        input.send(TaskMessage::End { from: 0 }).expect("task input");
        let running = std::thread::spawn(move || task.run(messages));
        assert_eq!(rounds.recv_timeout(Duration::from_secs(10)), Ok(1), "round 1 saved while two upstreams go on");
        input.send(TaskMessage::End { from: 1 }).expect("task input");
        input.send(TaskMessage::End { from: 2 }).expect("task input");
        let stats = running.join().expect("the task ends").expect("without an error");
        assert_eq!(stats.checkpoints, 1);
    }
}
