//! Where one share of a local source sends its records: batched, judged against event time
//! (its watermark, late records), spread over the tasks of its stage. With checkpoints, it
//! skips what the checkpoint covers and stops at each round's barrier until the round is
//! decided.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use sluice_sdk::fields::{Field, ObjectWriter};

use super::SourceError;
use crate::config::LateRecords;
use crate::pipeline::{
    Arrival, Barrier, Batcher, DeadLetter, DeadLetterMessage, NO_EVENT_TIME, RoundReport, RoundRequest, ShareRounds, SourceBatch,
    StopSignal, TaskMessage, WatermarkGenerator,
};
use crate::wasm::Batch;

/// Event-time settings of a source share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    pub out_of_orderness: i64,
    pub idle_timeout: Duration,
    pub late: LateRecords,
}

/// What a source share did, for the summary at the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SourceStats {
    /// Records read whose event time was read (late ones included).
    pub records: u64,
    pub late_dropped: u64,
    pub dead_letters: u64,
    /// Records read whose event time could not be (dead letters, among `dead_letters`).
    pub unreadable: u64,
}

impl SourceStats {
    /// Adds another share's totals.
    pub fn add(&mut self, other: SourceStats) {
        self.records += other.records;
        self.late_dropped += other.late_dropped;
        self.dead_letters += other.dead_letters;
        self.unreadable += other.unreadable;
    }
}

/// A share of a source's records and the tasks they go to.
pub struct SourceOutput {
    pub source: Arc<str>,
    pub stop: StopSignal,
    batcher: Batcher,
    /// The tasks this share feeds, taking batches in turn.
    tasks: Vec<SyncSender<TaskMessage>>,
    next_task: usize,
    dead_letters: SyncSender<DeadLetterMessage>,
    watermarks: WatermarkGenerator,
    late: LateRecords,
    rounds: Option<Rounds>,
    stats: SourceStats,
    /// The position after the last record sent on (or skipped as already processed).
    next_position: u64,
    /// The position after the last record the source produced, skipped or not.
    positions_seen: u64,
    /// A send failed: a task or the dead-letter sink stopped, so the input did not end.
    downstream_closed: bool,
    /// The last round suspended this share: it sends nothing more.
    suspended: bool,
    closed: bool,
    /// Records taken since the linger, idle time and barriers were last looked at.
    unchecked: u32,
    /// Fields a source found in a record (to read its event time) become the record's field
    /// index: see [`SourceOutput::keeping_scanned_fields`].
    keep_scanned_fields: bool,
    /// Records behind the watermark passed on to the operators, and whether the log has been
    /// told they are many.
    late_passed: u64,
    warned_of_late: bool,
    /// The metric of the records dropped as late, when metrics are on.
    late_dropped_metric: Option<prometheus_client::metrics::counter::Counter>,
}

/// Passed records behind the watermark that make the source say so in the log: at least this
/// many, and at least one in a hundred records.
const LATE_WORTH_A_WARNING: u64 = 1000;

/// A checkpointing share: where it resumes, and its end of the coordinator's rounds.
struct Rounds {
    /// Records before this position were processed before the restart: they are skipped.
    resume_from: u64,
    coordinator: ShareRounds,
}

/// The tasks stopped taking records (they failed, or the pipeline is shutting down), or the
/// share was suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream;

impl SourceOutput {
    pub fn new(
        source: Arc<str>,
        batcher: Batcher,
        tasks: Vec<SyncSender<TaskMessage>>,
        dead_letters: SyncSender<DeadLetterMessage>,
        event_time: EventTime,
        stop: StopSignal,
    ) -> SourceOutput {
        SourceOutput {
            source,
            stop,
            batcher,
            tasks,
            next_task: 0,
            dead_letters,
            watermarks: WatermarkGenerator::new(event_time.out_of_orderness, event_time.idle_timeout),
            late: event_time.late,
            rounds: None,
            stats: SourceStats::default(),
            next_position: 0,
            positions_seen: 0,
            downstream_closed: false,
            suspended: false,
            closed: false,
            unchecked: 0,
            keep_scanned_fields: false,
            late_passed: 0,
            warned_of_late: false,
            late_dropped_metric: None,
        }
    }

