//! Seeing inside a running pipeline: `/metrics` scraped while the real binary runs (exact
//! counts where they are exact, sane histograms, a real Prometheus text parser), and the web
//! console loaded by a real browser (headless Chromium).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};

use crate::support::{AdminRun, Scratch, repo_root};

/// A scrape, parsed by `prometheus-parse` (it fails on what Prometheus would not read).
fn scrape(run: &AdminRun) -> Scrape {
    let text = run.get("/metrics");
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("the scrape parses as Prometheus text")
}

/// The sum of the samples of `metric` whose labels include `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric && labels.iter().all(|(name, value)| sample.labels.get(name) == Some(*value)))
        .map(|sample| match &sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        })
        .sum()
}

/// Scrapes until `ready` holds (bounded).
fn scrape_until(run: &AdminRun, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = scrape(run);
        if ready(&scrape) {
            return scrape;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let log = run.stderr.lock().expect("log").clone();
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("{what}: not reached in 60 s; last scrape:\n{}\nthe log's end:\n{}", run.get("/metrics"), tail.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_scraped_during_a_run_count_records_dead_letters_and_swaps_exactly() {
    let scratch = Scratch::new();
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "metered"
parallelism = 2

[[sources]]
name = "lines"
type = "stdin"

[[operators]]
name = "pricey"
plugin = "{plugins}/filter.wasm"
config = { field = "price", op = "gt", value = 10 }

[[sinks]]
name = "kept"
type = "file"
path = "kept.jsonl"

[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let mut run = AdminRun::start(&path, &["--no-watch"], true);
    run.wait_for_pipeline("metered");
    assert_eq!(run.get("/ready"), "ready", "a running pipeline is ready");
    let mut input = String::new();
    for n in 0..1000 {
        input.push_str(&format!("{{\"n\":{n},\"price\":{}}}\n", n % 100));
    }
    for n in 0..7 {
        input.push_str(&format!("not json {n}\n"));
    }
    let mut stdin = run.child.0.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    stdin.flush().expect("flush stdin");
    let kept = 1000 - 10 * 11; // prices 0..=10 of every hundred are dropped
    let pipeline = ("pipeline", "metered");
    let scrape = scrape_until(&run, "every record written and dead-lettered", |scrape| {
        value(scrape, "sluice_records_in_total", &[pipeline, ("node", "kept")]) == kept as f64
            && value(scrape, "sluice_dead_letters_total", &[pipeline]) == 7.0
    });
    assert_eq!(value(&scrape, "sluice_records_out_total", &[pipeline, ("node", "lines"), ("kind", "source")]), 1007.0);
    assert_eq!(value(&scrape, "sluice_records_in_total", &[pipeline, ("node", "pricey")]), 1007.0);
    assert_eq!(value(&scrape, "sluice_records_out_total", &[pipeline, ("node", "pricey")]), kept as f64);
    assert_eq!(value(&scrape, "sluice_dead_letters_total", &[pipeline, ("node", "pricey"), ("reason", "refused")]), 7.0);
    let bytes_in = value(&scrape, "sluice_bytes_in_total", &[pipeline, ("node", "pricey")]);
    assert_eq!(bytes_in as usize, input.lines().map(str::len).sum::<usize>(), "bytes in are the records' bytes");
    // The filter passes the records it keeps by position (its input's whole buffer, field
    // indexes included, goes on): bytes out still count only the records kept.
    let kept_bytes =
        input.lines().filter(|line| line.starts_with('{')).enumerate().filter(|(n, _)| n % 100 > 10).map(|(_, line)| line.len());
    let kept_bytes: usize = kept_bytes.sum();
    assert_eq!(
        value(&scrape, "sluice_bytes_out_total", &[pipeline, ("node", "pricey")]) as usize,
        kept_bytes,
        "bytes out are the kept records'"
    );
    assert_eq!(value(&scrape, "sluice_bytes_in_total", &[pipeline, ("node", "kept")]) as usize, kept_bytes, "what the sink took");
    check_histograms(&scrape);
    let refused_swaps = scrape.samples.iter().find(|sample| {
        sample.metric == "sluice_swaps_total"
            && sample.labels.get("operator") == Some("pricey")
            && sample.labels.get("result") == Some("refused")
    });
    assert!(refused_swaps.is_some(), "the refused swaps' series is there before any swap, for alerts to read");
    let digest = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "sluice_operator_version" && sample.labels.get("operator") == Some("pricey"))
        .and_then(|sample| sample.labels.get("plugin_digest").map(str::to_owned))
        .expect("the operator's version is an info metric");

    // A swap (a new configuration of the running plugin, no path given) is counted, and the
    // version follows.
    let body = r#"{"config": {"field": "price", "op": "gt", "value": 50}}"#;
    let url = format!("http://{}/pipelines/metered/operators/pricey/swap", run.address);
    let answer = ureq::post(&url).content_type("application/json").send(body.as_bytes()).expect("the swap is accepted");
    assert_eq!(answer.status(), 200);
    let scrape = scrape_until(&run, "the swap counted", |scrape| {
        value(scrape, "sluice_swaps_total", &[pipeline, ("operator", "pricey"), ("result", "swapped")]) == 1.0
    });
    assert_eq!(value(&scrape, "sluice_operator_version", &[pipeline, ("operator", "pricey"), ("plugin_digest", &digest)]), 1.0);
    assert!(has_histogram_count(&scrape, "sluice_swap_stall_seconds", 1.0), "the swap's stall is observed");

    drop(stdin);
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "sluice ends cleanly: {}", run.stderr.lock().expect("log"));
    let written = std::fs::read_to_string(scratch.path("kept.jsonl")).expect("kept.jsonl");
    assert_eq!(written.lines().count(), kept, "the sink wrote what the metric counted");
}

/// A histogram named `name` whose total count is `count` exists.
fn has_histogram_count(scrape: &Scrape, name: &str, count: f64) -> bool {
    scrape.samples.iter().any(|sample| {
        sample.metric == name
            && matches!(&sample.value, Value::Histogram(buckets) if buckets.last().is_some_and(|last| last.count == count))
    })
}

/// Every histogram has cumulative buckets ending at +Inf, and call times are plausible.
fn check_histograms(scrape: &Scrape) {
    let mut seen = BTreeMap::new();
    for sample in &scrape.samples {
        let Value::Histogram(buckets) = &sample.value else { continue };
        assert!(buckets.windows(2).all(|pair| pair[0].less_than < pair[1].less_than && pair[0].count <= pair[1].count), "{sample:?}");
        assert_eq!(buckets.last().map(|last| last.less_than), Some(f64::INFINITY), "{}", sample.metric);
        *seen.entry(sample.metric.clone()).or_insert(0.0) += buckets.last().map_or(0.0, |last| last.count);
    }
    for histogram in ["sluice_operator_call_seconds", "sluice_operator_record_seconds", "sluice_end_to_end_latency_seconds"] {
        assert!(seen.get(histogram).is_some_and(|count| *count > 0.0), "{histogram} observed nothing: {seen:?}");
    }
    // No process call of a filter over 1,007 small records takes a minute.
    let slow = scrape.samples.iter().filter(|sample| sample.metric == "sluice_operator_call_seconds").any(|sample| {
        matches!(&sample.value, Value::Histogram(buckets)
            if buckets.iter().find(|bucket| bucket.less_than >= 60.0).is_some_and(|bucket| bucket.count < buckets.last().map_or(0.0, |last| last.count)))
    });
    assert!(!slow, "a call took over a minute");
}

// ---------------------------------------------------------------------------------------
// The web console in a browser

/// Chromium from Debian, as the test tooling installs it.
fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(path.is_file(), "{} is missing: scripts/test.sh installs Debian's chromium", path.display());
    path
}

/// Loads `url` in headless Chromium and returns the page's DOM once its scripts ran for a few
/// seconds; also saves a screenshot when asked. Bounded, and killed by PID if it hangs.
fn load_page(url: &str, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut command = Command::new(chromium());
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars"])
        .args(["--virtual-time-budget=6000", "--window-size=1400,1800"])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let mut child = command.arg(url).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("chromium starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let started = Instant::now();
    while child.try_wait().expect("chromium's status").is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish loading {url} in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().expect("the reader thread")
}

/// The value of attribute `name` of the element whose `data-node` is `node`.
fn node_attribute(dom: &str, node: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!("data-node=\"{node}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>')?];
    let value = tag.split(&format!("{name}=\"")).nth(1)?;
    Some(value[..value.find('"')?].to_owned())
}

#[test]
fn the_console_shows_every_node_live_counts_results_and_a_swap_in_a_browser() {
    let scratch = Scratch::new();
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "dashboard"
batch_linger = "50ms"

[[sources]]
name = "clicks"
type = "generator"
rate = 4000
event_interval = "50ms"

[[operators]]
name = "orders-only"
plugin = "{plugins}/filter.wasm"
config = { field = "event_type", op = "eq", value = "order" }

[[operators]]
name = "revenue"
plugin = "{plugins}/window-aggregate.wasm"
[operators.config]
window = { type = "tumbling", size = "10s" }
group_by = ["category"]
aggregates = [{ function = "sum", field = "price", as = "revenue" }, { function = "count", as = "orders" }]

[[operators]]
name = "strict"
inputs = ["clicks"]
plugin = "{plugins}/dedupe.wasm"
config = { keys = ["no_such_field"], horizon = "1m", missing = "reject" }

[[sinks]]
name = "live"
type = "console"
inputs = ["revenue"]

[[sinks]]
name = "archive"
type = "file"
path = "revenue.jsonl"
inputs = ["revenue"]

[[sinks]]
name = "unique"
type = "file"
path = "unique.jsonl"
inputs = ["strict", "revenue"]
"#,
    );
    let run = AdminRun::start(&path, &["--no-watch"], false);
    run.wait_for_pipeline("dashboard");
    let url = format!("http://{}/", run.address);

    let first = load_page(&url, None);
    for node in ["clicks", "orders-only", "revenue", "live", "archive"] {
        assert!(node_attribute(&first, node, "data-records").is_some(), "the graph shows node {node}:\n{first}");
    }
    assert!(first.contains("id=\"operators\"") && first.contains("orders-only"), "the operators table is there");
    // strict (column 1) → unique (column 3) would run through revenue's column: it dips below.
    let edge_class = |from: &str, to: &str| {
        let at = first.find(&format!("data-from=\"{from}\" data-to=\"{to}\""))?;
        let tag = &first[first[..at].rfind('<')?..at];
        Some(tag.split("class=\"").nth(1)?.split('"').next()?.to_owned())
    };
    assert_eq!(edge_class("strict", "unique").as_deref(), Some("edge skip"), "{first}");
    assert_eq!(edge_class("clicks", "strict").as_deref(), Some("edge"), "{first}");
    let counted = |dom: &str| node_attribute(dom, "clicks", "data-records").and_then(|text| text.parse::<u64>().ok()).unwrap_or(0);
    let second = load_page(&url, None);
    assert!(counted(&second) > counted(&first), "the counts move between two reads: {} then {}", counted(&first), counted(&second));
    assert!(second.contains("data-sink=\"live\""), "the console sink's results are shown");
    let dead_letters = |node: &str| node_attribute(&second, node, "data-dead-letters").and_then(|text| text.parse::<u64>().ok());
    assert!(dead_letters("strict").is_some_and(|count| count > 0), "the refusing operator shows its dead letters:\n{second}");
    assert_eq!(dead_letters("orders-only"), Some(0), "an operator that refuses nothing shows none");

    // A swap through the API appears in the history on the page.
    let body = format!(
        r#"{{"path": "{}", "config": {{"field": "event_type", "op": "eq", "value": "cart"}}}}"#,
        crate::support::plugin("filter").display()
    );
    let swap = ureq::post(format!("http://{}/pipelines/dashboard/operators/orders-only/swap", run.address))
        .content_type("application/json")
        .send(body.as_bytes())
        .expect("the swap is accepted");
    assert_eq!(swap.status(), 200);
    let after = load_page(&url, None);
    let history = &after[after.find("id=\"swaps\"").expect("the swap table")..];
    assert!(history.contains("orders-only") && history.contains("swapped"), "the swap is in the history on the page");

    let artefacts = repo_root().join("build/test-artefacts");
    std::fs::create_dir_all(&artefacts).expect("the artefacts directory");
    let screenshot = artefacts.join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    load_page(&url, Some(&screenshot));
    let size = std::fs::metadata(&screenshot).map(|metadata| metadata.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot of the console is saved in {} ({size} bytes)", screenshot.display());
    drop(run);
}

/// A new broker with 2,000 records in the 2-partition topic `topic`, and a pipeline of that
/// name copying them into a file through `operators`, checkpointing every
/// `checkpoint_interval`.
fn kafka_copy(scratch: &Scratch, topic: &str, checkpoint_interval: &str, operators: &str) -> (crate::broker::Broker, std::path::PathBuf) {
    use crate::broker::{Broker, produce};
    let broker = Broker::start();
    broker.create_topic(topic, 2);
    produce(&broker.bootstrap(), topic, &crate::kafka::keyed_records(2_000, 20));
    let path = scratch.pipeline(&format!(
        r#"
[pipeline]
name = "{topic}"
checkpoint_interval = "{checkpoint_interval}"

[[sources]]
name = "input"
type = "kafka"
brokers = "{bootstrap}"
topics = ["{topic}"]
start = "earliest"
{operators}
[[sinks]]
name = "copy"
type = "file"
path = "copy.jsonl"
"#,
        bootstrap = broker.bootstrap()
    ));
    (broker, path)
}

#[test]
fn a_kafka_source_reports_each_partitions_consumer_lag_and_its_offset_commits() {
    let _serial = crate::broker::broker_slot();
    let scratch = Scratch::new();
    let operator =
        "\n[[operators]]\nname = \"has-seq\"\nplugin = \"{plugins}/filter.wasm\"\nconfig = { field = \"seq\", op = \"exists\" }\n";
    let (_broker, path) = kafka_copy(&scratch, "lagging", "1s", operator);
    let run = AdminRun::start(&path, &["--no-watch"], false);
    let pipeline = ("pipeline", "lagging");
    let caught_up = |scrape: &Scrape, partition: &str| {
        scrape.samples.iter().any(|sample| {
            sample.metric == "sluice_kafka_consumer_lag"
                && sample.labels.get("topic") == Some("lagging")
                && sample.labels.get("partition") == Some(partition)
                && sample.value == Value::Gauge(0.0)
        })
    };
    let scrape = scrape_until(&run, "every record copied, both partitions caught up, offsets committed", |scrape| {
        value(scrape, "sluice_records_in_total", &[pipeline, ("node", "copy")]) == 2_000.0
            && ["0", "1"].iter().all(|partition| caught_up(scrape, partition))
            && value(scrape, "sluice_kafka_commits_total", &[pipeline, ("source", "input"), ("result", "sent")]) >= 1.0
    });
    assert_eq!(value(&scrape, "sluice_kafka_commits_total", &[pipeline, ("result", "failed")]), 0.0);
    // Each partition is a task of its own, with its watermark and checkpoints.
    for partition in ["0", "1"] {
        let task = format!("input[lagging/{partition}]");
        assert!(value(&scrape, "sluice_checkpoints_total", &[pipeline, ("task", &task), ("result", "ok")]) >= 1.0, "{task} checkpoints");
        assert!(value(&scrape, "sluice_watermark_milliseconds", &[pipeline, ("task", &task)]) > 0.0, "{task} has a watermark");
    }
    drop(run);
}

/// The consumer lag is what is left to read after the position this process has read to, not
/// after the last committed offset: with no checkpoint yet (nothing committed), a partition
/// read to its end shows 0.
#[test]
fn the_consumer_lag_follows_what_was_read_before_any_commit() {
    let _serial = crate::broker::broker_slot();
    let scratch = Scratch::new();
    let (_broker, path) = kafka_copy(&scratch, "read", "1h", "");
    let run = AdminRun::start(&path, &["--no-watch"], false);
    let pipeline = ("pipeline", "read");
    let lag = |scrape: &Scrape, partition: &str| {
        scrape.samples.iter().find_map(|sample| {
            (sample.metric == "sluice_kafka_consumer_lag"
                && sample.labels.get("topic") == Some("read")
                && sample.labels.get("partition") == Some(partition))
            .then(|| sample.value.clone())
        })
    };
    let scrape = scrape_until(&run, "every record copied and both partitions' lag 0", |scrape| {
        value(scrape, "sluice_records_in_total", &[pipeline, ("node", "copy")]) == 2_000.0
            && ["0", "1"].iter().all(|partition| lag(scrape, partition) == Some(Value::Gauge(0.0)))
    });
    assert_eq!(value(&scrape, "sluice_kafka_commits_total", &[pipeline, ("result", "sent")]), 0.0, "nothing committed yet");
    drop(run);
}

/// Records a source drops as late (`late_records = "drop"`) are counted while the pipeline
/// runs, not only in the summary at its end.
#[test]
fn records_a_source_drops_as_late_are_counted_in_a_metric() {
    let scratch = Scratch::new();
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "dropping"
late_records = "drop"
out_of_orderness = "1s"

[[sources]]
name = "lines"
type = "stdin"
timestamp_field = "ts"

[[operators]]
name = "everything"
plugin = "{plugins}/filter.wasm"
config = { field = "ts", op = "exists" }

[[sinks]]
type = "file"
path = "kept.jsonl"
"#,
    );
    let mut run = AdminRun::start(&path, &["--no-watch"], true);
    run.wait_for_pipeline("dropping");
    // Each block of 10 s ends with three records 5 s behind it: late by 4 s.
    let mut input = String::new();
    for block in 0..5 {
        for n in 0..10 {
            input.push_str(&format!("{{\"ts\":{}}}\n", block * 10_000 + n * 1_000));
        }
        for n in 0..3 {
            input.push_str(&format!("{{\"ts\":{}}}\n", block * 10_000 + 4_000 + n));
        }
    }
    let mut stdin = run.child.0.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    stdin.flush().expect("flush stdin");
    let labels = [("pipeline", "dropping"), ("source", "lines")];
    // The drops are counted as the source reads; the records it passes on, once their tasks
    // have them (a batch may still linger): both, then.
    let scrape = scrape_until(&run, "the late records counted and the others passed on", |scrape| {
        value(scrape, "sluice_records_out_total", &[("node", "lines"), ("kind", "source")]) == 50.0
            && value(scrape, "sluice_source_late_dropped_total", &labels) == 15.0
    });
    assert_eq!(value(&scrape, "sluice_source_late_dropped_total", &labels), 15.0, "not one more");
    drop(stdin);
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "sluice ends cleanly: {}", run.stderr.lock().expect("log"));
}

/// A sink that stops taking records (a FIFO nobody reads) shows as back-pressure while the
/// stall lasts: the waiting task's counter grows between scrapes, though no send completes.
#[test]
fn back_pressure_is_counted_while_a_stall_lasts() {
    let scratch = Scratch::new();
    let fifo = scratch.path("stalled.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo");
    // Opened for reading and writing, so that the sink's open does not wait; never read.
    let _held = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).expect("the FIFO opens");
    let path = scratch.pipeline(&format!(
        r#"
[pipeline]
name = "stalled"
parallelism = 1

[[sources]]
type = "generator"
rate = 50000

[[operators]]
name = "all"
plugin = "{{plugins}}/filter.wasm"
config = {{ field = "user_id", op = "exists" }}

[[sinks]]
type = "file"
path = "{}"
"#,
        fifo.display()
    ));
    let run = AdminRun::start(&path, &["--no-watch"], false);
    run.wait_for_pipeline("stalled");
    let pipeline = ("pipeline", "stalled");
    let blocked = |scrape: &Scrape| value(scrape, "sluice_task_backpressured_seconds_total", &[pipeline]);
    let first = scrape_until(&run, "the task blocked a while", |scrape| blocked(scrape) > 0.5);
    let written = value(&first, "sluice_records_in_total", &[pipeline, ("kind", "sink")]);
    let later = scrape_until(&run, "the stall counted as it lasts", |scrape| blocked(scrape) > blocked(&first) + 0.5);
    assert_eq!(value(&later, "sluice_records_in_total", &[pipeline, ("kind", "sink")]), written, "the sink took nothing meanwhile");
}

