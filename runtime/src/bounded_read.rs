//! Reading a whole file a user names (a plugin, a granted file): only a regular file, and only
//! up to a limit, so that `/dev/zero`, a named pipe or a huge file is an error, not a process
//! out of memory or a thread blocked forever.

use std::io::Read;
use std::path::Path;

/// Why a file could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is a directory, not a file")]
    Directory,
    #[error("is not a regular file (a device, a named pipe or a socket)")]
    NotRegular,
    #[error("is larger than {} MiB", .0 >> 20)]
    TooLarge(u64),
}

/// The bytes of the regular file at `path`, refusing it if it holds more than `limit` bytes.
/// Opened without blocking, so that a named pipe without a writer is refused at once rather
/// than waited on (opening it for reading would wait for a writer).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(BoundedReadError::Directory);
    }
    if !metadata.is_file() {
        return Err(BoundedReadError::NotRegular);
    }
    if metadata.len() > limit {
        return Err(BoundedReadError::TooLarge(limit));
    }
    read_at_most(file, limit, metadata.len())
}

/// Everything `input` holds (about `expected` bytes), refusing it past `limit` bytes: it is
/// read at most one byte past the limit, however large it is or grows while it is read (a
/// pipe, a file still being written).
pub fn read_at_most(input: impl Read, limit: u64, expected: u64) -> Result<Vec<u8>, BoundedReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected.min(limit)).unwrap_or_default());
    input.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge(limit));
    }
    Ok(bytes)
}

/// The text of the regular file at `path` (UTF-8), refusing it past `limit` bytes.
pub fn read_bounded_text(path: &Path, limit: u64) -> Result<String, BoundedReadError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_large_files_are_refused_and_small_ones_read() {
        assert!(matches!(read_bounded(Path::new("/dev/zero"), 1024), Err(BoundedReadError::NotRegular)));
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 2048]).expect("write");
        assert!(matches!(read_bounded(&path, 1024), Err(BoundedReadError::TooLarge(1024))));
        assert_eq!(read_bounded(&path, 2048).expect("read").len(), 2048);
        assert!(matches!(read_bounded(&dir.path().join("missing"), 1024), Err(BoundedReadError::Io(_))));
        assert!(matches!(read_bounded(dir.path(), 1024), Err(BoundedReadError::Directory)));
    }

    #[test]
    fn a_named_pipe_without_a_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let fifo = dir.path().join("plugin.wasm");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("no NUL");
        // SAFETY: mkfifo reads the NUL-terminated path and creates the pipe; nothing else.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
        // In a thread, so that an open that waits for a writer fails the test instead of
        // hanging it.
        let (sender, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(matches!(read_bounded(&fifo, 1024), Err(BoundedReadError::NotRegular))));
        assert_eq!(answer.recv_timeout(std::time::Duration::from_secs(10)), Ok(true), "refused at once");
    }
}
