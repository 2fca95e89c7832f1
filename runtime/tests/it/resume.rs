//! Checkpoints of file and generator sources in a local state directory: a run that is
//! killed or stopped resumes where its last checkpoint was, and window results stay exact
//! and are written once.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::broker::SluiceProcess;
use crate::support::{Scratch, assert_exact_counts, run, window_counts};

/// 300,000 generated clicks (20 users, 10 ms of event time apart) at 20,000 per second,
/// counted per user in 10-second tumbling windows; checkpoints every 100 ms.
const GENERATOR_PIPELINE: &str = r#"
[pipeline]
name = "resumable"
checkpoint_interval = "100ms"
{state_dir}

[[sources]]
type = "generator"
count = 300000
rate = 20000
users = 20

[[operators]]
name = "counts"
plugin = "{plugins}/window-aggregate.wasm"
[operators.config]
window = { type = "tumbling", size = "10s" }
group_by = ["user_id"]
aggregates = [{ function = "count", as = "count" }]
"#;

/// The "N records in" of a finished run's log.
fn records_read(log: &str) -> u64 {
    let finished = log.lines().find(|line| line.contains("finished:")).unwrap_or_else(|| panic!("the run finished:\n{log}"));
    let before = finished.split(" records in").next().unwrap_or_default();
    before.rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|digits| digits.parse().ok()).expect("a record count")
}

