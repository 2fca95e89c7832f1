//! The checkpoint store: a compacted Kafka topic holding, for each (pipeline, source topic,
//! partition), the latest state of every operator and the offset it corresponds to.
//!
//! One record holds all operators of a partition's task, so a checkpoint is written whole or
//! not at all; its key names the pipeline, topic and partition, so compaction keeps only the
//! latest. Restoring reads the topic up to its end (the high watermarks seen at the start).

use std::collections::HashMap;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::producer::{OutgoingRecord, OutputProducer, hasten_producer_id, send_when_room};
use super::transaction::TransactionalProducer;
use super::{KafkaClientError, LoggingContext};
use crate::config::KafkaProperties;
use crate::pipeline::TaskCheckpoint;

/// Longest wait for broker metadata and watermarks.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time reading the checkpoint topic to its end may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Which task a checkpoint belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointKey {
    pub pipeline: String,
    pub source: String,
    pub topic: String,
    pub partition: i32,
    pub group: String,
}

impl CheckpointKey {
    /// The record key: `pipeline/source/topic/partition/group` (only the group, last, may
    /// contain '/'), so pipelines, sources and groups sharing a topic never share state.
    fn text(&self) -> String {
        format!("{}/{}/{}/{}/{}", self.pipeline, self.source, self.topic, self.partition, self.group)
    }
}

/// Answers a checkpoint write once the brokers have it.
#[derive(Default)]
struct AckContext;

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        LoggingContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason);
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<SyncSender<Result<(), String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        let _ = ack.send(result.as_ref().map(drop).map_err(|(error, _)| error.to_string()));
    }
}

/// Reads and writes checkpoints of one Kafka source.
pub struct CheckpointStore {
    producer: Arc<ThreadedProducer<AckContext>>,
    /// In an exactly-once pipeline, checkpoints are written in the transaction instead.
    transactional: Option<OutputProducer>,
    /// The consumer that reads the topic, made when the store opens (it connects while the
    /// source joins its group) and kept: destroying a librdkafka consumer takes about 100 ms,
    /// which every assignment would wait for.
    reader: Mutex<BaseConsumer<LoggingContext>>,
    topic: String,
}

impl CheckpointStore {
    /// Connects to `brokers` with the source's properties; creates the topic (compacted) if
    /// it does not exist.
    pub fn open(
        brokers: &str,
        properties: &KafkaProperties,
        topic: &str,
        transactions: Option<&TransactionalProducer>,
    ) -> Result<CheckpointStore, KafkaClientError> {
        let writer = super::client_config(
            super::ClientKind::Producer,
            brokers,
            properties,
            &[],
            &[("enable.idempotence", "true"), ("linger.ms", "0")],
        )?;
        let producer = writer.create_with_context(AckContext).map_err(KafkaClientError::kafka("cannot create the checkpoint producer"))?;
        let producer = Arc::new(producer);
        hasten_producer_id(Arc::downgrade(&producer));
        let reader = super::client_config(
            super::ClientKind::Consumer,
            brokers,
            properties,
            &[],
            &[
                ("group.id", "sluice-checkpoint-reader"),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
                // Checkpoints of aborted transactions (exactly-once) are never read back.
                ("isolation.level", "read_committed"),
            ],
        )?;
        let reader = reader.create_with_context(LoggingContext).map_err(KafkaClientError::kafka("cannot create the checkpoint reader"))?;
        let transactional = transactions.map(|transactions| transactions.output(topic));
        let store = CheckpointStore { producer, transactional, reader: Mutex::new(reader), topic: topic.to_owned() };
        super::admin::ensure_topic(brokers, properties, topic, 1, true)?;
        Ok(store)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes a checkpoint and waits until the brokers acknowledge it.
    /// In an exactly-once pipeline, it waits until the record is in the open transaction.
    pub fn save(&self, key: &CheckpointKey, checkpoint: &TaskCheckpoint) -> Result<(), String> {
        let value = checkpoint.encode();
        let key = key.text();
        if let Some(transactional) = &self.transactional {
            let record = OutgoingRecord { key: Some(key.as_bytes()), value: &value, timestamp: None, headers: None, partition: None };
            return transactional.send(record).and_then(|()| transactional.flush());
        }
        let (ack, acked) = mpsc::sync_channel(1);
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(ack)).key(key.as_bytes()).payload(value.as_slice());
        send_when_room(&self.producer, record, || Ok(()))
            .map_err(|error| format!("cannot write to checkpoint topic \"{}\": {error}", self.topic))?;
        match acked.recv() {
            Ok(result) => result.map_err(|error| format!("checkpoint topic \"{}\": {error}", self.topic)),
            Err(_) => Err(format!("checkpoint topic \"{}\": the producer closed", self.topic)),
        }
    }

