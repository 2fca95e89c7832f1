//! Records held back until the watermark passes them, then given in event-time order: what an
//! operator with `order = "event-time"` receives behind its exchange, so that its results do not
//! depend on how the records of a key interleave from several upstream instances, sources or
//! partitions (which parallelism and timing decide).
//!
//! Ties in event time are broken by the records' bytes (value, key, headers, then the input),
//! never by arrival, so the order is a function of the records alone. A record that arrives
//! behind the watermark (late) cannot be put in order any more: it is given at once, as
//! without ordering. The held records are part of the task's checkpoint.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::wasm::Batch;

/// Most bytes of records one task holds: past it, the earliest are given before the watermark
/// passes them (and a warning says that order may suffer), so that a watermark held back by an
/// idle upstream cannot exhaust memory.
pub const MAX_HELD_BYTES: usize = 256 << 20;

/// Released records are given in batches of at most this many records and bytes.
const RELEASE_RECORDS: usize = 1024;
const RELEASE_BYTES: usize = 1 << 20;

/// A record held for its turn, with the operator input it is for, and where it was read (for
/// the dead letters of the operator it reaches; last, so that it orders only equal records).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeldRecord {
    pub timestamp: i64,
    pub value: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub input: u32,
    pub read_at: Option<ReadAt>,
}

/// Where a record was read: its source and its position there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadAt {
    pub source: Arc<str>,
    pub position: u64,
}

/// Records given to the operator at once, for one input: positions (one per record, or none)
/// in `source`, the source they were read from.
#[derive(Debug, Default)]
pub struct Released {
    pub input: u32,
    pub batch: Batch,
    pub source: Option<Arc<str>>,
    pub positions: Vec<u64>,
}

impl Released {
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// Where the records of a batch were read: their source and one position per record.
#[derive(Debug, Clone, Copy)]
pub struct BatchSource<'a> {
    pub source: &'a Arc<str>,
    pub positions: &'a [u64],
}

impl HeldRecord {
    fn weight(&self) -> usize {
        self.value.len()
            + self.key.as_ref().map_or(0, Vec::len)
            + self.headers.iter().map(|(name, value)| name.len() + value.len()).sum::<usize>()
            + 64
    }
}

/// The records one task holds, earliest first.
#[derive(Debug, Default)]
pub struct EventTimeOrder {
    held: BinaryHeap<Reverse<HeldRecord>>,
    bytes: usize,
    warned: bool,
    /// The most records of one released batch, if fewer than [`RELEASE_RECORDS`] (the
    /// pipeline's `batch_size`).
    release_records: Option<usize>,
}

impl EventTimeOrder {
    /// Holds the records a checkpoint held.
    pub fn restored(held: Vec<HeldRecord>) -> EventTimeOrder {
        let mut order = EventTimeOrder::default();
        for record in held {
            order.bytes += record.weight();
            order.held.push(Reverse(record));
        }
        order
    }

    /// Releases batches of at most `records` records (the pipeline's `batch_size`), fewer than
    /// [`RELEASE_RECORDS`] if it is less.
    pub fn releasing_at_most(mut self, records: usize) -> EventTimeOrder {
        self.release_records = Some(records.clamp(1, RELEASE_RECORDS));
        self
    }

    /// Holds the records of `batch` (for `input`, read where `read` says when it is known) that
    /// the watermark has not passed; returns the others (late), in arrival order, to be given
    /// at once.
    pub fn hold(&mut self, input: u32, batch: &Batch, read: Option<BatchSource<'_>>, watermark: Option<i64>) -> Released {
        let mut late = Released { input, source: read.map(|read| Arc::clone(read.source)), ..Released::default() };
        let read_at = |index: usize| {
            let read = read?;
            Some(ReadAt { source: Arc::clone(read.source), position: *read.positions.get(index)? })
        };
        for (index, record) in batch.iter().enumerate() {
            // Late as a source judges it: behind the watermark (one at the watermark may
            // still have others of its millisecond to come).
            if watermark.is_some_and(|watermark| record.timestamp() < watermark) {
                late.batch.push_record(record);
                late.positions.extend(read_at(index).map(|read_at| read_at.position));
                continue;
            }
            let held = HeldRecord {
                timestamp: record.timestamp(),
                value: record.value().to_vec(),
                key: record.key().map(<[u8]>::to_vec),
                headers: record.headers().map(|(name, value)| (name.to_vec(), value.to_vec())).collect(),
                input,
                read_at: read_at(index),
            };
            self.bytes += held.weight();
            self.held.push(Reverse(held));
        }
        if late.positions.len() != late.batch.len() {
            late.positions.clear();
        }
        late
    }

    /// The held records the watermark has passed (those behind it; all of them at the end of
    /// input), in order, as batches of one input each. A record at the watermark stays: others
    /// of its millisecond may still come, and they must be given in order with it.
    pub fn release(&mut self, watermark: i64) -> Vec<Released> {
        self.release_while(|held, _| held.timestamp < watermark || watermark == i64::MAX)
    }

