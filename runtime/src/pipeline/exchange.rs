//! Keyed exchanges as a task sees them: where it sends the records that the next stage's
//! operator must receive by key. In one process they go to the next stage's tasks over
//! bounded channels; across processes, through a repartition topic (`crate::kafka`). Records
//! cross unchanged; only their routing depends on the key.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use super::key::{KeySelector, partition_of};
use super::task::{Barrier, TaskMessage};
use super::{OutputClosed, SourceBatch};
use crate::wasm::Batch;

/// How an exchange picks the instance of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeRouting {
    /// By a hash of the key read from these fields.
    Key(KeySelector),
    /// Every record to the one instance.
    Single,
}

/// A record that could not be routed (its key could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unroutable {
    /// Its position in the batch sent.
    pub index: usize,
    /// The record, alone in its batch.
    pub record: Batch,
    pub reason: String,
}

/// The positions of a batch's records in their source (one per record), where known (else
/// empty), and that source's name.
#[derive(Debug, Clone, Copy)]
pub struct SourcePositions<'a> {
    pub source: &'a Arc<str>,
    pub positions: &'a [u64],
}

/// Where one task sends the records of one exchange.
pub trait ExchangeOutput: Send {
    /// Sends `batch` for `input` of the exchange's operator; `sequence` numbers each record
    /// sent (where the transport needs it). Returns the records it could not route.
    /// `positions` are the records' positions in `source` where known (one per record), else
    /// empty.
    fn send(
        &mut self,
        input: u32,
        batch: Batch,
        positions: SourcePositions<'_>,
        sequence: &mut u64,
    ) -> Result<Vec<Unroutable>, OutputClosed>;
    /// What names this exchange's records in the sender's checkpoint, whatever the graph
    /// around it: the repartition topic (an exchange in process numbers nothing).
    fn stream(&self) -> &str {
        ""
    }
    /// How the exchange routes records (keys and partitions), for the sender's digest.
    fn routing(&self) -> String {
        String::new()
    }
    /// The task's sender epoch (`sequences::SenderEpoch::by`), which a repartition topic's
    /// records carry.
    fn sent_by(&mut self, _digest: u64) {}
    /// Event time reached `watermark` in this task.
    fn watermark(&mut self, watermark: i64) -> Result<(), OutputClosed>;
    /// A checkpoint barrier passed this task.
    fn barrier(&mut self, barrier: Barrier) -> Result<(), OutputClosed>;
    /// This task sends nothing more.
    fn end(&mut self) -> Result<(), OutputClosed>;
    /// The run is given up (a source with checkpoints failed): the next stage ends too, its
    /// last saved checkpoint kept. Only an exchange in this process can say so; a repartition
    /// topic's readers are told by their own partitions' tasks.
    fn abandon(&mut self) -> Result<(), OutputClosed> {
        Ok(())
    }
    /// Returns once everything sent is durable (a no-op in process, where checkpoints are
    /// aligned by barriers instead).
    fn flush(&mut self) -> Result<(), OutputClosed>;
    /// The time sends waited for room downstream since the last call (back-pressure).
    fn take_blocked(&mut self) -> Duration {
        Duration::ZERO
    }
}

/// An exchange to the tasks of the next stage in this process.
pub struct LocalExchange {
    routing: ExchangeRouting,
    downstream: Vec<SyncSender<TaskMessage>>,
    /// This task's index among the downstream tasks' upstreams.
    from: u32,
    key: String,
    /// Time spent waiting for a full downstream queue, since `take_blocked`.
    blocked: Cell<Duration>,
}

impl LocalExchange {
    pub fn new(routing: ExchangeRouting, downstream: Vec<SyncSender<TaskMessage>>, from: u32) -> LocalExchange {
        LocalExchange { routing, downstream, from, key: String::new(), blocked: Cell::new(Duration::ZERO) }
    }

    fn deliver(&self, instance: usize, input: u32, records: Batch, positions: Vec<u64>, source: &Arc<str>) -> Result<(), OutputClosed> {
        let source = (!positions.is_empty()).then(|| Arc::clone(source));
        let batch = SourceBatch { records, positions, origins: Vec::new(), source };
        let message = TaskMessage::Batch { from: self.from, input, batch };
        self.send_to(&self.downstream[instance], message)
    }

