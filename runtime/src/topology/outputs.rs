//! The pipeline's outputs, each on its own thread: the sinks, fed by every task through
//! bounded queues, and the dead-letter sink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};

use super::{StartError, Worker, spawn};
use crate::config::LoadedPipeline;
use crate::event_time::now_millis;
use crate::kafka::TransactionalProducer;
use crate::monitor::{Monitor, RecentDeadLetter};
use crate::pipeline::{DeadLetter, DeadLetterMessage, SinkMessage, StopSignal};
use crate::sink::{DeadLetterSink, FileStart, Sink, SinkError, cut_back_to_checkpoint, output_location};
use crate::state_dir::{PipelineCheckpoint, StateDirectory};

/// Output batches queued for each sink.
const SINK_QUEUE: usize = 16;
/// Dead letters queued for the dead-letter sink.
const DEAD_LETTER_QUEUE: usize = 4096;

/// The started sinks: the queues feeding them (by the graph's sink index) and their threads.
pub struct StartedSinks {
    pub queues: Vec<SyncSender<SinkMessage>>,
    pub workers: Vec<Worker<Result<(), SinkError>>>,
    /// Each file sink's file, by sink name: checkpoints record its length.
    pub files: BTreeMap<String, PathBuf>,
}

/// How the pipeline's output files start.
#[derive(Debug, Clone, Copy)]
pub enum OutputsStart<'c> {
    /// Emptied: the run reads its inputs from their start.
    Anew,
    /// Appended to: the run goes on from where the previous one stopped.
    Continued,
    /// Resuming from a checkpoint: each file cut back to the length it recorded for it.
    FromCheckpoint(&'c PipelineCheckpoint),
}

impl OutputsStart<'_> {
    /// How the output `output` (a sink's name, or [`DEAD_LETTER_OUTPUT`]) writing to `path` starts.
    fn file_start(&self, output: &str, path: Option<&Path>) -> FileStart {
        match self {
            OutputsStart::Anew => FileStart::Anew,
            OutputsStart::Continued => FileStart::Continued,
            OutputsStart::FromCheckpoint(checkpoint) => match checkpoint.outputs.get(output) {
                None => FileStart::Continued,
                Some(length) => match (checkpoint.output_paths.get(output), path) {
                    (Some(then), Some(now)) if output_location(then) != output_location(now) => {
                        leave_moved_output_at_checkpoint(output, then, now, *length);
                        FileStart::Continued
                    }
                    _ => FileStart::ContinuedFrom(*length),
                },
            },
        }
    }
}

/// An output's path changed since the checkpoint the run resumes from: the new file is not cut
/// at the old one's length (it may be another file altogether), but appended to; the old file
/// is cut back to the checkpoint's length, so that what was written after the checkpoint, and
/// is written again now, ends up in one file only.
fn leave_moved_output_at_checkpoint(output: &str, then: &Path, now: &Path, length: u64) {
    let cut = match then.exists().then(|| cut_back_to_checkpoint(then, length)) {
        None => "removed since".to_owned(),
        Some(Ok(())) => "cut back to the checkpoint".to_owned(),
        Some(Err(error)) => format!("could not be cut back to the checkpoint, so it may also hold results written after it: {error}"),
    };
    tracing::warn!(
        output,
        then = %then.display(),
        now = %now.display(),
        "the output's path changed since the checkpoint this run resumes from: its results up to the checkpoint are in the \
         file it had then ({cut}); this run appends the rest to the new one, starting with what was written after the checkpoint"
    );
}

/// The started dead-letter sink.
pub struct StartedDeadLetters {
    pub queue: SyncSender<DeadLetterMessage>,
    pub worker: Worker<std::io::Result<u64>>,
    pub destination: String,
    /// The file the dead letters go to, if they go to one: checkpoints record its length.
    pub file: Option<PathBuf>,
}

/// The key of the dead-letter file among the lengths a checkpoint records (sink names cannot
/// hold brackets).
pub const DEAD_LETTER_OUTPUT: &str = "[dead_letter]";