    /// Counts the records dropped as late in `metric` too (`sluice_source_late_dropped_total`).
    pub fn counting_late_drops_in(mut self, metric: Option<prometheus_client::metrics::counter::Counter>) -> SourceOutput {
        self.late_dropped_metric = metric;
        self
    }

    /// Keeps the fields a source found in a record as the record's field index, when `keep`
    /// (the operators the records go to first read indexes). The record then reaches them in a
    /// batch they read in place and may pass on by position, instead of the task scanning it
    /// again and copying what they pass on. A source scans only records whose event time it
    /// reads: indexing the others here moved the scan from the stage's tasks, which share it,
    /// to the source's one thread, and measured slower.
    pub fn keeping_scanned_fields(mut self, keep: bool) -> SourceOutput {
        self.keep_scanned_fields = keep;
        self
    }

    /// Takes part in checkpoint rounds, resuming after a checkpoint: records before
    /// `resume_from` are skipped, and event time continues from `watermark`.
    pub fn with_rounds(mut self, coordinator: ShareRounds, resume_from: u64, watermark: Option<i64>) -> SourceOutput {
        self.rounds = Some(Rounds { resume_from, coordinator });
        self.next_position = resume_from;
        self.watermarks.resume_at(watermark);
        self
    }

    /// Adds a record; sends the batch if it is full or has lingered long enough. A record
    /// behind the watermark follows `late_records`.
    pub fn emit(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64, position: u64) -> Result<(), Downstream> {
        self.emit_scanned(key, value, None, timestamp, position)
    }

    /// [`SourceOutput::emit`] for a source that found the fields of `value` itself (to read its
    /// event time): they become its index if [`SourceOutput::keeping_scanned_fields`].
    pub fn emit_scanned(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        fields: Option<&[Field]>,
        timestamp: i64,
        position: u64,
    ) -> Result<(), Downstream> {
        match self.admit(timestamp, position) {
            Admission::Skip => Ok(()),
            Admission::Arrived(Arrival::Take { after_watermark, .. }) => {
                self.send_pending_if(after_watermark)?;
                let fields = fields.filter(|_| self.keep_scanned_fields);
                let full = self.batcher.push_with_fields(key, value, fields, timestamp, [], position);
                self.sent_if_full(full)
            }
            Admission::Arrived(refused) => self.late_record(refused, key, value, timestamp, position),
        }
    }

    /// After a record was batched: sends the batch if the record filled it.
    fn sent_if_full(&mut self, full: Option<SourceBatch>) -> Result<(), Downstream> {
        match full {
            Some(batch) => self.send(batch),
            None => self.after_record(),
        }
    }

    /// [`SourceOutput::emit`] for a source that writes its records as JSON objects and so
    /// indexes their fields as it writes them (operators then need not).
    pub fn emit_object(&mut self, key: Option<&[u8]>, object: &ObjectWriter, timestamp: i64, position: u64) -> Result<(), Downstream> {
        match self.admit(timestamp, position) {
            Admission::Skip => Ok(()),
            Admission::Arrived(Arrival::Take { after_watermark, .. }) => {
                self.send_pending_if(after_watermark)?;
                let full = self.batcher.push_object(key, object, timestamp, position);
                self.sent_if_full(full)
            }
            Admission::Arrived(refused) => {
                let mut value = Vec::new();
                object.write_to(&mut value);
                self.late_record(refused, key, &value, timestamp, position)
            }
        }
    }

