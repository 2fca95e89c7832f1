//! The operator library as the runtime runs it: real components, snapshot and restore in
//! the middle of a stream, and pipelines over the generator's clickstream.

use std::time::Duration;

use serde_json::{Value, json};
use sluice::pipeline::{Operator, OperatorSpec, OutputReaders, StateHandover};
use sluice::wasm::{Batch, InstanceLimits};

use crate::support::{Scratch, plugin, registry, run};

/// A running operator of the built plugin `name`, restored from `state` if given.
fn start(name: &str, config: &Value, state: Option<sluice::wasm::State>) -> Operator {
    let plugin = registry().load(&plugin(name)).expect("plugin loads");
    let limits = InstanceLimits { memory: 256 << 20, call_timeout: Duration::from_secs(10) };
    let spec = OperatorSpec::new(name, plugin, config.to_string(), vec!["input".into()], limits).expect("the plugin takes its config");
    Operator::start(spec, state).expect("operator starts")
}

/// Feeds `records` in batches of `size`, advancing the watermark after each batch as the
/// runtime does; returns everything emitted. With `stop_after`, the operator is snapshotted
/// after that many batches, dropped, and a new instance restored from the snapshot goes on.
fn feed(name: &str, config: &Value, records: &[(Value, i64)], size: usize, lag: i64, stop_after: Option<usize>) -> Vec<Value> {
    let mut operator = start(name, config, None);
    let mut emitted = Vec::new();
    let mut newest = i64::MIN;
    for (number, chunk) in records.chunks(size).enumerate() {
        if stop_after == Some(number) {
            let state = operator.snapshot().expect("snapshot");
            operator = start(name, config, Some(state));
        }
        let batch = sluice_sdk::testing::json_batch(chunk);
        let processed = operator.process_gathered(0, batch);
        assert!(processed.dead.is_empty(), "{:?}", processed.dead.first().map(|dead| &dead.reason));
        emitted.extend(values(&processed.batch.into_batch()));
        newest = chunk.iter().map(|(_, timestamp)| *timestamp).fold(newest, i64::max);
        emitted.extend(values(&operator.on_watermark(newest - lag)));
    }
    emitted.extend(values(&operator.on_watermark(i64::MAX)));
    emitted
}

fn values(batch: &Batch) -> Vec<Value> {
    sluice_sdk::testing::json_values(batch)
}

/// Clickstream-like records: category, user, item, price, 100 ms apart.
fn clicks(count: usize) -> Vec<(Value, i64)> {
    (0..count)
        .map(|i| {
            let category = ["books", "toys", "garden"][i * 7 % 3];
            (json!({"category": category, "user_id": format!("u{}", i * 31 % 40), "item_id": format!("i{}", i * 17 % 25), "price": (i * 13 % 97) as f64 + 0.5, "event_id": i / 2}), i as i64 * 100)
        })
        .collect()
}

fn assert_restore_changes_nothing(name: &str, config: Value, records: &[(Value, i64)]) {
    let uninterrupted = feed(name, &config, records, 64, 0, None);
    assert!(!uninterrupted.is_empty(), "{name} emits something");
    let interrupted = feed(name, &config, records, 64, 0, Some(records.len() / 128));
    assert_eq!(interrupted, uninterrupted, "{name}: stopping in the middle and restoring changed the output");
}

/// An operator whose records only sinks read is offered "json+fields-in" first; the Rust SDK
/// takes it and writes the same records without field indexes, which it writes when another
/// operator may read them.
#[test]
fn an_operator_read_only_by_sinks_writes_its_records_without_indexes() {
    let config = json!({"keep": ["category", "price"], "compute": {"twice": "2 * price"}});
    let records = clicks(50);
    let written = |readers: OutputReaders| {
        let plugin = registry().load(&plugin("project")).expect("plugin loads");
        let limits = InstanceLimits { memory: 256 << 20, call_timeout: Duration::from_secs(10) };
        let spec = OperatorSpec::read_by("project", plugin, config.to_string(), vec!["input".into()], limits, readers).expect("config");
        let encoding = spec.info.encoding.clone();
        let mut operator = Operator::start(spec, None).expect("operator starts");
        let batch = operator.process_gathered(0, sluice_sdk::testing::json_batch(&records)).batch.into_batch();
        (encoding, batch.events.iter().filter(|event| event.fields.is_some()).count(), values(&batch))
    };
    let (encoding, indexed, read_on) = written(OutputReaders::MayReadIndexes);
    assert_eq!((encoding.as_str(), indexed), ("json+fields", records.len()));
    let (encoding, indexed, sunk) = written(OutputReaders::IgnoreIndexes);
    assert_eq!((encoding.as_str(), indexed), ("json+fields-in", 0));
    assert_eq!(sunk, read_on);
    assert_eq!(sunk[1], json!({"category": "toys", "price": 13.5, "twice": 27}));
}

