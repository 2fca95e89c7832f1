//! Ordinary mistakes that used to destroy or silently change data: outputs that alias
//! inputs, event times with UTC offsets, and the like. Each test failed before its fix.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{Scratch, assert_exact_counts, run, sluice, window_counts};

/// Local times of producers in five time zones, all naming instants two seconds apart.
fn offset_timestamp(instant_ms: i64, record: usize) -> String {
    let offsets_minutes = [0, 120, -300, 330, 540];
    let offset = offsets_minutes[record % offsets_minutes.len()];
    let local = jiff::Timestamp::from_millisecond(instant_ms + offset * 60_000).expect("in range");
    let local = local.strftime("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    if offset == 0 {
        return format!("{local}Z");
    }
    format!("{local}{}{:02}:{:02}", if offset < 0 { '-' } else { '+' }, offset.abs() / 60, offset.abs() % 60)
}

#[test]
fn event_times_with_utc_offsets_land_in_the_window_of_their_instant() {
    let scratch = Scratch::new();
    let start = 1_767_225_600_000_i64; // 2026-01-01T00:00:00Z
    let mut expected = BTreeMap::new();
    let mut lines = String::new();
    for record in 0..300 {
        let instant = start + record as i64 * 2_000;
        let category = ["books", "toys"][record % 2];
        *expected.entry((instant - instant % 60_000, category.to_owned())).or_insert(0_u64) += 1;
        lines.push_str(&format!("{}\n", json!({"category": category, "ts": offset_timestamp(instant, record)})));
    }
    scratch.write("input.jsonl", &lines);
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "offsets"

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[operators]]
name = "per-minute"
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "1m" }, group_by = ["category"], aggregates = [{ function = "count", as = "count" }] }
"#,
    );
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 0, "{:?}", scratch.json_lines("dead.jsonl").first());
    assert_eq!(summary.sources.late_dropped + summary.tasks.iter().map(|task| task.late_dropped).sum::<u64>(), 0);
    assert_exact_counts(&expected, &window_counts(scratch.json_lines("out.jsonl"), "category"));
}

/// `sluice validate` of `toml` written to `pipeline.toml` in a scratch directory holding
/// `input.jsonl`, from the working directory `cwd` (relative to the scratch directory).
fn validate_in(scratch: &Scratch, cwd: &str, toml: &str) -> (bool, String) {
    std::fs::create_dir_all(scratch.path(cwd)).expect("working directory");
    let path = scratch.write("pipeline.toml", toml);
    let output = sluice(&scratch.path(cwd), &["validate", &path.display().to_string()]);
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

const FILE_SOURCE: &str = "[pipeline]\nname = \"aliases\"\n\n[[sources]]\nname = \"orders\"\ntype = \"file\"\npath = \"input.jsonl\"\n\n";

#[test]
fn an_output_that_reaches_the_input_through_a_symlink_or_a_hard_link_is_refused() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"n\": 1}\n");
    std::os::unix::fs::symlink(scratch.path("input.jsonl"), scratch.path("link.jsonl")).expect("symlink");
    std::fs::create_dir(scratch.path("linked-dir")).expect("directory");
    std::os::unix::fs::symlink(scratch.path("."), scratch.path("linked-dir/up")).expect("directory symlink");
    std::fs::hard_link(scratch.path("input.jsonl"), scratch.path("hard.jsonl")).expect("hard link");
    for path in ["link.jsonl", "linked-dir/up/input.jsonl", "hard.jsonl", "linked-dir/../input.jsonl"] {
        let (valid, stderr) =
            validate_in(&scratch, ".", &format!("{FILE_SOURCE}[[sinks]]\nname = \"copy\"\ntype = \"file\"\npath = \"{path}\"\n"));
        assert!(!valid, "{path}: writing over the input must be refused");
        assert!(
            stderr.contains("sink \"copy\"")
                && stderr.contains("is the file the file source \"orders\" reads")
                && stderr.contains("pipeline.toml:"),
            "{path}: {stderr}"
        );
    }
    // The input is untouched: nothing was opened for writing.
    assert_eq!(std::fs::read_to_string(scratch.path("input.jsonl")).expect("input"), "{\"n\": 1}\n");
}

