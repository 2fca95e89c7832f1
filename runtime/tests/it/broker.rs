//! Test tooling for Kafka: a real Nisshi broker on 127.0.0.1 (started, stopped and restarted
//! by PID), topics, producing and reading records, and `sluice run` processes.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// Kafka tests run at most two at a time (`SLUICE_KAFKA_TESTS_AT_ONCE` to change it): each
/// starts brokers and runtimes on a 2-core machine, yet mostly waits on them. Two slots on two
/// test threads mean a test thread never blocks here while another test could run.
pub fn broker_slot() -> BrokerSlot {
    let (taken, freed) = &BROKER_SLOTS;
    let mut in_use = taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    while *in_use >= broker_slots() {
        in_use = freed.wait(in_use).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    *in_use += 1;
    BrokerSlot
}

static BROKER_SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

fn broker_slots() -> usize {
    std::env::var("SLUICE_KAFKA_TESTS_AT_ONCE").ok().and_then(|text| text.parse().ok()).filter(|slots| *slots > 0).unwrap_or(2)
}

/// A Kafka test's turn; the next one waiting starts when it is dropped.
pub struct BrokerSlot;

impl Drop for BrokerSlot {
    fn drop(&mut self) {
        let (taken, freed) = &BROKER_SLOTS;
        *taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner) -= 1;
        freed.notify_one();
    }
}

/// The Nisshi binary: `$SLUICE_NISSHI` (scripts/test.sh sets it), else the cached build.
fn nisshi() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_NISSHI") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("SLUICE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/sluice/tools"));
    let path = tools.join("nisshi-0.8.1/bin/nisshi");
    assert!(path.is_file(), "the Nisshi broker is missing: run scripts/ensure-broker.sh (or scripts/test.sh)");
    path
}

/// A running broker; killed when dropped.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    /// The working directory: holds the SQLite file of a durable broker.
    dir: tempfile::TempDir,
}

