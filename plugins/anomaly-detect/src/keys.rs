//! Keys: which key a record belongs to, and the per-key statistics, at most `max_keys` of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_sdk::VersionedState;

use sluice_sdk::state::{EntryDefinition, rearranged};

use crate::detectors::{Detector, DetectorStatistics};

/// What one key has learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStatistics {
    /// Values seen, for warm-up.
    pub seen: u64,
    /// One entry per configured detector, in configuration order.
    pub detectors: Vec<DetectorStatistics>,
    /// The tick of [`KeyedStatistics::clock`] at which the key was last used.
    last_use: u64,
}

impl KeyStatistics {
    /// Whether these statistics were learnt by `detectors` (not under another configuration).
    pub fn fit(&self, detectors: &[Detector]) -> bool {
        self.detectors.len() == detectors.len() && detectors.iter().zip(&self.detectors).all(|(detector, stats)| detector.fits(stats))
    }

    /// Forgets everything learnt, as for a key never seen.
    pub fn reset(&mut self, detectors: &[Detector]) {
        self.seen = 0;
        self.detectors = detectors.iter().map(Detector::fresh_statistics).collect();
    }
}

/// The operator's whole state: statistics per key.
///
/// Bounded by `max_keys` keys; each holds its group text, 8 bytes per `mad` window slot
/// and a few dozen bytes per other detector. When full, the least recently seen key is forgotten.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyedStatistics {
    keys: BTreeMap<String, KeyStatistics>,
    /// Every key by the tick of its last use, oldest first: the order of forgetting.
    recency: BTreeMap<u64, String>,
    /// Counts values observed: a logical clock, since plugins have none (and must replay alike).
    clock: u64,
    /// What each detector's statistics were made for, in configuration order (version 2;
    /// `None` in a state of version 1, whose statistics are taken by place where they fit).
    made_for: Option<Vec<EntryDefinition>>,
}

/// Version 2 added `made_for`.
impl VersionedState for KeyedStatistics {
    const VERSION: u32 = 2;

    fn migrate(version: u32, bytes: &[u8]) -> Result<Self, String> {
        match version {
            1 => sluice_sdk::state::decode_bytes::<KeyedStatisticsV1>(bytes).map(|old| KeyedStatistics {
                keys: old.keys,
                recency: old.recency,
                clock: old.clock,
                made_for: None,
            }),
            _ => Err(format!("cannot read state version {version}: this plugin reads versions 1 and 2")),
        }
    }
}

/// The state of version 1, as it was encoded: without `made_for`.
#[derive(Deserialize)]
struct KeyedStatisticsV1 {
    keys: BTreeMap<String, KeyStatistics>,
    recency: BTreeMap<u64, String>,
    clock: u64,
}

impl KeyedStatistics {
    /// Takes this state (a fresh one, or one restored) under the `detectors` of `field` now
    /// configured. Where they changed, each key keeps the statistics of each detector it still
    /// has, matched by what it is whatever its place or name, else by its name where only its
    /// settings changed (a threshold, a window: it goes on from there); a detector added
    /// starts afresh, and a learning one makes every key warm up again; one removed is dropped. A state that
    /// did not record what it was made for (version 1) is taken by place where it fits.
    pub fn redefine(&mut self, field: &str, detectors: &[Detector]) {
        let now: Vec<EntryDefinition> = detectors.iter().map(|detector| detector.definition(field)).collect();
        if let Some(then) = self.made_for.take().filter(|then| *then != now) {
            let sources = EntryDefinition::matched(&then, &now);
            // A learning detector that starts afresh would score from its second value (one
            // value makes no spread): every key warms up again, its other learning detectors
            // learning on but silent meanwhile (a threshold alerts as ever).
            let learns_afresh = sources.iter().zip(detectors).any(|(source, detector)| source.is_none() && detector.learns());
            for key in self.keys.values_mut() {
                key.detectors = rearranged(std::mem::take(&mut key.detectors), &sources, |place| detectors[place].fresh_statistics());
                if learns_afresh {
                    key.seen = 0;
                }
            }
        }
        self.made_for = Some(now);
    }

    pub fn get(&self, key: &str) -> Option<&KeyStatistics> {
        self.keys.get(key)
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Marks `key` as used now and calls `learn` with its statistics, creating them for a new
    /// key after forgetting the least recently used keys if `max_keys` are kept.
    /// Returns how many keys were forgotten.
    pub fn learn(&mut self, key: &str, max_keys: usize, detectors: &[Detector], learn: impl FnOnce(&mut KeyStatistics)) -> u64 {
        self.clock = self.clock.saturating_add(1);
        let mut forgotten = 0;
        if !self.keys.contains_key(key) {
            forgotten = self.make_room(max_keys);
            let mut fresh = KeyStatistics { seen: 0, detectors: Vec::new(), last_use: self.clock };
            fresh.reset(detectors);
            self.keys.insert(key.to_owned(), fresh);
            self.recency.insert(self.clock, key.to_owned());
        } else if let Some(statistics) = self.keys.get_mut(key) {
            // Move the key's own string to its new place in the recency order: no allocation.
            let text = self.recency.remove(&statistics.last_use).unwrap_or_else(|| key.to_owned());
            statistics.last_use = self.clock;
            self.recency.insert(self.clock, text);
        }
        if let Some(statistics) = self.keys.get_mut(key) {
            learn(statistics);
        }
        forgotten
    }

    /// Forgets the least recently used keys until a new one fits.
    fn make_room(&mut self, max_keys: usize) -> u64 {
        let mut forgotten = 0;
        while self.keys.len() >= max_keys.max(1) {
            // The recency order names every key; the fallback only guards against a state
            // that does not (it cannot be produced, but restored bytes are not trusted).
            let oldest = match self.recency.pop_first() {
                Some((_, key)) => key,
                None => match self.keys.keys().next() {
                    Some(key) => key.clone(),
                    None => break,
                },
            };
            if self.keys.remove(&oldest).is_some() {
                forgotten += 1;
            }
        }
        forgotten
    }
}
