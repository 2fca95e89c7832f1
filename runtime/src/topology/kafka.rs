//! A Kafka pipeline: the source's consumer reads its topics and the repartition topics of the
//! pipeline's exchanges in one group, so that every partition of either gets a task of the
//! stage its topic feeds, on whichever process holds it; tasks send what an exchange routes
//! by key into its repartition topic.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{KafkaSourceWorker, StartError, spawn};
use crate::config::{KafkaSourceConfig, LoadedPipeline, SourceConfig, topic_pattern};
use crate::graph::{Entry, Exchange, Plan, Routing};
use crate::kafka::{
    KafkaClientError, KafkaSource, KafkaSourceSettings, KafkaStages, OutputProducer, RepartitionOutput, RepartitionStage,
    TransactionalProducer, all_topics, ensure_topic, repartition_topic,
};
use crate::pipeline::{
    ExchangeOutput, ExchangeRouting, ExchangeWiring, KeySelector, PipelineControl, SharedOutputs, StopSignal, TaskFactory, TaskOrigin,
    TaskSettings,
};
use crate::source::EventTime;

/// What starting a Kafka pipeline takes.
pub struct KafkaStart<'a> {
    pub pipeline: &'a LoadedPipeline,
    pub plan: &'a Plan,
    pub control: PipelineControl,
    pub outputs: SharedOutputs,
    pub stop: StopSignal,
    pub transactions: Option<Arc<TransactionalProducer>>,
}

/// One exchange's repartition topic, as the tasks that send to it see it.
#[derive(Clone)]
struct Repartition {
    topic: String,
    partitions: u32,
    routing: ExchangeRouting,
    producer: Arc<OutputProducer>,
}

/// Starts every Kafka source (validation allows several only without exchanges).
pub fn start_kafka(start: KafkaStart<'_>) -> Result<Vec<KafkaSourceWorker>, StartError> {
    let mut workers = Vec::new();
    for (index, source) in start.pipeline.config.sources.iter().enumerate() {
        let SourceConfig::Kafka(config) = source.get_ref() else { continue };
        let name = source.get_ref().name();
        let failed = |error: KafkaClientError| StartError::Kafka { source_name: name.clone(), error: Box::new(error) };
        pattern_spares_own_topics(&start, config).map_err(failed)?;
        let topics = source_topics(config, &start.stop).map_err(failed)?;
        let repartitions = repartition_topics(&start, config, &topics).map_err(failed)?;
        // After the refusal of missing topics with keyed exchanges, which do not wait for them.
        warn_of_missing_topics(&name, config, &topics);
        let stages = stages(&start, index, &topics, &repartitions).map_err(failed)?;
        let settings = &start.pipeline.config.pipeline;
        let source_settings = KafkaSourceSettings {
            pipeline: settings.name.get_ref().to_string(),
            source: name.as_str().into(),
            batch_size: *settings.batch_size.get_ref(),
            batch_linger: settings.batch_linger.duration(),
            checkpoint_interval: settings.checkpoint_interval.duration(),
            event_time: EventTime {
                out_of_orderness: settings.out_of_orderness.millis(),
                idle_timeout: settings.idle_timeout.duration(),
                late: settings.late_records,
            },
            transactions: start.transactions.clone(),
            tolerated_aborts: settings.tolerated_checkpoint_failures,
            metrics: start.control.monitor().metrics.clone(),
        };
        let kafka = KafkaSource::new(config, source_settings, stages, start.stop.clone()).map_err(failed)?;
        workers.push((format!("source {name}"), spawn(&format!("source-{name}"), move || kafka.run())?));
    }
    Ok(workers)
}

