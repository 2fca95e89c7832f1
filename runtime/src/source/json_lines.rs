//! JSON-lines sources: a file read to its end, or standard input until it closes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use sluice_sdk::fields::Indexer;

use super::{SourceError, SourceOutput, TimestampField};

/// How long a source waits for input before checking whether it must stop.
const POLL: Duration = Duration::from_millis(50);

enum Input {
    File(BufReader<File>),
    Stdin,
}

/// Reads JSON lines; a line is a record (empty lines are skipped).
pub struct JsonLinesSource {
    name: String,
    input: Input,
    timestamp: TimestampField,
}

impl JsonLinesSource {
    pub fn file(name: String, path: &Path, timestamp: TimestampField) -> Result<JsonLinesSource, SourceError> {
        let file =
            File::open(path).map_err(|error| SourceError::Open { source_name: name.clone(), path: path.display().to_string(), error })?;
        Ok(JsonLinesSource { name, input: Input::File(BufReader::new(file)), timestamp })
    }

    pub fn stdin(name: String, timestamp: TimestampField) -> JsonLinesSource {
        JsonLinesSource { name, input: Input::Stdin, timestamp }
    }

    pub fn run(self, output: &mut SourceOutput) -> Result<(), SourceError> {
        match self.input {
            Input::File(reader) => read_lines(&self.name, reader, LineRecords::new(self.timestamp), output),
            Input::Stdin => read_stdin(&self.name, LineRecords::new(self.timestamp), output),
        }
    }
}

fn read_lines(name: &str, mut reader: BufReader<File>, mut records: LineRecords, output: &mut SourceOutput) -> Result<(), SourceError> {
    let mut line = Vec::new();
    loop {
        // Reading past the buffer may block (a FIFO, a file still being written): what
        // lingers goes first, and checkpoint barriers are taken.
        if reader.buffer().is_empty() && output.flush_lingering().is_err() {
            return Ok(());
        }
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|error| SourceError::Read { source_name: name.into(), error })?;
        if read == 0 || output.stop.is_raised() {
            break;
        }
        if records.deliver(&mut line, output).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Standard input blocks; a reader thread feeds lines so that batches still linger on time.
fn read_stdin(name: &str, mut records: LineRecords, output: &mut SourceOutput) -> Result<(), SourceError> {
    let (lines, incoming) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(1024);
    std::thread::Builder::new()
        .name("sluice-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().split(b'\n') {
                if lines.send(line).is_err() {
                    return;
                }
            }
        })
        .map_err(|error| SourceError::Read { source_name: name.into(), error })?;
    while !output.stop.is_raised() {
        let wait = output.linger_left().unwrap_or(POLL).min(POLL);
        match incoming.recv_timeout(wait) {
            Ok(line) => {
                let mut line = line.map_err(|error| SourceError::Read { source_name: name.into(), error })?;
                if records.deliver(&mut line, output).is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if output.wait_for_input().is_err() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    Ok(())
}

/// Lines made records: numbered from 1 (a record's position), their event time read.
struct LineRecords {
    timestamp: TimestampField,
    /// Finds a line's fields once, for its event time and its field index.
    indexer: Indexer,
    number: u64,
}

impl LineRecords {
    fn new(timestamp: TimestampField) -> LineRecords {
        LineRecords { timestamp, indexer: Indexer::default(), number: 0 }
    }

    /// Turns the next line into a record (or a dead letter when its event time cannot be
    /// read). A line whose time is a field of it is scanned once: for the time, and for the
    /// record's field index.
    fn deliver(&mut self, line: &mut Vec<u8>, output: &mut SourceOutput) -> Result<(), super::Downstream> {
        self.number += 1;
        let number = self.number;
        while line.last().is_some_and(|byte| *byte == b'\n' || *byte == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let fields = if self.timestamp.reads_record() { self.indexer.scan(line) } else { None };
        match self.timestamp.extract(line, fields) {
            Ok(time) => output.emit_scanned(None, line, fields, time, number),
            Err(reason) => output.dead_letter(line, number, format!("line {number}: {reason}")),
        }
    }
}
