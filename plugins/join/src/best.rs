//! Best mode: a left record's best match among kept right records, and its emission.

use sluice_sdk::Batch;

use crate::config::{BestSettings, UnmatchedPolicy};
use crate::fields::{Interval, kept_number};
use crate::kept::{BestMatch, KeptRecord};
use crate::write_pair;

/// The best of the kept right records within `interval` and not before `earliest` (as
/// [`crate::Keep::prefers`] orders them).
pub fn best_kept_match(best: &BestSettings, rights: &[KeptRecord], interval: Interval, earliest: i64) -> Option<BestMatch> {
    let mut found: Option<BestMatch> = None;
    for right in rights.iter().filter(|right| interval.contains(right.timestamp) && right.timestamp >= earliest) {
        let Some(rank) = kept_number(&best.field, &right.value) else { continue };
        if found.as_ref().is_none_or(|current| best.keep.prefers((rank, right.timestamp, &right.value), current)) {
            found = Some(BestMatch { rank, timestamp: right.timestamp, value: right.value.clone() });
        }
    }
    found
}

/// Emits a left record with its best match (or `null`, if `unmatched = "emit"`) at event time
/// `to`; false if it was unmatched and dropped.
pub fn emit_best(pair: &mut Vec<u8>, best: &BestSettings, left: &[u8], to: i64, found: Option<&BestMatch>, out: &mut Batch) -> bool {
    if found.is_none() && best.unmatched == UnmatchedPolicy::Drop {
        return false;
    }
    write_pair(pair, left, found.map(|found| found.value.as_slice()));
    out.push(None, pair, to, []);
    true
}
