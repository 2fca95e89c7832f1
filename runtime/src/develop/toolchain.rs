//! `sluice plugin build`: turns a plugin directory into a component, whatever its language.
//!
//! Tools that need no root (componentize-py, componentize-js, wit-bindgen) are installed once,
//! at pinned versions, under `$SLUICE_TOOLS` (default `~/.cache/sluice/tools`); Debian
//! packages that are missing are named in the error.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::diagnose::{SyntaxCheck, require_source, run_build};
use super::{DevelopError, Language, PluginManifestConfig, WIT, write};

pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
pub const WIT_BINDGEN_VERSION: &str = "0.63.0";

/// The component linker of Debian's Rust for WebAssembly (package rust-web-llvm).
const COMPONENT_LD: &str = "/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld";
const DEBIAN_RUST: &str = "rustc-web cargo-web rust-web-src rust-web-llvm lld-22";
const DEBIAN_C: &str = "clang-22 lld-22 libclang-rt-22-dev-wasm32 wasi-libc rust-web-llvm";

/// What `sluice plugin build` may be told besides the directory.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Where the component goes (default: `DIR/<name>.wasm`).
    pub output: Option<PathBuf>,
    /// A WIT directory to generate bindings from instead of the runtime's own.
    pub wit: Option<PathBuf>,
}

/// Builds the plugin in `directory`; returns the component's path.
pub fn build_plugin(directory: &Path, options: &BuildOptions) -> Result<PathBuf, DevelopError> {
    let directory = directory.canonicalize().map_err(|source| DevelopError::Io { path: directory.to_owned(), error: source })?;
    let manifest = PluginManifestConfig::read(&directory)?;
    let name = &manifest.plugin.name;
    let output = match &options.output {
        Some(path) => std::path::absolute(path).map_err(|source| DevelopError::Io { path: path.clone(), error: source })?,
        None => directory.join(format!("{name}.wasm")),
    };
    if let Some(parent) = output.parent().filter(|parent| !parent.is_dir()) {
        return Err(DevelopError::Input(format!(
            "--output {}: the directory {} does not exist: create it first",
            output.display(),
            parent.display()
        )));
    }
    let wit = match &options.wit {
        Some(wit) => wit.canonicalize().map_err(|source| DevelopError::Io { path: wit.clone(), error: source })?,
        None => {
            let wit = directory.join("target/wit");
            write(&wit.join("operator.wit"), WIT)?;
            wit
        }
    };
    // Built beside the output, then renamed into place: a running pipeline watching the file
    // never sees half a component.
    let staging = output.with_file_name(format!(".{name}.wasm.building"));
    match manifest.plugin.language {
        Language::Rust => build_rust(&directory, name, &staging)?,
        Language::Python => build_python(&directory, &wit, &staging)?,
        Language::Js => build_js(&directory, &wit, &staging)?,
        Language::C => build_c(&directory, &wit, &staging)?,
    }
    if !staging.is_file() {
        return Err(DevelopError::NoOutput(output));
    }
    refuse_unless_operator(&staging, &output)?;
    std::fs::rename(&staging, &output).map_err(|source| DevelopError::Io { path: output.clone(), error: source })?;
    Ok(output)
}

fn build_rust(directory: &Path, name: &str, output: &Path) -> Result<(), DevelopError> {
    require_file(Path::new("/usr/bin/cargo"), "Debian's cargo for WebAssembly", DEBIAN_RUST)?;
    require_file(Path::new(COMPONENT_LD), "wasm-component-ld", DEBIAN_RUST)?;
    // One target directory for every plugin, so that std (built from source for WebAssembly)
    // and shared dependencies are compiled once per machine, not once per plugin.
    let shared = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/sluice/target"));
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).or(shared) {
        Some(target) => std::path::absolute(&target).map_err(|source| DevelopError::Io { path: target.clone(), error: source })?,
        None => directory.join("target"),
    };
    let mut cargo = Command::new("/usr/bin/cargo");
    cargo
        .current_dir(directory)
        // Debian's cargo with Debian's rustc, whatever rustup puts first on PATH.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTC", "/usr/bin/rustc")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--profile", "plugin", "--target", "wasm32-unknown-unknown"])
        .args(["-Zbuild-std=std,panic_abort", "--config"])
        .arg(format!("target.wasm32-unknown-unknown.linker=\"{COMPONENT_LD}\""));
    run(&mut cargo)?;
    let built = target.join("wasm32-unknown-unknown/plugin").join(format!("{}.wasm", name.replace('-', "_")));
    copy(&built, output)
}

