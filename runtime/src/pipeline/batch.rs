//! Source batches: records read together from one source, with their positions in it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_sdk::fields::{Field, ObjectWriter};

use crate::wasm::Batch;

/// A batch from a source, with each record's position in that source (line number,
/// sequence number, offset).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SourceBatch {
    pub records: Batch,
    pub positions: Vec<u64>,
    /// From a repartition topic: which upstream task sent each record, and its sequence
    /// number there (to drop what an upstream sends again after a restart). Empty otherwise.
    pub origins: Vec<Origin>,
    /// From an in-process exchange, with positions: the source they are positions in (else
    /// the receiving stage's own).
    pub source: Option<Arc<str>>,
}

/// Who sent a record through a repartition topic, and its sequence number in that sender's
/// stream of records for this input (`sequences.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the sender among the task's upstreams.
    pub upstream: u32,
    /// The input of the operator the record is for.
    pub input: u32,
    pub sequence: u64,
    /// The digest of what decided the record at its sender (0: not said).
    pub by: u64,
}

impl SourceBatch {
    /// Records without positions (they came through an in-process exchange).
    pub fn of(records: Batch) -> SourceBatch {
        SourceBatch { records, positions: Vec::new(), origins: Vec::new(), source: None }
    }
}

impl SourceBatch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// An empty batch with room for what this one holds: a source's batches are alike, and
    /// growing each from nothing copied its bytes about twice over.
    fn empty_like(&self) -> SourceBatch {
        let records = Batch {
            bytes: Vec::with_capacity(self.records.bytes.len()),
            events: Vec::with_capacity(self.records.events.len()),
            headers: Vec::with_capacity(self.records.headers.len()),
        };
        let (positions, origins) = (Vec::with_capacity(self.positions.len()), Vec::with_capacity(self.origins.len()));
        SourceBatch { records, positions, origins, source: None }
    }
}

/// Groups records into batches of at most `max_records`, or whatever arrived within `linger`.
#[derive(Debug)]
pub struct Batcher {
    max_records: usize,
    linger: Duration,
    current: SourceBatch,
    first_added: Option<Instant>,
}

impl Batcher {
    pub fn new(max_records: usize, linger: Duration) -> Batcher {
        Batcher { max_records: max_records.max(1), linger, current: SourceBatch::default(), first_added: None }
    }

    /// Adds a record; returns a full batch when this one filled it.
    pub fn push<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        position: u64,
    ) -> Option<SourceBatch> {
        self.current.records.push(key, value, timestamp, headers);
        self.added(position)
    }

    /// [`Batcher::push`] with `fields`, when given, as the record's field index: the fields of
    /// `value` as [`sluice_sdk::fields::Indexer::scan`] found them.
    pub fn push_with_fields<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        fields: Option<&[Field]>,
        timestamp: i64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        position: u64,
    ) -> Option<SourceBatch> {
        match fields {
            Some(fields) => self.current.records.push_indexed(key, value, fields, timestamp, headers),
            None => self.current.records.push(key, value, timestamp, headers),
        }
        self.added(position)
    }

    /// Adds a record whose payload is the object `object` holds, with its field index (no
    /// headers); returns a full batch when this one filled it.
    pub fn push_object(&mut self, key: Option<&[u8]>, object: &ObjectWriter, timestamp: i64, position: u64) -> Option<SourceBatch> {
        self.current.records.push_object(key, object, timestamp);
        self.added(position)
    }

    /// After a record was added at `position`: the batch, if it is full.
    fn added(&mut self, position: u64) -> Option<SourceBatch> {
        self.first_added.get_or_insert_with(Instant::now);
        self.current.positions.push(position);
        if self.current.len() >= self.max_records { self.take() } else { None }
    }

    /// Adds a record that came through a repartition topic, with its origin.
    pub fn push_with_origin<'h>(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        position: u64,
        origin: Origin,
    ) -> Option<SourceBatch> {
        self.current.origins.push(origin);
        self.push(key, value, timestamp, headers, position)
    }

    /// Whether no record waits.
    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// The pending batch, if its linger time has passed.
    pub fn poll_linger(&mut self, now: Instant) -> Option<SourceBatch> {
        match self.first_added {
            Some(first) if now.saturating_duration_since(first) >= self.linger => self.take(),
            _ => None,
        }
    }

    /// How long until the pending batch must be sent, if one is pending.
    pub fn linger_left(&self) -> Option<Duration> {
        self.first_added.map(|first| self.linger.saturating_sub(first.elapsed()))
    }

    /// The pending batch, whatever its size (at the end of the input).
    pub fn take(&mut self) -> Option<SourceBatch> {
        self.first_added = None;
        if self.current.is_empty() {
            return None;
        }
        let next = self.current.empty_like();
        Some(std::mem::replace(&mut self.current, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fill_to_the_limit_and_keep_positions() {
        let mut batcher = Batcher::new(2, Duration::from_secs(60));
        assert!(batcher.push(None, b"1", 0, [], 10).is_none());
        let batch = batcher.push(Some(b"k"), b"2", 5, [(&b"h"[..], &b"v"[..])], 11).unwrap();
        assert_eq!(batch.positions, vec![10, 11]);
        let second = batch.records.get(1).unwrap();
        assert_eq!((second.key(), second.value(), second.timestamp()), (Some(&b"k"[..]), &b"2"[..], 5));
        assert_eq!(second.headers().collect::<Vec<_>>(), vec![(&b"h"[..], &b"v"[..])]);
        assert!(batcher.push(None, b"3", 0, [], 12).is_none());
        assert!(batcher.poll_linger(Instant::now()).is_none());
        assert_eq!(batcher.take().unwrap().positions, vec![12]);
        assert!(batcher.take().is_none());
    }

    #[test]
    fn linger_releases_partial_batches() {
        let mut batcher = Batcher::new(100, Duration::ZERO);
        batcher.push(None, b"1", 0, [], 0);
        assert_eq!(batcher.poll_linger(Instant::now()).map(|b| b.len()), Some(1));
        assert_eq!(batcher.linger_left(), None);
    }
}
