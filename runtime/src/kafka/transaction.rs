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
use crate::config::{KafkaProperties, RESERVED_PRODUCER_PROPERTIES};

/// Longest wait for one transactional call (librdkafka retries inside it).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

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
}

impl TransactionalProducer {
    /// Connects with `transactional.id` = `id`, fences older producers with that id (their
    /// open transaction is aborted), and begins the first transaction.
    pub fn open(brokers: &str, properties: &KafkaProperties, id: &str) -> Result<Arc<TransactionalProducer>, KafkaClientError> {
        let settings = [("enable.idempotence", "true"), ("transactional.id", id), ("linger.ms", "5"), ("partitioner", "murmur2_random")];
        let config = super::client_config(brokers, properties, RESERVED_PRODUCER_PROPERTIES, &settings)?;
        let producer: ThreadedProducer<DeliveryContext> = config
            .create_with_context(DeliveryContext::default())
            .map_err(KafkaClientError::kafka("cannot create the transactional producer"))?;
        producer.init_transactions(TRANSACTION_TIMEOUT).map_err(KafkaClientError::kafka(format!(
            "cannot start transactions (transactional.id \"{id}\"); delivery = \"exactly-once\" needs a broker that supports them"
        )))?;
        producer.begin_transaction().map_err(KafkaClientError::kafka("cannot begin a transaction"))?;
        tracing::info!(transactional_id = id, "transactions started");
        Ok(Arc::new(TransactionalProducer {
            producer: Arc::new(producer),
            id: id.to_owned(),
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
        }))
    }

    /// A producer for `topic` whose records join the current transaction.
    pub fn output(&self, topic: &str) -> OutputProducer {
        OutputProducer::transactional(self.producer.clone(), topic)
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