    /// To every task, even past one that has gone: the others must still hear an end. A
    /// watermark waits for room like a batch does, and its wait is back-pressure too.
    fn broadcast(&self, message: impl Fn() -> TaskMessage) -> Result<(), OutputClosed> {
        let failed = self.downstream.iter().filter(|task| self.send_to(task, message()).is_err()).count();
        if failed == 0 { Ok(()) } else { Err(OutputClosed::Exchange) }
    }

    /// Sends `message` to one task, counting its wait for room as back-pressure.
    fn send_to(&self, task: &SyncSender<TaskMessage>, message: TaskMessage) -> Result<(), OutputClosed> {
        let (sent, blocked) = send_timed(task, message);
        self.blocked.set(self.blocked.get() + blocked);
        sent.map_err(|_| OutputClosed::Exchange)
    }
}

impl ExchangeOutput for LocalExchange {
    fn send(&mut self, input: u32, batch: Batch, from: SourcePositions<'_>, _sequence: &mut u64) -> Result<Vec<Unroutable>, OutputClosed> {
        let (positions, source) = (from.positions, from.source);
        let count = self.downstream.len() as u32;
        let ExchangeRouting::Key(selector) = &self.routing else {
            return self.deliver(0, input, batch, positions.to_vec(), source).map(|()| Vec::new());
        };
        if count == 1 {
            return self.deliver(0, input, batch, positions.to_vec(), source).map(|()| Vec::new());
        }
        let mut unroutable = Vec::new();
        let mut instances = Vec::with_capacity(batch.len());
        let mut found = Vec::new();
        for record in batch.iter() {
            match selector.write_record(record, &mut found, &mut self.key) {
                Ok(()) => instances.push(Some(partition_of(self.key.as_bytes(), count) as usize)),
                Err(reason) => {
                    let reason = format!("cannot route the record by its key: {reason}");
                    unroutable.push(Unroutable { index: record.index(), record: batch.single(record.index()), reason });
                    instances.push(None);
                }
            }
        }
        let first = instances.first().copied().flatten();
        if unroutable.is_empty() && instances.iter().all(|instance| *instance == first) {
            // All to one instance: the batch goes as it is.
            if let Some(instance) = first {
                self.deliver(instance, input, batch, positions.to_vec(), source)?;
            }
            return Ok(unroutable);
        }
        let mut split = vec![(Batch::new(), Vec::new()); self.downstream.len()];
        for (record, instance) in batch.iter().zip(&instances) {
            if let Some(instance) = instance {
                split[*instance].0.push_record(record);
                if let Some(position) = positions.get(record.index()) {
                    split[*instance].1.push(*position);
                }
            }
        }
        for (instance, (records, positions)) in split.into_iter().enumerate().filter(|(_, (records, _))| !records.is_empty()) {
            self.deliver(instance, input, records, positions, source)?;
        }
        Ok(unroutable)
    }

    fn watermark(&mut self, watermark: i64) -> Result<(), OutputClosed> {
        self.broadcast(|| TaskMessage::Watermark { from: self.from, watermark })
    }

    fn barrier(&mut self, barrier: Barrier) -> Result<(), OutputClosed> {
        self.broadcast(|| TaskMessage::Barrier { from: self.from, barrier })
    }

    fn end(&mut self) -> Result<(), OutputClosed> {
        self.broadcast(|| TaskMessage::End { from: self.from })
    }

    fn abandon(&mut self) -> Result<(), OutputClosed> {
        self.broadcast(|| TaskMessage::Abandon)
    }

    fn take_blocked(&mut self) -> Duration {
        self.blocked.replace(Duration::ZERO)
    }

    fn flush(&mut self) -> Result<(), OutputClosed> {
        Ok(())
    }
}

/// Sends `message`, and returns how long the send waited for room in the queue (zero unless
/// it was full): the sender's back-pressured time.
pub fn send_timed<T>(queue: &SyncSender<T>, message: T) -> (Result<(), mpsc::SendError<T>>, Duration) {
    match queue.try_send(message) {
        Ok(()) => (Ok(()), Duration::ZERO),
        Err(TrySendError::Disconnected(message)) => (Err(mpsc::SendError(message)), Duration::ZERO),
        // Counted on the task's back-pressure clock while it waits (seen by scrapes meanwhile).
        Err(TrySendError::Full(message)) => crate::monitor::blocked::blocked(|| queue.send(message)),
    }
}