/// Opens the sinks, their output files started as `start` says. A sink whose reader goes
/// raises `stop`.
pub fn start_sinks(
    pipeline: &LoadedPipeline,
    start: OutputsStart<'_>,
    transactions: Option<&TransactionalProducer>,
    monitor: &Monitor,
    stop: &StopSignal,
) -> Result<StartedSinks, StartError> {
    let mut started = StartedSinks { queues: Vec::new(), workers: Vec::new(), files: BTreeMap::new() };
    for config in &pipeline.config.sinks {
        let config = config.get_ref();
        let file_start = start.file_start(&config.name(), Sink::file_of(config, pipeline).as_deref());
        let sink = Sink::build(config, pipeline, file_start, transactions, monitor, stop)?;
        let (sender, queue) = mpsc::sync_channel(SINK_QUEUE);
        let name = sink.name().to_owned();
        if let Some(file) = sink.file() {
            started.files.insert(name.clone(), file.to_path_buf());
        }
        let stop = stop.clone();
        let thread = spawn(&format!("sink-{name}"), move || write_sink(sink, queue, &stop))?;
        started.queues.push(sender);
        started.workers.push((format!("sink {name}"), thread));
    }
    Ok(started)
}

/// Opens the dead-letter sink (by default `<pipeline>.dead-letter.jsonl`). Resuming from a
/// checkpoint that recorded its file's length, the file is cut back to it: dead letters of the
/// records replayed after the checkpoint are written again, once. A run with a state
/// directory that reads its inputs from their start (`Anew`) cuts it back to the length it had
/// when the first such run began, if that run stopped before its first checkpoint.
pub fn start_dead_letters(
    pipeline: &LoadedPipeline,
    start: OutputsStart<'_>,
    state: Option<&StateDirectory>,
    transactions: Option<&TransactionalProducer>,
    monitor: &Monitor,
    stop: &StopSignal,
) -> Result<StartedDeadLetters, StartError> {
    let config = pipeline.config.dead_letter.as_ref().map(|dead_letter| dead_letter.get_ref());
    let sink = DeadLetterSink::build(config, pipeline, transactions, stop).map_err(StartError::DeadLetter)?;
    let file = sink.file().map(Path::to_path_buf);
    let cut_failed = |path: &Path, error: std::io::Error| {
        StartError::DeadLetter(std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))
    };
    match (start, &file, state) {
        (OutputsStart::FromCheckpoint(_), Some(path), _) => {
            if let FileStart::ContinuedFrom(length) = start.file_start(DEAD_LETTER_OUTPUT, Some(path)) {
                cut_back_to_checkpoint(path, length).map_err(|error| cut_failed(path, error))?;
            }
        }
        (OutputsStart::Anew, Some(path), Some(state)) => {
            let length_now = std::fs::metadata(path).map_or(0, |metadata| metadata.len());
            let length =
                state.dead_letters_at_run_start(length_now).map_err(|problem| StartError::DeadLetter(std::io::Error::other(problem)))?;
            // Shorter than when the first run began: its dead letters were removed since, and
            // this run writes them again from the start.
            cut_back_to_checkpoint(path, length.min(length_now)).map_err(|error| cut_failed(path, error))?;
        }
        _ => {}
    }
    let destination = sink.description().to_owned();
    let (queue, letters) = mpsc::sync_channel(DEAD_LETTER_QUEUE);
    let observer = DeadLetterObserver { pipeline: pipeline.config.pipeline.name.get_ref().to_string(), monitor: monitor.clone() };
    let thread = spawn("dead-letter", move || write_dead_letters(sink, letters, &observer))?;
    Ok(StartedDeadLetters { queue, worker: ("dead-letter".into(), thread), destination, file })
}

/// Writes batches until every task has finished; makes the output durable when a task asks
/// (at a checkpoint) and at the end. Once the sink's reader has gone (standard output into a
/// closed pipe: `sluice run … | head`), the pipeline stops as on Ctrl-C, and what is still in
/// flight is taken and not written: no one is left to read it. A checkpoint then fails, so
/// that no saved progress passes records that were not written.
fn write_sink(mut sink: Sink, queue: Receiver<SinkMessage>, stop: &StopSignal) -> Result<(), SinkError> {
    let mut reader = Reader::Present;
    let mut flushes = Flushes::default();
    while let Some(message) = flushes.next(&queue) {
        match message {
            Some(SinkMessage::Batch(batch)) if reader == Reader::Present => reader = reader_after(sink.write(&batch), &sink, stop)?,
            Some(SinkMessage::Batch(_)) => {}
            Some(SinkMessage::Flush(done)) => flushes.ask(done),
            None => {
                if reader == Reader::Present {
                    reader = reader_after(sink.flush(), &sink, stop)?;
                }
                // Records taken but not written are not durable: a checkpoint that waits for them
                // fails (no progress past them is saved), as it did when the sink failed.
                flushes.answer(reader == Reader::Present);
            }
        }
    }
    match reader {
        Reader::Present => reader_after(sink.flush(), &sink, stop).map(drop),
        Reader::Gone => Ok(()),
    }
}

