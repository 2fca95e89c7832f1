//! Opening an output file, a sink's or the dead letters': a file is created or continued, a
//! named pipe is opened for writing only, once a process reads it.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Duration;

use crate::pipeline::StopSignal;

/// How often a writer waiting for a named pipe's reader looks again.
const READER_POLL: Duration = Duration::from_millis(100);

/// Opens the output at `path` for writing. A regular file (or a device) is created if it is
/// missing, emptied when `anew`, and opened for reading too (a continued file is cut back to
/// its last complete line). A named pipe is opened for writing only, and only once a process
/// has it open for reading: until then the call waits (looking at `stop`, when given, every
/// 100 ms: a raised signal ends the wait with `ErrorKind::Interrupted`). Writes into the pipe
/// then wait while it is full, so nothing is written that nobody reads.
pub fn open_output_file(path: &Path, anew: bool, stop: Option<&StopSignal>) -> io::Result<File> {
    if std::fs::metadata(path).is_ok_and(|metadata| metadata.file_type().is_fifo()) {
        return open_named_pipe(path, stop);
    }
    super::open_durably(File::options().create(true).read(true).write(true).append(!anew).truncate(anew), path)
}

/// Opens the named pipe at `path` for writing once a reader has it open (see
/// `open_output_file`).
fn open_named_pipe(path: &Path, stop: Option<&StopSignal>) -> io::Result<File> {
    let mut announced = false;
    loop {
        // Without a reader, a non-blocking open for writing fails with ENXIO at once; a
        // blocking one would wait beyond the reach of the stop signal.
        match File::options().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(pipe) => return make_blocking(pipe),
            Err(error) if error.raw_os_error() == Some(libc::ENXIO) => {
                if stop.is_some_and(StopSignal::is_raised) {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped while waiting for a process to read the named pipe"));
                }
                if !announced {
                    tracing::warn!(file = %path.display(), "waiting for a process to read the named pipe: records are written once one opens it");
                    announced = true;
                }
                std::thread::sleep(READER_POLL);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Clears `O_NONBLOCK`, so that a write into a full pipe waits for its reader.
fn make_blocking(pipe: File) -> io::Result<File> {
    let descriptor = pipe.as_raw_fd();
    // SAFETY: `fcntl` reads and sets the status flags of a descriptor `pipe` owns and keeps open.
    let flags = unsafe { libc::fcntl(descriptor, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(descriptor, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pipe)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    fn named_pipe() -> (tempfile::TempDir, std::path::PathBuf) {
        let directory = tempfile::tempdir().expect("a scratch directory");
        let path = directory.path().join("out.fifo");
        let text = std::ffi::CString::new(path.display().to_string()).expect("path");
        // SAFETY: creating a named pipe at a path in our own scratch directory.
        assert_eq!(unsafe { libc::mkfifo(text.as_ptr(), 0o600) }, 0, "mkfifo");
        (directory, path)
    }

    #[test]
    fn a_pipe_nobody_reads_is_not_written_and_the_stop_signal_ends_the_wait() {
        let (_directory, path) = named_pipe();
        let stop = StopSignal::default();
        let (raised, started) = (stop.clone(), std::time::Instant::now());
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            raised.raise();
        });
        let error = open_output_file(&path, true, Some(&stop)).expect_err("no reader");
        raiser.join().expect("raiser");
        assert_eq!(error.kind(), io::ErrorKind::Interrupted, "{error}");
        assert!(started.elapsed() >= Duration::from_millis(300), "it waited for the stop: {:?}", started.elapsed());
        // Nothing went into the pipe: a reader opened now finds it empty, without a writer.
        let mut left = Vec::new();
        File::options().read(true).custom_flags(libc::O_NONBLOCK).open(&path).expect("open").read_to_end(&mut left).expect("read");
        assert!(left.is_empty(), "{} bytes in the pipe", left.len());
    }

    #[test]
    fn a_pipe_is_written_once_read_and_its_writes_wait_for_the_reader() {
        let (_directory, path) = named_pipe();
        let reader = {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut contents = Vec::new();
                File::open(path).expect("open for reading").read_to_end(&mut contents).expect("read");
                contents
            })
        };
        // Far more than a pipe holds (64 KiB): the writes wait for the reader, none fails.
        let written: Vec<u8> = (0..1_000_000u32).map(|index| (index % 251) as u8).collect();
        let mut pipe = open_output_file(&path, true, None).expect("opened once the reader is there");
        pipe.write_all(&written).expect("every write waits for room");
        drop(pipe);
        assert_eq!(reader.join().expect("reader"), written);
    }

    #[test]
    fn a_regular_file_is_emptied_or_continued() {
        let directory = tempfile::tempdir().expect("a scratch directory");
        let path = directory.path().join("out.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n").expect("write");
        open_output_file(&path, false, None).expect("continued").write_all(b"{\"a\":2}\n").expect("append");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"a\":1}\n{\"a\":2}\n");
        open_output_file(&path, true, None).expect("emptied").write_all(b"{\"a\":3}\n").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{\"a\":3}\n");
    }
}
