//! Compiled plugins on disk: a component is compiled once per machine and engine configuration,
//! so Python and JavaScript components (12–18 MB, seconds to compile) start in milliseconds.
//!
//! Files are `<sha256 of the component>-<engine compatibility hash>.cwasm` in
//! `$SLUICE_COMPILED_CACHE` (default `~/.cache/sluice/compiled`; `off` disables the cache).
//! Loading compiled code is trusted code loading: the directory is created private to the user
//! and files appear only by an atomic rename of what this code compiled. Anything unreadable or
//! incompatible is ignored and compiled again.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::plugin::Digest;

/// Compiles `bytes`, or loads the result of an earlier compile of the same bytes.
pub(super) fn compile_component(engine: &Engine, digest: Digest, bytes: &[u8]) -> wasmtime::Result<Component> {
    let Some(directory) = cache_directory() else {
        return Component::from_binary(engine, bytes);
    };
    let path = directory.join(format!("{}-{:016x}.cwasm", digest.hex(), compatibility(engine)));
    if path.is_file() {
        // SAFETY: the file was written by `store` below from wasmtime's own output for this
        // engine configuration (see the module documentation); wasmtime still checks that its
        // header matches this engine and refuses it otherwise.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(error) => tracing::debug!("ignoring cached {}: {error:#}", path.display()),
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Err(error) = store(&directory, &path, &compiled).and_then(|()| prune(&directory, CACHE_LIMIT)) {
        tracing::debug!("cannot cache the compiled plugin in {}: {error}", path.display());
    }
    // SAFETY: `compiled` was produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// The cache keeps its newest files within this many bytes.
const CACHE_LIMIT: u64 = 2 << 30;

fn cache_directory() -> Option<PathBuf> {
    match std::env::var_os("SLUICE_COMPILED_CACHE") {
        Some(value) if value == "off" => None,
        Some(value) => Some(PathBuf::from(value)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/sluice/compiled")),
    }
}

fn compatibility(engine: &Engine) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// Writes to a private temporary file and renames it into place, so readers never see half a file.
fn store(directory: &std::path::Path, path: &std::path::Path, compiled: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(directory)?;
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sequence = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = directory.join(format!(".{}.{sequence}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.write_all(compiled)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Deletes the oldest compiled files until the rest fit in `limit` bytes.
fn prune(directory: &std::path::Path, limit: u64) -> std::io::Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        if metadata.is_file() && entry.path().extension().is_some_and(|extension| extension == "cwasm") {
            files.push((metadata.modified()?, metadata.len(), entry.path()));
        }
    }
    files.sort_by_key(|file| std::cmp::Reverse(file.0));
    let mut kept = 0;
    for (_, length, path) in files {
        kept += length;
        if kept > limit {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{prune, store};

    #[test]
    fn stored_files_appear_whole_and_the_oldest_go_first_beyond_the_limit() {
        let directory = std::env::temp_dir().join(format!("sluice-compiled-cache-test-{}", std::process::id()));
        for (index, name) in ["old.cwasm", "middle.cwasm", "new.cwasm"].iter().enumerate() {
            store(&directory, &directory.join(name), &[7; 100]).expect("stored");
            let time = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + index as u64);
            std::fs::File::options().write(true).open(directory.join(name)).and_then(|file| file.set_modified(time)).expect("dated");
        }
        prune(&directory, 250).expect("pruned");
        let mut left: Vec<String> = std::fs::read_dir(&directory)
            .expect("listed")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["middle.cwasm", "new.cwasm"]);
        let _ = std::fs::remove_dir_all(directory);
    }
}
