//! Sandbox containment: a plugin that traps, loops or eats memory loses no record; the
//! offending records go to the dead-letter sink with the reason, the others flow on.

use serde_json::Value;

use crate::support::{Scratch, numbered_records, run, sluice};

/// A pipeline of 1000 numbered records through `misbehave` configured with `config`.
fn misbehaving_pipeline(scratch: &Scratch, marker: impl Fn(usize) -> Option<&'static str>, operator: &str) -> std::path::PathBuf {
    misbehaving_pipeline_into(scratch, marker, operator, "[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\nformat = \"envelope\"\n")
}

/// [`misbehaving_pipeline`] with these sinks.
fn misbehaving_pipeline_into(
    scratch: &Scratch,
    marker: impl Fn(usize) -> Option<&'static str>,
    operator: &str,
    sinks: &str,
) -> std::path::PathBuf {
    scratch.write("input.jsonl", &numbered_records(1000, marker));
    scratch.pipeline(&format!(
        r#"
[pipeline]
name = "containment"
batch_size = 100

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "misbehave"
plugin = "{{plugins}}/misbehave.wasm"
{operator}

{sinks}
[dead_letter]
type = "file"
path = "dead.jsonl"
"#
    ))
}

/// A pipeline named `name` reading `input.jsonl` through `misbehave`, which traps on records
/// holding "poison", into `out.jsonl` and `dead.jsonl`.
fn trapping_on_poison(scratch: &Scratch, name: &str) -> std::path::PathBuf {
    scratch.pipeline_to_files(&format!(
        "[pipeline]\nname = \"{name}\"\n\n[[sources]]\ntype = \"file\"\npath = \"input.jsonl\"\n\n[[operators]]\nname = \"misbehave\"\n\
         plugin = \"{{plugins}}/misbehave.wasm\"\nconfig = {{ trap_on = \"poison\" }}\n"
    ))
}

fn values(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|record| {
            let value: Value = serde_json::from_str(record["value"].as_str().expect("value is text")).expect("value is JSON");
            value["n"].as_i64().expect("n")
        })
        .collect()
}

/// The `passed` header the plugin adds: its state, counted across recoveries.
fn passed_counts(records: &[Value]) -> Vec<u64> {
    records.iter().map(|record| record["headers"][0]["value"].as_str().and_then(|v| v.parse().ok()).expect("passed header")).collect()
}

#[test]
fn a_trapping_record_goes_to_the_dead_letter_sink_and_the_others_flow() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline(&scratch, |n| (n == 537).then_some("poison"), "config = { trap_on = \"poison\" }");
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 1);
    let out = scratch.json_lines("out.jsonl");
    let expected: Vec<i64> = (0..1000).filter(|n| *n != 537).collect();
    assert_eq!(values(&out), expected, "every other record passes, in order");
    // The state survived the instance's re-creation: the count never skips or repeats.
    assert_eq!(passed_counts(&out), (1..=999).collect::<Vec<u64>>());
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(dead.len(), 1);
    assert_eq!(values(&dead), vec![537]);
    assert_eq!(dead[0]["operator"], "misbehave");
    assert_eq!(dead[0]["position"], 538, "position is the line number in the file");
    assert!(dead[0]["plugin_digest"].as_str().is_some_and(|digest| digest.starts_with("sha256:")));
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("plugin trapped:") && reason.contains("poisoned record"), "{reason}");
    // The failed call's additions to its counters are not recorded: its records are counted
    // once, by the calls that processed them (the trapping record's call failed too).
    let counters = &summary.operators.iter().find(|operator| operator.name == "misbehave").expect("operator").counters;
    assert_eq!(counters.iter().find(|(name, _)| name == "given").map(|(_, value)| *value), Some(999), "{counters:?}");
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline(
        &scratch,
        |n| (n == 10 || n == 990).then_some("spin"),
        "call_timeout = \"200ms\"\nconfig = { spin_on = \"spin\" }",
    );
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 2);
    assert_eq!(values(&scratch.json_lines("out.jsonl")).len(), 998);
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(values(&dead), vec![10, 990]);
    assert!(dead.iter().all(|letter| letter["reason"].as_str().is_some_and(|r| r.contains("deadline exceeded"))), "{dead:?}");
}