    /// Past `MAX_HELD_BYTES`, the earliest records, until half of it is held.
    pub fn release_overflow(&mut self) -> Vec<Released> {
        if self.bytes <= MAX_HELD_BYTES {
            return Vec::new();
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                held_bytes = self.bytes,
                "records held for event-time order exceed {} MiB (an upstream's watermark stays behind): the earliest are \
                 given before the watermark passes them, and a later record may come before them",
                MAX_HELD_BYTES >> 20
            );
        }
        self.release_while(|_, bytes| bytes > MAX_HELD_BYTES / 2)
    }

    /// What a checkpoint keeps: every held record, earliest first.
    pub fn snapshot(&self) -> Vec<HeldRecord> {
        let mut held: Vec<HeldRecord> = self.held.iter().map(|Reverse(record)| record.clone()).collect();
        held.sort();
        held
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Releases the earliest records while `more` says so, in batches of one input and one
    /// provenance each (a source with a position for every record, or none).
    fn release_while(&mut self, mut more: impl FnMut(&HeldRecord, usize) -> bool) -> Vec<Released> {
        let mut released: Vec<Released> = Vec::new();
        let mut bytes_in_last = 0;
        let most_records = self.release_records.unwrap_or(RELEASE_RECORDS);
        while let Some(Reverse(next)) = self.held.peek() {
            if !more(next, self.bytes) {
                break;
            }
            let Some(Reverse(record)) = self.held.pop() else { break };
            let weight = record.weight();
            self.bytes -= weight;
            let source = record.read_at.as_ref().map(|read_at| &read_at.source);
            let full = released.last().is_none_or(|last| {
                last.input != record.input
                    || last.source.as_ref() != source
                    || last.batch.len() >= most_records
                    || bytes_in_last + weight > RELEASE_BYTES
            });
            if full {
                released.push(Released { input: record.input, source: source.cloned(), ..Released::default() });
                bytes_in_last = 0;
            }
            bytes_in_last += weight;
            if let Some(last) = released.last_mut() {
                let headers = record.headers.iter().map(|(name, value)| (&name[..], &value[..]));
                last.batch.push(record.key.as_deref(), &record.value, record.timestamp, headers);
                last.positions.extend(record.read_at.map(|read_at| read_at.position));
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[(i64, &str)]) -> Batch {
        let mut batch = Batch::new();
        for (timestamp, value) in records {
            batch.push(None, value.as_bytes(), *timestamp, []);
        }
        batch
    }

    fn values(released: &[Released]) -> Vec<(u32, String)> {
        released
            .iter()
            .flat_map(|released| {
                released.batch.iter().map(move |record| (released.input, String::from_utf8_lossy(record.value()).into_owned()))
            })
            .collect()
    }

    #[test]
    fn records_come_out_in_event_time_order_once_the_watermark_passes_them_whatever_their_arrival() {
        let mut one = EventTimeOrder::default();
        let mut other = EventTimeOrder::default();
        let records = [(5, "e"), (1, "b"), (3, "d"), (1, "a"), (2, "c")];
        assert!(one.hold(0, &batch(&records), None, None).is_empty());
        for record in records.iter().rev() {
            assert!(other.hold(0, &batch(&[*record]), None, None).is_empty());
        }
        for order in [&mut one, &mut other] {
            assert_eq!(values(&order.release(3)), vec![(0, "a".into()), (0, "b".into()), (0, "c".into())]);
            assert_eq!(order.len(), 2);
            assert_eq!(values(&order.release(i64::MAX)), vec![(0, "d".into()), (0, "e".into())]);
            assert!(order.is_empty());
        }
    }

    #[test]
    fn a_late_record_is_given_at_once_and_inputs_stay_apart() {
        let mut order = EventTimeOrder::default();
        let late = order.hold(0, &batch(&[(1, "late"), (9, "held")]), None, Some(4));
        assert_eq!(late.batch.len(), 1);
        assert!(order.hold(1, &batch(&[(7, "right")]), None, Some(4)).is_empty());
        assert_eq!(values(&order.release(10)), vec![(1, "right".into()), (0, "held".into())]);
    }

    /// A watermark W says no record before W is to come: records at W may still, so a record
    /// at the watermark is held, and waits for those of its millisecond.
    #[test]
    fn a_record_at_the_watermark_waits_for_the_others_of_its_millisecond() {
        let mut order = EventTimeOrder::default();
        assert!(order.hold(0, &batch(&[(4, "z at 4")]), None, Some(4)).is_empty(), "not late");
        assert!(order.release(4).is_empty());
        assert!(order.hold(0, &batch(&[(4, "a at 4")]), None, Some(4)).is_empty());
        assert_eq!(values(&order.release(5)), vec![(0, "a at 4".into()), (0, "z at 4".into())]);
        order.hold(0, &batch(&[(i64::MAX, "at the end")]), None, None);
        assert_eq!(values(&order.release(i64::MAX)), vec![(0, "at the end".into())]);
    }

    #[test]
    fn released_batches_hold_no_more_than_the_pipelines_batch_size() {
        let mut order = EventTimeOrder::default().releasing_at_most(3);
        let records: Vec<(i64, String)> = (0..10).map(|timestamp| (timestamp, format!("r{timestamp}"))).collect();
        let records: Vec<(i64, &str)> = records.iter().map(|(timestamp, text)| (*timestamp, text.as_str())).collect();
        order.hold(0, &batch(&records), None, None);
        let sizes: Vec<usize> = order.release(i64::MAX).iter().map(|released| released.batch.len()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
    }

    #[test]
    fn a_checkpoint_keeps_what_is_held() {
        let mut order = EventTimeOrder::default();
        order.hold(0, &batch(&[(3, "c"), (1, "a")]), None, None);
        let mut restored = EventTimeOrder::restored(order.snapshot());
        assert_eq!(values(&restored.release(i64::MAX)), values(&order.release(i64::MAX)));
    }

    #[test]
    fn past_the_byte_limit_the_earliest_are_given_early() {
        let mut order = EventTimeOrder::default();
        let large = "x".repeat(1 << 20);
        for timestamp in 0..300 {
            order.hold(0, &batch(&[(timestamp, &large)]), None, None);
        }
        let released: usize = order.release_overflow().iter().map(|released| released.batch.len()).sum();
        assert!(released > 100, "{released}");
        assert!(order.bytes <= MAX_HELD_BYTES / 2);
        assert!(order.release_overflow().is_empty());
    }
}
