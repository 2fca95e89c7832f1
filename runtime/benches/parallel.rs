//! Scaling over cores and the cost of a keyed exchange, on whole pipelines run in process: the
//! quickstart-like job (generator → filter → project → 10 s windows per category, into
//! /dev/null) at `parallelism` 1 and 2; and a stateless filter → project job with and without
//! a keyed exchange in front of `project` (`key_by`), at `parallelism` 1; and the window job
//! with Prometheus metrics on (as `sluice run` always has them) against off, in alternating
//! rounds.
//!
//! `cargo bench -p sluice --bench parallel` (after scripts/build-plugins.sh). Prints records per
//! second, the cores kept busy (process CPU time over wall time: at parallelism 1 a pipeline
//! already runs its source, each stage and its sinks on threads of their own), CPU time per
//! record, and ratios measured in the same run; asserts nothing.

#[path = "common.rs"]
mod common;

use common::process_cpu_time;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice::monitor::Monitor;
use sluice::pipeline::StopSignal;
use sluice::topology::RunningPipeline;
use sluice::wasm::{PluginRegistry, WasmEngine};

const RECORDS: u64 = 600_000;
const ROUNDS: usize = 3;

fn main() {
    sluice::allocator::tune();
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins");
    assert!(plugins.join("window-aggregate.wasm").is_file(), "run scripts/build-plugins.sh first");
    let registry = PluginRegistry::new(WasmEngine::new().expect("engine"));
    let scratch = tempfile::tempdir().expect("scratch directory");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("sluice parallel benchmark: {RECORDS} generated records per run, best of {ROUNDS}, {cores} cores");
    println!("{:<62} {:>12} {:>8} {:>10} {:>8}", "job", "records/s", "ratio", "CPU µs/rec", "cores");

    let window_1 = measure(&registry, &write(&scratch, "window-1", &window_job(&plugins, 1)));
    let window_2 = measure(&registry, &write(&scratch, "window-2", &window_job(&plugins, 2)));
    report("window job, parallelism 1", window_1, None);
    report("window job, parallelism 2 (ratio: scaling over parallelism 1)", window_2, Some(window_1));

    let plain = measure(&registry, &write(&scratch, "plain", &stateless_job(&plugins, false)));
    let exchanged = measure(&registry, &write(&scratch, "exchanged", &stateless_job(&plugins, true)));
    report("filter → project, parallelism 1", plain, None);
    report("filter ⇒ exchange by category ⇒ project (ratio: vs. without)", exchanged, Some(plain));

    let window = write(&scratch, "window-metrics", &window_job(&plugins, cores));
    let (on, off) = measure_metrics(&registry, &window);
    report(&format!("window job, parallelism {cores}, metrics off"), off, None);
    report(&format!("window job, parallelism {cores}, metrics on (ratio: vs. off)"), on, Some(off));
}

/// The best round of each, with metrics on and off, in alternating rounds (the machine's
/// noise then hits both alike).
fn measure_metrics(registry: &PluginRegistry, pipeline: &Path) -> (Measured, Measured) {
    let loaded = sluice::commands::validate(pipeline, registry).expect("valid pipeline");
    let mut best = [None::<(Duration, Duration)>; 2];
    for round in 0..2 * ROUNDS {
        let enabled = round % 2 == 0;
        let monitor = if enabled { Monitor::default() } else { Monitor::without_metrics() };
        let (started, cpu_before) = (Instant::now(), process_cpu_time());
        let running = RunningPipeline::start_monitored(&loaded, registry, StopSignal::default(), monitor).expect("pipeline starts");
        let summary = running.wait().expect("pipeline runs");
        let (wall, cpu) = (started.elapsed(), process_cpu_time().saturating_sub(cpu_before));
        assert_eq!(summary.sources.records, RECORDS);
        let slot = &mut best[usize::from(!enabled)];
        if slot.is_none_or(|(fastest, _)| wall < fastest) {
            *slot = Some((wall, cpu));
        }
    }
    let [on, off] = best.map(|best| {
        let (wall, cpu) = best.expect("at least one round");
        Measured {
            records_per_second: RECORDS as f64 / wall.as_secs_f64(),
            cpu_per_record: cpu / RECORDS as u32,
            cores_busy: cpu.as_secs_f64() / wall.as_secs_f64(),
        }
    });
    (on, off)
}

