//! The records a join keeps, per key and side, and their forgetting: by event time, or, for
//! left records with an interval, once the watermark passes its end.

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use sluice_sdk::{KeyText, VersionedState};

use crate::Side;
use crate::fields::{Interval, end_is_passed};

/// A kept record: its event time and its JSON text; for a left record with `within`, its
/// interval, and with `best`, its best match so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRecord {
    pub timestamp: i64,
    #[serde(with = "text_bytes")]
    pub value: Vec<u8>,
    /// The order records were kept in (set by [`Kept::add`]): it orders emissions.
    pub arrival: u64,
    pub interval: Option<Interval>,
    /// Boxed: right records, the most kept, have none.
    pub best: Option<Box<BestMatch>>,
}

impl KeptRecord {
    pub fn new(timestamp: i64, value: Vec<u8>, interval: Option<Interval>, best: Option<BestMatch>) -> KeptRecord {
        KeptRecord { timestamp, value, arrival: 0, interval, best: best.map(Box::new) }
    }
}

/// A left record's best matching right record so far: its rank (the `best` field), event time
/// and JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMatch {
    pub rank: f64,
    pub timestamp: i64,
    #[serde(with = "text_bytes")]
    pub value: Vec<u8>,
}

/// A record's text kept as its bytes, as the batch held them (not checked or converted again),
/// and serialised as bytes: postcard (the only format states are written in) writes bytes as
/// it writes a string (its length, then the bytes), so states that kept `String`s read the
/// same.
mod text_bytes {
    use std::fmt;

    use serde::de::{Deserializer, Error, Visitor};
    use serde::ser::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(TextBytes)
    }

    struct TextBytes;

    impl Visitor<'_> for TextBytes {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a record's text")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Vec<u8>, E> {
            Ok(text.as_bytes().to_vec())
        }

        fn visit_string<E: Error>(self, text: String) -> Result<Vec<u8>, E> {
            Ok(text.into_bytes())
        }
    }
}

/// Both sides' records of one key, each in the order they were kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyRecords {
    pub(crate) left: Vec<KeptRecord>,
    pub(crate) right: Vec<KeptRecord>,
}

/// Every kept record, by key; by event time, for forgetting; and left records with an interval
/// by its end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// Hashed (with foldhash, faster than std's SipHash): a record finds its key's partners in
    /// constant time (nothing depends on the order of keys; serialised, a map as before).
    pub(crate) keys: HashMap<KeyText, KeyRecords, RandomState>,
    /// (event time, key) of every key holding a record of that event time without an interval.
    pub(crate) by_time: BTreeSet<(i64, KeyText)>,
    /// (end, arrival, key) of every left record with an interval.
    pub(crate) by_end: BTreeSet<(i64, u64, KeyText)>,
    pub(crate) records: usize,
    /// How many records were kept so far: the next record's `arrival`.
    pub(crate) arrivals: u64,
    /// The last watermark seen.
    pub watermark: Option<i64>,
    /// The memory the kept records take, estimated: not saved, counted again after a restore.
    #[serde(skip)]
    pub(crate) bytes: KeptBytes,
}

/// An estimate of the memory kept records take: each one's value (and best match's), its key
/// three times (in the map of keys, the index by time and the key's own text), and about 300
/// bytes of entries in the maps, the indexes and the allocator's headers (measured in the
/// plugin's WebAssembly memory: a record of a key of its own takes about that much beside its
/// bytes). Derived from the records, so not compared: two `Kept` with the same records are
/// equal whatever was counted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeptBytes(Option<usize>);

impl PartialEq for KeptBytes {
    fn eq(&self, _: &KeptBytes) -> bool {
        true
    }
}

/// What one kept record of `key` costs in memory (see [`KeptBytes`]).
pub fn record_cost(key: &KeyText, record: &KeptRecord) -> usize {
    cost_of(key, &record.value, record.best.as_deref())
}

/// What a record of `key` with this value and best match would cost kept (see [`KeptBytes`]).
pub fn cost_of(key: &KeyText, value: &[u8], best: Option<&BestMatch>) -> usize {
    const ENTRIES: usize = 300;
    ENTRIES + 3 * key.as_str().len() + value.len() + best.map_or(0, |best| BEST_MATCH_ENTRY + best.value.len())
}

/// A best match's box and its allocator header, beside its text.
pub(crate) const BEST_MATCH_ENTRY: usize = 48;

/// Version 2 added the records' arrival, interval and best match and the index by end;
/// version 1 is read by [`crate::migrate`].
impl VersionedState for Kept {
    const VERSION: u32 = 2;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        crate::migrate::from_version(version, bytes)
    }
}

