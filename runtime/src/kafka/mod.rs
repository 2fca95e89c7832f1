//! Kafka connectors (librdkafka through `rdkafka`): the partitioned source, the sink, the
//! dead-letter topic, the checkpoint store, and the repartition topics of keyed exchanges. Plugins never see Kafka: records reach them
//! as flat batches like any other source's.

mod admin;
mod checkpoint;
mod partitions;
mod producer;
mod repartition;
mod sink;
mod source;
mod transaction;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;

use crate::config::{KafkaProperties, PropertyError};

pub use admin::{ensure_topic, partition_count};
pub use checkpoint::{CheckpointKey, CheckpointStore};
pub use partitions::{KafkaStages, RepartitionStage};
pub use producer::OutputProducer;
pub use repartition::{RepartitionOutput, repartition_topic};
pub use sink::{KafkaDeadLetters, KafkaSink};
pub use source::{KafkaSource, KafkaSourceSettings};
pub use transaction::{TransactionError, TransactionalProducer, transactional_id};

/// Why a Kafka client could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KafkaClientError {
    #[error("{0}")]
    Property(#[from] PropertyError),
    #[error("{what}: {error}")]
    Kafka { what: String, error: KafkaError },
    #[error("{0}")]
    Checkpoint(String),
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
    brokers: &str,
    properties: &KafkaProperties,
    reserved: &[(&str, &'static str)],
    own: &[(&str, &str)],
) -> Result<ClientConfig, KafkaClientError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config.set_log_level(RDKafkaLogLevel::Warning);
    for (property, value) in crate::config::resolve_properties(properties, reserved)? {
        config.set(property, value);
    }
    for (property, value) in own {
        config.set(*property, *value);
    }
    Ok(config)
}

/// librdkafka's logs and errors, through `tracing` (warnings: brokers down, retries).
#[derive(Clone, Default)]
pub struct LoggingContext;

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_kafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("kafka: {error}: {reason}");
    }
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
