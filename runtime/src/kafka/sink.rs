//! Writing to Kafka: output records as they are, and dead letters with their provenance.

use rdkafka::message::{Header, OwnedHeaders};

use super::KafkaClientError;
use super::producer::{OutgoingRecord, OutputProducer, message_size};
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

    /// Writes the letter; one larger than the topic takes (a record refused by a Kafka sink
    /// for its size, at the same `message.max.bytes`) is cut to fit (`cut_to_fit`).
    pub fn write(&self, letter: &DeadLetter) -> Result<(), String> {
        let record = letter.record.get(0);
        let provenance = provenance_headers(letter, &self.pipeline);
        let key = record.as_ref().and_then(Record::key);
        let value = record.as_ref().map_or(&[][..], Record::value);
        let timestamp = record.as_ref().map(Record::timestamp);
        let headers = match &record {
            Some(record) => record_headers(record, Some(provenance)),
            None => Some(provenance),
        };
        let limit = self.producer.limit();
        if message_size(key, value, headers.as_ref()) <= limit {
            return self.producer.send(OutgoingRecord { key, value, timestamp, headers, partition: None });
        }
        let (key, value, headers) = cut_to_fit(letter, &self.pipeline, key, value, limit);
        self.producer.send(OutgoingRecord { key, value, timestamp, headers: Some(headers), partition: None })
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

/// The record's own headers, after `provenance` if given (a dead letter's): then the record's
/// own headers of the names provenance headers have (a dead letter driven back into the
/// input, say) are left out, so that a reader that keeps the last (or the first) of a name
/// reads this letter's.
fn record_headers(record: &Record<'_>, provenance: Option<OwnedHeaders>) -> Option<OwnedHeaders> {
    let mut headers = record.headers().peekable();
    if provenance.is_none() && headers.peek().is_none() {
        return None;
    }
    let replaces = provenance.is_some();
    let mut owned = provenance.unwrap_or_default();
    for (name, value) in headers {
        let name = String::from_utf8_lossy(name);
        if replaces && PROVENANCE_HEADERS.contains(&name.as_ref()) {
            continue;
        }
        owned = owned.insert(Header { key: &name, value: Some(value) });
    }
    Some(owned)
}

/// Every header a dead letter's provenance may have.
const PROVENANCE_HEADERS: [&str; 10] = [
    "sluice.reason",
    "sluice.pipeline",
    "sluice.source",
    "sluice.topic",
    "sluice.partition",
    "sluice.offset",
    "sluice.position",
    "sluice.operator",
    "sluice.plugin-digest",
    "sluice.cut",
];

/// A dead letter cut to `limit` bytes: the provenance headers, a `sluice.cut` header saying
/// what was cut, and as much of the key and then the value as fits (the record's own headers
/// are left out).
fn cut_to_fit<'a>(
    letter: &DeadLetter,
    pipeline: &str,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    limit: usize,
) -> (Option<&'a [u8]>, &'a [u8], OwnedHeaders) {
    let (key_bytes, value_bytes) = (key.map_or(0, <[u8]>::len), value.len());
    let cut = |kept_key: usize, kept_value: usize| {
        let note = format!(
            "the letter was too large for this topic (message.max.bytes = {limit}): the record's headers are left out, its key \
             ({key_bytes} bytes) is cut to its first {kept_key} bytes and its value ({value_bytes} bytes) to its first {kept_value}"
        );
        provenance_headers(letter, pipeline).insert(Header { key: "sluice.cut", value: Some(note.as_bytes()) })
    };
    // The room left once the headers (with the longest note) are written.
    let room = limit.saturating_sub(message_size(None, &[], Some(&cut(key_bytes, value_bytes))));
    let kept_key = key_bytes.min(room);
    let kept_value = value_bytes.min(room - kept_key);
    (key.map(|key| &key[..kept_key]), &value[..kept_value], cut(kept_key, kept_value))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::Batch;
    use rdkafka::message::Headers as _;

    fn letter(key: &[u8], value: &[u8]) -> DeadLetter {
        let mut record = Batch::new();
        record.push(Some(key), value, 1, [(&b"trace"[..], &b"x"[..])]);
        DeadLetter::from_source("orders", 7, record, "too large".to_owned(), "sink")
    }

    #[test]
    fn a_letter_too_large_for_its_topic_is_cut_to_fit_and_says_so() {
        let value = vec![b'v'; 5_000];
        let letter = letter(b"user-1", &value);
        let (key, kept, headers) = cut_to_fit(&letter, "p", Some(b"user-1"), &value, 2_000);
        assert_eq!(key, Some(&b"user-1"[..]), "a short key is kept whole");
        assert!(!kept.is_empty() && kept.len() < 2_000, "as much of the value as fits: {}", kept.len());
        assert!(message_size(key, kept, Some(&headers)) <= 2_000, "the letter fits");
        let note = headers.iter().find(|header| header.key == "sluice.cut").and_then(|header| header.value).unwrap_or_default();
        let note = String::from_utf8_lossy(note);
        assert!(note.contains("value (5000 bytes) to its first") && note.contains("message.max.bytes = 2000"), "{note}");
    }

    #[test]
    fn a_limit_below_the_headers_leaves_key_and_value_empty() {
        let letter = letter(b"user-1", b"{}");
        let (key, kept, _) = cut_to_fit(&letter, "p", Some(b"user-1"), b"{}", 10);
        assert_eq!((key, kept), (Some(&b""[..]), &b""[..]));
    }
}