fn write(scratch: &tempfile::TempDir, name: &str, toml: &str) -> PathBuf {
    let path = scratch.path().join(format!("{name}.toml"));
    std::fs::write(&path, toml).expect("write pipeline");
    path
}

fn source(parallelism: usize) -> String {
    format!(
        r#"
[pipeline]
name = "bench"
parallelism = {parallelism}
out_of_orderness = "1s"

[[sources]]
name = "clicks"
type = "generator"
seed = 42
count = {RECORDS}
event_interval = "10ms"
disorder = "500ms"
"#
    )
}

const SINK: &str = r#"
[[sinks]]
type = "file"
path = "/dev/null"
"#;

fn window_job(plugins: &Path, parallelism: usize) -> String {
    let plugins = plugins.display();
    format!(
        r#"{source}
[[operators]]
name = "orders-only"
plugin = "{plugins}/filter.wasm"
config = {{ field = "event_type", op = "in", value = ["order", "cart"] }}

[[operators]]
name = "amount"
plugin = "{plugins}/project.wasm"
config = {{ compute = {{ amount = "round(price * quantity, 2)" }}, keep = ["category", "amount"] }}

[[operators]]
name = "revenue-per-category"
plugin = "{plugins}/window-aggregate.wasm"
[operators.config]
window = {{ type = "tumbling", size = "10s" }}
group_by = ["category"]
aggregates = [{{ function = "sum", field = "amount", as = "revenue" }}, {{ function = "count", as = "orders" }}]
{SINK}"#,
        source = source(parallelism)
    )
}

fn stateless_job(plugins: &Path, exchange: bool) -> String {
    let plugins = plugins.display();
    let key_by = if exchange { r#"key_by = ["category"]"# } else { "" };
    format!(
        r#"{source}
[[operators]]
name = "priced"
plugin = "{plugins}/filter.wasm"
config = {{ field = "price", op = "exists" }}

[[operators]]
name = "amount"
plugin = "{plugins}/project.wasm"
{key_by}
config = {{ compute = {{ amount = "round(price * quantity, 2)" }}, keep = ["category", "amount"] }}
{SINK}"#,
        source = source(1)
    )
}

/// What the fastest of `ROUNDS` runs to the end took.
#[derive(Clone, Copy)]
struct Measured {
    records_per_second: f64,
    cpu_per_record: Duration,
    cores_busy: f64,
}

fn measure(registry: &PluginRegistry, pipeline: &Path) -> Measured {
    let mut best: Option<(Duration, Duration)> = None;
    for _ in 0..ROUNDS {
        let (started, cpu_before) = (Instant::now(), process_cpu_time());
        let summary = sluice::commands::run(pipeline, registry, |_, _| {}).expect("pipeline runs");
        let (wall, cpu) = (started.elapsed(), process_cpu_time().saturating_sub(cpu_before));
        assert_eq!(summary.sources.records, RECORDS);
        if best.is_none_or(|(fastest, _)| wall < fastest) {
            best = Some((wall, cpu));
        }
    }
    let (wall, cpu) = best.expect("at least one round");
    Measured {
        records_per_second: RECORDS as f64 / wall.as_secs_f64(),
        cpu_per_record: cpu / RECORDS as u32,
        cores_busy: cpu.as_secs_f64() / wall.as_secs_f64(),
    }
}

fn report(job: &str, measured: Measured, base: Option<Measured>) {
    let ratio = base.map_or_else(String::new, |base| format!("{:.2}×", measured.records_per_second / base.records_per_second));
    let cpu = measured.cpu_per_record.as_secs_f64() * 1e6;
    println!("{job:<62} {:>12.0} {ratio:>8} {cpu:>10.2} {:>8.2}", measured.records_per_second, measured.cores_busy);
}