#[test]
fn a_plugin_that_allocates_without_bound_hits_its_memory_limit() {
    let scratch = Scratch::new();
    let path =
        misbehaving_pipeline(&scratch, |n| (n == 400).then_some("hog"), "memory_limit = \"32MiB\"\nconfig = { allocate_on = \"hog\" }");
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 1);
    assert_eq!(values(&scratch.json_lines("out.jsonl")).len(), 999);
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(values(&dead), vec![400]);
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("memory limit exceeded") && reason.contains("33554432"), "{reason}");
}

#[test]
fn an_operator_that_fails_on_everything_is_disabled_and_loses_nothing() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline(&scratch, |_| Some("poison"), "config = { trap_on = \"poison\" }");
    let summary = run(&path).expect("a broken operator does not crash the pipeline");
    assert_eq!(summary.dead_letters, 1000, "every record is accounted for");
    assert!(scratch.json_lines("out.jsonl").is_empty());
    let dead = scratch.json_lines("dead.jsonl");
    assert!(dead.last().and_then(|letter| letter["reason"].as_str()).is_some_and(|r| r.contains("operator disabled (circuit open)")));
    assert_eq!(summary.tasks[0].disabled_operators.len(), 1);
    // `sluice run` does not end such a run as a success.
    let output = sluice(scratch.dir.path(), &["run", "--no-watch", &path.display().to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("error: the run ended, but 1 operator(s) were disabled on the way (\"misbehave\")"), "{stderr}");
}

/// Records that fail alone at the memory limit one after the other end their batch's retries
/// after eight: the rest is dead-lettered untried (each retry costs a recovery; an operator at
/// its memory limit took about 30 s per batch of 1,024).
#[test]
fn a_batch_failing_at_the_memory_limit_record_after_record_is_not_retried_to_its_end() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline(&scratch, |_| Some("hog"), "memory_limit = \"32MiB\"\nconfig = { allocate_on = \"hog\" }");
    let summary = run(&path).expect("the run ends");
    assert_eq!(summary.dead_letters, 1000, "every record is accounted for");
    let dead = scratch.json_lines("dead.jsonl");
    let reason = |index: usize| dead[index]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason(7).contains("memory limit exceeded") && !reason(7).contains("not tried alone"), "{}", reason(7));
    assert!(reason(8).contains("(not tried alone: the 8 records before it in its batch failed in a row)"), "{}", reason(8));
}

#[test]
fn records_an_operator_rejects_carry_the_reason_and_their_position() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"price\": 5}\n{\"price\": \"free\"}\nnot json at all\n{\"price\": 7}\n");
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "rejections"

[[sources]]
type = "file"
path = "input.jsonl"

[[operators]]
name = "doubled"
plugin = "{plugins}/project.wasm"
config = { compute = { double = "price * 2" } }
"#,
    );
    run(&path).expect("pipeline runs");
    assert_eq!(
        scratch.json_lines("out.jsonl"),
        vec![serde_json::json!({"price": 5, "double": 10}), serde_json::json!({"price": 7, "double": 14})]
    );
    let dead = scratch.json_lines("dead.jsonl");
    let summary: Vec<(i64, &str)> =
        dead.iter().map(|d| (d["position"].as_i64().unwrap_or(-1), d["reason"].as_str().unwrap_or(""))).collect();
    assert_eq!(summary[0], (2, "rejected: compute double: field price is a string, not a number"));
    assert_eq!(summary[1].0, 3);
    assert!(summary[1].1.starts_with("rejected: payload is not valid JSON"), "{}", summary[1].1);
}

/// A plugin's reason for a rejection is cut to 4 KiB, as its log lines are: dead-letter outputs
/// (a Kafka header, the console's recent dead letters) carry it whole.
#[test]
fn a_rejections_reason_is_cut_to_four_kibibytes() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline(&scratch, |n| (n == 10).then_some("wordy"), "config = { long_reason_on = \"wordy\" }");
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 1);
    let dead = scratch.json_lines("dead.jsonl");
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert_eq!(reason, format!("rejected: {}…", "x".repeat(4096)));
}

