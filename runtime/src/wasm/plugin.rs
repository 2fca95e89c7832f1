//! Plugins: component files compiled once, type-checked against the operator world, keyed by digest.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::bindings::OperatorPre;
use super::engine::WasmEngine;
use super::host::HostState;
use crate::bounded_read::{BoundedReadError, read_bounded};

/// Why a plugin cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {error}")]
    Read { path: PathBuf, error: BoundedReadError },
    #[error("cannot read granted file {path}: {error}")]
    GrantedFile { path: PathBuf, error: BoundedReadError },
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    NotAComponent { path: PathBuf, reason: String },
    #[error("{path} does not implement the world sluice:plugin/operator@0.4.0: {reason}")]
    WrongWorld { path: PathBuf, reason: String },
    #[error(
        "{path} was built against sluice:plugin@{found}, but this Sluice runs operators of sluice:plugin@0.4.0: rebuild it \
         against this release's WIT (`sluice plugin build`, or the Rust SDK of this release)"
    )]
    OtherVersion { path: PathBuf, found: String },
    #[error(
        "{path} uses {capabilities} (it imports {interfaces}), which operators do not get: an operator sees only its records \
         and the files granted to it in the pipeline file (`files = {{ name = \"path\" }}`, whose contents reach `init`); \
         remove those calls (in C, e.g. fopen, getenv, exit; in Rust, std::fs, std::env, std::process)"
    )]
    SystemAccess { path: PathBuf, capabilities: String, interfaces: String },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

impl PluginError {
    pub(super) fn engine(error: wasmtime::Error) -> PluginError {
        PluginError::Engine(format!("{error:#}"))
    }
}

/// The SHA-256 of a plugin file: the identity of a plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The digest in lowercase hexadecimal, without the `sha256:` prefix.
    /// The digest whose bytes are `bytes` (a pin written in a pipeline file).
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// A compiled, type-checked plugin version, ready to instantiate many times.
pub struct Plugin {
    path: PathBuf,
    digest: Digest,
    size: usize,
    pub(super) pre: OperatorPre<HostState>,
    pub(super) engine: WasmEngine,
}

impl Plugin {
    /// Compiles `bytes` and checks that it is an operator component.
    pub fn compile(engine: &WasmEngine, path: &Path, bytes: &[u8]) -> Result<Plugin, PluginError> {
        not_webassembly(path, bytes)?;
        let digest = Digest::of(bytes);
        let component = super::compiled_cache::compile_component(engine.engine(), digest, bytes)
            .map_err(|error| PluginError::NotAComponent { path: path.to_owned(), reason: root_cause(&error) })?;
        let wrong_world = |error: wasmtime::Error| match imported_plugin_version(engine, &component) {
            Some(found) if found != WIT_VERSION => PluginError::OtherVersion { path: path.to_owned(), found },
            _ => system_access(engine, &component, path)
                .unwrap_or_else(|| PluginError::WrongWorld { path: path.to_owned(), reason: root_cause(&error) }),
        };
        let instance_pre = engine.linker().instantiate_pre(&component).map_err(wrong_world)?;
        let pre = OperatorPre::new(instance_pre).map_err(wrong_world)?;
        Ok(Plugin { path: path.to_owned(), digest, size: bytes.len(), pre, engine: engine.clone() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Size of the component file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// How many compiled plugins the registry holds before it forgets those nothing uses.
const KEPT_UNUSED_PLUGINS: usize = 32;

/// The largest plugin component read from a file or uploaded through the admin API.
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// The bytes of the plugin component file at `path` (a regular file of at most
/// [`MAX_PLUGIN_BYTES`]).
pub fn read_plugin_file(path: &Path) -> Result<Vec<u8>, PluginError> {
    read_bounded(path, MAX_PLUGIN_BYTES).map_err(|error| PluginError::Read { path: path.to_owned(), error })
}

/// The digest of the file at `path` (`sha256:…`), when it is WebAssembly (its magic number)
/// that can be read whole within the size a plugin may have: how the swap history names a file
/// it refused. Other files get none: the API would otherwise tell the digest of any file the
/// process can read.
pub fn file_digest(path: &Path) -> Option<String> {
    // A regular file only: opening a FIFO would wait for a writer.
    std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file)?;
    // The magic number first: another file is not read further.
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut std::fs::File::open(path).ok()?, &mut magic).ok()?;
    if &magic != b"\0asm" {
        return None;
    }
    let bytes = read_plugin_file(path).ok()?;
    Some(Digest::of(&bytes).to_string())
}

/// Compiled plugins by digest: a file loaded twice, or by two operators, is compiled once.
#[derive(Clone)]
pub struct PluginRegistry {
    engine: WasmEngine,
    plugins: Arc<Mutex<HashMap<Digest, Arc<Plugin>>>>,
}

impl PluginRegistry {
    pub fn new(engine: WasmEngine) -> PluginRegistry {
        PluginRegistry { engine, plugins: Arc::default() }
    }

    /// The plugin in `path`, compiled unless a plugin with the same digest already is.
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let bytes = read_plugin_file(path)?;
        self.load_bytes(path, &bytes)
    }

    /// The plugin in `bytes` (uploaded, say), named `origin` in messages.
    pub fn load_bytes(&self, origin: &Path, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        let path = origin;
        let digest = Digest::of(bytes);
        if let Some(plugin) = self.plugins.lock().ok().and_then(|plugins| plugins.get(&digest).cloned()) {
            return Ok(plugin);
        }
        let plugin = Arc::new(Plugin::compile(&self.engine, path, bytes)?);
        if let Ok(mut plugins) = self.plugins.lock() {
            // Past a few dozen, the plugins no operator, swap or check holds any more (uploads
            // refused, versions swapped out and off the rollback stack) are forgotten, so that
            // uploads do not pile up compiled code; loading one again finds it in the compiled
            // cache on disk. Below that, they stay (`validate` then `run` compile once).
            if plugins.len() >= KEPT_UNUSED_PLUGINS {
                plugins.retain(|_, plugin| Arc::strong_count(plugin) > 1);
            }
            plugins.insert(digest, plugin.clone());
        }
        Ok(plugin)
    }

    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }
}

