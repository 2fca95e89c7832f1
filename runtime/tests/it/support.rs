//! Helpers shared by the integration tests: plugin paths, temporary pipelines, running them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use sluice::commands::{self, CommandError};
use sluice::topology::PipelineSummary;
use sluice::wasm::{PluginRegistry, WasmEngine};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("runtime/ has a parent").to_path_buf()
}

/// The built component of plugin crate `name` (see scripts/build-plugins.sh).
pub fn plugin(name: &str) -> PathBuf {
    let path = repo_root().join("build/plugins").join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run scripts/build-plugins.sh first", path.display());
    path
}

/// One registry for the whole test binary, so each plugin is compiled once.
pub fn registry() -> &'static PluginRegistry {
    static REGISTRY: OnceLock<PluginRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| PluginRegistry::new(WasmEngine::new().expect("engine starts")))
}

/// A scratch directory holding a pipeline file and its inputs and outputs.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("temporary directory") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to `name` and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }

    /// Writes `bytes` to `name` and returns its path.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write scratch file");
        path
    }

    /// Makes a named pipe `name` and returns its path.
    pub fn named_pipe(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        let text = std::ffi::CString::new(path.display().to_string()).expect("path");
        // SAFETY: creating a named pipe at a path in our own scratch directory.
        assert_eq!(unsafe { libc::mkfifo(text.as_ptr(), 0o600) }, 0, "mkfifo");
        path
    }

    /// Writes a pipeline file; `{plugins}` in `toml` becomes the built plugins' directory.
    pub fn pipeline(&self, toml: &str) -> PathBuf {
        let plugins = repo_root().join("build/plugins");
        self.write("pipeline.toml", &toml.replace("{plugins}", &plugins.display().to_string()))
    }

    /// Writes a pipeline file (see `pipeline`) whose records go to `out.jsonl` and dead letters
    /// to `dead.jsonl`.
    pub fn pipeline_to_files(&self, toml: &str) -> PathBuf {
        self.pipeline(&format!(
            "{toml}\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n\n[dead_letter]\ntype = \"file\"\npath = \"dead.jsonl\"\n"
        ))
    }

    /// The lines of an output file, parsed as JSON.
    pub fn json_lines(&self, name: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path(name)).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"))).collect()
    }
}

/// Results of a windowed count by (window start, group): every count emitted for the window
/// (duplicates included).
pub type WindowResults = BTreeMap<(i64, String), Vec<u64>>;

/// The counts in window-aggregate results (`window_start`, the `group` field, `count`).
pub fn window_counts(results: impl IntoIterator<Item = Value>, group: &str) -> WindowResults {
    let mut counts = WindowResults::new();
    for result in results {
        let key = (result["window_start"].as_i64().expect("window_start"), result[group].as_str().expect("group field").to_owned());
        counts.entry(key).or_default().push(result["count"].as_u64().expect("count"));
    }
    counts
}

/// Every expected window was emitted, each time with its expected count, and no other window.
pub fn assert_exact_counts(expected: &BTreeMap<(i64, String), u64>, results: &WindowResults) {
    for (key, count) in expected {
        let emitted = &results[key];
        assert!(emitted.iter().all(|emitted| emitted == count), "window {key:?}: expected {count}, emitted {emitted:?}");
    }
    let unexpected: Vec<_> = results.keys().filter(|key| !expected.contains_key(*key)).collect();
    assert!(unexpected.is_empty(), "windows that should not exist: {unexpected:?}");
}

/// Runs a pipeline file in-process to its end.
pub fn run(path: &Path) -> Result<PipelineSummary, CommandError> {
    commands::run(path, registry(), |_, _| {})
}

/// A pipeline running on a thread of the test: its control handle, its stop signal, the thread.
pub type RunningOnThread =
    (sluice::pipeline::PipelineControl, sluice::pipeline::StopSignal, std::thread::JoinHandle<Result<PipelineSummary, CommandError>>);

/// Runs `path` in-process on a thread, returning once it has started.
pub fn run_on_thread(path: &Path) -> RunningOnThread {
    let (handles, started) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    let thread = std::thread::spawn(move || {
        commands::run(&path, registry(), move |stop, control| handles.send((control, stop)).expect("test waits"))
    });
    let (control, stop) = started.recv_timeout(std::time::Duration::from_secs(60)).expect("pipeline starts");
    (control, stop, thread)
}

/// The environment variables a pipeline's text reads secrets from (`{ env = "NAME" }`).
pub fn secret_variables(text: &str) -> Vec<&str> {
    text.split("env = \"").skip(1).filter_map(|rest| rest.split('"').next()).collect()
}