/// A client that opens a connection and sends no request head (or a byte now and then) is
/// closed once the head's deadline passes, and connections past a peer's cap are closed at once:
/// before, each held a descriptor for as long as it liked, and enough of them left the process
/// none for its checkpoints.
#[test]
fn silent_clients_are_closed_and_connections_are_capped() {
    use std::io::Read;
    let scratch = Scratch::new();
    let path = scratch
        .pipeline("[pipeline]\nname = \"idle\"\n\n[[sources]]\ntype = \"stdin\"\n\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n");
    let run = AdminRun::start(&path, &["--no-watch"], true);
    run.wait_for_pipeline("idle");
    let connect = || {
        let mut stream = std::net::TcpStream::connect(&run.address).expect("connects");
        stream.write_all(b"GET /metrics HTTP/1.1\r\n").expect("a partial head");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
        stream
    };
    // 64 per peer address (all of these come from 127.0.0.1): the 65th is closed without an
    // answer, before any deadline.
    let mut held: Vec<std::net::TcpStream> = (0..64).map(|_| connect()).collect();
    let started = Instant::now();
    let mut over = connect();
    assert_eq!(over.read(&mut [0; 64]).unwrap_or(0), 0, "closed");
    assert!(started.elapsed() < Duration::from_secs(5), "closed at once, not at a deadline");
    // The others are closed at the head's deadline (10 s), each without an answer.
    for stream in &mut held {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
    }
    assert!(started.elapsed() < Duration::from_secs(25), "closed at the deadline: {:?}", started.elapsed());
    assert_eq!(run.get("/ready"), "ready", "answered once they are gone");
}
