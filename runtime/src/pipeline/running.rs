//! Starting a pipeline's threads (sources, tasks, sinks), and draining them at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use super::checkpoint::TaskCheckpoint;
use super::control::PipelineControl;
use super::task::{DeadLetterMessage, SinkMessage, TaskOrigin, TaskOutputs};
use super::tasks::{StartedTask, TaskFactory, TaskSettings};
use super::{Batcher, DeadLetterSink, Operator, OperatorError, OperatorSpec, StopSignal, TaskError, TaskStats};
use crate::config::{Delivery, LoadedPipeline, OperatorConfig, PluginCheck, PluginProblem, SinkConfig, SourceConfig};
use crate::kafka::{KafkaClientError, KafkaSource, KafkaSourceSettings, TransactionalProducer, transactional_id};
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError, SourceOutput};
use crate::state_dir::{StateDirError, StateDirectory};
use crate::wasm::{InstanceLimits, OperatorMetrics, PluginError, PluginRegistry};

/// Output batches queued for each sink.
const SINK_QUEUE: usize = 16;
/// Dead letters queued for the dead-letter sink.
const DEAD_LETTER_QUEUE: usize = 4096;

/// Why a pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("operator \"{operator}\": {error}")]
    Plugin { operator: String, error: PluginError },
    #[error("operator \"{operator}\": {error}")]
    Operator { operator: String, error: OperatorError },
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
    #[error("thread {0} panicked")]
    Panicked(String),
}

/// Totals of a finished pipeline.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PipelineSummary {
    pub tasks: Vec<TaskStats>,
    pub operators: Vec<OperatorSummary>,
    pub dead_letters: u64,
    pub dead_letter_destination: String,
}

/// An operator's name, plugin digest and the metrics it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSummary {
    pub name: String,
    pub digest: String,
    pub counters: Vec<(String, u64)>,
}

/// A named thread of a pipeline.
type Worker<T> = (String, JoinHandle<T>);

/// The started sinks: the queues feeding them and their threads.
struct StartedSinks {
    queues: Vec<SyncSender<SinkMessage>>,
    workers: Vec<Worker<Result<(), SinkError>>>,
}

/// A source's thread: it returns the statistics of the tasks it ran itself (a Kafka
/// source's partition tasks).
type SourceWorker = Worker<Result<Vec<TaskStats>, SourceError>>;

/// A started pipeline.
pub struct RunningPipeline {
    stop: StopSignal,
    sources: Vec<SourceWorker>,
    /// The tasks of sources that have one (not Kafka sources: theirs come and go).
    tasks: Vec<StartedTask>,
    sinks: Vec<Worker<Result<(), SinkError>>>,
    dead_letters: JoinHandle<std::io::Result<u64>>,
    dead_letter_destination: String,
    control: PipelineControl,
    /// The local state directory (locked) and the checkpoints the sources resume from.
    local_state: Option<LocalState>,
}

/// The checkpoints of file and generator sources, when `state_dir` is set.
struct LocalState {
    directory: Arc<StateDirectory>,
    restored: HashMap<String, TaskCheckpoint>,
}

impl LocalState {
    /// Opens (and locks) the pipeline's state directory and reads its checkpoints.
    fn open(pipeline: &LoadedPipeline) -> Result<Option<LocalState>, StartError> {
        let Some(state_dir) = &pipeline.config.pipeline.state_dir else { return Ok(None) };
        let directory = StateDirectory::open(&pipeline.resolve(state_dir), pipeline.config.pipeline.name.get_ref().as_str())?;
        let mut restored = HashMap::new();
        for source in pipeline.config.sources.iter().map(|source| source.get_ref()) {
            let Some(input) = input_identity(source, pipeline) else { continue };
            let name = source.name();
            let checkpoint = directory.load(&name)?;
            directory.check_input(&name, &input, checkpoint.is_some())?;
            if let Some(checkpoint) = checkpoint {
                restored.insert(name, checkpoint);
            }
        }
        Ok(Some(LocalState { directory, restored }))
    }

    /// Whether any source continues a previous run (whose outputs are then kept).
    fn resumes(state: &Option<LocalState>) -> bool {
        state.as_ref().is_some_and(|state| !state.restored.is_empty())
    }
}

