//! Topics Sluice creates itself: the checkpoint topic and the repartition topics.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::{KafkaClientError, LoggingContext};
use crate::config::KafkaProperties;
use crate::pipeline::StopSignal;

/// Longest wait for broker metadata and topic creation.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a failed request for the brokers' topics is logged while it is asked again.
const METADATA_WARNING: Duration = Duration::from_secs(5);
/// One request for the brokers' topics: the stop signal is looked at between two.
const METADATA_ATTEMPT: Duration = Duration::from_secs(1);

/// Creates `topic` on `brokers` with `partitions` partitions (compacted if asked) unless it
/// exists; returns how many partitions it has.
pub fn ensure_topic(
    brokers: &str,
    properties: &KafkaProperties,
    topic: &str,
    partitions: u32,
    compacted: bool,
) -> Result<u32, KafkaClientError> {
    let config = super::client_config(super::ClientKind::Metadata, brokers, properties, &[], &[])?;
    if let Some(existing) = partition_count(&config, topic)? {
        return Ok(existing);
    }
    let admin: AdminClient<LoggingContext> =
        config.create_with_context(LoggingContext).map_err(KafkaClientError::kafka("cannot create an admin client"))?;
    let count = i32::try_from(partitions.max(1)).unwrap_or(i32::MAX);
    let mut new_topic = NewTopic::new(topic, count, TopicReplication::Fixed(-1));
    if compacted {
        new_topic = new_topic.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| KafkaClientError::Checkpoint(format!("cannot start the admin runtime: {error}")))?;
    let created = runtime.block_on(admin.create_topics([&new_topic], &options));
    match created.as_deref() {
        Ok([Ok(_)]) | Ok([Err((_, RDKafkaErrorCode::TopicAlreadyExists))]) => {
            tracing::info!(topic, partitions = count, "created topic");
            Ok(partition_count(&config, topic)?.unwrap_or(partitions))
        }
        Ok(results) => Err(KafkaClientError::Checkpoint(format!("cannot create topic \"{topic}\": {results:?}"))),
        Err(error) => Err(KafkaClientError::Checkpoint(format!("cannot create topic \"{topic}\": {error}"))),
    }
}

/// A consumer that only asks for metadata, made from a metadata client's `config` (the
/// connection and security properties of a source or sink). It fetches nothing, but librdkafka
/// still wants its `fetch.max.bytes` (a consumer's own property, not given to it) 512 bytes
/// within a `receive.message.max.bytes` the source may have lowered: it is set to fit.
pub fn metadata_consumer(config: &ClientConfig) -> Result<BaseConsumer<LoggingContext>, KafkaClientError> {
    let mut config = config.clone();
    if let Some(receive) = config.get("receive.message.max.bytes").and_then(|value| value.trim().parse::<u64>().ok()) {
        // `fetch.max.bytes` set must also be at least `message.max.bytes` (1,000,000 unless given).
        let fetch = receive.saturating_sub(512);
        let message = config.get("message.max.bytes").and_then(|value| value.trim().parse::<u64>().ok()).unwrap_or(1_000_000);
        config.set("fetch.max.bytes", fetch.to_string()).set("message.max.bytes", message.min(fetch).to_string());
    }
    config.create_with_context(LoggingContext).map_err(KafkaClientError::kafka("cannot create a metadata client"))
}

/// How many partitions `topic` has; `None` if it does not exist. Asked by a consumer that
/// may not create topics, so that asking never creates one with the broker's defaults.
pub fn partition_count(config: &ClientConfig, topic: &str) -> Result<Option<u32>, KafkaClientError> {
    let mut config = config.clone();
    config.set("allow.auto.create.topics", "false");
    let client = metadata_consumer(&config)?;
    let metadata = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(KafkaClientError::kafka(format!("cannot reach the brokers for topic \"{topic}\"")))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic && found.error().is_none() && !found.partitions().is_empty())
        .map(|found| found.partitions().len() as u32))
}

/// Fails, within 30 s, unless `brokers` answer a metadata request: a producer alone would queue
/// records for its `message.timeout.ms` (5 minutes) and say nothing meanwhile.
pub fn check_reachable(brokers: &str, properties: &KafkaProperties, stop: &StopSignal) -> Result<(), KafkaClientError> {
    let config = super::client_config(super::ClientKind::Metadata, brokers, properties, &[], &[])?;
    all_topics(&config, stop).map(drop)
}

/// Every topic the brokers have, with its partition count, in one metadata request. Brokers
/// that do not answer are asked again for 30 s, unless `stop` is raised meanwhile.
pub fn all_topics(config: &ClientConfig, stop: &StopSignal) -> Result<Vec<(String, u32)>, KafkaClientError> {
    let client = metadata_consumer(config)?;
    let brokers = config.get("bootstrap.servers").unwrap_or_default();
    let what = format!(
        "cannot list the topics of brokers \"{brokers}\" within {} s (check the address, that a broker listens on it, and the \
         connection's security properties)",
        METADATA_TIMEOUT.as_secs()
    );
    // Asked in one-second attempts, so that a stop is seen within a second, and a failure said
    // every 5 s: the wait for brokers that are not there (a wrong address) shows in the log
    // within seconds, not after the whole limit.
    let started = Instant::now();
    let deadline = started + METADATA_TIMEOUT;
    let mut next_warning = started + METADATA_WARNING;
    let metadata = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let last = remaining <= METADATA_ATTEMPT;
        match client.fetch_metadata(None, remaining.min(METADATA_ATTEMPT)) {
            Ok(metadata) => break metadata,
            Err(error) if last => return Err(KafkaClientError::kafka(what)(error)),
            Err(_) if stop.is_raised() => return Err(KafkaClientError::Stopped { brokers: brokers.to_owned() }),
            Err(error) if Instant::now() >= next_warning => {
                next_warning += METADATA_WARNING;
                tracing::warn!(
                    brokers,
                    "no answer from the brokers yet ({error}); asking again until {} s have passed",
                    METADATA_TIMEOUT.as_secs()
                );
            }
            Err(_) => {}
        }
    };
    Ok(metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none())
        .map(|topic| (topic.name().to_owned(), topic.partitions().len() as u32))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that lowers `receive.message.max.bytes` gives it to its metadata clients, but
    /// not its consumer's own `fetch.max.bytes`: librdkafka would refuse the pair.
    #[test]
    fn a_metadata_consumer_fits_a_lowered_receive_message_max_bytes() {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1").set("receive.message.max.bytes", "2000000");
        let plain: Result<BaseConsumer<LoggingContext>, _> = config.create_with_context(LoggingContext);
        assert!(plain.is_err(), "librdkafka refuses it with its default fetch.max.bytes");
        assert!(metadata_consumer(&config).is_ok());
        config.set("receive.message.max.bytes", "100000");
        assert!(metadata_consumer(&config).is_ok(), "below the default message.max.bytes too");
    }
}