/// A record passed on by position that is not in the batch, or to an output the plugin did not
/// declare, fails the call like a trap: the batch is retried record by record, and only the
/// offending record is dead-lettered, with the reason.
#[test]
fn a_record_passed_from_outside_the_batch_or_to_no_output_fails_the_call_and_is_dead_lettered() {
    let cases = [
        ("pass_outside_on", "passed record 0 is input record 1, but the batch it was given has 1 record(s)"),
        ("pass_to_undeclared_on", "passed record 0 goes to output 5, but the plugin declared 0 side output(s)"),
    ];
    for (setting, expected) in cases {
        let scratch = Scratch::new();
        let path = misbehaving_pipeline(&scratch, |n| (n == 250).then_some("astray"), &format!("config = {{ {setting} = \"astray\" }}"));
        let summary = run(&path).expect("pipeline runs to its end");
        assert_eq!(summary.dead_letters, 1, "{setting}");
        assert_eq!(values(&scratch.json_lines("out.jsonl")), (0..1000).filter(|n| *n != 250).collect::<Vec<i64>>(), "{setting}");
        let dead = scratch.json_lines("dead.jsonl");
        assert_eq!(values(&dead), vec![250], "{setting}");
        let reason = dead[0]["reason"].as_str().expect("reason");
        assert!(reason.starts_with(&format!("the plugin returned an invalid batch: {expected}")), "{setting}: {reason}");
    }
}

/// Records passed on by position come out as they went in (key, value, time, headers), before
/// the records the plugin returns in its batch, on the output each names; one record may be
/// passed more than once.
#[test]
fn records_passed_by_position_come_first_unchanged_and_on_their_outputs() {
    let scratch = Scratch::new();
    let sinks = ["main", "copies"].map(|name| {
        let input = if name == "main" { "misbehave" } else { "misbehave.copies" };
        format!("[[sinks]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{name}.jsonl\"\nformat = \"envelope\"\ninputs = [\"{input}\"]\n\n")
    });
    let path = misbehaving_pipeline_into(&scratch, |_| None, "config = { pass_by_position = true }", &sinks.concat());
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 0);
    let main = scratch.json_lines("main.jsonl");
    let expected: Vec<i64> = (0..10).flat_map(|batch| (0..2).flat_map(move |_| batch * 100..batch * 100 + 100)).collect();
    assert_eq!(values(&main), expected, "each batch's records passed, then their copies");
    let copied = |record: &Value| record["headers"].as_array().is_some_and(|headers| headers.iter().any(|h| h["name"] == "copy"));
    let marks: Vec<bool> = main.iter().map(copied).collect();
    assert_eq!(marks, (0..10).flat_map(|_| (0..200).map(|i| i >= 100)).collect::<Vec<bool>>());
    let input = std::fs::read_to_string(scratch.path("input.jsonl")).expect("input");
    let originals: Vec<&str> = input.lines().collect();
    for (record, original) in main.iter().filter(|record| !copied(record)).zip(&originals) {
        assert_eq!(record["value"].as_str(), Some(*original), "a passed record is its input record");
    }
    assert_eq!(values(&scratch.json_lines("copies.jsonl")), (0..10).map(|batch| batch * 100).collect::<Vec<i64>>());
}

#[test]
fn a_rejection_outside_the_batch_fails_the_call_and_its_record_is_dead_lettered() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline(&scratch, |n| (n == 250).then_some("astray"), "config = { reject_outside_on = \"astray\" }");
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 1);
    assert_eq!(values(&scratch.json_lines("out.jsonl")), (0..1000).filter(|n| *n != 250).collect::<Vec<i64>>());
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(values(&dead), vec![250]);
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with(
            "the plugin returned an invalid result from process: it rejected record 8, but the batch it was given has 1 record(s)"
        ),
        "{reason}"
    );
}

/// A record an operator emits that a keyed exchange cannot route (its key fields cannot be
/// read) is dead-lettered naming that operator, and the other records go on to the next stage.
#[test]
fn a_record_an_exchange_cannot_route_is_dead_lettered_naming_the_operator_that_emitted_it() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", &numbered_records(1000, |n| (n == 400).then_some("garble")));
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "routing"
parallelism = 2

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "garbler"
plugin = "{plugins}/misbehave.wasm"
config = { garble_on = "garble" }

