//! Sources: where a task's records come from. A closed enum, one `match`.

mod generator;
mod json_lines;

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

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

    /// Reads until the input ends or `stop` is raised, sending batches downstream; then ends
    /// the task's stream (see [`SourceOutput::close`]).
    pub fn run(self, mut output: SourceOutput) -> Result<(), SourceError> {
        let result = match self {
            Source::Generator(generator) => generator.run(&mut output),
            Source::JsonLines(source) => source.run(&mut output),
        };
        output.close(result)
    }
}

/// Where a source sends its records: batched to its task, or to the dead-letter sink. With
/// checkpoints, it also skips what the checkpoint covers and puts barriers between batches.
pub struct SourceOutput {
    pub source: Arc<str>,
    pub batcher: Batcher,
    pub batches: SyncSender<TaskMessage>,
    pub dead_letters: SyncSender<DeadLetterMessage>,
    pub stop: StopSignal,
    checkpoints: Option<Barriers>,
    /// The position after the last record sent on (or skipped as already processed).
    next_position: u64,
    /// The position after the last record the source produced, skipped or not.
    positions_seen: u64,
    /// A send failed: the task or the dead-letter sink stopped, so the input did not end.
    downstream_closed: bool,
    closed: bool,
}

/// When a checkpointing source puts barriers in its task's queue.
struct Barriers {
    /// Records before this position were processed before the restart: they are skipped.
    resume_from: u64,
    interval: Duration,
    last: Instant,
}

/// The task stopped taking records (it failed, or the pipeline is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream;

impl SourceOutput {
    pub fn new(
        source: Arc<str>,
        batcher: Batcher,
        batches: SyncSender<TaskMessage>,
        dead_letters: SyncSender<DeadLetterMessage>,
        stop: StopSignal,
    ) -> SourceOutput {
        SourceOutput {
            source,
            batcher,
            batches,
            dead_letters,
            stop,
            checkpoints: None,
            next_position: 0,
            positions_seen: 0,
            downstream_closed: false,
            closed: false,
        }
    }

    /// Resumes after a checkpoint: records before `resume_from` are skipped, and a barrier
    /// follows a batch once `interval` has passed since the last one.
    pub fn with_checkpoints(mut self, resume_from: u64, interval: Duration) -> SourceOutput {
        self.checkpoints = Some(Barriers { resume_from, interval, last: Instant::now() });
        self.next_position = resume_from;
        self
    }

    /// Adds a record; sends the batch if it is full or has lingered long enough.
    pub fn emit(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64, position: u64) -> Result<(), Downstream> {
        if !self.advance_to(position) {
            return Ok(());
        }
        match self.batcher.push(key, value, timestamp, [], position) {
            Some(batch) => {
                self.send(batch)?;
                self.barrier_if_due()
            }
            None => self.flush_lingering(),
        }
    }

    /// Sends the pending batch if it has waited for `linger` (and a barrier if one is due).
    pub fn flush_lingering(&mut self) -> Result<(), Downstream> {
        if let Some(batch) = self.batcher.poll_linger() {
            self.send(batch)?;
        }
        self.barrier_if_due()
    }

    /// Sends a record the source itself cannot read to the dead-letter sink.
    pub fn dead_letter(&mut self, value: &[u8], position: u64, reason: String) -> Result<(), Downstream> {
        if !self.advance_to(position) {
            return Ok(());
        }
        let mut record = Batch::new();
        record.push(None, value, 0, []);
        let letter = DeadLetter::from_source(&self.source, position, record, reason);
        let sent = self.dead_letters.send(DeadLetterMessage::Letter(letter)).map_err(|_| Downstream);
        self.note(sent)
    }

    /// Ends the stream after the source returned `result`. The task finishes (closing event
    /// time) when the input ended; with checkpoints, a stop, a failure or an output that
    /// stopped taking records suspends it at the position reached instead, so that the next
    /// run resumes there rather than emitting results of a partial input.
    pub fn close(mut self, result: Result<(), SourceError>) -> Result<(), SourceError> {
        self.closed = true;
        if let Some(batch) = self.batcher.take() {
            let _ = self.send(batch);
        }
        let resume_from = self.checkpoints.as_ref().map(|barriers| barriers.resume_from);
        let last = match (&result, resume_from) {
            (_, None) => TaskMessage::End,
            (Err(_), Some(_)) => TaskMessage::Suspend { next_position: self.next_position },
            (Ok(()), Some(_)) if self.stop.is_raised() || self.downstream_closed => {
                TaskMessage::Suspend { next_position: self.next_position }
            }
            (Ok(()), Some(resume_from)) if self.positions_seen < resume_from => {
                let _ = self.batches.send(TaskMessage::Abandon);
                return Err(SourceError::Invalid {
                    source_name: self.source.to_string(),
                    message: format!(
                        "the input ends before position {resume_from}, where its checkpoint resumes: was it replaced or \
                         truncated? Remove the source's checkpoint file from the state directory to start over"
                    ),
                });
            }
            (Ok(()), Some(_)) => TaskMessage::End,
        };
        let _ = self.batches.send(last);
        result
    }

    /// Whether the checkpoint this run resumes from already covers `position`.
    pub fn covers(&self, position: u64) -> bool {
        self.checkpoints.as_ref().is_some_and(|barriers| position < barriers.resume_from)
    }

    /// Notes that the source reached `position`; false if the checkpoint already covers it.
    fn advance_to(&mut self, position: u64) -> bool {
        self.positions_seen = self.positions_seen.max(position.saturating_add(1));
        if self.covers(position) {
            return false;
        }
        self.next_position = self.next_position.max(position.saturating_add(1));
        true
    }

    /// After a batch: a barrier, if checkpoints are on and one is due.
    fn barrier_if_due(&mut self) -> Result<(), Downstream> {
        let Some(barriers) = &mut self.checkpoints else { return Ok(()) };
        if barriers.last.elapsed() < barriers.interval {
            return Ok(());
        }
        barriers.last = Instant::now();
        if let Some(batch) = self.batcher.take() {
            self.send(batch)?;
        }
        let sent = self.batches.send(TaskMessage::Checkpoint { next_position: self.next_position }).map_err(|_| Downstream);
        self.note(sent)
    }

    fn send(&mut self, batch: SourceBatch) -> Result<(), Downstream> {
        let sent = self.batches.send(TaskMessage::Batch(batch)).map_err(|_| Downstream);
        self.note(sent)
    }

    fn note(&mut self, sent: Result<(), Downstream>) -> Result<(), Downstream> {
        self.downstream_closed |= sent.is_err();
        sent
    }
}

impl Drop for SourceOutput {
    /// A source that stopped without `close` (it panicked) still ends its task: finished
    /// without checkpoints, abandoned with them (its last checkpoint stays the one to resume).
    fn drop(&mut self) {
        if !self.closed {
            let last = if self.checkpoints.is_some() { TaskMessage::Abandon } else { TaskMessage::End };
            let _ = self.batches.send(last);
        }
    }
}
