//! The wiring of a running pipeline: from a validated file, its graph and plan, the threads
//! that run it (sinks, stages of tasks, sources) and how they connect, and the drain at the
//! end. Start-up is the one path: `RunningPipeline::start` builds everything from nothing; a
//! reload that changes the wiring drains the old pipeline and starts the new one this way.
//!
//! A pipeline of local sources runs `parallelism` tasks per stage joined by in-process
//! exchanges (`local.rs`); a Kafka pipeline runs a task per partition, its stages joined by
//! repartition topics (`kafka.rs`).

mod coordinator;
mod kafka;
mod local;
mod outputs;
mod specs;

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{Delivery, Diagnostics, LoadedPipeline, SinkConfig, SourceConfig};
use crate::graph::{Graph, Plan, build_graph, resolve_inputs};
use crate::kafka::{KafkaClientError, TransactionalProducer, transactional_id};
use crate::monitor::Monitor;
use crate::pipeline::{
    CarriedOver, OperatorSpec, PipelineControl, SharedOutputs, StartedTask, StopSignal, TaskError, TaskStartError, TaskStats,
};
use crate::sink::SinkError;
use crate::source::{SourceError, SourceStats};
use crate::state_dir::StateDirError;
use crate::wasm::PluginRegistry;
use outputs::OutputsStart;

pub use specs::{SpecError, WasmPluginCheck, operator_spec, operator_specs};

/// Why a pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("operator \"{operator}\": {error}")]
    Spec { operator: String, error: SpecError },
    #[error(transparent)]
    Task(#[from] TaskStartError),
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("dead-letter sink: {0}")]
    DeadLetter(std::io::Error),
    #[error("source \"{source_name}\": {error}")]
    Kafka { source_name: String, error: Box<KafkaClientError> },
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

impl StartError {
    /// Whether the start gave up because the stop signal came while it waited for brokers, or
    /// for a process to read a named pipe a file sink writes.
    pub fn is_stopped(&self) -> bool {
        let stopped = |error: &KafkaClientError| matches!(error, KafkaClientError::Stopped { .. });
        match self {
            StartError::Kafka { error, .. } | StartError::Sink(SinkError::KafkaClient { error, .. }) => stopped(error),
            StartError::Sink(SinkError::StoppedWaitingForReader { .. }) => true,
            StartError::DeadLetter(error) => {
                error.get_ref().and_then(|inner| inner.downcast_ref::<KafkaClientError>()).is_some_and(stopped)
            }
            _ => false,
        }
    }
}

/// Why a running pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("dead-letter sink: {0}")]
    DeadLetter(std::io::Error),
    #[error("checkpoints: {0}")]
    Checkpoints(String),
    #[error("thread {0} panicked")]
    Panicked(String),
}

/// Totals of a finished pipeline.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PipelineSummary {
    pub tasks: Vec<TaskStats>,
    /// What the local sources' shares did (records read, late records dropped).
    pub sources: SourceStats,
    pub operators: Vec<OperatorSummary>,
    pub dead_letters: u64,
    pub dead_letter_destination: String,
}

impl PipelineSummary {
    /// The operators disabled during the run (their circuit opened), each named once with
    /// the first reason given.
    pub fn disabled_operators(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (operator, _) in self.tasks.iter().flat_map(|task| &task.disabled_operators) {
            if !names.contains(operator) {
                names.push(operator.clone());
            }
        }
        names.into_iter().map(|name| format!("\"{name}\"")).collect()
    }
}

/// An operator's name, plugin digest and the metrics it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSummary {
    pub name: String,
    pub digest: String,
    pub counters: Vec<(String, u64)>,
}

/// A named thread of a pipeline.
pub type Worker<T> = (String, JoinHandle<T>);

/// The thread of a Kafka source, ending with its partition tasks' statistics.
pub type KafkaSourceWorker = Worker<Result<Vec<TaskStats>, SourceError>>;

/// A started pipeline.
pub struct RunningPipeline {
    stop: StopSignal,
    graph: Graph,
    local_sources: Vec<Worker<Result<SourceStats, SourceError>>>,
    /// Kafka sources: they return the statistics of the partition tasks they ran.
    kafka_sources: Vec<KafkaSourceWorker>,
    /// The tasks of local stages (a Kafka source's come and go with its partitions).
    tasks: Vec<StartedTask>,
    coordinator: Option<Worker<Result<(), String>>>,
    sinks: Vec<Worker<Result<(), SinkError>>>,
    dead_letters: Worker<std::io::Result<u64>>,
    dead_letter_destination: String,
    control: PipelineControl,
}

