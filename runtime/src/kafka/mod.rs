//! Kafka connectors (librdkafka through `rdkafka`): the partitioned source, the sink, the
//! dead-letter topic, the checkpoint store, and the repartition topics of keyed exchanges. Plugins never see Kafka: records reach them
//! as flat batches like any other source's.

mod admin;
mod checkpoint;
mod headers;
mod partitions;
mod producer;
pub(crate) mod repartition;
mod sink;
mod source;
mod transaction;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::BaseProducer;

use crate::config::{KafkaProperties, PropertyError};

pub use admin::{all_topics, check_reachable, ensure_topic};
pub use checkpoint::{CheckpointKey, CheckpointStore};
pub use partitions::{KafkaStages, RepartitionStage};
pub use producer::{OutputProducer, record_size};
pub use repartition::{RepartitionOutput, repartition_topic};
pub use sink::{KafkaDeadLetters, KafkaSink};
pub use source::{KafkaSource, KafkaSourceSettings};
pub use transaction::{TransactionError, TransactionalProducer, round_timeout, transaction_timeout_problem, transactional_id};

/// Why a Kafka client could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    #[error(transparent)]
    Property(#[from] PropertyError),
    #[error("{what}: {error}")]
    Kafka { what: String, error: KafkaError },
    #[error("{0}")]
    Checkpoint(String),
    /// The stop signal came while waiting for the brokers at start.
    #[error("stopped before brokers \"{brokers}\" answered")]
    Stopped { brokers: String },
}

impl KafkaClientError {
    fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> KafkaClientError {
        let what = what.into();
        move |error| KafkaClientError::Kafka { what, error }
    }
}

/// A librdkafka configuration: `brokers`, the user's properties (environment variables read,
/// names Sluice manages refused), then Sluice's own settings.
pub fn client_config(
    kind: ClientKind,
    brokers: &str,
    properties: &KafkaProperties,
    reserved: &[(&str, &'static str)],
    own: &[(&str, &str)],
) -> Result<ClientConfig, KafkaClientError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config.set_log_level(RDKafkaLogLevel::Warning);
    for (property, value) in crate::config::resolve_properties(properties, reserved)? {
        if kind.takes(&property) {
            // Asking for librdkafka's debug contexts means wanting its debug messages.
            if property == "debug" {
                config.set_log_level(RDKafkaLogLevel::Debug);
            }
            config.set(property, value);
        }
    }
    for (property, value) in own {
        config.set(*property, *value);
    }
    Ok(config)
}

/// Why librdkafka refuses one property, if it does (an unknown name, a value it cannot take),
/// read alone as librdkafka reads a configuration.
///
/// A number librdkafka would read as another is refused too: a fraction given to a property of
/// whole numbers, which it cuts, or `010`, which it reads as octal. Properties that hold
/// fractions (`linger.ms`) read back with a fraction or exponent and are not compared.
pub fn property_problem(property: &str, value: &str) -> Option<String> {
    let mut config = ClientConfig::new();
    config.set(property, value);
    let native = match config.create_native_config() {
        Ok(native) => native,
        Err(error) => return Some(format!("librdkafka refuses it: {}", client_error_message(error))),
    };
    let given = value.trim().parse::<f64>().ok().filter(|given| given.is_finite())?;
    let read = native.get(property).ok()?;
    let read = read.trim();
    let digits = read.strip_prefix('-').unwrap_or(read);
    let integer_property = !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit());
    match read.parse::<f64>() {
        Ok(number) if integer_property && number != given => {
            Some(format!("librdkafka would read {value} as {read}: give it a whole number, in decimal"))
        }
        _ => None,
    }
}

/// Why librdkafka refuses to create a client of `kind` from these properties (those it takes)
/// and Sluice's own settings, if it does: the rules between properties, such as
/// `max.poll.interval.ms` at least `session.timeout.ms`, or `acks = all` for the idempotent
/// producer. No broker is named, so nothing connects. Properties that cannot be resolved
/// (reserved, a variable unset) are left to their own checks.
pub fn client_problem(kind: ClientKind, properties: &KafkaProperties) -> Option<String> {
    let mut client = ClientConfig::new();
    client.set_log_level(RDKafkaLogLevel::Emerg);
    for (property, value) in properties.iter().filter(|(property, _)| kind.takes(property)) {
        if let Ok(value) = crate::config::resolve_property(property, value, &[]) {
            client.set(property, value);
        }
    }
    let created = match kind {
        ClientKind::Consumer => {
            for (property, value) in source::consumer_settings("sluice-validate", "earliest", "0", properties) {
                client.set(property, value);
            }
            client.create_with_context::<_, BaseConsumer<QuietContext>>(QuietContext).map(drop)
        }
        ClientKind::Producer => {
            client.set("enable.idempotence", "true");
            client.create_with_context::<_, BaseProducer<QuietContext>>(QuietContext).map(drop)
        }
        ClientKind::Metadata => Ok(()),
    };
    created.err().map(client_error_message)
}

fn client_error_message(error: KafkaError) -> String {
    let message = match error {
        KafkaError::ClientConfig(_, message, _, _) | KafkaError::ClientCreation(message) => message,
        other => other.to_string(),
    };
    // librdkafka ends some messages with a newline and writes "`a`must be" in one.
    message.trim_end().replace("`must", "` must")
}

/// The context of a client made only to be checked: it logs nothing (no brokers are named).
struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}

    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

impl rdkafka::producer::ProducerContext for QuietContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _report: &rdkafka::message::DeliveryResult<'_>, _opaque: ()) {}
}

