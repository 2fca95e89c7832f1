//! Compiled plugins on disk: a component is compiled once per machine and engine configuration,
//! so Python and JavaScript components (12–18 MB, seconds to compile) start in milliseconds.
//!
//! Files are `<sha256 of the component>-<engine compatibility hash>.cwasm` in
//! `$SLUICE_COMPILED_CACHE` (default `~/.cache/sluice/compiled`; `off` disables the cache).
//! Loading compiled code is trusted code loading: the directory must be absolute, this user's
//! and private (mode 700; it is created so), files must be this user's, and they appear only by
//! an atomic rename of what this code compiled; otherwise the cache is not used. Anything
//! unreadable or incompatible is ignored and compiled again.

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
    if let Err(reason) = private_directory(&directory) {
        // Said once a process: every compile (each swap) would say it again.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| tracing::warn!("not using the compiled-plugin cache {}: {reason}", directory.display()));
        return Component::from_binary(engine, bytes);
    }
    let path = directory.join(format!("{}-{:016x}.cwasm", digest.hex(), compatibility(engine)));
    if owned_by_us(&path) {
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

/// The cache directory must be absolute and, if it exists, a real directory of this user that
/// nobody else can write to (or read): compiled code found there runs outside the sandbox.
fn private_directory(directory: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    if !directory.is_absolute() {
        return Err("the path is not absolute".into());
    }
    let metadata = match std::fs::symlink_metadata(directory) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    match effective_user() {
        _ if !metadata.is_dir() => Err("it is not a directory".into()),
        Some(user) if metadata.uid() != user => Err("it belongs to another user".into()),
        None => Err("cannot tell which user this process runs as".into()),
        _ if metadata.mode() & 0o077 != 0 => Err("other users can access it (make it mode 700)".into()),
        _ => Ok(()),
    }
}

/// A regular file (not a link) owned by this process's user.
fn owned_by_us(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_file() && Some(metadata.uid()) == effective_user())
}

/// Linux: `/proc/self` belongs to the process's effective user.
fn effective_user() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|metadata| metadata.uid())
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
        let stale_temporary = entry.file_name().to_string_lossy().ends_with(".tmp")
            && metadata.modified().ok().and_then(|time| time.elapsed().ok()).is_some_and(|age| age.as_secs() > 3600);
        if stale_temporary {
            let _ = std::fs::remove_file(entry.path());
        } else if metadata.is_file() && entry.path().extension().is_some_and(|extension| extension == "cwasm") {
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
    fn only_private_absolute_directories_of_this_user_are_trusted() {
        use std::os::unix::fs::PermissionsExt as _;
        let directory = std::env::temp_dir().join(format!("sluice-compiled-trust-test-{}", std::process::id()));
        assert!(super::private_directory(std::path::Path::new("relative/cache")).is_err());
        assert!(super::private_directory(&directory).is_ok(), "a directory still to be created is fine");
        store(&directory, &directory.join("a.cwasm"), &[1]).expect("stored");
        assert!(super::private_directory(&directory).is_ok());
        assert!(super::owned_by_us(&directory.join("a.cwasm")));
        std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(super::private_directory(&directory).unwrap_err().contains("other users"));
        let _ = std::fs::remove_dir_all(directory);
    }

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
