//! Committing what checkpoints made durable: a partition task's checkpoint is written to the
//! checkpoint topic, then the source commits its offset to the group (at-least-once).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{PartitionId, SourceContext};
use crate::kafka::checkpoint::{CheckpointKey, CheckpointStore};
use crate::pipeline::{CheckpointTarget, TaskCheckpoint};

/// A position made durable by a task's checkpoint, to be committed to the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub partition: PartitionId,
    pub offset: i64,
}

impl SourceContext {
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
        let committed = consumer.commit(&list, mode);
        self.setup.metrics.commit(&self.setup.pipeline, &self.setup.source, committed.is_ok());
        if let Err(error) = committed {
            // The checkpoints hold the positions; the group's offsets catch up at the next one.
            tracing::warn!(source = %self.setup.source, "committing offsets failed: {error}");
        }
    }
}

/// Saves a partition task's checkpoints in the checkpoint topic, then asks the source to
/// commit the position.
pub struct PartitionCheckpoints {
    pub store: Arc<CheckpointStore>,
    pub key: CheckpointKey,
    pub commits: Sender<Commit>,
}

impl CheckpointTarget for PartitionCheckpoints {
    fn save(&mut self, _round: u64, checkpoint: &TaskCheckpoint) -> Result<(), String> {
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