#[test]
fn window_aggregate_snapshot_and_restore_change_nothing() {
    let config = json!({"window": {"type": "session", "gap": "2s"}, "group_by": ["user_id"], "aggregates": [
        {"function": "count"}, {"function": "median", "field": "price"}, {"function": "distinct", "field": "item_id"}, {"function": "last", "field": "price"}]});
    assert_restore_changes_nothing("window-aggregate", config, &clicks(3000));
    let hopping = json!({"window": {"type": "hopping", "size": "10s", "slide": "2s"}, "group_by": ["category"], "aggregates": [{"function": "stddev", "field": "price"}], "allowed_lateness": "1s"});
    assert_restore_changes_nothing("window-aggregate", hopping, &clicks(3000));
}

#[test]
fn window_aggregate_late_records_route_through_the_runtime() {
    let scratch = Scratch::new();
    let records: String = [(1_000, "a"), (25_000, "b"), (2_000, "late-dead"), (26_000, "c")]
        .iter()
        .map(|(ts, id)| format!("{}\n", json!({"ts": ts, "id": id})))
        .collect();
    scratch.write("input.jsonl", &records);
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "lateness"
batch_size = 1

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "counts"
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "10s" }, aggregates = [{ function = "count" }], late = "reject" }
"#,
    );
    run(&path).expect("pipeline runs");
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["reason"].as_str().is_some_and(|reason| reason.contains("late record")), "{dead:?}");
    let counts: Vec<i64> = scratch.json_lines("out.jsonl").iter().map(|r| r["count"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(counts, vec![1, 2]);

    // Passing every record through, a rejected late one is not also passed on: the runtime
    // refuses an output that does both, which failed the whole batch (before, when the late
    // record shared a batch with others).
    let text = std::fs::read_to_string(&path).expect("the pipeline").replace("batch_size = 1", "batch_size = 100");
    std::fs::write(&path, text.replace("late = \"reject\" }", "late = \"reject\", pass_through = true }")).expect("write");
    std::fs::remove_file(scratch.path("dead.jsonl")).expect("the first run's dead letters (the file is appended to)");
    run(&path).expect("pipeline runs");
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0]["reason"].as_str().is_some_and(|reason| reason.contains("late record")), "{dead:?}");
    let out = scratch.json_lines("out.jsonl");
    let passed: Vec<&str> = out.iter().filter_map(|record| record["id"].as_str()).collect();
    assert_eq!(passed, vec!["a", "b", "c"], "{out:?}");
}

#[test]
fn recommend_suggests_items_seen_together_through_the_runtime() {
    // Five users each view A then B; a sixth user's view of A is answered with B.
    let mut records = Vec::new();
    for user in 1..=5 {
        records.push((json!({"user_id": format!("u{user}"), "item_id": "A", "event_type": "view"}), user * 10));
        records.push((json!({"user_id": format!("u{user}"), "item_id": "B", "event_type": "view"}), user * 10 + 1));
        records.push((json!({"user_id": format!("u{user}"), "item_id": format!("noise{user}"), "event_type": "view"}), user * 10 + 2));
    }
    records.push((json!({"user_id": "u6", "item_id": "A", "event_type": "order"}), 100));
    let config = json!({"kinds": ["view", "order"], "top_n": 3, "min_cooccurrence": 2});
    let emitted = feed("recommend", &config, &records, 4, 0, None);
    let last = emitted.last().expect("the last interaction emits");
    assert_eq!((last["user"].clone(), last["item"].clone()), (json!("u6"), json!("A")));
    assert_eq!(last["recommendations"][0]["item"], json!("B"));
    assert_eq!(last["recommendations"][0]["cooccurrences"], json!(5));
    assert_restore_changes_nothing("recommend", config, &records);
}