/// What a file or generator source reads, as far as its checkpoints depend on it: the file
/// (its path and first line: appending keeps it, replacing the file changes it), or the
/// generator's sequence (seed and shape; not its rate or count).
fn input_identity(source: &SourceConfig, pipeline: &LoadedPipeline) -> Option<String> {
    match source {
        SourceConfig::File(file) => {
            let path = pipeline.resolve(&file.path);
            let mut first_line = Vec::new();
            if let Ok(opened) = std::fs::File::open(&path) {
                use std::io::{BufRead, Read};
                let _ = std::io::BufReader::new(opened.take(4096)).read_until(b'\n', &mut first_line);
            }
            Some(format!("file {}, first line {}", path.display(), crate::wasm::Digest::of(&first_line)))
        }
        SourceConfig::Generator(generator) => Some(format!(
            "generator seed {}, start {}, every {} ms, disorder {} ms, {} users, {} items, {} anomalies",
            generator.seed,
            generator.start_time,
            generator.event_interval.millis(),
            generator.disorder.millis(),
            generator.users,
            generator.items,
            generator.anomalies.len()
        )),
        SourceConfig::Stdin(_) | SourceConfig::Kafka(_) => None,
    }
}

impl RunningPipeline {
    /// Opens sinks, starts operators and tasks, then sources: upstream last, so nothing waits.
    pub fn start(pipeline: &LoadedPipeline, plugins: &PluginRegistry) -> Result<RunningPipeline, StartError> {
        Self::start_with_stop(pipeline, plugins, StopSignal::default())
    }

    /// Like `start`, with the signal that will stop the sources.
    pub fn start_with_stop(pipeline: &LoadedPipeline, plugins: &PluginRegistry, stop: StopSignal) -> Result<RunningPipeline, StartError> {
        let specs = operator_specs(pipeline, plugins)?;
        let local_state = LocalState::open(pipeline)?;
        let transactions = open_transactions(pipeline)?;
        let StartedSinks { queues: sink_queues, workers: sinks } =
            start_sinks(pipeline, LocalState::resumes(&local_state), transactions.as_deref())?;
        let dead_letter_config = pipeline.config.dead_letter.as_ref().map(|d| d.get_ref());
        let dead_letter_sink =
            DeadLetterSink::build(dead_letter_config, pipeline, transactions.as_deref()).map_err(StartError::DeadLetter)?;
        let dead_letter_destination = dead_letter_sink.description().to_owned();
        let (dead_letter_sender, dead_letter_queue) = mpsc::sync_channel(DEAD_LETTER_QUEUE);
        let dead_letters = spawn("dead-letter", move || write_dead_letters(dead_letter_sink, dead_letter_queue))?;
        let control = PipelineControl::new(pipeline.config.pipeline.name.get_ref().to_string(), specs);
        let outputs = TaskOutputs { sinks: sink_queues, dead_letters: dead_letter_sender };
        let factory = TaskFactory::new(control.clone(), outputs, TaskSettings::of(&pipeline.config.pipeline));
        let mut running = RunningPipeline {
            stop,
            sources: Vec::new(),
            tasks: Vec::new(),
            sinks,
            dead_letters,
            dead_letter_destination,
            control,
            local_state,
        };
        for source in &pipeline.config.sources {
            running.start_source(pipeline, source.get_ref(), &factory, transactions.clone())?;
        }
        Ok(running)
    }

