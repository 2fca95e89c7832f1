//! The learning operators as components in real pipelines: what they learn is their state, so
//! a model keeps its quality across a hot swap to a new build and across `kill -9`; and the
//! seed scenarios learn what their data hides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::broker::{SluiceProcess, wait_for};
use crate::support::{Scratch, plugin, privacy_run, registry, run, run_on_thread};

/// The labelled clickstream into an online logistic regression (the settings of
/// pipelines/conversion.toml), one event every 10 ms of event time.
const CONVERSION: &str = r#"
[pipeline]
name = "conversion"
parallelism = 1

[[sources]]
type = "generator"
seed = 11
count = {count}
event_interval = "10ms"
labels = true

[[operators]]
name = "conversion"
plugin = "{plugins}/learn.wasm"
[operators.config]
label = "converted"
numeric = ["price", "quantity"]
categorical = ["event_type", "campaign", "category"]
standardize = true
learning_rate = 0.05
report = false
"#;

fn conversion_pipeline(scratch: &Scratch, count: u64) -> PathBuf {
    scratch.pipeline_to_files(&CONVERSION.replace("{count}", &count.to_string()))
}

/// The three learning operators side by side on the labelled clickstream: `learn` predicts
/// conversions, `forecast` forecasts revenue per category every 10 s, `cluster` segments events
/// by price and quantity. Each writes to its own file.
const MODELS: &str = r#"
[pipeline]
name = "models"
parallelism = 1
checkpoint_interval = "200ms"
{state_dir}

[[sources]]
name = "clicks"
type = "generator"
seed = 11
count = {count}
rate = 20000
event_interval = "10ms"
labels = true

[[operators]]
name = "conversion"
inputs = ["clicks"]
plugin = "{plugins}/learn.wasm"
config = { label = "converted", numeric = ["price", "quantity"], categorical = ["event_type", "campaign", "category"], standardize = true, learning_rate = 0.05, report = false }

[[operators]]
name = "revenue"
inputs = ["clicks"]
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "10s" }, group_by = ["category"], aggregates = [{ function = "sum", field = "price", as = "revenue" }] }

[[operators]]
name = "forecast"
inputs = ["revenue"]
plugin = "{plugins}/forecast.wasm"
config = { key = ["category"], carry = ["window_end"], value = "revenue", alpha = 0.3, beta = 0.1, gamma = 0.2, season_length = 6, horizon = 3 }

[[operators]]
name = "segments"
inputs = ["clicks"]
plugin = "{plugins}/cluster.wasm"
config = { features = ["price", "quantity"], k = 3, report_centroids = false }

[[sinks]]
name = "predictions"
type = "file"
inputs = ["conversion"]
path = "predictions.jsonl"

[[sinks]]
name = "forecasts"
type = "file"
inputs = ["forecast"]
path = "forecasts.jsonl"

[[sinks]]
name = "segmented"
type = "file"
inputs = ["segments"]
path = "segments.jsonl"

[dead_letter]
type = "file"
path = "dead.jsonl"
"#;

const MODEL_OUTPUTS: [&str; 3] = ["predictions.jsonl", "forecasts.jsonl", "segments.jsonl"];

fn models_pipeline(scratch: &Scratch, state_dir: bool, count: u64, paced: bool) -> PathBuf {
    let text = MODELS.replace("{state_dir}", if state_dir { "state_dir = \"state\"" } else { "" }).replace("{count}", &count.to_string());
    scratch.pipeline(&if paced { text } else { text.replace("rate = 20000\n", "") })
}

/// The distinct lines of each output file of the models pipeline.
fn model_outputs(scratch: &Scratch) -> Vec<std::collections::BTreeSet<String>> {
    MODEL_OUTPUTS
        .iter()
        .map(|file| std::fs::read_to_string(scratch.path(file)).unwrap_or_default().lines().map(str::to_owned).collect())
        .collect()
}

