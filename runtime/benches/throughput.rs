//! Throughput of operator chains on one core: the Wasm components through the runtime's
//! supervised operators, next to the same plugin crates compiled natively in-process.
//!
//! `cargo bench -p sluice --bench throughput` (after scripts/build-plugins.sh). Prints
//! records per second; asserts nothing. `cargo bench -p sluice --bench throughput -- window`
//! runs only the chains whose name contains one of the words given (for profiling one).

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::pipeline::{Operator, OperatorSpec};
use sluice::wasm::{Batch, InstanceLimits, PluginRegistry, Records, WasmEngine};
use sluice_sdk::testing::Harness;

const BATCH: usize = 1024;
const BATCHES: usize = 200;
const ROUNDS: usize = 5;

fn main() {
    sluice::allocator::tune();
    let unindexed = input_batches();
    let batches: Vec<Batch> = unindexed.iter().cloned().map(indexed).collect();
    let bytes: usize = batches.iter().flat_map(|batch| batch.iter()).map(|record| record.value().len()).sum();
    let records = BATCH * BATCHES;
    println!("sluice throughput benchmark: {records} JSON records of {} bytes on average, batches of {BATCH}, one core", bytes / records);
    println!("{:<50} {:>14} {:>14} {:>8}", "operator chain", "wasm rec/s", "native rec/s", "ratio");
    let registry = PluginRegistry::new(WasmEngine::new().expect("engine"));

    let filter_config = json!({"field": "price", "op": "gt", "value": 5});
    let project_config = json!({"compute": {"total": "price * qty"}, "keep": ["user", "item", "total"]});
    let mut wasm = chain(&registry, &[("filter", &filter_config), ("project", &project_config)]);
    let mut native_filter = Harness::<filter::Filter>::new(filter_config.clone()).expect("filter config");
    let mut native_project = Harness::<project::Project>::new(project_config.clone()).expect("project config");
    if wanted("filter + project") {
        report(
            "filter + project",
            measure(&batches, |batch| run_wasm(&mut wasm, batch)),
            measure(&batches, |batch| native_project.process(&native_filter.process(&batch).batch).batch.len()),
        );
    }
    // Records that arrive without an index (from a repartition topic; from a source whose first
    // operators did not read indexes when it started): the runtime indexes them for the filter,
    // beside the batch, as the native harness does for the native filter.
    if wanted("filter + project, records arriving unindexed") {
        report(
            "filter + project, records arriving unindexed",
            measure(&unindexed, |batch| run_wasm(&mut wasm, batch)),
            measure(&unindexed, |batch| native_project.process(&native_filter.process(&batch).batch).batch.len()),
        );
    }

    let window_config = json!({
        "window": {"type": "tumbling", "size": "10s"},
        "group_by": ["user"],
        "aggregates": [{"function": "count"}, {"function": "sum", "field": "price"}, {"function": "mean", "field": "price"}]
    });
    // Windows keep state: each round starts a new operator, or the second pass over the same
    // records would find their windows closed and measure the dropping of late records.
    if wanted("window-aggregate (tumbling count/sum/mean by key)") {
        report_window(&registry, &batches, &window_config);
    }
    bench_recommend(&registry, &batches);
    bench_learning(&registry, &batches);
    bench_epoch_deadline(&registry, &batches, filter_config, project_config, window_config);
}

/// Whether the chain `name` was asked for: every chain when no words are given after `--`.
fn wanted(name: &str) -> bool {
    let words: Vec<String> = std::env::args().skip(1).filter(|argument| !argument.starts_with("--")).collect();
    words.is_empty() || words.iter().any(|word| name.contains(word.as_str()))
}

fn report_window(registry: &PluginRegistry, batches: &[Batch], window_config: &Value) {
    report(
        "window-aggregate (tumbling count/sum/mean by key)",
        measure_fresh(
            batches,
            || vec![operator(registry, "window-aggregate", window_config)],
            |wasm, batch| run_with_watermark(wasm, batch),
        ),
        measure_fresh(
            batches,
            || Harness::<window_aggregate::WindowAggregate>::new(window_config.clone()).expect("window config"),
            |native, batch| {
                let watermark = last_timestamp(&batch) - 1_000;
                native.watermark(watermark).len() + native.process(&batch).batch.len()
            },
        ),
    );
}