[[operators]]
name = "counts"
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "1h" }, group_by = ["category"], aggregates = [{ function = "count", as = "n" }] }

[[sinks]]
type = "file"
path = "out.jsonl"

[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let summary = run(&path).expect("pipeline runs to its end");
    assert_eq!(summary.dead_letters, 1);
    let counted: i64 = scratch.json_lines("out.jsonl").iter().map(|row| row["n"].as_i64().expect("n")).sum();
    assert_eq!(counted, 999, "every other record is counted");
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(dead[0]["operator"], "garbler", "{}", dead[0]);
    assert!(dead[0]["plugin_digest"].as_str().is_some_and(|digest| digest.starts_with("sha256:")), "{}", dead[0]);
    let reason = dead[0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("cannot route the record by its key: cannot read the key fields"), "{reason}");
}

/// Filters that keep most of a batch pass their records on as selections of the batch they
/// came in (not copied): a selection of a selection reaches a sink byte for byte, and an
/// operator after them in the same task that refuses one record loses only that record, traced
/// to its source line.
#[test]
fn records_passed_on_by_two_filters_reach_a_sink_unchanged_and_a_refusal_after_them_loses_one() {
    let scratch = Scratch::new();
    let refused = 457;
    let input: String = numbered_records(1000, |_| None)
        .lines()
        .enumerate()
        .map(|(n, line)| if n == refused { format!("{}\n", line.replace("\"price\":2", "\"price\":\"two\"")) } else { format!("{line}\n") })
        .collect();
    scratch.write("input.jsonl", &input);
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "selections"
batch_size = 100

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "not-c"
plugin = "{plugins}/filter.wasm"
config = { field = "category", op = "ne", value = "c" }

[[operators]]
name = "early"
plugin = "{plugins}/filter.wasm"
config = { field = "n", op = "lt", value = 900 }

[[operators]]
name = "double"
plugin = "{plugins}/project.wasm"
inputs = ["early"]
config = { compute = { double = "price * 2" }, keep = ["n"] }

[[sinks]]
name = "direct"
type = "file"
path = "direct.jsonl"
format = "envelope"
inputs = ["early"]

[[sinks]]
name = "doubled"
type = "file"
path = "doubled.jsonl"
inputs = ["double"]

[dead_letter]
type = "file"
path = "dead.jsonl"
"#,
    );
    let summary = run(&path).expect("pipeline runs to its end");
    let kept: Vec<usize> = (0..900).filter(|n| n % 3 != 2).collect();
    let lines: Vec<&str> = input.lines().collect();
    // The stage runs one task per core, each on its share of the batches: sorted by time.
    let mut direct: Vec<(i64, String)> = scratch
        .json_lines("direct.jsonl")
        .iter()
        .map(|record| (record["timestamp"].as_i64().expect("timestamp"), record["value"].as_str().expect("value").to_owned()))
        .collect();
    direct.sort();
    let expected: Vec<(i64, String)> = kept.iter().map(|&n| (n as i64 * 10, lines[n].to_owned())).collect();
    assert_eq!(direct, expected, "passed records are their input lines, with their times");
    let mut doubled: Vec<(i64, i64)> = scratch
        .json_lines("doubled.jsonl")
        .iter()
        .map(|record| (record["n"].as_i64().expect("n"), record["double"].as_i64().expect("double")))
        .collect();
    doubled.sort_unstable();
    let expected: Vec<(i64, i64)> = kept.iter().filter(|&&n| n != refused).map(|&n| (n as i64, (n % 7) as i64 * 2)).collect();
    assert_eq!(doubled, expected);
    assert_eq!(summary.dead_letters, 1);
    let dead = scratch.json_lines("dead.jsonl");
    // A file source's positions are line numbers, from 1.
    assert_eq!((dead[0]["position"].as_i64(), dead[0]["value"].as_str()), (Some(refused as i64 + 1), Some(lines[refused])));
    assert_eq!(dead[0]["reason"].as_str(), Some("rejected: compute double: field price is a string, not a number"));
}

