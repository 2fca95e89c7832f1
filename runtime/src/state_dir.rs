//! Local state directories: the checkpoints of a pipeline of file and generator sources, one
//! file per pipeline holding a whole checkpoint round (every source share's position, every
//! task's operators and event time), replaced atomically; a lock keeps two processes out.
//!
//! Layout: `<state_dir>/<pipeline>/checkpoint.json` and `<state_dir>/<pipeline>/lock`.

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::pipeline::TaskCheckpoint;

/// Version of the stored form.
const FORMAT: u32 = 2;

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state directory {path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("state directory {path} is in use by another sluice process (lock file {path}/lock): one process per pipeline and state_dir")]
    Locked { path: String },
    #[error("checkpoint {path} is unreadable ({problem}): remove it to start the pipeline from the beginning")]
    Unreadable { path: String, problem: String },
    #[error(
        "state directory {path} holds checkpoints written by an earlier version of Sluice (one file per source): they cannot be \
         resumed by this version; remove {path}/*.checkpoint.json to start from the beginning"
    )]
    OlderFormat { path: String },
    #[error(
        "source \"{source_name}\" now reads other input than the checkpoint {path} was taken on (then: {then}; now: {now}): \
         remove the checkpoint to start from the beginning, or restore the input"
    )]
    InputChanged { source_name: String, path: String, then: String, now: String },
    #[error(
        "the checkpoint {path} was taken on another graph or parallelism (then: {then}; now: {now}): it holds the state of \
         each task's operators as they were, which cannot be split or merged between other tasks, nor given to operators \
         added, removed, renamed or moved; run with the graph and settings it was taken with (and change them once the \
         run has read its input to the end), or remove it to start from the beginning"
    )]
    LayoutChanged { path: String, then: String, now: String },
}

/// Where a source share stood when a round was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharePosition {
    /// The position of the share's next record (line or sequence number).
    pub next_position: u64,
    pub watermark: Option<i64>,
}

/// One saved checkpoint round of a local pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineCheckpoint {
    /// What it was taken on: every task and its operators (another graph or parallelism
    /// cannot use it).
    pub layout: String,
    /// What each source read then (file and first line, or generator settings).
    pub inputs: BTreeMap<String, String>,
    pub shares: BTreeMap<String, SharePosition>,
    /// Every task still running then; a task that had finished has no state left.
    pub tasks: BTreeMap<String, TaskCheckpoint>,
    /// The length of each file sink's output then, by sink name: a resumed run cuts the file
    /// back to it, and writes again what came after.
    pub outputs: BTreeMap<String, u64>,
    /// The file each of those lengths is of, by sink name: a sink whose path was changed since
    /// is not cut at another file's length.
    pub output_paths: BTreeMap<String, PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    format: u32,
    layout: String,
    inputs: BTreeMap<String, String>,
    shares: BTreeMap<String, SharePosition>,
    tasks: BTreeMap<String, serde_json::Value>,
    /// Absent from checkpoints written before output lengths were recorded: their files are
    /// continued after their last complete line.
    #[serde(default)]
    outputs: BTreeMap<String, u64>,
    /// Absent from checkpoints written before output paths were recorded.
    #[serde(default)]
    output_paths: BTreeMap<String, PathBuf>,
}

impl PipelineCheckpoint {
    pub fn encode(&self) -> Vec<u8> {
        let tasks = self
            .tasks
            .iter()
            .map(|(task, checkpoint)| (task.clone(), serde_json::from_slice(&checkpoint.encode()).unwrap_or_default()))
            .collect();
        let stored = StoredCheckpoint {
            format: FORMAT,
            layout: self.layout.clone(),
            inputs: self.inputs.clone(),
            shares: self.shares.clone(),
            tasks,
            outputs: self.outputs.clone(),
            output_paths: self.output_paths.clone(),
        };
        // Strings, numbers and JSON values always serialise.
        serde_json::to_vec_pretty(&stored).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<PipelineCheckpoint, String> {
        let stored: StoredCheckpoint = serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        if stored.format != FORMAT {
            return Err(format!("format {} is not {FORMAT}: written by another version of Sluice", stored.format));
        }
        let tasks = stored
            .tasks
            .into_iter()
            .map(|(task, value)| {
                let checkpoint =
                    TaskCheckpoint::decode(value.to_string().as_bytes()).map_err(|problem| format!("task {task}: {problem}"))?;
                Ok((task, checkpoint))
            })
            .collect::<Result<_, String>>()?;
        Ok(PipelineCheckpoint {
            layout: stored.layout,
            inputs: stored.inputs,
            shares: stored.shares,
            tasks,
            outputs: stored.outputs,
            output_paths: stored.output_paths,
        })
    }
}

/// What a run that reads its inputs from their start records until its first checkpoint.
#[derive(Serialize, Deserialize)]
struct RunStart {
    dead_letter_length: u64,
}

/// One pipeline's directory, locked while it is open.
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

    fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint.json")
    }

    /// The latest checkpoint, if there is one; checked against what the pipeline reads now
    /// (`inputs`, or as older checkpoints described the same input: `older_inputs`) and how it
    /// runs (`layout`).
    pub fn load(
        &self,
        layout: &str,
        inputs: &BTreeMap<String, String>,
        older_inputs: &BTreeMap<String, String>,
    ) -> Result<Option<PipelineCheckpoint>, StateDirError> {
        self.refuse_older_format()?;
        let path = self.checkpoint_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StateDirError::Io { path: path.display().to_string(), error }),
        };
        let checkpoint = PipelineCheckpoint::decode(&bytes)
            .map_err(|problem| StateDirError::Unreadable { path: path.display().to_string(), problem })?;
        for (source, now) in inputs {
            let same = |then: &&String| *then == now || older_inputs.get(source) == Some(*then);
            if let Some(then) = checkpoint.inputs.get(source).filter(|then| !same(then)) {
                return Err(StateDirError::InputChanged {
                    source_name: source.clone(),
                    path: path.display().to_string(),
                    then: then.clone(),
                    now: now.clone(),
                });
            }
        }
        if checkpoint.layout != layout {
            let (then, now) = (checkpoint.layout.clone(), layout.to_owned());
            return Err(StateDirError::LayoutChanged { path: path.display().to_string(), then, now });
        }
        Ok(Some(checkpoint))
    }

    /// Per-source checkpoint files of the previous layout cannot be resumed: say so rather
    /// than silently starting over.
    fn refuse_older_format(&self) -> Result<(), StateDirError> {
        let entries = fs::read_dir(&self.root).map_err(|error| StateDirError::Io { path: self.root.display().to_string(), error })?;
        let older = entries.flatten().any(|entry| entry.file_name().to_string_lossy().ends_with(".checkpoint.json"));
        if older { Err(StateDirError::OlderFormat { path: self.root.display().to_string() }) } else { Ok(()) }
    }

    /// Saves a round: write, sync, rename over the last one, sync the directory. The run's
    /// start is then the checkpoint's: its record goes.
    pub fn save(&self, checkpoint: &PipelineCheckpoint) -> Result<(), String> {
        let path = self.checkpoint_path();
        replace_durably(&path, &checkpoint.encode())
            .and_then(|()| self.sync())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        self.remove_file(&self.run_start_path())
    }

    /// The input was read to its end and every output is durable: the next run starts afresh.
    pub fn remove(&self) -> Result<(), String> {
        self.remove_file(&self.checkpoint_path())?;
        self.remove_file(&self.run_start_path())
    }

    fn remove_file(&self, path: &Path) -> Result<(), String> {
        match fs::remove_file(path) {
            Ok(()) => self.sync().map_err(|error| format!("cannot sync {}: {error}", self.root.display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(format!("cannot remove {}: {error}", path.display())),
        }
    }

    fn run_start_path(&self) -> PathBuf {
        self.root.join("run-start.json")
    }

    /// The length the dead-letter file had when the run that reads the inputs from their
    /// start began: recorded then (`length_now`), or, when a run that began so stopped before
    /// its first checkpoint, the length recorded by that run, which this one cuts the file back
    /// to before it writes the same dead letters again.
    pub fn dead_letters_at_run_start(&self, length_now: u64) -> Result<u64, String> {
        let path = self.run_start_path();
        let recorded = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<RunStart>(&bytes).ok().map(|start| start.dead_letter_length),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        if let Some(length) = recorded {
            return Ok(length);
        }
        let contents = serde_json::to_vec(&RunStart { dead_letter_length: length_now }).map_err(|error| error.to_string())?;
        replace_durably(&path, &contents)
            .and_then(|()| self.sync())
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        Ok(length_now)
    }

    /// Makes renames and removals in the directory durable.
    fn sync(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }
}

/// Writes a temporary file, makes it durable, then renames it over `path`: a crash at any
/// moment leaves the old contents or the new, never a mix. A write that fails (a full disk, say)
/// removes its temporary file rather than leave it beside the checkpoint.
fn replace_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = write_durably(&temporary, contents).and_then(|()| fs::rename(&temporary, path));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn write_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
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

    fn round() -> PipelineCheckpoint {
        let task = TaskCheckpoint {
            watermark: Some(1_000),
            upstream_watermarks: vec![Some(1_000)],
            operators: vec![OperatorCheckpoint { name: "count".into(), digest: "d".into(), state: State { version: 1, bytes: vec![9] } }],
            ..TaskCheckpoint::default()
        };
        PipelineCheckpoint {
            layout: "clicks#0: count".into(),
            inputs: BTreeMap::from([("clicks".into(), "file a.jsonl".into())]),
            shares: BTreeMap::from([("clicks".into(), SharePosition { next_position: 7, watermark: Some(1_000) })]),
            tasks: BTreeMap::from([("clicks#0".into(), task)]),
            outputs: BTreeMap::from([("file".into(), 1_234)]),
            output_paths: BTreeMap::from([("file".into(), PathBuf::from("out/file.jsonl"))]),
        }
    }

    #[test]
    fn a_round_is_saved_loaded_and_removed() {
        let dir = scratch("round-trip");
        let directory = StateDirectory::open(&dir, "pipe").unwrap();
        let checkpoint = round();
        assert_eq!(directory.load(&checkpoint.layout, &checkpoint.inputs, &BTreeMap::new()).unwrap(), None);
        directory.save(&checkpoint).unwrap();
        assert_eq!(directory.load(&checkpoint.layout, &checkpoint.inputs, &BTreeMap::new()).unwrap(), Some(checkpoint.clone()));
        directory.remove().unwrap();
        assert_eq!(directory.load(&checkpoint.layout, &checkpoint.inputs, &BTreeMap::new()).unwrap(), None);
        drop(directory);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_replacement_leaves_the_old_contents_and_no_temporary_file() {
        let dir = scratch("failed-replacement");
        // A directory where the file should be: the rename fails, as it did in the field.
        let target = dir.join("checkpoint.json");
        fs::create_dir_all(target.join("inside")).unwrap();
        assert!(replace_durably(&target, b"{}").is_err());
        assert!(target.join("inside").is_dir());
        assert!(!dir.join("checkpoint.json.tmp").exists());
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
    fn a_checkpoint_is_only_used_on_its_input_and_layout() {
        let dir = scratch("input");
        let directory = StateDirectory::open(&dir, "pipe").unwrap();
        let checkpoint = round();
        directory.save(&checkpoint).unwrap();
        let other_input = BTreeMap::from([("clicks".into(), "file b.jsonl".into())]);
        let error = directory.load(&checkpoint.layout, &other_input, &BTreeMap::new()).unwrap_err().to_string();
        assert!(error.contains("then: file a.jsonl; now: file b.jsonl") && error.contains("remove the checkpoint"), "{error}");
        let error = directory.load("clicks#0: count; clicks#1: count", &checkpoint.inputs, &BTreeMap::new()).unwrap_err().to_string();
        assert!(error.contains("another graph or parallelism"), "{error}");
        let older = BTreeMap::from([("clicks".into(), "file a.jsonl".into())]);
        let described_anew = BTreeMap::from([("clicks".into(), "file a.jsonl, said otherwise".into())]);
        assert!(directory.load(&checkpoint.layout, &described_anew, &older).unwrap().is_some(), "an older description still matches");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unreadable_and_older_checkpoints_are_named() {
        let dir = scratch("unreadable");
        let directory = StateDirectory::open(&dir, "pipe").unwrap();
        fs::write(directory.path().join("checkpoint.json"), b"not json").unwrap();
        let error = directory.load("", &BTreeMap::new(), &BTreeMap::new()).unwrap_err().to_string();
        assert!(error.contains("checkpoint.json") && error.contains("remove it"), "{error}");
        fs::write(directory.path().join("events.checkpoint.json"), b"{}").unwrap();
        let error = directory.load("", &BTreeMap::new(), &BTreeMap::new()).unwrap_err().to_string();
        assert!(error.contains("earlier version of Sluice"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
