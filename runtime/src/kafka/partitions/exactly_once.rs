//! Exactly-once rounds (`delivery = "exactly-once"`): every partition task is brought to one
//! barrier, then the source commits the transaction holding their outputs, dead letters and
//! checkpoint records together with their offsets. If it cannot, it aborts the transaction
//! and puts every task back to the last committed checkpoint, its partition rewound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{PartitionId, SourceContext, describe_one, single};
use crate::kafka::checkpoint::{CheckpointKey, CheckpointStore};
use crate::kafka::{TransactionError, TransactionalProducer};
use crate::pipeline::{CheckpointTarget, TaskCheckpoint, TaskMessage};

/// How often a task waiting for its round's outcome checks whether it was rewound.
const OUTCOME_POLL: Duration = Duration::from_millis(50);
/// Longest wait for a partition to be rewound.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

/// The transaction state of an exactly-once source.
pub struct Rounds {
    producer: Arc<TransactionalProducer>,
    arrivals_sender: Sender<Arrival>,
    arrivals: Receiver<Arrival>,
    /// The last committed checkpoint of each owned partition: where a rewind goes back to.
    committed: HashMap<PartitionId, TaskCheckpoint>,
    /// Raised by every rewind: tasks started before it stop waiting for outcomes.
    generation: Arc<AtomicU64>,
    last_round: Instant,
    /// Rounds that may abort in a row before the source stops with the error.
    tolerated_aborts: u32,
    aborts_in_a_row: u32,
}

/// A task at a round's barrier: its checkpoint record is in the transaction (or why not),
/// and it waits for the outcome.
struct Arrival {
    partition: PartitionId,
    checkpoint: Result<TaskCheckpoint, String>,
    outcome: Sender<Result<(), String>>,
}

impl Rounds {
    pub fn new(producer: Arc<TransactionalProducer>, tolerated_aborts: u32) -> Rounds {
        let (arrivals_sender, arrivals) = mpsc::channel();
        Rounds {
            producer,
            arrivals_sender,
            arrivals,
            committed: HashMap::new(),
            generation: Arc::default(),
            last_round: Instant::now(),
            tolerated_aborts,
            aborts_in_a_row: 0,
        }
    }

    /// Where the task of `partition` saves its checkpoints: into the transaction, then it
    /// waits for the round's outcome.
    pub fn target(&self, store: Arc<CheckpointStore>, key: CheckpointKey, partition: PartitionId) -> TransactionalCheckpoints {
        let generation = self.generation.load(Ordering::SeqCst);
        TransactionalCheckpoints {
            store,
            key,
            partition,
            arrivals: self.arrivals_sender.clone(),
            started_in: generation,
            generation: self.generation.clone(),
        }
    }

    /// Notes the checkpoint a newly assigned partition starts from.
    pub fn restored(&mut self, partition: &PartitionId, checkpoint: Option<&TaskCheckpoint>) {
        match checkpoint {
            Some(checkpoint) => self.committed.insert(partition.clone(), checkpoint.clone()),
            None => self.committed.remove(partition),
        };
    }

    fn await_arrivals(&self, expected: usize) -> Vec<Arrival> {
        let deadline = Instant::now() + self.producer.round_timeout();
        let mut arrived = Vec::with_capacity(expected);
        while arrived.len() < expected {
            match self.arrivals.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(arrival) => arrived.push(arrival),
                Err(_) => break,
            }
        }
        arrived
    }

    /// Commits if every task arrived with its checkpoint; otherwise aborts.
    fn decide(&self, consumer: &BaseConsumer<SourceContext>, arrived: &[Arrival], expected: usize) -> Result<(), TransactionError> {
        if arrived.len() < expected {
            let reason =
                format!("{} of {expected} partition tasks reached the barrier within {:?}", arrived.len(), self.producer.round_timeout());
            return Err(self.producer.abort(reason));
        }
        if let Some(reason) = arrived.iter().find_map(|arrival| arrival.checkpoint.as_ref().err()) {
            return Err(self.producer.abort(format!("a checkpoint could not be written: {reason}")));
        }
        if arrived.is_empty() {
            return Ok(()); // nothing owned, nothing written: the transaction stays open
        }
        let Some(group) = consumer.group_metadata() else {
            return Err(self.producer.abort("the consumer has no group metadata".into()));
        };
        let mut offsets = TopicPartitionList::new();
        for arrival in arrived {
            let Ok(checkpoint) = &arrival.checkpoint else { continue };
            let offset = Offset::Offset(i64::try_from(checkpoint.next_position).unwrap_or(i64::MAX));
            if let Err(error) = offsets.add_partition_offset(&arrival.partition.0, arrival.partition.1, offset) {
                return Err(self.producer.abort(format!("cannot list the offset of {}: {error}", describe_one(&arrival.partition))));
            }
        }
        self.producer.commit(&offsets, &group)
    }

    /// After an outcome other than a commit: tasks still waiting in `arrive` (they came
    /// after the round gave up) stop waiting, and nothing stale is left for the next round.
    fn release_waiting_tasks(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.dismiss_stale_arrivals();
    }

    /// Answers tasks that can no longer be part of a round.
    fn dismiss_stale_arrivals(&self) {
        for stale in self.arrivals.try_iter() {
            let _ = stale.outcome.send(Err("the transaction was aborted".into()));
        }
    }
}