/// A batch retried record by record whose records each emit many is passed on in parts as it
/// goes (its whole output was gathered in the host's memory: 2 GB for 300 records of 100,000
/// copies each), and no operator is given more than `batch_size` records at once, whatever the
/// one before it emits. Here every batch's 60,000 copies pass the 4 MiB limit: each batch is
/// retried record by record, and its copies, about 10 MB as the host holds them, go on in parts.
#[test]
fn a_retried_batch_of_an_amplifying_operator_goes_on_in_parts_and_in_batches_of_batch_size() {
    let scratch = Scratch::new();
    let path = misbehaving_pipeline_into(
        &scratch,
        |n| (n == 537).then_some("poison"),
        "memory_limit = \"4MiB\"\nconfig = { trap_on = \"poison\", copies = 600 }",
        "[[operators]]\nname = \"bounded\"\nplugin = \"{plugins}/misbehave.wasm\"\nconfig = { refuse_batches_over = 100 }\n\n\
         [[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n",
    );
    let summary = run(&path).expect("pipeline runs to its end");
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(values(&dead), vec![537], "only the poisoned record: {:?}", dead.first());
    assert_eq!(summary.dead_letters, 1);
    let out = std::fs::read_to_string(scratch.dir.path().join("out.jsonl")).expect("output");
    let mut copies = std::collections::BTreeMap::<i64, usize>::new();
    for line in out.lines() {
        let value: Value = serde_json::from_str(line).expect("JSON line");
        *copies.entry(value["n"].as_i64().expect("n")).or_default() += 1;
    }
    assert_eq!(copies.len(), 999);
    assert!(copies.iter().all(|(n, count)| *n != 537 && *count == 600), "every other record 600 times");
}

/// With `--log-format json`, a plugin's log line holding control characters (a panic quoting
/// a record) is one event whose message reads back as the plugin wrote it: the JSON log
/// escapes them once (the text log escapes them itself).
#[test]
fn a_plugin_line_with_control_characters_reads_back_whole_from_the_json_log() {
    let scratch = Scratch::new();
    scratch.write_bytes("input.jsonl", b"{\"n\":1}\n{\"n\":2,\"mark\":\"poison\ttab \x1b[2J\"}\n{\"n\":3}\n");
    let path = trapping_on_poison(&scratch, "json-log");
    let path = path.display().to_string();
    let output = sluice(scratch.dir.path(), &["--log-format", "json", "run", "--no-watch", &path]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<Value> =
        stderr.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))).collect();
    let panic = events
        .iter()
        .filter_map(|event| event["fields"]["message"].as_str())
        .find(|message| message.contains("poisoned record"))
        .unwrap_or_else(|| panic!("the plugin's panic is logged:\n{stderr}"));
    assert!(panic.contains("poison\ttab \u{1b}[2J"), "escaped once, by JSON: {panic:?}");
}

/// A plugin that logs a line per failing record, thousands a second: its lines past the
/// budget (1,000 a second per operator) are dropped and counted by about one warning a
/// second, not one per instance made again after a trap.
#[test]
fn a_flood_of_failing_records_is_logged_within_its_budget_with_a_warning_a_second() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", &numbered_records(6000, |n| (n % 2 == 0).then_some("poison")));
    let path = trapping_on_poison(&scratch, "log-flood");
    let started = std::time::Instant::now();
    let output = sluice(scratch.dir.path(), &["run", "--no-watch", &path.display().to_string()]);
    let seconds = started.elapsed().as_secs() + 1;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let counts: Vec<u64> = stderr
        .lines()
        .filter_map(|line| line.split_once(" log lines of the plugin dropped in a second"))
        .filter_map(|(before, _)| before.rsplit(' ').next()?.parse().ok())
        .collect();
    let panics = stderr.lines().filter(|line| line.contains("sluice::wasm::host: panic: ")).count() as u64;
    assert!(counts.len() as u64 <= 2 * seconds + 2, "{} warnings in {seconds} s:\n{}", counts.len(), &stderr[..stderr.len().min(3000)]);
    assert!(panics <= 1000 * seconds, "{panics} plugin lines in {seconds} s");
    assert!(panics + counts.iter().sum::<u64>() >= 3000, "every failing record's line is written or counted: {panics} + {counts:?}");
}
