//! The partitions a Kafka source owns: a task for each (of the source's stage for its topics,
//! of the stage behind an exchange for a repartition topic), restored from the partition's
//! checkpoint, fed in offset order (`feed.rs`), checkpointed on a timer and committed once
//! durable (`commits.rs`, or in transaction rounds: `exactly_once.rs`), handed over whole on
//! a rebalance.
//!
//! librdkafka calls the rebalance callback from inside `poll`, on the source's thread, so the
//! partitions live behind a mutex the callback and the poll loop share (never contended).

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

mod caught_up;
mod commits;
mod exactly_once;
mod feed;

use caught_up::CaughtUpProbe;
use commits::PartitionCheckpoints;
use exactly_once::Rounds;
use feed::{FeedKind, PartitionFeed};

pub use commits::Commit;

use super::LoggingContext;
use super::checkpoint::{CheckpointKey, CheckpointStore};
use super::transaction::TransactionalProducer;
use crate::config::StartPosition;
use crate::pipeline::{
    Batcher, CheckpointTarget, StartedTask, TaskCheckpoint, TaskFactory, TaskMessage, TaskOrigin, TaskStart, TaskStats, UpstreamNames,
    Upstreams, WatermarkGenerator,
};
use crate::source::EventTime;

/// How often a silent partition asks whether it is caught up.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the group's committed offsets at an assignment.
const COMMITTED_OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);

/// A topic partition.
pub type PartitionId = (Arc<str>, i32);

/// The stages a Kafka source's partitions feed: its topics feed the source's stage; each
/// repartition topic, the stage behind its exchange.
pub struct KafkaStages {
    pub source: TaskFactory,
    pub repartitions: Vec<RepartitionStage>,
}

/// The stage behind one exchange, fed by its repartition topic.
pub struct RepartitionStage {
    pub topic: String,
    pub factory: TaskFactory,
    /// The upstream tasks that write into the topic (`topic/partition` of their input), so
    /// that a task knows whose watermark it waits for before any marker has arrived.
    pub origins: Vec<String>,
}

/// The stage a partition's topic feeds.
enum StageOf<'a> {
    Source(&'a TaskFactory),
    Repartition(&'a RepartitionStage),
}

impl KafkaStages {
    fn of(&self, topic: &str) -> StageOf<'_> {
        match self.repartitions.iter().find(|stage| stage.topic == topic) {
            Some(stage) => StageOf::Repartition(stage),
            None => StageOf::Source(&self.source),
        }
    }
}

impl StageOf<'_> {
    fn factory(&self) -> &TaskFactory {
        match self {
            StageOf::Source(factory) => factory,
            StageOf::Repartition(stage) => &stage.factory,
        }
    }
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
    pub event_time: EventTime,
    pub stages: KafkaStages,
    pub store: Arc<CheckpointStore>,
    pub commits: Sender<Commit>,
    /// Exactly-once: the transaction every output and checkpoint goes into.
    pub transactions: Option<Arc<TransactionalProducer>>,
    /// Exactly-once: transactions that may abort in a row before the source stops.
    pub tolerated_aborts: u32,
    /// Longest wait for revoked partitions' tasks to checkpoint: well below
    /// `max.poll.interval.ms`, past which the group would evict this process.
    pub handover_limit: Duration,
    /// Where the consumer lag of each partition goes.
    pub metrics: crate::monitor::Metrics,
}

/// The consumer's context: rebalances start and stop partition tasks.
pub struct SourceContext {
    setup: PartitionSetup,
    state: Mutex<Partitions>,
    /// Positions the tasks have checkpointed, not yet committed.
    commits: Mutex<Receiver<Commit>>,
    /// Exactly-once: transaction rounds instead of per-partition commits.
    rounds: Option<Mutex<Rounds>>,
    /// Asks whether quiet partitions are caught up (none: idleness is never confirmed).
    probe: Mutex<Option<CaughtUpProbe>>,
    /// The bytes of records all partition feeds keep for their tasks (bounded).
    pending: Arc<AtomicUsize>,
}

