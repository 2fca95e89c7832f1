//! The records a join keeps, per key and side, and their forgetting by event time.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use crate::Side;

/// A kept record: its event time and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    pub timestamp: i64,
    pub value: String,
}

/// Both sides' records of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct KeyRecords {
    left: Vec<KeptRecord>,
    right: Vec<KeptRecord>,
}

/// Every kept record, by key; and by event time, for forgetting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    keys: BTreeMap<String, KeyRecords>,
    /// (event time, key) of every key holding a record of that event time.
    by_time: BTreeSet<(i64, String)>,
    records: usize,
    /// The last watermark seen.
    pub watermark: Option<i64>,
}

impl VersionedState for Kept {
    const VERSION: u32 = 1;
}

impl Kept {
    /// The kept records of the other side than `side` with key `key`.
    pub fn partners(&self, key: &str, side: Side) -> &[KeptRecord] {
        self.keys.get(key).map_or(&[], |records| match side {
            Side::Left => &records.right,
            Side::Right => &records.left,
        })
    }

    pub fn add(&mut self, key: &str, side: Side, timestamp: i64, value: String) {
        let records = self.keys.entry(key.to_owned()).or_default();
        let list = match side {
            Side::Left => &mut records.left,
            Side::Right => &mut records.right,
        };
        list.push(KeptRecord { timestamp, value });
        self.by_time.insert((timestamp, key.to_owned()));
        self.records += 1;
    }

    /// Forgets every record whose event time is before `horizon`.
    pub fn forget_before(&mut self, horizon: i64) {
        while let Some((timestamp, key)) = self.by_time.first().cloned() {
            if timestamp >= horizon {
                break;
            }
            self.by_time.pop_first();
            let Some(records) = self.keys.get_mut(&key) else { continue };
            let before = records.left.len() + records.right.len();
            records.left.retain(|record| record.timestamp >= horizon);
            records.right.retain(|record| record.timestamp >= horizon);
            self.records -= before - records.left.len() - records.right.len();
            if records.left.is_empty() && records.right.is_empty() {
                self.keys.remove(&key);
            }
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
