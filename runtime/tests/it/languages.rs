//! Plugins in Python, JavaScript and C next to Rust: the shipped ones pass their own tests,
//! every built component implements the current world, and `sluice plugin new` skeletons build,
//! test and run in a pipeline in every language. (The four-language chain is the golden
//! example `pipelines/languages.toml`.)

use std::path::{Path, PathBuf};

use sluice::develop::{self, Language};
use sluice::wasm::WasmEngine;

use crate::support::{Scratch, registry, repo_root, sluice};

const LANGUAGE_PLUGINS: [&str; 3] = ["fraud-score", "reshape", "range-filter"];

#[test]
fn every_built_component_implements_the_current_world() {
    let directory = repo_root().join("build/plugins");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&directory).expect("build/plugins exists: run scripts/build-plugins.sh") {
        let path = entry.expect("directory entry").path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_owned();
        // Two test plugins implement other worlds on purpose.
        if path.extension().is_none_or(|extension| extension != "wasm") || ["wrong-world", "old-world"].contains(&name.as_str()) {
            continue;
        }
        if let Err(error) = registry().load(&path) {
            panic!("{} does not implement the current world: {error}", path.display());
        }
        checked.push(name);
    }
    for required in LANGUAGE_PLUGINS.into_iter().chain(["filter", "window-aggregate"]) {
        assert!(checked.iter().any(|name| name == required), "{required} was built and checked; checked {checked:?}");
    }
}

#[test]
fn shipped_python_javascript_and_c_plugins_pass_their_own_tests() {
    for name in LANGUAGE_PLUGINS {
        let directory = repo_root().join("plugins").join(name);
        let manifest = develop::PluginManifestConfig::read(&directory).expect("manifest");
        assert_ne!(manifest.plugin.language, Language::Rust, "{name} is one of the other languages");
        let report = develop::test_plugin(&directory, WasmEngine::new().expect("engine")).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(report.records >= 3, "{name}: {report}");
    }
}