/// `sluice COMMAND path` in the pipeline's directory, with a made-up value for each environment
/// variable its `text` reads a secret from, as a user would set them (this process's
/// environment is left alone). The value is the key docs/operators.md's `mask` example shows
/// pseudonyms for.
pub fn sluice_with_made_up_secrets(command: &str, path: &Path, text: &str) -> Result<(), String> {
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice"));
    sluice.arg(command).arg(path).current_dir(path.parent().unwrap_or(Path::new(".")));
    for secret in secret_variables(text) {
        sluice.env(secret, "a-secret-for-the-documentation-test");
    }
    let output = sluice.output().map_err(|error| format!("sluice {command}: {error}"))?;
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

/// The standard output of `sluice run pipelines/privacy.toml` with `key` as its HMAC key.
pub fn privacy_run(key: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "pipelines/privacy.toml"])
        .current_dir(repo_root())
        .env("SLUICE_MASK_KEY", key)
        .output()
        .expect("sluice runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs the `sluice` binary with `args` in `dir`.
pub fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).current_dir(dir).output().expect("sluice binary runs")
}

/// JSON lines of `count` records `{"n": i, "category": .., "price": .., "ts": ..}`.
pub fn numbered_records(count: usize, marker: impl Fn(usize) -> Option<&'static str>) -> String {
    (0..count)
        .map(|n| {
            let category = ["a", "b", "c"][n % 3];
            let mut record = serde_json::json!({"n": n, "category": category, "price": (n % 7) as i64, "ts": n as i64 * 10});
            if let Some(mark) = marker(n) {
                record["mark"] = mark.into();
            }
            format!("{record}\n")
        })
        .collect()
}

/// The seed of a test's random choices: `SLUICE_TEST_SEED`, or else a new one; printed, so
/// that a failure can be repeated.
pub fn test_seed(what: &str) -> u64 {
    let seed = std::env::var("SLUICE_TEST_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(std::process::id().into());
    eprintln!("{what} from seed {seed} (SLUICE_TEST_SEED={seed} repeats them)");
    seed
}

/// Long enough for file events to be debounced and acted on, on a busy machine.
pub fn settle() -> std::time::Duration {
    sluice::reload::DEBOUNCE * 4
}

/// A child process that is killed if the test ends early (an assertion failed).
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Sends Ctrl-C (SIGINT) and waits for the process to drain and exit.
    pub fn interrupt_and_wait(mut self) -> Output {
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGINT) };
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().expect("a placeholder process"));
        child.wait_with_output().expect("the process exits")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sluice run PATH --admin 127.0.0.1:0 ARGS...`: the process, the admin address it reports
/// once bound (no port picked beforehand that another process could take), and its standard
/// error as it comes. With `stdin`, the test writes the pipeline's standard input.
pub struct AdminRun {
    pub child: KillOnDrop,
    pub address: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl AdminRun {
    pub fn start(path: &Path, args: &[&str], stdin: bool) -> AdminRun {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", &path.display().to_string(), "--admin", "127.0.0.1:0"])
            .args(args)
            .stdin(if stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() })
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sluice starts");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (lines, incoming) = std::sync::mpsc::channel();
        let (pipe, log) = (child.stderr.take().expect("stderr"), stderr.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().expect("log").push_str(&format!("{line}\n"));
                let _ = lines.send(line);
            }
        });
        let child = KillOnDrop(child);
        let address = loop {
            let line = incoming.recv_timeout(std::time::Duration::from_secs(60)).expect("the admin API reports its address");
            if let Some((_, rest)) = line.split_once("admin API listening address=") {
                break rest.split_whitespace().next().expect("an address").to_owned();
            }
        };
        AdminRun { child, address, stderr }
    }

    /// Waits until the pipeline `name` answers on the admin API (the server starts first).
    pub fn wait_for_pipeline(&self, name: &str) {
        let started = std::time::Instant::now();
        let url = format!("http://{}/pipelines/{name}/operators", self.address);
        while !ureq::get(&url).call().is_ok_and(|response| response.status() == 200) {
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "the admin API answers for {name}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// GET `path` of the admin API, as text.
    pub fn get(&self, path: &str) -> String {
        let mut response = ureq::get(format!("http://{}{path}", self.address)).call().unwrap_or_else(|error| panic!("GET {path}: {error}"));
        response.body_mut().read_to_string().expect("a text body")
    }
}