fn build_python(directory: &Path, wit: &Path, output: &Path) -> Result<(), DevelopError> {
    let source = require_source(directory, "app.py", "Python")?;
    let componentize = componentize_py()?;
    let interpreter = componentize.with_file_name("python3");
    let mut command = Command::new(componentize);
    command.current_dir(directory).arg("-d").arg(wit).args(["-w", "operator", "componentize", "--stub-wasi", "app", "-o"]).arg(output);
    run_build(&mut command, &source, SyntaxCheck::Python { interpreter })
}

fn build_js(directory: &Path, wit: &Path, output: &Path) -> Result<(), DevelopError> {
    let source = require_source(directory, "app.js", "JavaScript")?;
    let componentize = componentize_js()?;
    let mut command = Command::new(componentize);
    command
        .current_dir(directory)
        .arg("app.js")
        .arg("--wit")
        .arg(wit)
        .args(["--world-name", "operator", "-d", "stdio", "random", "clocks", "http", "fetch-event", "-o"])
        .arg(output);
    run_build(&mut command, &source, SyntaxCheck::JavaScript)
}

fn build_c(directory: &Path, wit: &Path, output: &Path) -> Result<(), DevelopError> {
    require_command("clang-22", "clang 22 for WebAssembly", DEBIAN_C)?;
    require_file(Path::new("/usr/lib/wasm32-wasi/libc.a"), "wasi-libc", DEBIAN_C)?;
    require_file(Path::new(COMPONENT_LD), "wasm-component-ld", DEBIAN_C)?;
    let generated = directory.join("gen");
    let mut bindgen = Command::new(wit_bindgen()?);
    bindgen.arg("c").arg(wit).args(["--world", "operator", "--out-dir"]).arg(&generated);
    run(&mut bindgen)?;
    let mut sources = c_sources(directory)?;
    sources.push(generated.join("operator.c"));
    sources.push(generated.join("operator_component_type.o"));
    let mut clang = Command::new("clang-22");
    clang
        .current_dir(directory)
        // `wasm32-wasi`: Debian's wasi-libc lives in /usr/{include,lib}/wasm32-wasi.
        .args(["--target=wasm32-wasi", "--sysroot=/usr", "-Wno-deprecated", "-Wall", "-O2", "-mexec-model=reactor"])
        .args(["-Wl,--strip-all", &format!("-fuse-ld={COMPONENT_LD}"), "-o"])
        .arg(output)
        .args(sources);
    run(&mut clang)
}

/// Loads the built component as the runtime will, so that a component it would refuse (one
/// that uses the filesystem, say) fails the build with the reason instead of failing later.
fn refuse_unless_operator(staging: &Path, output: &Path) -> Result<(), DevelopError> {
    let engine = crate::wasm::WasmEngine::new().map_err(DevelopError::Refused)?;
    let bytes = std::fs::read(staging).map_err(|source| DevelopError::Io { path: staging.to_owned(), error: source })?;
    let checked = crate::wasm::Plugin::compile(&engine, output, &bytes).map(drop).map_err(DevelopError::Refused);
    if checked.is_err() {
        let _ = std::fs::remove_file(staging);
    }
    checked
}

/// The `*.c` files at the top of the plugin directory, in name order.
fn c_sources(directory: &Path) -> Result<Vec<PathBuf>, DevelopError> {
    let entries = std::fs::read_dir(directory).map_err(|source| DevelopError::Io { path: directory.to_owned(), error: source })?;
    let mut sources: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| path.extension().is_some_and(|e| e == "c")).collect();
    sources.sort();
    if sources.is_empty() {
        return Err(DevelopError::Input(format!("{}: no .c files to build", directory.display())));
    }
    Ok(sources)
}

/// Where pinned tools are installed.
pub fn tools_directory() -> Result<PathBuf, DevelopError> {
    if let Some(tools) = std::env::var_os("SLUICE_TOOLS") {
        return Ok(PathBuf::from(tools));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| DevelopError::MissingTool { tool: "a tools directory".into(), remedy: "set SLUICE_TOOLS (or HOME)".into() })?;
    Ok(PathBuf::from(home).join(".cache/sluice/tools"))
}

/// componentize-py in its own virtual environment, installed on first use.
fn componentize_py() -> Result<PathBuf, DevelopError> {
    let root = tools_directory()?.join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    let binary = root.join("bin/componentize-py");
    let _installing = install_lock(&root)?;
    if !binary.is_file() {
        let tool = format!("componentize-py {COMPONENTIZE_PY_VERSION}");
        tracing::info!("installing {tool}");
        install(&tool, Command::new("python3").args(["-m", "venv"]).arg(&root))?;
        install(
            &tool,
            Command::new(root.join("bin/pip")).args(["install", "--quiet", &format!("componentize-py=={COMPONENTIZE_PY_VERSION}")]),
        )?;
    }
    Ok(binary)
}