/// The native unit tests of the Python, JavaScript and C plugins' own logic (their
/// configuration checks and record handling, with the generated bindings stood in), run with
/// the interpreters and compiler the build installs.
#[test]
fn shipped_python_javascript_and_c_plugins_pass_their_native_unit_tests() {
    let root = repo_root();
    let run = |what: &str, command: &mut std::process::Command| {
        let output = command.current_dir(&root).output().unwrap_or_else(|error| panic!("{what}: cannot start: {error}"));
        assert!(
            output.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run("fraud-score's tests", std::process::Command::new("python3").arg("plugins/fraud-score/test/test_app.py"));
    run("reshape's tests", std::process::Command::new("node").arg("plugins/reshape/test/test_app.mjs"));
    let scratch = Scratch::new();
    let binary = scratch.path("range-filter-test");
    run(
        "compiling range-filter's tests",
        std::process::Command::new("cc")
            .args(["-std=c11", "-w", "-I", "plugins/range-filter", "plugins/range-filter/test/test_config.c"])
            .args(["plugins/range-filter/gen/operator.c", "-o", &binary.display().to_string(), "-lm"]),
    );
    run("range-filter's tests", &mut std::process::Command::new(&binary));
}

#[test]
fn new_plugins_build_test_and_run_in_a_pipeline_in_every_language() {
    let scratch = Scratch::new();
    let mut components = Vec::new();
    for language in Language::ALL {
        let directory = scratch.path(language.name());
        let created = sluice(scratch.dir.path(), &["plugin", "new", "my-op", "--lang", language.name(), "--dir", language.name()]);
        assert!(created.status.success(), "plugin new --lang {language}: {}", String::from_utf8_lossy(&created.stderr));
        let mut test = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        test.current_dir(&directory).args(["plugin", "test"]);
        if language == Language::Rust {
            test.env("CARGO_TARGET_DIR", skeleton_target_directory(scratch.dir.path()));
        }
        let tested = test.output().expect("sluice runs");
        let stdout = String::from_utf8_lossy(&tested.stdout);
        assert!(tested.status.success(), "plugin test ({language}) failed: {}", String::from_utf8_lossy(&tested.stderr));
        assert!(stdout.contains("test passed: 3 record(s) as expected, 2 dead-lettered"), "{language}: {stdout}");
        components.push(directory.join("my-op.wasm"));
    }
    // The four skeletons are the same operator: chained, they keep what one keeps.
    let pipeline = scratch.pipeline(&chain_of(&components));
    std::fs::copy(repo_root().join("runtime/templates/common/input.jsonl"), scratch.path("input.jsonl")).expect("input");
    let output = sluice(scratch.dir.path(), &["run", "--no-watch", pipeline.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = std::fs::read_to_string(repo_root().join("runtime/templates/common/expected.jsonl")).expect("expected");
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

/// Rust skeletons build with Debian's cargo: beside the shared target directory when there is
/// one (a warm cache outside the clone), else in the scratch directory.
fn skeleton_target_directory(scratch: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target).with_file_name("skeleton-target"),
        None => scratch.join("skeleton-target"),
    }
}

fn chain_of(components: &[PathBuf]) -> String {
    let mut toml = String::from(
        "[pipeline]\nname = \"skeleton-chain\"\n\n[[sources]]\nname = \"input\"\ntype = \"file\"\npath = \"input.jsonl\"\ntimestamp_field = \"ts\"\n\n",
    );
    for (index, component) in components.iter().enumerate() {
        toml.push_str(&format!(
            "[[operators]]\nname = \"step-{index}\"\nplugin = {:?}\nconfig = {{ field = \"price\", min = 100 }}\n\n",
            component.display().to_string()
        ));
    }
    toml.push_str("[[sinks]]\ntype = \"stdout\"\n\n[dead_letter]\ntype = \"file\"\npath = \"dead-letter.jsonl\"\n");
    toml
}

/// Writes the C skeleton `name` into `scratch/name` (`sluice plugin new --lang c`); its `op.c`.
fn new_c_plugin(scratch: &Scratch, name: &str) -> std::path::PathBuf {
    let created = sluice(scratch.dir.path(), &["plugin", "new", name, "--lang", "c", "--dir", name]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    scratch.path(&format!("{name}/op.c"))
}

#[test]
fn building_a_c_plugin_that_opens_files_fails_with_the_reason() {
    let scratch = Scratch::new();
    let source = new_c_plugin(&scratch, "leaky");
    let mut code = std::fs::read_to_string(&source).expect("the skeleton's source");
    // init reads a file: the component then imports wasi:filesystem (and wasi:cli/exit).
    let leak = "#include <stdio.h>\nstatic int leaky_read(void) {\n  FILE *file = fopen(\"/etc/hostname\", \"r\");\n  return file ? fgetc(file) : -1;\n}\n\nbool exports_operator_init(";
    code = code.replacen("bool exports_operator_init(", leak, 1);
    code = code.replacen("  size_t start, end;", "  size_t start, end;\n  if (leaky_read() == -2) return false;", 1);
    std::fs::write(&source, code).expect("write op.c");
    let built = sluice(&scratch.path("leaky"), &["plugin", "build"]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(!built.status.success(), "the build must fail: {stderr}");
    assert!(stderr.contains("the built component would be refused by the runtime"), "{stderr}");
    assert!(stderr.contains("uses the filesystem") && stderr.contains("wasi:filesystem/"), "{stderr}");
    assert!(!scratch.path("leaky/leaky.wasm").exists(), "no component is left where a pipeline would load it");
}

/// A plugin whose manifest was renamed builds `<new name>.wasm`, while its test pipeline still
/// runs the old file: `plugin test` says so instead of testing the old build and passing.
#[test]
fn a_plugin_test_that_would_run_another_file_than_the_build_says_so() {
    let scratch = Scratch::new();
    new_c_plugin(&scratch, "first");
    let tested = sluice(&scratch.path("first"), &["plugin", "test"]);
    assert!(tested.status.success(), "{}", String::from_utf8_lossy(&tested.stderr));
    let manifest = scratch.path("first/sluice-plugin.toml");
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    std::fs::write(&manifest, text.replacen("name = \"first\"", "name = \"second\"", 1)).expect("rename");
    let retested = sluice(&scratch.path("first"), &["plugin", "test"]);
    let stderr = String::from_utf8_lossy(&retested.stderr);
    assert!(!retested.status.success(), "the old component must not pass for the new: {stderr}");
    assert!(stderr.contains("not the component just built") && stderr.contains("second.wasm"), "{stderr}");
}

/// A plugin that traps without logging why (a C `__builtin_trap`, a Python or JavaScript
/// function returning nothing) gets a dead-letter reason that says what usually does that,
/// rather than wasmtime's bare "unreachable instruction executed".
#[test]
fn a_trap_without_a_message_is_explained_in_the_dead_letter() {
    let scratch = Scratch::new();
    let source = new_c_plugin(&scratch, "silent");
    let code = std::fs::read_to_string(&source).expect("the skeleton's source");
    let trapping = code.replacen(
        "    } else if (number >= min) {\n",
        "    } else if (number >= min) {\n      if (number > 300) __builtin_trap();\n",
        1,
    );
    assert_ne!(trapping, code, "the skeleton's branch was found");
    std::fs::write(&source, trapping).expect("write op.c");
    let built = sluice(&scratch.path("silent"), &["plugin", "build"]);
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let ran = sluice(&scratch.path("silent/test"), &["run", "pipeline.toml"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let letters = std::fs::read_to_string(scratch.path("silent/test/dead-letter.jsonl")).expect("dead letters");
    let trapped =
        letters.lines().find(|letter| letter.contains("340.75")).unwrap_or_else(|| panic!("the desk is a dead letter:\n{letters}"));
    assert!(trapped.contains("without a message") && trapped.contains("returned nothing"), "{trapped}");
}