    /// What becomes of the record at `position`: skipped (before the resume point), or what
    /// its event time makes of it ([`WatermarkGenerator::arrival`]).
    fn admit(&mut self, timestamp: i64, position: u64) -> Admission {
        if !self.advance_to(position) {
            return Admission::Skip;
        }
        self.stats.records += 1;
        let arrival = self.watermarks.arrival(timestamp, self.late);
        if let Arrival::Take { late: true, .. } = arrival {
            self.note_late_passed();
        }
        Admission::Arrived(arrival)
    }

    /// Counts a late record passed on, and says once in the log when they are many: a late
    /// record may miss its window and, sent behind the watermark that makes it late, need a
    /// batch of its own, so many of them are a disorder `out_of_orderness` should allow for.
    fn note_late_passed(&mut self) {
        self.late_passed += 1;
        if !self.warned_of_late && self.late_passed >= LATE_WORTH_A_WARNING && self.late_passed * 100 >= self.stats.records {
            self.warned_of_late = true;
            tracing::warn!(
                source = %self.source,
                late = self.late_passed,
                records = self.stats.records,
                "many records arrive behind the watermark (newest event time - out_of_orderness): they are late, so an \
                 event-time operator such as a window may drop them, and a late record may need a batch of its own; if this \
                 disorder is expected, raise [pipeline] out_of_orderness (or, for a file or stdin source whose times nothing \
                 downstream uses, leave timestamp_field unset)"
            );
        }
    }

    /// Sends the pending batch, and the watermark its records make, when `needed`: before a
    /// late record that the batch's own records made late. No barrier is taken here: the late
    /// record is counted in the position already but not yet batched, so a checkpoint taken
    /// now would claim it, and a run resumed from it would skip it.
    fn send_pending_if(&mut self, needed: bool) -> Result<(), Downstream> {
        if !needed {
            return Ok(());
        }
        if self.suspended {
            return Err(Downstream);
        }
        match self.batcher.take() {
            Some(batch) => self.send_without_rounds(batch),
            None => Ok(()),
        }
    }

    /// A late record refused at the source: dropped and counted, or dead-lettered.
    fn late_record(&mut self, refused: Arrival, key: Option<&[u8]>, value: &[u8], timestamp: i64, position: u64) -> Result<(), Downstream> {
        let Arrival::DeadLetter { reason } = refused else {
            self.stats.late_dropped += 1;
            if let Some(metric) = &self.late_dropped_metric {
                metric.inc();
            }
            return Ok(());
        };
        let mut record = Batch::new();
        record.push(key, value, timestamp, []);
        self.send_dead_letter(DeadLetter::from_source(&self.source, position, record, reason, "late"))
    }

    /// After a record that did not fill the batch: every [`CHECK_EVERY`] records, what
    /// [`SourceOutput::flush_lingering`] does. Reading the clock after every record cost a
    /// fast source 3 % of its time; a source about to wait calls `wait_for_input`, which
    /// looks at once.
    fn after_record(&mut self) -> Result<(), Downstream> {
        self.unchecked += 1;
        if self.unchecked < CHECK_EVERY {
            return Ok(());
        }
        self.flush_lingering()
    }

    /// Between records (and while waiting for input): sends the pending batch if it has
    /// waited for `linger`, advances an idle watermark, and takes a barrier if one is asked.
    pub fn flush_lingering(&mut self) -> Result<(), Downstream> {
        self.unchecked = 0;
        let now = Instant::now();
        self.watermarks.mark_time(now);
        if let Some(batch) = self.batcher.poll_linger(now) {
            return self.send(batch);
        }
        if self.batcher.is_empty()
            && let Some(watermark) = self.watermarks.advance_idle()
        {
            self.broadcast(|| TaskMessage::Watermark { from: 0, watermark })?;
        }
        self.poll_rounds()
    }

    /// While the source has nothing to read (it is caught up, not behind): as
    /// `flush_lingering`, and the silence counts towards idleness.
    pub fn wait_for_input(&mut self) -> Result<(), Downstream> {
        self.watermarks.reached_end();
        self.flush_lingering()
    }

    /// How long until the pending batch must be sent, if one is pending.
    pub fn linger_left(&self) -> Option<Duration> {
        self.batcher.linger_left()
    }

