//! Reading the kept records of earlier state versions.
//!
//! Version 1 kept each record's event time and text only. Its records become records without
//! an interval or best match, numbered in key order (left, then right, each in the order kept):
//! what they need to keep matching as before, and to order ties among a key's right records.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sluice_sdk::state::decode_bytes;

use sluice_sdk::KeyText;

use crate::kept::{Kept, KeptRecord, KeyRecords};

/// Version 1's kept record.
#[derive(Deserialize)]
struct KeptRecordV1 {
    timestamp: i64,
    value: String,
}

/// Version 1's records of one key.
#[derive(Deserialize)]
struct KeyRecordsV1 {
    left: Vec<KeptRecordV1>,
    right: Vec<KeptRecordV1>,
}

/// Version 1's state.
#[derive(Deserialize)]
struct KeptV1 {
    keys: BTreeMap<String, KeyRecordsV1>,
    by_time: BTreeSet<(i64, String)>,
    records: usize,
    watermark: Option<i64>,
}

pub fn from_version(version: u32, bytes: &[u8]) -> Result<Kept, String> {
    match version {
        1 => decode_bytes::<KeptV1>(bytes).map(from_v1),
        _ => Err(format!("cannot read state version {version}: this plugin reads versions 1 and 2")),
    }
}

fn from_v1(old: KeptV1) -> Kept {
    let mut arrivals = 0;
    let mut number = |records: Vec<KeptRecordV1>| -> Vec<KeptRecord> {
        records
            .into_iter()
            .map(|record| {
                let mut kept = KeptRecord::new(record.timestamp, record.value.into_bytes(), None, None);
                kept.arrival = arrivals;
                arrivals += 1;
                kept
            })
            .collect()
    };
    let keys = old
        .keys
        .into_iter()
        .map(|(key, records)| (KeyText::from(key), KeyRecords { left: number(records.left), right: number(records.right) }))
        .collect();
    let by_time = old.by_time.into_iter().map(|(time, key)| (time, KeyText::from(key))).collect();
    Kept { keys, by_time, by_end: BTreeSet::new(), records: old.records, arrivals, watermark: old.watermark, bytes: Default::default() }
}