    fn start_source(
        &mut self,
        pipeline: &LoadedPipeline,
        config: &SourceConfig,
        factory: &TaskFactory,
        transactions: Option<Arc<TransactionalProducer>>,
    ) -> Result<(), StartError> {
        let settings = &pipeline.config.pipeline;
        let name: Arc<str> = config.name().into();
        if let SourceConfig::Kafka(kafka) = config {
            let settings = KafkaSourceSettings {
                pipeline: settings.name.get_ref().to_string(),
                source: name.clone(),
                batch_size: *settings.batch_size.get_ref(),
                batch_linger: settings.batch_linger.duration(),
                checkpoint_interval: settings.checkpoint_interval.duration(),
                transactions,
                tolerated_aborts: settings.tolerated_checkpoint_failures,
            };
            let source = KafkaSource::new(kafka, settings, factory.clone(), self.stop.clone())
                .map_err(|error| StartError::Kafka { source_name: name.to_string(), error: Box::new(error) })?;
            self.sources.push((format!("source {name}"), spawn(&format!("source-{name}"), move || source.run())?));
            return Ok(());
        }
        let source = Source::build(config, pipeline)?;
        let batcher = Batcher::new(*settings.batch_size.get_ref(), settings.batch_linger.duration());
        let (task, output) = match &self.local_state {
            None => {
                let task = factory.start(TaskOrigin::source(name.clone()), None, None)?;
                let output = SourceOutput::new(name.clone(), batcher, task.input().clone(), factory.dead_letters(), self.stop.clone());
                (task, output)
            }
            Some(state) => {
                let restored = state.restored.get(name.as_ref());
                if let Some(checkpoint) = restored {
                    tracing::info!(source = %name, position = checkpoint.next_position, directory = %state.directory.path().display(), "resuming from a checkpoint");
                }
                let target = Box::new(state.directory.target(&name));
                let task = factory.start(TaskOrigin::source(name.clone()), restored, Some(target))?;
                let output = SourceOutput::new(name.clone(), batcher, task.input().clone(), factory.dead_letters(), self.stop.clone())
                    .with_checkpoints(restored.map_or(0, |checkpoint| checkpoint.next_position), settings.checkpoint_interval.duration());
                (task, output)
            }
        };
        self.tasks.push(task);
        let run = move || source.run(output).map(|()| Vec::new());
        self.sources.push((format!("source {name}"), spawn(&format!("source-{name}"), run)?));
        Ok(())
    }

    /// The signal that stops the sources; the pipeline then drains and `wait` returns.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// A handle to swap, roll back and inspect the running operators.
    pub fn control(&self) -> PipelineControl {
        self.control.clone()
    }

    /// Waits until every source has ended and everything read has been written.
    pub fn wait(self) -> Result<PipelineSummary, RunError> {
        let mut errors: Vec<RunError> = Vec::new();
        let mut keep = |error: RunError| errors.push(error);
        let mut tasks = Vec::new();
        for (name, source) in self.sources {
            match source.join() {
                Ok(Ok(stats)) => tasks.extend(stats),
                Ok(Err(error)) => keep(error.into()),
                Err(_) => keep(RunError::Panicked(name)),
            }
        }
        self.control.close();
        for task in self.tasks {
            match task.join() {
                Ok(stats) => tasks.push(stats),
                Err(error) => keep(error.into()),
            }
        }
        for (name, sink) in self.sinks {
            match sink.join() {
                Ok(result) => result.unwrap_or_else(|error| keep(error.into())),
                Err(_) => keep(RunError::Panicked(name)),
            }
        }
        let dead_letters = match self.dead_letters.join() {
            Ok(Ok(count)) => count,
            Ok(Err(error)) => {
                keep(RunError::DeadLetter(error));
                0
            }
            Err(_) => {
                keep(RunError::Panicked("dead-letter".into()));
                0
            }
        };
        if let Some(error) = root_error(errors) {
            return Err(error);
        }
        // The operators running at the end: swaps may have replaced the ones started.
        let operators = self.control.current_specs().iter().map(summarize_operator).collect();
        Ok(PipelineSummary { tasks, operators, dead_letters, dead_letter_destination: self.dead_letter_destination })
    }
}

