//! Hot swap under load: operators replaced while records flow, state kept, nothing lost.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use sluice::pipeline::{PipelineControl, StopSignal, SwapError};
use sluice::topology::PipelineSummary;

use sha2::Digest as _;

use crate::support::{AdminRun, Scratch, plugin, registry, run_on_thread};

/// A generator at a steady rate (unbounded with `count` 0: stopped by the test) → `n =
/// event_id` → the counter plugin → a file.
fn counting_pipeline(scratch: &Scratch, count: u64, rate: u64) -> PathBuf {
    let count = if count == 0 { String::new() } else { format!("count = {count}") };
    let rate = if rate == 0 { String::new() } else { format!("rate = {rate}") };
    scratch.pipeline_to_files(&format!(
        r#"
[pipeline]
name = "swapping"
batch_size = 64
batch_linger = "5ms"

[[sources]]
type = "generator"
{count}
{rate}

[[operators]]
name = "numbered"
plugin = "{{plugins}}/project.wasm"
config = {{ compute = {{ n = "event_id" }}, keep = ["n"] }}

[[operators]]
name = "counter"
plugin = "{{plugins}}/counter-v1.wasm"
"#
    ))
}

fn swap_to(control: &PipelineControl, name: &str) -> Result<sluice::pipeline::SwapRecord, SwapError> {
    control.swap("counter", registry().load(&plugin(name)).expect("plugin compiles"), None)
}

/// Output records in order: (n, total, version).
fn counted(scratch: &Scratch) -> Vec<(u64, u64, u64)> {
    let field = |record: &Value, name: &str| record[name].as_u64().unwrap_or_else(|| panic!("{name} in {record}"));
    scratch.json_lines("out.jsonl").iter().map(|record| (field(record, "n"), field(record, "total"), field(record, "version"))).collect()
}

#[test]
fn a_hundred_swaps_between_state_versions_count_every_record_once() {
    let scratch = Scratch::new();
    let (control, stop, pipeline) = run_on_thread(&counting_pipeline(&scratch, 0, 20_000));
    for swap in 0..100 {
        let version = if swap % 2 == 0 { "counter-v2" } else { "counter-v1" };
        let record = swap_to(&control, version).unwrap_or_else(|error| panic!("swap {swap} to {version}: {error}"));
        assert!(record.refused.is_none());
        std::thread::sleep(Duration::from_millis(15));
    }
    stop.raise();
    let summary = pipeline.join().expect("no panic").expect("pipeline drains");
    assert_eq!(summary.dead_letters, 0);
    let count = summary.sources.records;
    assert!(count > 1_000, "records flowed during the swaps: {count}");
    let counted = counted(&scratch);
    assert_eq!(counted.len() as u64, count, "every record read comes out once");
    // The counter runs as one instance behind the parallel `numbered` stage: records reach it
    // interleaved from its instances, and each is counted once, in the order it arrived.
    for (position, (_, total, _)) in counted.iter().enumerate() {
        assert_eq!(*total, position as u64 + 1, "record {position}: totals continue across swaps");
    }
    let numbers: std::collections::BTreeSet<u64> = counted.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(numbers.len() as u64, count, "no record counted twice");
    let versions: std::collections::BTreeSet<u64> = counted.iter().map(|(_, _, version)| *version).collect();
    assert_eq!(versions.len(), 2, "both versions processed records");
    let history = control.history();
    assert_eq!(history.len(), 100);
    assert!(history.iter().all(|record| record.refused.is_none() && record.old_digest != record.new_digest));
}

/// Swaps while the generator runs as fast as it can. The counter's task (behind an exchange)
/// holds its records back while it prepares a swap, so the `numbered` tasks before it soon
/// wait for room in its queue. Before, a swap asked those tasks too, and waited for room in
/// their full queues for ever: the pipeline stopped for good.
#[test]
fn swaps_at_full_input_speed_finish_and_count_every_record_once() {
    let scratch = Scratch::new();
    let (control, stop, pipeline) = run_on_thread(&counting_pipeline(&scratch, 0, 0));
    let out = scratch.path("out.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&out).map_or(0, |metadata| metadata.len()) == 0 {
        assert!(std::time::Instant::now() < deadline, "records reach the sink");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (done, finished) = std::sync::mpsc::channel();
    let swapping = control.clone();
    std::thread::spawn(move || {
        for swap in 0..10 {
            let version = if swap % 2 == 0 { "counter-v2" } else { "counter-v1" };
            if done.send(swap_to(&swapping, version).map(|record| record.refused)).is_err() {
                return;
            }
        }
    });
    for swap in 0..10 {
        let outcome = finished.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("swap {swap} did not finish in 60 s"));
        assert_eq!(outcome, Ok(None), "swap {swap}");
    }
    stop.raise();
    let summary = pipeline.join().expect("no panic").expect("pipeline drains");
    let counted = counted(&scratch);
    assert_eq!(counted.len() as u64, summary.sources.records, "every record read comes out once");
    for (position, (_, total, _)) in counted.iter().enumerate() {
        assert_eq!(*total, position as u64 + 1, "record {position}: totals continue across swaps");
    }
}

