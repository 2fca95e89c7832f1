//! What starting an operator instance costs (instantiate, `init`): what every recovery after a
//! trap and every hot swap pays, with instances mapped one by one (the runtime's engine) and
//! taken from wasmtime's pooling allocator, in alternating rounds.
//!
//! `cargo bench -p sluice --bench instantiate` (after scripts/build-plugins.sh). Prints
//! figures; asserts nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::pipeline::{Operator, OperatorSpec};
use sluice::wasm::{InstanceLimits, PluginRegistry, WasmEngine};

const ROUNDS: usize = 3;
const STARTS: usize = 200;

fn main() {
    let on_demand = PluginRegistry::new(WasmEngine::new().expect("engine"));
    let pooled = PluginRegistry::new(WasmEngine::pooled_for_measurement(1_000).expect("pooled engine"));
    println!("operator start (instantiate + init), best of {ROUNDS} rounds of {STARTS} starts");
    println!("{:<18} {:>14} {:>14} {:>8}", "plugin", "on demand µs", "pooled µs", "ratio");
    let plugins = [
        ("filter", json!({"field": "type", "op": "eq", "value": "bid"})),
        ("window-aggregate", json!({"window": {"type": "tumbling", "size": "10s"}, "aggregates": [{"function": "count", "as": "n"}]})),
        ("range-filter", json!({"field": "price", "min": 0, "max": 10})),
        ("reshape", json!({"rename": {"a": "b"}})),
        ("fraud-score", json!({"rules": [{"name": "high", "field": "amount", "op": ">", "value": 500, "weight": 1.0}], "threshold": 0.6})),
    ];
    for (plugin, config) in plugins {
        let (mut slow, mut fast) = (Duration::MAX, Duration::MAX);
        for _ in 0..ROUNDS {
            slow = slow.min(starts(&on_demand, plugin, &config));
            fast = fast.min(starts(&pooled, plugin, &config));
        }
        let per_start = |total: Duration| total.as_secs_f64() * 1e6 / STARTS as f64;
        println!("{plugin:<18} {:>14.1} {:>14.1} {:>7.2}×", per_start(slow), per_start(fast), slow.as_secs_f64() / fast.as_secs_f64());
    }
}

/// The time of `STARTS` starts of `plugin`, each instance dropped before the next.
fn starts(registry: &PluginRegistry, plugin: &str, config: &Value) -> Duration {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins").join(format!("{plugin}.wasm"));
    let compiled = registry.load(&path).unwrap_or_else(|error| panic!("{error} (run scripts/build-plugins.sh first)"));
    let limits = InstanceLimits { memory: 256 << 20, call_timeout: Duration::from_secs(10) };
    let spec = OperatorSpec::new(plugin, compiled, config.to_string(), vec!["input".into()], limits).expect("the plugin takes its config");
    let started = Instant::now();
    for _ in 0..STARTS {
        drop(Operator::start(spec.clone(), None).expect("operator starts"));
    }
    started.elapsed()
}
