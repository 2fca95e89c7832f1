//! One owned partition's feed: its records batched into its task's queue in offset order,
//! event time decided where records enter (the watermark of a source partition; the markers
//! of the upstream tasks, for a repartition topic), the partition paused while its task is
//! behind, and checkpoint barriers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::{PartitionId, SourceContext, describe_one, single};
use crate::config::LateRecords;
use crate::kafka::headers::headers_of;
use crate::kafka::repartition::{Incoming, incoming, is_sluice_header};
use crate::pipeline::{
    Arrival, Barrier, Batcher, DeadLetter, DeadLetterMessage, NO_EVENT_TIME, Origin, SourceBatch, StartedTask, TaskMessage, UpstreamNames,
    WatermarkGenerator,
};
use crate::wasm::Batch;

/// Where a partition's event time comes from.
pub enum FeedKind {
    /// A partition of a source topic: its records' timestamps.
    Source { watermarks: WatermarkGenerator, late: LateRecords },
    /// A partition of a repartition topic: the upstream tasks' markers, by origin (indexes
    /// among the task's upstreams, whose names it shares with the task).
    Repartition { origins: UpstreamNames, known: Vec<String> },
}

/// Bytes of records a partition's feed keeps while its task is behind before it pauses the
/// partition (`benches/kafka.rs` measured the choice)...
const PENDING_BYTES: usize = 8 << 20;
/// ...and all the partitions of a source together, however many it is assigned.
const SOURCE_PENDING_BYTES: usize = 64 << 20;

/// How often the watermark of an idle source partition may advance (see `idle_advanced_at`).
const IDLE_ADVANCE_EVERY: Duration = Duration::from_secs(1);

/// What a message counts towards `PENDING_BYTES`: its records' bytes (keys, values and
/// headers), and a fixed amount for the message itself, so that many small messages (markers,
/// watermarks) count too.
fn message_bytes(message: &TaskMessage) -> usize {
    const MESSAGE: usize = 64;
    match message {
        TaskMessage::Batch { batch, .. } => MESSAGE + batch.records.bytes.len(),
        _ => MESSAGE,
    }
}

/// Has the consumer fetch a resumed partition now, from `next_offset`. librdkafka's broker
/// thread does not wake up for a resume: it fetches again at its next wake-up, up to a second
/// later (measured: 0.2–1 s of a stalled partition after a pause; confluent-kafka-go#630
/// shows the same). A seek does wake it, when the partition's fetch state changes: a seek
/// without a leader epoch goes through "validate" back to "active", with no request to the
/// brokers. Asynchronous (no timeout): nothing waits for it. The position is the one a resume
/// starts from (the record after the last one polled), so nothing is skipped or read twice
/// (and a record read twice would be dropped by `receive`).
fn wake_fetcher(consumer: &BaseConsumer<SourceContext>, id: &PartitionId, next_offset: Option<i64>) {
    let Some(next_offset) = next_offset.filter(|next| *next > 0) else { return };
    let mut position = TopicPartitionList::new();
    if let Err(error) = position.add_partition_offset(&id.0, id.1, Offset::Offset(next_offset)) {
        tracing::debug!(partition = %describe_one(id), "cannot wake the fetcher after a resume: {error}");
        return;
    }
    if let Err(error) = consumer.seek_partitions(position, Timeout::After(Duration::ZERO)) {
        tracing::debug!(partition = %describe_one(id), "cannot wake the fetcher after a resume: {error}");
    }
}

/// One owned partition.
pub struct PartitionFeed {
    pub task: StartedTask,
    pub batcher: Batcher,
    /// The input of the exchange's operator the pending batch is for.
    batch_input: u32,
    /// Messages waiting for room in the task's queue.
    pub pending: VecDeque<TaskMessage>,
    /// The bytes of the records in `pending`, and of all the source's feeds.
    pending_bytes: PendingBytes,
    paused: bool,
    /// Offset of the next record expected; `None` until one arrived.
    pub next_offset: Option<i64>,
    /// `next_offset` at the last barrier.
    pub checkpointed_offset: Option<i64>,
    pub last_barrier: Instant,
    /// Where the task started: its checkpoint's offset, or the first record's.
    pub restart_offset: Option<i64>,
    kind: FeedKind,
    /// Barriers sent so far (their ids).
    barriers: u64,
    /// Records behind the watermark dropped by `late_records = "drop"`.
    pub late_dropped: u64,
    /// Their metric, when metrics are on.
    late_dropped_metric: Option<prometheus_client::metrics::counter::Counter>,
    dead_letters: SyncSender<DeadLetterMessage>,
    source: Arc<str>,
    /// When the brokers were last asked whether the partition is caught up.
    last_asked: Option<Instant>,
    /// When the watermark last advanced while the partition was idle: an idle partition
    /// without records follows the wall clock, and each advance is a marker to every
    /// partition of each repartition topic behind, so it advances at most every
    /// [`IDLE_ADVANCE_EVERY`].
    idle_advanced_at: Option<Instant>,
}

