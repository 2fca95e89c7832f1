//! The same operator in every supported language: the `sluice plugin new` skeleton (keep
//! records whose `price` is at least a threshold), built from scratch by `sluice plugin build`,
//! then run through the runtime's supervised operator on one core.
//!
//! `cargo bench -p sluice --bench languages`. Prints build time, component size, compile time
//! and records per second for Rust, Python, JavaScript and C; asserts nothing. Builds in
//! `$TMPDIR/sluice-bench-languages` (the first build of a language may install its tools).

use std::time::{Duration, Instant};

use serde_json::json;
use sluice::develop::{BuildOptions, Language, build_plugin, new_plugin};
use sluice::pipeline::{Operator, OperatorSpec};
use sluice::wasm::{Batch, InstanceLimits, PluginRegistry, WasmEngine};

const BATCH: usize = 1024;
const BATCHES: usize = 50;
const ROUNDS: usize = 3;

fn main() {
    let batches = input_batches();
    let root = std::env::temp_dir().join("sluice-bench-languages");
    let _ = std::fs::remove_dir_all(&root);
    println!("the plugin-new skeleton in each language: {} records of ~100 bytes, batches of {BATCH}, one core", BATCH * BATCHES);
    println!("{:<8} {:>10} {:>12} {:>12} {:>14} {:>8}", "language", "build", "size", "compile", "records/s", "kept");
    for language in Language::ALL {
        let directory = root.join(language.name());
        new_plugin("bench-op", language, &directory, None).expect("skeleton");
        let started = Instant::now();
        let built = build_plugin(&directory, &BuildOptions::default()).unwrap_or_else(|error| panic!("{language}: {error}"));
        let build_time = started.elapsed();
        let size = std::fs::metadata(&built).map_or(0, |metadata| metadata.len());
        let registry = PluginRegistry::new(WasmEngine::new().expect("engine"));
        let started = Instant::now();
        let plugin = registry.load(&built).unwrap_or_else(|error| panic!("{language}: {error}"));
        let compile_time = started.elapsed();
        let limits = InstanceLimits { memory: 256 << 20, call_timeout: Duration::from_secs(30) };
        let config = json!({"field": "price", "min": 50}).to_string();
        let spec = OperatorSpec::new(language.name(), plugin, config, vec!["input".into()], limits).expect("the plugin takes its config");
        let mut operator = Operator::start(spec, None).expect("operator starts");
        let (rate, kept) = measure(&batches, &mut operator);
        println!(
            "{:<8} {:>9.1}s {:>12} {:>11.2}s {:>14} {:>8}",
            language.name(),
            build_time.as_secs_f64(),
            bytesize::ByteSize::b(size).to_string(),
            compile_time.as_secs_f64(),
            format!("{:.0} K", rate / 1e3),
            kept
        );
    }
}

/// Best records per second over several rounds, and the records kept per round.
fn measure(batches: &[Batch], operator: &mut Operator) -> (f64, usize) {
    let records = (batches.len() * BATCH) as f64;
    let (mut best, mut kept) = (f64::MIN, 0);
    for _ in 0..ROUNDS {
        let input = batches.to_vec();
        let started = Instant::now();
        kept = 0;
        for batch in input {
            let processed = operator.process_gathered(0, batch);
            assert!(processed.dead.is_empty(), "benchmark input is valid");
            kept += processed.batch.len();
        }
        best = best.max(records / started.elapsed().as_secs_f64());
    }
    (best, kept)
}

fn input_batches() -> Vec<Batch> {
    (0..BATCHES)
        .map(|b| {
            let records: Vec<_> = (0..BATCH)
                .map(|i| {
                    let n = (b * BATCH + i) as u64;
                    let record = json!({
                        "user": format!("u{}", n * 7919 % 5000),
                        "item": format!("i{}", n * 104_729 % 20_000),
                        "price": (n * 37 % 10_000) as f64 / 100.0,
                        "qty": n % 4 + 1,
                        "ts": 1_767_225_600_000u64 + n
                    });
                    (record, 1_767_225_600_000 + n as i64)
                })
                .collect();
            sluice_sdk::testing::json_batch(&records)
        })
        .collect()
}
