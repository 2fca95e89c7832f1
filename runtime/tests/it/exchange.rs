//! Keyed exchanges: a stream keyed by user, aggregated per category (count, sum, median,
//! distinct buyers), gives one result per (window, category) equal to an independent
//! computation — for 1, 2 and 4 instances in one process, for sources whose event times lag
//! each other by 30 s, and for two processes sharing a Kafka topic through a repartition topic
//! while one of them is killed with SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::broker::{self, Broker, KafkaRecord, SluiceProcess, produce, read_topic, wait_for};
use crate::kafka::{EVENT_TIME_ZERO, watermark_pushers_of};
use crate::support::{Scratch, run};

const CATEGORIES: [&str; 8] = ["books", "music", "toys", "garden", "sports", "fashion", "grocery", "tech"];
const USERS: usize = 97;
/// Source partitions (Kafka), or the slices one user's records fall in.
const PARTITIONS: usize = 8;
/// An order far ahead in event time, one per partition, so that every window of the data
/// closes (its own window stays open).
const END_ORDER: &str = r#"{"user":"end","category":"end","amount":0}"#;

/// One order of the test stream: keyed by user, its category independent of the user.
#[derive(Debug, Clone)]
struct Order {
    user: String,
    category: &'static str,
    amount: f64,
    timestamp: i64,
    partition: usize,
}