    /// Sends a record the source itself cannot read to the dead-letter sink.
    pub fn dead_letter(&mut self, value: &[u8], position: u64, reason: String) -> Result<(), Downstream> {
        if !self.advance_to(position) {
            return Ok(());
        }
        self.stats.unreadable += 1;
        let mut record = Batch::new();
        record.push(None, value, NO_EVENT_TIME, []);
        self.send_dead_letter(DeadLetter::from_source(&self.source, position, record, reason, "decode"))
    }

    fn send_dead_letter(&mut self, letter: DeadLetter) -> Result<(), Downstream> {
        self.stats.dead_letters += 1;
        let sent = self.dead_letters.send(DeadLetterMessage::Letter(Box::new(letter))).map_err(|_| Downstream);
        self.note(sent)
    }

    /// Whether the checkpoint this run resumes from already covers `position`.
    pub fn covers(&self, position: u64) -> bool {
        self.rounds.as_ref().is_some_and(|rounds| position < rounds.resume_from)
    }

    /// The first position the checkpoint does not cover (0 without one).
    pub fn resume_from(&self) -> u64 {
        self.rounds.as_ref().map_or(0, |rounds| rounds.resume_from)
    }

    /// Notes that the source reached `position`; false if the checkpoint already covers it.
    fn advance_to(&mut self, position: u64) -> bool {
        self.positions_seen = self.positions_seen.max(position.saturating_add(1));
        if self.covers(position) {
            return false;
        }
        self.next_position = self.next_position.max(position.saturating_add(1));
        true
    }

    /// Sends a batch to the next task in turn, then the watermark if it advanced; then takes
    /// a barrier if one is asked.
    fn send(&mut self, batch: SourceBatch) -> Result<(), Downstream> {
        if self.suspended {
            return Err(Downstream);
        }
        self.send_without_rounds(batch)?;
        self.poll_rounds()
    }

    /// To every task, even past one that has gone: the others must still hear an end.
    fn broadcast(&mut self, message: impl Fn() -> TaskMessage) -> Result<(), Downstream> {
        let failed = self.tasks.iter().filter(|task| task.send(message()).is_err()).count();
        self.note(if failed == 0 { Ok(()) } else { Err(Downstream) })
    }

    fn note(&mut self, sent: Result<(), Downstream>) -> Result<(), Downstream> {
        self.downstream_closed |= sent.is_err();
        sent
    }

    /// Takes the barrier the coordinator asks for, if it asks.
    fn poll_rounds(&mut self) -> Result<(), Downstream> {
        let request = match &self.rounds {
            Some(rounds) => rounds.coordinator.requests.try_recv().ok(),
            None => None,
        };
        match request {
            Some(request) => self.take_barrier(request),
            None => Ok(()),
        }
    }

    /// Puts the round's barrier behind every record sent so far, reports the position, and
    /// waits until the round is decided (or, for the last round, stops).
    fn take_barrier(&mut self, request: RoundRequest) -> Result<(), Downstream> {
        if let Some(batch) = self.batcher.take() {
            self.send_without_rounds(batch)?;
        }
        let barrier = Barrier { id: request.id, position: 0, suspend: request.suspend };
        self.broadcast(|| TaskMessage::Barrier { from: 0, barrier })?;
        let Some(rounds) = &self.rounds else { return Ok(()) };
        let report = RoundReport::Source {
            share: rounds.coordinator.share.clone(),
            id: request.id,
            next_position: self.next_position,
            watermark: self.watermarks.current(),
        };
        let _ = rounds.coordinator.reports.send(report);
        if request.suspend {
            self.suspended = true;
            return Err(Downstream);
        }
        // Nothing moves until the round is saved (or given up): no record passes a barrier.
        let _ = rounds.coordinator.decided.recv();
        Ok(())
    }