/// Flush requests (one per task at each checkpoint) answered together: each request asks that
/// what its task sent before it be durable, so one flush once the queue has run dry (or after
/// `FLUSH_AFTER` more messages) answers every request taken so far. A flush per request made a
/// hundred partition tasks wait for a hundred flushes of one producer, one after the other.
#[derive(Default)]
struct Flushes {
    waiting: Vec<Sender<()>>,
    taken_since: usize,
}

const FLUSH_AFTER: usize = 256;

impl Flushes {
    /// The next message; `Some(None)` when the waiting requests are due (flush, then
    /// `answer`); `None` once every sender has gone and nothing waits.
    fn next<T>(&mut self, queue: &Receiver<T>) -> Option<Option<T>> {
        if self.waiting.is_empty() {
            return queue.recv().ok().map(Some);
        }
        if self.taken_since >= FLUSH_AFTER {
            return Some(None);
        }
        self.taken_since += 1;
        match queue.try_recv() {
            Ok(message) => Some(Some(message)),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Some(None),
        }
    }

    fn ask(&mut self, done: Sender<()>) {
        self.waiting.push(done);
    }

    /// Answers every waiting request if the flush made their records durable; else drops them
    /// (their checkpoints fail).
    fn answer(&mut self, durable: bool) {
        for done in self.waiting.drain(..) {
            if durable {
                let _ = done.send(());
            }
        }
        self.taken_since = 0;
    }
}

/// Whether a sink's reader is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Present,
    Gone,
}

/// After a write or flush: the reader still there, gone (the pipeline is told to stop), or
/// the error.
fn reader_after(result: Result<(), SinkError>, sink: &Sink, stop: &StopSignal) -> Result<Reader, SinkError> {
    match result {
        Ok(()) => Ok(Reader::Present),
        Err(error) if error.is_reader_gone() => {
            tracing::info!(
                sink = sink.name(),
                "the reader of the output has gone (a closed pipe): stopping; records still in flight are not written"
            );
            stop.raise();
            Ok(Reader::Gone)
        }
        Err(error) => Err(error),
    }
}

/// Where dead letters are counted and shown, beside being written.
struct DeadLetterObserver {
    pipeline: String,
    monitor: Monitor,
}

impl DeadLetterObserver {
    fn saw(&self, letter: &DeadLetter) {
        self.monitor.metrics.dead_letter(&self.pipeline, letter.node(), letter.class);
        self.monitor.dead_letters.push(RecentDeadLetter {
            at_unix_ms: now_millis(),
            pipeline: self.pipeline.clone(),
            node: letter.node().to_owned(),
            class: letter.class.to_owned(),
            reason: letter.reason.clone(),
            record: letter.record.get(0).map(|record| RecentDeadLetter::record_text(record.value())).unwrap_or_default(),
        });
    }
}

fn write_dead_letters(mut sink: DeadLetterSink, queue: Receiver<DeadLetterMessage>, observer: &DeadLetterObserver) -> std::io::Result<u64> {
    let mut count = 0;
    let mut flushes = Flushes::default();
    while let Some(message) = flushes.next(&queue) {
        match message {
            Some(DeadLetterMessage::Letter(letter)) => {
                if count == 0 {
                    tracing::warn!(destination = sink.description(), "records are going to the dead-letter sink: {}", letter.reason);
                }
                sink.write(&letter)?;
                observer.saw(&letter);
                count += 1;
            }
            Some(DeadLetterMessage::Flush(done)) => flushes.ask(done),
            None => {
                sink.flush()?;
                flushes.answer(true);
            }
        }
    }
    sink.flush()?;
    Ok(count)
}