/// Why one of the partitions `ids` cannot resume from its checkpoint (`restored`), if one
/// cannot (`resumes_past_the_end`). Asked before any task starts, within one deadline for the
/// whole assignment: a broker slow to answer leaves the rest unchecked, with a warning naming
/// them, rather than hold the rebalance up.
fn resumes_past_an_end(consumer: &BaseConsumer<SourceContext>, ids: &[PartitionId], restored: &[Option<TaskCheckpoint>]) -> Option<String> {
    let until = Instant::now() + Duration::from_secs(5);
    let mut unchecked = Vec::new();
    for (id, checkpoint) in ids.iter().zip(restored) {
        let Some(checkpoint) = checkpoint else { continue };
        match resumes_past_the_end(consumer, id, checkpoint.next_position, until) {
            Ok(None) => {}
            Ok(Some(problem)) => return Some(problem),
            Err(()) => unchecked.push(id.clone()),
        }
    }
    if !unchecked.is_empty() {
        tracing::warn!(
            partitions = %describe(&unchecked),
            "the brokers did not say in time where these partitions end: their checkpoints resume unchecked (were a topic \
             deleted and made again, the records of the new one up to the checkpoint's offset would be skipped)"
        );
    }
    None
}

/// Why a partition cannot resume at `next_position`, if it cannot: the partition now ends
/// before it, so the topic was deleted and made again since the checkpoint (or the brokers
/// lost records), and resuming there would skip every record the new one gets up to that
/// offset. `Err` when the brokers do not answer before `until`. (A topic made again that
/// already holds more records than the checkpoint's offset is not found.)
fn resumes_past_the_end(
    consumer: &BaseConsumer<SourceContext>,
    id: &PartitionId,
    next_position: u64,
    until: Instant,
) -> Result<Option<String>, ()> {
    let left = until.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()).ok_or(())?;
    let (_, end) = consumer.fetch_watermarks(&id.0, id.1, left).map_err(|_| ())?;
    let Ok(end) = u64::try_from(end) else { return Ok(None) };
    Ok((next_position > end).then(|| {
        format!(
            "the checkpoint of {} resumes at offset {next_position}, but the partition ends at offset {end}: the topic was deleted \
             and made again since (or the brokers lost records), so the records it held after the checkpoint are gone and those \
             of the new topic would be skipped; start over with a new consumer `group` (or remove this pipeline's checkpoints)",
            describe_one(id)
        )
    }))
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
    /// Whether `failure` is a partition's task that could not start (`fail_start`) in the
    /// run's first assignment of partitions.
    pub failed_to_start: bool,
    /// Whether an assignment of partitions started them all: a task refused later (at a
    /// rebalance, hours on) is a failure of this definition, not of a reload to give up.
    started_partitions: bool,
    /// Exactly-once: why the open transaction must not commit (a task ended without its
    /// last barrier, so its outputs are in the transaction without its offset).
    tainted: Option<String>,
}

impl SourceContext {
    /// The context of a consumer; `metadata` makes the client that asks whether partitions are
    /// caught up.
    pub fn new(setup: PartitionSetup, commits: Receiver<Commit>, metadata: &rdkafka::ClientConfig) -> SourceContext {
        let rounds = setup.transactions.clone().map(|producer| Mutex::new(Rounds::new(producer, setup.tolerated_aborts)));
        let probe = CaughtUpProbe::start(metadata)
            .map_err(|error| tracing::warn!("idle partitions will not advance their watermark: {error}"))
            .ok();
        let pending = Arc::default();
        SourceContext { setup, state: Mutex::default(), commits: Mutex::new(commits), rounds, probe: Mutex::new(probe), pending }
    }

    pub fn partitions(&self) -> MutexGuard<'_, Partitions> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Routes a record to its partition's task.
    pub fn receive(&self, consumer: &BaseConsumer<SourceContext>, message: &BorrowedMessage<'_>) {
        let mut partitions = self.partitions();
        let id: PartitionId = (message.topic().into(), message.partition());
        let Some(feed) = partitions.feeds.get_mut(&id) else { return };
        let delivered = feed.receive(consumer, &id, message);
        partitions.note(delivered, &id);
    }

    /// The consumer read to the end of partition `partition` of some topic (librdkafka does
    /// not say which): the source partitions of that number that have received nothing since
    /// may let their watermark follow processing time once idle.
    pub fn reached_end(&self, partition: i32) {
        let mut partitions = self.partitions();
        for (_, feed) in partitions.feeds.iter_mut().filter(|((_, number), _)| *number == partition) {
            feed.reached_end();
        }
    }

