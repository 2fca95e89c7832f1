//! How a sink's output file starts: emptied, continued, or cut back to the length a
//! checkpoint recorded for it.

use std::fs::File;
use std::io;
use std::path::Path;

/// How a sink's output file starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStart {
    /// Emptied: the run writes it from the start, as it reads its inputs from their start.
    Anew,
    /// Appended to after its last complete line: the run goes on from where another stopped
    /// (a restart reading stdin or Kafka, or a checkpoint that recorded no length for it).
    Continued,
    /// Cut back to the length it had when the checkpoint the run resumes from was taken,
    /// then appended to: what the interrupted run wrote after that checkpoint, this run
    /// writes again, so each result is in the file once.
    ContinuedFrom(u64),
}

/// Makes `file` (opened for appending unless `Anew`, which truncated it) start as `start` asks.
/// A named pipe or a device has no contents to keep or cut: it is written as it is.
pub fn prepare(file: &File, path: &Path, start: FileStart) -> io::Result<()> {
    if !file.metadata()?.is_file() {
        return Ok(());
    }
    match start {
        FileStart::Anew => Ok(()),
        FileStart::Continued => {
            let held = file.metadata()?.len();
            if held > 0 {
                tracing::info!(file = %path.display(), bytes = held, "appending to the output file after what earlier runs wrote");
            }
            super::drop_torn_last_line(file, path)
        }
        FileStart::ContinuedFrom(length) => {
            let found = file.metadata()?.len();
            if found < length {
                // Results the checkpoint counts as written are gone: going on would leave the
                // file without them, and say nothing.
                return Err(shorter_than_checkpoint(found, length));
            }
            if found > length {
                tracing::info!(file = %path.display(), bytes = found - length, "dropping output written after the checkpoint: it is written again");
            }
            file.set_len(length)
        }
    }
}

fn shorter_than_checkpoint(found: u64, length: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "it holds {found} bytes, fewer than the {length} it had when the checkpoint this run resumes from was taken (cut, \
             replaced or removed since?), so results before the checkpoint are missing from it: put the file back, or remove \
             the pipeline's checkpoint (in its state_dir) to run from the start"
        ),
    )
}

/// Where an output file is, whatever the path it was named by: its directory resolved (links
/// and `..` followed, made absolute) and its own name, so that `out.jsonl` run from `/srv/p`
/// and `/srv/p/out.jsonl` are one file (a link at the name itself stays the name).
pub fn output_location(path: &Path) -> std::path::PathBuf {
    let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match (std::fs::canonicalize(directory), path.file_name()) {
        (Ok(directory), Some(name)) => directory.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Cuts the file at `path`, if there is one, back to `length` (a checkpoint's): for an output
/// opened later, such as the dead-letter file, which is opened at its first letter.
pub fn cut_back_to_checkpoint(path: &Path, length: u64) -> io::Result<()> {
    // Only a file has a length to cut: opening a named pipe here would wake a reader waiting
    // for the dead letters, and closing it at once would end that reader's input.
    match std::fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => return Ok(()),
        // Removed since the checkpoint: what it held before it is missing, as from a file cut.
        Err(error) if error.kind() == io::ErrorKind::NotFound && length > 0 => return Err(shorter_than_checkpoint(0, length)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    match File::options().read(true).append(true).open(path) {
        Ok(file) => prepare(&file, path, FileStart::ContinuedFrom(length)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file_holding(contents: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, File) {
        let directory = tempfile::tempdir().expect("a scratch directory");
        let path = directory.path().join("out.jsonl");
        std::fs::write(&path, contents).expect("write");
        let file = File::options().read(true).append(true).open(&path).expect("open");
        (directory, path, file)
    }

    #[test]
    fn a_file_continued_from_a_checkpoint_is_cut_back_to_its_length_then() {
        let (_directory, path, file) = file_holding(b"{\"a\":1}\n{\"a\":2}\n{\"a\"");
        prepare(&file, &path, FileStart::ContinuedFrom(8)).expect("prepared");
        (&file).write_all(b"{\"a\":3}\n").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"a\":1}\n{\"a\":3}\n");
    }

    #[test]
    fn a_file_shorter_than_its_checkpoint_is_refused_and_left_as_it_is() {
        let (_directory, path, file) = file_holding(b"{\"a\":1}\n{\"a\"");
        let error = prepare(&file, &path, FileStart::ContinuedFrom(100)).expect_err("results are missing");
        assert!(error.to_string().contains("fewer than the 100 it had when the checkpoint"), "{error}");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"a\":1}\n{\"a\"");
    }

    #[test]
    fn one_output_file_named_two_ways_is_one_location() {
        let directory = tempfile::tempdir().expect("a scratch directory");
        std::fs::create_dir(directory.path().join("sub")).expect("sub");
        let plain = directory.path().join("out.jsonl");
        assert_eq!(output_location(&directory.path().join("sub/../out.jsonl")), output_location(&plain));
        assert_eq!(output_location(&directory.path().join("./out.jsonl")), output_location(&plain));
        assert_ne!(output_location(&directory.path().join("sub/out.jsonl")), output_location(&plain));
        assert!(output_location(Path::new("out.jsonl")).is_absolute());
    }

    #[test]
    fn a_dead_letter_file_removed_since_the_checkpoint_is_refused() {
        let directory = tempfile::tempdir().expect("a scratch directory");
        let missing = directory.path().join("dead.jsonl");
        assert!(cut_back_to_checkpoint(&missing, 120).is_err_and(|error| error.to_string().contains("fewer than the 120")));
        assert!(cut_back_to_checkpoint(&missing, 0).is_ok(), "nothing was there at the checkpoint");
    }
}