/// What the call deadline costs: the same operators in an engine whose code checks the epoch
/// (the runtime's) and in one without the checks (no deadline could fire), alternating rounds.
fn bench_epoch_deadline(registry: &PluginRegistry, batches: &[Batch], filter: Value, project: Value, window: Value) {
    if !wanted("epoch deadline checks") {
        return;
    }
    let unguarded = PluginRegistry::new(WasmEngine::without_deadlines_for_measurement().expect("engine"));
    println!();
    println!("{:<50} {:>14} {:>14} {:>8}", "epoch deadline checks", "with rec/s", "without rec/s", "ratio");
    let chains: [(&str, Vec<(&str, &Value)>); 2] =
        [("filter + project", vec![("filter", &filter), ("project", &project)]), ("window-aggregate", vec![("window-aggregate", &window)])];
    for (name, chain) in chains {
        let (mut with, mut without) = (f64::MIN, f64::MIN);
        for _ in 0..ROUNDS {
            let (mut guarded, mut bare) = (self::chain(registry, &chain), self::chain(&unguarded, &chain));
            with = with.max(measure_once(batches, |batch| run_with_watermark(&mut guarded, batch)));
            without = without.max(measure_once(batches, |batch| run_with_watermark(&mut bare, batch)));
        }
        report(name, with, without);
    }
}

/// Runs `chain` on `batch` after a watermark 1 s behind the batch's last record (which closes
/// a tumbling window's past windows, as a source's watermark would).
fn run_with_watermark(chain: &mut [Operator], batch: Batch) -> usize {
    let watermark = last_timestamp(&batch) - 1_000;
    let closed: usize = chain.iter_mut().map(|operator| operator.on_watermark(watermark).len()).sum();
    run_wasm(chain, batch) + closed
}

/// The learning and privacy operators, each alone on the bench's records (records/s of the
/// operator itself; `scripts/ml-compare/run.sh` puts river and statsmodels beside them).
fn bench_learning(registry: &PluginRegistry, batches: &[Batch]) {
    let learn = json!({
        "task": "regression", "label": "price", "numeric": ["qty"], "categorical": ["type", "user"],
        "standardize": true, "report": false
    });
    bench_alone::<learn::Learn>(registry, batches, "learn (linear regression, 1 numeric + 2 categorical)", "learn", learn);
    let forecast = json!({"key": ["type"], "value": "price", "alpha": 0.3, "beta": 0.1, "horizon": 1});
    bench_alone::<forecast::Forecast>(registry, batches, "forecast (Holt per key, 1 step ahead)", "forecast", forecast);
    let cluster = json!({"features": ["price", "qty"], "k": 5, "report_centroids": false});
    bench_alone::<cluster::Cluster>(registry, batches, "cluster (k-means, k = 5, 2 features)", "cluster", cluster);
    let mask = json!({
        "secret": "key", "pseudonymise": ["user"], "redact": ["item"], "truncate": [{"field": "ts", "to": "hour"}],
        "sluice_secrets": {"key": "a-benchmark-key-of-32-bytes-01234"}
    });
    bench_alone::<mask::Mask>(registry, batches, "mask (HMAC pseudonym, redaction, truncation)", "mask", mask);
}

/// Recommendations from a stream of interactions (the bench's records: user and item ids).
fn bench_recommend(registry: &PluginRegistry, batches: &[Batch]) {
    if !wanted("recommend (co-occurrence, LLR, top 5)") {
        return;
    }
    let config = json!({"user": "user", "item": "item", "history": 10, "top_n": 5});
    bench_alone::<recommend::Recommend>(registry, batches, "recommend (co-occurrence, LLR, top 5)", "recommend", config);
}

/// One operator alone, as the component `plugin` and as the crate `O` compiled natively.
fn bench_alone<O: sluice_sdk::Operator>(registry: &PluginRegistry, batches: &[Batch], name: &str, plugin: &str, config: Value) {
    if !wanted(name) {
        return;
    }
    let mut wasm = vec![operator(registry, plugin, &config)];
    let mut native = Harness::<O>::new(config).unwrap_or_else(|error| panic!("{plugin} config: {error}"));
    report(name, measure(batches, |batch| run_wasm(&mut wasm, batch)), measure(batches, |batch| native.process(&batch).batch.len()));
}