impl SourceContext {
    pub(super) fn rounds(&self) -> Option<MutexGuard<'_, Rounds>> {
        self.rounds.as_ref().map(|rounds| rounds.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Starts a round once the checkpoint interval has passed since the last.
    pub(super) fn round_if_due(&self, consumer: &BaseConsumer<SourceContext>) {
        let due = self.rounds().is_some_and(|rounds| rounds.last_round.elapsed() >= self.setup.checkpoint_interval);
        if due {
            self.transaction_round(consumer, &[]);
        }
    }

    /// Brings every task to a barrier (the `stopping` ones to their last), then commits the
    /// transaction with their offsets. Stopping tasks end either way; if the transaction
    /// aborts, the others are rewound to the last committed checkpoint.
    pub(super) fn transaction_round(&self, consumer: &BaseConsumer<SourceContext>, stopping: &[PartitionId]) {
        let Some(mut rounds) = self.rounds() else { return };
        rounds.last_round = Instant::now();
        if let Some(fatal) = rounds.producer.fatal_error() {
            // Nothing can be committed any more: stop every task, saving nothing.
            rounds.release_waiting_tasks();
            drop(rounds);
            let mut partitions = self.partitions();
            let ids: Vec<PartitionId> = partitions.feeds.keys().cloned().collect();
            for id in &ids {
                let _ = partitions.abandon(id);
            }
            return partitions.fail(fatal.to_string());
        }
        let tainted = self.partitions().tainted.take();
        if let Some(reason) = tainted {
            drop(rounds);
            return self.abort_and_rewind(consumer, &reason, stopping);
        }
        let swaps_held = self.setup.stages.source.hold_swaps();
        let (expected, complete) = self.send_barriers(stopping);
        let arrived = rounds.await_arrivals(expected);
        let outcome = match complete {
            Ok(()) => rounds.decide(consumer, &arrived, expected),
            Err(reason) => Err(rounds.producer.abort(reason)),
        };
        for arrival in &arrived {
            let _ = arrival.outcome.send(outcome.clone().map_err(|error| error.to_string()));
        }
        drop(swaps_held);
        match outcome {
            Ok(()) => {
                rounds.aborts_in_a_row = 0;
                for arrival in arrived {
                    if let Ok(checkpoint) = arrival.checkpoint {
                        rounds.committed.insert(arrival.partition, checkpoint);
                    }
                }
                drop(rounds);
                let mut partitions = self.partitions();
                stopping.iter().for_each(|id| partitions.join_stopped(id));
            }
            Err(TransactionError::Aborted(reason)) => {
                drop(arrived);
                rounds.aborts_in_a_row += 1;
                self.rewind(consumer, &mut rounds, stopping);
                if rounds.aborts_in_a_row > rounds.tolerated_aborts {
                    let failures = rounds.aborts_in_a_row;
                    drop(rounds);
                    self.partitions().fail(format!(
                        "{failures} transactions in a row were aborted (more than [pipeline] tolerated_checkpoint_failures), the last: {reason}"
                    ));
                }
            }
            Err(fatal) => {
                rounds.release_waiting_tasks();
                drop(rounds);
                let mut partitions = self.partitions();
                stopping.iter().for_each(|id| partitions.join_stopped(id));
                partitions.fail(fatal.to_string());
            }
        }
    }

    /// Aborts the open transaction (partitions were lost, or the rebalance failed) and
    /// rewinds the tasks that remain.
    pub(super) fn abort_and_rewind(&self, consumer: &BaseConsumer<SourceContext>, reason: &str, dropping: &[PartitionId]) {
        let Some(mut rounds) = self.rounds() else { return };
        match rounds.producer.abort(reason.to_owned()) {
            TransactionError::Aborted(_) => self.rewind(consumer, &mut rounds, dropping),
            fatal => {
                rounds.release_waiting_tasks();
                drop(rounds);
                self.partitions().fail(fatal.to_string());
            }
        }
    }

    /// After an abort: every task's work since the last commit is gone, so every task is
    /// stopped, and each partition still owned (not in `dropping`) starts again from its
    /// last committed checkpoint, its consumer position moved back to match. The next
    /// transaction begins only once no record of the old tasks can still reach the producer.
    fn rewind(&self, consumer: &BaseConsumer<SourceContext>, rounds: &mut Rounds, dropping: &[PartitionId]) {
        rounds.generation.fetch_add(1, Ordering::SeqCst);
        let restarts = {
            let mut partitions = self.partitions();
            let ids: Vec<PartitionId> = partitions.feeds.keys().cloned().collect();
            let mut restarts = Vec::new();
            for id in ids {
                if let Some(restart_offset) = partitions.abandon(&id)
                    && !dropping.contains(&id)
                {
                    restarts.push((id, restart_offset));
                }
            }
            restarts
        };
        rounds.dismiss_stale_arrivals();
        // What the old tasks queued for the sinks is refused by the producer (no transaction).
        if self.setup.stages.source.shared_outputs().flush().is_err() {
            return self.partitions().fail("the sinks stopped while rewinding".into());
        }
        if let Err(fatal) = rounds.producer.begin_next() {
            return self.partitions().fail(fatal.to_string());
        }
        for id in dropping {
            rounds.committed.remove(id);
        }
        for (id, first_offset) in restarts {
            let checkpoint = rounds.committed.get(&id).cloned();
            let offset = checkpoint.as_ref().map(|checkpoint| i64::try_from(checkpoint.next_position).unwrap_or(i64::MAX)).or(first_offset);
            tracing::warn!(partition = %describe_one(&id), offset = ?offset, "rewinding to the last committed checkpoint");
            if let Some(offset) = offset
                && let Err(error) = consumer.seek(&id.0, id.1, Offset::Offset(offset), SEEK_TIMEOUT)
            {
                return self.partitions().fail(format!("cannot rewind {}: {error}", describe_one(&id)));
            }
            // The old feed may have paused it; the new one starts unpaused.
            if let Err(error) = consumer.resume(&single(&id)) {
                tracing::warn!("cannot resume {}: {error}", describe_one(&id));
            }
            let key = self.key(&id);
            let target = rounds.target(self.setup.store.clone(), key.clone(), id.clone());
            if let Err(error) = self.start_feed(&id, checkpoint.as_ref(), Box::new(target), offset) {
                return self.partitions().fail_start(error);
            }
        }
    }

    /// Queues a barrier for every task that has a position (the last one for `stopping`
    /// tasks) and waits until each is in its queue; returns how many will arrive, and whether
    /// every task took its barrier (one that has gone leaves its outputs without an offset).
    fn send_barriers(&self, stopping: &[PartitionId]) -> (usize, Result<(), String>) {
        let mut partitions = self.partitions();
        let mut expected = 0;
        let mut complete = Ok(());
        for (id, feed) in partitions.feeds.iter_mut() {
            let stop = stopping.contains(id);
            let barrier = match feed.next_offset {
                Some(next) => {
                    feed.checkpointed_offset = Some(next);
                    feed.next_barrier(next, stop)
                }
                None if stop => TaskMessage::Abandon,
                None => continue,
            };
            let arrives = !matches!(barrier, TaskMessage::Abandon);
            if !feed.finish_with(barrier, false) {
                complete = Err(format!("the task of {} has gone", describe_one(id)));
            } else if arrives {
                expected += 1;
            }
        }
        (expected, complete)
    }
}

/// Writes a task's checkpoint into the open transaction, then waits for the round's outcome:
/// only a committed checkpoint counts.
pub struct TransactionalCheckpoints {
    store: Arc<CheckpointStore>,
    key: CheckpointKey,
    partition: PartitionId,
    arrivals: Sender<Arrival>,
    /// The rewind generation the task started in: after a rewind it no longer takes part.
    started_in: u64,
    generation: Arc<AtomicU64>,
}

impl TransactionalCheckpoints {
    fn rewound(&self) -> bool {
        self.generation.load(Ordering::SeqCst) != self.started_in
    }