#[test]
fn dedupe_drops_repeats_within_the_horizon_through_the_runtime() {
    let records: Vec<(Value, i64)> =
        [(1, 0), (2, 100), (1, 500), (1, 20_000), (2, 20_100)].iter().map(|(id, ts)| (json!({"event_id": id}), *ts)).collect();
    let config = json!({"keys": ["event_id"], "horizon": "10s"});
    let kept: Vec<(Value, i64)> = feed("dedupe", &config, &records, 2, 0, None).iter().map(|r| (r["event_id"].clone(), 0)).collect();
    assert_eq!(kept.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), vec![json!(1), json!(2), json!(1), json!(2)]);
    assert_restore_changes_nothing(
        "dedupe",
        config,
        &clicks(2000).into_iter().map(|(r, t)| (json!({"event_id": r["event_id"]}), t)).collect::<Vec<_>>(),
    );
}

#[test]
fn enrich_joins_a_granted_csv_file_through_the_runtime() {
    let scratch = Scratch::new();
    scratch.write("catalog.csv", "id,brand,name\ni1,acme,\"Anvil, heavy\"\ni2,\"Bolt \"\"Co\"\"\",Bolt\n");
    scratch.write("input.jsonl", "{\"item_id\": \"i1\", \"n\": 1}\n{\"item_id\": \"i9\", \"n\": 2}\n{\"item_id\": \"i2\", \"n\": 3}\n");
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "enrichment"

[[sources]]
type = "file"
path = "input.jsonl"

[[operators]]
name = "catalog"
plugin = "{plugins}/enrich.wasm"
files = { items = "catalog.csv" }
config = { key = "item_id", file = "items", file_format = "csv", file_key = "id", into = "product", missing = "reject" }
"#,
    );
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 1, "i9 is not in the catalogue");
    assert_eq!(
        scratch.json_lines("out.jsonl"),
        vec![
            json!({"item_id": "i1", "n": 1, "product": {"brand": "acme", "name": "Anvil, heavy"}}),
            json!({"item_id": "i2", "n": 3, "product": {"brand": "Bolt \"Co\"", "name": "Bolt"}}),
        ]
    );
}

#[test]
fn moving_average_and_anomaly_detect_survive_snapshot_and_restore() {
    let averages = json!({"field": "price", "group_by": ["category"], "averages": [
        {"type": "simple", "records": 5}, {"type": "simple", "span": "2s"}, {"type": "exponential", "half_life": "1s"}]});
    assert_restore_changes_nothing("moving-average", averages, &clicks(2000));
    let detectors = json!({"field": "price", "group_by": ["category"], "warm_up": 5, "pass_through": true,
        "detectors": [{"type": "zscore", "alpha": 0.1, "threshold": 2.0}, {"type": "mad", "window": 20, "threshold": 2.5}]});
    assert_restore_changes_nothing("anomaly-detect", detectors, &clicks(2000));
}