impl Broker {
    /// A broker keeping everything in memory (its SQLite storage does not serve records written
    /// before a restart, so durability across broker restarts is tested on the mock cluster).
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut broker = Broker { child: None, port: free_port(), storage: "memory://nisshi/".into(), dir };
        broker.restart();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker process (again) on the same port and storage; waits until it serves.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(nisshi())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", &self.storage])
            .args(["--group-initial-rebalance-delay", "0s"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nisshi starts");
        self.child = Some(child);
        let address: SocketAddr = self.bootstrap().parse().expect("address");
        wait_for(Duration::from_secs(60), "the broker to listen", || {
            TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
        });
    }

    /// Stops the broker process by PID: SIGTERM, then SIGKILL after 10 s; reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: signalling our own child process by PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let stopped = eventually(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Sends `signal` (SIGSTOP freezes it, SIGCONT thaws it: its in-memory storage would not
    /// survive a restart).
    pub fn signal(&self, signal: libc::c_int) {
        let Some(child) = &self.child else { return };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: signalling our own child process by PID.
        unsafe { libc::kill(pid, signal) };
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(nisshi())
            .args(["topic", "create", name, "--partitions", &partitions.to_string(), "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .expect("nisshi topic create runs");
        assert!(status.success(), "creating topic {name} failed");
    }

    pub fn delete_topic(&self, name: &str) {
        let status = Command::new(nisshi())
            .args(["topic", "delete", name, "--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .expect("nisshi topic delete runs");
        assert!(status.success(), "deleting topic {name} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// Polls `ready` until it holds; panics after `limit`.
pub fn wait_for(limit: Duration, what: &str, ready: impl FnMut() -> bool) {
    assert!(eventually(limit, ready), "timed out after {limit:?} waiting for {what}");
}

/// Polls `ready` until it holds (true) or `limit` passes (false).
pub fn eventually(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// A record produced or read by the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp: i64,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl KafkaRecord {
    /// A record to produce.
    pub fn new(key: &str, value: String, timestamp: i64, headers: &[(&str, &str)]) -> KafkaRecord {
        KafkaRecord {
            partition: -1,
            offset: -1,
            key: Some(key.as_bytes().to_vec()),
            value: value.into_bytes(),
            timestamp,
            headers: headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().to_vec())).collect(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header == name).and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    pub fn value_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(&self.value)))
    }
}

/// Produces `records` to `topic` (to their partition if set, else by key as Java clients do)
/// and waits for all.
pub fn produce(bootstrap: &str, topic: &str, records: &[KafkaRecord]) {
    TestProducer::new(bootstrap).send_and_wait(topic, records);
}

/// One producer kept for many sends (a new one per send costs a connection and a producer id).
pub struct TestProducer {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl TestProducer {
    pub fn new(bootstrap: &str) -> TestProducer {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create()
            .expect("test producer");
        TestProducer { producer }
    }

    /// Produces `records` to `topic`, as `produce` does, and waits for all.
    pub fn send_and_wait(&self, topic: &str, records: &[KafkaRecord]) {
        for record in records {
            let headers = record
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, (name, value)| headers.insert(Header { key: name, value: Some(value.as_slice()) }));
            let mut base = BaseRecord::<[u8], [u8]>::to(topic).payload(&record.value).timestamp(record.timestamp).headers(headers);
            if let Some(key) = &record.key {
                base = base.key(key);
            }
            if record.partition >= 0 {
                base = base.partition(record.partition);
            }
            loop {
                match self.producer.send(base) {
                    Ok(()) => break,
                    Err((_, returned)) => {
                        base = returned;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        self.producer.flush(Duration::from_secs(60)).expect("test records delivered");
    }
}

/// Produces one record to partition 0 of `topic` whose header names are bytes that need not
/// be UTF-8, as any producer may write them (rdkafka's `OwnedHeaders::insert` takes `&str`).
pub fn produce_with_header_bytes(bootstrap: &str, topic: &str, value: &[u8], timestamp: i64, headers: &[(&[u8], &[u8])]) {
    use rdkafka::bindings::{rd_kafka_header_add, rd_kafka_headers_t, rd_kafka_resp_err_t};
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("test producer");
    let owned = OwnedHeaders::new();
    // rdkafka's `BorrowedHeaders` is a zero-sized view whose address is librdkafka's headers
    // handle (how rdkafka itself reads it), and `owned` owns that handle while it lives.
    let native = std::ptr::from_ref(owned.as_borrowed()).cast::<rd_kafka_headers_t>().cast_mut();
    for (name, header_value) in headers {
        // SAFETY: `native` is the live handle of `owned`; librdkafka copies both byte strings.
        let error = unsafe {
            rd_kafka_header_add(
                native,
                name.as_ptr().cast(),
                name.len() as isize,
                header_value.as_ptr().cast(),
                header_value.len() as isize,
            )
        };
        assert_eq!(error, rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, "header added");
    }
    let record = BaseRecord::<[u8], [u8]>::to(topic).payload(value).timestamp(timestamp).partition(0).headers(owned);
    producer.send(record).map_err(|(error, _)| error).expect("queued");
    producer.flush(Duration::from_secs(60)).expect("test record delivered");
}

/// Reads `topic` from the beginning until `count` records arrived or `limit` passed.
pub fn read_topic(bootstrap: &str, topic: &str, count: usize, limit: Duration) -> Vec<KafkaRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + limit;
    let mut records = Vec::new();
    while records.len() < count && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(KafkaRecord {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().unwrap_or_default().to_vec(),
                timestamp: message.timestamp().to_millis().unwrap_or(-1),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers.iter().map(|header| (header.key.to_owned(), header.value.unwrap_or_default().to_vec())).collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(error)) => eprintln!("test reader: {error}"),
            None => {}
        }
    }
    records
}

/// A `sluice run` process; killed when dropped.
pub struct SluiceProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl SluiceProcess {
    /// Starts `sluice run pipeline` in `dir`, its log in `log_name`.
    pub fn start(dir: &Path, pipeline: &Path, log_name: &str) -> SluiceProcess {
        Self::start_with_env(dir, pipeline, log_name, &[])
    }

    /// Like `start`, with environment variables set.
    pub fn start_with_env(dir: &Path, pipeline: &Path, log_name: &str, env: &[(&str, &str)]) -> SluiceProcess {
        Self::start_with(dir, pipeline, log_name, env, &[])
    }

    /// Like `start`, with environment variables set and more arguments for `sluice run`.
    pub fn start_with(dir: &Path, pipeline: &Path, log_name: &str, env: &[(&str, &str)], args: &[&str]) -> SluiceProcess {
        let log = dir.join(log_name);
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", &pipeline.display().to_string()])
            .args(args)
            .current_dir(dir)
            .env("SLUICE_LOG", std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("sluice starts");
        SluiceProcess { child: Some(child), log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no draining, no checkpoint.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (at most `limit`) for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: signalling our own child process by PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `limit`) for the process to exit by itself; whether it succeeded, or
    /// None if it still runs (then it is killed).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The user and system CPU time the process has used so far (from `/proc`), while it runs.
    /// For `benches/kafka.rs`, which shares this file; no test reads it.
    #[allow(dead_code)]
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // After the command name, in parentheses: the state is field 3, utime and stime 14 and 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf reads a configuration value and has no other effect.
        let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).ok().filter(|ticks| *ticks > 0)?;
        Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let Some(child) = &self.child else { return };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: signalling our own child process by PID.
        unsafe { libc::kill(pid, signal) };
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
