//! The pipeline's outputs, each on its own thread: the sinks, fed by every task through
//! bounded queues, and the dead-letter sink.

use std::sync::mpsc::{self, Receiver, SyncSender};

use super::{StartError, Worker, spawn};
use crate::config::LoadedPipeline;
use crate::event_time::now_millis;
use crate::kafka::TransactionalProducer;
use crate::monitor::{Monitor, RecentDeadLetter};
use crate::pipeline::{DeadLetter, DeadLetterMessage, SinkMessage};
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
    monitor: &Monitor,
) -> Result<StartedSinks, StartError> {
    let mut started = StartedSinks { queues: Vec::new(), workers: Vec::new() };
    for config in &pipeline.config.sinks {
        let sink = Sink::build(config.get_ref(), pipeline, resuming, transactions, monitor)?;
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
    monitor: &Monitor,
) -> Result<StartedDeadLetters, StartError> {
    let config = pipeline.config.dead_letter.as_ref().map(|dead_letter| dead_letter.get_ref());
    let sink = DeadLetterSink::build(config, pipeline, transactions).map_err(StartError::DeadLetter)?;
    let destination = sink.description().to_owned();
    let (queue, letters) = mpsc::sync_channel(DEAD_LETTER_QUEUE);
    let observer = DeadLetterObserver { pipeline: pipeline.config.pipeline.name.get_ref().to_string(), monitor: monitor.clone() };
    let thread = spawn("dead-letter", move || write_dead_letters(sink, letters, &observer))?;
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
    for message in queue {
        match message {
            DeadLetterMessage::Letter(letter) => {
                if count == 0 {
                    tracing::warn!(destination = sink.description(), "records are going to the dead-letter sink: {}", letter.reason);
                }
                sink.write(&letter)?;
                observer.saw(&letter);
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
