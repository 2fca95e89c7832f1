//! The `sluice` binary as a user meets it: exit codes, messages, stdin/stdout, Ctrl-C.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::support::{Scratch, plugin, repo_root, sluice};

#[test]
fn a_component_of_another_world_is_refused_by_validate_and_run() {
    let root = repo_root();
    for command in ["validate", "run"] {
        let output = sluice(&root, &[command, "pipelines/invalid/wrong-world.toml"]);
        assert_eq!(output.status.code(), Some(78), "{command} must fail as an invalid pipeline does");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("does not implement the world sluice:plugin/operator@0.4.0"), "{command}: {stderr}");
        assert!(stderr.contains("pipelines/invalid/wrong-world.toml:10:10"), "{command}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn plugin_inspect_prints_world_exports_and_digest() {
    let path = plugin("filter");
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&path).expect("plugin file")));
    let output = sluice(&repo_root(), &["plugin", "inspect", &path.display().to_string()]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("digest: sha256:{digest}")), "{stdout}");
    assert!(stdout.contains("implements sluice:plugin/operator@0.4.0"), "{stdout}");
    assert!(stdout.contains("interface sluice:plugin/host@0.4.0"), "{stdout}");
    assert!(stdout.contains("type batch = record { bytes: list<u8>, events: list<event>, headers: list<header> }"), "{stdout}");
    assert!(stdout.contains("process: func(input: u32, batch: batch) -> output"), "{stdout}");
    assert!(stdout.contains("init: func(config: string, context: init-context) -> result<operator-info, string>"), "{stdout}");
    assert!(stdout.contains("on-watermark: func(watermark: s64) -> batch"), "{stdout}");
    assert!(stdout.contains("restore: func(state: state) -> result<_, string>"), "{stdout}");

    let other = sluice(&repo_root(), &["plugin", "inspect", &plugin("wrong-world").display().to_string()]);
    // It describes any component, and says by its exit status whether it is an operator.
    assert_eq!(other.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&other.stdout);
    assert!(stdout.contains("NOT an operator") && stdout.contains("greet: func(name: string) -> string"), "{stdout}");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("is not a Sluice operator"), "{stderr}");
}

#[test]
fn a_plugin_name_that_cannot_be_one_is_a_mistake_on_the_command_line() {
    let scratch = Scratch::new();
    let output = sluice(scratch.dir.path(), &["plugin", "new", "Bad_Name", "--lang", "c"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid plugin name \"Bad_Name\""), "{stderr}");
    assert!(!scratch.dir.path().join("Bad_Name").exists());
}