/// A plugin's own counters go on across a swap in the run's summary, as in `/metrics`: before,
/// the summary counted from the last swap.
#[test]
fn an_operators_own_counters_go_on_across_a_swap() {
    let scratch = Scratch::new();
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "given"
batch_size = 64

[[sources]]
type = "generator"
count = 20000
rate = 5000

[[operators]]
name = "misbehave"
plugin = "{plugins}/misbehave.wasm"
"#,
    );
    let (control, _stop, pipeline) = run_on_thread(&path);
    wait_for_output(&scratch, |records| !records.is_empty());
    let misbehave = registry().load(&plugin("misbehave")).expect("plugin compiles");
    let record = control.swap("misbehave", misbehave, Some(r#"{"trap_on": "never"}"#.into())).expect("swapped");
    assert!(record.refused.is_none(), "{record:?}");
    let summary = pipeline.join().expect("no panic").expect("pipeline drains");
    let operator = summary.operators.iter().find(|operator| operator.name == "misbehave").expect("the operator");
    assert_eq!(operator.counters, vec![("given".to_owned(), 20_000)]);
}

#[test]
fn failed_swaps_leave_the_old_version_running_and_lose_nothing() {
    let scratch = Scratch::new();
    let (control, stop, pipeline) = run_on_thread(&counting_pipeline(&scratch, 0, 10_000));
    let v1 = control.operators()[1].digest.clone();
    // init refuses the configuration.
    let counter_v2 = registry().load(&plugin("counter-v2")).expect("compiles");
    let refused = control.swap("counter", counter_v2, Some(r#"{"bogus": 1}"#.into())).unwrap_err();
    assert!(matches!(&refused, SwapError::Refused(reason) if reason.contains("unknown field")), "{refused}");
    // restore traps.
    let refused = swap_to(&control, "broken-restore").unwrap_err();
    assert!(matches!(&refused, SwapError::Refused(reason) if reason.contains("broken-restore: restore always traps")), "{refused}");
    // another world, and a truncated file, never get past compilation.
    let wrong = registry().load(&plugin("wrong-world")).err().expect("refused");
    assert!(wrong.to_string().contains("does not implement the world"), "{wrong}");
    let bytes = std::fs::read(plugin("counter-v2")).expect("plugin file");
    let truncated = scratch.write("truncated.wasm", "");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let broken = registry().load(&truncated).err().expect("refused");
    assert!(broken.to_string().contains("not a valid WebAssembly component"), "{broken}");
    assert_eq!(control.operators()[1].digest, v1, "the old version still runs");
    // a rollback needs a previous version; after a good swap, it returns to it.
    assert!(matches!(control.rollback("counter"), Err(SwapError::NothingToRollBack(_))));
    let forward = swap_to(&control, "counter-v2").expect("swap");
    // a version that cannot read the running state (version 2) refuses it: the swap rolls back.
    let refused = swap_to(&control, "misbehave").unwrap_err();
    assert!(matches!(&refused, SwapError::Refused(reason) if reason.contains("cannot read state version 2")), "{refused}");
    assert_eq!(control.operators()[1].digest, forward.new_digest);
    let back = control.rollback("counter").expect("rollback");
    assert_eq!((back.old_digest.clone(), back.new_digest.clone()), (forward.new_digest.clone(), forward.old_digest.clone()));
    // a rollback goes back once: a second one would bring back the version rolled back from.
    assert!(matches!(control.rollback("counter"), Err(SwapError::NothingToRollBack(_))));
    // a version that restores the state but cannot snapshot it is refused before it takes over
    // (before, it took over and stopped the pipeline at the next checkpoint). It traps only
    // for a count of at least 1: once a record came out, the running version has counted it.
    wait_for_output(&scratch, |records| !records.is_empty());
    let misbehave = registry().load(&plugin("misbehave")).expect("compiles");
    let refused = control.swap("counter", misbehave, Some(r#"{"trap_in_snapshot_after": 1}"#.into())).unwrap_err();
    assert!(matches!(&refused, SwapError::Refused(reason) if reason.contains("snapshot failed after restoring")), "{refused}");
    assert_eq!(control.operators()[1].digest, back.new_digest, "the old version still runs");
    assert!(matches!(
        control.swap("nobody", registry().load(&plugin("counter-v2")).expect("compiles"), None),
        Err(SwapError::UnknownOperator(_))
    ));
    stop.raise();
    let summary = pipeline.join().expect("no panic").expect("pipeline drains");
    let counted = counted(&scratch);
    assert_eq!(counted.len() as u64, summary.tasks[0].records_in);
    assert!(counted.iter().enumerate().all(|(position, (_, total, _))| *total == position as u64 + 1));
    let history = control.history();
    assert_eq!(history.iter().filter(|record| record.refused.is_some()).count(), 6, "the refusals are in the history");
    let no_previous =
        history.iter().filter(|record| record.refused.as_deref().is_some_and(|reason| reason.contains("no previous version")));
    assert_eq!(no_previous.count(), 2, "so are the rollbacks with nothing to go back to");
    // A refusal that came from the tasks held their records while they tried: its stall is
    // recorded (it was 0 for every refusal, however long the restore ran).
    let from_restore =
        history.iter().find(|record| record.refused.as_deref().is_some_and(|reason| reason.contains("restore always traps")));
    assert!(from_restore.expect("the restore's refusal").stall_ms > 0.0, "{from_restore:?}");
    let before_the_tasks = history.iter().find(|record| record.refused.as_deref().is_some_and(|reason| reason.contains("unknown field")));
    assert_eq!(before_the_tasks.expect("init's refusal").stall_ms, 0.0, "refused before it reached the tasks");
}

/// Runs `path` as `sluice run` does (watching files) on a thread.
fn serve(path: &Path) -> (StopSignal, JoinHandle<Result<PipelineSummary, sluice::commands::ServeError>>) {
    let stop = StopSignal::default();
    let options = sluice::commands::ServeOptions { admin: None, metrics: None, watch: true };
    let (path, signal) = (path.to_path_buf(), stop.clone());
    (stop, std::thread::spawn(move || sluice::commands::serve(&path, registry(), &options, signal)))
}

/// Output records in order, as JSON (a partly written last line is left out).
fn outputs(scratch: &Scratch) -> Vec<Value> {
    let text = std::fs::read_to_string(scratch.path("out.jsonl")).unwrap_or_default();
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// Waits (at most a minute) until the output satisfies `done`.
fn wait_for_output(scratch: &Scratch, done: impl Fn(&[Value]) -> bool) {
    let started = std::time::Instant::now();
    while !done(&outputs(scratch)) {
        assert!(started.elapsed() < Duration::from_secs(60), "the output never reached the expected state");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_counted_once(records: &[Value], count: u64) {
    assert_eq!(records.len() as u64, count, "every record comes out once");
    for (position, record) in records.iter().enumerate() {
        assert_eq!(record["total"].as_u64(), Some(position as u64 + 1), "totals continue: {record}");
    }
}

#[test]
fn a_plugin_file_changed_on_disk_is_swapped_in() {
    let records = swapped_by_replacing_the_file(".", false);
    assert_eq!(records.first().map(|r| r["version"].clone()), Some(Value::from(1)));
    assert_eq!(records.last().map(|r| r["version"].clone()), Some(Value::from(2)), "the new version took over while running");
}

/// A plugin named through a symbolic link is swapped when the link's target changes (the
/// directory watched was the link's only, and an edit of the target went unseen).
#[test]
fn a_plugin_behind_a_symbolic_link_is_swapped_when_its_target_changes() {
    swapped_by_replacing_the_file("releases", true);
}

/// Runs the counting pipeline with counter v1 at `directory/counter.wasm` (named in the
/// pipeline as `counter.wasm`, through a symbolic link when `linked`), replaces that file with
/// v2 as deployment tools do (written aside, then renamed over it) once records come out, and
/// returns the records once v2 took over: each counted once.
fn swapped_by_replacing_the_file(directory: &str, linked: bool) -> Vec<Value> {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path(directory)).expect("directory");
    let file = format!("{directory}/counter.wasm");
    std::fs::copy(plugin("counter-v1"), scratch.path(&file)).expect("copy plugin");
    if linked {
        std::os::unix::fs::symlink(&file, scratch.path("counter.wasm")).expect("link");
    }
    let pipeline = counting_pipeline(&scratch, 0, 4_000).to_string_lossy().to_string();
    let text = std::fs::read_to_string(&pipeline).expect("pipeline").replace(&plugin("counter-v1").display().to_string(), "counter.wasm");
    std::fs::write(&pipeline, text).expect("rewrite pipeline");
    let (stop, running) = serve(Path::new(&pipeline));
    wait_for_output(&scratch, |records| !records.is_empty());
    std::fs::copy(plugin("counter-v2"), scratch.path(&format!("{file}.new"))).expect("copy");
    std::fs::rename(scratch.path(&format!("{file}.new")), scratch.path(&file)).expect("rename");
    wait_for_output(&scratch, |records| records.last().is_some_and(|record| record["version"] == 2));
    stop.raise();
    let summary = running.join().expect("no panic").expect("pipeline drains");
    let records = outputs(&scratch);
    assert_counted_once(&records, summary.tasks[0].records_in);
    records
}

#[test]
fn a_changed_pipeline_file_reconfigures_operators_and_an_invalid_one_changes_nothing() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 4_000);
    let original = std::fs::read_to_string(&path).expect("pipeline");
    let labelled =
        |label: &str| original.replace("counter-v1.wasm\"\n", &format!("counter-v1.wasm\"\nconfig = {{ label = \"{label}\" }}\n"));
    let (stop, running) = serve(&path);
    wait_for_output(&scratch, |records| !records.is_empty());
    std::fs::write(&path, labelled("reloaded")).expect("reconfigure");
    wait_for_output(&scratch, |records| records.last().is_some_and(|record| record["label"] == "reloaded"));
    // An invalid file changes nothing; the watcher still applies the next valid one.
    std::fs::write(&path, "[pipeline\nname = broken").expect("break the file");
    std::thread::sleep(crate::support::settle());
    assert_eq!(outputs(&scratch).last().map(|record| record["label"].clone()), Some(Value::from("reloaded")));
    std::fs::write(&path, labelled("again")).expect("reconfigure again");
    wait_for_output(&scratch, |records| records.last().is_some_and(|record| record["label"] == "again"));
    stop.raise();
    let summary = running.join().expect("no panic").expect("pipeline drains");
    let records = outputs(&scratch);
    assert_counted_once(&records, summary.tasks[0].records_in);
    assert_eq!(records.first().map(|r| r["label"].clone()), Some(Value::Null));
}

fn run_with_admin(path: &Path, args: &[&str]) -> AdminRun {
    AdminRun::start(path, args, false)
}

#[test]
fn the_admin_api_and_sluice_swap_swap_and_roll_back() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 4_000);
    let AdminRun { child, address: admin, stderr } = run_with_admin(&path, &["--no-watch"]);
    let started = std::time::Instant::now();
    // Ready when the pipeline itself answers (the server starts before it).
    while !ureq::get(format!("http://{admin}/pipelines/swapping/operators")).call().is_ok_and(|response| response.status() == 200) {
        assert!(started.elapsed() < Duration::from_secs(60), "the admin API answers");
        std::thread::sleep(Duration::from_millis(50));
    }
    let swap = |args: &[&str]| {
        let mut command = vec!["swap", "--admin", &admin, "--pipeline", "swapping", "--operator", "counter"];
        command.extend_from_slice(args);
        crate::support::sluice(scratch.dir.path(), &command)
    };
    let v2 = plugin("counter-v2").display().to_string();
    let swapped = swap(&[&v2]);
    assert!(swapped.status.success(), "{}", String::from_utf8_lossy(&swapped.stderr));
    assert!(String::from_utf8_lossy(&swapped.stdout).starts_with("swapped counter: sha256:"));
    let wrong = swap(&[&plugin("wrong-world").display().to_string()]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("does not implement the world"));
    let uploaded = swap(&["--upload", &plugin("counter-v1").display().to_string()]);
    assert!(uploaded.status.success(), "{}", String::from_utf8_lossy(&uploaded.stderr));
    // A name that is no operator is answered 404 and recorded nowhere (before, the plugin was
    // read first: a missing one gave 422, a history entry and a metric series per name).
    let stranger = ureq::post(format!("http://{admin}/pipelines/swapping/operators/no-such%0Aname/swap"))
        .config()
        .http_status_as_error(false)
        .build()
        .header("content-type", "application/json")
        .send(r#"{"path": "missing.wasm"}"#)
        .expect("answered");
    assert_eq!(stranger.status(), 404);
    // Another method on a URL the API serves: 405, with `Allow` and a JSON reason.
    let mut put = ureq::put(format!("http://{admin}/pipelines/swapping/operators/counter/swap"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .expect("answered");
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers().get("allow").and_then(|allow| allow.to_str().ok()), Some("POST"));
    let reason: Value = serde_json::from_str(&put.body_mut().read_to_string().expect("body")).expect("JSON");
    assert!(reason["error"].as_str().is_some_and(|error| error.contains("PUT")), "{reason}");
    // A --config that is no JSON object is a mistake on the command line: exit 2.
    for config in ["notjson", "[1]"] {
        let mistaken = swap(&["--config", config]);
        assert_eq!(mistaken.status.code(), Some(2), "{}", String::from_utf8_lossy(&mistaken.stderr));
        assert!(String::from_utf8_lossy(&mistaken.stderr).contains("--config"));
    }
    assert_other_sites_are_refused(&admin, &v2);
    let rolled_back = swap(&["--rollback"]);
    assert!(rolled_back.status.success(), "{}", String::from_utf8_lossy(&rolled_back.stderr));
    let history: Value = serde_json::from_str(
        &ureq::get(format!("http://{admin}/pipelines/swapping/swaps")).call().expect("history").body_mut().read_to_string().expect("body"),
    )
    .expect("JSON");
    let refused: Vec<bool> = history.as_array().expect("list").iter().map(|record| record["refused"].is_string()).collect();
    assert_eq!(refused, vec![false, true, false, false], "swap, refusal, upload, rollback");
    let wrong_world = hex::encode(sha2::Sha256::digest(std::fs::read(plugin("wrong-world")).expect("the plugin file")));
    assert_eq!(history[1]["new_digest"], format!("sha256:{wrong_world}"), "a refused file is named by its digest");
    let operators: Value = serde_json::from_str(
        &ureq::get(format!("http://{admin}/pipelines/swapping/operators"))
            .call()
            .expect("operators")
            .body_mut()
            .read_to_string()
            .expect("body"),
    )
    .expect("JSON");
    assert_eq!(operators[1]["digest"], history[2]["old_digest"], "the rollback returned to the version before the upload");
    let output = child.interrupt_and_wait();
    let stderr = stderr.lock().expect("log").clone();
    assert!(output.status.success(), "{stderr}");
    let records = outputs(&scratch);
    assert!(stderr.contains(&format!("{} records in, {} out", records.len(), records.len())), "{stderr}");
    assert_counted_once(&records, records.len() as u64);
}

/// A page of another site cannot post a swap (a `text/plain` body needs no preflight), and
/// without a token a page cannot reach the API through a domain name rebound to 127.0.0.1; a
/// request declaring a body too large is answered before it is sent; a path the API does not
/// serve is answered in JSON. Nothing refused here is recorded.
fn assert_other_sites_are_refused(admin: &str, component: &str) {
    let swap_path = "/pipelines/swapping/operators/counter/swap?state=discard";
    let body = format!("{{\"path\": {}}}", serde_json::json!(component));
    let cross_site = format!(
        "POST {swap_path} HTTP/1.1\r\nHost: {admin}\r\nOrigin: https://evil.example\r\nContent-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = raw_http(admin, &cross_site);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("another site's page"), "{answer}");
    let rebound = raw_http(admin, "GET /pipelines HTTP/1.1\r\nHost: attacker.example:9180\r\nConnection: close\r\n\r\n");
    assert_eq!(rebound.0, 403, "{}", rebound.1);
    assert!(rebound.1.contains("IP address or localhost") && !rebound.1.contains("swapping"), "{}", rebound.1);
    let own = raw_http(admin, &format!("GET /pipelines HTTP/1.1\r\nHost: {admin}\r\nOrigin: http://{admin}\r\nConnection: close\r\n\r\n"));
    assert_eq!(own.0, 200, "the console's own page: {}", own.1);
    for (kind, declared) in [("application/wasm", 300_000_000), ("application/json", 2_000_000)] {
        let oversized = format!(
            "POST {swap_path} HTTP/1.1\r\nHost: {admin}\r\nContent-Type: {kind}\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
        );
        let (status, answer) = raw_http(admin, &oversized);
        assert_eq!(status, 413, "answered from the declared length, before any body: {answer}");
    }
    let unknown = raw_http(admin, &format!("GET /nothing HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"));
    assert_eq!(unknown.0, 404);
    assert!(unknown.1.contains("{\"error\":\"no such path: /nothing\"}"), "{}", unknown.1);
}

/// Sends `request` as written to the server at `address`: (status, whole answer).
fn raw_http(address: &str, request: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answered");
    let status = answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// A version that cannot read the running state is refused; `--discard-state` starts it
/// without that state, and the admin API records that it did.
#[test]
fn a_swap_that_discards_the_state_starts_a_version_that_cannot_read_it() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 4_000);
    let run = run_with_admin(&path, &["--no-watch"]);
    run.wait_for_pipeline("swapping");
    let admin = run.address.clone();
    let swap = |args: &[&str]| {
        let mut command = vec!["swap", "--admin", &admin, "--pipeline", "swapping", "--operator", "counter"];
        command.extend_from_slice(args);
        crate::support::sluice(scratch.dir.path(), &command)
    };
    let stateful = swap(&[&plugin("counter-v2").display().to_string()]);
    assert!(stateful.status.success(), "{}", String::from_utf8_lossy(&stateful.stderr));
    let misbehave = plugin("misbehave").display().to_string();
    let refused = swap(&[&misbehave]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cannot read state version 2"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let discarded = swap(&["--discard-state", &misbehave]);
    assert!(discarded.status.success(), "{}", String::from_utf8_lossy(&discarded.stderr));
    assert!(String::from_utf8_lossy(&discarded.stdout).contains("the new version started without state"));
    let bad_query = ureq::post(format!("http://{admin}/pipelines/swapping/operators/counter/rollback?state=maybe"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .expect("an answer");
    assert_eq!(bad_query.status(), 400);
    let history: Value = serde_json::from_str(
        &ureq::get(format!("http://{admin}/pipelines/swapping/swaps")).call().expect("history").body_mut().read_to_string().expect("body"),
    )
    .expect("JSON");
    let outcomes: Vec<(bool, bool)> = history
        .as_array()
        .expect("list")
        .iter()
        .map(|record| (record["refused"].is_string(), record["state_discarded"] == Value::Bool(true)))
        .collect();
    assert_eq!(outcomes, vec![(false, false), (true, false), (false, true)], "swap, refusal, swap without the state");
    let output = run.child.interrupt_and_wait();
    let stderr = run.stderr.lock().expect("log").clone();
    assert!(output.status.success(), "{stderr}");
    let records = scratch.json_lines("out.jsonl");
    assert!(stderr.contains(&format!("{} records in, {} out", records.len(), records.len())), "{stderr}");
    assert!(records.last().is_some_and(|record| record.get("total").is_none()), "the stateless version runs last");
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `scratch`.
fn self_signed_certificate(scratch: &Scratch) -> (PathBuf, PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("key");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "127.0.0.1").expect("CN");
    let name = name.build();
    let mut builder = X509::builder().expect("certificate");
    builder.set_version(2).expect("v3");
    builder.set_subject_name(&name).expect("subject");
    builder.set_issuer_name(&name).expect("issuer");
    builder.set_pubkey(&key).expect("public key");
    builder.set_not_before(&Asn1Time::days_from_now(0).expect("now")).expect("not before");
    builder.set_not_after(&Asn1Time::days_from_now(1).expect("tomorrow")).expect("not after");
    let serial = openssl::bn::BigNum::from_u32(1).and_then(|serial| serial.to_asn1_integer()).expect("serial");
    builder.set_serial_number(&serial).expect("serial");
    let san = SubjectAlternativeName::new().ip("127.0.0.1").build(&builder.x509v3_context(None, None)).expect("SAN");
    builder.append_extension(san).expect("SAN");
    builder.sign(&key, MessageDigest::sha256()).expect("signed");
    let certificate = scratch.path("admin.crt");
    std::fs::write(&certificate, builder.build().to_pem().expect("PEM")).expect("write certificate");
    let private = scratch.path("admin.key");
    std::fs::write(&private, key.private_key_to_pem_pkcs8().expect("PEM")).expect("write key");
    (certificate, private)
}

/// A client trusting `certificate`, sending `token` if given: (status, body).
fn https_get(url: &str, certificate: &Path, token: Option<&str>) -> (u16, String) {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider, parse_pem};
    let pem = std::fs::read(certificate).expect("certificate");
    let roots: Vec<_> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    let tls = TlsConfig::builder().provider(TlsProvider::NativeTls).root_certs(RootCerts::new_with_certs(&roots)).build();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).tls_config(tls).build().into();
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().expect("the admin API answers");
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn the_admin_api_with_a_token_and_tls_refuses_strangers_and_swaps_for_its_clients() {
    let scratch = Scratch::new();
    let (certificate, private) = self_signed_certificate(&scratch);
    let token = "d41d8cd98f00b204e9800998ecf8427e-admin";
    let token_file = scratch.write("admin.token", &format!("{token}\n"));
    // The operator is pinned to counter-v1: other versions are refused, even through the API.
    let v1 = sha2::Sha256::digest(std::fs::read(plugin("counter-v1")).expect("plugin"));
    let path = counting_pipeline(&scratch, 0, 2_000);
    let pinned = std::fs::read_to_string(&path)
        .expect("pipeline")
        .replace("counter-v1.wasm\"", &format!("counter-v1.wasm\"\nsha256 = \"{}\"", hex::encode(v1)));
    assert!(pinned.contains("sha256 = "), "the pin is in the file");
    std::fs::write(&path, pinned).expect("pipeline");
    let tls = ["--admin-token-file", token_file.to_str().expect("path"), "--admin-tls-cert", certificate.to_str().expect("path")];
    let key = ["--admin-tls-key", private.to_str().expect("path")];
    let AdminRun { child, address, stderr } = run_with_admin(&path, &[&tls[..], &key[..], &["--no-watch"]].concat());
    let base = format!("https://{address}");
    let started = std::time::Instant::now();
    while https_get(&format!("{base}/pipelines/swapping/operators"), &certificate, Some(token)).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "the admin API answers its clients");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(https_get(&format!("{base}/health"), &certificate, None).0, 200, "health needs no token");
    // A client that connects and says nothing holds up no other: its handshake waits apart.
    let silent = std::net::TcpStream::connect(&address).expect("connect");
    assert_eq!(https_get(&format!("{base}/health"), &certificate, None).0, 200, "answered beside a silent client");
    silent.set_nonblocking(true).expect("non-blocking");
    let unread = std::io::Read::read(&mut &silent, &mut [0u8; 1]);
    assert!(
        matches!(&unread, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "the silent client is still waiting, so the request did not wait for its handshake to time out: {unread:?}"
    );
    for wrong in [None, Some("d41d8cd98f00b204e9800998ecf8427e-admix"), Some("short")] {
        let (status, body) = https_get(&format!("{base}/pipelines"), &certificate, wrong);
        assert_eq!(status, 401, "{wrong:?}: {body}");
        // A URL the API does not serve says nothing more without the token.
        let (status, body) = https_get(&format!("{base}/nothing"), &certificate, wrong);
        assert_eq!(status, 401, "{wrong:?}: {body}");
    }
    assert_eq!(https_get(&format!("{base}/nothing"), &certificate, Some(token)).0, 404);
    let swap = |file: &str| {
        let args = ["swap", "--admin", &base, "--admin-token-file", token_file.to_str().expect("path"), "--admin-ca"];
        let command = [&args[..], &[certificate.to_str().expect("path"), "--pipeline", "swapping", "--operator", "counter", file]].concat();
        crate::support::sluice(scratch.dir.path(), &command)
    };
    let refused = swap(&plugin("counter-v2").display().to_string());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && message.contains("pins operator \"counter\" to sha256:"), "{message}");
    let same = swap(&plugin("counter-v1").display().to_string());
    assert!(same.status.success(), "the pinned version itself swaps: {}", String::from_utf8_lossy(&same.stderr));
    // Without the CA, the client does not trust the server.
    let untrusted = crate::support::sluice(
        scratch.dir.path(),
        &["swap", "--admin", &base, "--pipeline", "swapping", "--operator", "counter", "--rollback"],
    );
    assert!(!untrusted.status.success());
    let output = child.interrupt_and_wait();
    assert!(output.status.success(), "{}", stderr.lock().expect("log"));
}

#[test]
fn the_admin_api_listens_beyond_loopback_only_with_a_token_and_tls() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 10, 1_000);
    let output = crate::support::sluice(scratch.dir.path(), &["run", &path.display().to_string(), "--admin", "0.0.0.0:0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A mistake on the command line: exit status 2, before the pipeline is read.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0 is not a loopback address") && stderr.contains("only with both a token"), "{stderr}");
}

/// A pin added to the pipeline file while it runs binds the admin API from then on (before,
/// the API kept checking swaps against the pins the run started with).
#[test]
fn a_pin_added_by_a_reload_binds_the_admin_api() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 2_000);
    let run = AdminRun::start(&path, &[], false);
    run.wait_for_pipeline("swapping");
    let v1 = hex::encode(sha2::Sha256::digest(std::fs::read(plugin("counter-v1")).expect("plugin")));
    let text = std::fs::read_to_string(&path).expect("pipeline");
    std::fs::write(&path, text.replace("counter-v1.wasm\"", &format!("counter-v1.wasm\"\nsha256 = \"{v1}\""))).expect("pin");
    crate::broker::wait_for(Duration::from_secs(60), "the reload", || run.get("/pipelines/swapping/swaps").contains("\"new_digest\""));
    let swap = crate::support::sluice(
        scratch.dir.path(),
        &["swap", "--admin", &run.address, "--pipeline", "swapping", "--operator", "counter", &plugin("counter-v2").display().to_string()],
    );
    let message = String::from_utf8_lossy(&swap.stderr);
    assert!(!swap.status.success() && message.contains("pins operator \"counter\" to sha256:"), "{message}");
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "{}", run.stderr.lock().expect("log"));
}

#[test]
fn a_pinned_plugin_file_changed_on_disk_is_refused_and_the_old_version_runs_on() {
    let scratch = Scratch::new();
    std::fs::copy(plugin("counter-v1"), scratch.path("counter.wasm")).expect("copy plugin");
    let v1 = hex::encode(sha2::Sha256::digest(std::fs::read(plugin("counter-v1")).expect("plugin")));
    let path = counting_pipeline(&scratch, 0, 2_000);
    let text = std::fs::read_to_string(&path)
        .expect("pipeline")
        .replace(&format!("{}\"", plugin("counter-v1").display()), &format!("counter.wasm\"\nsha256 = \"{v1}\""));
    std::fs::write(&path, text).expect("pin the plugin");
    let AdminRun { child, address, stderr } = run_with_admin(&path, &[]);
    wait_for_output(&scratch, |records| !records.is_empty());
    std::fs::copy(plugin("counter-v2"), scratch.path("counter.wasm.new")).expect("copy");
    std::fs::rename(scratch.path("counter.wasm.new"), scratch.path("counter.wasm")).expect("rename");
    // The watcher refuses the file: the refusal is in the history, and version 1 runs on.
    let started = std::time::Instant::now();
    let refusal = loop {
        let history: Value = ureq::get(format!("http://{address}/pipelines/swapping/swaps"))
            .call()
            .ok()
            .and_then(|mut response| response.body_mut().read_to_string().ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        if let Some(refused) = history.as_array().and_then(|records| records.iter().find_map(|record| record["refused"].as_str())) {
            break refused.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the watcher acts on the changed file");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(refusal.contains(&format!("but the pipeline pins sha256:{v1}")), "{refusal}");
    let count = outputs(&scratch).len();
    wait_for_output(&scratch, |records| records.len() > count + 100);
    assert!(outputs(&scratch).iter().all(|record| record["version"] == 1), "version 1 runs on");
    let output = child.interrupt_and_wait();
    assert!(output.status.success(), "{}", stderr.lock().expect("log"));
}

/// A reload that restarts a pipeline reading standard input (which cannot be read again) goes
/// on with the next line, and keeps what its file sink already holds: every line once, in
/// order. Before, the restart emptied the file, and the old run's reader kept a line it had
/// read.
#[test]
fn a_restart_of_a_stdin_pipeline_keeps_its_output_and_goes_on_with_the_next_line() {
    use std::io::Write as _;
    let scratch = Scratch::new();
    let pipeline = |linger: &str| {
        format!(
            "[pipeline]\nname = \"lines\"\nbatch_linger = \"{linger}\"\n\n[[sources]]\ntype = \"stdin\"\n\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n"
        )
    };
    let path = scratch.write("pipeline.toml", &pipeline("10ms"));
    let mut run = AdminRun::start(&path, &[], true);
    run.wait_for_pipeline("lines");
    let mut input = run.child.0.stdin.take().expect("stdin");
    let lines = |range: std::ops::RangeInclusive<u32>| range.map(|n| format!("{{\"n\":{n}}}\n")).collect::<String>();
    input.write_all(lines(1..=30).as_bytes()).expect("write stdin");
    input.flush().expect("flush stdin");
    wait_for_output(&scratch, |records| records.len() == 30);
    scratch.write("pipeline.toml", &pipeline("20ms"));
    crate::broker::wait_for(Duration::from_secs(60), "the restart", || run.stderr.lock().expect("log").contains("stopped to restart"));
    input.write_all(lines(31..=60).as_bytes()).expect("write stdin");
    drop(input);
    let status = run.child.0.wait().expect("sluice ends when stdin closes");
    assert!(status.success(), "{}", run.stderr.lock().expect("log"));
    let numbers: Vec<u64> = outputs(&scratch).iter().map(|record| record["n"].as_u64().expect("n")).collect();
    assert_eq!(numbers, (1..=60).collect::<Vec<u64>>());
}

/// A reloaded file that cannot start (a generator of another seed, against the checkpoint in
/// `state_dir`) is refused once, and the previous definition runs on at its pace: before, the
/// watcher tried the file again at every start of the previous definition, hundreds of times a
/// second. A SIGHUP tries it again.
#[test]
fn a_reloaded_file_that_cannot_start_is_tried_once_until_it_changes() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 2_000);
    let original =
        std::fs::read_to_string(&path).expect("pipeline").replace("name = \"swapping\"", "name = \"swapping\"\nstate_dir = \"state\"");
    std::fs::write(&path, &original).expect("pipeline");
    let run = AdminRun::start(&path, &[], false);
    run.wait_for_pipeline("swapping");
    wait_for_output(&scratch, |records| !records.is_empty());
    std::fs::write(&path, original.replace("rate = 2000", "rate = 2000\nseed = 7")).expect("another seed");
    let log = || run.stderr.lock().expect("log").clone();
    let refusals = || log().matches("the reloaded pipeline cannot start").count();
    crate::broker::wait_for(Duration::from_secs(60), "the refusal", || refusals() == 1);
    let seen = outputs(&scratch).len();
    wait_for_output(&scratch, |records| records.len() >= seen + 2_000);
    assert_eq!(refusals(), 1, "tried once, not in a loop:\n{}", log());
    // SAFETY: signals a child process of this test, by its PID.
    unsafe { libc::kill(run.child.0.id() as i32, libc::SIGHUP) };
    crate::broker::wait_for(Duration::from_secs(60), "the retry at SIGHUP", || refusals() == 2);
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "{}", log());
    assert_counted_once(&outputs(&scratch), outputs(&scratch).len() as u64);
}

/// A reloaded file that cannot start sends the pipeline back to what ran last, with the
/// changes earlier reloads swapped in: before, back to the definition the run had started with,
/// silently undoing them.
#[test]
fn a_reloaded_file_that_cannot_start_goes_back_to_what_earlier_reloads_made() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 2_000);
    let labelled = |label: &str| {
        let text = std::fs::read_to_string(&path).expect("pipeline");
        text.replace("name = \"swapping\"", "name = \"swapping\"\nstate_dir = \"state\"")
            .replace("counter-v1.wasm\"\n", &format!("counter-v1.wasm\"\nconfig = {{ label = \"{label}\" }}\n"))
    };
    let (first, second) = (labelled("a"), labelled("b"));
    std::fs::write(&path, &first).expect("pipeline");
    let run = AdminRun::start(&path, &[], false);
    run.wait_for_pipeline("swapping");
    let label_of_last = |records: &[Value]| records.last().and_then(|record| record["label"].as_str().map(str::to_owned));
    wait_for_output(&scratch, |records| label_of_last(records).as_deref() == Some("a"));
    std::fs::write(&path, &second).expect("relabel");
    wait_for_output(&scratch, |records| label_of_last(records).as_deref() == Some("b"));
    std::fs::write(&path, second.replace("rate = 2000", "rate = 2000\nseed = 7")).expect("another seed");
    let log = || run.stderr.lock().expect("log").clone();
    crate::broker::wait_for(Duration::from_secs(60), "the refusal", || log().contains("the reloaded pipeline cannot start"));
    let seen = outputs(&scratch).len();
    wait_for_output(&scratch, |records| records.len() >= seen + 1_000);
    assert_eq!(label_of_last(&outputs(&scratch)).as_deref(), Some("b"), "the relabelled counter runs on:\n{}", log());
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "{}", log());
}