/// componentize-js from npm, installed on first use.
fn componentize_js() -> Result<PathBuf, DevelopError> {
    let root = tools_directory()?.join(format!("componentize-js-{COMPONENTIZE_JS_VERSION}"));
    let binary = root.join("node_modules/.bin/componentize-js");
    let _installing = install_lock(&root)?;
    if !binary.is_file() {
        std::fs::create_dir_all(&root).map_err(|source| DevelopError::Io { path: root.clone(), error: source })?;
        let package = format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION}");
        let mut npm = Command::new("npm");
        npm.current_dir(&root).args(["install", "--silent", "--no-audit", "--no-fund", "--save-exact", &package]);
        install(&format!("componentize-js {COMPONENTIZE_JS_VERSION} (needs Node.js and npm)"), &mut npm)?;
    }
    Ok(binary)
}

/// wit-bindgen's C generator, built with cargo on first use (~1 minute). Built unoptimised: it
/// compiles in a third of the time (1m13s against 3m43s on 2 cores) and writes the same files,
/// in 20 ms instead of 6.
fn wit_bindgen() -> Result<PathBuf, DevelopError> {
    let root = tools_directory()?.join(format!("wit-bindgen-{WIT_BINDGEN_VERSION}"));
    let binary = root.join("bin/wit-bindgen");
    let _installing = install_lock(&root)?;
    if !binary.is_file() {
        let tool = format!("wit-bindgen-cli {WIT_BINDGEN_VERSION}");
        tracing::info!("building {tool} once for this machine (about a minute)");
        let mut cargo = Command::new("cargo");
        cargo
            .env("CARGO_TARGET_DIR", root.join("build"))
            .args(["install", "wit-bindgen-cli", "--version", WIT_BINDGEN_VERSION, "--locked", "--quiet"])
            .args(["--debug", "--config", "profile.dev.debug=0", "--no-default-features", "--features", "c", "--root"])
            .arg(&root);
        install(&tool, &mut cargo)?;
        let _ = std::fs::remove_dir_all(root.join("build"));
    }
    Ok(binary)
}

/// An exclusive lock on installing the tool in `root`, held until dropped: two builds at once
/// (two terminals, a build script and an editor) install it once, not into each other.
fn install_lock(root: &Path) -> Result<std::fs::File, DevelopError> {
    let path = PathBuf::from(format!("{}.lock", root.display()));
    let tool = root.file_name().map_or_else(|| root.display().to_string(), |name| name.to_string_lossy().into_owned());
    let directory = root.parent().unwrap_or(root).display().to_string();
    let io = |source: std::io::Error| DevelopError::Install {
        tool: tool.clone(),
        reason: format!(
            "the tools directory {directory} (SLUICE_TOOLS, where tools are installed on first use) cannot be used: {}: {source}",
            path.display()
        ),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    lock.lock().map_err(io)?;
    Ok(lock)
}

/// Runs one step of installing `tool`; the caller says once that it installs it.
fn install(tool: &str, command: &mut Command) -> Result<(), DevelopError> {
    tracing::debug!("installing {tool}: {command:?}");
    run_to_success(command).map_err(|ending| DevelopError::Install { tool: tool.to_owned(), reason: format!("{command:?} {ending}") })
}

fn run(command: &mut Command) -> Result<(), DevelopError> {
    tracing::debug!("running {command:?}");
    run_to_success(command).map_err(|status| DevelopError::BuildFailed { command: format!("{command:?}"), status })
}

/// Runs `command`; on failure says how it ended (its exit status, or why it could not start).
fn run_to_success(command: &mut Command) -> Result<(), String> {
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("exited with {status}")),
        Err(error) => Err(format!("could not start: {error}")),
    }
}

fn require_file(path: &Path, tool: &str, packages: &str) -> Result<(), DevelopError> {
    if path.exists() {
        return Ok(());
    }
    Err(DevelopError::MissingTool { tool: format!("{tool} ({})", path.display()), remedy: format!("apt-get install {packages}") })
}

fn require_command(program: &str, tool: &str, packages: &str) -> Result<(), DevelopError> {
    match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(()),
        _ => Err(DevelopError::MissingTool { tool: format!("{tool} ({program})"), remedy: format!("apt-get install {packages}") }),
    }
}

fn copy(from: &Path, to: &Path) -> Result<(), DevelopError> {
    if !from.is_file() {
        return Err(DevelopError::NoOutput(from.to_owned()));
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|source| DevelopError::Io { path: to.to_owned(), error: source })
}