/// Every output of an interrupted run (a swap, a kill) is what the uninterrupted run wrote, and
/// nothing is missing: each model went on from exactly its state, neither restarted nor lost
/// an update.
fn assert_outputs_of_an_uninterrupted_run(scratch: &Scratch, count: u64) {
    let reference = Scratch::new();
    run(&models_pipeline(&reference, false, count, false)).expect("the uninterrupted run");
    let (expected, actual) = (model_outputs(&reference), model_outputs(scratch));
    for ((file, expected), actual) in MODEL_OUTPUTS.iter().zip(&expected).zip(&actual) {
        assert!(expected.len() > 100, "{file}: {} records", expected.len());
        let (missing, unexpected) = (expected.difference(actual).count(), actual.difference(expected).count());
        assert!(missing == 0 && unexpected == 0, "{file}: {missing} records missing, {unexpected} unlike the uninterrupted run's");
    }
}

/// Mean log-loss of predictions against their labels.
fn log_loss(records: &[Value]) -> f64 {
    mean_and_variance(&losses(records)).0
}

/// Each prediction's log-loss against its label.
fn losses(records: &[Value]) -> Vec<f64> {
    let loss = |record: &Value| {
        let p = record["prediction"].as_f64().unwrap_or_else(|| panic!("a prediction in {record}")).clamp(1e-15, 1.0 - 1e-15);
        if record["converted"].as_bool().expect("a label") { -p.ln() } else { -(1.0 - p).ln() }
    };
    records.iter().map(loss).collect()
}

fn mean_and_variance(values: &[f64]) -> (f64, f64) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (mean, values.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / (values.len() as f64 - 1.0))
}

/// The area under the ROC curve of `scores` for `labels` (ties count half).
fn auc(scored: &[(f64, bool)]) -> f64 {
    let mut sorted = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut index) = (0.0, 0);
    while index < sorted.len() {
        let tie = sorted[index..].iter().take_while(|(score, _)| *score == sorted[index].0).count();
        let mean_rank = index as f64 + (tie as f64 + 1.0) / 2.0;
        rank_sum += mean_rank * sorted[index..index + tie].iter().filter(|(_, label)| *label).count() as f64;
        index += tie;
    }
    let positives = sorted.iter().filter(|(_, label)| *label).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// The probability the generator's hidden rule gave the record's label.
fn hidden_probability(record: &Value) -> f64 {
    let text = |field: &str| record[field].as_str().expect("a text field");
    let quantity = u32::try_from(record["quantity"].as_u64().expect("quantity")).expect("small");
    sluice::source::conversion_probability(
        text("event_type"),
        text("campaign"),
        text("category"),
        record["price"].as_f64().expect("price"),
        quantity,
    )
}

#[test]
fn the_conversion_learner_comes_close_to_the_hidden_rule_behind_the_labels() {
    let scratch = Scratch::new();
    let summary = run(&conversion_pipeline(&scratch, 60_000)).expect("the pipeline runs");
    assert_eq!(summary.dead_letters, 0);
    let records = scratch.json_lines("out.jsonl");
    assert_eq!(records.len(), 60_000, "every event is emitted with its prediction");
    let (first, last) = (&records[..2_000], &records[40_000..]);
    let learnt: Vec<(f64, bool)> = last
        .iter()
        .map(|record| (record["prediction"].as_f64().expect("prediction"), record["converted"].as_bool().expect("label")))
        .collect();
    let oracle: Vec<(f64, bool)> =
        last.iter().map(|record| (hidden_probability(record), record["converted"].as_bool().expect("label"))).collect();
    let oracle_loss = oracle.iter().map(|(p, label)| if *label { -p.ln() } else { -(1.0 - p).ln() }).sum::<f64>() / oracle.len() as f64;
    let (learnt_auc, oracle_auc, learnt_loss) = (auc(&learnt), auc(&oracle), log_loss(last));
    println!(
        "last 20,000 events: AUC {learnt_auc:.4} (the hidden rule's {oracle_auc:.4}), log-loss {learnt_loss:.4} (the hidden rule's \
         {oracle_loss:.4}); first 2,000: log-loss {:.4}",
        log_loss(first)
    );
    assert!(learnt_auc > oracle_auc - 0.02, "AUC {learnt_auc} is within 0.02 of the best possible {oracle_auc}");
    assert!(learnt_loss < oracle_loss + 0.02, "log-loss {learnt_loss} is within 0.02 of the best possible {oracle_loss}");
    assert!(log_loss(first) > learnt_loss, "the model improved as it learnt");
}

