//! An idempotent producer that never blocks the caller on a full queue for long, retries
//! inside librdkafka, and surfaces deliveries that failed for good (or, inside a transaction,
//! leaves them to abort it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::{KafkaClientError, LoggingContext};
use crate::config::{KafkaProperties, RESERVED_PRODUCER_PROPERTIES};

/// Time a send waits for room in librdkafka's queue before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);
/// How long a transactional flush waits between checks for a fatal error.
const FLUSH_SLICE: Duration = Duration::from_millis(500);
/// Metadata requests that hasten an idempotent producer's id, and how long each may take.
const PRODUCER_ID_METADATA_REQUESTS: usize = 2;
const PRODUCER_ID_METADATA_TIMEOUT_MS: i32 = 5_000;

/// Has an idempotent producer ask for its producer id as soon as a broker is up, not 500 ms
/// after it starts. librdkafka asks once at start, before any connection is up (its first
/// metadata comes from the bootstrap address, which it then drops for the brokers it
/// learned), and again only on a 500 ms timer or when a metadata response arrives. Until the
/// id comes nothing is sent, so a sink's queue fills (100,000 records) and its pipeline
/// stalls. A thread asks twice for the brokers' metadata (not for a topic's, which could
/// create it): the second answer comes from a learned broker that is up, and librdkafka asks
/// for the id at once. The thread holds the producer only during a request and gives up once
/// it is dropped; a broker that does not answer leaves the work to librdkafka's own timer.
pub fn hasten_producer_id<C: ProducerContext + 'static>(producer: Weak<ThreadedProducer<C>>) {
    let hastened = std::thread::Builder::new().name("sluice-producer-id".into()).spawn(move || {
        for _ in 0..PRODUCER_ID_METADATA_REQUESTS {
            let Some(producer) = producer.upgrade() else { return };
            if !request_broker_metadata(producer.client()) {
                return;
            }
        }
    });
    if let Err(error) = hastened {
        tracing::debug!("cannot start a thread to hasten a producer id: {error}");
    }
}

/// Asks for the brokers' metadata and no topic's (which `Client::fetch_metadata` cannot: it
/// asks for one topic, which a producer's request may create, or for all); true if answered.
fn request_broker_metadata<C: rdkafka::ClientContext>(client: &rdkafka::client::Client<C>) -> bool {
    let mut metadata = std::ptr::null();
    // SAFETY: the client's handle is valid while `client` is borrowed. With `all_topics` 0 and
    // no topic handle, librdkafka asks for the topics the client already writes to (none at
    // start), so the request creates no topic a send would not. The answer it allocates is
    // freed once below, and only if it was set.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_metadata(client.native_ptr(), 0, std::ptr::null_mut(), &mut metadata, PRODUCER_ID_METADATA_TIMEOUT_MS)
    };
    if !metadata.is_null() {
        // SAFETY: `metadata` was allocated by the call above and is not used after this.
        unsafe { rdkafka::bindings::rd_kafka_metadata_destroy(metadata) };
    }
    error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
}

/// Queues `record`, waiting while librdkafka's queue is full; `while_waiting` runs after each
/// wait and may give up.
pub fn send_when_room<C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
    while_waiting: impl Fn() -> Result<(), String>,
) -> Result<(), String> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(QUEUE_FULL_WAIT);
                while_waiting()?;
            }
            Err((error, _)) => return Err(error.to_string()),
        }
    }
}

/// The size librdkafka gives a message, from the lengths of its key, its value and each
/// header's name and value: those, at most 10 bytes of length varints per header, and the
/// record's own framing (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD, 36 bytes). A message above the
/// producer's `message.max.bytes` is refused.
pub fn wire_size(key: usize, value: usize, headers: impl IntoIterator<Item = (usize, usize)>) -> usize {
    let headers: usize = headers.into_iter().map(|(name, value)| name + value + 10).sum();
    key + value + headers + 36
}

/// [`wire_size`] of a message about to be produced.
pub fn message_size(key: Option<&[u8]>, value: &[u8], headers: Option<&OwnedHeaders>) -> usize {
    use rdkafka::message::Headers as _;
    let headers =
        headers.into_iter().flat_map(|headers| headers.iter()).map(|header| (header.key.len(), header.value.map_or(0, <[u8]>::len)));
    wire_size(key.map_or(0, <[u8]>::len), value.len(), headers)
}

