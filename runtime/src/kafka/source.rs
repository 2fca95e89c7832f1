//! The Kafka source: a consumer in the pipeline's group; each assigned partition gets its own
//! task, restored from the partition's checkpoint. Offsets are committed only after a
//! checkpoint (operators' state, outputs, dead letters) is durable: at-least-once; or, with
//! exactly-once delivery, in the same transaction as the outputs and checkpoints.

use crate::monitor::Metrics;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;

use super::KafkaClientError;
use super::checkpoint::CheckpointStore;
use super::partitions::{KafkaStages, PartitionSetup, SourceContext};
use super::transaction::TransactionalProducer;
use crate::config::{KafkaProperties, KafkaSourceConfig, RESERVED_CONSUMER_PROPERTIES, StartPosition, resolve_property};
use crate::pipeline::{StopSignal, TaskStats};
use crate::source::{EventTime, SourceError};

/// Longest time one poll waits, so lingering batches, barriers and the stop signal are seen.
const POLL: Duration = Duration::from_millis(20);
/// How often the loop does its housekeeping (commits, paused partitions, linger, barriers)
/// while records keep arriving: not after every record.
const HOUSEKEEPING: Duration = Duration::from_millis(5);

/// What a Kafka source takes from the pipeline.
pub struct KafkaSourceSettings {
    pub pipeline: String,
    pub source: Arc<str>,
    pub batch_size: usize,
    pub batch_linger: Duration,
    pub checkpoint_interval: Duration,
    pub event_time: EventTime,
    /// Exactly-once: the transactional producer of the pipeline's outputs.
    pub transactions: Option<Arc<TransactionalProducer>>,
    /// Exactly-once: transactions that may abort in a row before the source stops.
    pub tolerated_aborts: u32,
    /// Where the consumer lag of each partition goes (from librdkafka's statistics).
    pub metrics: Metrics,
}

/// The consumer's defaults where librdkafka's do not suit a stream processor (measured with
/// `benches/kafka.rs`): after a partition was paused and resumed, fetch again in 10 ms rather
/// than librdkafka's 1 s, during which the partition would sit idle.
const CONSUMER_DEFAULTS: [(&str, &str); 1] = [("fetch.queue.backoff.ms", "10")];

/// The consumer's own settings for group `group`, and the defaults `properties` does not
/// change: what a source's consumer is made with, and what `validate` checks the user's
/// properties beside.
pub(super) fn consumer_settings<'a>(
    group: &'a str,
    reset: &'static str,
    statistics: &'static str,
    properties: &KafkaProperties,
) -> Vec<(&'a str, &'a str)> {
    let mut settings = vec![
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", reset),
        // The end of a partition tells an empty one's watermark it may advance.
        ("enable.partition.eof", "true"),
        ("statistics.interval.ms", statistics),
    ];
    settings.extend(CONSUMER_DEFAULTS.iter().copied().filter(|(property, _)| !properties.contains_key(*property)));
    settings
}

/// How often librdkafka reports statistics (the consumer lag) when metrics are on.
const STATISTICS_INTERVAL: &str = "5000";

/// A running Kafka source (its thread owns the consumer).
pub struct KafkaSource {
    name: Arc<str>,
    consumer: BaseConsumer<SourceContext>,
    subscription: Vec<String>,
    stop: StopSignal,
    transactions: Option<Arc<TransactionalProducer>>,
}

/// Half of `max.poll.interval.ms` (librdkafka's default: 300 s): a revoke that waits longer
/// for its tasks could get this process evicted from the group.
fn handover_limit(config: &KafkaSourceConfig) -> Result<Duration, KafkaClientError> {
    let millis = match config.properties.get("max.poll.interval.ms") {
        Some(value) => resolve_property("max.poll.interval.ms", value, &[])?.trim().parse::<u64>().unwrap_or(300_000),
        None => 300_000,
    };
    Ok(Duration::from_millis(millis / 2))
}