/// Links to a file not made yet (the usual first run) lead where the file will be: a sink
/// and a dead-letter file writing another sink's file through them are refused too.
#[test]
fn an_output_that_reaches_another_output_not_made_yet_through_symlinks_is_refused() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"n\": 1}\n");
    std::os::unix::fs::symlink("out.jsonl", scratch.path("link.jsonl")).expect("symlink");
    std::os::unix::fs::symlink("link.jsonl", scratch.path("link-of-link.jsonl")).expect("symlink");
    let sink = |name: &str, path: &str| format!("[[sinks]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{path}\"\n\n");
    for path in ["link.jsonl", "link-of-link.jsonl"] {
        let toml = format!("{FILE_SOURCE}{}{}", sink("first", "out.jsonl"), sink("second", path));
        let (valid, stderr) = validate_in(&scratch, ".", &toml);
        assert!(!valid && stderr.contains("is also written by sink \"first\""), "{path}: {stderr}");
        let toml = format!("{FILE_SOURCE}{}[dead_letter]\ntype = \"file\"\npath = \"{path}\"\n", sink("first", "out.jsonl"));
        let (valid, stderr) = validate_in(&scratch, ".", &toml);
        assert!(
            !valid && stderr.contains("the dead-letter file") && stderr.contains("is also written by sink \"first\""),
            "{path}: {stderr}"
        );
    }
    assert!(!scratch.path("out.jsonl").exists(), "nothing was opened for writing");
}

#[test]
fn the_default_dead_letter_file_in_the_working_directory_cannot_be_a_sinks_file() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"n\": 1}\n");
    // The sink's path is relative to the pipeline file, the default dead-letter file to the
    // working directory: here both are <scratch>/aliases.dead-letter.jsonl.
    let toml = format!("{FILE_SOURCE}[[sinks]]\nname = \"out\"\ntype = \"file\"\npath = \"aliases.dead-letter.jsonl\"\n");
    let (valid, stderr) = validate_in(&scratch, ".", &toml);
    assert!(!valid, "{stderr}");
    assert!(
        stderr.contains("the dead-letter file (by default in the working directory)") && stderr.contains("is also written by sink \"out\""),
        "{stderr}"
    );
    // From another working directory, the two are different files.
    let (valid, stderr) = validate_in(&scratch, "elsewhere", &toml);
    assert!(valid, "{stderr}");
}

#[test]
fn an_operator_that_fails_on_every_record_makes_sluice_run_fail() {
    // See containment.rs for the run itself; here the message names the operator once per
    // operator, however many tasks disabled it.
    let summary = sluice::topology::PipelineSummary {
        tasks: vec![
            sluice::pipeline::TaskStats { disabled_operators: vec![("parse".into(), "trap".into())], ..Default::default() },
            sluice::pipeline::TaskStats { disabled_operators: vec![("parse".into(), "trap".into())], ..Default::default() },
        ],
        ..Default::default()
    };
    assert_eq!(summary.disabled_operators(), vec!["\"parse\"".to_owned()]);
}

#[test]
fn a_pinned_plugin_whose_file_differs_is_refused_at_validation() {
    let scratch = Scratch::new();
    let filter = crate::support::plugin("filter").display().to_string();
    let pin = |digest: &str| {
        format!(
            "[pipeline]\nname = \"pinned\"\n\n[[sources]]\ntype = \"generator\"\ncount = 10\n\n[[operators]]\nname = \"orders\"\nplugin = {filter:?}\nsha256 = \"{digest}\"\nconfig = {{ field = \"event_type\", op = \"eq\", value = \"order\" }}\n\n[[sinks]]\ntype = \"stdout\"\n"
        )
    };
    let (valid, stderr) = validate_in(&scratch, ".", &pin(&"0".repeat(64)));
    assert!(!valid);
    assert!(
        stderr.contains("operator \"orders\": ")
            && stderr.contains("but the pipeline pins sha256:0000000000000000000000000000000000000000000000000000000000000000")
            && stderr.contains("pipeline.toml:10:10"),
        "{stderr}"
    );
    let actual = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(std::fs::read(&filter).expect("plugin")));
    let (valid, stderr) = validate_in(&scratch, ".", &pin(&format!("sha256:{}", hex::encode(actual))));
    assert!(valid, "the file's own digest is accepted: {stderr}");
}