#[test]
fn an_operator_disabled_on_the_way_is_reported_at_the_end_even_after_a_swap_replaced_it() {
    let scratch = Scratch::new();
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "circuit"
batch_size = 16
batch_linger = "5ms"

[[sources]]
type = "generator"
rate = 2000

[[operators]]
name = "broken"
plugin = "{plugins}/misbehave.wasm"
config = { trap_on = "event_type" }
"#,
    );
    let (control, stop, pipeline) = run_on_thread(&path);
    crate::broker::wait_for(Duration::from_secs(60), "the operator to be disabled", || {
        std::fs::read_to_string(scratch.path("dead.jsonl")).is_ok_and(|letters| letters.contains("circuit open"))
    });
    control.swap("broken", registry().load(&plugin("misbehave")).expect("compiles"), Some("{}".into())).expect("swap");
    wait_for_output(&scratch, |records| !records.is_empty());
    stop.raise();
    let summary = pipeline.join().expect("no panic").expect("pipeline drains");
    assert_eq!(summary.disabled_operators(), vec!["\"broken\"".to_owned()], "the swap does not hide that records were refused");
    let reasons: Vec<&str> = summary.tasks.iter().flat_map(|task| &task.disabled_operators).map(|(_, reason)| reason.as_str()).collect();
    assert!(reasons.iter().all(|reason| reason.ends_with("(until a swap replaced it)")), "{reasons:?}");
}