/// The error to report: a task only fails because something downstream failed first.
fn root_error(mut errors: Vec<RunError>) -> Option<RunError> {
    let root = errors.iter().position(|error| !matches!(error, RunError::Task(_))).unwrap_or(0);
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

/// The operator specifications of `pipeline`, with their plugins compiled.
fn operator_specs(pipeline: &LoadedPipeline, plugins: &PluginRegistry) -> Result<Vec<OperatorSpec>, StartError> {
    pipeline
        .config
        .operators
        .iter()
        .map(|operator| {
            let operator = operator.get_ref();
            operator_spec(pipeline, operator, plugins)
                .map_err(|error| StartError::Plugin { operator: operator.name.get_ref().to_string(), error })
        })
        .collect()
}

/// Compiles (or finds) the plugin of `operator` and gathers what is needed to instantiate it.
pub fn operator_spec(pipeline: &LoadedPipeline, operator: &OperatorConfig, plugins: &PluginRegistry) -> Result<OperatorSpec, PluginError> {
    let plugin = plugins.load(&pipeline.resolve(operator.plugin.get_ref()))?;
    let mut granted = BTreeMap::new();
    for (name, path) in operator.granted_files() {
        let path = pipeline.resolve(path);
        let contents = std::fs::read_to_string(&path).map_err(|source| PluginError::GrantedFile { path: path.clone(), source })?;
        granted.insert(name.clone(), contents);
    }
    Ok(OperatorSpec {
        name: operator.name.get_ref().as_str().into(),
        plugin,
        config_json: operator.config_json(&granted),
        limits: InstanceLimits {
            memory: usize::try_from(operator.memory_limit.bytes()).unwrap_or(usize::MAX),
            call_timeout: operator.call_timeout.duration(),
        },
        metrics: Arc::new(OperatorMetrics::default()),
    })
}

/// The transactional producer of an exactly-once pipeline (validation made sure there is
/// one Kafka source, and that every output is on its cluster with the same properties).
fn open_transactions(pipeline: &LoadedPipeline) -> Result<Option<Arc<TransactionalProducer>>, StartError> {
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
    TransactionalProducer::open(
        &source.brokers,
        properties.unwrap_or(&source.properties),
        &id,
        config.pipeline.checkpoint_interval.duration(),
    )
    .map(Some)
    .map_err(|error| StartError::Kafka { source_name, error: Box::new(error) })
}

/// Opens the sinks; when the pipeline resumes from checkpoints, output files are continued
/// rather than started afresh.
fn start_sinks(
    pipeline: &LoadedPipeline,
    resuming: bool,
    transactions: Option<&TransactionalProducer>,
) -> Result<StartedSinks, StartError> {
    let mut started = StartedSinks { queues: Vec::new(), workers: Vec::new() };
    for config in &pipeline.config.sinks {
        let sink = Sink::build(config.get_ref(), pipeline, resuming, transactions)?;
        let (sender, queue) = mpsc::sync_channel(SINK_QUEUE);
        let name = sink.name().to_owned();
        let thread = spawn(&format!("sink-{name}"), move || write_sink(sink, queue))?;
        started.queues.push(sender);
        started.workers.push((format!("sink {name}"), thread));
    }
    Ok(started)
}

/// Writes batches until every task has finished; makes the output durable when a task asks
/// (at a checkpoint) and at the end.
fn write_sink(mut sink: Sink, queue: Receiver<SinkMessage>) -> Result<(), SinkError> {
    for message in queue {
        match message {
            SinkMessage::Batch(batch) => sink.write(&batch)?,
            SinkMessage::Flush(done) => {
                sink.flush()?;
                let _ = done.send(());
            }
        }
    }
    sink.flush()
}

fn write_dead_letters(mut sink: DeadLetterSink, queue: Receiver<DeadLetterMessage>) -> std::io::Result<u64> {
    let mut count = 0;
    for message in queue {
        match message {
            DeadLetterMessage::Letter(letter) => {
                if count == 0 {
                    tracing::warn!(destination = sink.description(), "records are going to the dead-letter sink: {}", letter.reason);
                }
                sink.write(&letter)?;
                count += 1;
            }
            DeadLetterMessage::Flush(done) => {
                sink.flush()?;
                let _ = done.send(());
            }
        }
    }
    sink.flush()?;
    Ok(count)
}

pub(super) fn spawn<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Result<JoinHandle<T>, StartError> {
    std::thread::Builder::new().name(format!("sluice-{name}")).spawn(work).map_err(StartError::Thread)
}

/// Checks plugins for `sluice validate` (and before `run`): compiles, type-checks, and
/// offers each operator its configuration in a throw-away instance.
pub struct WasmPluginCheck<'a> {
    pub pipeline: &'a LoadedPipeline,
    pub plugins: &'a PluginRegistry,
}

impl PluginCheck for WasmPluginCheck<'_> {
    fn check(&self, _path: &Path, operator: &OperatorConfig) -> Result<(), PluginProblem> {
        let spec = operator_spec(self.pipeline, operator, self.plugins).map_err(|error| PluginProblem::Plugin(error.to_string()))?;
        match Operator::start(spec, None) {
            Ok(_) => Ok(()),
            Err(OperatorError::ConfigRefused(reason)) => Err(PluginProblem::Config(reason)),
            Err(error) => Err(PluginProblem::Plugin(format!("its init failed: {error}"))),
        }
    }
}