/// ~100-byte clickstream-like records, event time advancing 1 ms per record, without field
/// indexes.
fn input_batches() -> Vec<Batch> {
    (0..BATCHES)
        .map(|b| {
            (0..BATCH)
                .map(|i| {
                    let n = (b * BATCH + i) as u64;
                    let kind = ["view", "cart", "order"][(n % 3) as usize];
                    let record = json!({
                        "user": format!("u{}", n * 7919 % 5000),
                        "item": format!("i{}", n * 104_729 % 20_000),
                        "type": kind,
                        "price": (n * 37 % 10_000) as f64 / 100.0,
                        "qty": n % 4 + 1,
                        "ts": 1_767_225_600_000u64 + n
                    });
                    (record, 1_767_225_600_000 + n as i64)
                })
                .collect::<Vec<_>>()
        })
        .map(|records| sluice_sdk::testing::json_batch(&records))
        .collect()
}

/// `batch` with each record's field index, as sources deliver records to operators that read
/// indexes (those of the Rust SDK).
fn indexed(mut batch: Batch) -> Batch {
    sluice_sdk::fields::index_batch(&mut batch);
    batch
}

fn last_timestamp(batch: &Batch) -> i64 {
    batch.iter().last().map_or(0, |record| record.timestamp())
}

fn operator(registry: &PluginRegistry, plugin: &str, config: &Value) -> Operator {
    chain(registry, &[(plugin, config)]).remove(0)
}

/// Operators each reading the one before, wired as a pipeline wires them (records are
/// indexed before the operators that read indexes).
fn chain(registry: &PluginRegistry, operators: &[(&str, &Value)]) -> Vec<Operator> {
    let mut input = "input".to_owned();
    operators
        .iter()
        .map(|(plugin, config)| {
            let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/plugins").join(format!("{plugin}.wasm"));
            let compiled = registry.load(&path).unwrap_or_else(|error| panic!("{error} (run scripts/build-plugins.sh first)"));
            let limits = InstanceLimits { memory: 256 << 20, call_timeout: Duration::from_secs(10) };
            let inputs = vec![std::mem::replace(&mut input, (*plugin).to_owned())];
            let spec = OperatorSpec::new(plugin, compiled, config.to_string(), inputs, limits).expect("the plugin takes its config");
            Operator::start(spec, None).expect("operator starts")
        })
        .collect()
}

fn run_wasm(chain: &mut [Operator], batch: Batch) -> usize {
    let mut records = Records::from(batch);
    for operator in chain.iter_mut() {
        let processed = operator.process_gathered(0, records);
        assert!(processed.dead.is_empty(), "benchmark input is valid: {:?}", processed.dead.first().map(|d| &d.reason));
        records = processed.batch;
    }
    records.len()
}

/// Best records per second over several rounds.
fn measure(batches: &[Batch], mut process: impl FnMut(Batch) -> usize) -> f64 {
    (0..ROUNDS).map(|_| measure_once(batches, &mut process)).fold(f64::MIN, f64::max)
}

/// Best records per second over several rounds, each with a new `start()`: operators that
/// keep state see each record once.
fn measure_fresh<S>(batches: &[Batch], mut start: impl FnMut() -> S, mut process: impl FnMut(&mut S, Batch) -> usize) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let mut started = start();
            measure_once(batches, |batch| process(&mut started, batch))
        })
        .fold(f64::MIN, f64::max)
}

/// Records per second of one pass over `batches` (inputs cloned outside the timed part).
fn measure_once(batches: &[Batch], mut process: impl FnMut(Batch) -> usize) -> f64 {
    let input = batches.to_vec();
    let started = Instant::now();
    let mut produced = 0;
    for batch in input {
        produced += process(batch);
    }
    std::hint::black_box(produced);
    (batches.len() * BATCH) as f64 / started.elapsed().as_secs_f64()
}

fn report(name: &str, wasm: f64, native: f64) {
    println!("{name:<50} {:>14} {:>14} {:>7.2}x", millions(wasm), millions(native), wasm / native);
}

fn millions(rate: f64) -> String {
    format!("{:.2} M", rate / 1e6)
}
