//! Nexmark queries over the built-in generator, in process, into a discarding sink: events per
//! second, per core, and CPU time per event, one task per core.
//!
//! `cargo bench -p sluice --bench nexmark` (after scripts/build-plugins.sh); `NEXMARK_EVENTS`
//! sets the events per run (default 2,000,000), `NEXMARK_QUERIES` the queries (default all,
//! e.g. `q5,q7`). Prints figures; asserts nothing.

#[path = "common.rs"]
mod common;

use common::process_cpu_time;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice::wasm::{PluginRegistry, WasmEngine};

const ROUNDS: usize = 3;
const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"];

fn main() -> std::process::ExitCode {
    match settings() {
        Ok((events, queries)) => {
            bench(events, &queries);
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The events per run and the queries, from `NEXMARK_EVENTS` and `NEXMARK_QUERIES`; a value
/// that is not one is said, rather than replaced by the default or met with a panic.
fn settings() -> Result<(u64, Vec<&'static str>), String> {
    let events = match std::env::var("NEXMARK_EVENTS") {
        Err(_) => 2_000_000,
        Ok(text) => match text.trim().replace('_', "").parse::<u64>() {
            Ok(events) if events > 0 => events,
            _ => return Err(format!("NEXMARK_EVENTS={text:?} is not a number of events of at least 1 (default 2000000)")),
        },
    };
    let chosen = std::env::var("NEXMARK_QUERIES").unwrap_or_default();
    let named: Vec<&str> = chosen.split(',').map(str::trim).filter(|name| !name.is_empty()).collect();
    if let Some(unknown) = named.iter().find(|name| !QUERIES.contains(name)) {
        return Err(format!(
            "NEXMARK_QUERIES names {unknown:?}, which is not a query: give some of {}, comma-separated",
            QUERIES.join(",")
        ));
    }
    Ok((events, QUERIES.into_iter().filter(|query| named.is_empty() || named.contains(query)).collect()))
}

fn bench(events: u64, queries: &[&str]) {
    sluice::allocator::tune();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = root.join("build/plugins");
    assert!(plugins.join("project.wasm").is_file(), "run scripts/build-plugins.sh first");
    let registry = PluginRegistry::new(WasmEngine::new().expect("engine"));
    let scratch = tempfile::tempdir().expect("scratch directory");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("sluice nexmark benchmark: {events} events per run, best of {ROUNDS}, {cores} cores, {}", machine());
    println!("{:<6} {:>14} {:>18} {:>16}", "query", "events/s", "events/s per core", "CPU µs/event");
    for query in queries {
        let text = std::fs::read_to_string(root.join(format!("pipelines/nexmark/{query}.toml"))).expect("the query");
        let text = text
            .replace("../../build/plugins", &plugins.display().to_string())
            .replace("${NEXMARK_EVENTS:-10000000}", &events.to_string())
            .replace("${NEXMARK_OUT:-/dev/null}", "/dev/null");
        let path = scratch.path().join(format!("{query}.toml"));
        std::fs::write(&path, text).expect("write the query");
        let (wall, cpu) = best_of(&registry, &path, events);
        let rate = events as f64 / wall.as_secs_f64();
        let cpu_per_event = cpu.as_secs_f64() * 1e6 / events as f64;
        println!("{query:<6} {rate:>14.0} {:>18.0} {cpu_per_event:>16.3}", rate / cores as f64);
    }
}

/// The fastest of `ROUNDS` runs: its wall-clock and CPU time.
fn best_of(registry: &PluginRegistry, pipeline: &Path, events: u64) -> (Duration, Duration) {
    let mut best: Option<(Duration, Duration)> = None;
    for _ in 0..ROUNDS {
        let (started, cpu_before) = (Instant::now(), process_cpu_time());
        let summary = sluice::commands::run(pipeline, registry, |_, _| {}).expect("the query runs");
        let (wall, cpu) = (started.elapsed(), process_cpu_time().saturating_sub(cpu_before));
        assert_eq!(summary.sources.records, events);
        if best.is_none_or(|(fastest, _)| wall < fastest) {
            best = Some((wall, cpu));
        }
    }
    best.expect("at least one round")
}

/// The CPU model, from /proc/cpuinfo.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map_or_else(|| "unknown CPU".into(), |name| name.trim_start_matches([' ', '\t', ':']).to_owned())
}