#[test]
fn kill_9_and_sigterm_during_a_generator_run_resume_from_the_state_directory_with_exact_windows() {
    use rand::{Rng, SeedableRng};
    let _serial = crate::broker::broker_slot();
    let reference = Scratch::new();
    // The reference runs at full speed: the rate changes when records come, not what they are.
    let unpaced = GENERATOR_PIPELINE.replace("{state_dir}", "").replace("rate = 20000\n", "");
    run(&reference.pipeline_to_files(&unpaced)).expect("uninterrupted run");
    let expected: BTreeMap<_, u64> =
        window_counts(reference.json_lines("out.jsonl"), "user_id").into_iter().map(|(window, counts)| (window, counts[0])).collect();
    assert!(expected.len() > 1000, "{} windows", expected.len());

    let scratch = Scratch::new();
    let pipeline = scratch.pipeline_to_files(&GENERATOR_PIPELINE.replace("{state_dir}", r#"state_dir = "state""#));
    let checkpoint = scratch.path("state/resumable/checkpoint.json");
    let seed = crate::support::test_seed("kill moments");
    let mut random = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let saved = || std::fs::metadata(&checkpoint).and_then(|metadata| metadata.modified()).ok();
    for round in 0..5 {
        let before = saved();
        let mut sluice = SluiceProcess::start(scratch.dir.path(), &pipeline, &format!("run-{round}.log"));
        // Until this run has saved a checkpoint, then a random moment of processing.
        crate::broker::wait_for(Duration::from_secs(60), "a checkpoint of this run", || saved().is_some_and(|at| Some(at) != before));
        std::thread::sleep(Duration::from_millis(random.random_range(100..1_000)));
        assert!(sluice.is_running(), "round {round} still running:\n{}", sluice.log_text());
        if round % 2 == 0 {
            sluice.kill();
        } else {
            assert!(sluice.terminate(Duration::from_secs(20)), "SIGTERM drains:\n{}", sluice.log_text());
        }
        assert!(checkpoint.is_file(), "round {round} left a checkpoint:\n{}", sluice.log_text());
    }
    let mut last = SluiceProcess::start(scratch.dir.path(), &pipeline, "run-last.log");
    crate::broker::wait_for(Duration::from_secs(60), "the last run to finish", || !last.is_running());
    let log = last.log_text();
    assert!(log.contains("resuming from a checkpoint"), "{log}");
    let read = records_read(&log);
    assert!(read < 300_000, "the last run read only what no checkpoint covered, not {read}");
    assert!(!checkpoint.exists(), "a finished run removes its checkpoint");

    let results = window_counts(scratch.json_lines("out.jsonl"), "user_id");
    assert_eq!(results.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the same windows");
    assert_exact_counts(&expected, &results);
    // What a killed run wrote after its last checkpoint is cut off the file when the next
    // run resumes, and written again by it: each window's result is in the file once.
    let duplicates: usize = results.values().map(|emitted| emitted.len() - 1).sum();
    assert_eq!(duplicates, 0, "results written twice after kills");
}

/// 120,000 generated clicks at 30,000 per second through a stateless stage to a moving
/// average over each user's last three prices in event-time order: the records held for that
/// order when a run stops are in its checkpoint.
const ORDERED_PIPELINE: &str = r#"
[pipeline]
name = "ordered"
checkpoint_interval = "100ms"
out_of_orderness = "1s"
parallelism = 2
{state_dir}

[[sources]]
type = "generator"
count = 120000
rate = 30000
users = 20

[[operators]]
name = "priced"
plugin = "{plugins}/filter.wasm"
config = { field = "price", op = "exists" }

[[operators]]
name = "trend"
plugin = "{plugins}/moving-average.wasm"
order = "event-time"
config = { field = "price", group_by = ["user_id"], averages = [{ type = "simple", records = 3, as = "sma" }] }
"#;

/// Each output record's average by event id.
fn averages_by_event(scratch: &Scratch) -> BTreeMap<u64, f64> {
    let records = scratch.json_lines("out.jsonl");
    let averages: BTreeMap<u64, f64> =
        records.iter().map(|record| (record["event_id"].as_u64().expect("event_id"), record["sma"].as_f64().expect("sma"))).collect();
    assert_eq!(averages.len(), records.len(), "each event once");
    averages
}

#[test]
fn records_held_for_event_time_order_survive_a_stop_and_a_kill_9() {
    let _serial = crate::broker::broker_slot();
    let reference = Scratch::new();
    let unpaced = ORDERED_PIPELINE.replace("{state_dir}", "").replace("rate = 30000\n", "");
    run(&reference.pipeline_to_files(&unpaced)).expect("uninterrupted run");
    let expected = averages_by_event(&reference);
    assert_eq!(expected.len(), 120_000);

    let scratch = Scratch::new();
    let pipeline = scratch.pipeline_to_files(&ORDERED_PIPELINE.replace("{state_dir}", r#"state_dir = "state""#));
    let checkpoint = scratch.path("state/ordered/checkpoint.json");
    let saved = || std::fs::metadata(&checkpoint).and_then(|metadata| metadata.modified()).ok();
    for round in 0..2 {
        let before = saved();
        let mut sluice = SluiceProcess::start(scratch.dir.path(), &pipeline, &format!("run-{round}.log"));
        crate::broker::wait_for(Duration::from_secs(60), "a checkpoint of this run", || saved().is_some_and(|at| Some(at) != before));
        assert!(sluice.is_running(), "round {round} still running:\n{}", sluice.log_text());
        if round == 0 {
            assert!(sluice.terminate(Duration::from_secs(20)), "SIGTERM drains:\n{}", sluice.log_text());
            let stored = std::fs::read_to_string(&checkpoint).expect("checkpoint");
            assert!(stored.contains("\"held\""), "a stop holds records for event-time order: {stored:.300}");
        } else {
            sluice.kill();
        }
    }
    let mut last = SluiceProcess::start(scratch.dir.path(), &pipeline, "run-last.log");
    crate::broker::wait_for(Duration::from_secs(60), "the last run to finish", || !last.is_running());
    assert!(last.log_text().contains("resuming from a checkpoint"), "{}", last.log_text());
    assert_eq!(averages_by_event(&scratch), expected, "the same averages as an uninterrupted run");
}

const FILE_PIPELINE: &str = r#"
[pipeline]
name = "lines"
state_dir = "state"
parallelism = 1

[[sources]]
type = "file"
path = "in.jsonl"

[[operators]]
name = "numbered"
plugin = "{plugins}/filter.wasm"
config = { field = "n", op = "exists" }
"#;

/// Saves in the pipeline's state directory the checkpoint a run that processed the file up
/// to (not including) line `next_line`, with no operator state, would have left.
fn save_checkpoint_at(pipeline: &std::path::Path, next_line: u64) {
    save_checkpoint_with_outputs_at(pipeline, next_line, Default::default());
}

/// Like `save_checkpoint_at`, with the output files' lengths the checkpoint recorded (of the
/// files `pipeline_to_files` names).
fn save_checkpoint_with_outputs_at(pipeline: &std::path::Path, next_line: u64, outputs: BTreeMap<String, u64>) {
    let output_paths = outputs.keys().map(|output| (output.clone(), pipeline.with_file_name(output_file_name(output)))).collect();
    save_checkpoint_of_outputs_at(pipeline, next_line, outputs, output_paths);
}

/// Like `save_checkpoint_with_outputs_at`, with the files the lengths were recorded of.
fn save_checkpoint_of_outputs_at(
    pipeline: &std::path::Path,
    next_line: u64,
    outputs: BTreeMap<String, u64>,
    output_paths: BTreeMap<String, std::path::PathBuf>,
) {
    use sluice::state_dir::{PipelineCheckpoint, SharePosition, StateDirectory};
    let loaded = sluice::config::LoadedPipeline::load(pipeline).expect("the pipeline loads");
    let (layout, inputs) = sluice::topology::local_checkpoint_identity(&loaded, crate::support::registry()).expect("its wiring");
    let shares = [("file".to_owned(), SharePosition { next_position: next_line, watermark: None })].into();
    let checkpoint = PipelineCheckpoint { layout, inputs, shares, tasks: Default::default(), outputs, output_paths };
    let directory = StateDirectory::open(&pipeline.with_file_name("state"), "lines").expect("the state directory opens");
    directory.save(&checkpoint).expect("the checkpoint is saved");
}

/// The file `pipeline_to_files` gives an output.
fn output_file_name(output: &str) -> &'static str {
    if output == "[dead_letter]" { "dead.jsonl" } else { "out.jsonl" }
}

#[test]
fn a_file_source_skips_the_lines_its_checkpoint_covers_and_continues_the_output() {
    let scratch = Scratch::new();
    let lines: String = (1..=100).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    scratch.write("in.jsonl", &lines);
    let pipeline = scratch.pipeline_to_files(FILE_PIPELINE);
    let checkpoint = scratch.path("state/lines/checkpoint.json");
    save_checkpoint_at(&pipeline, 51);
    // What the interrupted run wrote, ending in half a line (killed while writing).
    scratch.write("out.jsonl", "{\"n\":\"written before the restart\"}\n{\"n\":5");

    let summary = run(&pipeline).expect("resumed run");
    assert_eq!(summary.sources.records, 50, "lines 51 to 100");
    let output: Vec<_> = scratch.json_lines("out.jsonl").iter().map(|line| line["n"].clone()).collect();
    let mut expected = vec![serde_json::json!("written before the restart")];
    expected.extend((51..=100).map(|n| serde_json::json!(n)));
    assert_eq!(output, expected, "the output file is continued (its torn last line dropped), not emptied");
    assert!(!checkpoint.exists(), "the finished run removed its checkpoint");

    let summary = run(&pipeline).expect("a second run");
    assert_eq!(summary.sources.records, 100, "without a checkpoint the file is read from its start");
    assert_eq!(scratch.json_lines("out.jsonl").len(), 100, "and the output starts afresh");
}

/// What a killed run wrote after its checkpoint, results and dead letters alike, is cut off
/// when the next run resumes: that run writes it again, so each is in its file once.
#[test]
fn a_resumed_run_cuts_its_output_files_back_to_their_length_at_the_checkpoint() {
    let scratch = Scratch::new();
    let lines: String = (1..=100).map(|n| if n == 70 { "not json\n".to_owned() } else { format!("{{\"n\":{n}}}\n") }).collect();
    scratch.write("in.jsonl", &lines);
    let pipeline = scratch.pipeline_to_files(FILE_PIPELINE);
    let (kept, dead_kept) = ("{\"n\":\"before the checkpoint\"}\n", "{\"reason\":\"before the checkpoint\"}\n");
    let outputs = [("file".to_owned(), kept.len() as u64), ("[dead_letter]".to_owned(), dead_kept.len() as u64)].into();
    save_checkpoint_with_outputs_at(&pipeline, 51, outputs);
    // The killed run had gone on past the checkpoint, to line 80, and was cut off mid-line.
    let after: String = (51..=80).filter(|n| *n != 70).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    scratch.write("out.jsonl", &format!("{kept}{after}{{\"n\":8"));
    scratch.write("dead.jsonl", &format!("{dead_kept}{{\"reason\":\"line 70, from the killed run\"}}\n"));

    let summary = run(&pipeline).expect("resumed run");
    assert_eq!(summary.sources.records, 50, "lines 51 to 100");
    let output: Vec<_> = scratch.json_lines("out.jsonl").iter().map(|line| line["n"].clone()).collect();
    let mut expected = vec![serde_json::json!("before the checkpoint")];
    expected.extend((51..=100).filter(|n| *n != 70).map(|n| serde_json::json!(n)));
    assert_eq!(output, expected, "each result once");
    let dead: Vec<_> = scratch.json_lines("dead.jsonl").iter().map(|letter| letter["position"].clone()).collect();
    assert_eq!(dead, vec![serde_json::Value::Null, serde_json::json!(70)], "the line 70 dead letter once, from this run");
}

/// A sink whose path was changed between the interrupted run and the resumed one appends to
/// its new file, which may be another file altogether: it is not cut at the old file's length.
/// The old file is cut back to the checkpoint (what the interrupted run wrote after it is
/// written again, to the new file: each result in one file once).
#[test]
fn an_output_whose_path_changed_since_the_checkpoint_is_appended_to_not_cut() {
    let scratch = Scratch::new();
    let lines: String = (1..=100).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    scratch.write("in.jsonl", &lines);
    let pipeline = scratch.pipeline_to_files(FILE_PIPELINE);
    let outputs = [("file".to_owned(), 3), ("[dead_letter]".to_owned(), 3)].into();
    let output_paths =
        [("file".to_owned(), scratch.path("before.jsonl")), ("[dead_letter]".to_owned(), scratch.path("dead-before.jsonl"))].into();
    save_checkpoint_of_outputs_at(&pipeline, 51, outputs, output_paths);
    let unrelated = "{\"n\":\"a file that was there before\"}\n";
    scratch.write("out.jsonl", unrelated);
    scratch.write("dead.jsonl", unrelated);
    scratch.write("before.jsonl", "{}\n{\"n\":51}\n");
    scratch.write("dead-before.jsonl", "{}\n{\"n\":51}\n");

    let summary = run(&pipeline).expect("resumed run");
    for old in ["before.jsonl", "dead-before.jsonl"] {
        assert_eq!(std::fs::read_to_string(scratch.path(old)).expect("the old file"), "{}\n", "{old} cut back to the checkpoint");
    }
    assert_eq!(summary.sources.records, 50, "lines 51 to 100");
    let output: Vec<_> = scratch.json_lines("out.jsonl").iter().map(|line| line["n"].clone()).collect();
    let mut expected = vec![serde_json::json!("a file that was there before")];
    expected.extend((51..=100).map(|n| serde_json::json!(n)));
    assert_eq!(output, expected, "appended to, not cut at the old file's length");
    assert_eq!(std::fs::read_to_string(scratch.path("dead.jsonl")).expect("dead letters"), unrelated);
}

/// A run with a state directory killed before its first checkpoint is run again from the
/// start: its dead letters, like its results, end up in their file once (the file is cut
/// back to its length when the first run began), and what was there before is kept.
#[test]
fn a_run_killed_before_its_first_checkpoint_leaves_each_dead_letter_once_after_the_next() {
    let scratch = Scratch::new();
    // Line 10 is not JSON (dead-lettered by the source at once); line 50 keeps the operator
    // busy until its call timeout, so that the run is still going when it is killed.
    let lines: String = (1..=60)
        .map(|n| match n {
            10 => "not json\n".to_owned(),
            50 => "{\"n\":50,\"m\":\"SPIN\"}\n".to_owned(),
            n => format!("{{\"n\":{n}}}\n"),
        })
        .collect();
    scratch.write("in.jsonl", &lines);
    scratch.write("dead.jsonl", "{\"reason\":\"from an earlier run\"}\n");
    let pipeline = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "killed-early"
state_dir = "state"
checkpoint_interval = "1h"
parallelism = 1

[[sources]]
type = "file"
path = "in.jsonl"
timestamp_field = "n"

[[operators]]
name = "slow"
plugin = "{plugins}/misbehave.wasm"
call_timeout = "2s"
config = { spin_on = "SPIN" }
"#,
    );
    let mut sluice = SluiceProcess::start(scratch.dir.path(), &pipeline, "killed.log");
    crate::broker::wait_for(Duration::from_secs(60), "the first run's dead letter", || scratch.json_lines("dead.jsonl").len() == 2);
    assert!(!scratch.path("state/killed-early/checkpoint.json").exists(), "no checkpoint yet:\n{}", sluice.log_text());
    sluice.kill();

    run(&pipeline).expect("the run again from the start");
    let reasons: Vec<String> =
        scratch.json_lines("dead.jsonl").iter().map(|letter| letter["reason"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(reasons.len(), 3, "the earlier run's, line 10's and line 50's: {reasons:?}");
    assert_eq!(reasons[0], "from an earlier run");
    assert!(reasons[1].contains("line 10"), "{reasons:?}");
    let mut numbers: Vec<u64> = scratch.json_lines("out.jsonl").iter().filter_map(|line| line["n"].as_u64()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=60).filter(|n| *n != 10 && *n != 50).collect::<Vec<u64>>(), "each result once");
}

#[test]
fn a_replaced_or_shorter_file_or_a_locked_state_directory_is_a_clear_error() {
    let scratch = Scratch::new();
    scratch.write("in.jsonl", "{\"n\":1}\n{\"n\":2}\n");
    let pipeline = scratch.pipeline_to_files(FILE_PIPELINE);
    run(&pipeline).expect("a first run");
    let checkpoint = scratch.path("state/lines/checkpoint.json");
    save_checkpoint_at(&pipeline, 2);
    scratch.write("in.jsonl", "{\"n\":\"another file\"}\n{\"n\":2}\n");
    let error = run(&pipeline).expect_err("the checkpoint belongs to other input").to_string();
    assert!(error.contains("now reads other input than the checkpoint") && error.contains("remove the checkpoint"), "{error}");
    scratch.write("in.jsonl", "{\"n\":1}\n{\"n\":2}\n");
    save_checkpoint_at(&pipeline, 1_000);
    let error = run(&pipeline).expect_err("the input was replaced").to_string();
    assert!(error.contains("ends before position 1000") && error.contains("Remove the pipeline's checkpoint"), "{error}");
    assert!(checkpoint.is_file(), "the checkpoint is kept");

    std::fs::remove_file(&checkpoint).unwrap();
    let held = sluice::state_dir::StateDirectory::open(&scratch.path("state"), "lines").expect("lock");
    let error = run(&pipeline).expect_err("another process holds the state directory").to_string();
    assert!(error.contains("in use by another sluice process"), "{error}");
    drop(held);
    run(&pipeline).expect("runs once the directory is free");
}

/// Behind a keyed operator (an exchange to a second stage), a resumed run whose input ends
/// before its checkpoint's position fails with the same clear error: before, the second stage
/// waited for the first forever, and the run hung without a word.
#[test]
fn a_shorter_file_behind_a_keyed_stage_is_a_clear_error_not_a_hang() {
    let scratch = Scratch::new();
    scratch.write("in.jsonl", "{\"n\":1}\n{\"n\":2}\n");
    let keyed = FILE_PIPELINE.replace(
        "plugin = \"{plugins}/filter.wasm\"\nconfig = { field = \"n\", op = \"exists\" }",
        "plugin = \"{plugins}/dedupe.wasm\"\nconfig = { keys = [\"n\"], horizon = \"1m\" }",
    );
    assert!(keyed.contains("dedupe"), "the keyed operator is in the pipeline");
    let pipeline = scratch.pipeline_to_files(&keyed);
    save_checkpoint_at(&pipeline, 1_000);
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(run(&pipeline).map(|_| ()).map_err(|error| error.to_string()));
    });
    let outcome = outcome.recv_timeout(std::time::Duration::from_secs(60)).expect("the run ends instead of hanging");
    let error = outcome.expect_err("the input was replaced");
    assert!(error.contains("ends before position 1000"), "{error}");
}

#[test]
fn checkpoints_that_keep_failing_stop_the_pipeline_with_the_reason() {
    let scratch = Scratch::new();
    let pipeline = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "unsaved"
state_dir = "state"
checkpoint_interval = "20ms"
tolerated_checkpoint_failures = 2

[[sources]]
type = "generator"
count = 1000000
rate = 20000

[[operators]]
name = "everything"
plugin = "{plugins}/filter.wasm"
config = { field = "user_id", op = "exists" }
"#,
    );
    // A directory where the checkpoint's temporary file must go: every save fails.
    std::fs::create_dir_all(scratch.path("state/unsaved/checkpoint.json.tmp")).unwrap();
    let error = run(&pipeline).expect_err("the pipeline stops").to_string();
    assert!(error.contains("3 checkpoints in a row failed") && error.contains("checkpoint.json"), "{error}");
    // It stops as soon as the failures pass the tolerance (its source would take 50 s): before,
    // it went on reading to the end with nothing saved, and said so only then.
    let written = std::fs::read_to_string(scratch.path("out.jsonl")).unwrap_or_default().lines().count();
    assert!(written < 1_000_000 / 2, "the pipeline ran on after its checkpoints failed: {written} records written");
}

/// A snapshot that fails at every checkpoint fails each round at once (every task has
/// answered), so the failures are counted and the pipeline stops with the plugin's reason.
/// Before, a task that skipped its checkpoint never answered the round: each round waited 60 s
/// for it, and meanwhile the journal's compaction had opened the operator's circuit.
#[test]
fn a_snapshot_that_fails_at_every_checkpoint_stops_the_pipeline_after_the_tolerated_failures() {
    let scratch = Scratch::new();
    let pipeline = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "unsnapshotted"
state_dir = "state"
checkpoint_interval = "50ms"
tolerated_checkpoint_failures = 1

[[sources]]
type = "generator"
count = 3000000
rate = 10000

[[operators]]
name = "flaky"
plugin = "{plugins}/misbehave.wasm"
config = { trap_in_snapshot_after = 1 }
"#,
    );
    let error = run(&pipeline).expect_err("the pipeline stops").to_string();
    assert!(error.contains("2 checkpoints in a row failed") && error.contains("snapshot"), "{error}");
    assert!(!scratch.path("dead.jsonl").is_file() || scratch.json_lines("dead.jsonl").is_empty(), "the operator's circuit stayed closed");
}