#[test]
fn the_ecommerce_pipeline_detects_the_injected_anomaly_and_nothing_else() {
    let output = crate::support::sluice(&crate::support::repo_root(), &["run", "pipelines/ecommerce.toml"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let records: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    let windows = records.iter().filter(|record| record.get("window_start").is_some()).count();
    let alerts: Vec<&Value> = records.iter().filter(|record| record["alert"] == "anomaly").collect();
    // The generator multiplies electronics prices by 6 during minute 20 (2026-01-01T00:20Z).
    let injected =
        |alert: &&&Value| alert["group"]["category"] == "electronics" && alert["record"]["window_start"] == json!(1_767_226_800_000i64);
    assert_eq!(alerts.iter().filter(injected).count(), 1, "the injected anomaly is detected: {alerts:?}");
    let false_positives = alerts.len() - 1;
    assert!(windows >= 200, "30 minutes × 8 categories of results, got {windows}");
    assert!(false_positives * 100 <= windows, "at most 1% false alerts: {false_positives} of {windows} windows");
    let with_ema = records.iter().filter(|record| record.get("revenue_ema").is_some()).count();
    assert_eq!(with_ema, windows, "every result carries the moving average of revenue");
}

#[test]
fn a_swap_refused_by_the_running_versions_snapshot_names_that_side_and_step() {
    let mut running = start("misbehave", &json!({"trap_in_snapshot_after": 1}), None);
    let processed = running.process_gathered(0, sluice_sdk::testing::json_batch(&[(json!({"n": 1}), 0)]));
    assert_eq!(processed.batch.len(), 1);
    let misbehave = registry().load(&plugin("misbehave")).expect("plugin loads");
    let limits = InstanceLimits { memory: 256 << 20, call_timeout: Duration::from_secs(10) };
    let replacement = OperatorSpec::new("misbehave", misbehave, "{}".into(), vec!["input".into()], limits).expect("spec");
    let refused = running.prepare_swap(replacement, StateHandover::Carry).err().expect("the swap is refused");
    assert!(
        refused.starts_with("the running version could not hand over its state: snapshot failed: plugin trapped")
            && refused.contains("snapshot traps after 1 records"),
        "{refused}"
    );
    let broken = registry().load(&plugin("broken-restore")).expect("plugin loads");
    let replacement = OperatorSpec::new("misbehave", broken, "{}".into(), vec!["input".into()], limits).expect("spec");
    let mut fine = start("misbehave", &json!({}), None);
    let refused = fine.prepare_swap(replacement, StateHandover::Carry).err().expect("the swap is refused");
    assert!(refused.starts_with("the new version could not start: restore failed: plugin trapped"), "{refused}");
}

/// The default `memory_limit` of an operator.
const DEFAULT_MEMORY_LIMIT: usize = 128 << 20;

/// Feeds `records` to plugin `name` under the default memory limit, then takes a snapshot:
/// no record may fail and the snapshot must succeed. Returns the memory the instance needed.
fn memory_at_worst_case(name: &str, config: &Value, records: impl Iterator<Item = (Value, i64)>) -> usize {
    let plugin = registry().load(&plugin(name)).expect("plugin loads");
    let limits = InstanceLimits { memory: DEFAULT_MEMORY_LIMIT, call_timeout: Duration::from_secs(30) };
    let spec = OperatorSpec::new(name, plugin, config.to_string(), vec!["input".into()], limits).expect("the plugin takes its config");
    let mut operator = Operator::start(spec, None).expect("operator starts");
    let mut chunk = Vec::with_capacity(1000);
    let flush = |chunk: &mut Vec<(Value, i64)>, operator: &mut Operator| {
        let processed = operator.process_gathered(0, sluice_sdk::testing::json_batch(chunk));
        assert!(processed.dead.is_empty(), "{name}: {:?}", processed.dead.first().map(|dead| &dead.reason));
        chunk.clear();
    };
    for record in records {
        chunk.push(record);
        if chunk.len() == 1000 {
            flush(&mut chunk, &mut operator);
        }
    }
    flush(&mut chunk, &mut operator);
    let state = operator.snapshot().unwrap_or_else(|failure| panic!("{name}: the snapshot at the worst case failed: {failure}"));
    let memory = operator.memory_in_use();
    eprintln!("{name}: {} MiB of memory at its worst case, snapshot {} MiB", memory >> 20, state.bytes.len() >> 20);
    memory
}

/// An id of `length` bytes for `n`.
fn long_id(prefix: &str, n: usize, length: usize) -> String {
    format!("{prefix}{n:0>width$}", width = length - prefix.len())
}

#[test]
fn recommend_at_its_worst_case_fits_the_default_memory_limit_with_a_snapshot() {
    // Defaults (50000 users, 20000 items): every row full, ids of 120 bytes (the limit is 128).
    let (users, items) = (50_000, 20_000);
    let records = (0..users * 12).map(|n| {
        let user = long_id("u", n % users, 120);
        let item = long_id("i", (n * 7919 + n / users * 104_729) % items, 120);
        (json!({"user_id": user, "item_id": item}), n as i64)
    });
    let memory = memory_at_worst_case("recommend", &json!({}), records);
    assert!(memory <= DEFAULT_MEMORY_LIMIT);
}

#[test]
fn moving_average_at_its_worst_case_fits_the_default_memory_limit_with_a_snapshot() {
    let (keys, values) = (2_000, 1_000);
    let config = json!({
        "field": "price",
        "group_by": ["key"],
        "averages": [{"type": "simple", "records": values}, {"type": "simple", "span": "1d"}, {"type": "exponential", "alpha": 0.3}],
    });
    let records = (0..keys * values).map(|n| (json!({"key": long_id("k", n % keys, 120), "price": n as f64}), n as i64));
    memory_at_worst_case("moving-average", &config, records);
}

#[test]
fn anomaly_detect_at_its_worst_case_fits_the_default_memory_limit_with_a_snapshot() {
    let (keys, window) = (10_000, 50);
    let config = json!({
        "field": "value",
        "group_by": ["key"],
        "detectors": [{"type": "zscore", "alpha": 0.05, "threshold": 3.0}, {"type": "mad", "window": window, "threshold": 3.5}],
    });
    let records = (0..keys * window).map(|n| (json!({"key": long_id("k", n % keys, 120), "value": (n % 97) as f64}), n as i64));
    memory_at_worst_case("anomaly-detect", &config, records);
}