/// SIGHUP reads the files again under `--no-watch`: a broken plugin file is refused once (one
/// history record), and a restart for a settings change keeps the version swapped in through
/// the admin API (the file did not change that operator) and the swap history.
#[test]
fn sighup_reloads_and_a_restart_keeps_admin_swaps_and_the_history() {
    let scratch = Scratch::new();
    std::fs::copy(plugin("counter-v1"), scratch.path("counter.wasm")).expect("copy plugin");
    let path = counting_pipeline(&scratch, 0, 2_000);
    let text = std::fs::read_to_string(&path).expect("pipeline").replace(&plugin("counter-v1").display().to_string(), "counter.wasm");
    std::fs::write(&path, &text).expect("rewrite pipeline");
    let run = run_with_admin(&path, &["--no-watch"]);
    run.wait_for_pipeline("swapping");
    let json = |path: &str| serde_json::from_str::<Value>(&run.get(path)).expect("JSON");
    let counter_digest = || json("/pipelines/swapping/operators")[1]["digest"].as_str().map(str::to_owned);
    let wait_until = |what: &str, done: &dyn Fn() -> bool| crate::broker::wait_for(Duration::from_secs(60), what, done);
    let hangup = || {
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        unsafe { libc::kill(run.child.0.id() as libc::pid_t, libc::SIGHUP) };
    };
    let v1 = counter_digest();
    let swap = format!("http://{}/pipelines/swapping/operators/counter/swap", run.address);
    let body = serde_json::json!({ "path": plugin("counter-v2") }).to_string();
    ureq::post(&swap).header("content-type", "application/json").send(body).expect("admin swap");
    let v2 = counter_digest();
    assert_ne!(v1, v2);
    // A broken plugin file, read again at SIGHUP: refused once, the admin's version runs on.
    std::fs::write(scratch.path("counter.wasm"), b"not a component").expect("break the plugin");
    hangup();
    let refusals = || json("/pipelines/swapping/swaps").as_array().expect("list").iter().filter(|r| r["refused"].is_string()).count();
    wait_until("the broken plugin file to be refused", &|| refusals() > 0);
    // A settings change restarts the pipeline; the admin's version and the history go on.
    std::fs::copy(plugin("counter-v1"), scratch.path("counter.wasm")).expect("repair the plugin");
    std::fs::write(&path, text.replace("batch_size = 64", "batch_size = 32")).expect("change the settings");
    hangup();
    let kept = "the restarted pipeline keeps the version swapped in through the admin API";
    wait_until("the restart", &|| run.stderr.lock().expect("log").contains(kept));
    run.wait_for_pipeline("swapping");
    assert_eq!(counter_digest(), v2, "the restarted pipeline runs the version swapped in through the admin API");
    let history = json("/pipelines/swapping/swaps");
    let refused: Vec<bool> = history.as_array().expect("list").iter().map(|record| record["refused"].is_string()).collect();
    assert_eq!(refused, vec![false, true], "the admin swap, then one refusal of the broken file");
    // A restart in which the file changes that operator too runs the file's version.
    let relabelled =
        text.replace("batch_size = 64", "batch_size = 16").replace("counter.wasm\"\n", "counter.wasm\"\nconfig = { label = \"x\" }\n");
    std::fs::write(&path, relabelled).expect("change the settings and the counter");
    hangup();
    wait_until("the second restart", &|| run.stderr.lock().expect("log").contains("the pipeline's files changed this operator"));
    wait_until("the file's version to run", &|| counter_digest() == v1);
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "{}", run.stderr.lock().expect("log"));
}