/// A new build of `plugin`: the same code with a custom section appended (another digest).
fn rebuilt(scratch: &Scratch, plugin_path: &Path) -> PathBuf {
    let mut bytes = std::fs::read(plugin_path).expect("the component reads");
    let (name, payload) = (b"sluice-test-build", b"2");
    let size = 1 + name.len() + payload.len();
    bytes.extend([0u8, u8::try_from(size).expect("small section"), u8::try_from(name.len()).expect("short name")]);
    bytes.extend(name);
    bytes.extend(payload);
    let name = plugin_path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("plugin");
    scratch.write_bytes(&format!("{name}-rebuilt.wasm"), &bytes)
}

/// The complete lines of output file `name` so far (a line a kill cut short does not count).
fn lines_written(scratch: &Scratch, name: &str) -> usize {
    std::fs::read_to_string(scratch.path(name)).map_or(0, |text| text.matches('\n').count())
}

/// Log-loss of the 2,000 predictions before line `at` of `predictions.jsonl` and of the 2,000
/// from it, printed.
///
/// Asserts that the two are within noise: four standard errors of their difference (the
/// windows hold different events, so their losses differ by chance alone).
fn assert_quality_continues(scratch: &Scratch, at: usize, what: &str) {
    let records = scratch.json_lines("predictions.jsonl");
    let (before, variance_before) = mean_and_variance(&losses(&records[at - 2_000..at]));
    let (after, variance_after) = mean_and_variance(&losses(&records[at..at + 2_000]));
    let noise = 4.0 * ((variance_before + variance_after) / 2_000.0).sqrt();
    println!(
        "log-loss: 2,000 predictions before the {what} {before:.4}, 2,000 after {after:.4} (noise ±{noise:.4}); a new model's first \
         2,000 {:.4}",
        log_loss(&records[..2_000])
    );
    assert!((after - before).abs() < noise, "the quality continues across the {what}: {before} → {after}, beyond ±{noise}");
}

#[test]
fn learners_swapped_to_new_builds_keep_their_models_exactly() {
    const EVENTS: u64 = 60_000;
    let scratch = Scratch::new();
    // The new builds are compiled before the run, so that the three swaps follow each other
    // while records still flow (compiling them between swaps, on a loaded machine, outlasted
    // the run).
    let new_builds: Vec<_> = [("conversion", "learn"), ("forecast", "forecast"), ("segments", "cluster")]
        .into_iter()
        .map(|(operator, plugin_name)| {
            (operator, plugin_name, registry().load(&rebuilt(&scratch, &plugin(plugin_name))).expect("compiles"))
        })
        .collect();
    let (control, _stop, thread) = run_on_thread(&models_pipeline(&scratch, false, EVENTS, true));
    wait_for(Duration::from_secs(60), "20,000 predictions", || lines_written(&scratch, "predictions.jsonl") >= 20_000);
    for (operator, plugin_name, new_build) in new_builds {
        let record = control.swap(operator, new_build, None).unwrap_or_else(|error| panic!("swapping {operator}: {error}"));
        assert_ne!(record.old_digest, record.new_digest, "a new build of {plugin_name}");
    }
    let swapped_at = lines_written(&scratch, "predictions.jsonl");
    thread.join().expect("the pipeline thread").expect("the pipeline ends cleanly");
    assert!(swapped_at + 2_000 < EVENTS as usize, "the swaps came with records to go: at {swapped_at}");
    assert_eq!(lines_written(&scratch, "predictions.jsonl") as u64, EVENTS);
    assert_outputs_of_an_uninterrupted_run(&scratch, EVENTS);
    assert_quality_continues(&scratch, swapped_at, "swap");
}