/// A file saved by an editor as "UTF-8 with BOM", with Windows line ends: the byte order mark
/// is not part of the first record, and `\r\n` ends lines as `\n` does.
#[test]
fn a_byte_order_mark_and_windows_line_ends_are_not_part_of_the_records() {
    let scratch = Scratch::new();
    scratch.write_bytes("input.jsonl", b"\xEF\xBB\xBF{\"n\":1,\"ts\":5}\r\n{\"n\":2,\"ts\":6}\r\n");
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "bom"

[[sources]]
type = "file"
path = "input.jsonl"
timestamp_field = "ts"

[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 0);
    assert_eq!(std::fs::read_to_string(scratch.path("out.jsonl")).expect("output"), "{\"n\":1,\"ts\":5}\n{\"n\":2,\"ts\":6}\n");
}

/// A line whose event time cannot be read is a dead letter with the reason and `-1` for its
/// time (it has none), not a time that could be taken for one (0 is 1970-01-01).
#[test]
fn a_line_whose_time_cannot_be_read_is_dead_lettered_without_a_time() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"n\":1,\"ts\":5}\nnot json\n{\"n\":3}\n");
    let path = scratch.pipeline_to_files(
        "[pipeline]\nname = \"no-time\"\n\n[[sources]]\ntype = \"file\"\npath = \"input.jsonl\"\ntimestamp_field = \"ts\"\n",
    );
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 2);
    assert_eq!(scratch.json_lines("out.jsonl"), vec![json!({"n": 1, "ts": 5})]);
    let dead = scratch.json_lines("dead.jsonl");
    let positions_and_times: Vec<_> = dead.iter().map(|letter| (letter["position"].clone(), letter["timestamp"].clone())).collect();
    assert_eq!(positions_and_times, vec![(json!(2), json!(-1)), (json!(3), json!(-1))]);
    assert!(dead[1]["reason"].as_str().is_some_and(|reason| reason.starts_with("line 3: ")), "{:?}", dead[1]);
}

/// A line longer than a record may be (a file without newlines, say) goes to the dead-letter
/// sink with its first bytes and its length, instead of growing the source's memory without
/// bound; the lines after it are read as ever.
#[test]
fn a_line_longer_than_64_mib_is_dead_lettered_and_the_next_lines_read() {
    let scratch = Scratch::new();
    let mut text = b"{\"n\":1}\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', (64 << 20) + 5));
    text.extend_from_slice(b"\n{\"n\":3}\n");
    scratch.write_bytes("input.jsonl", &text);
    let path = scratch.pipeline_to_files("[pipeline]\nname = \"long-line\"\n\n[[sources]]\ntype = \"file\"\npath = \"input.jsonl\"\n");
    let summary = run(&path).expect("pipeline runs");
    assert_eq!(summary.dead_letters, 1);
    assert_eq!(scratch.json_lines("out.jsonl"), vec![json!({"n": 1}), json!({"n": 3})]);
    let dead = scratch.json_lines("dead.jsonl");
    assert_eq!(dead[0]["position"], 2);
    assert_eq!(dead[0]["timestamp"], -1, "a record whose time was not read has none");
    let reason = dead[0]["reason"].as_str().expect("reason");
    let expected = format!("line 2: {} bytes is more than a record may have (64 MiB): the first 4096 bytes are kept here", (64 << 20) + 5);
    assert_eq!(reason, expected);
}

