//! Where a record an operator refused was read: by its index in the batch a task received, or,
//! after earlier operators changed the batch, by finding an equal record among those received.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use super::operator::DeadRecord;
use crate::wasm::Batch;

/// Below this many records, an entry batch is searched record by record: building an index
/// would cost more than the search.
const INDEXED_FROM: usize = 32;

/// The records of the batch a task received, with their source positions: what dead letters
/// of later operators are traced back to.
#[derive(Clone, Copy)]
pub struct EntryRecords<'a> {
    pub records: &'a Batch,
    pub positions: &'a [u64],
    /// The records by content, made when the first dead letter is traced (most batches have
    /// none): many dead letters of a large batch then cost one pass, not one pass each.
    pub index: &'a EntryIndex,
}

/// The first record of each content hash in an entry batch, built on first use.
#[derive(Default)]
pub struct EntryIndex(OnceCell<ContentIndex>);

struct ContentIndex {
    hasher: RandomState,
    first_by_hash: HashMap<u64, usize>,
}

/// What a record is compared on: value, key and event time.
type Content<'r> = (&'r [u8], Option<&'r [u8]>, i64);

fn content<'r>(record: &sluice_sdk::Record<'r>) -> Content<'r> {
    (record.value(), record.key(), record.timestamp())
}

impl EntryIndex {
    /// The index in `records` of the first record equal to `wanted`.
    fn find(&self, records: &Batch, wanted: Content<'_>) -> Option<usize> {
        let scan = || records.iter().position(|source| content(&source) == wanted);
        if records.len() < INDEXED_FROM {
            return scan();
        }
        let built = self.0.get_or_init(|| ContentIndex::of(records));
        let index = *built.first_by_hash.get(&built.hasher.hash_one(wanted))?;
        // Two contents with one hash: the index holds the first, the search finds the other.
        if records.get(index).is_some_and(|record| content(&record) == wanted) { Some(index) } else { scan() }
    }
}

impl ContentIndex {
    fn of(records: &Batch) -> ContentIndex {
        let hasher = RandomState::new();
        let mut first_by_hash = HashMap::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            first_by_hash.entry(hasher.hash_one(content(&record))).or_insert(index);
        }
        ContentIndex { hasher, first_by_hash }
    }
}

/// How a record given to an operator relates to its source position.
#[derive(Clone, Copy)]
pub enum Lineage<'a> {
    /// The records are the entry batch: record i is at `positions[i]`.
    Positions(&'a [u64]),
    /// The records came out of earlier operators: one equal to an entry record (key, value,
    /// event time) is that record.
    Content(EntryRecords<'a>),
    /// Emitted on a watermark, or arrived without positions.
    Unknown,
}

impl Lineage<'_> {
    pub fn position(&self, dead: &DeadRecord) -> Option<u64> {
        match self {
            Lineage::Positions(positions) => positions.get(dead.index).copied(),
            Lineage::Content(entry) => {
                let record = dead.record.get(0)?;
                let index = entry.index.find(entry.records, content(&record))?;
                entry.positions.get(index).copied()
            }
            Lineage::Unknown => None,
        }
    }

    /// The lineage of what an operator emits from records of this lineage.
    pub fn downstream<'b>(&self, entry: Option<EntryRecords<'b>>) -> Lineage<'b> {
        match entry {
            Some(entry) if !matches!(self, Lineage::Unknown) => Lineage::Content(entry),
            _ => Lineage::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(values: &[String]) -> Batch {
        let mut batch = Batch::new();
        for (index, value) in values.iter().enumerate() {
            batch.push(Some(b"k"), value.as_bytes(), index as i64 % 3, []);
        }
        batch
    }

    fn dead(value: &str, timestamp: i64) -> DeadRecord {
        let mut record = Batch::new();
        record.push(Some(b"k"), value.as_bytes(), timestamp, []);
        DeadRecord { index: 0, record, reason: String::new(), class: "plugin" }
    }

    #[test]
    fn a_record_changed_by_no_operator_is_found_at_its_position_in_small_and_large_batches() {
        for size in [5, INDEXED_FROM, 1000] {
            let values: Vec<String> = (0..size).map(|index| format!("{{\"n\":{}}}", index % (size - 2))).collect();
            let records = batch_of(&values);
            let positions: Vec<u64> = (0..size as u64).map(|index| 100 + index).collect();
            let index = EntryIndex::default();
            let lineage = Lineage::Content(EntryRecords { records: &records, positions: &positions, index: &index });
            for wanted in 0..size {
                let found = lineage.position(&dead(&values[wanted], wanted as i64 % 3));
                // Records equal in value, key and event time are one record: the first is named.
                let first = values.iter().enumerate().position(|(index, value)| *value == values[wanted] && index % 3 == wanted % 3);
                assert_eq!(found, first.map(|first| 100 + first as u64), "size {size}, record {wanted}");
            }
            assert_eq!(lineage.position(&dead("{\"n\":-1}", 0)), None);
            assert_eq!(lineage.position(&dead(&values[0], 1)), None, "another event time is another record");
        }
    }
}
