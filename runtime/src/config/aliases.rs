//! Outputs that would overwrite an input or another output, refused before anything is
//! opened: a file sink truncates its file at start, and two writers interleave.
//!
//! Files are compared by what they are, not how they are written: paths are resolved through
//! symlinks and `..`, and files that exist are also compared by device and inode (hard links).

use std::ops::Range;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{DeadLetterConfig, FileSinkConfig, LoadedPipeline, SinkConfig, SourceConfig};

/// A file the pipeline reads or writes, and where the file names it.
struct FileUse {
    /// Who uses it, in words: `sink "out"`, `the file source "orders"`.
    who: String,
    path: PathBuf,
    /// The table that names it; `None` for files named by no table (defaults).
    span: Option<Range<usize>>,
    identity: Option<FileIdentity>,
}

/// What a path refers to, once symlinks and `..` are resolved.
#[derive(PartialEq, Eq)]
struct FileIdentity {
    canonical: PathBuf,
    /// Device and inode of an existing file.
    inode: Option<(u64, u64)>,
}

impl FileIdentity {
    /// `None` for files several writers may share: devices and sockets. A named pipe is one
    /// file: two writers would interleave their lines in it.
    fn of(path: &Path) -> Option<FileIdentity> {
        match std::fs::metadata(path) {
            Ok(metadata) => {
                let kind = metadata.file_type();
                if kind.is_char_device() || kind.is_block_device() || kind.is_socket() {
                    return None;
                }
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| absolute(path));
                Some(FileIdentity { canonical, inode: Some((metadata.dev(), metadata.ino())) })
            }
            // Not there yet, or a link to a file not there yet: the file its links lead to.
            Err(_) => {
                let target = super::validate::link_target(path);
                Some(FileIdentity { canonical: canonical_to_be(target.as_deref().unwrap_or(path)), inode: None })
            }
        }
    }

    fn same_file(&self, other: &FileIdentity) -> bool {
        self.canonical == other.canonical || (self.inode.is_some() && self.inode == other.inode)
    }
}