    fn send_without_rounds(&mut self, batch: SourceBatch) -> Result<(), Downstream> {
        let task = self.next_task;
        self.next_task = (self.next_task + 1) % self.tasks.len().max(1);
        let sent = self.tasks[task].send(TaskMessage::Batch { from: 0, input: 0, batch }).map_err(|_| Downstream);
        self.note(sent)?;
        match self.watermarks.advance() {
            Some(watermark) => self.broadcast(|| TaskMessage::Watermark { from: 0, watermark }),
            None => Ok(()),
        }
    }

    /// Ends the share after the source returned `result`. Without checkpoints the tasks are
    /// told the input ended (they close event time). With checkpoints, an input read to its
    /// end ends the same way; a stop, a failure or a downstream that stopped taking records
    /// waits for the coordinator's last round and suspends there, so that the next run resumes
    /// rather than emitting results of a partial input.
    pub fn close(mut self, result: Result<(), SourceError>) -> Result<SourceStats, SourceError> {
        self.closed = true;
        if self.suspended {
            return result.map(|()| self.stats);
        }
        if let Some(batch) = self.batcher.take() {
            let _ = self.send_without_rounds(batch);
        }
        let Some(resume_from) = self.rounds.as_ref().map(|rounds| rounds.resume_from) else {
            let _ = self.broadcast(|| TaskMessage::End { from: 0 });
            return result.map(|()| self.stats);
        };
        let interrupted = result.is_err() || self.stop.is_raised() || self.downstream_closed;
        if interrupted {
            self.report(|share| RoundReport::SourceFailed { share });
            self.await_last_round();
            // No last round came (the coordinator gave up: a task ended unfinished): the tasks
            // end without one, keeping the last saved round.
            if !self.suspended {
                let _ = self.broadcast(|| TaskMessage::Abandon);
            }
            return result.map(|()| self.stats);
        }
        if self.positions_seen < resume_from {
            let _ = self.broadcast(|| TaskMessage::Abandon);
            return Err(SourceError::Invalid {
                source_name: self.source.to_string(),
                message: format!(
                    "the input ends before position {resume_from}, where its checkpoint resumes: was it replaced or \
                     truncated? Remove the pipeline's checkpoint from the state directory to start over"
                ),
            });
        }
        let _ = self.broadcast(|| TaskMessage::End { from: 0 });
        let (next_position, watermark) = (self.next_position, self.watermarks.current());
        self.report(|share| RoundReport::SourceEnded { share, next_position, watermark });
        result.map(|()| self.stats)
    }

    fn report(&self, report: impl FnOnce(String) -> RoundReport) {
        if let Some(rounds) = &self.rounds {
            let _ = rounds.coordinator.reports.send(report(rounds.coordinator.share.clone()));
        }
    }