impl KafkaSource {
    /// Creates the consumer and opens the checkpoint store (creating its topic if needed).
    /// The consumer reads the source's topics and the repartition topics of `stages`, in one
    /// group: every partition, of either, gets a task of the stage its topic feeds.
    pub fn new(
        config: &KafkaSourceConfig,
        settings: KafkaSourceSettings,
        stages: KafkaStages,
        stop: StopSignal,
    ) -> Result<KafkaSource, KafkaClientError> {
        let group = config.group_id(&settings.pipeline);
        let reset = match config.start {
            StartPosition::Latest => "latest",
            StartPosition::Committed | StartPosition::Earliest => "earliest",
        };
        let statistics = if settings.metrics.is_enabled() { STATISTICS_INTERVAL } else { "0" };
        let own = consumer_settings(&group, reset, statistics, &config.properties);
        let client =
            super::client_config(super::ClientKind::Consumer, &config.brokers, &config.properties, RESERVED_CONSUMER_PROPERTIES, &own)?;
        let store =
            CheckpointStore::open(&config.brokers, &config.properties, &config.checkpoint_topic(), settings.transactions.as_deref())?;
        let (commits, checkpointed) = mpsc::channel();
        let mut subscription = config.subscription();
        subscription.extend(stages.repartitions.iter().map(|stage| stage.topic.clone()));
        let setup = PartitionSetup {
            pipeline: settings.pipeline,
            group: group.clone(),
            source: settings.source.clone(),
            start: config.start,
            batch_size: settings.batch_size,
            batch_linger: settings.batch_linger,
            checkpoint_interval: settings.checkpoint_interval,
            event_time: settings.event_time,
            stages,
            store: Arc::new(store),
            commits,
            transactions: settings.transactions.clone(),
            tolerated_aborts: settings.tolerated_aborts,
            handover_limit: handover_limit(config)?,
            metrics: settings.metrics,
        };
        let metadata = super::client_config(super::ClientKind::Metadata, &config.brokers, &config.properties, &[], &[])?;
        let consumer = client
            .create_with_context(SourceContext::new(setup, checkpointed, &metadata))
            .map_err(KafkaClientError::kafka("cannot create the consumer"))?;
        Ok(KafkaSource { name: settings.source, consumer, subscription, stop, transactions: settings.transactions })
    }

    /// Consumes until the stop signal; then checkpoints every partition, commits, and leaves
    /// the group. Returns the statistics of the partition tasks it ran.
    pub fn run(self) -> Result<Vec<TaskStats>, SourceError> {
        let topics: Vec<&str> = self.subscription.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics).map_err(|error| self.invalid(format!("cannot subscribe to {topics:?}: {error}")))?;
        tracing::info!(source = %self.name, topics = ?topics, "consuming");
        let context = self.consumer.context().clone();
        let mut failure = None;
        let mut housekeeping = Instant::now();
        let mut idle = true;
        while !self.stop.is_raised() {
            if idle || housekeeping.elapsed() >= HOUSEKEEPING {
                housekeeping = Instant::now();
                context.commit_checkpointed(&self.consumer, CommitMode::Async);
                context.tick(&self.consumer);
                if let Some(reason) = context.partitions().failure.take() {
                    failure = Some(reason);
                    break;
                }
            }
            idle = match self.consumer.poll(POLL) {
                Some(Ok(message)) => {
                    context.receive(&self.consumer, &message);
                    false
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    context.reached_end(partition);
                    true
                }
                Some(Err(error)) => {
                    tracing::warn!(source = %self.name, "kafka: {error}");
                    true
                }
                None => true,
            };
        }
        context.suspend_all(&self.consumer);
        if let Some(transactions) = &self.transactions {
            let (committed, aborted) = transactions.counts();
            tracing::info!(source = %self.name, transactional_id = transactions.id(), committed, aborted, "transactions committed and aborted");
        }
        context.commit_checkpointed(&self.consumer, CommitMode::Sync);
        self.consumer.unsubscribe();
        let mut partitions = context.partitions();
        let finished = std::mem::take(&mut partitions.finished);
        match failure.or_else(|| partitions.failure.take()) {
            Some(message) if partitions.failed_to_start => Err(SourceError::TaskNotStarted { source_name: self.name.to_string(), message }),
            Some(reason) => Err(self.invalid(reason)),
            None => Ok(finished),
        }
    }

    fn invalid(&self, message: String) -> SourceError {
        SourceError::Invalid { source_name: self.name.to_string(), message }
    }
}