/// 40,000 users, one record each, then 6,000 records the `trap` operator panics on and
/// `users_after` more users, all in one hour of event time: counted per user in a one-hour
/// window. Returns the number of records.
fn held_state_input(scratch: &Scratch, users_after: u64) -> u64 {
    use std::fmt::Write as _;
    let mut lines = String::new();
    let user = |lines: &mut String, i: u64| writeln!(lines, r#"{{"ts":{},"u":"user-{i:07}"}}"#, 1_767_225_600_000 + i / 100);
    (0..40_000).for_each(|i| user(&mut lines, i).expect("line"));
    (0..6_000).for_each(|_| lines.push_str("{\"ts\":1767225600000,\"u\":\"poison\"}\n"));
    (40_000..40_000 + users_after).for_each(|i| user(&mut lines, i).expect("line"));
    scratch.write("in.jsonl", &lines);
    46_000 + users_after
}

/// `held_state_input` → `before` (operators) → a count per user in a one-hour window (`w`,
/// with `settings` among its keys), checkpointing into `state` every 20 ms.
fn held_state_pipeline(scratch: &Scratch, name: &str, before: &str, settings: &str) -> std::path::PathBuf {
    scratch.pipeline_to_files(&format!(
        r#"
[pipeline]
name = "{name}"
parallelism = 1
batch_size = 1000
state_dir = "state"
checkpoint_interval = "20ms"

[[sources]]
type = "file"
path = "in.jsonl"
timestamp_field = "ts"

{before}
[[operators]]
name = "w"
plugin = "{{plugins}}/window-aggregate.wasm"
{settings}[operators.config]
window = {{ type = "tumbling", size = "1h" }}
group_by = ["u"]
aggregates = [{{ function = "count", as = "n" }}]
"#
    ))
}

/// Each user's count once, and every record counted or dead-lettered exactly once.
fn assert_every_record_counted_once(scratch: &Scratch, records: u64) {
    let results = scratch.json_lines("out.jsonl");
    let users: std::collections::BTreeSet<&str> = results.iter().filter_map(|result| result["u"].as_str()).collect();
    assert_eq!(users.len(), results.len(), "each group once");
    // (Records a disabled operator refused before the checkpoint resumed from stay dead letters.)
    let counted: u64 = results.iter().map(|result| result["n"].as_u64().expect("n")).sum();
    let dead = scratch.json_lines("dead.jsonl").len() as u64;
    assert_eq!(counted + dead, records, "{counted} counted and {dead} dead letters");
}

/// An operator disabled on the way (every record of five batches failed) still holds state
/// when the input ends: the run stops unfinished instead of finishing without it, and keeps its
/// checkpoint, from which a run with the cause removed gives every result once. Before, the
/// run finished, removing the checkpoint, with the disabled operator's state never emitted.
#[test]
fn a_run_whose_input_ends_with_a_disabled_operator_holding_state_stops_unfinished_and_resumes_exactly() {
    let scratch = Scratch::new();
    // Enough records after the operator is disabled for checkpoints to come meanwhile.
    let records = held_state_input(&scratch, 100_000);
    let pipeline = |trap_on: &str| {
        let trap =
            format!("[[operators]]\nname = \"trap\"\nplugin = \"{{plugins}}/misbehave.wasm\"\nconfig = {{ trap_on = \"{trap_on}\" }}\n");
        held_state_pipeline(&scratch, "held", &trap, "")
    };
    let error = run(&pipeline("poison")).expect_err("the run stops unfinished").to_string();
    // At the input's end, or at the first checkpoint after the circuit opened.
    assert!(error.contains("operator \"trap\" was disabled") && error.contains("the run stops unfinished"), "{error}");
    // What the next run resumes from stays: its last checkpoint, or (none taken yet) the
    // record of where this run began, so that its dead letters are not kept twice.
    let kept = ["checkpoint.json", "run-start.json"].map(|file| scratch.path(&format!("state/held/{file}")).is_file());
    assert!(kept.contains(&true), "the run's state directory is kept");
    run(&pipeline("nothing")).expect("the run with the cause removed");
    assert_every_record_counted_once(&scratch, records);
    // No checkpoint was committed past the records the disabled operator refused: the run
    // with the cause removed processed them (before, they stayed dead letters, missing from
    // the state resumed, whose windows then came out short).
    let disabled = scratch
        .json_lines("dead.jsonl")
        .iter()
        .filter(|letter| letter["reason"].as_str().is_some_and(|r| r.contains("circuit open")))
        .count();
    assert_eq!(disabled, 0, "records refused while the operator was disabled are dead letters still");
}

/// An operator whose last call at the end of the input (windows firing) runs out of memory
/// twice took its state with it: the pipeline stops with that error instead of ending with
/// its results in no output and no dead letter (a prober's 250,000 groups: 0 out, 0 dead
/// letters), and a run with a larger memory limit gives every result once.
#[test]
fn an_operator_that_fails_for_good_with_its_state_stops_the_run_and_a_larger_limit_loses_nothing() {
    let scratch = Scratch::new();
    let records = held_state_input(&scratch, 1_000);
    let pipeline = |memory_limit: &str| held_state_pipeline(&scratch, "lost", "", &format!("memory_limit = \"{memory_limit}\"\n"));
    let error = run(&pipeline("16MiB")).expect_err("the run stops").to_string();
    let stopped = error.contains("its state went with it") || error.contains("the run stops unfinished");
    assert!(stopped && error.contains("memory"), "{error}");
    run(&pipeline("256MiB")).expect("the run with a larger limit");
    assert_every_record_counted_once(&scratch, records);
}

/// A task that stops mid-run, its operator's state lost, stops the whole pipeline, unbounded
/// sources feeding other tasks included, and keeps the state directory (a review found that
/// other tasks and the sources waiting for a last round could wait for ever).
#[test]
fn a_task_that_loses_its_state_mid_run_stops_every_other_part_of_the_pipeline() {
    let scratch = Scratch::new();
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "midway"
parallelism = 2
batch_size = 100
state_dir = "state"
checkpoint_interval = "20ms"

[[sources]]
type = "generator"

[[operators]]
name = "numbered"
plugin = "{plugins}/project.wasm"
config = { compute = { n = "event_id" }, keep = ["n"] }

[[operators]]
name = "flaky"
plugin = "{plugins}/misbehave.wasm"
config = { trap_in_snapshot_after = 20000 }
"#,
    );
    let (ended, end) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = ended.send(run(&path).map(drop).map_err(|error| error.to_string()));
    });
    let result = end.recv_timeout(Duration::from_secs(120)).expect("the pipeline stops");
    let error = result.expect_err("it stops with the error");
    assert!(error.contains("operator \"flaky\" failed, and its state went with it"), "{error}");
    let kept = ["checkpoint.json", "run-start.json"].map(|file| scratch.path(&format!("state/midway/{file}")).is_file());
    assert!(kept.contains(&true), "the state directory is kept");
}