    /// The latest checkpoint of each of `keys` that has one.
    pub fn load(&self, keys: &[CheckpointKey]) -> Result<HashMap<CheckpointKey, TaskCheckpoint>, KafkaClientError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let loaded = self.read_to_end(&reader, keys);
        // Between loads the reader fetches nothing (the topic only grows).
        if let Err(error) = reader.unassign() {
            tracing::warn!("cannot unassign the checkpoint reader: {error}");
        }
        loaded
    }

    /// Reads the whole topic up to its current end; keeps the latest checkpoint of each key.
    fn read_to_end(
        &self,
        reader: &BaseConsumer<LoggingContext>,
        keys: &[CheckpointKey],
    ) -> Result<HashMap<CheckpointKey, TaskCheckpoint>, KafkaClientError> {
        let wanted: HashMap<String, &CheckpointKey> = keys.iter().map(|key| (key.text(), key)).collect();
        let mut found = HashMap::new();
        let ends = self.assign_whole_topic(reader)?;
        let mut remaining: HashMap<i32, i64> = ends.into_iter().collect();
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while !remaining.is_empty() {
            if Instant::now() > deadline {
                return Err(KafkaClientError::Checkpoint(format!(
                    "reading checkpoint topic \"{}\" took longer than {LOAD_TIMEOUT:?}",
                    self.topic
                )));
            }
            let Some(message) = reader.poll(Duration::from_millis(200)) else {
                remaining.retain(|partition, end| !position_reached(reader, &self.topic, *partition, *end));
                continue;
            };
            let message = message.map_err(KafkaClientError::kafka(format!("reading checkpoint topic \"{}\"", self.topic)))?;
            if remaining.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
                remaining.remove(&message.partition());
            }
            let Some(key) = message.key().and_then(|key| std::str::from_utf8(key).ok()).and_then(|key| wanted.get(key)) else { continue };
            match message.payload() {
                None => {
                    found.remove(*key);
                }
                Some(value) => {
                    let checkpoint = TaskCheckpoint::decode(value).map_err(|problem| {
                        KafkaClientError::Checkpoint(format!(
                            "checkpoint {} at offset {} of topic \"{}\" is unreadable: {problem}",
                            key.text(),
                            message.offset(),
                            self.topic
                        ))
                    })?;
                    found.insert((*key).clone(), checkpoint);
                }
            }
        }
        Ok(found)
    }

    /// Assigns every partition of the topic from its beginning; returns each non-empty
    /// partition's end offset.
    fn assign_whole_topic(&self, reader: &BaseConsumer<LoggingContext>) -> Result<Vec<(i32, i64)>, KafkaClientError> {
        let failed = || KafkaClientError::kafka(format!("reading checkpoint topic \"{}\"", self.topic));
        let metadata = reader.fetch_metadata(Some(&self.topic), METADATA_TIMEOUT).map_err(failed())?;
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|topic| topic.partitions().iter().map(|p| p.id())).collect();
        let mut assignment = TopicPartitionList::new();
        let mut ends = Vec::new();
        for partition in partitions {
            let (low, high) = reader.fetch_watermarks(&self.topic, partition, METADATA_TIMEOUT).map_err(failed())?;
            if high > low {
                assignment.add_partition_offset(&self.topic, partition, Offset::Offset(low)).map_err(failed())?;
                ends.push((partition, high));
            }
        }
        reader.assign(&assignment).map_err(failed())?;
        Ok(ends)
    }
}

/// Whether the reader's position in `partition` is at `end` (records at the end may have
/// been compacted away, so the last one read need not be `end - 1`).
fn position_reached(reader: &BaseConsumer<LoggingContext>, topic: &str, partition: i32, end: i64) -> bool {
    let Ok(positions) = reader.position() else { return false };
    positions.find_partition(topic, partition).is_some_and(|element| matches!(element.offset(), Offset::Offset(at) if at >= end))
}
