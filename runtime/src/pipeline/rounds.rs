//! Checkpoint rounds of a pipeline running in one process (file and generator sources with a
//! state directory): what the coordinator (`crate::topology`) and the sources and tasks tell
//! each other.
//!
//! A round: the coordinator asks every source share for barrier `id`; each share puts the
//! barrier behind its last batch to every task it feeds, reports its position and waits;
//! each task checkpoints once the barrier came from all its upstreams and reports its
//! checkpoint. When everything reported, the coordinator saves the round as one file and
//! lets the sources go on. Sources wait, so no record after a barrier reaches a task before
//! the round ends: barriers never need to be aligned by buffering.

use std::sync::mpsc::{Receiver, Sender};

use super::checkpoint::{CheckpointTarget, TaskCheckpoint};

/// The coordinator's request to a source share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundRequest {
    pub id: u64,
    /// The last round: checkpoint, then stop without closing event time.
    pub suspend: bool,
}

/// What sources and tasks tell the coordinator.
#[derive(Debug)]
pub enum RoundReport {
    /// A share put barrier `id` behind its records, at this position and watermark.
    Source { share: String, id: u64, next_position: u64, watermark: Option<i64> },
    /// A share read its input to the end (its last position): it takes part in no more rounds.
    SourceEnded { share: String, next_position: u64, watermark: Option<i64> },
    /// A share stopped early (an error, or its downstream stopped): its input did not end. It
    /// still takes the last round.
    SourceFailed { share: String },
    /// A share's thread is gone: it takes part in no more rounds.
    SourceGone { share: String },
    /// A task's checkpoint at barrier `id`.
    Task { task: String, id: u64, checkpoint: Box<TaskCheckpoint> },
    /// A task could not take its checkpoint: the round cannot be saved.
    TaskSkipped { task: String, id: u64, reason: String },
    /// A task's upstreams all ended and its outputs are durable: it takes part in no more rounds.
    TaskFinished { task: String },
    /// A task's thread is gone (stopped, failed or suspended): it takes part in no more rounds.
    TaskGone { task: String },
}

/// A source share's end of the rounds.
pub struct ShareRounds {
    pub share: String,
    pub requests: Receiver<RoundRequest>,
    pub reports: Sender<RoundReport>,
    /// The round's outcome (saved or not): the share goes on when it arrives.
    pub decided: Receiver<bool>,
}

impl Drop for ShareRounds {
    fn drop(&mut self) {
        let _ = self.reports.send(RoundReport::SourceGone { share: self.share.clone() });
    }
}

/// Where a task of a checkpointing local pipeline sends its checkpoints: to the coordinator.
pub struct CoordinatorTarget {
    pub task: String,
    pub reports: Sender<RoundReport>,
}

impl Drop for CoordinatorTarget {
    /// However a task ends, the coordinator stops waiting for it.
    fn drop(&mut self) {
        let _ = self.reports.send(RoundReport::TaskGone { task: self.task.clone() });
    }
}

impl CheckpointTarget for CoordinatorTarget {
    fn save(&mut self, round: u64, checkpoint: &TaskCheckpoint) -> Result<(), String> {
        let report = RoundReport::Task { task: self.task.clone(), id: round, checkpoint: Box::new(checkpoint.clone()) };
        self.reports.send(report).map_err(|_| "the checkpoint coordinator stopped".to_owned())
    }

    fn skipped(&mut self, round: u64, reason: &str) {
        let _ = self.reports.send(RoundReport::TaskSkipped { task: self.task.clone(), id: round, reason: reason.to_owned() });
    }

    fn finished(&mut self) -> Result<(), String> {
        self.reports
            .send(RoundReport::TaskFinished { task: self.task.clone() })
            .map_err(|_| "the checkpoint coordinator stopped".to_owned())
    }
}
