//! The checkpoint coordinator of a local pipeline with a state directory: every
//! `checkpoint_interval` it runs a round (see `crate::pipeline::ShareRounds`) and saves it
//! as one file; when the pipeline stops it runs a last, suspending round; when every input
//! was read to its end it removes the checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::monitor::CheckpointRounds;
use crate::pipeline::{RoundReport, RoundRequest, StopSignal, TaskCheckpoint};
use crate::state_dir::{PipelineCheckpoint, SharePosition, StateDirectory};

/// How often the coordinator looks at the stop signal between rounds.
const POLL: Duration = Duration::from_millis(50);

/// The coordinator's end of one source share.
pub struct ShareHandle {
    pub requests: Sender<RoundRequest>,
    pub decided: Sender<bool>,
}

/// Runs the rounds of one pipeline.
pub struct Coordinator {
    pub directory: Arc<StateDirectory>,
    /// What every round's file says the pipeline is (see `PipelineCheckpoint`).
    pub layout: String,
    pub inputs: BTreeMap<String, String>,
    pub interval: Duration,
    /// How long a round may wait for a task to reach its barrier and snapshot there
    /// (`PipelineFileConfig::round_limit`), at least ten checkpoint intervals.
    pub round_limit: Duration,
    pub tolerated_failures: u32,
    pub stop: StopSignal,
    pub reports: Receiver<RoundReport>,
    /// The shares still reading, by key.
    pub shares: BTreeMap<String, ShareHandle>,
    /// The tasks still running, by key.
    pub tasks: BTreeSet<String>,
    /// Positions of shares that ended (kept in every later round).
    pub ended: BTreeMap<String, SharePosition>,
    /// Whether a task ended without finishing (it failed, or was abandoned or suspended):
    /// no round is saved after that, and the last saved checkpoint stays.
    pub lost_a_task: bool,
    /// The output files (file sinks', the dead-letter file) whose lengths every round
    /// records: read once every task has made its output durable and before any share goes
    /// on, a length is that of exactly the output of the records before the barrier. Each
    /// file by its location (`sink::output_location`), which the checkpoint records with it.
    pub output_files: BTreeMap<String, PathBuf>,
    /// The pipeline's counters of rounds saved and failed (none without metrics).
    pub rounds: Option<CheckpointRounds>,
}

/// What one round gathered.
#[derive(Default)]
struct Gathered {
    shares: BTreeMap<String, SharePosition>,
    tasks: BTreeMap<String, TaskCheckpoint>,
    /// Tasks that answered the round without a checkpoint (theirs failed).
    tasks_skipped: BTreeSet<String>,
    skipped: Option<String>,
}

impl Gathered {
    /// Whether `task` answered the round, with a checkpoint or without one.
    fn answered(&self, task: &str) -> bool {
        self.tasks.contains_key(task) || self.tasks_skipped.contains(task)
    }
}

impl Coordinator {
    /// Runs rounds until the pipeline stops (a last round suspends it) or every input ended
    /// (the checkpoint is removed). Fails after more than `tolerated_failures` rounds in a row
    /// could not be saved.
    pub fn run(mut self) -> Result<(), String> {
        let mut id = 0;
        let mut failures = 0;
        let mut interrupted = false;
        loop {
            interrupted |= self.wait_for_next_round();
            if self.shares.is_empty() {
                return self.finish(interrupted);
            }
            // A round without a task that failed would save a checkpoint without its state:
            // none comes, and the shares waiting for a last one are let go.
            if self.lost_a_task {
                self.shares.clear();
                return self.finish(true);
            }
            id += 1;
            let suspend = interrupted || self.stop.is_raised();
            match self.round(id, suspend) {
                Ok(()) => {
                    failures = 0;
                    self.count_round(true);
                }
                Err(reason) => {
                    failures += 1;
                    self.count_round(false);
                    if failures > self.tolerated_failures {
                        return Err(self.give_up(failures, &reason));
                    }
                    tracing::warn!("checkpoint skipped, the sources' positions are not saved: {reason}");
                }
            }
            if suspend {
                self.drain_until_tasks_end();
                return Ok(());
            }
        }
    }

    fn count_round(&self, saved: bool) {
        if let Some(rounds) = &self.rounds {
            if saved {
                rounds.saved.inc()
            } else {
                rounds.failed.inc()
            };
        }
    }

    /// Stops the pipeline, which cannot make progress durable any more: it drains, and ends
    /// with the error returned, rather than running on with nothing saved (a run resumed
    /// later starts from the last checkpoint saved).
    fn give_up(&self, failures: u32, reason: &str) -> String {
        let error =
            format!("{failures} checkpoints in a row failed (more than [pipeline] tolerated_checkpoint_failures), the last: {reason}");
        tracing::error!("stopping the pipeline: {failures} checkpoint(s) in a row failed");
        self.stop.raise();
        error
    }

    /// Waits for the interval (or a stop); notes shares and tasks that end meanwhile. True if
    /// a share stopped early, which ends the pipeline with a last round.
    fn wait_for_next_round(&mut self) -> bool {
        let due = Instant::now() + self.interval;
        let mut interrupted = false;
        while Instant::now() < due && !self.stop.is_raised() && !interrupted && !self.lost_a_task && !self.shares.is_empty() {
            match self.reports.recv_timeout(POLL.min(due.saturating_duration_since(Instant::now()))) {
                Ok(report) => interrupted |= self.note_between_rounds(report),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return true,
            }
        }
        interrupted
    }