    fn arrive(&self, checkpoint: Result<TaskCheckpoint, String>) -> Result<(), String> {
        if self.rewound() {
            return Err("the transaction was aborted; this task is being replaced".into());
        }
        let (outcome, decided) = mpsc::channel();
        let arrival = Arrival { partition: self.partition.clone(), checkpoint, outcome };
        self.arrivals.send(arrival).map_err(|_| "the source stopped".to_owned())?;
        loop {
            match decided.recv_timeout(OUTCOME_POLL) {
                Ok(outcome) => return outcome,
                Err(RecvTimeoutError::Timeout) if !self.rewound() => {}
                Err(RecvTimeoutError::Timeout) => return Err("the transaction was aborted; this task is being replaced".into()),
                Err(RecvTimeoutError::Disconnected) => return Err("the source stopped before the transaction was decided".into()),
            }
        }
    }
}

impl CheckpointTarget for TransactionalCheckpoints {
    fn save(&mut self, _round: u64, checkpoint: &TaskCheckpoint) -> Result<(), String> {
        let written = self.store.save(&self.key, checkpoint).map(|()| checkpoint.clone());
        self.arrive(written)
    }

    fn skipped(&mut self, _round: u64, reason: &str) {
        let _ = self.arrive(Err(reason.to_owned()));
    }
}