impl Order {
    fn json(&self) -> String {
        format!(r#"{{"user":"{}","category":"{}","amount":{},"ts":{}}}"#, self.user, self.category, self.amount, self.timestamp)
    }
}

/// `count` orders 10 ms of event time apart; the orders of partition 0 are stamped `lag_ms`
/// behind the others (a producer whose clock, or whose partition, lags).
fn orders(count: usize, lag_ms: i64) -> Vec<Order> {
    (0..count)
        .map(|n| {
            let user = n % USERS;
            let partition = user % PARTITIONS;
            let lag = if partition == 0 { lag_ms } else { 0 };
            Order {
                user: format!("u{user}"),
                category: CATEGORIES[(n * 31 + n / 7) % CATEGORIES.len()],
                amount: ((n * 37) % 1000) as f64 / 10.0 + 1.0,
                timestamp: EVENT_TIME_ZERO + n as i64 * 10 - lag,
                partition,
            }
        })
        .collect()
}

/// What one window of one category must hold, computed directly from the orders.
#[derive(Debug, Default)]
struct Expected {
    count: u64,
    revenue: f64,
    amounts: Vec<f64>,
    buyers: BTreeSet<String>,
}

type Window = (i64, String);

fn expected_windows(orders: &[Order]) -> BTreeMap<Window, Expected> {
    let mut windows: BTreeMap<Window, Expected> = BTreeMap::new();
    for order in orders {
        let start = order.timestamp - order.timestamp.rem_euclid(10_000);
        let window = windows.entry((start, order.category.to_owned())).or_default();
        window.count += 1;
        window.revenue += order.amount;
        window.amounts.push(order.amount);
        window.buyers.insert(order.user.clone());
    }
    for window in windows.values_mut() {
        window.amounts.sort_by(f64::total_cmp);
    }
    windows
}

/// A 10-second window per category; late records to the side output `late`.
const PER_CATEGORY: &str = r#"
[[operators]]
name = "per-category"
plugin = "{plugins}/window-aggregate.wasm"
[operators.config]
window = { type = "tumbling", size = "10s" }
group_by = ["category"]
late = "side-output"
aggregates = [
    { function = "count", as = "count" },
    { function = "sum", field = "amount", as = "revenue" },
    { function = "median", field = "amount", as = "median" },
    { function = "distinct", field = "user", as = "buyers" },
]
"#;

/// The results by window; every window must have been emitted, each time with the expected
/// values (count exact, sum to rounding, median and distinct within their sketches' error).
fn assert_results_exact(expected: &BTreeMap<Window, Expected>, results: &[Value]) {
    let mut emitted: BTreeMap<Window, Vec<&Value>> = BTreeMap::new();
    for result in results {
        let window = (result["window_start"].as_i64().expect("window_start"), result["category"].as_str().expect("category").to_owned());
        emitted.entry(window).or_default().push(result);
    }
    let unexpected: Vec<_> = emitted.keys().filter(|window| !expected.contains_key(*window)).collect();
    assert!(unexpected.is_empty(), "windows that should not exist: {unexpected:?}");
    for (window, expected) in expected {
        let results = emitted.get(window).unwrap_or_else(|| panic!("window {window:?} was never emitted"));
        for result in results {
            assert_eq!(result["count"].as_u64(), Some(expected.count), "{window:?}: {result}");
            let revenue = result["revenue"].as_f64().expect("revenue");
            assert!(
                (revenue - expected.revenue).abs() <= 1e-6 * expected.revenue.max(1.0),
                "{window:?}: revenue {revenue} vs {}",
                expected.revenue
            );
            let median = result["median"].as_f64().expect("median");
            let (low, high) = (expected.amounts[(expected.amounts.len() - 1) / 2], expected.amounts[expected.amounts.len() / 2]);
            assert!(median >= low * 0.99 && median <= high * 1.01, "{window:?}: median {median} not within 1% of [{low}, {high}]");
            let buyers = result["buyers"].as_f64().expect("buyers");
            let exact = expected.buyers.len() as f64;
            assert!((buyers - exact).abs() <= (exact * 0.02).max(1.0), "{window:?}: buyers {buyers} vs {exact}");
        }
    }
}

#[test]
fn one_result_per_category_and_window_for_every_parallelism() {
    let scratch = Scratch::new();
    let orders = orders(40_000, 0);
    let lines: String = orders.iter().map(|order| order.json() + "\n").collect();
    scratch.write("orders.jsonl", &lines);
    let expected = expected_windows(&orders);
    let mut outputs = Vec::new();
    for parallelism in [1, 2, 4] {
        let pipeline = scratch.pipeline(&format!(
            r#"
[pipeline]
name = "per-category"
parallelism = {parallelism}
batch_size = 200

[[sources]]
name = "orders"
type = "file"
path = "orders.jsonl"
timestamp_field = "ts"
{PER_CATEGORY}
[[sinks]]
type = "file"
path = "out-{parallelism}.jsonl"
inputs = ["per-category"]

[[sinks]]
name = "late"
type = "file"
path = "late-{parallelism}.jsonl"
inputs = ["per-category.late"]
"#
        ));
        let summary = run(&pipeline).unwrap_or_else(|error| panic!("parallelism {parallelism}: {error}"));
        assert_eq!(summary.sources.records, 40_000);
        let results = scratch.json_lines(&format!("out-{parallelism}.jsonl"));
        assert_eq!(results.len(), expected.len(), "parallelism {parallelism}: one result per (window, category)");
        assert_results_exact(&expected, &results);
        assert!(scratch.json_lines(&format!("late-{parallelism}.jsonl")).is_empty());
        let mut sorted: Vec<String> = results.iter().map(Value::to_string).collect();
        sorted.sort();
        outputs.push(sorted);
    }
    assert_eq!(outputs[0], outputs[1], "parallelism 1 and 2 give the same results");
    assert_eq!(outputs[0], outputs[2], "parallelism 1 and 4 give the same results");
}

/// A record an operator behind an in-process exchange refuses is a dead letter naming the
/// source it came from and its line there, for every parallelism (the stage behind the exchange
/// is named after its operator, which is not where the record came from).
#[test]
fn dead_letters_behind_an_exchange_name_the_source_and_line_of_their_record() {
    let scratch = Scratch::new();
    let mut lines: Vec<String> = (0..300).map(|n| format!(r#"{{"user":"u{}","amount":{n},"ts":{}}}"#, n % 7, 1000 + n)).collect();
    lines[122] = r#"{"user":"u3","amount":"lots","ts":1122}"#.to_owned();
    scratch.write("orders.jsonl", &(lines.join("\n") + "\n"));
    for parallelism in [1, 2] {
        let pipeline = scratch.pipeline(&format!(
            r#"
[pipeline]
name = "per-user"
parallelism = {parallelism}
batch_size = 16

[dead_letter]
type = "file"
path = "dead-{parallelism}.jsonl"

[[sources]]
name = "orders"
type = "file"
path = "orders.jsonl"
timestamp_field = "ts"

[[operators]]
name = "per-user"
plugin = "{{plugins}}/window-aggregate.wasm"
config = {{ window = {{ type = "tumbling", size = "10s" }}, group_by = ["user"], aggregates = [{{ function = "sum", field = "amount" }}] }}

[[sinks]]
type = "file"
path = "out-{parallelism}.jsonl"
"#
        ));
        run(&pipeline).unwrap_or_else(|error| panic!("parallelism {parallelism}: {error}"));
        let dead = scratch.json_lines(&format!("dead-{parallelism}.jsonl"));
        assert_eq!(dead.len(), 1, "parallelism {parallelism}: {dead:?}");
        assert_eq!(dead[0]["source"], "orders", "parallelism {parallelism}");
        assert_eq!(dead[0]["position"], 123, "parallelism {parallelism}: line 123 of the file");
        assert_eq!(dead[0]["operator"], "per-user");
        assert!(dead[0]["reason"].as_str().is_some_and(|reason| reason.contains("amount")), "{:?}", dead[0]);
    }
}

/// A window grouped by a dotted path writes the group as one top-level name
/// (`"shop.category"`); a second window after it, keyed by the same path, reads that name:
/// its exchange routes each group to its own instance and the totals stay per group (they
/// all fell into one `null` group when paths only read nested fields).
#[test]
fn a_stage_after_a_window_reads_its_dotted_group_fields_by_their_path() {
    let scratch = Scratch::new();
    let shops = ["books", "toys", "music"];
    let lines: Vec<String> =
        (0..3000).map(|n| format!(r#"{{"shop":{{"category":"{}"}},"ts":{}}}"#, shops[n % 7 % 3], 1000 + n * 10)).collect();
    scratch.write("orders.jsonl", &(lines.join("\n") + "\n"));
    let mut expected = BTreeMap::new();
    for n in 0..3000 {
        *expected.entry(shops[n % 7 % 3].to_owned()).or_insert(0i64) += 1;
    }
    for parallelism in [1, 2] {
        let pipeline = scratch.pipeline(&format!(
            r#"
[pipeline]
name = "dotted"
parallelism = {parallelism}

[[sources]]
type = "file"
path = "orders.jsonl"
timestamp_field = "ts"

[[operators]]
name = "per-second"
plugin = "{{plugins}}/window-aggregate.wasm"
config = {{ window = {{ type = "tumbling", size = "1s" }}, group_by = ["shop.category"], aggregates = [{{ function = "count", as = "n" }}] }}

[[operators]]
name = "per-hour"
plugin = "{{plugins}}/window-aggregate.wasm"
config = {{ window = {{ type = "tumbling", size = "1h" }}, group_by = ["shop.category"], aggregates = [{{ function = "sum", field = "n", as = "total" }}] }}

[[sinks]]
type = "file"
path = "out-{parallelism}.jsonl"
"#
        ));
        let summary = run(&pipeline).unwrap_or_else(|error| panic!("parallelism {parallelism}: {error}"));
        assert_eq!(summary.dead_letters, 0, "parallelism {parallelism}");
        let totals: BTreeMap<String, i64> = scratch
            .json_lines(&format!("out-{parallelism}.jsonl"))
            .iter()
            .map(|row| (row["shop.category"].as_str().unwrap_or("null").to_owned(), row["total"].as_i64().unwrap_or(-1)))
            .collect();
        assert_eq!(totals, expected, "parallelism {parallelism}");
    }
}

#[test]
fn a_source_lagging_30_seconds_closes_no_window_early() {
    let scratch = Scratch::new();
    let orders = orders(30_000, 30_000);
    // The lagging partition's orders come from their own, slower source: each record carries
    // padding, so that it is read well behind the other.
    let (lagging, others): (Vec<&Order>, Vec<&Order>) = orders.iter().partition(|order| order.partition == 0);
    let padding = "x".repeat(2_000);
    let lagging_lines: String =
        lagging.iter().map(|order| format!("{},\"padding\":\"{padding}\"}}\n", order.json().trim_end_matches('}'))).collect();
    let other_lines: String = others.iter().map(|order| order.json() + "\n").collect();
    scratch.write("lagging.jsonl", &lagging_lines);
    scratch.write("others.jsonl", &other_lines);
    let pipeline = scratch.pipeline(&format!(
        r#"
[pipeline]
name = "skewed"
parallelism = 2
batch_size = 100

[[sources]]
name = "others"
type = "file"
path = "others.jsonl"
timestamp_field = "ts"

[[sources]]
name = "lagging"
type = "file"
path = "lagging.jsonl"
timestamp_field = "ts"
{PER_CATEGORY}
[[sinks]]
type = "file"
path = "out.jsonl"
inputs = ["per-category"]

[[sinks]]
name = "late"
type = "file"
path = "late.jsonl"
inputs = ["per-category.late"]
"#
    ));
    let summary = run(&pipeline).expect("pipeline runs");
    assert_eq!(summary.sources.records, 30_000);
    assert!(scratch.json_lines("late.jsonl").is_empty(), "no record was late: no window closed before the lagging source passed it");
    let results = scratch.json_lines("out.jsonl");
    let expected = expected_windows(&orders);
    assert_eq!(results.len(), expected.len());
    assert_results_exact(&expected, &results);
}

/// The per-category window on Kafka: results to `windows`, late records to `late`.
fn kafka_pipeline(scratch: &Scratch, broker: &Broker) -> std::path::PathBuf {
    scratch.pipeline(&format!(
        r#"
[pipeline]
name = "exchange"
checkpoint_interval = "300ms"

[[sources]]
type = "kafka"
brokers = "{bootstrap}"
topics = ["orders"]
[sources.properties]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
{PER_CATEGORY}
[[sinks]]
name = "results"
type = "kafka"
brokers = "{bootstrap}"
topic = "windows"
inputs = ["per-category"]

[[sinks]]
name = "late"
type = "kafka"
brokers = "{bootstrap}"
topic = "late"
inputs = ["per-category.late"]
"#,
        bootstrap = broker.bootstrap()
    ))
}

fn kafka_records(orders: &[Order]) -> Vec<KafkaRecord> {
    orders
        .iter()
        .map(|order| {
            let mut record = KafkaRecord::new(&order.user, order.json(), order.timestamp, &[]);
            record.partition = order.partition as i32;
            record
        })
        .collect()
}

/// Reads the results until every expected window is there.
fn await_results(bootstrap: &str, expected: &BTreeMap<Window, Expected>, limit: Duration) -> Vec<Value> {
    await_results_in(bootstrap, "windows", expected, limit)
}

/// [`await_results`] from the topic `topic`.
fn await_results_in(bootstrap: &str, topic: &str, expected: &BTreeMap<Window, Expected>, limit: Duration) -> Vec<Value> {
    let mut results = Vec::new();
    wait_for(limit, "every window result", || {
        results = read_topic(bootstrap, topic, usize::MAX, Duration::from_secs(3)).iter().map(KafkaRecord::value_json).collect();
        let windows: BTreeSet<Window> = results
            .iter()
            .map(|result| (result["window_start"].as_i64().unwrap_or_default(), result["category"].as_str().unwrap_or_default().to_owned()))
            .collect();
        expected.keys().all(|window| windows.contains(window))
    });
    results
}

#[test]
fn two_kafka_processes_compute_each_category_window_once_through_a_repartition_topic_despite_a_kill_9() {
    let _serial = broker::broker_slot();
    let broker = Broker::start();
    for topic in ["orders", "windows", "late"] {
        broker.create_topic(topic, PARTITIONS as u32);
    }
    let orders = orders(60_000, 0);
    let records = kafka_records(&orders);
    let scratch = Scratch::new();
    let pipeline = kafka_pipeline(&scratch, &broker);
    produce(&broker.bootstrap(), "orders", &records[..20_000]);
    let mut first = SluiceProcess::start(scratch.dir.path(), &pipeline, "first.log");
    wait_for(Duration::from_secs(60), "the first process's partitions", || first.log_text().contains("partitions assigned"));
    let mut second = SluiceProcess::start(scratch.dir.path(), &pipeline, "second.log");
    wait_for(Duration::from_secs(60), "the second process's partitions", || second.log_text().contains("partitions assigned"));
    produce(&broker.bootstrap(), "orders", &records[20_000..40_000]);
    wait_for(Duration::from_secs(60), "results from the shared work", || {
        !read_topic(&broker.bootstrap(), "windows", 1, Duration::from_secs(2)).is_empty()
    });
    second.kill();
    produce(&broker.bootstrap(), "orders", &records[40_000..]);
    produce(&broker.bootstrap(), "orders", &watermark_pushers_of(PARTITIONS as i32, END_ORDER));
    let expected = expected_windows(&orders);
    let results = await_results(&broker.bootstrap(), &expected, Duration::from_secs(240));
    assert!(first.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", first.log_text());
    assert_results_exact(&expected, &results);
    let late = read_topic(&broker.bootstrap(), "late", usize::MAX, Duration::from_secs(3));
    assert!(late.is_empty(), "{} records were late", late.len());
    eprintln!(
        "{} (window, category) results exact across two processes and a kill -9; {} emitted in all (repeats after the kill: at-least-once)",
        expected.len(),
        results.len()
    );
}

/// The records in every partition of `topic` (its end offsets summed).
fn records_in(bootstrap: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("metadata client");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|topic| topic.partitions()).map(|partition| partition.id()).collect();
    partitions.iter().map(|partition| consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10)).expect("offsets").1).sum()
}

/// Source partitions without records follow the wall clock once idle; each advance of their
/// watermark is a marker to every partition of the repartition topic, so they advance at most
/// once a second, not at every poll of the consumer.
#[test]
fn idle_source_partitions_send_watermark_markers_at_most_once_a_second() {
    let _serial = broker::broker_slot();
    let broker = Broker::start();
    for topic in ["orders", "windows", "late"] {
        broker.create_topic(topic, PARTITIONS as u32);
    }
    let scratch = Scratch::new();
    let text = std::fs::read_to_string(kafka_pipeline(&scratch, &broker)).expect("pipeline");
    let pipeline = scratch
        .write("idle.toml", &text.replace("checkpoint_interval = \"300ms\"", "checkpoint_interval = \"300ms\"\nidle_timeout = \"100ms\""));
    let mut sluice = SluiceProcess::start(scratch.dir.path(), &pipeline, "sluice.log");
    let repartition = "exchange-per-category-repartition";
    wait_for(Duration::from_secs(60), "markers from the idle partitions", || {
        sluice.log_text().contains("created topic") && records_in(&broker.bootstrap(), repartition) > 0
    });
    let (before, since) = (records_in(&broker.bootstrap(), repartition), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let markers = records_in(&broker.bootstrap(), repartition) - before;
    let per_second = markers as f64 / since.elapsed().as_secs_f64() / (PARTITIONS * PARTITIONS) as f64;
    assert!(sluice.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", sluice.log_text());
    assert!(per_second <= 2.0, "{per_second:.1} markers a second from each source partition to each repartition partition");
}

/// Behind a keyed exchange, tasks wait for a watermark from every source partition known at
/// start: a source topic that does not exist yet would have its records judged late, so the
/// pipeline refuses to start, saying so.
#[test]
fn a_keyed_kafka_pipeline_refuses_to_start_before_its_source_topic_exists() {
    let _serial = broker::broker_slot();
    let broker = Broker::start();
    for topic in ["windows", "late"] {
        broker.create_topic(topic, PARTITIONS as u32);
    }
    let scratch = Scratch::new();
    let pipeline = kafka_pipeline(&scratch, &broker);
    let output = crate::support::sluice(scratch.dir.path(), &["run", &pipeline.display().to_string(), "--no-watch"]);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("topic \"orders\" does not exist: a pipeline with keyed exchanges"), "{log}");
}

/// The same pipeline run by a second consumer group (a reprocessing, another deployment) has
/// repartition topics of its own: it reads none of the first group's records.
#[test]
fn a_second_consumer_group_of_a_pipeline_reads_only_its_own_repartition_records() {
    let _serial = broker::broker_slot();
    let broker = Broker::start();
    for topic in ["orders", "windows", "late", "orders-again", "windows-again"] {
        broker.create_topic(topic, PARTITIONS as u32);
    }
    let scratch = Scratch::new();
    let first_orders = orders(8_000, 0);
    produce(&broker.bootstrap(), "orders", &kafka_records(&first_orders));
    produce(&broker.bootstrap(), "orders", &watermark_pushers_of(PARTITIONS as i32, END_ORDER));
    let pipeline = kafka_pipeline(&scratch, &broker);
    let mut first = SluiceProcess::start(scratch.dir.path(), &pipeline, "first.log");
    await_results(&broker.bootstrap(), &expected_windows(&first_orders), Duration::from_secs(180));
    assert!(first.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", first.log_text());

    // Other orders (every third of the first), read by the pipeline under another group.
    let again: Vec<Order> = first_orders.iter().step_by(3).cloned().collect();
    produce(&broker.bootstrap(), "orders-again", &kafka_records(&again));
    produce(&broker.bootstrap(), "orders-again", &watermark_pushers_of(PARTITIONS as i32, END_ORDER));
    let text = std::fs::read_to_string(&pipeline).expect("pipeline");
    let second_text = text
        .replace("topics = [\"orders\"]", "topics = [\"orders-again\"]\ngroup = \"reprocessing\"")
        .replace("topic = \"windows\"", "topic = \"windows-again\"");
    let second_pipeline = scratch.write("again.toml", &second_text);
    let mut second = SluiceProcess::start(scratch.dir.path(), &second_pipeline, "second.log");
    let expected = expected_windows(&again);
    let results = await_results_in(&broker.bootstrap(), "windows-again", &expected, Duration::from_secs(180));
    assert!(second.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", second.log_text());
    assert_results_exact(&expected, &results);
    assert!(second.log_text().contains("exchange-per-category-repartition.reprocessing"), "{}", second.log_text());
}

#[test]
fn a_kafka_partition_lagging_30_seconds_closes_no_window_early() {
    let _serial = broker::broker_slot();
    let broker = Broker::start();
    for topic in ["orders", "windows", "late"] {
        broker.create_topic(topic, PARTITIONS as u32);
    }
    let orders = orders(40_000, 30_000);
    let scratch = Scratch::new();
    let pipeline = kafka_pipeline(&scratch, &broker);
    // Partition 0's orders are stamped 30 s behind the others at every point of the stream.
    produce(&broker.bootstrap(), "orders", &kafka_records(&orders));
    produce(&broker.bootstrap(), "orders", &watermark_pushers_of(PARTITIONS as i32, END_ORDER));
    let mut sluice = SluiceProcess::start(scratch.dir.path(), &pipeline, "sluice.log");
    let expected = expected_windows(&orders);
    let results = await_results(&broker.bootstrap(), &expected, Duration::from_secs(180));
    assert!(sluice.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", sluice.log_text());
    let late = read_topic(&broker.bootstrap(), "late", usize::MAX, Duration::from_secs(3));
    assert!(late.is_empty(), "{} records were late: a window closed before the lagging partition passed it", late.len());
    assert_results_exact(&expected, &results);
    let repeated = results.len() - expected.len();
    assert_eq!(repeated, 0, "one result per window");
}

/// Records of four keys, one line each, shuffled in blocks of 20 (up to 190 ms out of order);
/// every event time distinct.
fn shuffled_readings() -> Vec<(u64, &'static str, i64, i64)> {
    let mut readings: Vec<(u64, &'static str, i64, i64)> =
        (0..2000u64).map(|n| (n, ["a", "b", "c", "d"][(n * 7 % 4) as usize], (n * 13 % 97) as i64, n as i64 * 10)).collect();
    for block in readings.chunks_mut(20) {
        block.reverse();
    }
    readings
}

fn moving_averages(parallelism: usize, batch_size: usize) -> BTreeMap<u64, f64> {
    let scratch = Scratch::new();
    let input: String = shuffled_readings()
        .iter()
        .map(|(n, key, value, ts)| format!("{}\n", serde_json::json!({"n": n, "key": key, "value": value, "ts": ts})))
        .collect();
    scratch.write("readings.jsonl", &input);
    let path = scratch.pipeline_to_files(&format!(
        r#"
[pipeline]
name = "ordered"
parallelism = {parallelism}
batch_size = {batch_size}
out_of_orderness = "200ms"

[[sources]]
type = "file"
path = "readings.jsonl"
timestamp_field = "ts"

[[operators]]
name = "tidy"
plugin = "{{plugins}}/project.wasm"
config = {{ drop = ["ts"] }}

[[operators]]
name = "average"
plugin = "{{plugins}}/moving-average.wasm"
order = "event-time"
config = {{ field = "value", group_by = ["key"], averages = [{{ type = "simple", records = 2, as = "sma" }}] }}
"#
    ));
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 0);
    let records = scratch.json_lines("out.jsonl");
    assert_eq!(records.len(), 2000, "every reading comes out once");
    records.iter().map(|record| (record["n"].as_u64().expect("n"), record["sma"].as_f64().expect("sma"))).collect()
}

/// With `order = "event-time"`, an operator whose results depend on the order of a key's
/// records (a moving average over the last two) gets them in event-time order however many
/// instances of the stage before it send them, and however out of order the file holds them:
/// before, 4 instances gave wrong averages for most records.
#[test]
fn an_operator_in_event_time_order_gets_the_same_results_at_any_parallelism() {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    let mut in_time_order = shuffled_readings();
    in_time_order.sort_by_key(|(_, _, _, ts)| *ts);
    let expected: BTreeMap<u64, f64> = in_time_order
        .iter()
        .map(|(n, key, value, _)| {
            let average = last.insert(key, *value).map_or(*value as f64, |previous| (previous + value) as f64 / 2.0);
            (*n, average)
        })
        .collect();
    for (parallelism, batch_size) in [(1, 1), (4, 1), (2, 7), (4, 256)] {
        assert_eq!(moving_averages(parallelism, batch_size), expected, "parallelism {parallelism}, batch size {batch_size}");
    }
}
