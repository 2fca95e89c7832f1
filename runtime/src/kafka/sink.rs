//! Writing to Kafka: output records as they are, and dead letters with their provenance.

use rdkafka::message::{Header, OwnedHeaders};

use super::KafkaClientError;
use super::producer::{OutgoingRecord, OutputProducer};
use super::transaction::TransactionalProducer;
use crate::config::{KafkaDeadLetterConfig, KafkaProperties, KafkaSinkConfig};
use crate::pipeline::{DeadLetter, StopSignal};
use crate::wasm::{Record, Records};

/// A `type = "kafka"` sink: key, value, timestamp and headers of each record, unchanged.
pub struct KafkaSink {
    producer: OutputProducer,
}

impl KafkaSink {
    /// Its own idempotent producer; or, in an exactly-once pipeline, the transactional one.
    /// Waits for the brokers to answer, at most 30 s or until `stop` is raised.
    pub fn new(
        config: &KafkaSinkConfig,
        transactions: Option<&TransactionalProducer>,
        stop: &StopSignal,
    ) -> Result<KafkaSink, KafkaClientError> {
        let producer = match transactions {
            Some(transactions) => transactions.output(&config.topic),
            None => reachable_producer(&config.brokers, &config.topic, &config.properties, config.partitioning.partitioner(), stop)?,
        };
        Ok(KafkaSink { producer })
    }

    /// Queues the records (delivered in the background, in order per partition).
    pub fn write(&self, records: &Records) -> Result<(), String> {
        records.iter().try_for_each(|record| {
            self.producer.send(OutgoingRecord {
                key: record.key(),
                value: record.value(),
                timestamp: Some(record.timestamp()),
                headers: record_headers(&record, None),
                partition: None,
            })
        })
    }

    /// Waits until every record written so far is acknowledged.
    pub fn flush(&self) -> Result<(), String> {
        self.producer.flush()
    }
}

/// The dead-letter topic: each refused record as it came, with headers saying why and
/// where from (`sluice.reason`, `sluice.pipeline`, `sluice.source`, `sluice.topic`,
/// `sluice.partition`, `sluice.offset`, `sluice.operator`, `sluice.plugin-digest`).
pub struct KafkaDeadLetters {
    producer: OutputProducer,
    pipeline: String,
}

impl KafkaDeadLetters {
    pub fn new(
        config: &KafkaDeadLetterConfig,
        pipeline: &str,
        transactions: Option<&TransactionalProducer>,
        stop: &StopSignal,
    ) -> Result<KafkaDeadLetters, KafkaClientError> {
        let producer = match transactions {
            Some(transactions) => transactions.output(&config.topic),
            None => reachable_producer(&config.brokers, &config.topic, &config.properties, "murmur2_random", stop)?,
        };
        Ok(KafkaDeadLetters { producer, pipeline: pipeline.to_owned() })
    }

    pub fn topic(&self) -> &str {
        self.producer.topic()
    }

    pub fn write(&self, letter: &DeadLetter) -> Result<(), String> {
        let record = letter.record.get(0);
        let provenance = provenance_headers(letter, &self.pipeline);
        self.producer.send(OutgoingRecord {
            key: record.as_ref().and_then(Record::key),
            value: record.as_ref().map_or(&[][..], Record::value),
            timestamp: record.as_ref().map(Record::timestamp),
            headers: match &record {
                Some(record) => record_headers(record, Some(provenance)),
                None => Some(provenance),
            },
            partition: None,
        })
    }

    pub fn flush(&self) -> Result<(), String> {
        self.producer.flush()
    }
}

/// An output's own producer, once its brokers have answered (`admin::check_reachable`).
fn reachable_producer(
    brokers: &str,
    topic: &str,
    properties: &KafkaProperties,
    partitioner: &str,
    stop: &StopSignal,
) -> Result<OutputProducer, KafkaClientError> {
    super::admin::check_reachable(brokers, properties, stop)?;
    OutputProducer::new(brokers, topic, properties, &[("partitioner", partitioner)])
}

/// The record's own headers, after `first` if given.
fn record_headers(record: &Record<'_>, first: Option<OwnedHeaders>) -> Option<OwnedHeaders> {
    let mut headers = record.headers().peekable();
    if first.is_none() && headers.peek().is_none() {
        return None;
    }
    let mut owned = first.unwrap_or_default();
    for (name, value) in headers {
        let name = String::from_utf8_lossy(name);
        owned = owned.insert(Header { key: &name, value: Some(value) });
    }
    Some(owned)
}

fn provenance_headers(letter: &DeadLetter, pipeline: &str) -> OwnedHeaders {
    let mut fields: Vec<(&str, String)> =
        vec![("sluice.reason", letter.reason.clone()), ("sluice.pipeline", pipeline.to_owned()), ("sluice.source", letter.source.clone())];
    if let Some((topic, partition)) = &letter.partition {
        fields.push(("sluice.topic", topic.to_string()));
        fields.push(("sluice.partition", partition.to_string()));
    }
    if let Some(position) = letter.position {
        let name = if letter.partition.is_some() { "sluice.offset" } else { "sluice.position" };
        fields.push((name, position.to_string()));
    }
    if let Some(operator) = &letter.operator {
        fields.push(("sluice.operator", operator.clone()));
    }
    if let Some(digest) = &letter.plugin_digest {
        fields.push(("sluice.plugin-digest", digest.clone()));
    }
    fields.iter().fold(OwnedHeaders::new_with_capacity(fields.len()), |headers, (name, value)| {
        headers.insert(Header { key: name, value: Some(value.as_bytes()) })
    })
}