/// A pipeline's graph and plan, and its operators ready to instantiate: what starting it needs.
pub struct Wiring {
    pub graph: Graph,
    pub plan: Plan,
    pub specs: Vec<OperatorSpec>,
}

impl Wiring {
    /// Compiles every operator's plugin, asks each what it declares, and builds the graph.
    pub fn of(pipeline: &LoadedPipeline, plugins: &PluginRegistry) -> Result<Wiring, StartError> {
        let (resolved, unresolved) = resolve_inputs(pipeline);
        if !unresolved.is_empty() {
            return Err(StartError::Invalid(unresolved));
        }
        let specs = operator_specs(pipeline, &resolved, plugins).map_err(|(operator, error)| StartError::Spec { operator, error })?;
        let infos: Vec<_> = specs.iter().map(|spec| Some(spec.info.clone())).collect();
        let check = build_graph(pipeline, &resolved, &infos);
        let graph = check.graph.ok_or(StartError::Invalid(check.problems))?;
        let plan = Plan::of(&graph);
        Ok(Wiring { graph, plan, specs })
    }
}

/// What a checkpoint of a local pipeline is checked against before it is resumed: the shape
/// of its stages (`layout`) and what each source reads (`inputs`).
pub fn local_checkpoint_identity(
    pipeline: &LoadedPipeline,
    plugins: &PluginRegistry,
) -> Result<(String, std::collections::BTreeMap<String, String>), StartError> {
    let wiring = Wiring::of(pipeline, plugins)?;
    Ok((local::layout(pipeline, &wiring.plan), local::input_identities(pipeline)))
}

/// Whether a pipeline starts for the first time in this process or again after a reload
/// (with what its previous run carried over).
enum Incarnation {
    First,
    Restart(CarriedOver),
}

/// Whether a restarted pipeline goes on from where its previous run stopped rather than
/// reading its inputs from their start again: it reads standard input (which cannot be read
/// again) or Kafka (which resumes from the committed offsets). Its output files are then
/// continued; otherwise they are written anew, as the inputs are read anew.
pub fn continues_where_it_stopped(pipeline: &LoadedPipeline) -> bool {
    pipeline.config.sources.iter().any(|source| matches!(source.get_ref(), SourceConfig::Stdin(_) | SourceConfig::Kafka(_)))
}

impl RunningPipeline {
    /// Opens sinks, starts tasks, then sources: upstream last, so nothing waits.
    pub fn start(pipeline: &LoadedPipeline, plugins: &PluginRegistry) -> Result<RunningPipeline, StartError> {
        Self::start_with_stop(pipeline, plugins, StopSignal::default())
    }

    /// Like `start`, with the signal that will stop the sources.
    pub fn start_with_stop(pipeline: &LoadedPipeline, plugins: &PluginRegistry, stop: StopSignal) -> Result<RunningPipeline, StartError> {
        Self::start_monitored(pipeline, plugins, stop, Monitor::default())
    }

    /// Like `start_with_stop`, reporting metrics, dead letters and console results to
    /// `monitor` (the process's, kept across restarts).
    pub fn start_monitored(
        pipeline: &LoadedPipeline,
        plugins: &PluginRegistry,
        stop: StopSignal,
        monitor: Monitor,
    ) -> Result<RunningPipeline, StartError> {
        Self::start_incarnation(pipeline, plugins, stop, monitor, Incarnation::First)
    }

    /// Like `start_monitored`, for a pipeline that ran in this process before and was
    /// stopped to apply a reload: its file sinks are appended to when a source continues
    /// where it stopped (see [`continues_where_it_stopped`]), so that what the previous run
    /// wrote is kept.
    /// What the previous run `carried` over (versions swapped in through the admin API, the
    /// swap history) goes on.
    pub fn restart_monitored(
        pipeline: &LoadedPipeline,
        plugins: &PluginRegistry,
        stop: StopSignal,
        monitor: Monitor,
        carried: CarriedOver,
    ) -> Result<RunningPipeline, StartError> {
        Self::start_incarnation(pipeline, plugins, stop, monitor, Incarnation::Restart(carried))
    }