/// A sink's `key` names fields; a record that has none of them keeps its own key (here none),
/// instead of every such record getting the key `null` (one Kafka partition for them all).
#[test]
fn a_record_without_the_sinks_key_fields_keeps_its_own_key() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"user\":\"u1\",\"n\":1}\n{\"n\":2}\n{\"user\":null,\"n\":3}\n");
    let path = scratch.pipeline(
        "[pipeline]\nname = \"keys\"\n\n[[sources]]\ntype = \"file\"\npath = \"input.jsonl\"\n\n[[sinks]]\ntype = \"file\"\n\
         path = \"out.jsonl\"\nformat = \"envelope\"\nkey = [\"user\"]\n",
    );
    run(&path).expect("pipeline runs");
    let keys: Vec<serde_json::Value> = scratch.json_lines("out.jsonl").iter().map(|record| record["key"].clone()).collect();
    assert_eq!(keys, vec![json!("u1"), serde_json::Value::Null, json!("null")]);
}

/// A Kafka sink whose brokers do not answer stops the run with the reason within 30 s, as a
/// Kafka source does; before, the producer queued records silently for its 5-minute
/// `message.timeout.ms`, and a SIGTERM then drained for as long again (prober: 300 s).
#[test]
fn a_kafka_sink_whose_brokers_do_not_answer_stops_the_run_with_the_reason() {
    let scratch = Scratch::new();
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port();
    let path = scratch.pipeline(&format!(
        r#"
[pipeline]
name = "unreachable"

[[sources]]
type = "generator"
count = 10

[[sinks]]
name = "events"
type = "kafka"
brokers = "127.0.0.1:{port}"
topic = "clicks"
"#
    ));
    let started = std::time::Instant::now();
    let error = run(&path).expect_err("no brokers").to_string();
    assert!(error.contains(&format!("cannot list the topics of brokers \"127.0.0.1:{port}\" within 30 s")), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(90), "bounded: {:?}", started.elapsed());
}

/// A SIGTERM while the start waits for brokers that do not answer stops the wait at once and
/// exits 0, as a stop does (before, the wait ran its 30 s and the run failed with the reason):
/// a Kafka sink's wait, and an exactly-once pipeline's, whose transactional producer starts
/// first.
#[test]
fn sigterm_while_waiting_for_brokers_at_start_stops_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port();
    let sink = format!(
        r#"
[pipeline]
name = "stopped-at-start"

[[sources]]
type = "generator"
count = 10

[[sinks]]
type = "kafka"
brokers = "127.0.0.1:{port}"
topic = "clicks"
"#
    );
    let exactly_once = format!(
        r#"
[pipeline]
name = "stopped-at-start"
delivery = "exactly-once"

[[sources]]
type = "kafka"
brokers = "127.0.0.1:{port}"
topics = ["clicks"]

[[sinks]]
type = "kafka"
brokers = "127.0.0.1:{port}"
topic = "copies"

[dead_letter]
type = "kafka"
brokers = "127.0.0.1:{port}"
topic = "dead"
"#
    );
    for pipeline in [sink, exactly_once] {
        stopped_while_waiting_for_brokers(&pipeline);
    }
}

fn stopped_while_waiting_for_brokers(pipeline: &str) {
    let scratch = Scratch::new();
    let path = scratch.pipeline(pipeline);
    let mut sluice = crate::broker::SluiceProcess::start(scratch.dir.path(), &path, "sluice.log");
    assert!(stop_while_it_says(&mut sluice, "no answer from the brokers yet"), "exits 0 once stopped:\n{}", sluice.log_text());
    assert!(sluice.log_text().contains("stopped before the pipeline started"), "{}", sluice.log_text());
}

