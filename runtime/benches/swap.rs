//! The cost of a hot swap: how long records wait (the stall) over 100 swaps of a stateful
//! operator under load, and a swap's total time with compilation included.
//!
//! `cargo bench -p sluice --bench swap` (after scripts/build-plugins.sh). Prints figures;
//! asserts nothing.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice::pipeline::PipelineControl;
use sluice::wasm::{Plugin, PluginRegistry, WasmEngine};

const SWAPS: usize = 100;

fn main() {
    let registry = PluginRegistry::new(WasmEngine::new().expect("engine"));
    let directory = std::env::temp_dir().join(format!("sluice-swap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("scratch directory");
    let pipeline = write_pipeline(&directory);
    let (started, control) = mpsc::channel();
    let running = {
        let registry = registry.clone();
        std::thread::spawn(move || sluice::commands::run(&pipeline, &registry, move |_, handle| drop(started.send(handle))))
    };
    let control: PipelineControl = control.recv().expect("pipeline starts");
    std::thread::sleep(Duration::from_secs(2));
    let versions = [registry.load(&plugin("counter-v2")).expect("v2"), registry.load(&plugin("counter-v1")).expect("v1")];
    let mut stalls = Vec::with_capacity(SWAPS);
    for swap in 0..SWAPS {
        let record = control.swap("counter", versions[swap % 2].clone(), None).expect("swap");
        stalls.push(record.stall_ms);
        std::thread::sleep(Duration::from_millis(10));
    }
    let window_state =
        control.swap("windows", registry.load(&plugin("window-aggregate")).expect("windows"), Some(window_config("n"))).expect("swap");
    let compile = compile_times();
    running.join().expect("no panic").expect("pipeline runs");
    stalls.sort_by(f64::total_cmp);
    println!("hot swap benchmark: {SWAPS} swaps of a counter (alternating state versions) under a 50,000 records/s stream");
    println!(
        "stall (records waiting at the batch boundary): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&stalls, 0.5),
        percentile(&stalls, 0.99),
        stalls[stalls.len() - 1]
    );
    println!("stall of a window-aggregate swap with ~5,000 open groups: {:.3} ms", window_state.stall_ms);
    for (name, compile_ms, swap_ms) in compile {
        println!("{name}: compile and type-check {compile_ms:.1} ms + swap {swap_ms:.3} ms = {:.1} ms in all", compile_ms + swap_ms);
    }
    let _ = std::fs::remove_dir_all(&directory);
}

fn plugin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins").join(format!("{name}.wasm"))
}

/// The windows operator's configuration as JSON (the pipeline file has it in TOML).
fn window_config(name: &str) -> String {
    format!(
        r#"{{"window": {{"type": "tumbling", "size": "10m"}}, "group_by": ["user_id"], "aggregates": [{{"function": "count", "as": "{name}"}}, {{"function": "median", "field": "price"}}]}}"#
    )
}

fn write_pipeline(directory: &Path) -> PathBuf {
    let path = directory.join("swap.toml");
    let text = format!(
        r#"
[pipeline]
name = "swap-bench"
batch_size = 256

[[sources]]
type = "generator"
count = 400000
rate = 50000
users = 5000

[[operators]]
name = "windows"
plugin = "{windows}"
[operators.config]
window = {{ type = "tumbling", size = "10m" }}
group_by = ["user_id"]
aggregates = [{{ function = "count", as = "count" }}, {{ function = "median", field = "price" }}]

[[operators]]
name = "counter"
plugin = "{counter}"

[[sinks]]
type = "file"
path = "{out}"
"#,
        windows = plugin("window-aggregate").display(),
        counter = plugin("counter-v1").display(),
        out = directory.join("out.jsonl").display(),
    );
    std::fs::write(&path, text).expect("write pipeline");
    path
}

/// Compile time of fresh engines' compilations, and an instantiate-init-restore of each.
fn compile_times() -> Vec<(&'static str, f64, f64)> {
    ["counter-v1", "window-aggregate"]
        .into_iter()
        .map(|name| {
            let engine = WasmEngine::new().expect("engine");
            let bytes = std::fs::read(plugin(name)).expect("plugin file");
            let started = Instant::now();
            let compiled = Plugin::compile(&engine, &plugin(name), &bytes).expect("compiles");
            let compile_ms = started.elapsed().as_secs_f64() * 1e3;
            let started = Instant::now();
            let config = if name == "counter-v1" { "{}".to_owned() } else { window_config("count") };
            let limits = sluice::wasm::InstanceLimits { memory: 128 << 20, call_timeout: Duration::from_secs(1) };
            let spec = sluice::pipeline::OperatorSpec::new(name, std::sync::Arc::new(compiled), config, vec!["input".into()], limits)
                .expect("the plugin takes its config");
            let operator = sluice::pipeline::Operator::start(spec, None).expect("starts");
            drop(operator);
            (name, compile_ms, started.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