/// A reload that changes an operator's `memory_limit` swaps it, and its gauge follows (before,
/// it kept the old limit until a restart).
#[test]
fn a_reloaded_memory_limit_moves_its_gauge() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 2_000);
    let text = std::fs::read_to_string(&path).expect("pipeline");
    let run = run_with_admin(&path, &["--no-watch"]);
    run.wait_for_pipeline("swapping");
    let limit = || {
        let scrape = run.get("/metrics");
        let line =
            scrape.lines().find(|line| line.starts_with("sluice_operator_memory_limit_bytes{") && line.contains("operator=\"counter\""));
        line.and_then(|line| line.rsplit(' ').next()).and_then(|value| value.parse::<u64>().ok())
    };
    assert_eq!(limit(), Some(128 << 20), "the default limit");
    let limited = text.replace("counter-v1.wasm\"\n", "counter-v1.wasm\"\nmemory_limit = \"32MiB\"\n");
    assert_ne!(limited, text);
    std::fs::write(&path, limited).expect("limit the counter");
    // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
    unsafe { libc::kill(run.child.0.id() as libc::pid_t, libc::SIGHUP) };
    crate::broker::wait_for(Duration::from_secs(60), "the reload's swap", &|| run.stderr.lock().expect("log").contains("operator swapped"));
    assert_eq!(limit(), Some(32 << 20));
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "{}", run.stderr.lock().expect("log"));
}

