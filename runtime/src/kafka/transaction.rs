//! Kafka transactions for `delivery = "exactly-once"`: one transactional producer carries
//! every output record, dead letter and checkpoint record of a Kafka source; the source
//! commits it, with the consumer offsets, once all partition tasks have reached the same
//! barrier (see `partitions/exactly_once.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{Producer, ThreadedProducer};

use super::KafkaClientError;
use super::producer::{DeliveryContext, OutputProducer};
use crate::config::{KafkaProperties, RESERVED_PRODUCER_PROPERTIES, resolve_property};

/// Longest wait for one transactional call (librdkafka retries inside it).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The least wait for every partition task to reach a round's barrier.
const MIN_ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest: a transaction lives for the checkpoint interval plus a round, within the
/// brokers' `transaction.max.timeout.ms` (15 minutes by default).
const MAX_ROUND_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a round waits for every partition task to reach its barrier with its checkpoint:
/// `round_limit` (`PipelineFileConfig::round_limit`: a watermark's calls under way, then the
/// snapshots, and a margin), from 1 to 10 minutes.
pub fn round_timeout(round_limit: Duration) -> Duration {
    round_limit.clamp(MIN_ROUND_TIMEOUT, MAX_ROUND_TIMEOUT)
}

/// The transactional id of a process running `source` of `pipeline`:
/// `sluice-<pipeline>-<source>-<instance>`. The instance is `SLUICE_INSTANCE` if set, else the
/// host name; it must stay the same across restarts of one process (so that a restart fences
/// its predecessor and aborts its open transaction) and differ between processes.
pub fn transactional_id(pipeline: &str, source: &str) -> String {
    let instance = std::env::var("SLUICE_INSTANCE")
        .ok()
        .filter(|instance| !instance.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|name| name.trim().to_owned()))
        .filter(|instance| !instance.is_empty())
        .unwrap_or_else(|| "0".into());
    format!("sluice-{pipeline}-{source}-{instance}")
}

/// `transaction.timeout.ms` to set (None: the user's value, long enough), so that the broker
/// never aborts a transaction that is still collecting a round.
fn transaction_lifetime(
    properties: &KafkaProperties,
    checkpoint_interval: Duration,
    round_timeout: Duration,
) -> Result<Option<String>, KafkaClientError> {
    let needed = checkpoint_interval + round_timeout + TRANSACTION_TIMEOUT;
    let Some(value) = properties.get("transaction.timeout.ms") else { return Ok(Some(needed.as_millis().to_string())) };
    let given = resolve_property("transaction.timeout.ms", value, &[])?;
    match given.trim().parse::<u128>() {
        Ok(millis) if millis > needed.as_millis() => Ok(None),
        _ => Err(KafkaClientError::Checkpoint(format!(
            "property \"transaction.timeout.ms\" = {given} is too short: a transaction lives for checkpoint_interval plus up to \
             {} s of a round, so give more than {} ms (or leave it out)",
            (round_timeout + TRANSACTION_TIMEOUT).as_secs(),
            needed.as_millis()
        ))),
    }
}

/// Why `properties` set a `transaction.timeout.ms` too short for `checkpoint_interval`, if
/// they do: what `validate` says of an exactly-once output, at its property.
pub fn transaction_timeout_problem(properties: &KafkaProperties, checkpoint_interval: Duration, round_timeout: Duration) -> Option<String> {
    match transaction_lifetime(properties, checkpoint_interval, round_timeout) {
        Err(KafkaClientError::Checkpoint(problem)) => Some(problem),
        _ => None,
    }
}

/// How a transaction ended, when it did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// Aborted: its outputs are discarded, and the tasks go back to the last committed
    /// checkpoints.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The producer cannot go on, typically fenced by a newer process with the same
    /// transactional id.
    #[error("transactions cannot go on: {0}")]
    Fatal(String),
}

/// The transactional producer of an exactly-once pipeline; always inside a transaction.
pub struct TransactionalProducer {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    id: String,
    committed: AtomicU64,
    aborted: AtomicU64,
    /// How long a round waits for every partition task (see [`round_timeout`]).
    round_timeout: Duration,
    /// The largest message it writes (`message.max.bytes`).
    limit: usize,
}

impl TransactionalProducer {
    /// Connects with `transactional.id` = `id`, fences older producers with that id (their
    /// open transaction is aborted), and begins the first transaction.
    /// A transaction lives for `checkpoint_interval` plus a round (`round_timeout`):
    /// `transaction.timeout.ms` is set to outlast that, and a smaller value given in
    /// `properties` is refused.
    pub fn open(
        brokers: &str,
        properties: &KafkaProperties,
        id: &str,
        checkpoint_interval: Duration,
        round_timeout: Duration,
    ) -> Result<Arc<TransactionalProducer>, KafkaClientError> {
        let lifetime = transaction_lifetime(properties, checkpoint_interval, round_timeout)?;
        let mut settings =
            vec![("enable.idempotence", "true"), ("transactional.id", id), ("linger.ms", "5"), ("partitioner", "murmur2_random")];
        if let Some(lifetime) = &lifetime {
            settings.push(("transaction.timeout.ms", lifetime));
        }
        let config = super::client_config(super::ClientKind::Producer, brokers, properties, RESERVED_PRODUCER_PROPERTIES, &settings)?;
        let producer: ThreadedProducer<DeliveryContext> = config
            .create_with_context(DeliveryContext::default())
            .map_err(KafkaClientError::kafka("cannot create the transactional producer"))?;
        producer.init_transactions(TRANSACTION_TIMEOUT).map_err(KafkaClientError::kafka(format!(
            "cannot start transactions (transactional.id \"{id}\"); delivery = \"exactly-once\" needs a broker that supports them, \
             and, where the brokers check ACLs, WRITE permission on that transactional id"
        )))?;
        producer.begin_transaction().map_err(KafkaClientError::kafka("cannot begin a transaction"))?;
        tracing::info!(transactional_id = id, "transactions started");
        Ok(Arc::new(TransactionalProducer {
            producer: Arc::new(producer),
            id: id.to_owned(),
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            round_timeout,
            limit: super::message_limit(properties),
        }))
    }

