//! The dead-letter sink: where records that could not be processed are written, with why.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::{DeadLetterConfig, LoadedPipeline};
use crate::kafka::{KafkaDeadLetters, TransactionalProducer};
use crate::pipeline::{DeadLetter, StopSignal};

/// Where dead letters are written. A file is opened (for appending) at the first dead letter,
/// so that a run without any leaves no empty file behind.
pub struct DeadLetterSink {
    pipeline: String,
    description: String,
    destination: Destination,
    /// Ends the wait for a reader of a named pipe given as the dead-letter file.
    stop: StopSignal,
}

enum Destination {
    /// JSON lines; the writer is opened at the first dead letter.
    Lines {
        target: LineTarget,
        writer: Option<LineWriter>,
    },
    Kafka(KafkaDeadLetters),
}

enum LineTarget {
    File(PathBuf),
    Stderr,
}

/// An open line target: a file is synced when the dead letters must be durable.
enum LineWriter {
    File(BufWriter<File>),
    Stderr(io::Stderr),
}

impl LineWriter {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            LineWriter::File(file) => file,
            LineWriter::Stderr(stderr) => stderr,
        }
    }

    /// Flushes, and for a file waits until its contents are on disk.
    fn make_durable(&mut self) -> io::Result<()> {
        self.writer().flush()?;
        match self {
            LineWriter::File(file) => crate::sink::sync_if_possible(file.get_ref()),
            LineWriter::Stderr(_) => Ok(()),
        }
    }
}

impl DeadLetterSink {
    /// Opens the configured dead-letter sink (by default `<pipeline>.dead-letter.jsonl`).
    /// A Kafka topic is written through `transactions` when the pipeline is exactly-once.
    pub fn build(
        config: Option<&DeadLetterConfig>,
        pipeline: &LoadedPipeline,
        transactions: Option<&TransactionalProducer>,
        stop: &StopSignal,
    ) -> io::Result<DeadLetterSink> {
        let name = pipeline.config.pipeline.name.get_ref().to_string();
        let lines = |target| Destination::Lines { target, writer: None };
        let destination = match config {
            Some(DeadLetterConfig::Stderr(_)) => lines(LineTarget::Stderr),
            Some(DeadLetterConfig::File(file)) => lines(LineTarget::File(pipeline.resolve(&file.path))),
            Some(DeadLetterConfig::Kafka(kafka)) => {
                Destination::Kafka(KafkaDeadLetters::new(kafka, &name, transactions, stop).map_err(io::Error::other)?)
            }
            None => lines(LineTarget::File(DeadLetterConfig::default_file(&name))),
        };
        let description = match &destination {
            Destination::Lines { target: LineTarget::Stderr, .. } => "standard error".into(),
            Destination::Kafka(kafka) => format!("Kafka topic \"{}\"", kafka.topic()),
            Destination::Lines { target: LineTarget::File(path), .. } => {
                // Fail at start, not at the first dead letter, if the file cannot be written.
                let directory = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                if !directory.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("the directory of dead-letter file {} does not exist", path.display()),
                    ));
                }
                path.display().to_string()
            }
        };
        Ok(DeadLetterSink { pipeline: name, description, destination, stop: stop.clone() })
    }

    /// The file the dead letters go to, when they go to one.
    pub fn file(&self) -> Option<&Path> {
        match &self.destination {
            Destination::Lines { target: LineTarget::File(path), .. } => Some(path),
            _ => None,
        }
    }

    /// Where the dead letters go, in words.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Writes one dead letter: a line is flushed at once (dead letters are rare and must not
    /// be lost), a Kafka record is queued and made durable by `flush`.
    pub fn write(&mut self, letter: &DeadLetter) -> io::Result<()> {
        match &mut self.destination {
            Destination::Kafka(kafka) => kafka.write(letter).map_err(io::Error::other),
            Destination::Lines { target, writer } => {
                let writer = match writer {
                    Some(writer) => writer.writer(),
                    None => writer.insert(open(target, &self.stop)?).writer(),
                };
                // The whole line in one write: standard error is unbuffered, and log lines go
                // there too, so a letter written piece by piece came out cut by them.
                let mut line = serde_json::to_vec(&letter.to_json(&self.pipeline))?;
                line.push(b'\n');
                writer.write_all(&line)?;
                writer.flush()
            }
        }
    }

    /// Returns once every dead letter written so far is durable (a file is synced to disk).
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.destination {
            Destination::Kafka(kafka) => kafka.flush().map_err(io::Error::other),
            Destination::Lines { writer: Some(writer), .. } => writer.make_durable(),
            Destination::Lines { writer: None, .. } => Ok(()),
        }
    }
}

/// Opens the dead letters' line target; a named pipe is waited for until a process reads it,
/// or until `stop` is raised (then the letter cannot be written, and the run ends with that).
fn open(target: &LineTarget, stop: &StopSignal) -> io::Result<LineWriter> {
    match target {
        LineTarget::Stderr => Ok(LineWriter::Stderr(io::stderr())),
        LineTarget::File(path) => {
            let file = crate::sink::open_output_file(path, false, Some(stop))
                .and_then(|file| crate::sink::prepare(&file, path, crate::sink::FileStart::Continued).map(|()| file))
                .map_err(|error| io::Error::new(error.kind(), format!("cannot open dead-letter file {}: {error}", path.display())))?;
            Ok(LineWriter::File(BufWriter::new(file)))
        }
    }
}