    fn start_incarnation(
        pipeline: &LoadedPipeline,
        plugins: &PluginRegistry,
        stop: StopSignal,
        monitor: Monitor,
        incarnation: Incarnation,
    ) -> Result<RunningPipeline, StartError> {
        let Wiring { graph, plan, specs } = Wiring::of(pipeline, plugins)?;
        let kafka = pipeline.config.sources.iter().any(|source| matches!(source.get_ref(), SourceConfig::Kafka(_)));
        let local_state = if kafka { None } else { local::open_state(pipeline, &plan)? };
        let restored = local_state.as_ref().and_then(|(_, restored)| restored.as_ref());
        // A Kafka source goes on from its group's committed offsets, in this process or the
        // next: what earlier runs wrote is not written again, so output files are kept.
        let outputs_start = match restored {
            Some(checkpoint) => OutputsStart::FromCheckpoint(checkpoint),
            None if kafka => OutputsStart::Continued,
            None if matches!(incarnation, Incarnation::Restart(_)) && continues_where_it_stopped(pipeline) => OutputsStart::Continued,
            None => OutputsStart::Anew,
        };
        let transactions = open_transactions(pipeline, &stop)?;
        let sinks = outputs::start_sinks(pipeline, outputs_start, transactions.as_deref(), &monitor, &stop)?;
        let state_directory = local_state.as_ref().map(|(directory, _)| directory.as_ref());
        let dead_letters = outputs::start_dead_letters(pipeline, outputs_start, state_directory, transactions.as_deref(), &monitor, &stop)?;
        let name = pipeline.config.pipeline.name.get_ref().to_string();
        let control = PipelineControl::observed(name, specs, monitor, graph.view());
        if let Incarnation::Restart(carried) = incarnation {
            control.carry_over(carried);
        }
        let record_limits = Arc::new(pipeline.config.sinks.iter().map(|sink| sink_record_limit(sink.get_ref())).collect());
        let shared = SharedOutputs { sinks: sinks.queues, dead_letters: dead_letters.queue, record_limits };
        let mut running = RunningPipeline {
            stop: stop.clone(),
            graph,
            local_sources: Vec::new(),
            kafka_sources: Vec::new(),
            tasks: Vec::new(),
            coordinator: None,
            sinks: sinks.workers,
            dead_letters: dead_letters.worker,
            dead_letter_destination: dead_letters.destination,
            control: control.clone(),
        };
        if kafka {
            let start = kafka::KafkaStart { pipeline, plan: &plan, control, outputs: shared, stop, transactions };
            running.kafka_sources = kafka::start_kafka(start)?;
        } else {
            // Every output file whose length the checkpoints record: the file sinks' and the
            // dead-letter file.
            let mut output_files = sinks.files;
            output_files.extend(dead_letters.file.map(|file| (outputs::DEAD_LETTER_OUTPUT.to_owned(), file)));
            let start = local::LocalStart { pipeline, plan: &plan, control, outputs: shared, stop, output_files };
            let local = local::start_local(start, local_state)?;
            running.local_sources = local.sources;
            running.tasks = local.tasks;
            running.coordinator = local.coordinator;
        }
        Ok(running)
    }

    /// The signal that stops the sources; the pipeline then drains and `wait` returns.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// A handle to swap, roll back and inspect the running operators.
    pub fn control(&self) -> PipelineControl {
        self.control.clone()
    }

    /// The pipeline's graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Waits until every source has ended and everything read has been written.
    pub fn wait(self) -> Result<PipelineSummary, RunError> {
        let mut errors: Vec<RunError> = Vec::new();
        let mut summary = PipelineSummary { dead_letter_destination: self.dead_letter_destination, ..PipelineSummary::default() };
        for (name, source) in self.local_sources {
            match source.join() {
                Ok(Ok(stats)) => summary.sources.add(stats),
                Ok(Err(error)) => errors.push(error.into()),
                Err(_) => errors.push(RunError::Panicked(name)),
            }
        }
        for (name, source) in self.kafka_sources {
            match source.join() {
                Ok(Ok(stats)) => summary.tasks.extend(stats),
                Ok(Err(error)) => errors.push(error.into()),
                Err(_) => errors.push(RunError::Panicked(name)),
            }
        }
        for task in self.tasks {
            match task.join() {
                Ok(stats) => summary.tasks.push(stats),
                Err(error) => errors.push(error.into()),
            }
        }
        self.control.close();
        if let Some((name, coordinator)) = self.coordinator {
            match coordinator.join() {
                Ok(result) => result.unwrap_or_else(|reason| errors.push(RunError::Checkpoints(reason))),
                Err(_) => errors.push(RunError::Panicked(name)),
            }
        }
        for (name, sink) in self.sinks {
            match sink.join() {
                Ok(result) => result.unwrap_or_else(|error| errors.push(error.into())),
                Err(_) => errors.push(RunError::Panicked(name)),
            }
        }
        match self.dead_letters.1.join() {
            Ok(Ok(count)) => summary.dead_letters = count,
            Ok(Err(error)) => errors.push(RunError::DeadLetter(error)),
            Err(_) => errors.push(RunError::Panicked("dead-letter".into())),
        }
        if let Some(error) = root_error(errors) {
            return Err(error);
        }
        // The operators running at the end: swaps may have replaced the ones started.
        summary.operators = self.control.current_specs().iter().map(summarize_operator).collect();
        Ok(summary)
    }
}

