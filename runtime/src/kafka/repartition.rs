//! Repartition topics: the keyed exchanges of a Kafka pipeline, as Kafka Streams has them.
//! A task sends each record to the partition of its key (Kafka's murmur2, as Java's default
//! partitioner) with headers naming the task and numbering the record, and, whenever its event
//! time advances, a watermark marker to every partition. The stage behind the exchange reads
//! the topic in the pipeline's consumer group, a task per partition, like a source: its
//! watermark is the least of every upstream task's markers, and it drops what an upstream
//! sends again after a restart (a sequence number it has applied already).

use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};

use super::producer::{InFlight, OutgoingRecord, OutputProducer, message_size};
use crate::pipeline::{Barrier, ExchangeOutput, ExchangeRouting, OutputClosed, SourcePositions, Unroutable, partition_of};
use crate::wasm::Batch;

/// The sending task (`topic/partition` of its input).
pub const ORIGIN_HEADER: &str = "sluice.origin";
/// The record's number in the sending task's output.
pub const SEQUENCE_HEADER: &str = "sluice.seq";
/// Which input of the exchange's operator the record is for.
pub const INPUT_HEADER: &str = "sluice.input";
/// The digest of what decided the record (the sender's operators and settings,
/// `sequences::sender_digest`), 16 hex digits: numbers are compared within one digest.
pub const SENT_BY_HEADER: &str = "sluice.by";
/// A watermark marker: the sending task's event time, in milliseconds.
pub const WATERMARK_HEADER: &str = "sluice.watermark";

/// The repartition topic of the exchange in front of `operator`, for the consumer group
/// `group`: `<pipeline>-<operator>-repartition` for the pipeline's own group (its name), and
/// `<pipeline>-<operator>-repartition.<group>` for another, so that two groups running one
/// pipeline (two deployments, a reprocessing) never read each other's records. Characters a
/// topic name cannot hold become `_`, and the group's digest is added when any did.
pub fn repartition_topic(pipeline: &str, group: &str, operator: &str) -> String {
    let topic = format!("{pipeline}-{operator}-repartition");
    if group == pipeline {
        return topic;
    }
    let allowed = |character: char| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-');
    let named: String = group.chars().map(|character| if allowed(character) { character } else { '_' }).collect();
    let distinct = if named == group { named } else { format!("{named}-{}", &group_digest(group)[..8]) };
    // Topic names have at most 249 characters; a group too long for one is named by digest.
    let grouped = format!("{topic}.{distinct}");
    if grouped.len() <= 249 { grouped } else { format!("{topic}.{}", group_digest(group)) }
}

