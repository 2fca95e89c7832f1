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

use super::LoggingContext;
use super::checkpoint::{CheckpointKey, CheckpointStore};
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
}

/// The consumer's context: rebalances start and stop partition tasks.
pub struct SourceContext {
    setup: PartitionSetup,
    state: Mutex<Partitions>,
    /// Positions the tasks have checkpointed, not yet committed.
    commits: Mutex<Receiver<Commit>>,
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
}

impl SourceContext {
    pub fn new(setup: PartitionSetup, commits: Receiver<Commit>) -> SourceContext {
        SourceContext { setup, state: Mutex::default(), commits: Mutex::new(commits) }
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
        if let Some(batch) = full {
            let delivered = feed.queue(consumer, &id, TaskMessage::Batch(batch));
            partitions.note(delivered, &id);
        }
    }

    /// Housekeeping between polls: lingering batches, retries of paused partitions, barriers.
    pub fn tick(&self, consumer: &BaseConsumer<SourceContext>) {
        let interval = self.setup.checkpoint_interval;
        let mut partitions = self.partitions();
        let mut broken = Vec::new();
        for (id, feed) in partitions.feeds.iter_mut() {
            let mut delivered = feed.retry_pending(consumer, id);
            if let Some(batch) = feed.batcher.poll_linger() {
                delivered &= feed.queue(consumer, id, TaskMessage::Batch(batch));
            }
            if feed.last_barrier.elapsed() >= interval {
                delivered &= feed.barrier(consumer, id);
            }
            if !delivered {
                broken.push(id.clone());
            }
        }
        for id in broken {
            partitions.note(false, &id);
        }
    }

    /// Checkpoints and stops every partition task (the process is stopping).
    pub fn suspend_all(&self) {
        let mut partitions = self.partitions();
        let ids: Vec<PartitionId> = partitions.feeds.keys().cloned().collect();
        for id in ids {
            partitions.stop(&id, false);
        }
    }

    /// Partitions assigned: read their checkpoints, start their tasks, and assign each at
    /// the checkpoint's offset (or the configured start).
    fn assign(&self, consumer: &BaseConsumer<SourceContext>, assignment: &mut TopicPartitionList) {
        let ids: Vec<PartitionId> = assignment.elements().iter().map(|element| (element.topic().into(), element.partition())).collect();
        tracing::info!(source = %self.setup.source, partitions = %describe(&ids), "partitions assigned");
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
            if let Err(error) = self.start_feed(id, key, checkpoint.as_ref()) {
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

    fn start_feed(&self, id: &PartitionId, key: &CheckpointKey, checkpoint: Option<&TaskCheckpoint>) -> Result<(), String> {
        if let Some(checkpoint) = checkpoint {
            tracing::info!(partition = %describe_one(id), offset = checkpoint.next_position, "restoring from checkpoint");
        }
        let origin = TaskOrigin { source: self.setup.source.clone(), partition: Some(id.clone()) };
        let target = PartitionCheckpoints { store: self.setup.store.clone(), key: key.clone(), commits: self.setup.commits.clone() };
        let task = self.setup.factory.start(origin, checkpoint, Some(Box::new(target))).map_err(|error| error.to_string())?;
        let next_offset = checkpoint.and_then(|checkpoint| i64::try_from(checkpoint.next_position).ok());
        let feed = PartitionFeed {
            task,
            batcher: Batcher::new(self.setup.batch_size, self.setup.batch_linger),
            pending: VecDeque::new(),
            paused: false,
            next_offset,
            checkpointed_offset: next_offset,
            last_barrier: Instant::now(),
        };
        let mut partitions = self.partitions();
        partitions.stop(id, false);
        partitions.feeds.insert(id.clone(), feed);
        Ok(())
    }

    /// Partitions revoked: each task checkpoints and stops (or, if the partitions were lost
    /// to another member already, stops without saving), then their offsets are committed.
    fn revoke(&self, consumer: &BaseConsumer<SourceContext>, revoked: &TopicPartitionList) {
        let lost = consumer.assignment_lost();
        let ids: Vec<PartitionId> = revoked.elements().iter().map(|element| (element.topic().into(), element.partition())).collect();
        tracing::info!(source = %self.setup.source, partitions = %describe(&ids), lost, "partitions revoked");
        {
            let mut partitions = self.partitions();
            for id in &ids {
                partitions.stop(id, lost);
            }
        }
        if !lost {
            self.commit_checkpointed(consumer, CommitMode::Sync);
        }
        self.partitions().stopping.clear();
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
    /// Stops a partition's task: checkpointed (`Suspend`) unless `lost`.
    fn stop(&mut self, id: &PartitionId, lost: bool) {
        let Some(mut feed) = self.feeds.remove(id) else { return };
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
        let input = feed.task.input().clone();
        let sent = feed.pending.drain(..).all(|message| input.send(message).is_ok());
        drop(input);
        match feed.task.join() {
            Ok(stats) if sent => self.finished.push(stats),
            Ok(stats) => {
                self.finished.push(stats);
                self.fail(format!("the task of {} stopped early", describe_one(id)));
            }
            Err(error) => self.fail(error.to_string()),
        }
    }

    /// After a send: a task that stopped taking records has failed; find out why.
    fn note(&mut self, delivered: bool, id: &PartitionId) {
        if delivered {
            return;
        }
        if let Some(feed) = self.feeds.remove(id) {
            match feed.task.join() {
                Ok(stats) => self.finished.push(stats),
                Err(error) => self.fail(error.to_string()),
            }
        }
        if self.failure.is_none() {
            self.fail(format!("the task of {} stopped taking records", describe_one(id)));
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
            if let Err(error) = consumer.resume(&single(id)) {
                tracing::warn!("cannot resume {}: {error}", describe_one(id));
            }
        }
        true
    }

    fn pause(&mut self, consumer: &BaseConsumer<SourceContext>, id: &PartitionId) {
        if !self.paused {
            self.paused = true;
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
                let mut partitions = self.partitions();
                for id in &all {
                    partitions.stop(id, true);
                }
                drop(partitions);
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