/// Waits until the log of `sluice` says `waiting`, then sends SIGTERM: the run must end
/// within 5 s (it looks at the stop between its attempts). Whether it exited 0.
fn stop_while_it_says(sluice: &mut crate::broker::SluiceProcess, waiting: &str) -> bool {
    crate::broker::wait_for(std::time::Duration::from_secs(60), waiting, || sluice.log_text().contains(waiting));
    let signalled = std::time::Instant::now();
    let clean = sluice.terminate(std::time::Duration::from_secs(10));
    assert!(signalled.elapsed() < std::time::Duration::from_secs(5), "stopped at once: {:?}\n{}", signalled.elapsed(), sluice.log_text());
    clean
}

/// A named pipe as the output file: nothing is written until a process reads it (before, the
/// sink opened it for reading too, so records went into a pipe nobody read and were lost at
/// close while the run counted them out); the run waits for the reader, then every record
/// reaches it; and a stop while it waits ends the run at once.
#[test]
fn a_named_pipe_sink_waits_for_its_reader_and_a_stop_ends_the_wait() {
    let pipeline = r#"
[pipeline]
name = "piped"

[[sources]]
type = "generator"
count = 5000

[[sinks]]
type = "file"
path = "out.fifo"
"#;
    let waiting = "waiting for a process to read the named pipe";
    let limit = std::time::Duration::from_secs(60);
    let read = {
        let scratch = Scratch::new();
        let fifo = scratch.named_pipe("out.fifo");
        let mut sluice = crate::broker::SluiceProcess::start(scratch.dir.path(), &scratch.pipeline(pipeline), "sluice.log");
        crate::broker::wait_for(limit, "the wait for a reader", || sluice.log_text().contains(waiting));
        let read = count_lines_read(fifo).recv_timeout(limit).unwrap_or_else(|_| panic!("no end of output:\n{}", sluice.log_text()));
        assert_eq!(sluice.wait_exit(limit), Some(true), "{}", sluice.log_text());
        read
    };
    assert_eq!(read, 5000, "every record reached the reader");
    let scratch = Scratch::new();
    scratch.named_pipe("out.fifo");
    let mut sluice = crate::broker::SluiceProcess::start(scratch.dir.path(), &scratch.pipeline(pipeline), "sluice.log");
    assert!(stop_while_it_says(&mut sluice, waiting), "exits 0 once stopped:\n{}", sluice.log_text());
    assert!(sluice.log_text().contains("stopped before the pipeline started"), "{}", sluice.log_text());

    // A SIGHUP while it waits (before the reload listener runs) is applied once the pipeline
    // has started, not fatal (before, its default action ended the process with status 129).
    let scratch = Scratch::new();
    let fifo = scratch.named_pipe("out.fifo");
    let mut sluice = crate::broker::SluiceProcess::start(scratch.dir.path(), &scratch.pipeline(pipeline), "sluice.log");
    crate::broker::wait_for(limit, waiting, || sluice.log_text().contains(waiting));
    sluice.signal(libc::SIGHUP);
    let read = count_lines_read(fifo).recv_timeout(limit).unwrap_or_else(|_| panic!("no end of output:\n{}", sluice.log_text()));
    assert_eq!(read, 5000, "{}", sluice.log_text());
    assert_eq!(sluice.wait_exit(limit), Some(true), "{}", sluice.log_text());
}

/// A generator paced by a slow `rate` is not idle between its records: before, the pauses
/// advanced its watermark by wall-clock time past the records it had yet to make (10 ms of event
/// time apart), and a window dropped all but the first as late. Results do not depend on `rate`.
#[test]
fn a_slow_generator_does_not_make_its_own_records_late() {
    let scratch = Scratch::new();
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "slow-generator"
parallelism = 1
idle_timeout = "0s"

[[sources]]
type = "generator"
count = 12
rate = 40

[[operators]]
name = "w"
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "100ms" }, aggregates = [{ function = "count", as = "n" }] }
"#,
    );
    let summary = run(&path).expect("runs");
    let counts: Vec<u64> = scratch.json_lines("out.jsonl").iter().filter_map(|window| window["n"].as_u64()).collect();
    assert_eq!(counts, vec![10, 2], "{summary:?}");
}

