//! Changing a running pipeline's operators: hot swap, rollback, and the history of both.
//!
//! A swap is prepared off the hot path (the caller compiles and type-checks the new plugin),
//! then applied in every task at a batch boundary (see `Task::swap`): records arriving
//! meanwhile wait in the task's queue. If one task refuses the new version, the tasks that
//! already switched are switched back, so the old version keeps running everywhere.

use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{OperatorSpec, SwapDone, SwapRequest, TaskMessage};
use crate::wasm::Plugin;

/// Swap records kept for the history.
const HISTORY: usize = 1000;

/// Why a swap did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    #[error("no operator named \"{0}\"")]
    UnknownOperator(String),
    #[error("operator \"{0}\" has no previous version to roll back to")]
    NothingToRollBack(String),
    #[error("the new version was refused, the old one keeps running: {0}")]
    Refused(String),
    #[error("the pipeline is not running any more")]
    Finished,
}

/// One swap attempt, as the history and the admin API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapRecord {
    /// When it was requested, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    pub operator: String,
    pub old_digest: String,
    pub new_digest: String,
    /// `None` when the swap happened; else why the old version still runs.
    pub refused: Option<String>,
    /// Longest time a task's records waited for the switch (snapshot, init, restore).
    pub stall_ms: f64,
    /// Time from request to the last task's answer.
    pub total_ms: f64,
}

/// An operator of the running pipeline, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorInfo {
    pub name: String,
    pub plugin: String,
    pub digest: String,
    /// The version a rollback returns to.
    pub previous_digest: Option<String>,
}

/// A handle on a running pipeline's operators. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct PipelineControl {
    state: Arc<ControlState>,
}

struct ControlState {
    pipeline: String,
    tasks: Vec<SyncSender<TaskMessage>>,
    operators: Mutex<Vec<Versions>>,
    history: Mutex<Vec<SwapRecord>>,
}

/// The running and the previous version of one operator.
struct Versions {
    current: OperatorSpec,
    previous: Option<OperatorSpec>,
}

impl PipelineControl {
    pub fn new(pipeline: String, tasks: Vec<SyncSender<TaskMessage>>, operators: Vec<OperatorSpec>) -> PipelineControl {
        let operators = operators.into_iter().map(|current| Versions { current, previous: None }).collect();
        PipelineControl { state: Arc::new(ControlState { pipeline, tasks, operators: Mutex::new(operators), history: Mutex::default() }) }
    }

    pub fn pipeline(&self) -> &str {
        &self.state.pipeline
    }

    /// The operators and their versions.
    pub fn operators(&self) -> Vec<OperatorInfo> {
        lock(&self.state.operators)
            .iter()
            .map(|versions| OperatorInfo {
                name: versions.current.name.to_string(),
                plugin: versions.current.plugin.path().display().to_string(),
                digest: versions.current.plugin.digest().to_string(),
                previous_digest: versions.previous.as_ref().map(|spec| spec.plugin.digest().to_string()),
            })
            .collect()
    }

    /// The specifications of the operators running now.
    pub fn current_specs(&self) -> Vec<OperatorSpec> {
        lock(&self.state.operators).iter().map(|versions| versions.current.clone()).collect()
    }

    /// Every swap attempt so far, oldest first.
    pub fn history(&self) -> Vec<SwapRecord> {
        lock(&self.state.history).clone()
    }

    /// Replaces `operator`'s plugin (compiled already) and, if given, its configuration.
    pub fn swap(&self, operator: &str, plugin: Arc<Plugin>, config_json: Option<String>) -> Result<SwapRecord, SwapError> {
        self.change(operator, |versions| {
            let current = &versions.current;
            Ok(OperatorSpec { plugin, config_json: config_json.unwrap_or_else(|| current.config_json.clone()), ..current.clone() })
        })
    }

    /// Records a new version of `operator` refused before it reached the tasks (it did not
    /// compile, or implements another world).
    pub fn record_refusal(&self, operator: &str, reason: &str) {
        let old_digest = lock(&self.state.operators)
            .iter()
            .find(|versions| &*versions.current.name == operator)
            .map_or_else(String::new, |versions| versions.current.plugin.digest().to_string());
        let record = SwapRecord {
            at_unix_ms: unix_millis(),
            operator: operator.to_owned(),
            old_digest,
            new_digest: String::new(),
            refused: Some(reason.to_owned()),
            stall_ms: 0.0,
            total_ms: 0.0,
        };
        self.remember(&record);
    }

