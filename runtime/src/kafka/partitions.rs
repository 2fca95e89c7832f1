//! The partitions a Kafka source owns: a task for each, fed in offset order, paused while its
//! task is behind, checkpointed on a timer, handed over whole on a rebalance.
//!
//! librdkafka calls the rebalance callback from inside `poll`, on the source's thread, so the
//! partitions live behind a mutex the callback and the poll loop share (never contended).

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, Sender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

mod exactly_once;

use exactly_once::Rounds;

use super::LoggingContext;
use super::checkpoint::{CheckpointKey, CheckpointStore};
use super::transaction::TransactionalProducer;
use crate::config::StartPosition;
use crate::pipeline::{Batcher, CheckpointTarget, StartedTask, TaskCheckpoint, TaskFactory, TaskMessage, TaskOrigin, TaskStats};

/// A topic partition.
pub type PartitionId = (Arc<str>, i32);

/// A position made durable by a task's checkpoint, to be committed to the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub partition: PartitionId,
    pub offset: i64,
}

/// What every partition task of the source shares.
pub struct PartitionSetup {
    pub pipeline: String,
    pub group: String,
    pub source: Arc<str>,
    pub start: StartPosition,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub checkpoint_interval: Duration,
    pub factory: TaskFactory,
    pub store: Arc<CheckpointStore>,
    pub commits: Sender<Commit>,
    /// Exactly-once: the transaction every output and checkpoint goes into.
    pub transactions: Option<Arc<TransactionalProducer>>,
    /// Exactly-once: transactions that may abort in a row before the source stops.
    pub tolerated_aborts: u32,
    /// Longest wait for revoked partitions' tasks to checkpoint: well below
    /// `max.poll.interval.ms`, past which the group would evict this process.
    pub handover_limit: Duration,
}

/// One owned partition.
struct PartitionFeed {
    task: StartedTask,
    batcher: Batcher,
    /// Messages waiting for room in the task's queue (while the partition is paused).
    pending: VecDeque<TaskMessage>,
    paused: bool,
    /// Offset of the next record expected; `None` until one arrived.
    next_offset: Option<i64>,
    /// `next_offset` at the last barrier.
    checkpointed_offset: Option<i64>,
    last_barrier: Instant,
    /// Where the task started: its checkpoint's offset, or the first record's.
    restart_offset: Option<i64>,
}

/// The consumer's context: rebalances start and stop partition tasks.
pub struct SourceContext {
    setup: PartitionSetup,
    state: Mutex<Partitions>,
    /// Positions the tasks have checkpointed, not yet committed.
    commits: Mutex<Receiver<Commit>>,
    /// Exactly-once: transaction rounds instead of per-partition commits.
    rounds: Option<Mutex<Rounds>>,
}

/// The partitions owned now, and what ended.
#[derive(Default)]
pub struct Partitions {
    feeds: HashMap<PartitionId, PartitionFeed>,
    /// Partitions handed back cleanly whose final offsets are still to be committed.
    stopping: Vec<PartitionId>,
    pub finished: Vec<TaskStats>,
    /// Why the source must stop (a task failed, checkpoints unreadable).
    pub failure: Option<String>,
    /// Exactly-once: why the open transaction must not commit (a task ended without its
    /// last barrier, so its outputs are in the transaction without its offset).
    tainted: Option<String>,
}

impl SourceContext {
    pub fn new(setup: PartitionSetup, commits: Receiver<Commit>) -> SourceContext {
        let rounds = setup.transactions.clone().map(|producer| Mutex::new(Rounds::new(producer, setup.tolerated_aborts)));
        SourceContext { setup, state: Mutex::default(), commits: Mutex::new(commits), rounds }
    }

