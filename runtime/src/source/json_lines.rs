//! JSON-lines sources: a file read to its end, or standard input until it closes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

use super::{SourceError, SourceOutput};
use crate::event_time::{now_millis, parse_rfc3339_millis};

/// How long a source waits for input before checking whether it must stop.
const POLL: Duration = Duration::from_millis(50);

/// Where a record's event time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampField {
    /// The time the record was read.
    Ingestion,
    /// A top-level JSON field: milliseconds since the epoch, or an RFC 3339 string.
    Field(String),
}

impl TimestampField {
    pub fn new(field: Option<&str>) -> TimestampField {
        field.map_or(TimestampField::Ingestion, |field| TimestampField::Field(field.to_owned()))
    }

    /// The event time of `line`, or why it has none.
    pub fn extract(&self, line: &[u8]) -> Result<i64, String> {
        let TimestampField::Field(field) = self else { return Ok(now_millis()) };
        let record: serde_json::Map<String, Value> =
            serde_json::from_slice(line).map_err(|error| format!("line is not a JSON object: {error}"))?;
        match record.get(field) {
            Some(Value::Number(number)) => number.as_i64().ok_or_else(|| format!("timestamp field {field:?} is not an integer")),
            Some(Value::String(text)) => parse_rfc3339_millis(text).map_err(|error| format!("timestamp field {field:?}: {error}")),
            Some(_) => Err(format!("timestamp field {field:?} is neither milliseconds nor an RFC 3339 string")),
            None => Err(format!("timestamp field {field:?} is missing")),
        }
    }
}

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
            Input::File(reader) => read_lines(&self.name, reader, &self.timestamp, output),
            Input::Stdin => read_stdin(&self.name, &self.timestamp, output),
        }
    }
}

fn read_lines(name: &str, mut reader: BufReader<File>, timestamp: &TimestampField, output: &mut SourceOutput) -> Result<(), SourceError> {
    let mut line = Vec::new();
    let mut number = 0u64;
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
        number += 1;
        if deliver(&mut line, number, timestamp, output).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Standard input blocks; a reader thread feeds lines so that batches still linger on time.
fn read_stdin(name: &str, timestamp: &TimestampField, output: &mut SourceOutput) -> Result<(), SourceError> {
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
    let mut number = 0u64;
    while !output.stop.is_raised() {
        let wait = output.linger_left().unwrap_or(POLL).min(POLL);
        match incoming.recv_timeout(wait) {
            Ok(line) => {
                let mut line = line.map_err(|error| SourceError::Read { source_name: name.into(), error })?;
                number += 1;
                if deliver(&mut line, number, timestamp, output).is_err() {
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

/// Turns one line into a record (or a dead letter when its event time cannot be read).
fn deliver(line: &mut Vec<u8>, number: u64, timestamp: &TimestampField, output: &mut SourceOutput) -> Result<(), super::Downstream> {
    while line.last().is_some_and(|byte| *byte == b'\n' || *byte == b'\r') {
        line.pop();
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match timestamp.extract(line) {
        Ok(time) => output.emit(None, line, time, number),
        Err(reason) => output.dead_letter(line, number, format!("line {number}: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::TimestampField;

    #[test]
    fn timestamps_come_from_milliseconds_or_rfc3339_fields() {
        let field = TimestampField::new(Some("ts"));
        assert_eq!(field.extract(br#"{"ts": 1500}"#), Ok(1500));
        assert_eq!(field.extract(br#"{"ts": "1970-01-01T00:00:02Z"}"#), Ok(2000));
        assert!(field.extract(br#"{"other": 1}"#).unwrap_err().contains("missing"));
        assert!(field.extract(b"nope").unwrap_err().contains("not a JSON object"));
        assert!(field.extract(br#"{"ts": true}"#).unwrap_err().contains("neither"));
    }
}
