//! The soak test (`scripts/soak.sh`; ignored by the normal suite): a Kafka pipeline under
//! steady load for `SLUICE_SOAK_SECONDS` (default 600) with a hot swap every 30 s, an operator
//! that traps on 1 record in 10,000, the broker frozen for 20 s (SIGSTOP/SIGCONT) and the
//! pipeline killed with SIGKILL and restarted. At the end every record is accounted for (in
//! the output or, with its reason, in the dead-letter topic), and the resident memory of the
//! process stayed bounded and stopped growing: its curve is printed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::broker::{self, Broker, KafkaRecord, SluiceProcess, produce, read_topic, wait_for};
use crate::support::{Scratch, plugin};

const PIPELINE: &str = r#"
[pipeline]
name = "soak"
checkpoint_interval = "2s"

[[sources]]
name = "events"
type = "kafka"
brokers = "{bootstrap}"
topics = ["events"]
[sources.properties]
"session.timeout.ms" = 45000

[[operators]]
name = "fragile"
plugin = "{plugin}"
config = { trap_on = "poison" }

[[sinks]]
type = "kafka"
brokers = "{bootstrap}"
topic = "out"

[dead_letter]
type = "kafka"
brokers = "{bootstrap}"
topic = "dead"
"#;

/// `sluice run`'s admin API on a free port (the address is read from the log).
const ADMIN: [&str; 3] = ["--admin", "127.0.0.1:0", "--no-watch"];

/// Records per second offered to the pipeline.
const RATE: u64 = 1_500;