    /// Housekeeping between polls: lingering batches, idle watermarks, retries of paused
    /// partitions, barriers.
    pub fn tick(&self, consumer: &BaseConsumer<SourceContext>) {
        self.confirm_caught_up(consumer);
        let interval = self.setup.checkpoint_interval;
        // Exactly-once checkpoints every partition in one round instead.
        let per_partition_barriers = self.rounds.is_none();
        let mut partitions = self.partitions();
        let mut broken = Vec::new();
        for (id, feed) in partitions.feeds.iter_mut() {
            let mut delivered = feed.housekeeping(consumer, id);
            if per_partition_barriers && feed.last_barrier.elapsed() >= interval {
                delivered &= feed.barrier(consumer, id);
            }
            // Between rounds a task ends only when its feed is removed: one that ended with its
            // feed still here failed (too many failed checkpoints, say), and stops the pipeline
            // now, not when its partition's next record finds it gone.
            if per_partition_barriers && feed.task.is_finished() {
                delivered = false;
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

    /// Applies the brokers' answers on whether quiet source partitions are caught up, and asks
    /// again about each source partition silent for its `idle_timeout` (at most once a
    /// second each): only a confirmed catch-up lets silence count as idleness (a consumer that
    /// stalled is behind, not idle). The asking happens on another thread (`caught_up.rs`).
    fn confirm_caught_up(&self, consumer: &BaseConsumer<SourceContext>) {
        let mut probe = self.probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(probe) = probe.as_mut() else { return };
        let mut partitions = self.partitions();
        for answer in probe.answers().into_iter().filter(|answer| answer.caught_up) {
            if let Some(feed) = partitions.feeds.get_mut(&answer.id) {
                feed.confirm_caught_up(answer.asked_at);
            }
        }
        let quiet: Vec<(PartitionId, i64)> = partitions
            .feeds
            .iter_mut()
            .filter_map(|(id, feed)| feed.quiet_position(CONFIRM_EVERY).map(|next| (id.clone(), next)))
            .collect();
        drop(partitions);
        if quiet.is_empty() {
            return;
        }
        // librdkafka's position also steps over transaction markers, which carry no record.
        let positions = consumer.position().ok();
        for (id, next) in quiet {
            let position = positions
                .as_ref()
                .and_then(|list| list.find_partition(&id.0, id.1))
                .and_then(|element| element.offset().to_raw())
                .map_or(next, |position| position.max(next));
            probe.ask(&id, position);
        }
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
        // A cooperative rebalance calls back with no partition at all: nothing to say.
        if !ids.is_empty() {
            tracing::info!(source = %self.setup.source, partitions = %describe(&ids), "partitions assigned");
        }
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
        let unrestored: Vec<PartitionId> =
            ids.iter().zip(&keys).filter(|(_, key)| !checkpoints.contains_key(*key)).map(|(id, _)| id.clone()).collect();
        let committed = self.committed_offsets(consumer, &unrestored);
        let restored: Vec<Option<TaskCheckpoint>> = keys.iter().map(|key| checkpoints.remove(key)).collect();
        if let Some(problem) = resumes_past_an_end(consumer, &ids, &restored) {
            return self.partitions().fail_start(problem);
        }
        for ((id, key), checkpoint) in ids.iter().zip(&keys).zip(restored) {
            let offset = match &checkpoint {
                Some(checkpoint) => Offset::Offset(i64::try_from(checkpoint.next_position).unwrap_or(i64::MAX)),
                None => self.start_offset(id, &committed),
            };
            if let Err(error) = assignment.set_partition_offset(&id.0, id.1, offset) {
                return self.partitions().fail(format!("cannot position {}: {error}", describe_one(id)));
            }
            let restart_offset = checkpoint.as_ref().and_then(|checkpoint| i64::try_from(checkpoint.next_position).ok());
            let target = self.checkpoint_target(id, key, checkpoint.as_ref());
            if let Err(error) = self.start_feed(id, checkpoint.as_ref(), target, restart_offset) {
                return self.partitions().fail_start(error);
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
        if !ids.is_empty() {
            self.partitions().started_partitions = true;
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

    /// Starts the task of `id` (of the stage its topic feeds), restored from `checkpoint` if
    /// any, reading from `restart_offset` (none: from the first record that arrives).
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
        let stage = self.setup.stages.of(&id.0);
        let factory = stage.factory();
        let source: Arc<str> = factory.stage().name.as_str().into();
        let origin = TaskOrigin { source: source.clone(), partition: Some(id.clone()), instance: None };
        let (kind, upstreams) = match &stage {
            StageOf::Source(_) => {
                let event_time = self.setup.event_time;
                let mut watermarks = WatermarkGenerator::new(event_time.out_of_orderness, event_time.idle_timeout);
                watermarks.resume_at(checkpoint.and_then(|checkpoint| checkpoint.upstream_watermarks.first().copied().flatten()));
                (FeedKind::Source { watermarks, late: event_time.late }, Upstreams::new(1, 1))
            }
            StageOf::Repartition(stage) => {
                let names = UpstreamNames::new(stage.origins.clone());
                (FeedKind::Repartition { origins: names.clone(), known: Vec::new() }, Upstreams::named(names))
            }
        };
        let start = TaskStart { origin, instance: 0, upstreams, restored: checkpoint, checkpoints: Some(target) };
        let task = factory.start(start).map_err(|error| error.to_string())?;
        let batcher = Batcher::new(self.setup.batch_size, self.setup.batch_linger);
        let dead_letters = factory.shared_outputs().dead_letters.clone();
        let late_dropped = self.setup.metrics.source_late_dropped(&self.setup.pipeline, &source);
        let feed = PartitionFeed::new(task, batcher, kind, restart_offset, dead_letters, source, self.pending.clone())
            .counting_late_drops_in(late_dropped);
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
        if !ids.is_empty() {
            tracing::info!(source = %self.setup.source, partitions = %describe(&ids), lost, "partitions revoked");
        }
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
            source: self.setup.stages.of(&id.0).factory().stage().name.clone(),
            topic: id.0.to_string(),
            partition: id.1,
            group: self.setup.group.clone(),
        }
    }

    /// Where a partition without a checkpoint starts. `committed` holds where the group's
    /// committed offsets put the partitions the brokers answered for; the others are left to
    /// librdkafka (`Stored`: it asks itself).
    fn start_offset(&self, id: &PartitionId, committed: &HashMap<PartitionId, Offset>) -> Offset {
        match self.setup.start {
            StartPosition::Committed => committed.get(id).copied().unwrap_or(Offset::Stored),
            StartPosition::Earliest => Offset::Beginning,
            StartPosition::Latest => Offset::End,
        }
    }

    /// With `start = "committed"`, where the group's committed offsets put `ids`, asked for
    /// once for all: its committed offset, or `Beginning` for a partition that has none.
    /// librdkafka would ask too, but a partition with none then waits 100 ms (its offset-reset
    /// back-off) before its first fetch. Partitions the brokers gave an error for (an unstable
    /// offset of an open transaction, say), or all if they did not answer, are left out, and
    /// librdkafka asks for those as before.
    fn committed_offsets(&self, consumer: &BaseConsumer<SourceContext>, ids: &[PartitionId]) -> HashMap<PartitionId, Offset> {
        if self.setup.start != StartPosition::Committed || ids.is_empty() {
            return HashMap::new();
        }
        let mut wanted = TopicPartitionList::new();
        for id in ids {
            wanted.add_partition(&id.0, id.1);
        }
        let answered = match consumer.committed_offsets(wanted, COMMITTED_OFFSETS_TIMEOUT) {
            Ok(answered) => answered,
            Err(error) => {
                tracing::debug!("cannot read the committed offsets at assignment (librdkafka will): {error}");
                return HashMap::new();
            }
        };
        answered
            .elements()
            .iter()
            .filter(|element| element.error().is_ok())
            .filter_map(|element| {
                let start = match element.offset() {
                    Offset::Offset(offset) if offset >= 0 => Offset::Offset(offset),
                    Offset::Invalid => Offset::Beginning,
                    _ => return None,
                };
                Some(((element.topic().into(), element.partition()), start))
            })
            .collect()
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
                    feed.next_barrier(next, true)
                }
                _ => TaskMessage::Abandon,
            };
            feed.finish_later(last, lost);
            ending.push((id, feed, true));
        }
        // Each task's last messages go as its queue makes room, all tasks at once: waiting for
        // one task's room before the next got anything made them work through their queues
        // one after the other (minutes with a hundred partitions behind).
        loop {
            let mut waiting = false;
            for (_, feed, sent) in ending.iter_mut().filter(|(_, _, sent)| *sent) {
                match feed.deliver_some() {
                    Some(true) => {}
                    Some(false) => waiting = true,
                    None => *sent = false,
                }
            }
            if !waiting {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
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
            self.join(feed);
            if !sent {
                self.fail(format!("the task of {} stopped early", describe_one(id)));
            }
        }
    }

    /// Exactly-once: joins a task that was sent its last barrier in a round.
    fn join_stopped(&mut self, id: &PartitionId) {
        if let Some(feed) = self.feeds.remove(id) {
            self.join(feed);
        }
    }

    /// Exactly-once, after an abort: stops a task at once, whatever it has queued; returns
    /// the offset it started from (if it had a task).
    fn abandon(&mut self, id: &PartitionId) -> Option<Option<i64>> {
        let feed = self.feeds.remove(id)?;
        feed.task.cancel();
        let restart_offset = feed.restart_offset;
        self.join(feed);
        Some(restart_offset)
    }

    /// After a send: a task that stopped taking records has failed; find out why.
    fn note(&mut self, delivered: bool, id: &PartitionId) {
        if delivered {
            return;
        }
        if let Some(feed) = self.feeds.remove(id) {
            self.tainted.get_or_insert_with(|| format!("the task of {} ended outside a round", describe_one(id)));
            self.join(feed);
        }
        if self.failure.is_none() {
            self.fail(format!("the task of {} stopped taking records", describe_one(id)));
        }
    }

    /// Waits for a partition's task to end and keeps its statistics (with the records its
    /// feed dropped as late), or its failure.
    fn join(&mut self, feed: PartitionFeed) {
        let late_dropped = feed.late_dropped;
        match feed.task.join() {
            Ok(mut stats) => {
                stats.late_dropped += late_dropped;
                self.finished.push(stats);
            }
            Err(error) => self.fail(error.to_string()),
        }
    }

    fn fail(&mut self, reason: String) {
        tracing::error!("{reason}");
        self.failure.get_or_insert(reason);
    }

    /// A partition's task could not start: the source stops with `SourceError::TaskNotStarted`
    /// (a reloaded definition is then given up for the previous one) if none had started yet.
    fn fail_start(&mut self, reason: String) {
        if self.failure.is_none() && !self.started_partitions {
            self.failed_to_start = true;
        }
        self.fail(reason);
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        LoggingContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason);
    }

    /// The consumer lag of each partition, from librdkafka's statistics: its end (the last
    /// stable offset, which a `read_committed` reader can reach; else the high watermark) minus
    /// the position this process has read to (before its first record, the committed offset,
    /// or where it resumes).
    /// A partition not assigned here any more is forgotten.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let (metrics, pipeline) = (&self.setup.metrics, &self.setup.pipeline);
        for (topic, data) in &statistics.topics {
            for (partition, numbers) in data.partitions.iter().filter(|(partition, _)| **partition >= 0) {
                match partition_lag(numbers) {
                    Some(lag) => metrics.consumer_lag(pipeline, topic, *partition, lag),
                    None if !numbers.desired => metrics.forget_partition(pipeline, topic, *partition),
                    None => {}
                }
            }
        }
    }
}

/// End minus position of an assigned partition, when both are known.
fn partition_lag(numbers: &rdkafka::statistics::Partition) -> Option<i64> {
    if !numbers.desired {
        return None;
    }
    let end = if numbers.ls_offset >= 0 { numbers.ls_offset } else { numbers.hi_offset };
    // Before its first record: the committed offset, or, for a partition resumed at its
    // checkpoint's offset (no committed offset asked for), where the fetcher reads from.
    let position = [numbers.app_offset, numbers.committed_offset, numbers.next_offset].into_iter().find(|offset| *offset >= 0);
    position.filter(|_| end >= 0).map(|position| (end - position).max(0))
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