/// A named pipe as the dead-letter file: the letters reach a process that reads it; with no
/// reader, a stop ends the wait for one (before, the run could not be stopped, and a resumed
/// run's cut back to its checkpoint opened the pipe and ended a waiting reader's input).
#[test]
fn a_named_pipe_dead_letter_file_is_read_and_a_stop_ends_the_wait_for_its_reader() {
    let pipeline = r#"
[pipeline]
name = "piped-letters"

[[sources]]
type = "generator"
count = 100

[[operators]]
name = "strict"
plugin = "{plugins}/dedupe.wasm"
config = { keys = ["no_such_field"], horizon = "1m", missing = "reject" }

[[sinks]]
type = "stdout"

[dead_letter]
type = "file"
path = "dead.fifo"
"#;
    let waiting = "waiting for a process to read the named pipe";
    let limit = std::time::Duration::from_secs(60);
    let scratch = Scratch::new();
    let fifo = scratch.named_pipe("dead.fifo");
    let letters = count_lines_read(fifo);
    let mut sluice = crate::broker::SluiceProcess::start(scratch.dir.path(), &scratch.pipeline(pipeline), "sluice.log");
    let read = letters.recv_timeout(limit).unwrap_or_else(|_| panic!("no end of the letters:\n{}", sluice.log_text()));
    assert_eq!(read, 100, "every record is a dead letter:\n{}", sluice.log_text());
    assert_eq!(sluice.wait_exit(limit), Some(true), "{}", sluice.log_text());

    let scratch = Scratch::new();
    scratch.named_pipe("dead.fifo");
    let mut sluice = crate::broker::SluiceProcess::start(scratch.dir.path(), &scratch.pipeline(pipeline), "sluice.log");
    // The letters it holds cannot be written: the run ends with that error, not in silence.
    assert!(!stop_while_it_says(&mut sluice, waiting), "{}", sluice.log_text());
    assert!(sluice.log_text().contains("stopped while waiting for a process to read the named pipe"), "{}", sluice.log_text());
}

/// Reads the named pipe `fifo` to its end on a thread (its `open` waits for a writer) and sends
/// how many lines came: the test waits on the channel with a time bound, not on the thread.
fn count_lines_read(fifo: std::path::PathBuf) -> std::sync::mpsc::Receiver<usize> {
    use std::io::BufRead as _;
    let (lines_read, lines_received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pipe = std::fs::File::open(fifo).expect("open for reading");
        let _ = lines_read.send(std::io::BufReader::new(pipe).lines().count());
    });
    lines_received
}

/// Dead letters of an operator given its records in event-time order name the source and the
/// line they were read at, as without ordering (before, held records lost both): records held
/// for their turn, released at the end, and late ones given at once alike.
#[test]
fn dead_letters_behind_event_time_order_name_their_source_and_position() {
    let scratch = Scratch::new();
    let lines: String = (0..40)
        .map(|line| format!("{{\"ts\": {}, \"user\": \"u{}\"}}\n", [1_000, 5_000, 100][line % 3] * (line as i64 + 1), line % 4))
        .collect();
    scratch.write("in.jsonl", &lines);
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "ordered-letters"
parallelism = 2
batch_size = 7
late_records = "pass"

[[sources]]
type = "file"
path = "in.jsonl"
timestamp_field = "ts"

[[operators]]
name = "strict"
plugin = "{plugins}/dedupe.wasm"
order = "event-time"
config = { keys = ["user", "no_such_field"], horizon = "1m", missing = "reject" }
"#,
    );
    run(&path).expect("runs");
    let letters = scratch.json_lines("dead.jsonl");
    assert_eq!(letters.len(), 40, "every record lacks the field");
    let mut positions: Vec<u64> = letters.iter().filter_map(|letter| letter["position"].as_u64()).collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>(), "each letter names its line: {:?}", letters.first());
    assert!(letters.iter().all(|letter| letter["source"] == "file"), "{:?}", letters.first());
}
