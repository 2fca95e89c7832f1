//! A pipeline of local sources (files, standard input, the generator) in one process: each
//! stage runs `parallelism` tasks (one for a stage whose exchange gathers every record),
//! stages are joined by in-process exchanges, the sources are read in shares, and with a
//! state directory a coordinator checkpoints the whole pipeline in rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender, SyncSender};

use super::coordinator::{Coordinator, ShareHandle};
use super::{StartError, Worker, spawn};
use crate::config::{LoadedPipeline, SourceConfig};
use crate::graph::{Entry, Plan, Routing, Stage};
use crate::pipeline::{
    Batcher, CoordinatorTarget, ExchangeOutput, ExchangeRouting, ExchangeWiring, KeySelector, LocalExchange, PipelineControl, RoundReport,
    ShareRounds, SharedOutputs, StartedTask, StopSignal, TaskFactory, TaskMessage, TaskOrigin, TaskSettings, TaskStart, Upstreams,
};
use crate::source::{EventTime, Source, SourceError, SourceOutput, SourceStats};
use crate::state_dir::{PipelineCheckpoint, StateDirectory};

/// The running parts of a local pipeline.
pub struct LocalPipeline {
    pub sources: Vec<Worker<Result<SourceStats, SourceError>>>,
    pub tasks: Vec<StartedTask>,
    pub coordinator: Option<Worker<Result<(), String>>>,
}

/// What the stages of a local pipeline share while they start.
pub struct LocalStart<'a> {
    pub pipeline: &'a LoadedPipeline,
    pub plan: &'a Plan,
    pub control: PipelineControl,
    pub outputs: SharedOutputs,
    pub stop: StopSignal,
    /// The output files whose lengths the checkpoints record, by sink name (and
    /// `DEAD_LETTER_OUTPUT`).
    pub output_files: BTreeMap<String, std::path::PathBuf>,
}

/// The checkpoints of a local pipeline: its directory, the round it resumes from, and the
/// coordinator's report channel.
struct LocalState {
    directory: Arc<StateDirectory>,
    restored: Option<PipelineCheckpoint>,
    layout: String,
    inputs: BTreeMap<String, String>,
    reports: Sender<RoundReport>,
}

/// A locked state directory and the checkpoint to resume from, if any.
pub type OpenedState = (Arc<StateDirectory>, Option<PipelineCheckpoint>);

/// Opens the state directory (if the pipeline has one) and reads the round to resume from;
/// the sinks need to know whether it resumes before anything starts.
pub fn open_state(pipeline: &LoadedPipeline, plan: &Plan) -> Result<Option<OpenedState>, StartError> {
    let Some(state_dir) = &pipeline.config.pipeline.state_dir else { return Ok(None) };
    let directory = StateDirectory::open(&pipeline.resolve(state_dir), pipeline.config.pipeline.name.get_ref().as_str())?;
    let restored = directory.load(&layout(pipeline, plan), &input_identities(pipeline), &older_input_identities(pipeline))?;
    if let Some(restored) = &restored {
        check_counts_reach(pipeline, restored)?;
        tracing::info!(directory = %directory.path().display(), "resuming from a checkpoint");
    }
    Ok(Some((directory, restored)))
}

/// A generator's `count` may change when a run resumes, but not below the record its checkpoint
/// resumes at: the results the checkpoint holds came from records the run would no longer
/// make. Refused here, before any output file is cut back to the checkpoint.
fn check_counts_reach(pipeline: &LoadedPipeline, restored: &PipelineCheckpoint) -> Result<(), StartError> {
    for source in &pipeline.config.sources {
        let count = match source.get_ref() {
            SourceConfig::Generator(generator) => generator.count,
            SourceConfig::Nexmark(nexmark) => nexmark.count,
            _ => None,
        };
        let Some(count) = count else { continue };
        let name = source.get_ref().name();
        let share_prefix = format!("{name}#");
        let shares = restored.shares.iter().filter(|(key, _)| **key == name || key.starts_with(&share_prefix));
        if let Some(resumes_at) = shares.map(|(_, position)| position.next_position).max()
            && resumes_at > count
        {
            let message = format!(
                "count = {count} is below record {resumes_at}, where the pipeline's checkpoint resumes: give a count of at \
                 least {resumes_at}, or remove the checkpoint from the state directory to start over"
            );
            return Err(SourceError::Invalid { source_name: name, message }.into());
        }
    }
    Ok(())
}

