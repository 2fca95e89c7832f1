//! Kafka → Wasm filter → Kafka through `sluice run` with default settings, next to a raw
//! passthrough (consume and produce, no operator, tuned to its best) on the same broker (Nisshi,
//! started here on 127.0.0.1) and machine, for topics of 1 and of 8 partitions: the best of
//! `ROUNDS` rounds of each, alternating (the shared machine and the broker vary from one run to
//! the next: one run of the 8-partition passthrough took 300 K to 730 K records/s).
//!
//! Beside the rates, the CPU time each path took per record (the passthrough's process, with
//! its librdkafka threads; Sluice's process, from its start; not the broker's), which the
//! machine's noise moves far less than the rates.
//!
//! `cargo bench -p sluice --bench kafka` (after scripts/build-plugins.sh and
//! scripts/ensure-broker.sh). Prints records per second; asserts nothing.

#[path = "../tests/it/broker.rs"]
#[allow(dead_code)]
mod broker;
#[path = "common.rs"]
mod common;

use std::time::{Duration, Instant};

use broker::{Broker, KafkaRecord, SluiceProcess, produce};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

const RECORDS: usize = 1_000_000;
const PARTITION_COUNTS: [u32; 2] = [1, 8];
const ROUNDS: usize = 3;

fn main() {
    let broker = Broker::start();
    let input: Vec<KafkaRecord> = (0..RECORDS)
        .map(|n| {
            let user = format!("user-{}", n % 1000);
            let value = format!(r#"{{"user":"{user}","item":"i{}","event_type":"view","price":{}.5,"n":{n}}}"#, n % 500, n % 90);
            KafkaRecord::new(&user, value, 1_767_225_600_000 + n as i64, &[("trace", "bench")])
        })
        .collect();
    let bytes: usize = input.iter().map(|record| record.value.len()).sum();
    println!(
        "sluice Kafka benchmark: {RECORDS} keyed JSON records of {} bytes on average, Nisshi in memory, 2 cores shared",
        bytes / RECORDS
    );
    println!("{:<12} {:<50} {:>12}", "partitions", "path", "records/s");
    for partitions in PARTITION_COUNTS {
        let input_topic = format!("input-{partitions}");
        broker.create_topic(&input_topic, partitions);
        produce(&broker.bootstrap(), &input_topic, &input);
        let (mut raw, mut sluice) = (Duration::MAX, Duration::MAX);
        let (mut raw_cpu, mut sluice_cpu) = (Duration::MAX, Duration::MAX);
        for round in 0..ROUNDS {
            let topics = Topics::new(&input_topic, partitions, round);
            for topic in [&topics.raw_output, &topics.sluice_output] {
                broker.create_topic(topic, partitions);
            }
            let cpu_before = common::process_cpu_time();
            raw = raw.min(passthrough(&broker.bootstrap(), &topics));
            raw_cpu = raw_cpu.min(common::process_cpu_time().saturating_sub(cpu_before));
            let (elapsed, cpu) = through_sluice(&broker, &topics, partitions);
            sluice = sluice.min(elapsed);
            sluice_cpu = sluice_cpu.min(cpu);
        }
        println!(
            "{partitions:<12} {:<50} {:>12.0}",
            "raw passthrough (consume + produce, no operator)",
            RECORDS as f64 / raw.as_secs_f64()
        );
        println!(
            "{partitions:<12} {:<50} {:>12.0}",
            "sluice: Kafka → Wasm filter → Kafka, defaults",
            RECORDS as f64 / sluice.as_secs_f64()
        );
        println!("{partitions:<12} sluice / raw: {:.0}%", 100.0 * raw.as_secs_f64() / sluice.as_secs_f64());
        let micros = |cpu: Duration| cpu.as_secs_f64() * 1e6 / RECORDS as f64;
        println!(
            "{partitions:<12} CPU µs per record: raw {:.2}, sluice {:.2} ({:.2}x)",
            micros(raw_cpu),
            micros(sluice_cpu),
            sluice_cpu.as_secs_f64() / raw_cpu.as_secs_f64()
        );
    }
}

/// The topics of one round, and its name (each round reads the input from the start, in a
/// consumer group of its own).
struct Topics {
    input: String,
    raw_output: String,
    sluice_output: String,
    round: String,
}

impl Topics {
    fn new(input: &str, partitions: u32, round: usize) -> Topics {
        let round = format!("{partitions}-{round}");
        Topics {
            input: input.to_owned(),
            raw_output: format!("raw-output-{round}"),
            sluice_output: format!("sluice-output-{round}"),
            round,
        }
    }
}

/// A consumer in its own group and an idempotent producer, in one loop: the broker's and
/// librdkafka's own cost for moving the records, from subscribe to the last acknowledgement.
fn passthrough(bootstrap: &str, topics: &Topics) -> Duration {
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("raw-passthrough-{}", topics.round))
        // Its best: fetch again at once after a queue-full backoff, big fetches.
        .set("fetch.queue.backoff.ms", "1")
        .set("fetch.min.bytes", "1")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topics.input.as_str()]).expect("subscribe");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // Its producer id at once, as Sluice's producers get theirs (`hasten_producer_id`), not
    // 500 ms after start: a second metadata answer, from a learned broker, has librdkafka ask.
    for _ in 0..2 {
        producer.client().fetch_metadata(Some(&topics.raw_output), Duration::from_secs(5)).expect("metadata");
    }
    let mut moved = 0;
    while moved < RECORDS {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        let mut record = BaseRecord::<[u8], [u8]>::to(&topics.raw_output).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(timestamp) = message.timestamp().to_millis() {
            record = record.timestamp(timestamp);
        }
        if let Some(headers) = message.headers() {
            record = record.headers(headers.detach());
        }
        while let Err((_, returned)) = producer.send(record) {
            record = returned;
            producer.poll(Duration::from_millis(1));
        }
        moved += 1;
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).expect("commit");
    started.elapsed()
}