    /// A report outside a round; true if a share stopped early.
    fn note_between_rounds(&mut self, report: RoundReport) -> bool {
        match report {
            RoundReport::SourceEnded { share, next_position, watermark } => {
                self.shares.remove(&share);
                self.ended.insert(share, SharePosition { next_position, watermark });
                false
            }
            RoundReport::TaskFinished { task } => {
                self.tasks.remove(&task);
                false
            }
            // A finished task's thread is gone too, later: only one gone unfinished counts.
            RoundReport::TaskGone { task } => {
                self.lost_a_task |= self.tasks.remove(&task);
                false
            }
            RoundReport::SourceFailed { .. } => true,
            // A share gone before its input ended ends the pipeline unfinished.
            RoundReport::SourceGone { share } => self.shares.remove(&share).is_some(),
            other => {
                tracing::debug!("a checkpoint report arrived outside a round: {other:?}");
                false
            }
        }
    }

    /// Asks every share for barrier `id`, gathers every share's position and every task's
    /// checkpoint, saves them, and lets the shares go on (unless the round suspends them).
    fn round(&mut self, id: u64, suspend: bool) -> Result<(), String> {
        let request = RoundRequest { id, suspend };
        let asked: Vec<String> = self.shares.keys().cloned().collect();
        for share in &asked {
            let _ = self.shares[share].requests.send(request);
        }
        let gathered = self.gather(id, &asked);
        let saved = match &gathered.skipped {
            Some(reason) => Err(reason.clone()),
            None => self.directory.save(&self.checkpoint_of(gathered)),
        };
        if !suspend {
            for share in self.shares.values() {
                let _ = share.decided.send(saved.is_ok());
            }
        }
        saved
    }

    fn gather(&mut self, id: u64, asked: &[String]) -> Gathered {
        // Snapshots of a large state take long, and stages snapshot one after another: a round
        // waits for all of them before it counts as failed.
        let timeout = self.round_limit.max(self.interval.saturating_mul(10));
        let deadline = Instant::now() + timeout;
        let mut gathered = Gathered::default();
        let mut waiting_shares: BTreeSet<String> = asked.iter().cloned().collect();
        // A task that skipped its checkpoint has answered: the round fails at once when the
        // others have answered too, not when it times out.
        while !waiting_shares.is_empty() || self.tasks.iter().any(|task| !gathered.answered(task)) {
            let report = match self.reports.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(report) => report,
                Err(_) => {
                    gathered.skipped.get_or_insert_with(|| format!("checkpoint {id} was not complete within {timeout:?}"));
                    return gathered;
                }
            };
            match report {
                RoundReport::Source { share, id: reported, next_position, watermark } if reported == id => {
                    waiting_shares.remove(&share);
                    gathered.shares.insert(share, SharePosition { next_position, watermark });
                }
                // A task's answer to an earlier round that timed out comes late: it belongs to
                // that round, whose positions were not saved, not to this one.
                RoundReport::Task { task, id: answered, checkpoint } if answered == id => {
                    gathered.tasks.insert(task, *checkpoint);
                }
                RoundReport::TaskSkipped { task, id: answered, reason } if answered == id => {
                    gathered.tasks_skipped.insert(task);
                    gathered.skipped.get_or_insert(reason);
                }
                RoundReport::Task { task, id: answered, .. } | RoundReport::TaskSkipped { task, id: answered, .. } => {
                    tracing::debug!(%task, round = answered, "a task's answer to an earlier round came during round {id}: ignored");
                }
                RoundReport::TaskGone { task } if self.tasks.contains(&task) && !gathered.answered(&task) => {
                    self.tasks.remove(&task);
                    self.lost_a_task = true;
                    gathered.skipped.get_or_insert(format!("task {task} stopped before checkpoint {id}"));
                }
                other => {
                    if let RoundReport::SourceEnded { share, .. } | RoundReport::SourceGone { share } = &other {
                        waiting_shares.remove(share);
                    }
                    self.note_between_rounds(other);
                }
            }
        }
        gathered
    }

    fn checkpoint_of(&self, gathered: Gathered) -> PipelineCheckpoint {
        let mut shares = self.ended.clone();
        shares.extend(gathered.shares);
        let outputs = self.output_files.iter().filter_map(|(output, path)| Some((output.clone(), recorded_length(path)?))).collect();
        let output_paths = self.output_files.clone();
        PipelineCheckpoint {
            layout: self.layout.clone(),
            inputs: self.inputs.clone(),
            shares,
            tasks: gathered.tasks,
            outputs,
            output_paths,
        }
    }

    /// After the last round: the tasks checkpointed and stop; reports still arriving are moot.
    fn drain_until_tasks_end(&self) {
        while self.reports.recv_timeout(POLL).is_ok() {}
    }

    /// Every share ended. Read to their ends, the inputs need no checkpoint once the tasks have
    /// made their last outputs durable: the next run starts afresh.
    fn finish(mut self, interrupted: bool) -> Result<(), String> {
        while !self.tasks.is_empty() {
            match self.reports.recv() {
                Ok(report) => {
                    self.note_between_rounds(report);
                }
                Err(_) => break,
            }
        }
        if interrupted || self.lost_a_task || !self.tasks.is_empty() {
            return Ok(());
        }
        self.directory.remove()
    }
}

/// The length a checkpoint records for an output file. No file yet (the dead-letter file
/// before its first letter) is 0: a resumed run keeps nothing written after. A file that cannot
/// be looked at gets no length: a resumed run then continues it as it is.
fn recorded_length(path: &std::path::Path) -> Option<u64> {
    match std::fs::metadata(path) {
        Ok(metadata) => Some(metadata.len()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}
