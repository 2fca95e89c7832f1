//! The pipeline's outputs, each on its own thread: the sinks, fed by every task through
//! bounded queues, and the dead-letter sink.

use std::sync::mpsc::{self, Receiver, SyncSender};

use super::{StartError, Worker, spawn};
use crate::config::LoadedPipeline;
use crate::kafka::TransactionalProducer;
use crate::pipeline::{DeadLetterMessage, SinkMessage};
use crate::sink::{DeadLetterSink, Sink, SinkError};

/// Output batches queued for each sink.
const SINK_QUEUE: usize = 16;
/// Dead letters queued for the dead-letter sink.
const DEAD_LETTER_QUEUE: usize = 4096;

/// The started sinks: the queues feeding them (by the graph's sink index) and their threads.
pub struct StartedSinks {
    pub queues: Vec<SyncSender<SinkMessage>>,
    pub workers: Vec<Worker<Result<(), SinkError>>>,
}

/// The started dead-letter sink.
pub struct StartedDeadLetters {
    pub queue: SyncSender<DeadLetterMessage>,
    pub worker: Worker<std::io::Result<u64>>,
    pub destination: String,
}

/// Opens the sinks; when the pipeline resumes from checkpoints, output files are continued
/// rather than started afresh.
pub fn start_sinks(
    pipeline: &LoadedPipeline,
    resuming: bool,
    transactions: Option<&TransactionalProducer>,
) -> Result<StartedSinks, StartError> {
    let mut started = StartedSinks { queues: Vec::new(), workers: Vec::new() };
    for config in &pipeline.config.sinks {
        let sink = Sink::build(config.get_ref(), pipeline, resuming, transactions)?;
        let (sender, queue) = mpsc::sync_channel(SINK_QUEUE);
        let name = sink.name().to_owned();
        let thread = spawn(&format!("sink-{name}"), move || write_sink(sink, queue))?;
        started.queues.push(sender);
        started.workers.push((format!("sink {name}"), thread));
    }
    Ok(started)
}

/// Opens the dead-letter sink (by default `<pipeline>.dead-letter.jsonl`).
pub fn start_dead_letters(
    pipeline: &LoadedPipeline,
    transactions: Option<&TransactionalProducer>,
) -> Result<StartedDeadLetters, StartError> {
    let config = pipeline.config.dead_letter.as_ref().map(|dead_letter| dead_letter.get_ref());
    let sink = DeadLetterSink::build(config, pipeline, transactions).map_err(StartError::DeadLetter)?;
    let destination = sink.description().to_owned();
    let (queue, letters) = mpsc::sync_channel(DEAD_LETTER_QUEUE);
    let thread = spawn("dead-letter", move || write_dead_letters(sink, letters))?;
    Ok(StartedDeadLetters { queue, worker: ("dead-letter".into(), thread), destination })
}

/// Writes batches until every task has finished; makes the output durable when a task asks
/// (at a checkpoint) and at the end.
fn write_sink(mut sink: Sink, queue: Receiver<SinkMessage>) -> Result<(), SinkError> {
    for message in queue {
        match message {
            SinkMessage::Batch(batch) => sink.write(&batch)?,
            SinkMessage::Flush(done) => {
                sink.flush()?;
                let _ = done.send(());
            }
        }
    }
    sink.flush()
}

fn write_dead_letters(mut sink: DeadLetterSink, queue: Receiver<DeadLetterMessage>) -> std::io::Result<u64> {
    let mut count = 0;
    for message in queue {
        match message {
            DeadLetterMessage::Letter(letter) => {
                if count == 0 {
                    tracing::warn!(destination = sink.description(), "records are going to the dead-letter sink: {}", letter.reason);
                }
                sink.write(&letter)?;
                count += 1;
            }
            DeadLetterMessage::Flush(done) => {
                sink.flush()?;
                let _ = done.send(());
            }
        }
    }
    sink.flush()?;
    Ok(count)
}