    /// Commits the positions checkpointed since the last call (the latest per partition).
    pub fn commit_checkpointed(&self, consumer: &BaseConsumer<SourceContext>, mode: CommitMode) {
        let mut latest: HashMap<PartitionId, i64> = {
            let commits = self.commits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            commits.try_iter().map(|commit| (commit.partition, commit.offset)).collect()
        };
        // Only partitions still owned: a lost partition's offsets are its new owner's to commit.
        let owned = self.partitions();
        latest.retain(|partition, _| owned.feeds.contains_key(partition) || owned.stopping.contains(partition));
        drop(owned);
        if latest.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &latest {
            if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
                tracing::warn!("cannot commit {topic}/{partition}: {error}");
            }
        }
        if let Err(error) = consumer.commit(&list, mode) {
            // The checkpoints hold the positions; the group's offsets catch up at the next one.
            tracing::warn!(source = %self.setup.source, "committing offsets failed: {error}");
        }
    }

    pub fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Routes a record to its partition's task.
    pub fn receive(&self, consumer: &BaseConsumer<SourceContext>, message: &BorrowedMessage<'_>) {
        let mut partitions = self.partitions();
        let id: PartitionId = (message.topic().into(), message.partition());
        let Some(feed) = partitions.feeds.get_mut(&id) else { return };
        if feed.next_offset.is_some_and(|next| message.offset() < next) {
            return; // fetched again after a pause or a seek: already passed on
        }
        let timestamp = message.timestamp().to_millis().unwrap_or_else(now_millis);
        let headers = message
            .headers()
            .into_iter()
            .flat_map(|headers| headers.iter())
            .map(|header| (header.key.as_bytes(), header.value.unwrap_or_default()));
        let offset = u64::try_from(message.offset()).unwrap_or_default();
        let full = feed.batcher.push(message.key(), message.payload().unwrap_or_default(), timestamp, headers, offset);
        feed.next_offset = Some(message.offset() + 1);
        feed.restart_offset.get_or_insert(message.offset());
        if let Some(batch) = full {
            let delivered = feed.queue(consumer, &id, TaskMessage::Batch(batch));
            partitions.note(delivered, &id);
        }
    }

    /// Housekeeping between polls: lingering batches, retries of paused partitions, barriers.
    pub fn tick(&self, consumer: &BaseConsumer<SourceContext>) {
        let interval = self.setup.checkpoint_interval;
        // Exactly-once checkpoints every partition in one round instead.
        let per_partition_barriers = self.rounds.is_none();
        let mut partitions = self.partitions();
        let mut broken = Vec::new();
        for (id, feed) in partitions.feeds.iter_mut() {
            let mut delivered = feed.retry_pending(consumer, id);
            if let Some(batch) = feed.batcher.poll_linger() {
                delivered &= feed.queue(consumer, id, TaskMessage::Batch(batch));
            }
            if per_partition_barriers && feed.last_barrier.elapsed() >= interval {
                delivered &= feed.barrier(consumer, id);
            }
            if !delivered {
                broken.push(id.clone());
            }
        }
        for id in broken {
            partitions.note(false, &id);
        }
        drop(partitions);
        self.round_if_due(consumer);
    }

    /// Checkpoints and stops every partition task (the process is stopping).
    pub fn suspend_all(&self, consumer: &BaseConsumer<SourceContext>) {
        let ids: Vec<PartitionId> = self.partitions().feeds.keys().cloned().collect();
        if self.rounds.is_some() {
            return self.transaction_round(consumer, &ids);
        }
        // The process is leaving the group anyway: wait for every checkpoint.
        self.partitions().stop(&ids, false, Duration::MAX);
    }

    /// Partitions assigned: read their checkpoints, start their tasks, and assign each at
    /// the checkpoint's offset (or the configured start).
    fn assign(&self, consumer: &BaseConsumer<SourceContext>, assignment: &mut TopicPartitionList) {
        let ids: Vec<PartitionId> = assignment.elements().iter().map(|element| (element.topic().into(), element.partition())).collect();
        tracing::info!(source = %self.setup.source, partitions = %describe(&ids), "partitions assigned");
        if self.rounds.is_some() {
            // A partition assigned again while its old task runs: that task's work is in the
            // open transaction, so it ends with a committed round before the new one starts.
            let running: Vec<PartitionId> = ids.iter().filter(|id| self.partitions().feeds.contains_key(*id)).cloned().collect();
            if !running.is_empty() {
                self.transaction_round(consumer, &running);
            }
        }
        let keys: Vec<CheckpointKey> = ids.iter().map(|id| self.key(id)).collect();
        let mut checkpoints = match self.setup.store.load(&keys) {
            Ok(checkpoints) => checkpoints,
            Err(error) => return self.partitions().fail(format!("cannot read checkpoints: {error}")),
        };
        for (id, key) in ids.iter().zip(&keys) {
            let checkpoint = checkpoints.remove(key);
            let offset = match &checkpoint {
                Some(checkpoint) => Offset::Offset(i64::try_from(checkpoint.next_position).unwrap_or(i64::MAX)),
                None => self.start_offset(),
            };
            if let Err(error) = assignment.set_partition_offset(&id.0, id.1, offset) {
                return self.partitions().fail(format!("cannot position {}: {error}", describe_one(id)));
            }
            let restart_offset = checkpoint.as_ref().and_then(|checkpoint| i64::try_from(checkpoint.next_position).ok());
            let target = self.checkpoint_target(id, key, checkpoint.as_ref());
            if let Err(error) = self.start_feed(id, checkpoint.as_ref(), target, restart_offset) {
                return self.partitions().fail(error);
            }
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(assignment),
            _ => consumer.assign(assignment),
        };
        if let Err(error) = assigned {
            return self.partitions().fail(format!("cannot assign partitions: {error}"));
        }
        // A partition paused under an earlier assignment stays paused in librdkafka.
        if let Err(error) = consumer.resume(assignment) {
            tracing::warn!("cannot resume the assigned partitions: {error}");
        }
    }

    /// Where the task of a newly assigned partition saves its checkpoints: the checkpoint
    /// topic (then the source commits), or, exactly-once, the transaction.
    fn checkpoint_target(&self, id: &PartitionId, key: &CheckpointKey, restored: Option<&TaskCheckpoint>) -> Box<dyn CheckpointTarget> {
        let store = self.setup.store.clone();
        match self.rounds() {
            Some(mut rounds) => {
                rounds.restored(id, restored);
                Box::new(rounds.target(store, key.clone(), id.clone()))
            }
            None => Box::new(PartitionCheckpoints { store, key: key.clone(), commits: self.setup.commits.clone() }),
        }
    }

    /// Starts the task of `id`, restored from `checkpoint` if any, reading from
    /// `restart_offset` (none: from the first record that arrives).
    fn start_feed(
        &self,
        id: &PartitionId,
        checkpoint: Option<&TaskCheckpoint>,
        target: Box<dyn CheckpointTarget>,
        restart_offset: Option<i64>,
    ) -> Result<(), String> {
        if let Some(checkpoint) = checkpoint {
            tracing::info!(partition = %describe_one(id), offset = checkpoint.next_position, "restoring from checkpoint");
        }
        let origin = TaskOrigin { source: self.setup.source.clone(), partition: Some(id.clone()) };
        let task = self.setup.factory.start(origin, checkpoint, Some(target)).map_err(|error| error.to_string())?;
        let next_offset = restart_offset;
        let feed = PartitionFeed {
            task,
            batcher: Batcher::new(self.setup.batch_size, self.setup.batch_linger),
            pending: VecDeque::new(),
            paused: false,
            next_offset,
            checkpointed_offset: next_offset,
            last_barrier: Instant::now(),
            restart_offset,
        };
        let mut partitions = self.partitions();
        partitions.stop(std::slice::from_ref(id), false, self.setup.handover_limit);
        partitions.feeds.insert(id.clone(), feed);
        Ok(())
    }

    /// Partitions revoked: each task checkpoints and stops (or, if the partitions were lost
    /// to another member already, stops without saving), then their offsets are committed.
    fn revoke(&self, consumer: &BaseConsumer<SourceContext>, revoked: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        let ids: Vec<PartitionId> = revoked.elements().iter().map(|element| (element.topic().into(), element.partition())).collect();
        tracing::info!(source = %self.setup.source, partitions = %describe(&ids), lost, "partitions revoked");
        if self.rounds.is_some() {
            if lost {
                self.abort_and_rewind(consumer, "partitions were lost to another member", &ids);
            } else {
                self.transaction_round(consumer, &ids);
            }
            return self.unassign(consumer, revoked);
        }
        self.partitions().stop(&ids, lost, self.setup.handover_limit);
        if !lost {
            self.commit_checkpointed(consumer, CommitMode::Sync);
        }
        self.partitions().stopping.clear();
        self.unassign(consumer, revoked);
    }

    fn unassign(&self, consumer: &BaseConsumer<SourceContext>, revoked: &TopicPartitionList) {
        let unassigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(revoked),
            _ => consumer.unassign(),
        };
        if let Err(error) = unassigned {
            tracing::warn!("unassigning partitions failed: {error}");
        }
    }

    fn key(&self, id: &PartitionId) -> CheckpointKey {
        CheckpointKey {
            pipeline: self.setup.pipeline.clone(),
            source: self.setup.source.to_string(),
            topic: id.0.to_string(),
            partition: id.1,
            group: self.setup.group.clone(),
        }
    }

    fn start_offset(&self) -> Offset {
        match self.setup.start {
            StartPosition::Committed => Offset::Stored,
            StartPosition::Earliest => Offset::Beginning,
            StartPosition::Latest => Offset::End,
        }
    }
}