/// An operator a reload removes leaves no gauge behind (its version, its memory limit), while
/// the operators still running keep theirs.
#[test]
fn a_restart_that_removes_an_operator_removes_its_gauges() {
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 2_000);
    let text = std::fs::read_to_string(&path).expect("pipeline");
    let run = run_with_admin(&path, &[]);
    run.wait_for_pipeline("swapping");
    let gauges_of = |operator: &str| {
        let scrape = run.get("/metrics");
        let label = format!("operator=\"{operator}\"");
        ["sluice_operator_version{", "sluice_operator_memory_limit_bytes{"]
            .iter()
            .filter(|gauge| scrape.lines().any(|line| line.starts_with(**gauge) && line.contains(&label)))
            .count()
    };
    crate::broker::wait_for(Duration::from_secs(60), "the counter's gauges", || gauges_of("counter") == 2);
    let counter = text.find("[[operators]]\nname = \"counter\"").expect("the counter's table");
    let sinks = counter + text[counter..].find("[[sinks]]").expect("the sinks after it");
    std::fs::write(&path, format!("{}{}", &text[..counter], &text[sinks..])).expect("remove the counter");
    crate::broker::wait_for(Duration::from_secs(60), "the restart", || run.stderr.lock().expect("log").contains("stopped to restart"));
    crate::broker::wait_for(Duration::from_secs(60), "the project's gauges", || gauges_of("numbered") == 2);
    crate::broker::wait_for(Duration::from_secs(60), "the counter's gauges to go", || gauges_of("counter") == 0);
    let output = run.child.interrupt_and_wait();
    assert!(output.status.success(), "{}", run.stderr.lock().expect("log"));
}

