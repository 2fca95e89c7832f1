//! The records a join keeps, per key and side, and their forgetting: by event time, or, for
//! left records with an interval, once the watermark passes its end.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use crate::Side;
use crate::fields::{Interval, end_is_passed};

/// A kept record: its event time and its JSON text; for a left record with `within`, its
/// interval, and with `best`, its best match so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptRecord {
    pub timestamp: i64,
    pub value: String,
    /// The order records were kept in (set by [`Kept::add`]): it orders emissions.
    pub arrival: u64,
    pub interval: Option<Interval>,
    /// Boxed: right records, the most kept, have none.
    pub best: Option<Box<BestMatch>>,
}

impl KeptRecord {
    pub fn new(timestamp: i64, value: String, interval: Option<Interval>, best: Option<BestMatch>) -> KeptRecord {
        KeptRecord { timestamp, value, arrival: 0, interval, best: best.map(Box::new) }
    }
}

/// A left record's best matching right record so far: its rank (the `best` field), event time
/// and JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMatch {
    pub rank: f64,
    pub timestamp: i64,
    pub value: String,
}

/// A key's canonical text, ordered as its bytes are but compared eight bytes at a time: the
/// kept records' B-trees compare keys a lot, and `memcmp` in WebAssembly goes byte by byte
/// (it was a quarter of Nexmark q7's time). Serialised as the plain string it wraps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinKey(pub String);

impl Ord for JoinKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_bytes(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl PartialOrd for JoinKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The lexicographic order of two byte strings (as `[u8]::cmp`), eight bytes at a time.
fn compare_bytes(left: &[u8], right: &[u8]) -> Ordering {
    let (mut left_chunks, mut right_chunks) = (left.chunks_exact(8), right.chunks_exact(8));
    for (a, b) in (&mut left_chunks).zip(&mut right_chunks) {
        let (a, b) = (u64::from_be_bytes(a.try_into().unwrap_or_default()), u64::from_be_bytes(b.try_into().unwrap_or_default()));
        if a != b {
            return a.cmp(&b);
        }
    }
    let done = left.len().min(right.len()) / 8 * 8;
    let (left, right) = (&left[done..], &right[done..]);
    for (a, b) in left.iter().zip(right) {
        if a != b {
            return a.cmp(b);
        }
    }
    left.len().cmp(&right.len())
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
    pub(crate) keys: HashMap<JoinKey, KeyRecords, RandomState>,
    /// (event time, key) of every key holding a record of that event time without an interval.
    pub(crate) by_time: BTreeSet<(i64, JoinKey)>,
    /// (end, arrival, key) of every left record with an interval.
    pub(crate) by_end: BTreeSet<(i64, u64, JoinKey)>,
    pub(crate) records: usize,
    /// How many records were kept so far: the next record's `arrival`.
    pub(crate) arrivals: u64,
    /// The last watermark seen.
    pub watermark: Option<i64>,
}

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
    pub fn partners(&self, key: &JoinKey, side: Side) -> &[KeptRecord] {
        self.keys.get(key).map_or(&[], |records| match side {
            Side::Left => &records.right,
            Side::Right => &records.left,
        })
    }

    /// The kept left records of `key`, to update their best matches.
    pub fn lefts_mut(&mut self, key: &JoinKey) -> &mut [KeptRecord] {
        self.keys.get_mut(key).map_or(&mut [], |records| &mut records.left)
    }

    pub fn add(&mut self, key: &JoinKey, side: Side, mut record: KeptRecord) {
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
        match side {
            Side::Left => records.left.push(record),
            Side::Right => records.right.push(record),
        }
        self.records += 1;
    }

    /// Forgets every record without an interval whose event time is before `horizon`.
    pub fn forget_before(&mut self, horizon: i64) {
        while let Some((timestamp, key)) = self.by_time.first().cloned() {
            if timestamp >= horizon {
                break;
            }
            self.by_time.pop_first();
            let Some(records) = self.keys.get_mut(&key) else { continue };
            let before = records.left.len() + records.right.len();
            let stays = |record: &KeptRecord| record.interval.is_some() || record.timestamp >= horizon;
            records.left.retain(stays);
            records.right.retain(stays);
            self.records -= before - records.left.len() - records.right.len();
            self.remove_if_empty(&key);
        }
    }

    /// Removes and returns the left records whose interval `watermark` closes, by end, then
    /// arrival.
    pub fn close_before(&mut self, watermark: i64) -> Vec<KeptRecord> {
        let mut closed = Vec::new();
        while let Some((to, arrival, key)) = self.by_end.first().cloned() {
            if !end_is_passed(to, watermark) {
                break;
            }
            self.by_end.pop_first();
            let Some(records) = self.keys.get_mut(&key) else { continue };
            let Some(position) = records.left.iter().position(|record| record.arrival == arrival) else { continue };
            closed.push(records.left.remove(position));
            self.records -= 1;
            self.remove_if_empty(&key);
        }
        closed
    }

    fn remove_if_empty(&mut self, key: &JoinKey) {
        if self.keys.get(key).is_some_and(|records| records.left.is_empty() && records.right.is_empty()) {
            self.keys.remove(key);
        }
    }

    /// How many records are kept.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}