impl RunError {
    /// A task could not start on the state it was given (a Kafka partition's checkpoint taken
    /// on another graph, or refused by an operator): the definition cannot run here.
    pub fn is_task_not_started(&self) -> bool {
        matches!(self, RunError::Source(SourceError::TaskNotStarted { .. }))
    }
}

/// The largest record a sink can write, where it has a limit: a Kafka sink's producer refuses
/// records above `message.max.bytes` (librdkafka's default 1,000,000).
fn sink_record_limit(sink: &crate::config::SinkConfig) -> Option<usize> {
    let crate::config::SinkConfig::Kafka(kafka) = sink else { return None };
    Some(crate::kafka::message_limit(&kafka.properties))
}

/// The error to report: a task (or a Kafka source's partition task) only fails because
/// something downstream failed first, so a sink's own error, which says why (a write error, a
/// Kafka delivery timing out), comes first, then the others, a task's last.
fn root_error(mut errors: Vec<RunError>) -> Option<RunError> {
    let rank = |error: &RunError| match error {
        RunError::Sink(_) | RunError::DeadLetter(_) => 0,
        RunError::Checkpoints(_) | RunError::Panicked(_) => 1,
        RunError::Source(_) => 2,
        RunError::Task(_) => 3,
    };
    let root = (0..errors.len()).min_by_key(|&index| rank(&errors[index])).unwrap_or(0);
    for (index, error) in errors.iter().enumerate() {
        if index != root {
            tracing::debug!("also: {error}");
        }
    }
    (!errors.is_empty()).then(|| errors.swap_remove(root))
}

fn summarize_operator(spec: &OperatorSpec) -> OperatorSummary {
    OperatorSummary {
        name: spec.name.to_string(),
        digest: spec.plugin.digest().to_string(),
        counters: spec.metrics.values().counters.into_iter().collect(),
    }
}

/// The transactional producer of an exactly-once pipeline (validation made sure there is
/// one Kafka source, and that every output is on its cluster with the same properties).
/// The transactional producer of an exactly-once pipeline, once its brokers answer (a wait that
/// `stop` ends, as the other Kafka clients' waits at start).
fn open_transactions(pipeline: &LoadedPipeline, stop: &StopSignal) -> Result<Option<Arc<TransactionalProducer>>, StartError> {
    let config = &pipeline.config;
    if config.pipeline.delivery != Delivery::ExactlyOnce {
        return Ok(None);
    }
    let Some(SourceConfig::Kafka(source)) = config.sources.first().map(|source| source.get_ref()) else { return Ok(None) };
    let source_name = config.sources[0].get_ref().name();
    let properties = config.sinks.iter().find_map(|sink| match sink.get_ref() {
        SinkConfig::Kafka(kafka) => Some(&kafka.properties),
        _ => None,
    });
    let id = transactional_id(config.pipeline.name.get_ref().as_str(), &source_name);
    let properties = properties.unwrap_or(&source.properties);
    crate::kafka::check_reachable(&source.brokers, properties, stop)
        .and_then(|()| {
            let round_timeout = crate::kafka::round_timeout(config.round_limit());
            TransactionalProducer::open(&source.brokers, properties, &id, config.pipeline.checkpoint_interval.duration(), round_timeout)
        })
        .map(Some)
        .map_err(|error| StartError::Kafka { source_name, error: Box::new(error) })
}

pub(crate) fn spawn<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Result<JoinHandle<T>, StartError> {
    std::thread::Builder::new().name(format!("sluice-{name}")).spawn(work).map_err(StartError::Thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_reported_is_the_sinks_own_not_the_tasks_it_stopped() {
        let task = || RunError::Task(TaskError::SinkClosed { task: "s[events/3]".into() });
        let source = RunError::Source(SourceError::Invalid {
            source_name: "s".into(),
            message: "task \"s[events/3]\": a sink stopped taking records".into(),
        });
        let sink = RunError::Sink(SinkError::Write { sink: "out".into(), error: std::io::Error::other("MessageTimedOut") });
        let root = root_error(vec![task(), source, task(), sink]).expect("an error");
        assert_eq!(root.to_string(), "sink \"out\": write failed: MessageTimedOut");
        assert!(matches!(root_error(vec![task()]), Some(RunError::Task(_))));
        assert!(root_error(Vec::new()).is_none());
    }
}