/// Starts the stages (downstream first, so that every task's next stage runs before it),
/// then the sources' shares, then the coordinator.
pub fn start_local(
    start: LocalStart<'_>,
    state: Option<(Arc<StateDirectory>, Option<PipelineCheckpoint>)>,
) -> Result<LocalPipeline, StartError> {
    let (reports, report_queue) = mpsc::channel();
    let state = state.map(|(directory, restored)| LocalState {
        directory,
        restored,
        layout: layout(start.pipeline, start.plan),
        inputs: input_identities(start.pipeline),
        reports,
    });
    let counts = task_counts(start.pipeline, start.plan);
    let mut inputs: Vec<Vec<SyncSender<TaskMessage>>> = vec![Vec::new(); start.plan.stages.len()];
    let mut reads_indexes = vec![false; start.plan.stages.len()];
    let mut tasks = Vec::new();
    for stage in start.plan.upstream_first().into_iter().rev() {
        let (started, reads) = start_stage(&start, stage, &counts, &inputs, state.as_ref())?;
        inputs[stage] = started.iter().map(|task| task.input().clone()).collect();
        reads_indexes[stage] = reads;
        tasks.extend(started);
    }
    let mut handles = BTreeMap::new();
    let mut sources = Vec::new();
    for (index, config) in start.pipeline.config.sources.iter().enumerate() {
        let feeds = SourceFeeds { tasks: &inputs[index], reads_indexes: reads_indexes[index] };
        sources.extend(start_source(&start, config.get_ref(), feeds, state.as_ref(), &mut handles)?);
    }
    let coordinator = match state {
        Some(state) => Some(start_coordinator(&start, state, report_queue, handles, &tasks)?),
        None => None,
    };
    Ok(LocalPipeline { sources, tasks, coordinator })
}

/// Starts the coordinator of the rounds: every share and task started is expected in them.
fn start_coordinator(
    start: &LocalStart<'_>,
    state: LocalState,
    reports: std::sync::mpsc::Receiver<RoundReport>,
    shares: BTreeMap<String, ShareHandle>,
    tasks: &[StartedTask],
) -> Result<Worker<Result<(), String>>, StartError> {
    let settings = &start.pipeline.config.pipeline;
    // Shares that had ended when the round was saved start no more: their positions stay.
    let ended = state.restored.map(|restored| restored.shares).unwrap_or_default();
    let coordinator = Coordinator {
        directory: state.directory,
        layout: state.layout,
        inputs: state.inputs,
        interval: settings.checkpoint_interval.duration(),
        round_limit: start.pipeline.config.round_limit(),
        tolerated_failures: settings.tolerated_checkpoint_failures,
        stop: start.stop.clone(),
        reports,
        ended: ended.into_iter().filter(|(share, _)| !shares.contains_key(share)).collect(),
        shares,
        tasks: tasks.iter().map(|task| task.origin().to_string()).collect::<BTreeSet<String>>(),
        // Located once: the files stay where they were opened for the whole run.
        output_files: start.output_files.iter().map(|(output, path)| (output.clone(), crate::sink::output_location(path))).collect(),
        lost_a_task: false,
        rounds: start.control.monitor().metrics.checkpoint_rounds(start.control.pipeline()),
    };
    // The coordinator must see its report channel close once every share and task is gone.
    drop(state.reports);
    Ok(("checkpoints".into(), spawn("checkpoints", move || coordinator.run())?))
}

/// How many tasks each stage runs: one where its exchange gathers every record, and one for a
/// source that feeds an exchange directly (it has nothing to do in parallel, and one task keeps
/// the source's order within every key across the exchange); else `parallelism`.
fn task_counts(pipeline: &LoadedPipeline, plan: &Plan) -> Vec<usize> {
    let parallelism = pipeline.config.pipeline.parallelism();
    let only_routes = |stage: &Stage| matches!(stage.entry, Entry::Source(_)) && stage.operators.is_empty();
    plan.stages.iter().map(|stage| if stage.single || only_routes(stage) { 1 } else { parallelism }).collect()
}

