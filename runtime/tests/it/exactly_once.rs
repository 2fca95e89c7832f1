//! `delivery = "exactly-once"`: the transactional calls against librdkafka's mock cluster
//! (commits, retried and aborted transactions with rewinds, a fenced producer), and a clear refusal
//! from a broker without transactions (Nisshi). No broker here hides aborted records from
//! `read_committed` readers, so what the mock cluster shows includes them (see docs/kafka.md).

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::broker::{self, Broker, KafkaRecord, SluiceProcess, produce, read_topic, wait_for};
use crate::kafka::{await_windows, expected_windows, watermark_pushers, windowed_records};
use crate::support::{Scratch, assert_exact_counts};

const EXACTLY_ONCE_PIPELINE: &str = r#"
[pipeline]
name = "eos"
checkpoint_interval = "300ms"
delivery = "exactly-once"

[[sources]]
type = "kafka"
brokers = "{bootstrap}"
topics = ["events"]

[[operators]]
name = "json-only"
plugin = "{plugins}/filter.wasm"
config = { field = "user", op = "exists" }

[[operators]]
name = "counts"
plugin = "{plugins}/window-aggregate.wasm"
[operators.config]
window = { type = "tumbling", size = "10s" }
group_by = ["user"]
aggregates = [{ function = "count", as = "count" }]

[[sinks]]
type = "kafka"
brokers = "{bootstrap}"
topic = "windows"

[dead_letter]
type = "kafka"
brokers = "{bootstrap}"
topic = "dead"
"#;

/// A mock cluster with the pipeline's topics.
fn mock_cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    // The mock cluster cannot create topics: the repartition topic of the keyed exchange in
    // front of `counts` (by user, which the runtime cannot know is the topic's key) is made here.
    let topics = [("events", 4), ("windows", 4), ("dead", 1), ("sluice-checkpoints", 1), ("eos-counts-repartition", 4)];
    for (topic, partitions) in topics {
        cluster.create_topic(topic, partitions, 1).expect("mock topic");
    }
    cluster
}

fn not_json() -> KafkaRecord {
    KafkaRecord::new("user-0", "not json".into(), crate::kafka::EVENT_TIME_ZERO, &[])
}

#[test]
fn transactions_commit_survive_retriable_errors_and_an_abort_rewinds_every_task_to_the_committed_state() {
    let _serial = broker::broker_slot();
    let cluster = mock_cluster();
    let bootstrap = cluster.bootstrap_servers();
    let input = windowed_records(40_000, 20);
    produce(&bootstrap, "events", &input[..20_000]);
    produce(&bootstrap, "events", &[not_json()]);
    let scratch = Scratch::new();
    let pipeline = scratch.pipeline(&EXACTLY_ONCE_PIPELINE.replace("{bootstrap}", &bootstrap));
    let mut sluice = SluiceProcess::start_with_env(scratch.dir.path(), &pipeline, "sluice.log", &[("SLUICE_INSTANCE", "a")]);
    wait_for(Duration::from_secs(60), "window results of the first half", || {
        read_topic(&bootstrap, "windows", 100, Duration::from_secs(2)).len() >= 100
    });

    // Retriable errors on every transactional request, then one that forces an abort.
    cluster.request_errors(RDKafkaApiKey::EndTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 2]);
    cluster.request_errors(RDKafkaApiKey::AddOffsetsToTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE; 2]);
    cluster.request_errors(RDKafkaApiKey::TxnOffsetCommit, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 2]);
    let before = read_topic(&bootstrap, "windows", usize::MAX, Duration::from_secs(2)).len();
    produce(&bootstrap, "events", &input[20_000..30_000]);
    wait_for(Duration::from_secs(60), "results committed after the retriable errors", || {
        read_topic(&bootstrap, "windows", usize::MAX, Duration::from_secs(2)).len() >= before + 100
    });
    cluster.request_errors(RDKafkaApiKey::AddPartitionsToTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED]);
    produce(&bootstrap, "events", &input[30_000..]);
    produce(&bootstrap, "events", &watermark_pushers(4));

    let expected = expected_windows(&input);
    let (results, repeated) = await_windows(&bootstrap, &expected, Duration::from_secs(180));
    assert!(sluice.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", sluice.log_text());
    let log = sluice.log_text();
    assert_exact_counts(&expected, &results);
    assert!(
        log.contains("aborting the transaction") && log.contains("rewinding to the last committed checkpoint"),
        "an abort and a rewind:\n{log}"
    );
    let summary = log.lines().find(|line| line.contains("transactions committed and aborted")).expect("transaction counts logged");
    assert!(!summary.contains("committed=0"), "{summary}");
    let dead = read_topic(&bootstrap, "dead", usize::MAX, Duration::from_secs(3));
    assert!(
        !dead.is_empty() && dead.iter().all(|letter| letter.value == b"not json" && letter.header("sluice.reason").is_some()),
        "{dead:?}"
    );
    eprintln!(
        "{} windows exact through retried and aborted transactions; {summary}; {repeated} results of aborted transactions visible on the mock cluster",
        expected.len()
    );
}

/// The mock cluster does not fence an older producer when a newer one claims its
/// transactional id (it hands out a new producer id instead of bumping the epoch), so the
/// broker's answer to a fenced producer is injected: `PRODUCER_FENCED` on the commit.
#[test]
fn a_fenced_producer_stops_the_process_with_an_error() {
    let _serial = broker::broker_slot();
    let cluster = mock_cluster();
    let bootstrap = cluster.bootstrap_servers();
    let input = windowed_records(4_000, 10);
    produce(&bootstrap, "events", &input[..2_000]);
    let scratch = Scratch::new();
    let pipeline = scratch.pipeline(&EXACTLY_ONCE_PIPELINE.replace("{bootstrap}", &bootstrap));
    let mut sluice = SluiceProcess::start_with_env(scratch.dir.path(), &pipeline, "sluice.log", &[("SLUICE_INSTANCE", "a")]);
    wait_for(Duration::from_secs(60), "the first window results", || {
        !read_topic(&bootstrap, "windows", 1, Duration::from_secs(2)).is_empty()
    });
    cluster.request_errors(RDKafkaApiKey::EndTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED]);
    produce(&bootstrap, "events", &input[2_000..]);
    let exited = sluice.wait_exit(Duration::from_secs(90));
    let log = sluice.log_text();
    assert_eq!(exited, Some(false), "the fenced process stops with an error:\n{log}");
    assert!(log.contains("transactions cannot go on") && log.contains("sluice-eos-kafka-a"), "{log}");
}

#[test]
fn exactly_once_on_a_broker_without_transactions_fails_at_start_with_a_clear_error() {
    let _serial = broker::broker_slot();
    let broker = Broker::start();
    for topic in ["events", "windows", "dead"] {
        broker.create_topic(topic, 1);
    }
    let scratch = Scratch::new();
    let pipeline = scratch.pipeline(&EXACTLY_ONCE_PIPELINE.replace("{bootstrap}", &broker.bootstrap()));
    let mut sluice = SluiceProcess::start(scratch.dir.path(), &pipeline, "sluice.log");
    let exited = sluice.wait_exit(Duration::from_secs(90));
    let log = sluice.log_text();
    assert_eq!(exited, Some(false), "{log}");
    assert!(log.contains("cannot start transactions") && log.contains("needs a broker that supports them"), "{log}");
}