fn group_digest(group: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(group.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One task's side of a repartition topic.
pub struct RepartitionOutput {
    producer: Arc<OutputProducer>,
    /// This task's records not yet acknowledged (the producer is the process's).
    in_flight: Arc<InFlight>,
    partitions: u32,
    routing: ExchangeRouting,
    /// The sending task, as its records' origin.
    origin: String,
    /// The repartition topic (what names its records' sequence numbers in checkpoints).
    topic: String,
    key: String,
    /// `SENT_BY_HEADER`'s value (empty: none sent).
    sent_by: String,
}

impl RepartitionOutput {
    pub fn new(
        producer: Arc<OutputProducer>,
        topic: String,
        partitions: u32,
        routing: ExchangeRouting,
        origin: String,
    ) -> RepartitionOutput {
        let partitions = partitions.max(1);
        RepartitionOutput {
            producer,
            in_flight: Arc::default(),
            partitions,
            routing,
            origin,
            topic,
            key: String::new(),
            sent_by: String::new(),
        }
    }

    fn partition(&mut self, value: &[u8]) -> Result<u32, String> {
        match &self.routing {
            ExchangeRouting::Single => Ok(0),
            ExchangeRouting::Key(selector) => {
                selector.write(value, &mut self.key)?;
                Ok(partition_of(self.key.as_bytes(), self.partitions))
            }
        }
    }

    fn failed(&self, error: &str) -> OutputClosed {
        tracing::error!(topic = self.producer.topic(), "cannot write to the repartition topic: {error}");
        OutputClosed::Exchange
    }
}

impl ExchangeOutput for RepartitionOutput {
    fn stream(&self) -> &str {
        &self.topic
    }

    fn routing(&self) -> String {
        let routing = match &self.routing {
            ExchangeRouting::Single => "single".to_owned(),
            ExchangeRouting::Key(selector) => format!("key {:?}", selector.fields()),
        };
        format!("{routing} over {} partitions", self.partitions)
    }

    fn sent_by(&mut self, digest: u64) {
        self.sent_by = if digest == 0 { String::new() } else { format!("{digest:016x}") };
    }

    /// Source positions stay behind: the stage reading the topic knows its records by their
    /// offsets in it.
    fn send(
        &mut self,
        input: u32,
        batch: Batch,
        _positions: SourcePositions<'_>,
        sequence: &mut u64,
    ) -> Result<Vec<Unroutable>, OutputClosed> {
        let mut unroutable = Vec::new();
        let input_text = input.to_string();
        for record in batch.iter() {
            let partition = match self.partition(record.value()) {
                Ok(partition) => partition,
                Err(reason) => {
                    let reason = format!("cannot route the record by its key: {reason}");
                    unroutable.push(Unroutable { index: record.index(), record: batch.single(record.index()), reason });
                    continue;
                }
            };
            let next = *sequence + 1;
            let sequence_text = next.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: ORIGIN_HEADER, value: Some(self.origin.as_bytes()) })
                .insert(Header { key: SEQUENCE_HEADER, value: Some(sequence_text.as_bytes()) })
                .insert(Header { key: INPUT_HEADER, value: Some(input_text.as_bytes()) });
            if !self.sent_by.is_empty() {
                headers = headers.insert(Header { key: SENT_BY_HEADER, value: Some(self.sent_by.as_bytes()) });
            }
            for (name, value) in record.headers() {
                headers = headers.insert(Header { key: &String::from_utf8_lossy(name), value: Some(value) });
            }
            // librdkafka would refuse it at every replay, stopping the run each time.
            let size = message_size(record.key(), record.value(), Some(&headers));
            if size > self.producer.limit() {
                // Exactly-once, the transactional producer writes them, with the outputs' properties.
                let whose = if self.producer.is_transactional() { "the outputs'" } else { "the source's" };
                let reason = format!(
                    "the record is {size} bytes (key, value and headers), more than the repartition topic {} takes \
                     (message.max.bytes = {}): raise {whose} message.max.bytes, and the topic's max.message.bytes, to send \
                     such records through a keyed exchange",
                    self.topic,
                    self.producer.limit()
                );
                unroutable.push(Unroutable { index: record.index(), record: batch.single(record.index()), reason });
                continue;
            }
            *sequence = next;
            let outgoing = OutgoingRecord {
                key: record.key(),
                value: record.value(),
                timestamp: Some(record.timestamp()),
                headers: Some(headers),
                partition: Some(partition as i32),
            };
            self.producer.send_counted(outgoing, &self.in_flight).map_err(|error| self.failed(&error))?;
        }
        Ok(unroutable)
    }

    fn watermark(&mut self, watermark: i64) -> Result<(), OutputClosed> {
        let text = watermark.to_string();
        for partition in 0..self.partitions {
            let headers = OwnedHeaders::new()
                .insert(Header { key: ORIGIN_HEADER, value: Some(self.origin.as_bytes()) })
                .insert(Header { key: WATERMARK_HEADER, value: Some(text.as_bytes()) });
            let marker =
                OutgoingRecord { key: None, value: &[], timestamp: None, headers: Some(headers), partition: Some(partition as i32) };
            self.producer.send_counted(marker, &self.in_flight).map_err(|error| self.failed(&error))?;
        }
        Ok(())
    }

    /// A Kafka task checkpoints alone; the stage behind the topic checkpoints its own partitions.
    fn barrier(&mut self, _barrier: Barrier) -> Result<(), OutputClosed> {
        Ok(())
    }

    fn end(&mut self) -> Result<(), OutputClosed> {
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputClosed> {
        self.producer.flush_counted(&self.in_flight).map_err(|error| self.failed(&error))
    }
}

/// What a record read from a repartition topic is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A watermark marker of an upstream task.
    Marker { origin: String, watermark: i64 },
    /// A record of an upstream task, for an input of the exchange's operator.
    Record { origin: String, sequence: u64, input: u32, by: u64 },
}

/// Reads the Sluice headers of a repartition record; `None` if they are missing or garbled
/// (a record some other producer wrote into the topic).
pub fn incoming<'a>(headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Option<Incoming> {
    let (mut origin, mut sequence, mut input, mut watermark, mut by) = (None, None, None, None, 0);
    for (name, value) in headers {
        let value = std::str::from_utf8(value).ok();
        match std::str::from_utf8(name) {
            Ok(ORIGIN_HEADER) => origin = value.map(str::to_owned),
            Ok(SEQUENCE_HEADER) => sequence = value.and_then(|value| value.parse().ok()),
            Ok(INPUT_HEADER) => input = value.and_then(|value| value.parse().ok()),
            Ok(WATERMARK_HEADER) => watermark = value.and_then(|value| value.parse().ok()),
            Ok(SENT_BY_HEADER) => by = value.and_then(|value| u64::from_str_radix(value, 16).ok()).unwrap_or(0),
            _ => {}
        }
    }
    match (origin, watermark, sequence, input) {
        (Some(origin), Some(watermark), _, _) => Some(Incoming::Marker { origin, watermark }),
        (Some(origin), None, Some(sequence), Some(input)) => Some(Incoming::Record { origin, sequence, input, by }),
        _ => None,
    }
}

/// Whether a header is one of Sluice's own (dropped before the record reaches an operator).
pub fn is_sluice_header(name: &[u8]) -> bool {
    [ORIGIN_HEADER, SEQUENCE_HEADER, INPUT_HEADER, WATERMARK_HEADER, SENT_BY_HEADER].iter().any(|sluice| sluice.as_bytes() == name)
}

#[cfg(test)]
mod tests {
    use super::repartition_topic;

    #[test]
    fn each_consumer_group_has_its_own_repartition_topics() {
        assert_eq!(repartition_topic("sales", "sales", "per-user"), "sales-per-user-repartition", "the pipeline's own group");
        assert_eq!(repartition_topic("sales", "reprocess-2", "per-user"), "sales-per-user-repartition.reprocess-2");
        let odd = repartition_topic("sales", "team/a b", "per-user");
        assert!(odd.starts_with("sales-per-user-repartition.team_a_b-"), "{odd}");
        assert_ne!(odd, repartition_topic("sales", "team_a_b", "per-user"), "groups that read alike stay apart");
        let long = repartition_topic("sales", &"g".repeat(300), "per-user");
        assert!(long.len() <= 249, "{}", long.len());
    }
}