/// `sluice run` of a Kafka → filter → Kafka pipeline, from start until the output topic holds
/// every record (the plugin's compiled code is cached first, as on any second start), and the
/// CPU time Sluice took by then.
fn through_sluice(broker: &Broker, topics: &Topics, partitions: u32) -> (Duration, Duration) {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins");
    let pipeline = scratch.path().join("pipeline.toml");
    let toml = format!(
        r#"
[pipeline]
name = "bench-{round}"
checkpoint_interval = "5s"

[[sources]]
type = "kafka"
brokers = "{bootstrap}"
topics = ["{input}"]

[[operators]]
name = "views"
plugin = "{plugins}/filter.wasm"
config = {{ field = "event_type", op = "eq", value = "view" }}

[[sinks]]
type = "kafka"
brokers = "{bootstrap}"
topic = "{output}"
"#,
        bootstrap = broker.bootstrap(),
        round = topics.round,
        plugins = plugins.display(),
        input = topics.input,
        output = topics.sluice_output,
    );
    std::fs::write(&pipeline, toml).expect("pipeline file");
    let validated = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["validate", &pipeline.display().to_string()])
        .output()
        .expect("sluice validate");
    assert!(validated.status.success(), "{}", String::from_utf8_lossy(&validated.stderr));
    let started = Instant::now();
    let mut sluice = SluiceProcess::start(scratch.path(), &pipeline, "sluice.log");
    let watcher: BaseConsumer = ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).create().expect("watcher");
    // Polled every 5 ms: the tests' `wait_for` polls every 100 ms, a tenth of a round here.
    let written = || -> i64 {
        (0..partitions as i32)
            .map(|partition| watcher.fetch_watermarks(&topics.sluice_output, partition, Duration::from_secs(5)).map_or(0, |(_, high)| high))
            .sum()
    };
    while written() < RECORDS as i64 {
        assert!(started.elapsed() < Duration::from_secs(600), "timed out waiting for every record in the output topic");
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let cpu = sluice.cpu_time().expect("the CPU time of the running sluice process");
    assert!(sluice.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", sluice.log_text());
    (elapsed, cpu)
}