#[test]
fn swap_takes_names_as_pipeline_files_spell_them_and_says_set_has_no_effect_on_it() {
    let scratch = Scratch::new();
    let file = plugin("counter-v1").display().to_string();
    for (flag, name) in [("--pipeline", "a/../b"), ("--operator", "Counter"), ("--operator", "x?rollback")] {
        let mut arguments = vec!["swap", "--admin", "127.0.0.1:9", "--pipeline", "p", "--operator", "o", &file];
        let at = arguments.iter().position(|argument| *argument == flag).expect("flag") + 1;
        arguments[at] = name;
        let output = sluice(scratch.dir.path(), &arguments);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("invalid value '{name}' for '{flag}")) && stderr.contains("may only use"), "{stderr}");
    }
    let output = sluice(scratch.dir.path(), &["--set", "A=1", "plugin", "list"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--set has no effect on `sluice plugin list`, which reads no pipeline file"), "{stderr}");
}

#[test]
fn inspect_refuses_a_file_that_is_not_a_component() {
    let scratch = Scratch::new();
    let path = scratch.write("garbage.wasm", "this is not wasm");
    let output = sluice(scratch.dir.path(), &["plugin", "inspect", &path.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a valid WebAssembly component"));
    let core = scratch.write_bytes("core.wasm", b"\0asm\x01\0\0\0");
    let output = sluice(scratch.dir.path(), &["plugin", "inspect", &core.display().to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("it is a core WebAssembly module, not a component"), "{stderr}");
}

#[test]
fn stdin_to_stdout_through_a_filter() {
    let scratch = Scratch::new();
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "pipe"

[[sources]]
type = "stdin"

[[operators]]
name = "big"
plugin = "{plugins}/filter.wasm"
config = { field = "size", op = "ge", value = 10 }

[[sinks]]
type = "stdout"
"#,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &path.display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    child.stdin.take().expect("stdin").write_all(b"{\"size\": 3}\n{\"size\": 30}\n\n{\"size\": 10}\n").expect("write stdin");
    let output = child.wait_with_output().expect("sluice ends when stdin closes");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "{\"size\": 30}\n{\"size\": 10}\n");
}

/// Two stdout sinks share the process's standard output: each writes whole lines, so that
/// every line out is a record of one of them (lines of up to 5,000 bytes, which fill the
/// writers' buffers mid-line).
#[test]
fn two_stdout_sinks_never_write_into_each_other_s_lines() {
    let scratch = Scratch::new();
    let input: String = (0..20_000).map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "p".repeat(i % 5_000))).collect();
    scratch.write("wide.jsonl", &input);
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "two-stdout"

[[sources]]
type = "file"
path = "wide.jsonl"

[[sinks]]
name = "a"
type = "stdout"

[[sinks]]
name = "b"
type = "stdout"
format = "envelope"
"#,
    );
    let output = sluice(&repo_root(), &["run", &path.display().to_string(), "--no-watch"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (mut values, mut envelopes) = (Vec::new(), Vec::new());
    for line in String::from_utf8(output.stdout).expect("UTF-8").lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {:.120}", line));
        match record.get("value").and_then(serde_json::Value::as_str) {
            Some(value) => envelopes.push(serde_json::from_str::<serde_json::Value>(value).expect("an envelope's value")["i"].as_u64()),
            None => values.push(record["i"].as_u64()),
        }
    }
    let all: Vec<Option<u64>> = (0..20_000).map(Some).collect();
    values.sort_unstable();
    envelopes.sort_unstable();
    assert_eq!((values, envelopes), (all.clone(), all));
}

#[test]
fn ctrl_c_drains_in_flight_records_and_flushes_windows() {
    let scratch = Scratch::new();
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "endless"

[[sources]]
type = "generator"
rate = 2000

[[operators]]
name = "counts"
plugin = "{plugins}/window-aggregate.wasm"
config = { window = { type = "tumbling", size = "1h" }, aggregates = [{ function = "count" }] }

[[sinks]]
type = "file"
path = "out.jsonl"
"#,
    );
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &path.display().to_string(), "--no-watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let child = crate::support::KillOnDrop(child);
    // Let records flow for a while (start-up time varies on a busy machine; the count below
    // is checked against what the process itself reports).
    std::thread::sleep(Duration::from_millis(2500));
    let started = Instant::now();
    let output = child.interrupt_and_wait();
    assert!(started.elapsed() < Duration::from_secs(20), "draining is quick");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let windows = scratch.json_lines("out.jsonl");
    let counted: i64 = windows.iter().map(|window| window["count"].as_i64().expect("count")).sum();
    assert!(counted > 0, "the window was flushed");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!("{counted} records in")),
        "every record read before Ctrl-C is counted in the flushed window"
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `sluice plugin inspect … | head -c 0`: the reader is gone before anything is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugin", "inspect", &plugin("filter").display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("sluice ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "a reader that has gone is not an error: {stderr}");
}

#[test]
fn a_run_into_a_closed_pipe_stops_as_on_ctrl_c_and_exits_quietly() {
    // `sluice run … | head -n 2` on an endless generator.
    let scratch = Scratch::new();
    let path = scratch.pipeline("[pipeline]\nname = \"endless\"\n\n[[sources]]\ntype = \"generator\"\n\n[[sinks]]\ntype = \"stdout\"\n");
    let (status, stderr) = read_two_lines_and_close(&path);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("the reader of the output has gone"), "{stderr}");
    assert!(!stderr.contains("Broken pipe") && !stderr.contains("error"), "{stderr}");
    // A pipeline that saves its progress saves none past the records it could not write.
    let saved = scratch.pipeline(
        "[pipeline]\nname = \"saved\"\nstate_dir = \"state\"\n\n[[sources]]\ntype = \"generator\"\n\n[[sinks]]\ntype = \"stdout\"\n",
    );
    let (status, stderr) = read_two_lines_and_close(&saved);
    assert!(!status.success() && stderr.contains("a sink stopped taking records"), "{stderr}");
}

/// Runs `sluice run PATH`, reads two lines of its output, closes the pipe and waits for the
/// process to end: its status and standard error.
fn read_two_lines_and_close(path: &std::path::Path) -> (std::process::ExitStatus, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &path.display().to_string(), "--no-watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let mut child = crate::support::KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("standard output");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for _ in 0..2 {
        let line = lines.next().expect("a line").expect("a readable line");
        assert!(line.starts_with("{\"event_id\""), "{line}");
    }
    drop(lines);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("the process's status") {
            break status;
        }
        assert!(Instant::now() < deadline, "the run stops once its reader has gone");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().expect("standard error"), &mut stderr).expect("standard error");
    (status, stderr)
}