/// The kind of librdkafka client a configuration is for. A connector's `properties` serve
/// every client Sluice runs for it (a source's consumer, and its checkpoint and repartition
/// producers), and each client takes those of its kind and the common ones: a consumer
/// property given to a producer makes librdkafka warn (CONFWARN) at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Consumer,
    Producer,
    /// Metadata and admin clients: the common properties only (connection, security).
    Metadata,
}

impl ClientKind {
    fn takes(self, property: &str) -> bool {
        let consumer = CONSUMER_ONLY_PROPERTIES.contains(&property);
        let producer = PRODUCER_ONLY_PROPERTIES.contains(&property);
        match self {
            ClientKind::Consumer => !producer,
            ClientKind::Producer => !consumer,
            ClientKind::Metadata => !consumer && !producer,
        }
    }
}

/// The largest message a producer with `properties` writes: `message.max.bytes`, librdkafka's
/// default 1,000,000 when not given.
pub fn message_limit(properties: &KafkaProperties) -> usize {
    let given = match properties.get("message.max.bytes") {
        Some(crate::config::PropertyValue::Integer(bytes)) => usize::try_from(*bytes).ok(),
        Some(crate::config::PropertyValue::Text(bytes)) => bytes.trim().parse().ok(),
        _ => None,
    };
    given.unwrap_or(1_000_000)
}

/// Whether `property` is one of librdkafka's consumer-only properties: a producer ignores it.
pub fn is_consumer_only(property: &str) -> bool {
    CONSUMER_ONLY_PROPERTIES.contains(&property)
}

/// librdkafka's consumer-only properties (scope `C` in its CONFIGURATION.md, 2.12).
const CONSUMER_ONLY_PROPERTIES: &[&str] = &[
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "check.crcs",
    "consume.callback.max.messages",
    "coordinator.query.interval.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.queue.backoff.ms",
    "fetch.wait.max.ms",
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.type",
    "group.remote.assignor",
    "heartbeat.interval.ms",
    "isolation.level",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "max.poll.records",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "partition.assignment.strategy",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "session.timeout.ms",
    "share.acknowledgement.mode",
];

/// librdkafka's producer-only properties (scope `P` in its CONFIGURATION.md, 2.12).
const PRODUCER_ONLY_PROPERTIES: &[&str] = &[
    "acks",
    "batch.num.messages",
    "batch.size",
    "compression.codec",
    "compression.level",
    "compression.type",
    "delivery.report.only.error",
    "delivery.timeout.ms",
    "enable.gapless.guarantee",
    "enable.idempotence",
    "linger.ms",
    "message.send.max.retries",
    "message.timeout.ms",
    "partitioner",
    "produce.offset.report",
    "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queuing.strategy",
    "request.required.acks",
    "request.timeout.ms",
    "retries",
    "sticky.partitioning.linger.ms",
    "transaction.timeout.ms",
    "transactional.id",
];

/// librdkafka's logs and errors, through `tracing` (warnings: brokers down, retries).
#[derive(Clone, Default)]
pub struct LoggingContext;

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_kafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // rdkafka hands a consumer's error events to its context as well as to the poll that
        // returns them: the end of a partition, which the source asks for to move idle
        // partitions' watermarks on (`enable.partition.eof`), is handled there and no error.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::trace!("kafka: {reason}");
            return;
        }
        match unmatched_pattern(reason) {
            Some(pattern) => tracing::warn!(
                "kafka: no topic matches the source's `pattern` {pattern:?} yet: its topics are read once one exists \
                 (librdkafka: {reason})"
            ),
            None => tracing::warn!("kafka: {error}: {reason}"),
        }
    }
}

/// The pattern in librdkafka's "Subscribed topic not available: ^re: ...", which names a
/// subscription's regular expression as if it were a topic: no topic matches it.
fn unmatched_pattern(reason: &str) -> Option<&str> {
    let rest = reason.split("Subscribed topic not available: ").nth(1)?;
    let pattern = rest.split_once(": ").map_or(rest, |(pattern, _)| pattern);
    pattern.starts_with('^').then_some(pattern)
}

impl rdkafka::consumer::ConsumerContext for LoggingContext {}

fn log_kafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!("kafka {facility}: {message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!("kafka {facility}: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!("kafka {facility}: {message}"),
        RDKafkaLogLevel::Debug => tracing::debug!("kafka {facility}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PropertyValue;

    #[test]
    fn a_pattern_librdkafka_calls_an_unavailable_topic_is_one_no_topic_matches() {
        let reason = "Subscribed topic not available: ^nomatch-.*: Broker: Unknown topic or partition";
        assert_eq!(unmatched_pattern(reason), Some("^nomatch-.*"));
        assert_eq!(unmatched_pattern("Subscribed topic not available: orders: Broker: Unknown topic or partition"), None);
        assert_eq!(unmatched_pattern("Broker: Unknown topic or partition"), None);
    }

    fn log_level(properties: &[(&str, &str)]) -> RDKafkaLogLevel {
        let properties: KafkaProperties =
            properties.iter().map(|(name, value)| (name.to_string(), PropertyValue::Text(value.to_string()))).collect();
        client_config(ClientKind::Consumer, "127.0.0.1:9092", &properties, &[], &[]).expect("a configuration").log_level
    }

    #[test]
    fn librdkafka_logs_warnings_unless_debug_contexts_are_asked_for() {
        assert!(matches!(log_level(&[]), RDKafkaLogLevel::Warning));
        assert!(matches!(log_level(&[("fetch.wait.max.ms", "100")]), RDKafkaLogLevel::Warning));
        assert!(matches!(log_level(&[("debug", "fetch,topic")]), RDKafkaLogLevel::Debug));
    }
}