/// The version of the WIT package `sluice:plugin` that operators implement.
pub const WIT_VERSION: &str = "0.4.0";

/// The version of `sluice:plugin` a component imports its host interface from, if any: a
/// component built for another version is named as such, not as "another world".
fn imported_plugin_version(engine: &WasmEngine, component: &wasmtime::component::Component) -> Option<String> {
    let engine = engine.engine();
    component.component_type().imports(engine).find_map(|(name, _)| {
        name.strip_prefix("sluice:plugin/").and_then(|rest| rest.split_once('@')).map(|(_, version)| version.to_owned())
    })
}

/// The refusal of a component that imports WASI interfaces (the filesystem, the environment,
/// sockets...), which the runtime does not provide, in words that name what it tried to use.
fn system_access(engine: &WasmEngine, component: &wasmtime::component::Component, path: &Path) -> Option<PluginError> {
    let wasi: Vec<String> = component
        .component_type()
        .imports(engine.engine())
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with("wasi:"))
        .collect();
    if wasi.is_empty() {
        return None;
    }
    // The most telling first: the filesystem before the streams it needs.
    let mut capabilities: Vec<&str> =
        CAPABILITIES.iter().map(|(_, words)| *words).filter(|words| wasi.iter().any(|name| capability_of(name) == *words)).collect();
    capabilities.dedup();
    Some(PluginError::SystemAccess { path: path.to_owned(), capabilities: capabilities.join(", "), interfaces: wasi.join(", ") })
}

/// WASI interfaces (by prefix) and what they give access to, in words, most telling first.
const CAPABILITIES: &[(&str, &str)] = &[
    ("wasi:filesystem/", "the filesystem"),
    ("wasi:sockets/", "the network"),
    ("wasi:http/", "HTTP"),
    ("wasi:cli/environment", "environment variables"),
    ("wasi:cli/exit", "process exit"),
    ("wasi:cli/", "standard input and output"),
    ("wasi:clocks/", "clocks"),
    ("wasi:random/", "random numbers"),
    ("wasi:io/", "WASI streams"),
    ("wasi:", "system interfaces"),
];

/// What a WASI interface gives access to, in words.
fn capability_of(interface: &str) -> &'static str {
    CAPABILITIES.iter().find(|(prefix, _)| interface.starts_with(prefix)).map_or("system interfaces", |(_, words)| words)
}

/// Refuses a file that is not a WebAssembly component at all (a text file, a native library,
/// a core module) in plain words: the parser's own report lists the magic bytes it expected,
/// one per line, or speaks of its component parser.
pub(super) fn not_webassembly(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    /// The version of a core module (a component's is `0d 00 01 00`).
    const CORE_MODULE: &[u8] = &[1, 0, 0, 0];
    if bytes.starts_with(MAGIC) && bytes.get(4..8) == Some(CORE_MODULE) {
        let reason = "it is a core WebAssembly module, not a component: build it with `sluice plugin build`, or wrap it \
                      with `wasm-tools component new`"
            .to_owned();
        return Err(PluginError::NotAComponent { path: path.to_owned(), reason });
    }
    if bytes.starts_with(MAGIC) {
        return Ok(());
    }
    let reason = match bytes.len() {
        0 => "the file is empty".to_owned(),
        length if length < MAGIC.len() => format!("the file holds only {length} byte(s)"),
        _ => "it does not start with the WebAssembly magic bytes \\0asm (is it a text file, or a native library?)".to_owned(),
    };
    Err(PluginError::NotAComponent { path: path.to_owned(), reason })
}

/// The messages of a wasmtime error's chain, outermost first.
pub(super) fn root_cause(error: &wasmtime::Error) -> String {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webassembly_files_are_named_by_their_digest() {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let secret = dir.path().join("shadow");
        std::fs::write(&secret, "root:secret\n").expect("written");
        assert_eq!(file_digest(&secret), None, "the digest of any readable file would leak through the swap history");
        let module = dir.path().join("broken.wasm");
        std::fs::write(&module, b"\0asm\x0d\x00\x01\x00garbage").expect("written");
        assert!(file_digest(&module).is_some_and(|digest| digest.starts_with("sha256:")));
        assert_eq!(file_digest(dir.path()), None, "not a regular file");
    }
}