impl Kept {
    /// The kept records of the other side than `side` with key `key`.
    pub fn partners(&self, key: &KeyText, side: Side) -> &[KeptRecord] {
        self.keys.get(key).map_or(&[], |records| match side {
            Side::Left => &records.right,
            Side::Right => &records.left,
        })
    }

    /// The kept left records of `key`, to update their best matches.
    pub fn lefts_mut(&mut self, key: &KeyText) -> &mut [KeptRecord] {
        self.keys.get_mut(key).map_or(&mut [], |records| &mut records.left)
    }

    pub fn add(&mut self, key: &KeyText, side: Side, mut record: KeptRecord) {
        let cost = record_cost(key, &record);
        if let Some(bytes) = self.bytes.0.as_mut() {
            *bytes += cost;
        }
        record.arrival = self.arrivals;
        self.arrivals += 1;
        match (side, record.interval) {
            (Side::Left, Some(interval)) => self.by_end.insert((interval.to, record.arrival, key.clone())),
            _ => self.by_time.insert((record.timestamp, key.clone())),
        };
        let records = match self.keys.get_mut(key) {
            Some(records) => records,
            None => self.keys.entry(key.clone()).or_default(),
        };
        let records = match side {
            Side::Left => &mut records.left,
            Side::Right => &mut records.right,
        };
        // Room for one, not the four a first push makes: most keys keep one record a side.
        if records.capacity() == 0 {
            records.reserve_exact(1);
        }
        records.push(record);
        self.records += 1;
    }

    /// Forgets every record without an interval whose event time is before `horizon`.
    pub fn forget_before(&mut self, horizon: i64) {
        while self.by_time.first().is_some_and(|(timestamp, _)| *timestamp < horizon) {
            let Some((_, key)) = self.by_time.pop_first() else { break };
            // Taken out and put back unless emptied: one lookup for a key that had one record.
            let Some((key, mut records)) = self.keys.remove_entry(&key) else { continue };
            let before = records.left.len() + records.right.len();
            let stays = |record: &KeptRecord| record.interval.is_some() || record.timestamp >= horizon;
            let freed: usize =
                records.left.iter().chain(&records.right).filter(|record| !stays(record)).map(|record| record_cost(&key, record)).sum();
            self.free(freed);
            records.left.retain(stays);
            records.right.retain(stays);
            self.records -= before - records.left.len() - records.right.len();
            self.put_back_unless_empty(key, records);
        }
    }

    /// Removes and returns the left records whose interval `watermark` closes, by end, then
    /// arrival.
    pub fn close_before(&mut self, watermark: i64) -> Vec<KeptRecord> {
        let mut closed = Vec::new();
        while self.by_end.first().is_some_and(|(to, _, _)| end_is_passed(*to, watermark)) {
            let Some((_, arrival, key)) = self.by_end.pop_first() else { break };
            let Some((key, mut records)) = self.keys.remove_entry(&key) else { continue };
            if let Some(position) = records.left.iter().position(|record| record.arrival == arrival) {
                let record = records.left.remove(position);
                self.free(record_cost(&key, &record));
                closed.push(record);
                self.records -= 1;
            }
            self.put_back_unless_empty(key, records);
        }
        closed
    }

    /// Puts a key's records taken out of `keys` back, unless none is left.
    fn put_back_unless_empty(&mut self, key: KeyText, records: KeyRecords) {
        if !records.left.is_empty() || !records.right.is_empty() {
            self.keys.insert(key, records);
        }
    }

    /// How many records are kept.
    pub fn len(&self) -> usize {
        self.records
    }

    /// The memory the kept records take, estimated (see [`KeptBytes`]); counted once after a
    /// restore, then kept up to date.
    pub fn bytes(&mut self) -> usize {
        if let Some(bytes) = self.bytes.0 {
            return bytes;
        }
        let counted = self
            .keys
            .iter()
            .flat_map(|(key, records)| records.left.iter().chain(&records.right).map(move |record| record_cost(key, record)))
            .sum();
        self.bytes = KeptBytes(Some(counted));
        counted
    }

    /// Notes a best match replacing another in a kept record: `before` and `after` bytes.
    pub fn best_replaced(&mut self, before: usize, after: usize) {
        if let Some(bytes) = self.bytes.0.as_mut() {
            *bytes = (*bytes + after).saturating_sub(before);
        }
    }

    fn free(&mut self, freed: usize) {
        if let Some(bytes) = self.bytes.0.as_mut() {
            *bytes = bytes.saturating_sub(freed);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}
