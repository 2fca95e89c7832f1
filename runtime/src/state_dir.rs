//! Local state directories: the checkpoints of file and generator sources, one file per
//! source, replaced atomically; a lock keeps two processes out of one pipeline's directory.
//!
//! Layout: `<state_dir>/<pipeline>/<source>.checkpoint.json` (the same encoding as the Kafka
//! checkpoint topic), `<source>.input` (what the source read when the checkpoint began, so
//! that a checkpoint is never applied to other input) and `<state_dir>/<pipeline>/lock`.

use std::fs::{self, File, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pipeline::{CheckpointTarget, TaskCheckpoint};

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory {path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("state directory {path} is in use by another sluice process (lock file {path}/lock): one process per pipeline and state_dir")]
    Locked { path: String },
    #[error("checkpoint {path} is unreadable ({problem}): remove it to start source \"{source_name}\" from the beginning")]
    Unreadable { path: String, source_name: String, problem: String },
    #[error(
        "source \"{source_name}\" now reads other input than its checkpoint {path} was taken on (then: {then}; now: {now}): \
         remove the checkpoint to start it from the beginning, or restore the input"
    )]
    InputChanged { source_name: String, path: String, then: String, now: String },
}

/// One pipeline's directory of checkpoints, locked while it is open.
#[derive(Debug)]
pub struct StateDirectory {
    root: PathBuf,
    /// Held (locked) for as long as any task may still write here.
    _lock: File,
}

impl StateDirectory {
    /// Creates (if needed) and locks `<state_dir>/<pipeline>`.
    pub fn open(state_dir: &Path, pipeline: &str) -> Result<Arc<StateDirectory>, StateDirError> {
        let root = state_dir.join(pipeline);
        let failed = |error| StateDirError::Io { path: root.display().to_string(), error };
        fs::create_dir_all(&root).map_err(failed)?;
        let lock = File::options().create(true).truncate(false).write(true).open(root.join("lock")).map_err(failed)?;
        match lock.try_lock() {
            Ok(()) => Ok(Arc::new(StateDirectory { root, _lock: lock })),
            Err(TryLockError::WouldBlock) => Err(StateDirError::Locked { path: root.display().to_string() }),
            Err(TryLockError::Error(error)) => Err(failed(error)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The latest checkpoint of `source`, if it has one.
    pub fn load(&self, source: &str) -> Result<Option<TaskCheckpoint>, StateDirError> {
        let path = self.checkpoint_path(source);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StateDirError::Io { path: path.display().to_string(), error }),
        };
        TaskCheckpoint::decode(&bytes).map(Some).map_err(|problem| StateDirError::Unreadable {
            path: path.display().to_string(),
            source_name: source.to_owned(),
            problem,
        })
    }

    /// Makes sure a checkpoint of `source` (if any) was taken on the same input, described by
    /// `input`; without a checkpoint, records `input` for the checkpoints to come.
    pub fn check_input(&self, source: &str, input: &str, has_checkpoint: bool) -> Result<(), StateDirError> {
        let path = self.root.join(format!("{source}.input"));
        let failed = |error| StateDirError::Io { path: path.display().to_string(), error };
        match fs::read_to_string(&path) {
            Ok(then) if has_checkpoint && then != input => Err(StateDirError::InputChanged {
                source_name: source.to_owned(),
                path: self.checkpoint_path(source).display().to_string(),
                then,
                now: input.to_owned(),
            }),
            Ok(then) if then == input => Ok(()),
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(failed(error)),
            _ => replace_durably(&path, input.as_bytes()).and_then(|()| self.sync()).map_err(failed),
        }
    }

    /// Where the task of `source` saves its checkpoints.
    pub fn target(self: &Arc<Self>, source: &str) -> LocalCheckpoints {
        LocalCheckpoints { directory: self.clone(), path: self.checkpoint_path(source) }
    }

    fn checkpoint_path(&self, source: &str) -> PathBuf {
        self.root.join(format!("{source}.checkpoint.json"))
    }

    /// Makes renames and removals in the directory durable.
    fn sync(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }
}

/// The checkpoint file of one source's task.
pub struct LocalCheckpoints {
    directory: Arc<StateDirectory>,
    path: PathBuf,
}

impl LocalCheckpoints {
    fn replace(&self, contents: &[u8]) -> io::Result<()> {
        replace_durably(&self.path, contents)?;
        self.directory.sync()
    }
}

/// Writes a temporary file, makes it durable, then renames it over `path`: a crash at any
/// moment leaves the old contents or the new, never a mix.
fn replace_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

impl CheckpointTarget for LocalCheckpoints {
    fn save(&mut self, checkpoint: &TaskCheckpoint) -> Result<(), String> {
        self.replace(&checkpoint.encode()).map_err(|error| format!("cannot write {}: {error}", self.path.display()))
    }

    fn finished(&mut self) -> Result<(), String> {
        match fs::remove_file(&self.path) {
            Ok(()) => self.directory.sync().map_err(|error| format!("cannot sync {}: {error}", self.directory.path().display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(format!("cannot remove {}: {error}", self.path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::OperatorCheckpoint;
    use crate::wasm::State;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-state-dir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn checkpoints_are_saved_loaded_and_removed_when_finished() {
        let dir = scratch("round-trip");
        let directory = StateDirectory::open(&dir, "pipe").unwrap();
        assert_eq!(directory.load("events").unwrap(), None);
        let checkpoint = TaskCheckpoint {
            next_position: 7,
            watermark: Some(1_000),
            operators: vec![OperatorCheckpoint { name: "count".into(), digest: "d".into(), state: State { version: 1, bytes: vec![9] } }],
        };
        let mut target = directory.target("events");
        target.save(&checkpoint).unwrap();
        assert_eq!(directory.load("events").unwrap(), Some(checkpoint));
        assert_eq!(directory.load("other").unwrap(), None);
        target.finished().unwrap();
        assert_eq!(directory.load("events").unwrap(), None);
        drop((target, directory));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_opener_is_refused_until_the_first_is_gone() {
        let dir = scratch("lock");
        let first = StateDirectory::open(&dir, "pipe").unwrap();
        assert!(matches!(StateDirectory::open(&dir, "pipe"), Err(StateDirError::Locked { .. })));
        assert!(StateDirectory::open(&dir, "another").is_ok());
        drop(first);
        assert!(StateDirectory::open(&dir, "pipe").is_ok());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_checkpoint_is_only_used_on_the_input_it_was_taken_on() {
        let dir = scratch("input");
        let directory = StateDirectory::open(&dir, "pipe").unwrap();
        directory.check_input("events", "file a.jsonl", false).unwrap();
        directory.check_input("events", "file a.jsonl", true).unwrap();
        let error = directory.check_input("events", "file b.jsonl", true).unwrap_err().to_string();
        assert!(error.contains("then: file a.jsonl; now: file b.jsonl") && error.contains("remove the checkpoint"), "{error}");
        directory.check_input("events", "file b.jsonl", false).unwrap();
        directory.check_input("events", "file b.jsonl", true).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_checkpoint_is_named() {
        let dir = scratch("unreadable");
        let directory = StateDirectory::open(&dir, "pipe").unwrap();
        fs::write(directory.path().join("events.checkpoint.json"), b"not json").unwrap();
        let error = directory.load("events").unwrap_err().to_string();
        assert!(error.contains("events.checkpoint.json") && error.contains("remove it"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