#[test]
fn learners_killed_with_sigkill_resume_their_models_from_the_checkpoint() {
    const EVENTS: u64 = 100_000;
    let _serial = crate::broker::broker_slot();
    let scratch = Scratch::new();
    let pipeline = models_pipeline(&scratch, true, EVENTS, true);
    let checkpoint = scratch.path("state/models/checkpoint.json");
    let mut first = SluiceProcess::start(scratch.dir.path(), &pipeline, "first.log");
    wait_for(Duration::from_secs(60), "20,000 predictions and a checkpoint", || {
        lines_written(&scratch, "predictions.jsonl") >= 20_000 && checkpoint.is_file()
    });
    first.kill();
    let killed_at = lines_written(&scratch, "predictions.jsonl");
    let mut second = SluiceProcess::start(scratch.dir.path(), &pipeline, "second.log");
    assert_eq!(second.wait_exit(Duration::from_secs(120)), Some(true), "the resumed run finishes:\n{}", second.log_text());
    assert!(second.log_text().contains("resuming from a checkpoint"), "{}", second.log_text());
    // The resumed run appends after the first run's complete lines, starting again from its
    // checkpoint (a little before the kill) with the models of that checkpoint.
    assert_outputs_of_an_uninterrupted_run(&scratch, EVENTS);
    assert_quality_continues(&scratch, killed_at, "kill");
}

/// Whether `text` holds a generator user id as a JSON string (`"u` and digits, then `"`).
fn contains_a_user_id(text: &str) -> bool {
    text.split("\"u").skip(1).any(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest.as_bytes().get(digits) == Some(&b'"')
    })
}

#[test]
fn mask_gives_the_same_pseudonyms_in_every_process_for_a_key_and_others_for_another_key() {
    assert!(contains_a_user_id(r#"{"user_id":"u12"}"#) && !contains_a_user_id(r#"{"user_id":"u12ab"}"#), "the check works");
    let (key, other_key) = ("a-test-key-of-32-bytes-0123456789", "another-test-key-of-32-bytes-0123");
    let (first, again, other) = (privacy_run(key), privacy_run(key), privacy_run(other_key));
    let users = |text: &str| -> Vec<String> {
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("JSON")["user_id"].as_str().expect("a pseudonym").to_owned())
            .collect()
    };
    let sorted = |text: &str| {
        let mut users = users(text);
        users.sort();
        users
    };
    assert_eq!(sorted(&first), sorted(&again), "the same key gives the same pseudonyms in another process");
    let (ours, theirs) = (sorted(&first), sorted(&other));
    assert!(ours.iter().all(|user| !theirs.contains(user)), "another key gives other pseudonyms");
    assert!(ours.iter().all(|user| user.len() == 32 && user.bytes().all(|byte| byte.is_ascii_hexdigit())), "{:?}", &ours[..3]);
    assert!(!contains_a_user_id(&first) && !first.contains(key), "no user id or key in the output");
}

#[test]
fn nothing_mask_protects_reaches_a_later_operators_output_or_dead_letters() {
    let scratch = Scratch::new();
    // After `mask`, a window that sums a text field refuses every record: its dead letters are
    // the masked records.
    let pipeline = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "masked"

[[sources]]
type = "generator"
count = 500
users = 50

[[operators]]
name = "mask"
plugin = "{plugins}/mask.wasm"
secrets = { key = { env = "SLUICE_TEST_MASK_KEY" } }
config = { secret = "key", pseudonymise = ["user_id"], redact = ["item_id"], drop = ["campaign"] }

[[operators]]
name = "refuses-all"
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "1m" }, aggregates = [{ function = "sum", field = "user_id", as = "nonsense" }] }
"#,
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &pipeline.display().to_string()])
        .current_dir(scratch.dir.path())
        .env("SLUICE_TEST_MASK_KEY", "a-test-key-that-nobody-should-see")
        .output()
        .expect("sluice runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dead = std::fs::read_to_string(scratch.path("dead.jsonl")).expect("dead letters");
    assert_eq!(dead.lines().count(), 500, "every record was refused after mask");
    let everything = format!(
        "{dead}{}{}",
        std::fs::read_to_string(scratch.path("out.jsonl")).unwrap_or_default(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!contains_a_user_id(&everything), "a user id appears after mask");
    assert!(!everything.contains("a-test-key-that-nobody-should-see"), "the key appears");
    assert!((0..500).all(|item| !everything.contains(&format!("\"i{item}\""))), "a redacted item id appears");
    assert!(!everything.contains("campaign"), "a dropped field appears");
}