#[test]
fn pipeline_variables_come_from_set_and_the_environment_with_defaults() {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path("in")).expect("directory");
    scratch.write("in/orders.jsonl", "{\"size\": 3}\n{\"size\": 30}\n");
    let path = scratch.pipeline(
        r#"
[pipeline]
name = "${PIPELINE_NAME:-parameters}"

[[sources]]
type = "file"
path = "${INPUT_DIR}/orders.jsonl"

[[operators]]
name = "big"
plugin = "{plugins}/filter.wasm"
config = { field = "size", op = "ge", value = ${MIN_SIZE:-10} }

[[sinks]]
type = "file"
path = "${OUTPUT:-out.jsonl}"
"#,
    );
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--no-watch", &path.display().to_string()])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(scratch.dir.path())
            .output()
            .expect("sluice runs")
    };
    // Unset without a default: refused where it is written, naming --set.
    let unset = run(&[], &[]);
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(!unset.status.success());
    assert!(stderr.contains("variable INPUT_DIR is not set") && stderr.contains("pipeline.toml:7:9"), "{stderr}");
    // From the environment, defaults for the rest.
    let from_environment = run(&[], &[("INPUT_DIR", "in")]);
    assert!(from_environment.status.success(), "{}", String::from_utf8_lossy(&from_environment.stderr));
    assert_eq!(std::fs::read_to_string(scratch.path("out.jsonl")).expect("output"), "{\"size\": 30}\n");
    // --set takes precedence over the environment.
    let set = run(&["--set", "INPUT_DIR=in", "--set", "MIN_SIZE=1", "--set", "OUTPUT=all.jsonl"], &[("MIN_SIZE", "100")]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert_eq!(std::fs::read_to_string(scratch.path("all.jsonl")).expect("output"), "{\"size\": 3}\n{\"size\": 30}\n");
    let malformed = run(&["--set", "1X=2"], &[]);
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("is not a variable name"));
    // Before the subcommand and after it, together: clap kept only the later ones before.
    let both = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--set", "PIPELINE_NAME=both-places", "--set", "INPUT_DIR=in", "validate", "--set", "MIN_SIZE=1"])
        .arg(&path)
        .envs([("INPUT_DIR", "elsewhere")])
        .current_dir(scratch.dir.path())
        .output()
        .expect("sluice runs");
    let stdout = String::from_utf8_lossy(&both.stdout);
    assert!(
        both.status.success() && stdout.contains("pipeline \"both-places\" is valid"),
        "{stdout}{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

#[test]
fn plugin_list_names_every_shipped_operator_with_its_own_description() {
    let mut directories: Vec<String> = std::fs::read_dir(repo_root().join("plugins"))
        .expect("plugins/")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    directories.sort();
    let listed: Vec<&str> = sluice::develop::SHIPPED_OPERATORS.iter().map(|operator| operator.name).collect();
    assert_eq!(listed, directories, "runtime/src/develop/shipped.rs lists plugins/");
    for operator in sluice::develop::SHIPPED_OPERATORS {
        let manifest = repo_root().join("plugins").join(operator.name).join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            assert!(text.contains(&format!("description = {:?}", operator.description)), "{} describes itself otherwise", operator.name);
        }
    }
    let output = sluice(&repo_root(), &["plugin", "list"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert_eq!(stdout.lines().count(), directories.len(), "{stdout}");
    assert!(stdout.lines().any(|line| line.starts_with("window-aggregate") && line.contains("rust")), "{stdout}");
}

#[test]
fn help_shows_examples_and_completions_are_generated_for_each_shell() {
    let help = sluice(&repo_root(), &["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:\n  sluice run pipelines/quickstart.toml"));
    for shell in ["bash", "zsh", "fish"] {
        let script = sluice(&repo_root(), &["completions", shell]);
        let text = String::from_utf8_lossy(&script.stdout);
        assert!(script.status.success() && text.contains("sluice") && text.contains("validate"), "{shell}");
    }
}

/// With `--log-format json`, the error a command ends with is one JSON event on standard error,
/// whatever `SLUICE_LOG` filters (before, `SLUICE_LOG=off` left a failing command silent).
#[test]
fn the_error_a_command_ends_with_is_a_json_event_whatever_the_log_filter() {
    let scratch = Scratch::new();
    for filter in ["info", "off", "sluice::reload=info"] {
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["--log-format", "json", "validate", "missing.toml"])
            .env("SLUICE_LOG", filter)
            .current_dir(scratch.dir.path())
            .output()
            .expect("sluice runs");
        assert_eq!(output.status.code(), Some(78));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let event: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap_or_else(|error| panic!("{error}: {stderr}"));
        assert_eq!(event["level"], "ERROR", "{stderr}");
        assert!(event["fields"]["message"].as_str().is_some_and(|message| message.contains("cannot read pipeline file")), "{stderr}");
    }
}

/// A sink writing to `/dev/tty` in a process without a terminal (a service, CI) is refused by
/// `validate` with the reason, as `run` would fail at its start; with `/dev/null` it is valid.
#[test]
fn validate_refuses_a_terminal_the_process_has_none_of() {
    let scratch = Scratch::new();
    scratch.write("input.jsonl", "{\"n\":1}\n");
    for (device, valid) in [("/dev/tty", false), ("/dev/null", true)] {
        let path = scratch.pipeline(&format!(
            "[pipeline]\nname = \"device\"\n\n[[sources]]\ntype = \"file\"\npath = \"input.jsonl\"\n\n[[sinks]]\ntype = \"file\"\npath = \"{device}\"\n"
        ));
        // `setsid` runs it in a session of its own: no controlling terminal.
        let output = Command::new("setsid")
            .args(["--wait", env!("CARGO_BIN_EXE_sluice"), "validate", &path.display().to_string()])
            .current_dir(scratch.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("setsid runs sluice");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.success(), valid, "{device}: {stderr}");
        if !valid {
            assert_eq!(output.status.code(), Some(78), "{stderr}");
            assert!(stderr.contains("/dev/tty cannot be written: No such device or address"), "{stderr}");
        }
    }
}

#[test]
fn validate_takes_the_graph_format_with_or_without_an_equals_sign() {
    let root = repo_root();
    let joined = sluice(&root, &["validate", "--graph=dot", "pipelines/quickstart.toml"]);
    let apart = sluice(&root, &["validate", "--graph", "dot", "pipelines/quickstart.toml"]);
    assert!(joined.status.success() && apart.status.success(), "{}", String::from_utf8_lossy(&apart.stderr));
    assert!(String::from_utf8_lossy(&joined.stdout).starts_with("digraph"), "{}", String::from_utf8_lossy(&joined.stdout));
    assert_eq!(joined.stdout, apart.stdout);
    let text = sluice(&root, &["validate", "--graph", "pipelines/quickstart.toml"]);
    assert!(text.status.success() && !String::from_utf8_lossy(&text.stdout).starts_with("digraph"));

    let two = sluice(&root, &["validate", "pipelines/quickstart.toml", "pipelines/marketing.toml"]);
    assert_eq!(two.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&two.stderr);
    assert!(stderr.contains("validate checks one pipeline file, and was given two"), "{stderr}");
}

/// Ctrl-C while the plugins compile ends the run at once, before the pipeline starts (before,
/// it waited for every plugin to compile, tens of seconds for Python ones without the compiled
/// cache, and then started and drained the pipeline): `/ready` says it starts meanwhile.
#[test]
fn a_stop_while_the_plugins_compile_ends_the_run_before_the_pipeline_starts() {
    use std::io::BufRead;
    let scratch = Scratch::new();
    let pipeline = repo_root().join("pipelines/languages.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", &pipeline.display().to_string(), "--no-watch", "--metrics", "127.0.0.1:0"])
        .env("SLUICE_COMPILED_CACHE", "off")
        .current_dir(scratch.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    let (lines, incoming) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let child = crate::support::KillOnDrop(child);
    let address = loop {
        let line = incoming.recv_timeout(Duration::from_secs(60)).expect("the metrics listener reports its address");
        if let Some((_, rest)) = line.split_once("metrics listening address=") {
            break rest.split_whitespace().next().expect("an address").to_owned();
        }
    };
    let ready = ureq::get(format!("http://{address}/ready")).config().http_status_as_error(false).build().call().expect("answered");
    assert_eq!(ready.status(), 503, "the pipeline is starting");
    let asked = Instant::now();
    let output = child.interrupt_and_wait();
    let log = reader.join().expect("the log");
    assert!(output.status.success(), "{log}");
    assert!(log.contains("stopped before the pipeline started"), "{log}");
    assert!(asked.elapsed() < Duration::from_secs(5), "it ended {:?} after Ctrl-C", asked.elapsed());
}