impl Partitions {
    /// Stops the tasks of `ids`: checkpointed (`Suspend`) unless `lost`. Every task gets its
    /// last message before any is waited for, so they checkpoint in parallel; a task still
    /// checkpointing after `limit` is left to finish in the background, its offset not
    /// committed (the next owner replays from the previous checkpoint).
    fn stop(&mut self, ids: &[PartitionId], lost: bool, limit: Duration) {
        let mut ending = Vec::new();
        for id in ids {
            let Some(mut feed) = self.feeds.remove(id) else { continue };
            // A final checkpoint even if nothing arrived since the last barrier: that barrier's
            // save may have failed.
            let last = match feed.next_offset {
                Some(next) if !lost => {
                    self.stopping.push(id.clone());
                    TaskMessage::Suspend { next_position: u64::try_from(next).unwrap_or_default() }
                }
                _ => TaskMessage::Abandon,
            };
            if let Some(batch) = feed.batcher.take().filter(|_| !lost) {
                feed.pending.push_back(TaskMessage::Batch(batch));
            }
            if lost {
                feed.pending.clear();
            }
            feed.pending.push_back(last);
            let sent = feed.deliver_pending();
            ending.push((id, feed, sent));
        }
        let deadline = Instant::now().checked_add(limit);
        for (id, feed, sent) in ending {
            let in_time = || deadline.is_none_or(|deadline| Instant::now() < deadline);
            while !feed.task.is_finished() && in_time() {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !feed.task.is_finished() {
                tracing::warn!(
                    partition = %describe_one(id),
                    "the task did not checkpoint within {limit:?}; it finishes in the background and its offset is not committed"
                );
                self.stopping.retain(|stopping| stopping != id);
                finish_in_background(feed.task);
                continue;
            }
            self.join(feed.task);
            if !sent {
                self.fail(format!("the task of {} stopped early", describe_one(id)));
            }
        }
    }

    /// Exactly-once: joins a task that was sent its last barrier in a round.
    fn join_stopped(&mut self, id: &PartitionId) {
        if let Some(feed) = self.feeds.remove(id) {
            self.join(feed.task);
        }
    }

    /// Exactly-once, after an abort: stops a task at once, whatever it has queued; returns
    /// the offset it started from (if it had a task).
    fn abandon(&mut self, id: &PartitionId) -> Option<Option<i64>> {
        let feed = self.feeds.remove(id)?;
        feed.task.cancel();
        self.join(feed.task);
        Some(feed.restart_offset)
    }

    /// After a send: a task that stopped taking records has failed; find out why.
    fn note(&mut self, delivered: bool, id: &PartitionId) {
        if delivered {
            return;
        }
        if let Some(feed) = self.feeds.remove(id) {
            self.tainted.get_or_insert_with(|| format!("the task of {} ended outside a round", describe_one(id)));
            self.join(feed.task);
        }
        if self.failure.is_none() {
            self.fail(format!("the task of {} stopped taking records", describe_one(id)));
        }
    }

    /// Waits for a task to end and keeps its statistics, or its failure.
    fn join(&mut self, task: StartedTask) {
        match task.join() {
            Ok(stats) => self.finished.push(stats),
            Err(error) => self.fail(error.to_string()),
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!("{reason}");
        self.failure.get_or_insert(reason);
    }
}

impl PartitionFeed {
    /// Sends a message to the task, or queues it and pauses the partition if the task is
    /// behind. False if the task has gone.
    fn queue(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId, message: TaskMessage) -> bool {
        if !self.pending.is_empty() {
            self.pending.push_back(message);
            return true;
        }
        match self.task.input().try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(message)) => {
                self.pending.push_back(message);
                self.pause(consumer, id);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Sends what waited; resumes the partition once nothing waits. False if the task has gone.
    fn retry_pending(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        while let Some(message) = self.pending.pop_front() {
            match self.task.input().try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(message)) => {
                    self.pending.push_front(message);
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        if self.paused {
            self.paused = false;
            tracing::debug!(partition = %describe_one(id), "partition resumed: its task caught up");
            if let Err(error) = consumer.resume(&single(id)) {
                tracing::warn!("cannot resume {}: {error}", describe_one(id));
            }
        }
        true
    }

    /// Sends everything that waits, waiting for room (a round needs its barrier queued);
    /// false if the task has gone. A paused partition resumes at the next tick.
    fn deliver_pending(&mut self) -> bool {
        let input = self.task.input().clone();
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
    fn barrier(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) -> bool {
        self.last_barrier = Instant::now();
        let Some(next) = self.next_offset.filter(|next| Some(*next) != self.checkpointed_offset) else { return true };
        self.checkpointed_offset = Some(next);
        let mut delivered = true;
        if let Some(batch) = self.batcher.take() {
            delivered &= self.queue(consumer, id, TaskMessage::Batch(batch));
        }
        delivered & self.queue(consumer, id, TaskMessage::Checkpoint { next_position: u64::try_from(next).unwrap_or_default() })
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        LoggingContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, error: RDKafkaRespErr, partitions: &mut TopicPartitionList) {
        match error {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, partitions),
            other => {
                tracing::error!(source = %self.setup.source, "rebalance failed: {other:?}; giving up the partitions");
                let all = self.partitions().feeds.keys().cloned().collect::<Vec<_>>();
                self.abort_and_rewind(consumer, "the rebalance failed", &all);
                self.partitions().stop(&all, true, self.setup.handover_limit);
                if let Err(error) = consumer.unassign() {
                    tracing::warn!("unassigning partitions failed: {error}");
                }
            }
        }
    }
}

/// Saves a partition task's checkpoints in the checkpoint topic, then asks the source to
/// commit the position.
struct PartitionCheckpoints {
    store: Arc<CheckpointStore>,
    key: CheckpointKey,
    commits: Sender<Commit>,
}

impl CheckpointTarget for PartitionCheckpoints {
    fn save(&mut self, checkpoint: &TaskCheckpoint) -> Result<(), String> {
        self.store.save(&self.key, checkpoint)?;
        let commit = Commit {
            partition: (self.key.topic.as_str().into(), self.key.partition),
            offset: i64::try_from(checkpoint.next_position).unwrap_or(i64::MAX),
        };
        // The source may be gone (stopping): the checkpoint is saved, the commit is moot.
        let _ = self.commits.send(commit);
        Ok(())
    }
}

/// Joins a task on a thread of its own (it unregisters from the control when it ends).
fn finish_in_background(task: StartedTask) {
    let origin = task.origin().to_string();
    let joined = std::thread::Builder::new().name("sluice-handover".into()).spawn(move || {
        if let Err(error) = task.join() {
            tracing::warn!("a task handed over late failed: {error}");
        }
    });
    if let Err(error) = joined {
        tracing::warn!(task = %origin, "cannot wait for the task in the background: {error}");
    }
}

/// A list with one partition.
pub fn single(id: &PartitionId) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(&id.0, id.1);
    list
}

/// "topic/0, topic/1" for logs and errors.
pub fn describe(ids: &[PartitionId]) -> String {
    ids.iter().map(|(topic, partition)| format!("{topic}/{partition}")).collect::<Vec<_>>().join(", ")
}

/// "topic/0" for logs and errors.
fn describe_one(id: &PartitionId) -> String {
    describe(std::slice::from_ref(id))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}