/// [`wire_size`] of an output record as a Kafka sink writes it: header names as text, a byte
/// that is not UTF-8 as U+FFFD (3 bytes).
pub fn record_size(record: &crate::wasm::Record<'_>) -> usize {
    let headers = record.headers().map(|(name, value)| (String::from_utf8_lossy(name).len(), value.len()));
    wire_size(record.key().map_or(0, <[u8]>::len), record.value().len(), headers)
}

/// A record to produce.
pub struct OutgoingRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub timestamp: Option<i64>,
    pub headers: Option<OwnedHeaders>,
    /// The partition to write to; `None`: the producer's partitioner picks it.
    pub partition: Option<i32>,
}

/// The records one writer queued that the brokers have not acknowledged yet: a task's
/// repartition output waits for its own records at a checkpoint, not for every task's (a
/// flush of the shared producer waits until it is empty, which, while a hundred partition
/// tasks write, takes as long as they keep writing).
#[derive(Debug, Default)]
pub struct InFlight {
    /// Counted without a lock (a sink counts every record); the lock only pairs the last
    /// acknowledgement's wake-up with a writer about to wait.
    count: AtomicU64,
    waiting: Mutex<()>,
    settled: Condvar,
}

impl InFlight {
    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self) {
        let before = self.count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| Some(count.saturating_sub(1)));
        if before == Ok(1) {
            let _paired = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            self.settled.notify_all();
        }
    }

    /// Waits up to `slice` until nothing is in flight; whether nothing is.
    fn none_within(&self, slice: Duration) -> bool {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let busy = |_: &mut ()| self.count.load(Ordering::Acquire) > 0;
        let _waited = self.settled.wait_timeout_while(waiting, slice, busy).unwrap_or_else(PoisonError::into_inner);
        self.count.load(Ordering::Acquire) == 0
    }
}

/// Remembers the first delivery that failed after librdkafka's retries.
#[derive(Default)]
pub struct DeliveryContext {
    failure: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        LoggingContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        LoggingContext.error(error, reason);
    }
}

impl DeliveryContext {
    /// The first failure since the last call, forgotten (a transaction was aborted for it).
    pub fn take_failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    fn record_failure(&self, error: String) {
        let mut failure = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failure.is_none() {
            tracing::error!("kafka delivery failed after retries: {error}");
            *failure = Some(error);
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, in_flight: Arc<InFlight>) {
        match result {
            // Records purged by an aborted transaction: the abort itself is what counts.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight), _)) => {}
            Err((error, _)) => self.record_failure(error.to_string()),
            Ok(_) => {}
        }
        // After the failure is recorded: a writer that wakes up finds it.
        in_flight.done();
    }
}

/// An idempotent producer writing to one topic: its own, or a share of the transactional
/// producer of an exactly-once pipeline.
pub struct OutputProducer {
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    topic: String,
    /// The records sent without a writer's own count.
    in_flight: Arc<InFlight>,
    /// Inside a transaction a failure does not stop the writer: it is remembered, and the
    /// transaction is aborted instead of committed.
    transactional: bool,
    /// The largest message it writes (`message.max.bytes`): librdkafka refuses larger ones.
    limit: usize,
}

impl OutputProducer {
    /// Connects (lazily: librdkafka connects in the background) to `brokers`.
    pub fn new(brokers: &str, topic: &str, properties: &KafkaProperties, own: &[(&str, &str)]) -> Result<OutputProducer, KafkaClientError> {
        let mut settings = vec![("enable.idempotence", "true"), ("linger.ms", "5")];
        settings.extend_from_slice(own);
        let config = super::client_config(super::ClientKind::Producer, brokers, properties, RESERVED_PRODUCER_PROPERTIES, &settings)?;
        let producer = config
            .create_with_context(DeliveryContext::default())
            .map_err(KafkaClientError::kafka(format!("cannot create a producer for topic \"{topic}\"")))?;
        let producer = Arc::new(producer);
        hasten_producer_id(Arc::downgrade(&producer));
        let limit = super::message_limit(properties);
        Ok(OutputProducer { producer, topic: topic.to_owned(), in_flight: Arc::default(), transactional: false, limit })
    }