/// A generator's `count` lowered below the record its checkpoint resumes at is refused before
/// anything starts, in the generator's terms, and the output file is left as it was (before,
/// the file was cut back to the checkpoint and the run then failed saying the input was
/// "replaced or truncated").
#[test]
fn a_count_below_the_checkpoint_is_refused_before_the_output_is_cut() {
    use sluice::state_dir::{PipelineCheckpoint, SharePosition, StateDirectory};
    let scratch = Scratch::new();
    let text = |count: u64| {
        format!(
            "[pipeline]\nname = \"counted\"\nparallelism = 1\nstate_dir = \"state\"\n\n[[sources]]\ntype = \"generator\"\ncount = {count}\n"
        )
    };
    let pipeline = scratch.pipeline_to_files(&text(2_000));
    let loaded = sluice::config::LoadedPipeline::load(&pipeline).expect("the pipeline loads");
    let (layout, inputs) = sluice::topology::local_checkpoint_identity(&loaded, crate::support::registry()).expect("its wiring");
    let shares = [("generator".to_owned(), SharePosition { next_position: 1_500, watermark: None })].into();
    let outputs = [("file".to_owned(), 3)].into();
    let output_paths = [("file".to_owned(), scratch.path("out.jsonl"))].into();
    let checkpoint = PipelineCheckpoint { layout, inputs, shares, tasks: Default::default(), outputs, output_paths };
    StateDirectory::open(&scratch.path("state"), "counted").expect("the state directory opens").save(&checkpoint).expect("saved");
    scratch.write("out.jsonl", "{}\n{\"written\":\"after the checkpoint\"}\n");
    let lowered = scratch.pipeline_to_files(&text(1_000));
    let error = run(&lowered).expect_err("the checkpoint resumes past the count").to_string();
    assert!(error.contains("count = 1000 is below record 1500") && error.contains("a count of at least 1500"), "{error}");
    assert_eq!(std::fs::read_to_string(scratch.path("out.jsonl")).expect("output"), "{}\n{\"written\":\"after the checkpoint\"}\n");
    let raised = scratch.pipeline_to_files(&text(2_000));
    assert_eq!(run(&raised).expect("resumes").sources.records, 500, "records 1500 to 1999");
}

/// An output file shorter than at the checkpoint lost results the checkpoint counts as
/// written: the run is refused, naming the file, and leaves it as it is.
#[test]
fn an_output_file_shorter_than_at_the_checkpoint_is_refused() {
    let scratch = Scratch::new();
    let lines: String = (1..=100).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    scratch.write("in.jsonl", &lines);
    let pipeline = scratch.pipeline_to_files(FILE_PIPELINE);
    save_checkpoint_with_outputs_at(&pipeline, 51, [("file".to_owned(), 4_000)].into());
    scratch.write("out.jsonl", "{\"n\":1}\n");
    let error = format!("{:#}", anyhow::Error::new(run(&pipeline).expect_err("results before the checkpoint are missing")));
    assert!(error.contains("out.jsonl") && error.contains("fewer than the 4000 it had when the checkpoint"), "{error}");
    assert_eq!(std::fs::read_to_string(scratch.path("out.jsonl")).expect("output"), "{\"n\":1}\n");
}