    /// Takes every barrier asked until the last (suspending) one.
    fn await_last_round(&mut self) {
        while !self.suspended {
            let request = match &self.rounds {
                Some(rounds) => rounds.coordinator.requests.recv(),
                None => return,
            };
            match request {
                Ok(request) => {
                    if self.take_barrier(request).is_err() && !self.suspended {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

impl Drop for SourceOutput {
    /// A source that stopped without `close` (it panicked) still ends its tasks: finished
    /// without checkpoints, abandoned with them (the last saved round stays the one to resume).
    fn drop(&mut self) {
        if !self.closed {
            let checkpointing = self.rounds.is_some();
            let _ = self.broadcast(|| if checkpointing { TaskMessage::Abandon } else { TaskMessage::End { from: 0 } });
        }
    }
}

/// Records between two looks at the linger, idle time and barriers while records flow.
const CHECK_EVERY: u32 = 16;

/// What [`SourceOutput`] does with a record it is given.
enum Admission {
    /// Before the resume point: passed on by the run that made the checkpoint.
    Skip,
    Arrived(Arrival),
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{self, Receiver};

    use sluice_sdk::fields::Indexer;

    use super::*;

    /// A share batching two records at a time into one task.
    fn share(keep: bool) -> (SourceOutput, Receiver<TaskMessage>) {
        let (task, batches) = mpsc::sync_channel(16);
        let (dead_letters, _) = mpsc::sync_channel(16);
        let event_time = EventTime { out_of_orderness: 0, idle_timeout: Duration::from_secs(60), late: LateRecords::Pass };
        let batcher = Batcher::new(2, Duration::from_secs(60));
        let output = SourceOutput::new("in".into(), batcher, vec![task], dead_letters, event_time, StopSignal::default());
        (output.keeping_scanned_fields(keep), batches)
    }

    fn next_batch(batches: &Receiver<TaskMessage>) -> Batch {
        loop {
            match batches.try_recv() {
                Ok(TaskMessage::Batch { batch, .. }) => return batch.records,
                Ok(_) => continue,
                Err(error) => panic!("no batch was sent: {error}"),
            }
        }
    }

    /// A record late by its own batch's records sends that batch first. A checkpoint round
    /// asked for meanwhile puts its barrier behind the records it reports as covered: before,
    /// the barrier went right after that batch while the position it reported counted the late
    /// record, not yet sent, which a run resumed from the checkpoint then skipped.
    #[test]
    fn a_barrier_covers_only_records_sent_before_it_also_around_a_late_record() {
        let (output, batches) = share(false);
        let (ask, requests) = mpsc::channel();
        let (reports, reported) = mpsc::channel();
        let (decide, decided) = mpsc::channel();
        let rounds = ShareRounds { share: "in/0".into(), requests, reports, decided };
        let mut output = output.with_rounds(rounds, 0, None);
        output.emit(None, b"{\"n\":0}", 1_000, 0).unwrap();
        ask.send(RoundRequest { id: 1, suspend: false }).unwrap();
        decide.send(true).unwrap();
        output.emit(None, b"{\"n\":1}", 500, 1).unwrap();
        output.emit(None, b"{\"n\":2}", 2_000, 2).unwrap();
        let mut sent = 0;
        loop {
            match batches.try_recv() {
                Ok(TaskMessage::Batch { batch, .. }) => sent += batch.records.len() as u64,
                Ok(TaskMessage::Barrier { .. }) => break,
                Ok(_) => {}
                Err(error) => panic!("no barrier: {error}"),
            }
        }
        match reported.try_recv() {
            Ok(RoundReport::Source { next_position, .. }) => assert_eq!(next_position, sent),
            other => panic!("a report of the round: {other:?}"),
        }
    }

    /// Each record's index: where its fields' names and values lie.
    fn indexes(batch: &Batch) -> Vec<Option<Vec<Field>>> {
        batch.iter().map(|record| record.field_index().map(|index| index.fields().collect())).collect()
    }

    #[test]
    fn fields_a_source_scanned_become_the_index_only_when_its_readers_read_indexes() {
        let values: [&[u8]; 3] = [br#"{"ts": 1, "b": [2]}"#, br#"{"ts": 2}"#, b"not json"];
        for keep in [true, false] {
            let (mut output, batches) = share(keep);
            let mut indexer = Indexer::default();
            output.emit_scanned(None, values[0], indexer.scan(values[0]), 1, 0).unwrap();
            output.emit_scanned(None, values[1], None, 2, 1).unwrap();
            let batch = next_batch(&batches);
            let mut expected = Batch::new();
            expected.push(None, values[0], 1, []);
            sluice_sdk::fields::index_batch(&mut expected);
            let found = indexes(&batch);
            assert_eq!(found[0], if keep { indexes(&expected)[0].clone() } else { None });
            assert_eq!(found[1], None, "a record given without its fields is not indexed here");
            assert_eq!(batch.iter().map(|record| record.value()).collect::<Vec<_>>(), values[..2]);
            // A record emitted as it is stays without an index.
            output.emit(None, values[2], 3, 2).unwrap();
            output.emit(None, values[1], 3, 3).unwrap();
            assert_eq!(indexes(&next_batch(&batches)), vec![None, None]);
        }
    }
}
