//! Changing a running pipeline's operators: hot swap, rollback, and the history of both.
//!
//! A swap is prepared off the hot path (the caller compiles and type-checks the new plugin),
//! then applied at a batch boundary of every task in two phases (see `Task::swap`): each task
//! prepares the new operator from its state while the old one stays untouched; only when every
//! task is ready do they all switch. If one refuses, the others drop what they prepared, so the
//! old version keeps running everywhere. Records arriving meanwhile wait in the tasks' queues.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{OperatorSpec, StateHandover, SwapRequest, SwapStep, TaskMessage};
use crate::graph::GraphView;
use crate::monitor::{Monitor, SwapOutcome};
use crate::wasm::Plugin;

/// Swap records kept for the history (the oldest go first; `sluice_swaps_total` counts all).
const HISTORY: usize = 1000;

/// Why a swap did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    #[error("no operator named \"{0}\"")]
    UnknownOperator(String),
    #[error("operator \"{0}\" has no previous version to roll back to")]
    NothingToRollBack(String),
    #[error("the swap was refused, the old version keeps running: {0}")]
    Refused(String),
    #[error("the pipeline is not running any more")]
    Finished,
}

impl SwapError {
    /// Why, as the history records it: a refusal's own reason, without the sentence around it.
    pub fn reason(&self) -> String {
        match self {
            SwapError::Refused(reason) => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// One swap attempt, as the history and the admin API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapRecord {
    /// When it was requested, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    pub operator: String,
    pub old_digest: String,
    /// Empty when the new version could not be loaded (shown as `null`).
    #[serde(serialize_with = "empty_as_null")]
    pub new_digest: String,
    /// `None` when the swap happened; else why the old version still runs.
    pub refused: Option<String>,
    /// Longest time a task's records waited for the switch (snapshot, init, restore).
    pub stall_ms: f64,
    /// Time from request to the last task's answer.
    pub total_ms: f64,
    /// Whether the new version was asked to start without the running version's state.
    pub state_discarded: bool,
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

/// A registered task, known to the control until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskId(u64);

struct ControlState {
    pipeline: String,
    /// Where the pipeline's metrics, dead letters and console results go.
    monitor: Monitor,
    /// The pipeline's nodes and edges, for the console.
    graph: GraphView,
    /// The running tasks' inputs; Kafka partition tasks come and go with rebalances.
    tasks: Mutex<Vec<RegisteredTask>>,
    next_task: AtomicU64,
    /// Set when the pipeline has stopped: no task will start any more.
    closed: AtomicBool,
    /// Held for a whole swap, so that swaps happen one at a time.
    swapping: Mutex<()>,
    /// Held only briefly, so that readers (the admin API) are never blocked by a swap.
    operators: Mutex<Vec<Versions>>,
    history: Mutex<Vec<SwapRecord>>,
}

/// The running and the previous version of one operator, and the version its files (the
/// pipeline file and the plugin file) made of it: the running one unless the admin API
/// swapped another in.
struct Versions {
    current: OperatorSpec,
    previous: Option<OperatorSpec>,
    from_files: OperatorSpec,
    /// The versions (digests) whose state the current version was started without: a task
    /// started later (a Kafka partition assigned after the swap) discards a checkpoint of
    /// theirs too.
    discarded_state_of: Vec<String>,
}

/// A running task: where swap requests reach it, and which operators it runs.
struct RegisteredTask {
    id: TaskId,
    input: SyncSender<TaskMessage>,
    /// Positions in the pipeline's operators (as [`PipelineControl::current_specs`] lists them).
    operators: Vec<usize>,
}

/// What a restart of the pipeline keeps of the run before it: the versions the admin API
/// swapped in, each with the version the files had made of that operator then, and the swap
/// history.
#[derive(Clone, Default)]
pub struct CarriedOver {
    pub admin_versions: Vec<(OperatorSpec, OperatorSpec)>,
    pub history: Vec<SwapRecord>,
}

impl PipelineControl {
    pub fn new(pipeline: String, operators: Vec<OperatorSpec>) -> PipelineControl {
        Self::observed(pipeline, operators, Monitor::without_metrics(), GraphView::default())
    }

    /// A control that reports to `monitor` and shows `graph` (the console draws it).
    pub fn observed(pipeline: String, operators: Vec<OperatorSpec>, monitor: Monitor, graph: GraphView) -> PipelineControl {
        for spec in &operators {
            monitor.metrics.set_version(&pipeline, &spec.name, &spec.plugin.digest().to_string());
        }
        let operators = operators
            .into_iter()
            .map(|current| Versions { from_files: current.clone(), current, previous: None, discarded_state_of: Vec::new() })
            .collect();
        PipelineControl {
            state: Arc::new(ControlState {
                monitor,
                graph,
                pipeline,
                tasks: Mutex::default(),
                next_task: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                swapping: Mutex::default(),
                operators: Mutex::new(operators),
                history: Mutex::default(),
            }),
        }
    }

    pub fn pipeline(&self) -> &str {
        &self.state.pipeline
    }

    pub fn monitor(&self) -> &Monitor {
        &self.state.monitor
    }

    pub fn graph(&self) -> &GraphView {
        &self.state.graph
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

    /// Whether the pipeline has an operator named `name`.
    pub fn has_operator(&self, name: &str) -> bool {
        self.position_of(name).is_some()
    }

    /// The position of the operator named `name` among the pipeline's operators (as
    /// [`PipelineControl::current_specs`] lists them).
    fn position_of(&self, name: &str) -> Option<usize> {
        lock(&self.state.operators).iter().position(|versions| &*versions.current.name == name)
    }

    /// Starts a task with the operators running now and registers its input for swaps of
    /// `operators` (the positions of the operators it runs, in [`PipelineControl::current_specs`]);
    /// no swap happens in between, so every task runs the same versions.
    pub fn register_task<T, E>(
        &self,
        operators: &[usize],
        start: impl FnOnce(Vec<OperatorSpec>) -> Result<(SyncSender<TaskMessage>, T), E>,
    ) -> Result<(TaskId, T), E> {
        let _no_swap_meanwhile = lock(&self.state.swapping);
        let (input, started) = start(self.current_specs())?;
        let id = TaskId(self.state.next_task.fetch_add(1, Ordering::Relaxed));
        lock(&self.state.tasks).push(RegisteredTask { id, input, operators: operators.to_vec() });
        Ok((id, started))
    }

    /// Keeps swaps out while the guard lives. An exactly-once round needs every task at its
    /// barrier, which a task waiting in the middle of a two-phase swap would never reach.
    pub fn hold_swaps(&self) -> MutexGuard<'_, ()> {
        lock(&self.state.swapping)
    }

    /// Forgets a task that has ended.
    pub fn unregister_task(&self, id: TaskId) {
        lock(&self.state.tasks).retain(|task| task.id != id);
    }

    /// Marks the pipeline as stopped: swaps are refused from now on.
    pub fn close(&self) {
        self.state.closed.store(true, Ordering::Relaxed);
    }

    /// The specifications of the operators running now.
    pub fn current_specs(&self) -> Vec<OperatorSpec> {
        lock(&self.state.operators).iter().map(|versions| versions.current.clone()).collect()
    }

    /// Whether `spec` is what the pipeline's files last made of its operator (what runs, but
    /// for versions swapped in through the admin API): the same plugin, configuration and
    /// limits, and the same pin (the admin API checks swaps against it).
    pub fn made_by_files(&self, spec: &OperatorSpec) -> bool {
        lock(&self.state.operators).iter().any(|versions| {
            versions.from_files.name == spec.name && same_version(&versions.from_files, spec) && versions.from_files.pinned == spec.pinned
        })
    }

    /// Whether a checkpoint of `operator` written by version `digest` holds state the running
    /// version was swapped in without (`StateHandover::Discard`), so a task starts without it.
    pub fn state_discarded(&self, operator: &str, digest: &str) -> bool {
        lock(&self.state.operators)
            .iter()
            .any(|versions| &*versions.current.name == operator && versions.discarded_state_of.iter().any(|discarded| discarded == digest))
    }

    /// What a restart should keep of this run: the versions swapped in through the admin API
    /// and the swap history.
    pub fn carried_over(&self) -> CarriedOver {
        let admin_versions = lock(&self.state.operators)
            .iter()
            .filter(|versions| !same_version(&versions.current, &versions.from_files))
            .map(|versions| (versions.current.clone(), versions.from_files.clone()))
            .collect();
        CarriedOver { admin_versions, history: self.history() }
    }

    /// Before any task starts, after a restart: runs the versions the admin API had swapped
    /// in, where the files did not change the operator since (its plugin, configuration and
    /// limits are what they made of it then) and the version still fits (its pin allows it, it
    /// declares the same outputs and distribution); a rollback returns to the files' version.
    /// Continues the swap history. Says why a version could not be kept.
    pub fn carry_over(&self, carried: CarriedOver) {
        *lock(&self.state.history) = carried.history;
        for (admin, files_then) in carried.admin_versions {
            let mut operators = lock(&self.state.operators);
            let Some(versions) = operators.iter_mut().find(|versions| versions.current.name == admin.name) else { continue };
            if !same_version(&files_then, &versions.from_files) {
                tracing::warn!(
                    operator = %admin.name,
                    "the pipeline's files changed this operator: the restarted pipeline runs their version, not the one swapped in \
                     through the admin API"
                );
                continue;
            }
            let mut spec =
                OperatorSpec { plugin: admin.plugin, config_json: admin.config_json, limits: admin.limits, ..versions.from_files.clone() };
            let kept =
                pinned(&spec).and_then(|()| declared(&mut spec)).and_then(|()| match versions.from_files.rewiring_needed_by(&spec) {
                    Some(reason) => Err(SwapError::Refused(reason)),
                    None => Ok(()),
                });
            match kept {
                Ok(()) => {
                    tracing::info!(operator = %spec.name, digest = %spec.plugin.digest(), "the restarted pipeline keeps the version swapped in through the admin API");
                    self.state.monitor.metrics.set_version(&self.state.pipeline, &spec.name, &spec.plugin.digest().to_string());
                    versions.previous = Some(versions.from_files.clone());
                    versions.current = spec;
                }
                Err(error) => tracing::warn!(
                    operator = %spec.name,
                    "the restarted pipeline runs the pipeline file's version, not the one swapped in through the admin API: {error}"
                ),
            }
        }
    }

    /// After a run stopped to restart: its operators' gauges go (the restart sets those of the
    /// operators it runs), so that a removed operator does not stay on the dashboards.
    pub fn retire_operator_gauges(&self) {
        for versions in lock(&self.state.operators).iter() {
            self.state.monitor.metrics.retire_operator(&self.state.pipeline, &versions.current.name);
        }
    }

    /// Every swap attempt so far, oldest first.
    pub fn history(&self) -> Vec<SwapRecord> {
        lock(&self.state.history).clone()
    }

    /// Replaces `operator`'s plugin (compiled already) and, if given, its configuration (a
    /// JSON object; the operator's granted files and secrets are kept, and cannot be given here).
    pub fn swap(&self, operator: &str, plugin: Arc<Plugin>, config_json: Option<String>) -> Result<SwapRecord, SwapError> {
        self.swap_with(operator, plugin, config_json, StateHandover::Carry)
    }

    /// `swap`, carrying the running version's state over or discarding it.
    pub fn swap_with(
        &self,
        operator: &str,
        plugin: Arc<Plugin>,
        config_json: Option<String>,
        handover: StateHandover,
    ) -> Result<SwapRecord, SwapError> {
        self.swap_plugin_or_config(operator, Some(plugin), config_json, handover)
    }

    /// Swaps in `plugin` (the running one's when `None`: a change of configuration alone)
    /// with `config_json` (the running one's when `None`).
    pub fn swap_plugin_or_config(
        &self,
        operator: &str,
        plugin: Option<Arc<Plugin>>,
        config_json: Option<String>,
        handover: StateHandover,
    ) -> Result<SwapRecord, SwapError> {
        self.change(operator, Origin::Admin, handover, |versions| {
            let current = &versions.current;
            let config_json = match config_json {
                Some(config) => with_granted_files_and_secrets(&config, &current.config_json)?,
                None => current.config_json.clone(),
            };
            let plugin = plugin.unwrap_or_else(|| current.plugin.clone());
            Ok(OperatorSpec { plugin, config_json, ..current.clone() })
        })
    }

    /// Records a new version of `operator` refused before it reached the tasks (it did not
    /// compile, or implements another world); `new_digest` is its file's, when it was read.
    pub fn record_refusal(&self, operator: &str, reason: &str, new_digest: Option<String>) {
        let old_digest = lock(&self.state.operators)
            .iter()
            .find(|versions| &*versions.current.name == operator)
            .map_or_else(String::new, |versions| versions.current.plugin.digest().to_string());
        let record = SwapRecord {
            at_unix_ms: unix_millis(),
            operator: operator.to_owned(),
            old_digest,
            new_digest: new_digest.unwrap_or_default(),
            refused: Some(reason.to_owned()),
            stall_ms: 0.0,
            total_ms: 0.0,
            state_discarded: false,
        };
        self.remember(&record);
    }

    /// Replaces an operator by a complete new specification (plugin, configuration, limits).
    /// The files' version: what the watcher compares the files with from now on.
    pub fn swap_spec(&self, spec: OperatorSpec) -> Result<SwapRecord, SwapError> {
        let operator = spec.name.to_string();
        self.change(&operator, Origin::Files, StateHandover::Carry, |_| Ok(spec))
    }

    /// Returns `operator` to its previous version (kept compiled).
    pub fn rollback(&self, operator: &str) -> Result<SwapRecord, SwapError> {
        self.rollback_with(operator, StateHandover::Carry)
    }

    /// `rollback`, carrying the running version's state over or discarding it (a stateless
    /// previous version refuses the state of a stateful one).
    pub fn rollback_with(&self, operator: &str, handover: StateHandover) -> Result<SwapRecord, SwapError> {
        self.change(operator, Origin::Rollback, handover, |versions| {
            let previous = versions.previous.clone().ok_or_else(|| SwapError::NothingToRollBack(operator.to_owned()))?;
            // The pipeline file's pin now holds, whatever it was then.
            Ok(OperatorSpec { pinned: versions.current.pinned, ..previous })
        })
    }

    /// Applies the version `choose` picks, records the attempt, and keeps the versions.
    fn change(
        &self,
        operator: &str,
        origin: Origin,
        handover: StateHandover,
        choose: impl FnOnce(&Versions) -> Result<OperatorSpec, SwapError>,
    ) -> Result<SwapRecord, SwapError> {
        let _one_at_a_time = lock(&self.state.swapping);
        let (current, replacement) = {
            let operators = lock(&self.state.operators);
            let versions = operators
                .iter()
                .find(|versions| &*versions.current.name == operator)
                .ok_or_else(|| SwapError::UnknownOperator(operator.to_owned()))?;
            (versions.current.clone(), choose(versions))
        };
        let mut replacement = match replacement {
            Ok(replacement) => replacement,
            Err(refusal) => {
                // Recorded and counted like every refusal (a rollback with nothing to go back to).
                self.record_refusal(operator, &refusal.reason(), None);
                return Err(refusal);
            }
        };
        let requested = Instant::now();
        // The operator's own counters go on across versions, as its Prometheus series do.
        replacement.metrics = Arc::clone(&current.metrics);
        // A refusal stalls the tasks too when it comes from them (the new version's restore
        // failing after the old one handed its state over, say).
        let mut stall = Duration::ZERO;
        let applied =
            pinned(&replacement).and_then(|()| declared(&mut replacement)).and_then(|()| match current.rewiring_needed_by(&replacement) {
                Some(reason) => Err(SwapError::Refused(format!("{reason} (a swap does not rewire it: change the pipeline file)"))),
                None => {
                    let (stalled, applied) = self.apply(operator, &replacement, handover);
                    stall = stalled;
                    applied
                }
            });
        let record = SwapRecord {
            at_unix_ms: unix_millis(),
            operator: operator.to_owned(),
            old_digest: current.plugin.digest().to_string(),
            new_digest: replacement.plugin.digest().to_string(),
            refused: applied.as_ref().err().map(SwapError::reason),
            stall_ms: stall.as_secs_f64() * 1e3,
            total_ms: requested.elapsed().as_secs_f64() * 1e3,
            state_discarded: handover == StateHandover::Discard,
        };
        self.remember(&record);
        applied?;
        self.state.monitor.metrics.set_memory_limit(&self.state.pipeline, operator, replacement.limits.memory);
        let mut operators = lock(&self.state.operators);
        if let Some(versions) = operators.iter_mut().find(|versions| &*versions.current.name == operator) {
            if origin == Origin::Files {
                versions.from_files = replacement.clone();
            }
            let previous = std::mem::replace(&mut versions.current, replacement);
            if handover == StateHandover::Discard {
                versions.discarded_state_of.push(previous.plugin.digest().to_string());
            }
            // A version's own checkpoints are its state, whatever an earlier swap discarded.
            let running = versions.current.plugin.digest().to_string();
            versions.discarded_state_of.retain(|discarded| *discarded != running);
            // A rollback goes back once: a second one has nothing earlier to go to (it would
            // bring back the version just rolled back from).
            versions.previous = (origin != Origin::Rollback).then_some(previous);
        }
        Ok(record)
    }

    /// Prepares the swap in every running task of the operator, then lets all switch, or none.
    /// Returns the longest time a task's records waited, whatever the outcome.
    ///
    /// Only the operator's own tasks are asked: a task that prepared waits for the decision
    /// and holds its records back, so the tasks before it soon wait for room in its queue;
    /// asking one of those as well would wait for room in theirs, for ever.
    fn apply(&self, operator: &str, spec: &OperatorSpec, handover: StateHandover) -> (Duration, Result<(), SwapError>) {
        let mut ready = Vec::new();
        let mut refusal = None;
        let position = self.position_of(operator);
        let tasks: Vec<SyncSender<TaskMessage>> = lock(&self.state.tasks)
            .iter()
            .filter(|task| position.is_some_and(|position| task.operators.contains(&position)))
            .map(|task| task.input.clone())
            .collect();
        for task in &tasks {
            let Some(prepared) = Prepared::request(task, operator, spec.clone(), handover) else { continue };
            match prepared.outcome {
                Ok(()) => ready.push(prepared),
                Err(ref reason) => {
                    refusal = Some(reason.clone());
                    ready.push(prepared);
                    break;
                }
            }
        }
        if ready.is_empty() {
            // No task runs now (a Kafka source with no partition assigned): the new version
            // is what the next task starts with.
            return (Duration::ZERO, if self.state.closed.load(Ordering::Relaxed) { Err(SwapError::Finished) } else { Ok(()) });
        }
        let commit = refusal.is_none();
        let stall = ready.into_iter().map(|prepared| prepared.decide(commit)).max().unwrap_or_default();
        (stall, refusal.map_or(Ok(()), |reason| Err(SwapError::Refused(reason))))
    }

    fn remember(&self, record: &SwapRecord) {
        let outcome = SwapOutcome {
            swapped: record.refused.is_none(),
            stall: Duration::from_secs_f64(record.stall_ms / 1e3),
            new_digest: &record.new_digest,
        };
        self.state.monitor.metrics.swap(&self.state.pipeline, &record.operator, outcome);
        match &record.refused {
            None => {
                tracing::info!(
                    operator = %record.operator,
                    from = %record.old_digest,
                    to = %record.new_digest,
                    stall_ms = record.stall_ms,
                    state_discarded = record.state_discarded,
                    "operator swapped"
                )
            }
            Some(reason) => {
                let said = format!("swap refused, the old version keeps running: {reason}");
                match record.new_digest.is_empty() {
                    // A version that could not be loaded has no digest to name.
                    true => tracing::warn!(operator = %record.operator, "{said}"),
                    false => tracing::warn!(operator = %record.operator, to = %record.new_digest, "{said}"),
                }
            }
        }
        let mut history = lock(&self.state.history);
        if history.len() == HISTORY {
            history.remove(0);
        }
        history.push(record.clone());
    }
}

/// Who asked for a new version: the pipeline's files (the watcher), the admin API's swap, or
/// its rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Files,
    Admin,
    Rollback,
}

/// Whether two specifications run the same plugin with the same configuration and limits.
fn same_version(one: &OperatorSpec, other: &OperatorSpec) -> bool {
    one.plugin.digest() == other.plugin.digest() && one.config_json == other.config_json && one.limits == other.limits
}

/// Refuses a version other than the one the pipeline file pins (`sha256 = "..."`).
fn pinned(spec: &OperatorSpec) -> Result<(), SwapError> {
    match spec.pinned {
        Some(pin) if pin != spec.plugin.digest() => Err(SwapError::Refused(format!(
            "the new version is {}, but the pipeline file pins operator \"{}\" to {pin} (its `sha256`): change the pin to run another version",
            spec.plugin.digest(),
            spec.name
        ))),
        _ => Ok(()),
    }
}

/// Asks the new version what it declares with its configuration (side outputs,
/// distribution), which must match what the pipeline was wired for.
fn declared(spec: &mut OperatorSpec) -> Result<(), SwapError> {
    let info =
        super::operator::declared_info(spec).map_err(|error| SwapError::Refused(format!("the new version could not start: {error}")))?;
    spec.info = info;
    Ok(())
}

/// The new configuration `config` (a JSON object) with the granted files and the secrets of
/// `current`.
fn with_granted_files_and_secrets(config: &str, current: &str) -> Result<String, SwapError> {
    let refuse = |why: &str| SwapError::Refused(format!("the new version's configuration {why}"));
    let mut config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(config).map_err(|_| refuse("is not a JSON object"))?;
    if config.contains_key("sluice_files") {
        return Err(refuse("may not set `sluice_files`: files are granted in the pipeline file"));
    }
    if config.contains_key("sluice_secrets") {
        return Err(refuse("may not set `sluice_secrets`: secrets are given in the pipeline file"));
    }
    let current: serde_json::Value = serde_json::from_str(current).unwrap_or_default();
    for kept in ["sluice_files", "sluice_secrets"] {
        if let Some(value) = current.get(kept) {
            config.insert(kept.into(), value.clone());
        }
    }
    Ok(serde_json::Value::Object(config).to_string())
}

fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// A task that answered the first phase of a swap.
struct Prepared {
    outcome: Result<(), String>,
    steps: mpsc::Receiver<SwapStep>,
    decision: mpsc::Sender<bool>,
}

impl Prepared {
    /// Asks one task to prepare the swap; `None` if the task has finished.
    fn request(task: &SyncSender<TaskMessage>, operator: &str, spec: OperatorSpec, handover: StateHandover) -> Option<Prepared> {
        let (reply, steps) = mpsc::channel();
        let (decision, decided) = mpsc::channel();
        let request = SwapRequest { operator: operator.to_owned(), spec, handover, reply, decision: decided };
        task.send(TaskMessage::Swap(Box::new(request))).ok()?;
        // A task that ends before reaching the request drops it, and with it the reply sender.
        match steps.recv().ok()? {
            SwapStep::Prepared(outcome) => Some(Prepared { outcome, steps, decision }),
            SwapStep::Finished { .. } | SwapStep::NotHere => None,
        }
    }

    /// Tells the task to switch (or not) and waits for it; returns how long its records waited.
    fn decide(self, commit: bool) -> Duration {
        let _ = self.decision.send(commit && self.outcome.is_ok());
        match self.steps.recv() {
            Ok(SwapStep::Finished { stall, .. }) => stall,
            _ => Duration::ZERO,
        }
    }
}

/// Locks a mutex, recovering the data if a thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An empty text as JSON `null`: a digest that does not exist.
fn empty_as_null<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if text.is_empty() { serializer.serialize_none() } else { serializer.serialize_str(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swapped_configuration_keeps_the_granted_files_and_secrets_and_cannot_set_them() {
        let current = r#"{"secret":"k","sluice_files":{"table":"id\n"},"sluice_secrets":{"k":"hidden"}}"#;
        let swapped: serde_json::Value =
            serde_json::from_str(&with_granted_files_and_secrets(r#"{"secret":"k","drop":["a"]}"#, current).expect("accepted"))
                .expect("JSON");
        assert_eq!(swapped["sluice_secrets"]["k"], "hidden");
        assert_eq!(swapped["sluice_files"]["table"], "id\n");
        assert_eq!(swapped["drop"][0], "a");
        for smuggled in [r#"{"sluice_secrets":{"k":"mine"}}"#, r#"{"sluice_files":{"table":"x"}}"#] {
            let refusal = with_granted_files_and_secrets(smuggled, current).expect_err("refused").to_string();
            assert!(refusal.contains("may not set") && !refusal.contains("hidden"), "{refusal}");
        }
    }
}