/// Creates (if needed) the repartition topic of every exchange, by the plan's exchange index.
fn repartition_topics(
    start: &KafkaStart<'_>,
    config: &KafkaSourceConfig,
    topics: &[(String, u32)],
) -> Result<Vec<Repartition>, KafkaClientError> {
    if start.plan.exchanges.is_empty() {
        return Ok(Vec::new());
    }
    // Tasks behind an exchange wait for a watermark from every source partition known at
    // start: a topic created later would have its records judged late.
    if let Some(missing) = config.topics.iter().find(|topic| !topics.iter().any(|(present, _)| present == *topic)) {
        return Err(KafkaClientError::Checkpoint(format!(
            "topic \"{missing}\" does not exist: a pipeline with keyed exchanges must know every partition of its topics when it \
             starts (the tasks behind an exchange wait for a watermark from each); create the topic, then start the pipeline"
        )));
    }
    let partitions = repartition_partitions(start.pipeline, config, topics)?;
    start
        .plan
        .exchanges
        .iter()
        .map(|exchange| {
            let topic = exchange_topic(start, config, exchange);
            let wanted = partitions;
            let partitions = ensure_topic(&config.brokers, &config.properties, &topic, wanted, false)?;
            if partitions != wanted {
                tracing::warn!(
                    topic,
                    partitions,
                    wanted,
                    "the repartition topic exists with another partition count: it is kept, and the stage behind it runs one task \
                     per partition it has (to change the count, start over under a new consumer `group`: a restart after the topic \
                     was deleted refuses the checkpoints that resume in it, docs/kafka.md)"
                );
            }
            let producer = match &start.transactions {
                Some(transactions) => transactions.output(&topic),
                None => OutputProducer::new(&config.brokers, &topic, &config.properties, &[])?,
            };
            let routing = match &exchange.routing {
                Routing::Key(fields) => ExchangeRouting::Key(KeySelector::new(fields.clone())),
                Routing::Single | Routing::Any => ExchangeRouting::Single,
            };
            Ok(Repartition { topic, partitions, routing, producer: Arc::new(producer) })
        })
        .collect()
}

/// `repartition_partitions`, or as many partitions as the source's topics have (the most).
fn repartition_partitions(
    pipeline: &LoadedPipeline,
    config: &KafkaSourceConfig,
    topics: &[(String, u32)],
) -> Result<u32, KafkaClientError> {
    if let Some(partitions) = &pipeline.config.pipeline.repartition_partitions {
        return Ok(*partitions.get_ref());
    }
    if config.topics.is_empty() {
        return Err(KafkaClientError::Checkpoint(
            "a source with a `pattern` cannot tell how many partitions its repartition topics need: set [pipeline] repartition_partitions"
                .into(),
        ));
    }
    Ok(topics.iter().map(|(_, partitions)| *partitions).max().unwrap_or(1).max(1))
}

/// The task factories of the source's stage and of every exchange's stage.
fn stages(
    start: &KafkaStart<'_>,
    source: usize,
    topics: &[(String, u32)],
    repartitions: &[Repartition],
) -> Result<KafkaStages, KafkaClientError> {
    let factory = |stage: usize| {
        TaskFactory::new(
            start.control.clone(),
            Arc::new(start.plan.stages[stage].clone()),
            start.outputs.clone(),
            Arc::new(KafkaWiring::new(start.plan, stage, repartitions)),
            TaskSettings::of(&start.pipeline.config.pipeline),
            start.stop.clone(),
        )
    };
    let mut stages = Vec::new();
    for (index, exchange) in start.plan.exchanges.iter().enumerate() {
        let mut origins = BTreeSet::new();
        for upstream in &exchange.upstream_stages {
            match start.plan.stages[*upstream].entry {
                Entry::Source(_) => origins.extend(source_partitions(topics)),
                Entry::Exchange(other) => {
                    let repartition = &repartitions[other];
                    origins.extend((0..repartition.partitions).map(|partition| format!("{}/{partition}", repartition.topic)));
                }
            }
        }
        stages.push(RepartitionStage {
            topic: repartitions[index].topic.clone(),
            factory: factory(exchange.stage),
            origins: origins.into_iter().collect(),
        });
    }
    Ok(KafkaStages { source: factory(source), repartitions: stages })
}

/// The source's topics the brokers have now, with their partition counts: those it lists, or
/// those its `pattern` matches (internal `__…` topics left out). Looked up once at start, for
/// the warning about missing topics, the repartition topics' size and the upstreams of the
/// stages behind an exchange.
fn source_topics(config: &KafkaSourceConfig, stop: &StopSignal) -> Result<Vec<(String, u32)>, KafkaClientError> {
    let client = crate::kafka::client_config(crate::kafka::ClientKind::Metadata, &config.brokers, &config.properties, &[], &[])?;
    let present = all_topics(&client, stop)?.into_iter().filter(|(_, partitions)| *partitions > 0);
    Ok(match &config.pattern {
        None => present.filter(|(topic, _)| config.topics.contains(topic)).collect(),
        Some(pattern) => {
            let pattern = topic_pattern(pattern).map_err(|error| KafkaClientError::Checkpoint(format!("`pattern`: {error}")))?;
            present.filter(|(topic, _)| !topic.starts_with("__") && pattern.is_match(topic)).collect()
        }
    })
}