    /// Writes to `topic` through a shared transactional producer, which writes messages of up
    /// to `limit` bytes.
    pub fn transactional(producer: Arc<ThreadedProducer<DeliveryContext>>, topic: &str, limit: usize) -> OutputProducer {
        OutputProducer { producer, topic: topic.to_owned(), in_flight: Arc::default(), transactional: true, limit }
    }

    /// The largest message it writes (`message.max.bytes`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether it writes inside the pipeline's transactions (exactly-once): its properties
    /// are then the outputs', not the source's.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Queues a record; waits while librdkafka's queue is full. Fails if an earlier delivery
    /// failed for good.
    pub fn send(&self, record: OutgoingRecord<'_>) -> Result<(), String> {
        self.send_counted(record, &self.in_flight)
    }

    /// `send`, counting the record in `in_flight` until the brokers acknowledge it.
    pub fn send_counted(&self, record: OutgoingRecord<'_>, in_flight: &Arc<InFlight>) -> Result<(), String> {
        self.check_deliveries()?;
        let mut base = BaseRecord::<[u8], [u8], Arc<InFlight>>::with_opaque_to(&self.topic, Arc::clone(in_flight)).payload(record.value);
        if let Some(key) = record.key {
            base = base.key(key);
        }
        if let Some(timestamp) = record.timestamp {
            base = base.timestamp(timestamp);
        }
        if let Some(headers) = record.headers {
            base = base.headers(headers);
        }
        if let Some(partition) = record.partition {
            base = base.partition(partition);
        }
        in_flight.add();
        let sent = send_when_room(&self.producer, base, || self.check_deliveries())
            .map_err(|error| format!("cannot produce to topic \"{}\": {error}", self.topic));
        if sent.is_err() {
            // Not queued: no delivery report will come for it.
            in_flight.done();
        }
        self.settle(sent)
    }

    /// Waits until the brokers acknowledged every record this writer sent (librdkafka retries
    /// through broker outages until `delivery.timeout.ms`), then reports a delivery that failed
    /// for good.
    pub fn flush(&self) -> Result<(), String> {
        self.flush_counted(&self.in_flight)
    }

    /// `flush` for the records counted in `in_flight` (a task's share of a producer other
    /// tasks write through too); inside a transaction, for the whole producer.
    pub fn flush_counted(&self, in_flight: &InFlight) -> Result<(), String> {
        let flushed = if self.transactional { self.flush_transactional() } else { self.acknowledged(in_flight) };
        self.settle(flushed.map_err(|error| format!("flushing topic \"{}\" failed: {error}", self.topic)))?;
        self.check_deliveries()
    }

    /// Waits until nothing counted in `in_flight` (or nothing at all) is unacknowledged, or
    /// the producer failed for good.
    fn acknowledged(&self, in_flight: &InFlight) -> Result<(), String> {
        while !in_flight.none_within(FLUSH_SLICE) && self.producer.in_flight_count() > 0 {
            if let Some((code, reason)) = self.producer.client().fatal_error() {
                return Err(format!("the producer failed for good ({code:?}): {reason}"));
            }
        }
        Ok(())
    }

    /// Inside a transaction, records may never be delivered (the producer was fenced): stop
    /// waiting once librdkafka reports a fatal error.
    fn flush_transactional(&self) -> Result<(), String> {
        loop {
            match self.producer.flush(FLUSH_SLICE) {
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                    if let Some((code, reason)) = self.producer.client().fatal_error() {
                        return Err(format!("the producer failed for good ({code:?}): {reason}"));
                    }
                }
                other => return other.map_err(|error| error.to_string()),
            }
        }
    }

    /// Inside a transaction, a failure is kept for the commit to find (which then aborts).
    fn settle(&self, result: Result<(), String>) -> Result<(), String> {
        match result {
            Err(error) if self.transactional => {
                self.producer.context().record_failure(error);
                Ok(())
            }
            other => other,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn check_deliveries(&self) -> Result<(), String> {
        if self.transactional {
            return Ok(());
        }
        let failure = self.producer.context().failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*failure {
            Some(error) => Err(format!("a record for topic \"{}\" could not be delivered: {error}", self.topic)),
            None => Ok(()),
        }
    }
}
