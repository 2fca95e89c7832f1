//! Sources: where a task's records come from. A closed enum, one `match`.

mod generator;
mod json_lines;

use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use crate::config::{LoadedPipeline, SourceConfig};
use crate::pipeline::{Batcher, DeadLetter, DeadLetterMessage, SourceBatch, StopSignal, TaskMessage};
use crate::wasm::Batch;

pub use generator::Generator;
pub use json_lines::{JsonLinesSource, TimestampField};

/// Why a source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source \"{source_name}\": cannot open {path}: {error}")]
    Open { source_name: String, path: String, error: std::io::Error },
    #[error("source \"{source_name}\": read failed: {error}")]
    Read { source_name: String, error: std::io::Error },
    #[error("source \"{source_name}\": {message}")]
    Invalid { source_name: String, message: String },
}

/// A configured source, ready to run on its own thread.
pub enum Source {
    Generator(Generator),
    JsonLines(JsonLinesSource),
}

impl Source {
    /// Builds the source described by `config`.
    pub fn build(config: &SourceConfig, pipeline: &LoadedPipeline) -> Result<Source, SourceError> {
        let name = config.name();
        match config {
            SourceConfig::Generator(generator) => Generator::new(name, generator).map(Source::Generator),
            SourceConfig::File(file) => {
                let path = pipeline.resolve(&file.path);
                JsonLinesSource::file(name, &path, TimestampField::new(file.timestamp_field.as_deref())).map(Source::JsonLines)
            }
            SourceConfig::Stdin(stdin) => {
                Ok(Source::JsonLines(JsonLinesSource::stdin(name, TimestampField::new(stdin.timestamp_field.as_deref()))))
            }
            SourceConfig::Kafka(_) => Err(SourceError::Invalid {
                source_name: name,
                message: "a Kafka source runs its own partition tasks (crate::kafka::KafkaSource)".into(),
            }),
        }
    }

    /// Reads until the input ends or `stop` is raised, sending batches downstream.
    pub fn run(self, output: SourceOutput) -> Result<(), SourceError> {
        match self {
            Source::Generator(generator) => generator.run(output),
            Source::JsonLines(source) => source.run(output),
        }
    }
}

/// Where a source sends its records: batched to its task, or to the dead-letter sink.
pub struct SourceOutput {
    pub source: Arc<str>,
    pub batcher: Batcher,
    pub batches: SyncSender<TaskMessage>,
    pub dead_letters: SyncSender<DeadLetterMessage>,
    pub stop: StopSignal,
}

/// The task stopped taking records (it failed, or the pipeline is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream;

impl SourceOutput {
    /// Adds a record; sends the batch if it is full or has lingered long enough.
    pub fn emit(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64, position: u64) -> Result<(), Downstream> {
        match self.batcher.push(key, value, timestamp, [], position) {
            Some(batch) => self.send(batch),
            None => self.flush_lingering(),
        }
    }

    /// Sends the pending batch if it has waited for `linger`.
    pub fn flush_lingering(&mut self) -> Result<(), Downstream> {
        match self.batcher.poll_linger() {
            Some(batch) => self.send(batch),
            None => Ok(()),
        }
    }

    /// Sends what is pending: the input ended or the source stops.
    pub fn finish(mut self) -> Result<(), Downstream> {
        match self.batcher.take() {
            Some(batch) => self.send(batch),
            None => Ok(()),
        }
    }

    /// Sends a record the source itself cannot read to the dead-letter sink.
    pub fn dead_letter(&mut self, value: &[u8], position: u64, reason: String) -> Result<(), Downstream> {
        let mut record = Batch::new();
        record.push(None, value, 0, []);
        let letter = DeadLetter::from_source(&self.source, position, record, reason);
        self.dead_letters.send(DeadLetterMessage::Letter(letter)).map_err(|_| Downstream)
    }

    fn send(&mut self, batch: SourceBatch) -> Result<(), Downstream> {
        self.batches.send(TaskMessage::Batch(batch)).map_err(|_| Downstream)
    }
}

impl Drop for SourceOutput {
    /// However the source stops (end of input, stop signal, error), its task learns it.
    fn drop(&mut self) {
        let _ = self.batches.send(TaskMessage::End);
    }
}