    /// Replaces an operator by a complete new specification (plugin, configuration, limits).
    pub fn swap_spec(&self, spec: OperatorSpec) -> Result<SwapRecord, SwapError> {
        let operator = spec.name.to_string();
        self.change(&operator, |_| Ok(spec))
    }

    /// Returns `operator` to its previous version (kept compiled).
    pub fn rollback(&self, operator: &str) -> Result<SwapRecord, SwapError> {
        self.change(operator, |versions| versions.previous.clone().ok_or_else(|| SwapError::NothingToRollBack(operator.to_owned())))
    }

    /// Applies the version `choose` picks, records the attempt, and keeps the versions.
    fn change(&self, operator: &str, choose: impl FnOnce(&Versions) -> Result<OperatorSpec, SwapError>) -> Result<SwapRecord, SwapError> {
        // One change at a time: the lock is held until every task has answered.
        let mut operators = lock(&self.state.operators);
        let versions = operators
            .iter_mut()
            .find(|versions| &*versions.current.name == operator)
            .ok_or_else(|| SwapError::UnknownOperator(operator.to_owned()))?;
        let replacement = choose(versions)?;
        let requested = Instant::now();
        let applied = self.apply(operator, &replacement);
        let record = SwapRecord {
            at_unix_ms: unix_millis(),
            operator: operator.to_owned(),
            old_digest: versions.current.plugin.digest().to_string(),
            new_digest: replacement.plugin.digest().to_string(),
            refused: applied.as_ref().err().map(ToString::to_string),
            stall_ms: applied.as_ref().map_or(0.0, |stall| stall.as_secs_f64() * 1e3),
            total_ms: requested.elapsed().as_secs_f64() * 1e3,
        };
        self.remember(&record);
        applied?;
        let previous = std::mem::replace(&mut versions.current, replacement);
        versions.previous = Some(previous);
        Ok(record)
    }

    /// Swaps in every running task; on a refusal, switches the others back. Returns the
    /// longest stall.
    fn apply(&self, operator: &str, spec: &OperatorSpec) -> Result<Duration, SwapError> {
        let mut switched: Vec<(&SyncSender<TaskMessage>, SwapDone)> = Vec::new();
        let mut running = 0;
        for task in &self.state.tasks {
            match request(task, operator, spec.clone()) {
                None => continue,
                Some(Ok(done)) => switched.push((task, done)),
                Some(Err(reason)) => {
                    for (task, done) in switched {
                        // Switching back to the version that was running cannot be refused
                        // for a reason the forward swap did not already meet; log if it is.
                        if let Some(Err(reason)) = request(task, operator, done.replaced) {
                            tracing::error!(operator, "switching back after a refused swap failed: {reason}");
                        }
                    }
                    return Err(SwapError::Refused(reason));
                }
            }
            running += 1;
        }
        if running == 0 {
            return Err(SwapError::Finished);
        }
        Ok(switched.iter().map(|(_, done)| done.stall).max().unwrap_or_default())
    }

    fn remember(&self, record: &SwapRecord) {
        match &record.refused {
            None => {
                tracing::info!(operator = %record.operator, from = %record.old_digest, to = %record.new_digest, stall_ms = record.stall_ms, "operator swapped")
            }
            Some(reason) => tracing::warn!(operator = %record.operator, to = %record.new_digest, "swap refused: {reason}"),
        }
        let mut history = lock(&self.state.history);
        if history.len() == HISTORY {
            history.remove(0);
        }
        history.push(record.clone());
    }
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// Asks one task to swap; `None` if the task has finished.
fn request(task: &SyncSender<TaskMessage>, operator: &str, spec: OperatorSpec) -> Option<Result<SwapDone, String>> {
    let (reply, answer) = mpsc::channel();
    task.send(TaskMessage::Swap(SwapRequest { operator: operator.to_owned(), spec, reply })).ok()?;
    // A task that ends before reaching the request drops it, and with it the reply sender.
    answer.recv().ok()
}

/// Locks a mutex, recovering the data if a thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
