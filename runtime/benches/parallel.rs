//! Scaling over cores and the cost of a keyed exchange, on whole pipelines run in process: the
//! quickstart-like job (generator → filter → project → 10 s windows per category, into
//! /dev/null) at `parallelism` 1 and 2; and a stateless filter → project job with and without
//! a keyed exchange in front of `project` (`key_by`), at `parallelism` 1.
//!
//! `cargo bench -p sluice --bench parallel` (after scripts/build-plugins.sh). Prints records per
//! second and ratios measured in the same run; asserts nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice::wasm::{PluginRegistry, WasmEngine};

const RECORDS: u64 = 600_000;
const ROUNDS: usize = 3;

fn main() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins");
    assert!(plugins.join("window-aggregate.wasm").is_file(), "run scripts/build-plugins.sh first");
    let registry = PluginRegistry::new(WasmEngine::new().expect("engine"));
    let scratch = tempfile::tempdir().expect("scratch directory");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("sluice parallel benchmark: {RECORDS} generated records per run, best of {ROUNDS}, {cores} cores");
    println!("{:<62} {:>12} {:>8}", "job", "records/s", "ratio");

    let window_1 = measure(&registry, &write(&scratch, "window-1", &window_job(&plugins, 1)));
    let window_2 = measure(&registry, &write(&scratch, "window-2", &window_job(&plugins, 2)));
    report("window job, parallelism 1", window_1, None);
    report("window job, parallelism 2 (ratio: scaling over parallelism 1)", window_2, Some(window_1));

    let plain = measure(&registry, &write(&scratch, "plain", &stateless_job(&plugins, false)));
    let exchanged = measure(&registry, &write(&scratch, "exchanged", &stateless_job(&plugins, true)));
    report("filter → project, parallelism 1", plain, None);
    report("filter ⇒ exchange by category ⇒ project (ratio: vs. without)", exchanged, Some(plain));
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

/// The best records/s of `ROUNDS` runs to the end.
fn measure(registry: &PluginRegistry, pipeline: &Path) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let summary = sluice::commands::run(pipeline, registry, |_, _| {}).expect("pipeline runs");
        assert_eq!(summary.sources.records, RECORDS);
        best = best.min(started.elapsed());
    }
    RECORDS as f64 / best.as_secs_f64()
}

fn report(job: &str, records_per_second: f64, base: Option<f64>) {
    let ratio = base.map_or_else(String::new, |base| format!("{:.2}×", records_per_second / base));
    println!("{job:<62} {records_per_second:>12.0} {ratio:>8}");
}