    /// How long a round waits for every partition task to reach its barrier.
    pub fn round_timeout(&self) -> Duration {
        self.round_timeout
    }

    /// A producer for `topic` whose records join the current transaction.
    pub fn output(&self, topic: &str) -> OutputProducer {
        OutputProducer::transactional(self.producer.clone(), topic, self.limit)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Transactions committed and aborted so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.committed.load(Ordering::Relaxed), self.aborted.load(Ordering::Relaxed))
    }

    /// Commits the current transaction with the consumer `offsets` of `group`, then begins
    /// the next. A transaction that cannot commit is aborted, and no next one begins: the
    /// caller first stops everything that wrote into it, then calls `begin_next`.
    pub fn commit(&self, offsets: &TopicPartitionList, group: &ConsumerGroupMetadata) -> Result<(), TransactionError> {
        if let Some(fatal) = self.fatal_error() {
            return Err(fatal);
        }
        if let Some(failure) = self.producer.context().take_failure() {
            return Err(self.abort(format!("a record could not be written: {failure}")));
        }
        let committed = self
            .producer
            .send_offsets_to_transaction(offsets, group, TRANSACTION_TIMEOUT)
            .and_then(|()| self.commit_retrying())
            .map_err(|error| self.classify(error));
        match committed {
            Ok(()) => {
                self.committed.fetch_add(1, Ordering::Relaxed);
                self.begin()
            }
            Err(TransactionError::Aborted(reason)) => Err(self.abort(reason)),
            Err(fatal) => Err(fatal),
        }
    }

    /// Aborts the current transaction (its records are never visible to `read_committed`
    /// readers); returns how it ended. Until `begin_next`, records sent are refused.
    pub fn abort(&self, reason: String) -> TransactionError {
        if let Some(fatal) = self.fatal_error() {
            return fatal;
        }
        tracing::warn!(transactional_id = %self.id, "aborting the transaction: {reason}");
        if let Err(error) = self.producer.abort_transaction(TRANSACTION_TIMEOUT) {
            return TransactionError::Fatal(format!("{reason}; then the abort failed: {error}"));
        }
        self.aborted.fetch_add(1, Ordering::Relaxed);
        TransactionError::Aborted(reason)
    }

    /// Begins a transaction after an abort, once nothing from the aborted one can still be
    /// sent; failures of records refused meanwhile are forgotten.
    pub fn begin_next(&self) -> Result<(), TransactionError> {
        self.producer.context().take_failure();
        self.begin()
    }

    /// The error that ended this producer for good (it was fenced), if one did.
    pub fn fatal_error(&self) -> Option<TransactionError> {
        let (code, reason) = self.producer.client().fatal_error()?;
        Some(TransactionError::Fatal(format!(
            "{reason} ({code:?}; transactional.id \"{}\": a newer process with the same id fenced this one)",
            self.id
        )))
    }

    /// `commit_transaction`, again while librdkafka says the error is retriable.
    fn commit_retrying(&self) -> Result<(), KafkaError> {
        let mut attempts = 0;
        loop {
            match self.producer.commit_transaction(TRANSACTION_TIMEOUT) {
                Err(KafkaError::Transaction(error)) if error.is_retriable() && attempts < 3 => {
                    attempts += 1;
                    tracing::warn!(transactional_id = %self.id, "committing the transaction failed, retrying: {error}");
                }
                other => return other,
            }
        }
    }

    fn begin(&self) -> Result<(), TransactionError> {
        self.producer.begin_transaction().map_err(|error| TransactionError::Fatal(format!("cannot begin a transaction: {error}")))
    }

    fn classify(&self, error: KafkaError) -> TransactionError {
        match &error {
            KafkaError::Transaction(inner) if inner.is_fatal() => TransactionError::Fatal(format!(
                "{error} (transactional.id \"{}\": another process with the same id fenced this one?)",
                self.id
            )),
            _ => TransactionError::Aborted(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_outlive_a_checkpoint_interval_and_a_round() {
        let (interval, round) = (Duration::from_secs(10), Duration::from_secs(60));
        let set = transaction_lifetime(&KafkaProperties::new(), interval, round).unwrap();
        assert_eq!(set, Some((interval + round + TRANSACTION_TIMEOUT).as_millis().to_string()));
        let long: KafkaProperties = toml::from_str("\"transaction.timeout.ms\" = 900000").unwrap();
        assert_eq!(transaction_lifetime(&long, interval, round).unwrap(), None);
        let short: KafkaProperties = toml::from_str("\"transaction.timeout.ms\" = 60000").unwrap();
        let error = transaction_lifetime(&short, interval, round).unwrap_err().to_string();
        assert!(error.contains("too short") && error.contains("100000 ms"), "{error}");
    }

    #[test]
    fn a_round_waits_for_the_tasks_state_calls_within_one_to_ten_minutes() {
        assert_eq!(round_timeout(Duration::from_secs(30)), MIN_ROUND_TIMEOUT);
        // One operator: a watermark's call (60 s at most), a snapshot (60 s) and the margin.
        assert_eq!(round_timeout(Duration::from_secs(150)), Duration::from_secs(150));
        assert_eq!(round_timeout(Duration::from_secs(3600)), MAX_ROUND_TIMEOUT);
    }
}