/// The bytes of the records a feed keeps, counted in its source's total too; given back when
/// they go to the task, and when the feed is dropped (its partition lost).
struct PendingBytes {
    own: usize,
    source: Arc<AtomicUsize>,
}

impl PendingBytes {
    /// Adds `bytes`; returns the source's total.
    fn add(&mut self, bytes: usize) -> usize {
        self.own += bytes;
        self.source.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    fn release(&mut self, bytes: usize) {
        self.own -= bytes;
        self.source.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Drop for PendingBytes {
    fn drop(&mut self) {
        self.source.fetch_sub(self.own, Ordering::Relaxed);
    }
}

impl PartitionFeed {
    pub fn new(
        task: StartedTask,
        batcher: Batcher,
        kind: FeedKind,
        restart_offset: Option<i64>,
        dead_letters: SyncSender<DeadLetterMessage>,
        source: Arc<str>,
        source_pending: Arc<AtomicUsize>,
    ) -> PartitionFeed {
        PartitionFeed {
            task,
            batcher,
            batch_input: 0,
            pending: VecDeque::new(),
            pending_bytes: PendingBytes { own: 0, source: source_pending },
            paused: false,
            next_offset: restart_offset,
            checkpointed_offset: restart_offset,
            last_barrier: Instant::now(),
            restart_offset,
            kind,
            barriers: 0,
            late_dropped: 0,
            late_dropped_metric: None,
            dead_letters,
            source,
            last_asked: None,
            idle_advanced_at: None,
        }
    }

    /// Counts the records dropped as late in `metric` too (`sluice_source_late_dropped_total`).
    pub fn counting_late_drops_in(mut self, metric: Option<prometheus_client::metrics::counter::Counter>) -> PartitionFeed {
        self.late_dropped_metric = metric;
        self
    }

    /// Takes one record of the partition; false if the task has gone.
    pub fn receive(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, message: &BorrowedMessage<'_>) -> bool {
        if self.next_offset.is_some_and(|next| message.offset() < next) {
            return true; // fetched again after a pause or a seek: already passed on
        }
        self.next_offset = Some(message.offset() + 1);
        self.restart_offset.get_or_insert(message.offset());
        match self.kind {
            FeedKind::Source { .. } => self.receive_source(consumer, id, message),
            FeedKind::Repartition { .. } => self.receive_repartition(consumer, id, message),
        }
    }

    fn receive_source(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, message: &BorrowedMessage<'_>) -> bool {
        let FeedKind::Source { watermarks, late } = &mut self.kind else { return true };
        let offset = u64::try_from(message.offset()).unwrap_or_default();
        let headers = headers_of(message);
        // Kafka marks a record without a timestamp with -1; the wall clock instead would give
        // it another event time at every replay.
        let Some(timestamp) = message.timestamp().to_millis().filter(|timestamp| *timestamp >= 0) else {
            let mut record = Batch::new();
            record.push(message.key(), message.payload().unwrap_or_default(), NO_EVENT_TIME, headers);
            let reason = "the Kafka record has no timestamp, so it has no event time: have its producer set one, or give the topic \
                          message.timestamp.type = LogAppendTime"
                .to_owned();
            let letter = DeadLetter::from_source(&self.source, offset, record, reason, "decode").with_partition(Some(id.clone()));
            return self.dead_letters.send(DeadLetterMessage::Letter(Box::new(letter))).is_ok();
        };
        let after_watermark = match watermarks.arrival(timestamp, *late) {
            Arrival::Take { after_watermark, .. } => after_watermark,
            Arrival::Drop => {
                self.late_dropped += 1;
                if let Some(metric) = &self.late_dropped_metric {
                    metric.inc();
                }
                return true;
            }
            Arrival::DeadLetter { reason } => {
                let mut record = Batch::new();
                record.push(message.key(), message.payload().unwrap_or_default(), timestamp, headers);
                let letter = DeadLetter::from_source(&self.source, offset, record, reason, "late").with_partition(Some(id.clone()));
                return self.dead_letters.send(DeadLetterMessage::Letter(Box::new(letter))).is_ok();
            }
        };
        // A record late by the pending batch's own records meets their watermark first, as it
        // would one record at a time.
        if after_watermark && !self.flush_batch(consumer, id) {
            return false;
        }
        let full = self.batcher.push(message.key(), message.payload().unwrap_or_default(), timestamp, headers, offset);
        let Some(batch) = full else { return true };
        self.send_batch(consumer, id, batch) && self.send_watermark(consumer, id)
    }

    fn receive_repartition(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, message: &BorrowedMessage<'_>) -> bool {
        let offset = u64::try_from(message.offset()).unwrap_or_default();
        let Some(what) = incoming(headers_of(message)) else {
            tracing::warn!(partition = %describe_one(id), offset, "a record without Sluice's headers in a repartition topic goes to the dead-letter sink");
            let mut record = Batch::new();
            record.push(message.key(), message.payload().unwrap_or_default(), message.timestamp().to_millis().unwrap_or_default(), []);
            let reason =
                "a record in a repartition topic without Sluice's headers (sluice.origin, sluice.seq): not written by Sluice".into();
            let letter = DeadLetter::from_source(&self.source, offset, record, reason, "decode").with_partition(Some(id.clone()));
            return self.dead_letters.send(DeadLetterMessage::Letter(Box::new(letter))).is_ok();
        };
        match what {
            Incoming::Marker { origin, watermark } => {
                // Applied exactly at its place among the records: flush what came before it.
                let upstream = self.origin_index(&origin);
                self.flush_batch(consumer, id) && self.queue(consumer, id, TaskMessage::Watermark { from: upstream, watermark })
            }
            Incoming::Record { origin, sequence, input, by } => {
                if input != self.batch_input && !self.batcher.is_empty() && !self.flush_batch(consumer, id) {
                    return false;
                }
                self.batch_input = input;
                let upstream = self.origin_index(&origin);
                let timestamp = message.timestamp().to_millis().unwrap_or_default();
                let headers = headers_of(message).filter(|(name, _)| !is_sluice_header(name));
                let origin = Origin { upstream, input, sequence, by };
                let full =
                    self.batcher.push_with_origin(message.key(), message.payload().unwrap_or_default(), timestamp, headers, offset, origin);
                full.is_none_or(|batch| self.send_batch(consumer, id, batch))
            }
        }
    }

    /// The index of an upstream task among the task's upstreams (a new one is added).
    fn origin_index(&mut self, origin: &str) -> u32 {
        let FeedKind::Repartition { origins, known } = &mut self.kind else { return 0 };
        if let Some(index) = known.iter().position(|name| name == origin) {
            return index as u32;
        }
        let before = origins.count();
        let index = origins.index_of(origin);
        if index >= before {
            tracing::info!(origin, "a new upstream task writes into the repartition topic");
        }
        *known = origins.to_vec();
        index as u32
    }

    fn send_batch(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, batch: SourceBatch) -> bool {
        let input = self.batch_input;
        self.queue(consumer, id, TaskMessage::Batch { from: 0, input, batch })
    }

    /// Sends the pending batch, if any (and the source partition's watermark if it advanced).
    pub fn flush_batch(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        match self.batcher.take() {
            Some(batch) => self.send_batch(consumer, id, batch) && self.send_watermark(consumer, id),
            None => true,
        }
    }

    fn send_watermark(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        let FeedKind::Source { watermarks, .. } = &mut self.kind else { return true };
        match watermarks.advance() {
            Some(watermark) => self.queue(consumer, id, TaskMessage::Watermark { from: 0, watermark }),
            None => true,
        }
    }

    /// Between polls: the batch that lingered long enough, and the watermark of a source
    /// partition that has been quiet for `idle_timeout`.
    pub fn housekeeping(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        let mut delivered = self.retry_pending(consumer, id);
        let now = Instant::now();
        if let FeedKind::Source { watermarks, .. } = &mut self.kind {
            watermarks.mark_time(now);
        }
        if let Some(batch) = self.batcher.poll_linger(now) {
            delivered &= self.send_batch(consumer, id, batch) && self.send_watermark(consumer, id);
        }
        let advanced_recently = self.idle_advanced_at.is_some_and(|at| now.saturating_duration_since(at) < IDLE_ADVANCE_EVERY);
        if self.batcher.is_empty()
            && self.pending.is_empty()
            && !advanced_recently
            && let FeedKind::Source { watermarks, .. } = &mut self.kind
            && let Some(watermark) = watermarks.advance_idle()
        {
            self.idle_advanced_at = Some(now);
            delivered &= self.queue(consumer, id, TaskMessage::Watermark { from: 0, watermark });
        }
        delivered
    }

    /// The consumer read to the end of this partition, or of another topic's partition of
    /// the same number: librdkafka does not say which, so this counts only for a partition
    /// that has had no record (its watermark may then follow the wall clock once idle).
    pub fn reached_end(&mut self) {
        if let FeedKind::Source { watermarks, .. } = &mut self.kind
            && self.next_offset.is_none()
        {
            watermarks.reached_end();
        }
    }

    /// The offset of the next record of a source partition that has been silent for its
    /// `idle_timeout`, not confirmed caught up and not asked about in the last `recently`: the
    /// position to compare with the partition's high watermark. Counts as asking.
    pub fn quiet_position(&mut self, recently: std::time::Duration) -> Option<i64> {
        let FeedKind::Source { watermarks, .. } = &mut self.kind else { return None };
        let quiet = self.batcher.is_empty() && self.pending.is_empty() && watermarks.wants_confirmation(recently);
        let asked_recently = self.last_asked.is_some_and(|asked| asked.elapsed() < recently);
        let position = self.next_offset.filter(|_| quiet && !asked_recently)?;
        self.last_asked = Some(Instant::now());
        Some(position)
    }

    /// The brokers confirmed the consumer had read everything in this partition at `at`.
    pub fn confirm_caught_up(&mut self, at: Instant) {
        if let FeedKind::Source { watermarks, .. } = &mut self.kind {
            watermarks.caught_up_at(at);
        }
    }

    /// The barrier message of the next round at the current position.
    pub fn next_barrier(&mut self, next: i64, suspend: bool) -> TaskMessage {
        self.barriers += 1;
        TaskMessage::Barrier { from: 0, barrier: Barrier { id: self.barriers, position: u64::try_from(next).unwrap_or_default(), suspend } }
    }

    /// Sends a message to the task, or keeps it while the task is behind. A short stall
    /// costs nothing: the partition is paused only once `PENDING_BYTES` of records wait
    /// (pausing makes librdkafka drop what it prefetched and fetch it again later). False if
    /// the task has gone.
    pub fn queue(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, message: TaskMessage) -> bool {
        if !self.pending.is_empty() {
            self.keep_pending(consumer, id, message);
            return true;
        }
        match self.task.input().try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(message)) => {
                self.keep_pending(consumer, id, message);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    fn keep_pending(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, message: TaskMessage) {
        let source_pending = self.pending_bytes.add(message_bytes(&message));
        self.pending.push_back(message);
        if self.pending_bytes.own > PENDING_BYTES || source_pending > SOURCE_PENDING_BYTES {
            self.pause(consumer, id);
        }
    }

    /// Sends what waited; resumes the partition once nothing waits. False if the task has gone.
    fn retry_pending(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        match self.deliver_some() {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
        }
        if self.paused {
            self.paused = false;
            tracing::debug!(partition = %describe_one(id), "partition resumed: its task caught up");
            if let Err(error) = consumer.resume(&single(id)) {
                tracing::warn!("cannot resume {}: {error}", describe_one(id));
            }
            wake_fetcher(consumer, id, self.next_offset);
        }
        true
    }

    /// Sends everything that waits, waiting for room (a round needs its barrier queued);
    /// false if the task has gone. A paused partition resumes at the next tick.
    pub fn deliver_pending(&mut self) -> bool {
        let input = self.task.input().clone();
        let all = self.pending_bytes.own;
        self.pending_bytes.release(all);
        self.pending.drain(..).all(|message| input.send(message).is_ok())
    }

    fn pause(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) {
        if !self.paused {
            self.paused = true;
            tracing::debug!(partition = %describe_one(id), "partition paused: its task is behind");
            if let Err(error) = consumer.pause(&single(id)) {
                tracing::warn!("cannot pause {}: {error}", describe_one(id));
            }
        }
    }

    /// Sends a checkpoint barrier if records arrived since the last one.
    pub fn barrier(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        self.last_barrier = Instant::now();
        let Some(next) = self.next_offset.filter(|next| Some(*next) != self.checkpointed_offset) else { return true };
        self.checkpointed_offset = Some(next);
        let barrier = self.next_barrier(next, false);
        self.flush_batch(consumer, id) && self.queue(consumer, id, barrier)
    }

    /// Queues the pending batch (unless `lost`) and then `last`, waiting for room.
    pub fn finish_with(&mut self, last: TaskMessage, lost: bool) -> bool {
        self.finish_later(last, lost);
        self.deliver_pending()
    }

    /// Puts the pending batch (unless `lost`) and then `last` behind what waits, sending
    /// nothing yet: `deliver_some` sends it.
    pub fn finish_later(&mut self, last: TaskMessage, lost: bool) {
        if lost {
            self.pending.clear();
        } else if let Some(batch) = self.batcher.take() {
            let input = self.batch_input;
            self.pending.push_back(TaskMessage::Batch { from: 0, input, batch });
        }
        self.pending.push_back(last);
    }

    /// Sends what waits as far as the task's queue has room, without waiting: whether
    /// everything went, or `None` if the task has gone.
    pub fn deliver_some(&mut self) -> Option<bool> {
        while let Some(message) = self.pending.pop_front() {
            let bytes = message_bytes(&message);
            match self.task.input().try_send(message) {
                Ok(()) => self.pending_bytes.release(bytes),
                Err(TrySendError::Full(message)) => {
                    self.pending.push_front(message);
                    return Some(false);
                }
                Err(TrySendError::Disconnected(_)) => return None,
            }
        }
        Some(true)
    }
}