/// Uploads are received one at a time: one arriving while another's body is still coming is
/// answered 429 with `Retry-After` before its body is read (four concurrent 250 MB uploads took
/// the process to 1.47 GB before), and `sluice swap --upload` sends it again until it passes.
#[test]
fn an_upload_arriving_during_another_is_refused_until_that_one_is_answered() {
    use std::io::{Read as _, Write as _};
    let scratch = Scratch::new();
    let path = counting_pipeline(&scratch, 0, 2_000);
    let run = run_with_admin(&path, &["--no-watch"]);
    run.wait_for_pipeline("swapping");
    // Two uploads send their headers and half their bodies, and hold the rest back: one gets
    // the turn and waits for its body, the other is answered at once.
    let [v1, v2] = ["counter-v1", "counter-v2"].map(|name| std::fs::read(plugin(name)).expect("plugin"));
    let start_upload = |component: &[u8]| {
        let mut upload = std::net::TcpStream::connect(&run.address).expect("connect");
        let head = format!(
            "POST /pipelines/swapping/operators/counter/swap HTTP/1.1\r\nHost: {}\r\nContent-Type: application/wasm\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            run.address,
            component.len()
        );
        upload.write_all(head.as_bytes()).expect("headers");
        upload.write_all(&component[..component.len() / 2]).expect("half the body");
        upload.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
        upload
    };
    let mut uploads = [start_upload(&v1), start_upload(&v2)];
    let started = std::time::Instant::now();
    let (refused, answer) = loop {
        assert!(started.elapsed() < Duration::from_secs(60), "one of two uploads is answered at once");
        let mut answer = vec![0u8; 4096];
        let answered = uploads.iter_mut().position(|upload| upload.read(&mut answer).is_ok_and(|read| read > 0));
        if let Some(refused) = answered {
            break (refused, String::from_utf8_lossy(&answer).into_owned());
        }
    };
    assert!(answer.starts_with("HTTP/1.1 429") && answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("another component is being uploaded"), "{answer}");
    let holder = 1 - refused;
    let (held, waiting) = if holder == 0 { (&v1, &v2) } else { (&v2, &v1) };
    // `sluice swap --upload` of the refused one waits its turn.
    let waiting_file = scratch.dir.path().join("waiting.wasm");
    std::fs::write(&waiting_file, waiting).expect("component");
    let (admin, dir, file) = (run.address.clone(), scratch.dir.path().to_owned(), waiting_file.display().to_string());
    let swapping = std::thread::spawn(move || {
        let command = ["swap", "--admin", &admin, "--pipeline", "swapping", "--operator", "counter", "--upload", "--timeout", "60s", &file];
        crate::support::sluice(&dir, &command)
    });
    let upload = &mut uploads[holder];
    upload.write_all(&held[held.len() / 2..]).expect("the rest of the body");
    upload.set_read_timeout(None).expect("no timeout");
    let mut answer = String::new();
    upload.read_to_string(&mut answer).expect("the held upload's answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let swapped = swapping.join().expect("the waiting swap");
    assert!(swapped.status.success(), "{}", String::from_utf8_lossy(&swapped.stderr));
    let history: Vec<Value> = serde_json::from_str(&run.get("/pipelines/swapping/swaps")).expect("history");
    let applied: Vec<&str> =
        history.iter().filter(|swap| swap["refused"].is_null()).filter_map(|swap| swap["new_digest"].as_str()).collect();
    let digest = |bytes: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    assert_eq!(applied, [digest(held), digest(waiting)], "both uploads, in turn: {history:?}");

    // An upload for an operator the pipeline does not have is answered before its body is
    // sent: it asks for `100-continue` and sends none, and the answer is a 404, not a 100.
    let mut stray = std::net::TcpStream::connect(&run.address).expect("connect");
    let head = format!(
        "POST /pipelines/swapping/operators/nobody/swap HTTP/1.1\r\nHost: {}\r\nContent-Type: application/wasm\r\n\
         Content-Length: 100000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        run.address
    );
    stray.write_all(head.as_bytes()).expect("headers");
    stray.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut answer = vec![0u8; 4096];
    let read = stray.read(&mut answer).expect("an answer without the body");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

/// `--timeout` bounds the wait for an answer, and says the swap may still complete.
#[test]
fn sluice_swap_gives_up_after_its_timeout_and_says_what_may_still_happen() {
    let scratch = Scratch::new();
    // A server that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("address").to_string();
    let v1 = plugin("counter-v1").display().to_string();
    let command = ["swap", "--admin", &address, "--pipeline", "p", "--operator", "o", "--timeout", "300ms", &v1];
    let output = crate::support::sluice(scratch.dir.path(), &command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("within 300ms (--timeout): the swap may still complete"), "{stderr}");
    let zero = crate::support::sluice(scratch.dir.path(), &["swap", "--pipeline", "p", "--operator", "o", "--timeout", "0s", &v1]);
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("the timeout must be longer than zero"),
        "{}",
        String::from_utf8_lossy(&zero.stderr)
    );
}

/// Under `key_by`, a swap is judged by how records are routed, not by what each version's
/// plugin declares: `group_by = ["category", "user_id"]` narrowed to `category` may become
/// `group_by = ["category"]` (still routed by `category`), not `["user_id"]`.
#[test]
fn a_swap_under_key_by_is_judged_by_the_routing_the_exchange_gives() {
    let scratch = Scratch::new();
    let path = scratch.pipeline_to_files(
        r#"
[pipeline]
name = "narrowed"
parallelism = 2

[[sources]]
type = "generator"
rate = 2000

[[operators]]
name = "counts"
plugin = "{plugins}/window-aggregate.wasm"
key_by = ["category"]
config = { window = { type = "tumbling", size = "10s" }, group_by = ["category", "user_id"], aggregates = [{ function = "count", as = "n" }] }
"#,
    );
    let (control, stop, pipeline) = run_on_thread(&path);
    let window_aggregate = || registry().load(&plugin("window-aggregate")).expect("plugin compiles");
    let config = |group_by: &str| {
        format!(
            r#"{{"window": {{"type": "tumbling", "size": "10s"}}, "group_by": {group_by}, "aggregates": [{{"function": "count", "as": "n"}}]}}"#
        )
    };
    let swapped =
        control.swap_with("counts", window_aggregate(), Some(config(r#"["category"]"#)), sluice::pipeline::StateHandover::Discard);
    assert!(swapped.as_ref().is_ok_and(|record| record.refused.is_none()), "{swapped:?}");
    let refused = control.swap_with("counts", window_aggregate(), Some(config(r#"["user_id"]"#)), sluice::pipeline::StateHandover::Discard);
    assert!(
        matches!(&refused, Err(SwapError::Refused(reason)) if reason.contains("by key (user_id)") && reason.contains("by key (category)")),
        "{refused:?}"
    );
    stop.raise();
    pipeline.join().expect("no panic").expect("pipeline drains");
}