/// Every partition of the source's topics, as `topic/partition`: the upstreams a task behind
/// an exchange waits for a watermark from.
fn source_partitions(topics: &[(String, u32)]) -> impl Iterator<Item = String> + '_ {
    topics.iter().flat_map(|(topic, count)| (0..*count).map(move |partition| format!("{topic}/{partition}")))
}

/// Says which of the source's `topics` the brokers do not have: the source waits for them
/// (librdkafka's own notice is easy to miss), and reads each once it is created.
fn warn_of_missing_topics(source: &str, config: &KafkaSourceConfig, present: &[(String, u32)]) {
    for topic in config.topics.iter().filter(|topic| !present.iter().any(|(found, _)| found == *topic)) {
        tracing::warn!(
            source,
            topic,
            "the brokers have no such topic: the source waits for it, and reads it once librdkafka sees it created (it looks every \
             topic.metadata.refresh.interval.ms, 5 minutes by default)"
        );
    }
}

/// Refuses a `pattern` that matches the pipeline's own repartition or checkpoint topics: the
/// source would read back what the pipeline writes there.
fn pattern_spares_own_topics(start: &KafkaStart<'_>, config: &KafkaSourceConfig) -> Result<(), KafkaClientError> {
    let Some(pattern) = &config.pattern else { return Ok(()) };
    let Ok(regex) = topic_pattern(pattern) else { return Ok(()) };
    let repartitions = start.plan.exchanges.iter().map(|exchange| exchange_topic(start, config, exchange));
    let own = repartitions.chain([config.checkpoint_topic()]);
    match own.into_iter().find(|topic| regex.is_match(topic)) {
        Some(topic) => Err(KafkaClientError::Checkpoint(format!(
            "`pattern` = {pattern:?} also matches \"{topic}\", which this pipeline writes: the source would read it back; make the \
             pattern stricter (end it with `$`, or exclude the name)"
        ))),
        None => Ok(()),
    }
}

/// The repartition topics one stage's tasks send to.
struct KafkaWiring {
    exchanges: Vec<Option<Repartition>>,
}

impl KafkaWiring {
    fn new(plan: &Plan, stage: usize, repartitions: &[Repartition]) -> KafkaWiring {
        let exchanges = plan
            .exchanges
            .iter()
            .zip(repartitions)
            .map(|(exchange, repartition)| exchange.upstream_stages.contains(&stage).then(|| repartition.clone()))
            .collect();
        KafkaWiring { exchanges }
    }
}

impl ExchangeWiring for KafkaWiring {
    fn outputs(&self, origin: &TaskOrigin, _instance: usize) -> Vec<Option<Box<dyn ExchangeOutput>>> {
        let sender = match &origin.partition {
            Some((topic, partition)) => format!("{topic}/{partition}"),
            None => origin.to_string(),
        };
        self.exchanges
            .iter()
            .map(|exchange| {
                exchange.as_ref().map(|repartition| {
                    let output = RepartitionOutput::new(
                        repartition.producer.clone(),
                        repartition.topic.clone(),
                        repartition.partitions,
                        repartition.routing.clone(),
                        sender.clone(),
                    );
                    Box::new(output) as Box<dyn ExchangeOutput>
                })
            })
            .collect()
    }
}

/// The repartition topic of `exchange`, for the source's consumer group.
fn exchange_topic(start: &KafkaStart<'_>, config: &KafkaSourceConfig, exchange: &Exchange) -> String {
    let pipeline = start.pipeline.config.pipeline.name.get_ref().as_str();
    let operator = start.pipeline.config.operators[exchange.operator].get_ref().name.get_ref().as_str();
    repartition_topic(pipeline, &config.group_id(pipeline), operator)
}