/// The canonical path a file not yet created will have: its directory resolved, its name kept.
fn canonical_to_be(path: &Path) -> PathBuf {
    let (Some(directory), Some(name)) = (path.parent(), path.file_name()) else { return absolute(path) };
    let directory = if directory.as_os_str().is_empty() { Path::new(".") } else { directory };
    std::fs::canonicalize(directory).map_or_else(|_| absolute(path), |directory| directory.join(name))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl FileUse {
    fn new(who: String, path: PathBuf, span: Option<Range<usize>>) -> FileUse {
        let identity = FileIdentity::of(&path);
        FileUse { who, path, span, identity }
    }

    fn same_file(&self, other: &FileUse) -> bool {
        matches!((&self.identity, &other.identity), (Some(mine), Some(theirs)) if mine.same_file(theirs))
    }
}

/// Every file `pipeline` reads: its own file, file sources, plugins and granted files.
fn inputs(pipeline: &LoadedPipeline) -> Vec<FileUse> {
    let config = &pipeline.config;
    let mut inputs = vec![FileUse::new("the pipeline file itself".into(), pipeline.text.path().to_path_buf(), None)];
    for source in &config.sources {
        if let SourceConfig::File(file) = source.get_ref() {
            let who = format!("the file source \"{}\"", source.get_ref().name());
            inputs.push(FileUse::new(who, pipeline.resolve(&file.path), Some(source.span())));
        }
    }
    for operator in &config.operators {
        let operator = operator.get_ref();
        let name = operator.name.get_ref();
        let plugin = format!("the plugin of operator \"{name}\"");
        inputs.push(FileUse::new(plugin, pipeline.resolve(operator.plugin.get_ref()), Some(operator.plugin.span())));
        for (file, path) in operator.files.iter().flat_map(|files| files.get_ref()) {
            let who = format!("the file \"{file}\" granted to operator \"{name}\"");
            inputs.push(FileUse::new(who, pipeline.resolve(path), operator.files.as_ref().map(|files| files.span())));
        }
    }
    inputs
}

/// Every file `pipeline` writes: file sinks and the dead-letter file (but a process's
/// standard streams, refused as outputs on their own: validate.rs).
fn outputs(pipeline: &LoadedPipeline) -> Vec<FileUse> {
    let mut outputs = written_files(pipeline);
    outputs.retain(|output| super::validate::standard_stream(&output.path).is_none());
    outputs
}

fn written_files(pipeline: &LoadedPipeline) -> Vec<FileUse> {
    let config = &pipeline.config;
    let mut outputs = Vec::new();
    for sink in &config.sinks {
        if let SinkConfig::File(FileSinkConfig { path, .. }) = sink.get_ref() {
            outputs.push(FileUse::new(format!("sink \"{}\"", sink.get_ref().name()), pipeline.resolve(path), Some(sink.span())));
        }
    }
    match config.dead_letter.as_ref().map(|dead_letter| (dead_letter.get_ref(), dead_letter.span())) {
        Some((DeadLetterConfig::File(file), span)) => {
            outputs.push(FileUse::new("the dead-letter file".into(), pipeline.resolve(&file.path), Some(span)))
        }
        Some(_) => {}
        None => {
            let default = DeadLetterConfig::default_file(config.pipeline.name.get_ref().as_str());
            outputs.push(FileUse::new("the dead-letter file (by default in the working directory)".into(), default, None));
        }
    }
    outputs
}

/// Where the pipeline keeps its checkpoints, resolved: `state_dir`, and its own directory in
/// it (`state_dir/<pipeline>`).
fn checkpoint_directories(pipeline: &LoadedPipeline) -> Option<(PathBuf, PathBuf)> {
    let state_dir = pipeline.resolve(pipeline.config.pipeline.state_dir.as_ref()?);
    // Resolved as outputs are: a state_dir not made yet through its parent's real path.
    let state_dir = std::fs::canonicalize(&state_dir).unwrap_or_else(|_| canonical_to_be(&state_dir));
    let own = state_dir.join(pipeline.config.pipeline.name.get_ref().as_str());
    Some((state_dir, own))
}

/// Each output that is an input or an earlier output, or lies where the checkpoints are kept:
/// (where, message).
pub fn aliased_files(pipeline: &LoadedPipeline) -> Vec<(Option<Range<usize>>, String)> {
    let inputs = inputs(pipeline);
    let outputs = outputs(pipeline);
    let checkpoints = checkpoint_directories(pipeline);
    let mut problems = Vec::new();
    for (index, output) in outputs.iter().enumerate() {
        let path = output.path.display();
        let canonical = output.identity.as_ref().map(|identity| identity.canonical.as_path());
        if let Some(((state_dir, own), canonical)) = checkpoints.as_ref().zip(canonical)
            && (canonical == state_dir || canonical.starts_with(own))
        {
            let message = format!(
                "{}: {path} is where the pipeline keeps its checkpoints (state_dir {}, and {} in it): write somewhere else",
                output.who,
                state_dir.display(),
                own.display()
            );
            problems.push((output.span.clone(), message));
        } else if let Some(input) = inputs.iter().find(|input| output.same_file(input)) {
            let message = format!(
                "{}: {path} is the file {} reads ({}): writing it would destroy that input; write somewhere else",
                output.who,
                input.who,
                input.path.display()
            );
            problems.push((output.span.clone(), message));
        } else if let Some(earlier) = outputs[..index].iter().find(|earlier| output.same_file(earlier)) {
            let message = format!(
                "{}: {path} is also written by {} ({}): two writers would interleave into a corrupted file; give each its own path",
                output.who,
                earlier.who,
                earlier.path.display()
            );
            problems.push((output.span.clone(), message));
        }
    }
    problems
}