/// Starts the tasks of `stage`; `inputs` holds the queues of the stages already started (every
/// stage it sends to). Also says whether the operators the stage's records go to first read
/// field indexes.
fn start_stage(
    start: &LocalStart<'_>,
    stage: usize,
    counts: &[usize],
    inputs: &[Vec<SyncSender<TaskMessage>>],
    state: Option<&LocalState>,
) -> Result<(Vec<StartedTask>, bool), StartError> {
    let plan = start.plan;
    let wiring = Arc::new(LocalWiring::new(plan, stage, counts, inputs));
    let settings = &start.pipeline.config.pipeline;
    let factory = TaskFactory::new(
        start.control.clone(),
        Arc::new(plan.stages[stage].clone()),
        start.outputs.clone(),
        wiring,
        TaskSettings::of(settings),
        start.stop.clone(),
    );
    let senders = match plan.stages[stage].entry {
        Entry::Source(_) => 1,
        Entry::Exchange(exchange) => plan.exchanges[exchange].upstream_stages.iter().map(|upstream| counts[*upstream]).sum(),
    };
    let name: Arc<str> = plan.stages[stage].name.as_str().into();
    let started = (0..counts[stage])
        .map(|instance| {
            let origin = if counts[stage] == 1 { TaskOrigin::source(name.clone()) } else { TaskOrigin::instance(name.clone(), instance) };
            let key = origin.to_string();
            let restored = state.and_then(|state| state.restored.as_ref()).and_then(|restored| restored.tasks.get(&key));
            let checkpoints = state.map(|state| {
                Box::new(CoordinatorTarget { task: key.clone(), reports: state.reports.clone() })
                    as Box<dyn crate::pipeline::CheckpointTarget>
            });
            let task = TaskStart { origin, instance, upstreams: Upstreams::new(senders, senders), restored, checkpoints };
            factory.start(task).map_err(StartError::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((started, factory.entry_reads_field_indexes()))
}

/// The tasks a local source feeds, and whether the operators they give its records to first
/// read field indexes.
struct SourceFeeds<'a> {
    tasks: &'a [SyncSender<TaskMessage>],
    reads_indexes: bool,
}

/// The in-process exchanges one stage's tasks send through.
struct LocalWiring {
    /// By the plan's exchange index: how it routes, the queues of its stage's tasks, and the
    /// index of this stage's first task among those tasks' upstreams.
    exchanges: Vec<Option<ExchangeTarget>>,
}

/// How an exchange routes, the queues of the tasks behind it, and the index of the sending
/// stage's first task among those tasks' upstreams.
type ExchangeTarget = (ExchangeRouting, Vec<SyncSender<TaskMessage>>, u32);

impl LocalWiring {
    fn new(plan: &Plan, stage: usize, counts: &[usize], inputs: &[Vec<SyncSender<TaskMessage>>]) -> LocalWiring {
        let exchanges = plan
            .exchanges
            .iter()
            .map(|exchange| {
                let position = exchange.upstream_stages.iter().position(|upstream| *upstream == stage)?;
                let offset: usize = exchange.upstream_stages[..position].iter().map(|upstream| counts[*upstream]).sum();
                let routing = match &exchange.routing {
                    Routing::Key(fields) => ExchangeRouting::Key(KeySelector::new(fields.clone())),
                    Routing::Single | Routing::Any => ExchangeRouting::Single,
                };
                Some((routing, inputs[exchange.stage].clone(), offset as u32))
            })
            .collect();
        LocalWiring { exchanges }
    }
}

impl ExchangeWiring for LocalWiring {
    fn outputs(&self, _origin: &TaskOrigin, instance: usize) -> Vec<Option<Box<dyn ExchangeOutput>>> {
        self.exchanges
            .iter()
            .map(|exchange| {
                exchange.as_ref().map(|(routing, downstream, offset)| {
                    Box::new(LocalExchange::new(routing.clone(), downstream.clone(), offset + instance as u32)) as Box<dyn ExchangeOutput>
                })
            })
            .collect()
    }
}

/// Starts the shares of one local source: the generator makes one share per task of its
/// stage (each feeding its own task); a file or standard input is read once, its batches
/// spread over the tasks.
fn start_source(
    start: &LocalStart<'_>,
    config: &SourceConfig,
    feeds: SourceFeeds<'_>,
    state: Option<&LocalState>,
    handles: &mut BTreeMap<String, ShareHandle>,
) -> Result<Vec<Worker<Result<SourceStats, SourceError>>>, StartError> {
    let settings = &start.pipeline.config.pipeline;
    let name: Arc<str> = config.name().into();
    let tasks = feeds.tasks;
    let shares = Source::build(config, start.pipeline)?.shares(tasks.len());
    let event_time = EventTime {
        out_of_orderness: settings.out_of_orderness.millis(),
        idle_timeout: settings.idle_timeout.duration(),
        late: settings.late_records,
    };
    let mut workers = Vec::new();
    for share in 0..shares {
        let source = Source::build(config, start.pipeline)?;
        let fed: Vec<SyncSender<TaskMessage>> = if shares == 1 { tasks.to_vec() } else { vec![tasks[share].clone()] };
        let batcher = Batcher::new(*settings.batch_size.get_ref(), settings.batch_linger.duration());
        let mut output = SourceOutput::new(name.clone(), batcher, fed, start.outputs.dead_letters.clone(), event_time, start.stop.clone())
            .keeping_scanned_fields(feeds.reads_indexes)
            .counting_late_drops_in(start.control.monitor().metrics.source_late_dropped(start.control.pipeline(), &name));
        let key = if shares == 1 { name.to_string() } else { format!("{name}#{share}") };
        if let Some(state) = state {
            let (requests, request_queue) = mpsc::channel();
            let (decided, decisions) = mpsc::channel();
            let position = state.restored.as_ref().and_then(|restored| restored.shares.get(&key));
            let rounds = ShareRounds { share: key.clone(), requests: request_queue, reports: state.reports.clone(), decided: decisions };
            output = output.with_rounds(
                rounds,
                position.map_or(0, |position| position.next_position),
                position.and_then(|position| position.watermark),
            );
            handles.insert(key.clone(), ShareHandle { requests, decided });
        }
        let thread = spawn(&format!("source-{key}"), move || source.run(share, shares, output))?;
        workers.push((format!("source {key}"), thread));
    }
    Ok(workers)
}

/// The shape a checkpoint round belongs to: each stage's tasks and operators.
pub fn layout(pipeline: &LoadedPipeline, plan: &Plan) -> String {
    let counts = task_counts(pipeline, plan);
    let operators: Vec<String> = pipeline.config.operators.iter().map(|operator| operator.get_ref().name.get_ref().to_string()).collect();
    plan.stages
        .iter()
        .zip(&counts)
        .map(|(stage, count)| {
            let names: Vec<&str> = stage.operators.iter().map(|operator| operators[*operator].as_str()).collect();
            format!("{} x{count} [{}]", stage.name, names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What each file or generator source reads, as far as its checkpoints depend on it: the file
/// (its path and first line: appending keeps it, replacing the file changes it), or the
/// generator's records (seed and shape, anomalies included; not its rate or count).
pub fn input_identities(pipeline: &LoadedPipeline) -> BTreeMap<String, String> {
    pipeline
        .config
        .sources
        .iter()
        .filter_map(|source| {
            let source = source.get_ref();
            let identity = match source {
                SourceConfig::File(file) => {
                    let path = pipeline.resolve(&file.path);
                    let mut first_line = Vec::new();
                    if let Ok(opened) = std::fs::File::open(&path) {
                        use std::io::{BufRead, Read};
                        let _ = std::io::BufReader::new(opened.take(4096)).read_until(b'\n', &mut first_line);
                    }
                    format!("file {}, first line {}", path.display(), crate::wasm::Digest::of(&first_line))
                }
                SourceConfig::Generator(generator) => generator_identity(generator, &anomalies_identity(&generator.anomalies)),
                // What shapes the events, not `count` or the wall-clock `rate`: a run may resume
                // further or faster.
                SourceConfig::Nexmark(nexmark) => format!(
                    "nexmark start {}, {} events/s of event time, proportions {}:{}:{}, hot ratios {}/{}/{}, {} active people, \
                     {} auctions in flight, sizes {}/{}/{} bytes",
                    nexmark.start_time,
                    nexmark.event_rate.per_second(),
                    nexmark.person_proportion,
                    nexmark.auction_proportion,
                    nexmark.bid_proportion,
                    nexmark.hot_auction_ratio,
                    nexmark.hot_seller_ratio,
                    nexmark.hot_bidder_ratio,
                    nexmark.active_people,
                    nexmark.in_flight_auctions,
                    nexmark.avg_person_bytes,
                    nexmark.avg_auction_bytes,
                    nexmark.avg_bid_bytes
                ),
                SourceConfig::Stdin(_) | SourceConfig::Kafka(_) => return None,
            };
            Some((source.name(), identity))
        })
        .collect()
}

/// The identities that checkpoints written before anomalies were recorded whole gave the
/// generators that have some (their number only): accepted too, so that such a checkpoint
/// resumes after an upgrade.
pub fn older_input_identities(pipeline: &LoadedPipeline) -> BTreeMap<String, String> {
    let generators = pipeline.config.sources.iter().filter_map(|source| match source.get_ref() {
        SourceConfig::Generator(generator) if !generator.anomalies.is_empty() => Some((source.get_ref().name(), generator)),
        _ => None,
    });
    generators.map(|(name, generator)| (name, generator_identity(generator, &format!("{} anomalies", generator.anomalies.len())))).collect()
}

/// What shapes a generator's records: seed and shape, and `anomalies` as given.
fn generator_identity(generator: &crate::config::GeneratorConfig, anomalies: &str) -> String {
    format!(
        "generator seed {}, start {}, every {} ms, disorder {} ms, {} users, {} items, {anomalies}{}",
        generator.seed,
        generator.start_time,
        generator.event_interval.millis(),
        generator.disorder.millis(),
        generator.users,
        generator.items,
        // Appended only when set, so that checkpoints written before labels existed still match.
        if generator.labels { ", labels" } else { "" }
    )
}

/// The generator's anomalies as an input identity: each one whole, since a changed factor or
/// time changes the records (written "0 anomalies" when there are none, as before).
fn anomalies_identity(anomalies: &[crate::config::AnomalyConfig]) -> String {
    if anomalies.is_empty() {
        return "0 anomalies".into();
    }
    let each: Vec<String> = anomalies
        .iter()
        .map(|anomaly| {
            let category = anomaly.category.as_deref().map_or(String::new(), |category| format!(" in {category:?}"));
            format!("from {} for {} ms{category}, prices × {}", anomaly.start, anomaly.duration.millis(), anomaly.price_factor)
        })
        .collect();
    format!("anomalies [{}]", each.join("; "))
}

#[cfg(test)]
mod tests {
    use super::anomalies_identity;
    use crate::config::AnomalyConfig;

    fn anomaly(price_factor: f64) -> AnomalyConfig {
        toml::from_str(&format!(
            "start = \"2026-01-01T00:00:00Z\"\nduration = \"1h\"\ncategory = \"books\"\nprice_factor = {price_factor:?}"
        ))
        .expect("an anomaly")
    }

    /// A checkpoint of a generator resumes only with the same anomalies: another factor makes
    /// other records (before, only their number was compared).
    #[test]
    fn anomalies_are_part_of_the_generators_input_whole() {
        assert_eq!(anomalies_identity(&[]), "0 anomalies");
        assert_eq!(anomalies_identity(&[anomaly(10.0)]), "anomalies [from 2026-01-01T00:00:00Z for 3600000 ms in \"books\", prices × 10]");
        assert_ne!(anomalies_identity(&[anomaly(10.0)]), anomalies_identity(&[anomaly(1000.0)]));
    }
}