fn seconds() -> u64 {
    std::env::var("SLUICE_SOAK_SECONDS").ok().and_then(|seconds| seconds.parse().ok()).unwrap_or(600)
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The admin address reported in the log by the process started after `earlier` processes
/// (the log file is shared by the processes before and after the kill).
fn admin_address(process: &SluiceProcess, earlier: usize) -> String {
    let mut address = String::new();
    wait_for(Duration::from_secs(60), "the admin address", || {
        let log = process.log_text();
        let reported = log.lines().filter_map(|line| line.split_once("admin API listening address=").map(|(_, rest)| rest)).nth(earlier);
        address = reported.and_then(|rest| rest.split_whitespace().next().map(str::to_owned)).unwrap_or_default();
        !address.is_empty()
    });
    address
}

/// `{"id": n, ...}` with a `poison` mark on one record in 10,000.
fn record(n: u64) -> KafkaRecord {
    let poison = if n % 10_000 == 9_999 { r#","mark":"poison""# } else { "" };
    let value = format!(r#"{{"id":{n},"user":"user-{}","amount":{}{poison}}}"#, n % 97, n % 1000);
    KafkaRecord::new(&format!("user-{}", n % 97), value, crate::kafka::EVENT_TIME_ZERO + n as i64, &[])
}

fn ids(records: &[KafkaRecord]) -> Vec<u64> {
    records.iter().filter_map(|record| record.value_json()["id"].as_u64()).collect()
}

#[test]
#[ignore = "a soak of SLUICE_SOAK_SECONDS (default 10 minutes): run by scripts/soak.sh"]
fn soak_under_load_with_swaps_traps_a_frozen_broker_and_a_kill() {
    let _serial = broker::broker_slot();
    let total_seconds = seconds();
    let broker = Broker::start();
    for (topic, partitions) in [("events", 4), ("out", 4), ("dead", 1)] {
        broker.create_topic(topic, partitions);
    }
    let scratch = Scratch::new();
    let pipeline = scratch.write(
        "soak.toml",
        &PIPELINE.replace("{bootstrap}", &broker.bootstrap()).replace("{plugin}", &plugin("misbehave").display().to_string()),
    );
    let mut sluice = SluiceProcess::start_with(scratch.dir.path(), &pipeline, "sluice.log", &[], &ADMIN);
    let mut admin = admin_address(&sluice, 0);
    // The load: RATE records per second for 80 % of the run, in chunks of 500.
    let produced = Arc::new(AtomicU64::new(0));
    let loading = Arc::new(AtomicBool::new(true));
    let load_seconds = total_seconds * 8 / 10;
    let producer = {
        let (produced, loading, bootstrap) = (produced.clone(), loading.clone(), broker.bootstrap());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = 0u64;
            while started.elapsed() < Duration::from_secs(load_seconds) {
                let due = (started.elapsed().as_secs_f64() * RATE as f64) as u64;
                if due < next + 500 {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                let chunk: Vec<KafkaRecord> = (next..next + 500).map(record).collect();
                produce(&bootstrap, "events", &chunk);
                next += 500;
                produced.store(next, Ordering::Relaxed);
            }
            loading.store(false, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let (freeze_at, kill_at) = (total_seconds * 35 / 100, total_seconds * 60 / 100);
    let (mut frozen, mut killed, mut swaps, mut refused_swaps) = (false, false, 0u32, 0u32);
    let mut curve: Vec<(u64, f64)> = Vec::new();
    while loading.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let now = started.elapsed().as_secs();
        if let Some(rss) = sluice.pid().and_then(rss_mib) {
            curve.push((now, rss));
        }
        if !frozen && now >= freeze_at {
            eprintln!("soak {now} s: freezing the broker for 20 s");
            broker.signal(libc::SIGSTOP);
            std::thread::sleep(Duration::from_secs(20));
            broker.signal(libc::SIGCONT);
            frozen = true;
        }
        if !killed && now >= kill_at {
            eprintln!("soak {now} s: kill -9 and restart");
            sluice.kill();
            sluice = SluiceProcess::start_with(scratch.dir.path(), &pipeline, "sluice.log", &[], &ADMIN);
            admin = admin_address(&sluice, 1);
            killed = true;
        }
        if now / 30 > u64::from(swaps + refused_swaps) {
            // Alternate two configurations of the operator: each swap is a new version.
            let config = if swaps % 2 == 0 { r#"{"trap_on":"poison","spin_on":"never-there"}"# } else { r#"{"trap_on":"poison"}"# };
            let body = format!(r#"{{"path":{:?},"config":{config}}}"#, plugin("misbehave").display().to_string());
            let url = format!("http://{admin}/pipelines/soak/operators/fragile/swap");
            let answer = ureq::post(&url).header("content-type", "application/json").send(body);
            match answer {
                Ok(response) if response.status() == 200 => swaps += 1,
                other => {
                    refused_swaps += 1;
                    eprintln!("soak {now} s: swap not done: {:?}", other.map(|response| response.status()));
                }
            }
        }
    }
    producer.join().expect("the producer thread");
    let produced = produced.load(Ordering::Relaxed);
    eprintln!("soak: {produced} records produced; waiting for the pipeline to catch up");
    let expected: BTreeSet<u64> = (0..produced).collect();
    let poisoned: BTreeSet<u64> = (0..produced).filter(|n| n % 10_000 == 9_999).collect();
    let (mut out, mut dead) = (Vec::new(), Vec::new());
    wait_for(Duration::from_secs(600), "every record in the output or the dead-letter topic", || {
        if let Some(rss) = sluice.pid().and_then(rss_mib) {
            curve.push((started.elapsed().as_secs(), rss));
        }
        out = ids(&read_topic(&broker.bootstrap(), "out", usize::MAX, Duration::from_secs(5)));
        dead = ids(&read_topic(&broker.bootstrap(), "dead", usize::MAX, Duration::from_secs(2)));
        let seen: BTreeSet<u64> = out.iter().chain(&dead).copied().collect();
        expected.is_subset(&seen)
    });
    if let Some(rss) = sluice.pid().and_then(rss_mib) {
        curve.push((started.elapsed().as_secs(), rss));
    }
    assert!(sluice.terminate(Duration::from_secs(60)), "clean exit; log:\n{}", sluice.log_text());
    let distinct_out: BTreeSet<u64> = out.iter().copied().collect();
    let distinct_dead: BTreeSet<u64> = dead.iter().copied().collect();
    eprintln!("soak: RSS (MiB) by second: {}", curve.iter().map(|(at, rss)| format!("{at}:{rss:.0}")).collect::<Vec<_>>().join(" "));
    eprintln!(
        "soak: {produced} in; {} out ({} distinct, {} sent again after the kill); {} dead letters ({} distinct); {swaps} swaps, \
         {refused_swaps} not done",
        out.len(),
        distinct_out.len(),
        out.len() - distinct_out.len(),
        dead.len(),
        distinct_dead.len()
    );
    assert_eq!(distinct_dead, poisoned, "exactly the poisoned records are dead letters");
    assert!(distinct_out.is_disjoint(&poisoned), "no poisoned record passed");
    assert_eq!(distinct_out.len() + distinct_dead.len(), produced as usize, "every record accounted for");
    assert!(frozen && killed && swaps >= 2, "the soak did what it is for");
    // Flat memory: bounded (librdkafka's prefetch queue alone may hold 64 MiB while a consumer
    // catches up), and no longer growing at the end: the last minute stays within 10 % (and
    // 8 MiB) of the most the minute before it needed.
    let end = started.elapsed().as_secs();
    let most = |from: u64, to: u64| curve.iter().filter(|(at, _)| (from..to).contains(at)).map(|(_, rss)| *rss).fold(0.0, f64::max);
    let (before, last) = (most(end.saturating_sub(120), end.saturating_sub(60)), most(end.saturating_sub(60), end + 1));
    eprintln!(
        "soak: RSS {} MiB at most; the minute before the last {before:.0} MiB, the last {last:.0} MiB",
        curve.iter().map(|(_, rss)| *rss).fold(0.0, f64::max)
    );
    assert!(curve.iter().all(|(_, rss)| *rss <= 256.0), "RSS stays below 256 MiB");
    assert!(last <= before * 1.1 + 8.0, "RSS still grew at the end: {before:.0} then {last:.0} MiB");
}
